/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer harness for the placeholder templates: the input (after a
 * first byte that picks the item shape) is compiled against a small fixed
 * job with two vars, then expanded with a fixed context, once plain and
 * once shell-quoted. A template that compiles must expand.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "job.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *var_keys[] = {"day", "dir"};
    static const char *var_vals[] = {"2026-11-21", "/tmp/it's {here}"};
    static const char *const item_keys[] = {"name", "size"};
    static const char *const vals0[] = {"x y", "1"};
    static const char *const vals1[] = {"'q'", ""};
    static const struct prun_item keyed[2] = {
        {"x y 1", 2, item_keys, vals0},
        {"'q' ", 2, item_keys, vals1},
    };
    static const struct prun_item plain[3] = {
        {"a b", 0, NULL, NULL},
        {"", 0, NULL, NULL},
        {"$(rm -rf /);`x`\n", 0, NULL, NULL},
    };
    struct prun_job job;
    struct prun_tpl t;
    struct prun_ctx ctx = {"fetch", "20261121-abc", 7, 42, 2, NULL, 0};
    struct prun_err err = {0};
    struct prun_buf out = {0};
    unsigned mode;
    char *src;

    if (size == 0)
        return 0;
    mode = data[0];
    src = malloc(size);
    if (src == NULL)
        return 0;
    memcpy(src, data + 1, size - 1);
    src[size - 1] = '\0';

    memset(&job, 0, sizeof(job));
    job.arena = prun__arena_new();
    if (job.arena == NULL)
        goto done;
    job.path = "fuzz.yaml";
    job.nvars = 2;
    job.var_keys = var_keys;
    job.var_vals = var_vals;

    memset(&t, 0, sizeof(t));
    if (mode & 1) {
        ctx.items = keyed;
        ctx.nitems = (mode & 2) ? 2 : 1;
    } else {
        ctx.items = plain;
        ctx.nitems = (mode >> 1) % 4;
    }
    ctx.count = (mode & 8) ? -1 : 42;
    if (prun__tpl_compile(&job, &t, src, (struct prun_pos){3, 10},
            (mode & 1) ? item_keys : NULL, (mode & 1) ? 2 : 0, &err) == 0) {
        if (prun__tpl_expand(&t, &ctx, 0, &out) == 0 && out.data == NULL)
            abort();
        prun__buf_reset(&out);
        if (prun__tpl_expand(&t, &ctx, 1, &out) == 0 && out.data == NULL)
            abort();
    }
done:
    prun__buf_free(&out);
    prun__arena_free(job.arena);
    free(src);
    return 0;
}
