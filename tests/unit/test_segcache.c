/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for lib/segcache.c: one entry per content, named by its
 * SHA-256, read-only; a changed file gets a new entry; an unchanged file
 * is attached by its memo without being hashed; the last user
 * removes it; an entry whose holders were killed and a killed maker's
 * temporary file are swept; a held entry never is; a cache directory
 * others may enter is refused.
 */
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "segcache.h"
#include "unit.h"

static char tmpdir[64];
static char cache[256];
static char src[128];

static void write_src(const char *text)
{
    int fd = open(src, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text))
        abort();
    close(fd);
}

/* Files in the cache directory; 0 when it does not exist. */
static int entries(void)
{
    struct dirent *e;
    DIR *d = opendir(cache);
    int n = 0;

    if (d == NULL)
        return 0;
    while ((e = readdir(d)) != NULL)
        n += e->d_name[0] != '.' || strncmp(e->d_name, ".tmp.", 5) == 0;
    closedir(d);
    return n;
}

/* prun__segcache_get of the source file as it is now. */
static int get(int *fd, char *name)
{
    struct prun_err e;
    struct stat st;
    int in = open(src, O_RDONLY | O_CLOEXEC), rc;

    if (in < 0 || fstat(in, &st) < 0)
        return -1;
    rc = prun__segcache_get(in, (uint64_t)st.st_size, fd, name, &e);
    if (rc < 0)
        printf("# get: %s\n", e.msg);
    close(in);
    return rc;
}

static ino_t ino(int fd)
{
    struct stat st;

    return fstat(fd, &st) == 0 ? st.st_ino : 0;
}

