/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for lib/config.c: every key, precedence of files and
 * environment, messages with line numbers, bad values, the password file
 * mode check and PARALLELRUN_CONFIG. Run from the repository root (the
 * fixtures are in tests/fixtures/config/); temporary files go to /tmp.
 */
#include "config.h"
#include "unit.h"

#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#define FIX "tests/fixtures/config/"

static char tmpdir[64];

static void clear_env(void)
{
    static const char *const vars[] = {"PARALLELRUN_REDIS",
        "PARALLELRUN_REDIS_PASSWORD", "PARALLELRUN_KEY_TTL", "PARALLELRUN_JOBS",
        "PARALLELRUN_KILL_GRACE", "PARALLELRUN_RESULTS",
        "PARALLELRUN_HUGEPAGES", "PARALLELRUN_CONFIG", "XDG_CONFIG_HOME"};
    size_t i;

    for (i = 0; i < sizeof(vars) / sizeof(vars[0]); i++)
        unsetenv(vars[i]);
    /* A HOME without a config file, so the real user's is never read. */
    setenv("HOME", tmpdir, 1);
}

/* Writes a file under tmpdir with the given mode; returns its path. */
static const char *write_file(const char *name, const char *text, int mode)
{
    static char paths[8][192];
    static int next;
    char *path = paths[next++ % 8];
    FILE *fp;

    snprintf(path, sizeof(paths[0]), "%s/%s", tmpdir, name);
    fp = fopen(path, "w");
    if (fp == NULL)
        abort();
    fputs(text, fp);
    fclose(fp);
    if (chmod(path, (mode_t)mode) != 0)
        abort();
    return path;
}

static void test_defaults(void)
{
    struct prun_config c;

    prun__config_defaults(&c);
    ASSERT(c.redis_url == NULL);
    ASSERT(c.redis_password == NULL);
    ASSERT_EQ(c.key_ttl_ms, 7LL * 86400 * 1000);
    ASSERT_EQ(c.jobs, 0);
    ASSERT_EQ(c.kill_grace_ms, 10000);
    ASSERT(c.results == NULL);
    ASSERT_EQ(c.hugepages, PRUN_HUGE_AUTO);
    prun__config_free(&c);
    prun__config_free(NULL);
}

static void test_every_key(void)
{
    struct prun_config c;
    struct prun_err err;

    prun__config_defaults(&c);
    ASSERT_EQ(prun__config_load_file(&c, FIX "good.ini", 1, &err), 0);
    ASSERT_STREQ(c.redis_url, "redis://db.example:6380/2");
    ASSERT(c.redis_password == NULL);
    ASSERT_EQ(c.key_ttl_ms, 2LL * 86400 * 1000);
    ASSERT_EQ(c.jobs, 12);
    ASSERT_EQ(c.kill_grace_ms, 1500);
    ASSERT_STREQ(c.results, "/var/tmp/results");
    ASSERT_EQ(c.hugepages, PRUN_HUGE_NEVER);
    prun__config_free(&c);
}

static void test_missing_file(void)
{
    struct prun_config c;
    struct prun_err err;

    prun__config_defaults(&c);
    c.jobs = 7;
    ASSERT_EQ(
        prun__config_load_file(&c, "/nonexistent/parallelrun.ini", 0, &err), 0);
    ASSERT_EQ(c.jobs, 7);
    memset(&err, 0, sizeof(err));
    ASSERT_EQ(
        prun__config_load_file(&c, "/nonexistent/parallelrun.ini", 1, &err),
        PRUN_EINVAL);
    ASSERT_STREQ(err.msg, "cannot open config '/nonexistent/parallelrun.ini'"
                          ": No such file or directory");
    ASSERT_EQ(c.jobs, 7);
}

static void test_unknown_key(void)
{
    struct prun_config c;
    struct prun_err err;

    prun__config_defaults(&c);
    memset(&err, 0, sizeof(err));
    ASSERT_EQ(prun__config_load_file(&c, FIX "unknown-key.ini", 0, &err),
        PRUN_EINVAL);
    ASSERT_STREQ(err.msg, FIX "unknown-key.ini:4: unknown key 'job' in "
                              "section [run] (did you mean 'jobs'?)");
    /* The good line before the bad one is not applied either. */
    ASSERT_EQ(c.jobs, 0);

    ASSERT_EQ(
        prun__config_load_file(&c,
            write_file("far.ini", "[redis]\nurl = x\nbananas = 1\n", 0600), 0,
            &err),
        PRUN_EINVAL);
    ASSERT_CONTAINS(err.msg, "far.ini:3: unknown key 'bananas' in section "
                             "[redis]");
    ASSERT(strstr(err.msg, "did you mean") == NULL);
    ASSERT(c.redis_url == NULL);
}

