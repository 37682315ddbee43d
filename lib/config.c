/* SPDX-License-Identifier: MIT */
/*
 * config: the runner's settings from INI files (read with inih, the only
 * module that includes it) and PARALLELRUN_* environment variables, merged
 * in the order README "Configuration" gives. It validates every key and value
 * and refuses a file that holds a Redis password but is readable by others. It
 * does not know about the job file or the command line, which override these
 * settings later, in cmd/.
 */
#include "config.h"
#include "coord.h"

#include <errno.h>
#include <ini.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define DEFAULT_ETC_PATH "/etc/parallelrun.ini"

void prun__config_defaults(struct prun_config *c)
{
    memset(c, 0, sizeof(*c));
    c->key_ttl_ms = 7LL * 24 * 3600 * 1000;
    c->jobs = 0;
    c->kill_grace_ms = 10 * 1000;
    c->lock_lease_ms = 30 * 1000;
    c->hugepages = PRUN_HUGE_AUTO;
}

void prun__config_free(struct prun_config *c)
{
    if (c == NULL)
        return;
    free(c->redis_url);
    free(c->redis_password);
    free(c->results);
    c->redis_url = c->redis_password = c->results = NULL;
}

/*
 * Changes are made on a copy of the configuration and committed only when
 * the whole file (or environment) was good, so a bad file leaves c as it
 * was. A string replaced in the copy is freed only if the copy allocated
 * it; strings of the original are freed at the commit.
 */
static int set_str(char **dst, const char *orig, const char *val)
{
    char *copy = NULL;

    if (*val != '\0') {
        copy = strdup(val);
        if (copy == NULL)
            return PRUN_ENOMEM;
    }
    if (*dst != orig)
        free(*dst);
    *dst = copy;
    return 0;
}

static void commit(struct prun_config *c, struct prun_config *next)
{
    if (c->redis_url != next->redis_url)
        free(c->redis_url);
    if (c->redis_password != next->redis_password)
        free(c->redis_password);
    if (c->results != next->results)
        free(c->results);
    *c = *next;
}

static void discard(const struct prun_config *c, struct prun_config *next)
{
    if (c->redis_url != next->redis_url)
        free(next->redis_url);
    if (c->redis_password != next->redis_password)
        free(next->redis_password);
    if (c->results != next->results)
        free(next->results);
}

enum key {
    K_URL,
    K_PASSWORD,
    K_KEY_TTL,
    K_JOBS,
    K_KILL_GRACE,
    K_RESULTS,
    K_HUGEPAGES,
    K_LOCK_LEASE,
};

static const struct {
    const char *section, *name, *env;
    enum key key;
} keys[] = {
    {"redis", "url", "PARALLELRUN_REDIS", K_URL},
    {"redis", "password", "PARALLELRUN_REDIS_PASSWORD", K_PASSWORD},
    {"redis", "key_ttl", "PARALLELRUN_KEY_TTL", K_KEY_TTL},
    {"run", "jobs", "PARALLELRUN_JOBS", K_JOBS},
    {"run", "kill_grace", "PARALLELRUN_KILL_GRACE", K_KILL_GRACE},
    {"run", "results", "PARALLELRUN_RESULTS", K_RESULTS},
    {"segments", "hugepages", "PARALLELRUN_HUGEPAGES", K_HUGEPAGES},
    {"run", "lock_lease", "PARALLELRUN_LOCK_LEASE", K_LOCK_LEASE},
};

#define NKEYS (sizeof(keys) / sizeof(keys[0]))

static const char *const sections[] = {"redis", "run", "segments"};

/*
 * Parses val for key into next. On error err->msg says what is wrong with
 * the value, without saying where: the caller knows that.
 */
static int set_value(struct prun_config *next, const struct prun_config *orig,
    enum key key, const char *val, struct prun_err *err)
{
    long long n;
    int64_t ms;
    int rc = 0;

    switch (key) {
    case K_URL:
        rc = set_str(&next->redis_url, orig->redis_url, val);
        break;
    case K_PASSWORD:
        rc = set_str(&next->redis_password, orig->redis_password, val);
        break;
    case K_RESULTS:
        rc = set_str(&next->results, orig->results, val);
        break;
    case K_KEY_TTL:
        rc = prun__parse_duration(val, &ms, err);
        if (rc == 0 && ms <= 0)
            rc = prun__err_set(err, PRUN_EINVAL,
                "key_ttl must be longer than 0, not '%s'", val);
        if (rc == 0)
            next->key_ttl_ms = ms;
        return rc;
    case K_KILL_GRACE:
        rc = prun__parse_duration(val, &ms, err);
        if (rc == 0)
            next->kill_grace_ms = ms;
        return rc;
    case K_LOCK_LEASE:
        rc = prun__parse_duration(val, &ms, err);
        /* Renewals come every lease/3 from a loop that ticks every 500 ms. */
        if (rc == 0 && ms < 2000)
            rc = prun__err_set(err, PRUN_EINVAL,
                "lock_lease must be at least 2s, not '%s'", val);
        if (rc == 0)
            next->lock_lease_ms = ms;
        return rc;
    case K_JOBS:
        rc = prun__parse_int(val, 1, INT_MAX, &n, err);
        if (rc == 0)
            next->jobs = (unsigned)n;
        return rc;
    case K_HUGEPAGES:
        if (strcmp(val, "auto") == 0)
            next->hugepages = PRUN_HUGE_AUTO;
        else if (strcmp(val, "never") == 0)
            next->hugepages = PRUN_HUGE_NEVER;
        else
            return prun__err_set(err, PRUN_EINVAL,
                "'%s' is not a hugepages mode (auto or never)", val);
        return 0;
    }
    if (rc < 0)
        return prun__err_set(err, PRUN_ENOMEM, "out of memory");
    return 0;
}

