/* SPDX-License-Identifier: MIT */
/*
 * showargs: prints each argument on its own line as [arg], so tests can
 * see exactly what argv a child received (OpenBSD's regress style).
 * With PRUN_SHOW_ENV set, also prints the PARALLELRUN_* environment; with
 * PRUN_SHOW_FDS set, lists the open file descriptors.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern char **environ;

static void show_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    int self;

    if (d == NULL)
        return;
    self = dirfd(d);
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.' || atoi(e->d_name) == self)
            continue;
        printf("fd %s\n", e->d_name);
    }
    closedir(d);
}

int main(int argc, char **argv)
{
    char **e;
    int i;

    for (i = 1; i < argc; i++)
        printf("[%s]\n", argv[i]);
    if (getenv("PRUN_SHOW_ENV") != NULL)
        for (e = environ; *e != NULL; e++)
            if (strncmp(*e, "PARALLELRUN_", 12) == 0)
                printf("%s\n", *e);
    if (getenv("PRUN_SHOW_FDS") != NULL)
        show_fds();
    return 0;
}