static void test_unknown_section(void)
{
    struct prun_config c;
    struct prun_err err;

    prun__config_defaults(&c);
    memset(&err, 0, sizeof(err));
    ASSERT_EQ(prun__config_load_file(&c, FIX "unknown-section.ini", 0, &err),
        PRUN_EINVAL);
    ASSERT_STREQ(err.msg, FIX "unknown-section.ini:3: unknown section "
                              "[rdis] (did you mean [redis]?)");
    ASSERT(c.redis_url == NULL);

    ASSERT_EQ(prun__config_load_file(&c,
                  write_file("nosec.ini", "; top\njobs = 3\n", 0600), 0, &err),
        PRUN_EINVAL);
    ASSERT_CONTAINS(err.msg, "nosec.ini:2: key 'jobs' is outside any section");
}

static void test_syntax_error(void)
{
    struct prun_config c;
    struct prun_err err;

    prun__config_defaults(&c);
    memset(&err, 0, sizeof(err));
    ASSERT_EQ(
        prun__config_load_file(&c, FIX "syntax.ini", 0, &err), PRUN_EINVAL);
    ASSERT_STREQ(err.msg, FIX "syntax.ini:3: syntax error (expected "
                              "'[section]' or 'key = value')");
    ASSERT_EQ(c.jobs, 0);

    /* A syntax error before a bad key is the one reported. */
    ASSERT_EQ(
        prun__config_load_file(&c,
            write_file("two.ini", "[run]\noops\njobz = 1\n", 0600), 0, &err),
        PRUN_EINVAL);
    ASSERT_CONTAINS(err.msg, "two.ini:2: syntax error");
}

static void test_bad_values(void)
{
    static const struct {
        const char *text;
        const char *msg;
    } cases[] = {
        {"[run]\njobs = 0\n",
            "bad.ini:2: [run] jobs: 0 is out of range (1 to 2147483647)"},
        {"[run]\n\njobs = many\n", "bad.ini:3: [run] jobs: 'many' is not an "
                                   "integer"},
        {"[run]\nkill_grace = soon\n",
            "bad.ini:2: [run] kill_grace: invalid duration 'soon'"},
        {"[redis]\nkey_ttl = 0s\n",
            "bad.ini:2: [redis] key_ttl: key_ttl must be longer than 0"},
        {"[segments]\nhugepages = always\n",
            "bad.ini:2: [segments] hugepages: 'always' is not a hugepages "
            "mode (auto or never)"},
    };
    struct prun_config c;
    struct prun_err err;
    size_t i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        prun__config_defaults(&c);
        memset(&err, 0, sizeof(err));
        ASSERT_EQ(prun__config_load_file(
                      &c, write_file("bad.ini", cases[i].text, 0600), 0, &err),
            PRUN_EINVAL);
        ASSERT_CONTAINS(err.msg, cases[i].msg);
        ASSERT_EQ(c.jobs, 0);
        ASSERT_EQ(c.kill_grace_ms, 10000);
        ASSERT_EQ(c.hugepages, PRUN_HUGE_AUTO);
    }
}

static void test_long_line(void)
{
    struct prun_config c;
    struct prun_err err;
    char text[2048];

    memset(text, 0, sizeof(text));
    strcpy(text, "[redis]\nurl = redis://");
    memset(text + strlen(text), 'h', 1500);
    strcat(text, "\n");
    prun__config_defaults(&c);
    memset(&err, 0, sizeof(err));
    ASSERT_EQ(
        prun__config_load_file(&c, write_file("long.ini", text, 0600), 0, &err),
        PRUN_EINVAL);
    ASSERT_CONTAINS(err.msg, "long.ini:2: line is too long");
    ASSERT(c.redis_url == NULL);
}