/* The state of one file's parse, shared by the inih reader and handler. */
struct parse {
    FILE *fp;
    const struct prun_config *orig;
    struct prun_config next;
    int line;     /* lines read so far: inih's line number */
    int err_line; /* line of the first handler error, 0 if none */
    int err_code;
    char msg[200];
    int long_line; /* line that did not fit inih's buffer, 0 if none */
    int ctrl_line; /* line holding a control character, 0 if none */
    unsigned char ctrl_byte;
    int password; /* the file sets a password */
};

/*
 * inih numbers lines by calls to its reader, so counting them here tells
 * the handler which line it is looking at: Debian's inih does not pass the
 * line to the handler.
 */
static char *reader(char *str, int num, void *stream)
{
    struct parse *p = stream;
    const char *end;
    size_t len, i;

    if (p->long_line || p->ctrl_line)
        return NULL;
    /*
     * With no NUL left in the buffer, the last NUL after fgets is the one
     * it wrote: any NUL before it came from the file.
     */
    memset(str, 'x', (size_t)num);
    if (fgets(str, num, p->fp) == NULL)
        return NULL;
    p->line++;
    end = memrchr(str, '\0', (size_t)num);
    for (i = 0; str + i < end; i++) {
        unsigned char ch = (unsigned char)str[i];

        /*
         * inih would stop reading a line at a NUL and take the rest of a
         * binary file for comments or text; refuse it where it starts.
         */
        if ((ch < 0x20 && ch != '\t' && ch != '\n' && ch != '\r') ||
            ch == 0x7f) {
            p->ctrl_line = p->line;
            p->ctrl_byte = ch;
            return NULL;
        }
    }
    len = strlen(str);
    if (len == (size_t)num - 1 && str[len - 1] != '\n' && !feof(p->fp)) {
        /*
         * inih would parse the rest of the line as a line of its own;
         * stopping here keeps a cut value from being taken for real.
         */
        p->long_line = p->line;
        return NULL;
    }
    return str;
}