static void test_one_entry_per_content(void)
{
    char n1[PRUN__SEGCACHE_NAME], n2[PRUN__SEGCACHE_NAME], path[512], buf[16];
    struct stat st;
    int a = -1, b = -1;

    write_src("abc");
    ASSERT_EQ(get(&a, n1), 0);
    ASSERT_EQ(get(&b, n2), 0);
    ASSERT_STREQ(
        n1, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    ASSERT_STREQ(n2, n1);
    ASSERT_EQ(ino(a), ino(b));
    ASSERT_EQ(entries(), 1);
    ASSERT(a >= 3 && b >= 3);
    ASSERT_EQ(fcntl(a, F_GETFL) & O_ACCMODE, O_RDONLY);
    ASSERT_EQ(fcntl(a, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
    snprintf(path, sizeof(path), "%s/%s", cache, n1);
    ASSERT_EQ(stat(path, &st), 0);
    ASSERT_EQ(st.st_mode & 0777, 0400);
    ASSERT_EQ(pread(a, buf, sizeof(buf), 0), 3);
    ASSERT(memcmp(buf, "abc", 3) == 0);
    /* Still held by b: stays. Then the last user removes it, and the dir. */
    prun__segcache_put(a, n1);
    ASSERT_EQ(entries(), 1);
    prun__segcache_put(b, n2);
    ASSERT_EQ(entries(), 0);
    ASSERT(access(cache, F_OK) < 0);
}

static void test_changed_file_new_entry(void)
{
    char n1[PRUN__SEGCACHE_NAME], n2[PRUN__SEGCACHE_NAME], buf[16];
    int a = -1, b = -1;

    write_src("first");
    ASSERT_EQ(get(&a, n1), 0);
    write_src("second");
    ASSERT_EQ(get(&b, n2), 0);
    ASSERT(strcmp(n1, n2) != 0);
    ASSERT(ino(a) != ino(b));
    ASSERT_EQ(entries(), 2);
    ASSERT_EQ(pread(a, buf, sizeof(buf), 0), 5);
    ASSERT(memcmp(buf, "first", 5) == 0);
    ASSERT_EQ(pread(b, buf, sizeof(buf), 0), 6);
    ASSERT(memcmp(buf, "second", 6) == 0);
    prun__segcache_put(a, n1);
    prun__segcache_put(b, n2);
    ASSERT_EQ(entries(), 0);
}

static void test_killed_holder_swept(void)
{
    char name[PRUN__SEGCACHE_NAME], c;
    unsigned removed = 9;
    int p[2], fd = -1, status;
    pid_t pid;

    write_src("held by the dead");
    ASSERT_EQ(pipe(p), 0);
    if ((pid = fork()) == 0) {
        if (get(&fd, name) < 0)
            _exit(1);
        (void)!write(p[1], "x", 1);
        pause();
        _exit(0);
    }
    close(p[1]);
    ASSERT_EQ(read(p[0], &c, 1), 1);
    close(p[0]);
    /* Held: a sweep leaves it alone. */
    ASSERT_EQ(prun__segcache_sweep(NULL, NULL, &removed, NULL), 0);
    ASSERT_EQ(removed, 0);
    ASSERT_EQ(entries(), 1);
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    ASSERT_EQ(entries(), 1);
    ASSERT_EQ(prun__segcache_sweep(NULL, NULL, &removed, NULL), 0);
    ASSERT_EQ(removed, 1);
    ASSERT_EQ(entries(), 0);
}

static void test_killed_maker_tmp_swept(void)
{
    char name[PRUN__SEGCACHE_NAME], path[512];
    int fd = -1, t;

    write_src("abc");
    ASSERT_EQ(get(&fd, name), 0);
    /* What a maker killed half way leaves: a temporary file nobody holds. */
    snprintf(path, sizeof(path), "%s/.tmp.1.1", cache);
    t = open(path, O_WRONLY | O_CREAT | O_EXCL, 0400);
    ASSERT(t >= 0);
    close(t);
    ASSERT_EQ(entries(), 2);
    /* The last user's put sweeps it with its own entry. */
    prun__segcache_put(fd, name);
    ASSERT_EQ(entries(), 0);
}

/*
 * A file unchanged for a second gets a memo: a second name of its entry,
 * by which the next user attaches it without hashing the file. A write
 * moves the file's times: no longer that memo, so a new entry.
 */
static void test_memo(void)
{
    char n1[PRUN__SEGCACHE_NAME], n2[PRUN__SEGCACHE_NAME];
    char n3[PRUN__SEGCACHE_NAME], buf[16];
    int a = -1, b = -1, c = -1;

    write_src("old bytes");
    usleep(1100 * 1000); /* older than the memo's age: segcache.c */
    ASSERT_EQ(get(&a, n1), 0);
    ASSERT_EQ(strlen(n1), 64u);
    ASSERT_EQ(entries(), 2); /* the hash and the memo, one inode */
    ASSERT_EQ(get(&b, n2), 0);
    ASSERT(strncmp(n2, "k-", 2) == 0);
    ASSERT_EQ(ino(a), ino(b));
    write_src("new bytes");
    ASSERT_EQ(get(&c, n3), 0);
    ASSERT_EQ(strlen(n3), 64u);
    ASSERT(ino(c) != ino(a));
    ASSERT_EQ(pread(c, buf, sizeof(buf), 0), 9);
    ASSERT(memcmp(buf, "new bytes", 9) == 0);
    prun__segcache_put(a, n1);
    prun__segcache_put(c, n3);
    ASSERT_EQ(entries(), 2);
    /* The last user removes both names. */
    prun__segcache_put(b, n2);
    ASSERT_EQ(entries(), 0);
}

static void test_open_dir_refused(void)
{
    char name[PRUN__SEGCACHE_NAME];
    struct prun_err e;
    int fd = -1, in;

    ASSERT_EQ(mkdir(cache, 0755), 0);
    chmod(cache, 0755);
    write_src("abc");
    in = open(src, O_RDONLY);
    ASSERT_EQ(prun__segcache_get(in, 3, &fd, name, &e), PRUN_ESYS);
    ASSERT_CONTAINS(e.msg, "private directory");
    close(in);
    ASSERT_EQ(rmdir(cache), 0);
}

int main(void)
{
    char base[128];

    snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_segcache.XXXXXX");
    if (mkdtemp(tmpdir) == NULL)
        return 1;
    snprintf(base, sizeof(base), "%s/shm", tmpdir);
    mkdir(base, 0700);
    setenv("PARALLELRUN_SHM_BASE", base, 1);
    snprintf(cache, sizeof(cache), "%s/parallelrun.cache.%u", base,
        (unsigned)geteuid());
    snprintf(src, sizeof(src), "%s/src", tmpdir);

    RUN(test_one_entry_per_content);
    RUN(test_changed_file_new_entry);
    RUN(test_killed_holder_swept);
    RUN(test_killed_maker_tmp_swept);
    RUN(test_memo);
    RUN(test_open_dir_refused);
    {
        char cmd[128];
        snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
        if (system(cmd) != 0)
            printf("# could not remove %s\n", tmpdir);
    }
    return unit_done();
}
