/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for lib/sha256.c: the test vectors of FIPS 180-4's examples
 * (NIST's "SHA256.pdf": "abc", the 448-bit two-block message, a million
 * 'a'), the 896-bit message of FIPS 180-2's SHA-384/512 examples, the
 * empty message, and the same digest whatever the update sizes; through
 * the SHA-NI rounds where the CPU has them and through the C ones.
 */
#include "sha256.h"
#include "unit.h"

static void digest_of(const void *p, size_t n, char *hex)
{
    struct prun__sha256 c;
    unsigned char d[PRUN__SHA256_LEN];

    prun__sha256_init(&c);
    prun__sha256_update(&c, p, n);
    prun__sha256_final(&c, d);
    prun__sha256_hex(d, hex);
}

static void test_abc(void)
{
    char hex[PRUN__SHA256_HEX];

    digest_of("abc", 3, hex);
    ASSERT_STREQ(hex,
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

static void test_empty(void)
{
    char hex[PRUN__SHA256_HEX];

    digest_of("", 0, hex);
    ASSERT_STREQ(hex,
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

static void test_two_blocks(void)
{
    static const char m[] =
        "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    char hex[PRUN__SHA256_HEX];

    digest_of(m, strlen(m), hex);
    ASSERT_STREQ(hex,
        "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

static void test_896_bits(void)
{
    static const char m[] =
        "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmn"
        "hijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu";
    char hex[PRUN__SHA256_HEX];

    digest_of(m, strlen(m), hex);
    ASSERT_STREQ(hex,
        "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1");
}

static void test_million_a(void)
{
    struct prun__sha256 c;
    unsigned char d[PRUN__SHA256_LEN], chunk[1000];
    char hex[PRUN__SHA256_HEX];
    int i;

    memset(chunk, 'a', sizeof(chunk));
    prun__sha256_init(&c);
    for (i = 0; i < 1000; i++)
        prun__sha256_update(&c, chunk, sizeof(chunk));
    prun__sha256_final(&c, d);
    prun__sha256_hex(d, hex);
    ASSERT_STREQ(hex,
        "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

/* Any split of the input, across block boundaries or not, hashes alike. */
static void test_split_updates(void)
{
    unsigned char buf[300], d[PRUN__SHA256_LEN];
    char whole[PRUN__SHA256_HEX], hex[PRUN__SHA256_HEX];
    struct prun__sha256 c;
    size_t i, step;

    for (i = 0; i < sizeof(buf); i++)
        buf[i] = (unsigned char)(i * 7 + 3);
    digest_of(buf, sizeof(buf), whole);
    for (step = 1; step < 130; step++) {
        prun__sha256_init(&c);
        for (i = 0; i < sizeof(buf); i += step)
            prun__sha256_update(
                &c, buf + i, sizeof(buf) - i < step ? sizeof(buf) - i : step);
        prun__sha256_final(&c, d);
        prun__sha256_hex(d, hex);
        ASSERT_STREQ(hex, whole);
    }
}

int main(void)
{
    int portable;

    /* Each vector through the SHA-NI rounds (if the CPU has them), then C. */
    for (portable = 0; portable <= 1; portable++) {
        prun__sha256_portable(portable);
        RUN(test_abc);
        RUN(test_empty);
        RUN(test_two_blocks);
        RUN(test_896_bits);
        RUN(test_million_a);
        RUN(test_split_updates);
    }
    return unit_done();
}
