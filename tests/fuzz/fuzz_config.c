/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer harness for the INI configuration: the input is written to a
 * memfd, which prun__config_load_file opens through /proc/self/fd. The memfd
 * is mode 0600 so that a file setting a password is parsed to the end
 * instead of being refused for its mode on every input.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct prun_config c;
    struct prun_err err = {0};
    char path[64];
    size_t off = 0;
    int fd;

    fd = memfd_create("fuzz.ini", MFD_CLOEXEC);
    if (fd < 0)
        abort();
    if (fchmod(fd, 0600) < 0)
        abort();
    while (off < size) {
        ssize_t w = write(fd, data + off, size - off);
        if (w <= 0)
            abort();
        off += (size_t)w;
    }
    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    prun__config_defaults(&c);
    (void)prun__config_load_file(&c, path, 1, &err);
    /* A second file merged over the first exercises the copy/commit logic. */
    (void)prun__config_load_file(&c, path, 1, &err);
    prun__config_free(&c);
    close(fd);
    return 0;
}