static void test_password_mode(void)
{
    static const char text[] = "[redis]\nurl = redis://h\npassword = s3cret\n";
    struct prun_config c;
    struct prun_err err;
    char expect[512];
    const char *path;

    prun__config_defaults(&c);
    memset(&err, 0, sizeof(err));
    path = write_file("pw.ini", text, 0644);
    ASSERT_EQ(prun__config_load_file(&c, path, 0, &err), PRUN_EINVAL);
    snprintf(expect, sizeof(expect),
        "%s: contains a Redis password but is readable by others (mode "
        "0644); run: chmod 600 %s",
        path, path);
    ASSERT_STREQ(err.msg, expect);
    ASSERT(c.redis_password == NULL);
    ASSERT(c.redis_url == NULL);

    /* Readable by the group is refused too. */
    path = write_file("pw.ini", text, 0640);
    ASSERT_EQ(prun__config_load_file(&c, path, 0, &err), PRUN_EINVAL);
    ASSERT_CONTAINS(err.msg, "(mode 0640)");

    path = write_file("pw.ini", text, 0600);
    ASSERT_EQ(prun__config_load_file(&c, path, 0, &err), 0);
    ASSERT_STREQ(c.redis_password, "s3cret");
    ASSERT_STREQ(c.redis_url, "redis://h");

    /* Without a password, a world-readable file is fine. */
    path = write_file("nopw.ini", "[redis]\nurl = redis://other\n", 0644);
    ASSERT_EQ(prun__config_load_file(&c, path, 0, &err), 0);
    ASSERT_STREQ(c.redis_url, "redis://other");
    ASSERT_STREQ(c.redis_password, "s3cret");
    prun__config_free(&c);
}

static void test_env(void)
{
    struct prun_config c;
    struct prun_err err;

    clear_env();
    prun__config_defaults(&c);
    setenv("PARALLELRUN_REDIS", "unix:///run/r.sock", 1);
    setenv("PARALLELRUN_REDIS_PASSWORD", "pw", 1);
    setenv("PARALLELRUN_KEY_TTL", "1h", 1);
    setenv("PARALLELRUN_JOBS", "3", 1);
    setenv("PARALLELRUN_KILL_GRACE", "250ms", 1);
    setenv("PARALLELRUN_RESULTS", "out", 1);
    setenv("PARALLELRUN_HUGEPAGES", "never", 1);
    ASSERT_EQ(prun__config_load_env(&c, &err), 0);
    ASSERT_STREQ(c.redis_url, "unix:///run/r.sock");
    ASSERT_STREQ(c.redis_password, "pw");
    ASSERT_EQ(c.key_ttl_ms, 3600000);
    ASSERT_EQ(c.jobs, 3);
    ASSERT_EQ(c.kill_grace_ms, 250);
    ASSERT_STREQ(c.results, "out");
    ASSERT_EQ(c.hugepages, PRUN_HUGE_NEVER);

    /* A bad value names the variable and leaves c alone. */
    setenv("PARALLELRUN_JOBS", "x", 1);
    setenv("PARALLELRUN_REDIS", "redis://new", 1);
    memset(&err, 0, sizeof(err));
    ASSERT_EQ(prun__config_load_env(&c, &err), PRUN_EINVAL);
    ASSERT_STREQ(err.msg, "PARALLELRUN_JOBS: 'x' is not an integer");
    ASSERT_STREQ(c.redis_url, "unix:///run/r.sock");
    ASSERT_EQ(c.jobs, 3);

    /* An empty variable counts as unset. */
    setenv("PARALLELRUN_JOBS", "", 1);
    ASSERT_EQ(prun__config_load_env(&c, &err), 0);
    ASSERT_EQ(c.jobs, 3);
    ASSERT_STREQ(c.redis_url, "redis://new");

    setenv("PARALLELRUN_HUGEPAGES", "sometimes", 1);
    ASSERT_EQ(prun__config_load_env(&c, &err), PRUN_EINVAL);
    ASSERT_CONTAINS(err.msg, "PARALLELRUN_HUGEPAGES: 'sometimes'");
    prun__config_free(&c);
    clear_env();
}