static int handler_fail(struct parse *p, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int handler_fail(struct parse *p, int code, const char *fmt, ...)
{
    va_list ap;

    /* inih reports the first failing line; keep the message that goes with it.
     */
    if (p->err_line == 0) {
        p->err_line = p->line;
        p->err_code = code;
        va_start(ap, fmt);
        vsnprintf(p->msg, sizeof(p->msg), fmt, ap);
        va_end(ap);
    }
    return 0;
}

static int handler(
    void *user, const char *section, const char *name, const char *value)
{
    struct parse *p = user;
    const char *cands[NKEYS], *hint;
    struct prun_err verr;
    size_t i, n = 0;
    int known_section = 0, rc;

    for (i = 0; i < sizeof(sections) / sizeof(sections[0]); i++)
        known_section |= strcmp(section, sections[i]) == 0;
    if (!known_section) {
        if (*section == '\0')
            return handler_fail(p, PRUN_EINVAL,
                "key '%s' is outside any section", name ? name : "");
        hint = prun__closest(
            section, sections, sizeof(sections) / sizeof(sections[0]));
        if (hint != NULL)
            return handler_fail(p, PRUN_EINVAL,
                "unknown section [%s] (did you mean [%s]?)", section, hint);
        return handler_fail(p, PRUN_EINVAL,
            "unknown section [%s] (expected [redis], [run] or [segments])",
            section);
    }
    /* Builds of inih that report new sections call with name == NULL. */
    if (name == NULL)
        return 1;
    for (i = 0; i < NKEYS; i++) {
        if (strcmp(keys[i].section, section) != 0)
            continue;
        if (strcmp(keys[i].name, name) == 0)
            break;
        cands[n++] = keys[i].name;
    }
    if (i == NKEYS) {
        hint = prun__closest(name, cands, n);
        if (hint != NULL)
            return handler_fail(p, PRUN_EINVAL,
                "unknown key '%s' in section [%s] (did you mean '%s'?)", name,
                section, hint);
        return handler_fail(
            p, PRUN_EINVAL, "unknown key '%s' in section [%s]", name, section);
    }
    /* A password in the URL is a password all the same. */
    if (keys[i].key == K_PASSWORD ||
        (keys[i].key == K_URL && prun__redis_url_has_password(value)))
        p->password = 1;
    memset(&verr, 0, sizeof(verr));
    rc = set_value(&p->next, p->orig, keys[i].key, value, &verr);
    if (rc < 0)
        return handler_fail(p, rc, "[%s] %s: %s", section, name, verr.msg);
    return 1;
}

int prun__config_load_file(struct prun_config *c, const char *path,
    int must_exist, struct prun_err *err)
{
    struct parse p;
    struct stat st;
    int rc = 0, line, stop;

    memset(&p, 0, sizeof(p));
    p.orig = c;
    p.next = *c;
    /*
     * The file is opened once and both parsed and checked through the same
     * descriptor, so the mode checked is that of the file whose password
     * was read, even if the path is replaced meanwhile.
     */
    p.fp = fopen(path, "re");
    if (p.fp == NULL)
        goto missing;
    if (fstat(fileno(p.fp), &st) < 0) {
        rc = prun__err_sys(err, "cannot stat config '%s'", path);
        goto fail;
    }
    if (S_ISDIR(st.st_mode)) {
        errno = EISDIR;
        goto missing;
    }
    line = ini_parse_stream(reader, &p, handler, &p);
    if (ferror(p.fp)) {
        rc = prun__err_sys(err, "cannot read config '%s'", path);
        goto fail;
    }
    if (line == -2) {
        rc = prun__err_set(err, PRUN_ENOMEM, "out of memory");
        goto fail;
    }
    stop = p.long_line ? p.long_line : p.ctrl_line;
    if (line > 0 && (stop == 0 || line <= stop)) {
        if (line == p.err_line)
            rc = prun__err_set(err, p.err_code, "%s:%d: %s", path, line, p.msg);
        else
            rc = prun__err_set(err, PRUN_EINVAL,
                "%s:%d: syntax error (expected '[section]' or "
                "'key = value')",
                path, line);
        goto fail;
    }
    if (p.ctrl_line) {
        rc = prun__err_set(err, PRUN_EINVAL,
            "%s:%d: control character 0x%02x (a config file is text)", path,
            p.ctrl_line, p.ctrl_byte);
        goto fail;
    }
    if (p.long_line) {
        rc = prun__err_set(
            err, PRUN_EINVAL, "%s:%d: line is too long", path, p.long_line);
        goto fail;
    }
    if (p.password && (st.st_mode & (S_IRGRP | S_IROTH))) {
        rc = prun__err_set(err, PRUN_EINVAL,
            "%s: contains a Redis password but is readable by others "
            "(mode %04o); run: chmod 600 %s",
            path, (unsigned)(st.st_mode & 07777), path);
        goto fail;
    }
    fclose(p.fp);
    commit(c, &p.next);
    return 0;
missing:
    if (must_exist)
        rc = prun__err_set(err, PRUN_EINVAL, "cannot open config '%s': %s",
            path, strerror(errno));
fail:
    if (p.fp != NULL)
        fclose(p.fp);
    discard(c, &p.next);
    return rc;
}

int prun__config_load_env(struct prun_config *c, struct prun_err *err)
{
    struct prun_config next = *c;
    struct prun_err verr;
    size_t i;
    int rc;

    for (i = 0; i < NKEYS; i++) {
        const char *val = getenv(keys[i].env);

        /* An empty variable is unset, as `VAR= command` intends. */
        if (val == NULL || *val == '\0')
            continue;
        memset(&verr, 0, sizeof(verr));
        rc = set_value(&next, c, keys[i].key, val, &verr);
        if (rc < 0) {
            prun__err_set(err, rc, "%s: %s", keys[i].env, verr.msg);
            discard(c, &next);
            return rc;
        }
    }
    commit(c, &next);
    return 0;
}

int prun__config_load(
    struct prun_config *c, const char *etc_path, struct prun_err *err)
{
    struct prun_config cfg;
    struct prun_buf path = {0};
    const char *env, *base;
    int rc;

    prun__config_defaults(&cfg);
    rc = prun__config_load_file(
        &cfg, etc_path ? etc_path : DEFAULT_ETC_PATH, 0, err);
    if (rc < 0)
        goto fail;
    env = getenv("PARALLELRUN_CONFIG");
    if (env != NULL && *env != '\0') {
        rc = prun__config_load_file(&cfg, env, 1, err);
    } else {
        /* The XDG spec says a relative XDG_CONFIG_HOME is to be ignored. */
        base = getenv("XDG_CONFIG_HOME");
        if (base != NULL && base[0] == '/')
            rc = prun__buf_printf(&path, "%s/parallelrun/config.ini", base);
        else if ((base = getenv("HOME")) != NULL && *base != '\0')
            rc = prun__buf_printf(
                &path, "%s/.config/parallelrun/config.ini", base);
        if (rc < 0)
            rc = prun__err_set(err, PRUN_ENOMEM, "out of memory");
        else if (path.data != NULL)
            rc = prun__config_load_file(&cfg, path.data, 0, err);
    }
    if (rc < 0)
        goto fail;
    rc = prun__config_load_env(&cfg, err);
    if (rc < 0)
        goto fail;
    prun__buf_free(&path);
    *c = cfg;
    return 0;
fail:
    prun__buf_free(&path);
    prun__config_free(&cfg);
    return rc;
}
