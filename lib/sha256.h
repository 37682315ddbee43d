/* SPDX-License-Identifier: MIT */
#ifndef PRUN_SHA256_H
#define PRUN_SHA256_H
/*
 * SHA-256 (FIPS 180-4): what names a file segment's copy in the host
 * cache (segcache.c). Streaming: init, update any number of times, final.
 */
#include <stddef.h>
#include <stdint.h>

#define PRUN__SHA256_LEN 32
#define PRUN__SHA256_HEX (2 * PRUN__SHA256_LEN + 1)

struct prun__sha256 {
    uint32_t h[8];
    uint64_t bytes; /* fed so far */
    unsigned char block[64];
    size_t used; /* bytes waiting in block */
};

void prun__sha256_init(struct prun__sha256 *c);
void prun__sha256_update(struct prun__sha256 *c, const void *data, size_t n);
/* Writes the 32-byte digest to out; c must be initialised again to reuse. */
void prun__sha256_final(struct prun__sha256 *c, unsigned char *out);
/* Tests: on, the portable C rounds even where the SHA-NI ones would run. */
void prun__sha256_portable(int on);
/* The digest in lower-case hex, NUL-terminated (PRUN__SHA256_HEX bytes). */
void prun__sha256_hex(const unsigned char *digest, char *hex);

#endif