static void test_precedence(void)
{
    struct prun_config c;
    struct prun_err err;
    const char *etc, *user;

    clear_env();
    etc = write_file("etc.ini",
        "[redis]\nurl = redis://etc\n[run]\njobs = 2\nresults = /etc-res\n",
        0644);
    user = write_file("user.ini",
        "[redis]\nurl = redis://user\n[run]\n"
        "jobs = 3\nkill_grace = 2s\n",
        0644);
    setenv("PARALLELRUN_CONFIG", user, 1);
    setenv("PARALLELRUN_JOBS", "5", 1);
    memset(&c, 0, sizeof(c));
    ASSERT_EQ(prun__config_load(&c, etc, &err), 0);
    ASSERT_STREQ(c.redis_url, "redis://user");
    ASSERT_STREQ(c.results, "/etc-res");
    ASSERT_EQ(c.jobs, 5);
    ASSERT_EQ(c.kill_grace_ms, 2000);
    ASSERT_EQ(c.key_ttl_ms, 7LL * 86400 * 1000);
    prun__config_free(&c);

    /* Without the variable, the file wins over /etc. */
    unsetenv("PARALLELRUN_JOBS");
    ASSERT_EQ(prun__config_load(&c, etc, &err), 0);
    ASSERT_EQ(c.jobs, 3);
    prun__config_free(&c);
    clear_env();
}

static void test_user_file_locations(void)
{
    struct prun_config c;
    struct prun_err err;
    char dir[192];

    clear_env();
    snprintf(dir, sizeof(dir), "%s/.config", tmpdir);
    mkdir(dir, 0700);
    snprintf(dir, sizeof(dir), "%s/.config/parallelrun", tmpdir);
    mkdir(dir, 0700);
    write_file(".config/parallelrun/config.ini", "[run]\njobs = 21\n", 0600);
    snprintf(dir, sizeof(dir), "%s/xdg", tmpdir);
    mkdir(dir, 0700);
    snprintf(dir, sizeof(dir), "%s/xdg/parallelrun", tmpdir);
    mkdir(dir, 0700);
    write_file("xdg/parallelrun/config.ini", "[run]\njobs = 22\n", 0600);

    ASSERT_EQ(prun__config_load(&c, "/nonexistent.ini", &err), 0);
    ASSERT_EQ(c.jobs, 21);
    prun__config_free(&c);

    snprintf(dir, sizeof(dir), "%s/xdg", tmpdir);
    setenv("XDG_CONFIG_HOME", dir, 1);
    ASSERT_EQ(prun__config_load(&c, "/nonexistent.ini", &err), 0);
    ASSERT_EQ(c.jobs, 22);
    prun__config_free(&c);
    clear_env();
}

static void test_config_env_must_exist(void)
{
    struct prun_config c;
    struct prun_err err;

    clear_env();
    setenv("PARALLELRUN_CONFIG", "/nonexistent/my.ini", 1);
    memset(&c, 0, sizeof(c));
    c.jobs = 99;
    memset(&err, 0, sizeof(err));
    ASSERT_EQ(prun__config_load(&c, "/nonexistent.ini", &err), PRUN_EINVAL);
    ASSERT_STREQ(err.msg, "cannot open config '/nonexistent/my.ini': No such "
                          "file or directory");
    /* On failure the out-parameter is untouched. */
    ASSERT_EQ(c.jobs, 99);
    clear_env();
}

static void test_load_error_in_etc(void)
{
    struct prun_config c;
    struct prun_err err;
    const char *etc;

    clear_env();
    etc = write_file("etc-bad.ini", "[run]\njobs = -1\n", 0644);
    memset(&c, 0, sizeof(c));
    ASSERT_EQ(prun__config_load(&c, etc, &err), PRUN_EINVAL);
    ASSERT_CONTAINS(err.msg, "etc-bad.ini:2: [run] jobs: -1 is out of range");
    clear_env();
}

static void cleanup(void)
{
    char cmd[128];

    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0)
        printf("# could not remove %s\n", tmpdir);
}

int main(void)
{
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/prun-config-XXXXXX");
    if (mkdtemp(tmpdir) == NULL)
        return 1;
    clear_env();
    RUN(test_defaults);
    RUN(test_every_key);
    RUN(test_missing_file);
    RUN(test_unknown_key);
    RUN(test_unknown_section);
    RUN(test_syntax_error);
    RUN(test_bad_values);
    RUN(test_long_line);
    RUN(test_password_mode);
    RUN(test_env);
    RUN(test_precedence);
    RUN(test_user_file_locations);
    RUN(test_config_env_must_exist);
    RUN(test_load_error_in_etc);
    cleanup();
    return unit_done();
}
