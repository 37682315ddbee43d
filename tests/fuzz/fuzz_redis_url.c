/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer harness for Redis addresses: prun__redis_url_parse on a
 * NUL-terminated copy of the input, then prun__redis_url_format of what it
 * parsed, into a full-size and a short buffer, and a parse of the
 * formatted URL.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "coord.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct prun_redis_addr a, b;
    struct prun_err err = {0};
    char buf[512], small[16];
    char *s;

    s = malloc(size + 1);
    if (s == NULL)
        return 0;
    memcpy(s, data, size);
    s[size] = '\0';
    if (prun__redis_url_parse(s, &a, &err) == 0) {
        prun__redis_url_format(&a, buf, sizeof(buf));
        prun__redis_url_format(&a, small, sizeof(small));
        (void)prun__redis_url_parse(buf, &b, &err);
    }
    free(s);
    return 0;
}
