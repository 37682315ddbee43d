/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer harness for the job file loader: arbitrary bytes go through
 * prun__jobfile_load_mem (libyaml, the alias and depth limits, the model
 * conversion, the placeholder compiler and the whole-job checks). A job
 * that loads is also expanded for a few instances, so the templates the
 * loader accepted are exercised too, with the items of the first instances
 * of list, range and matrix sources. Nothing touches the file system except
 * what the loader itself checks ('lines' files).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "job.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/*
 * The first instances of a computed source, expanded as the runner would.
 * Sources that read the file system (lines, glob) are left alone.
 */
static void iterate(const struct prun_job *job, const struct prun_task *t)
{
    const struct prun_item *items;
    struct prun_iter *it = NULL;
    struct prun_err err = {0};
    struct prun_ctx ctx = {t->name, "run-1", 0, -1, 1, NULL, 0};
    int i, n;

    if (t->foreach.kind == PRUN_SRC_LINES || t->foreach.kind == PRUN_SRC_GLOB)
        return;
    if (prun__iter_open(job, &t->foreach, &it, &err) < 0)
        return;
    ctx.count = prun__iter_count(it);
    for (i = 0; i < 64; i++) {
        char **argv;

        n = prun__iter_next(it, &items, &err);
        if (n <= 0)
            break;
        ctx.index = (unsigned long long)i;
        ctx.items = items;
        ctx.nitems = (size_t)n;
        argv = prun__task_argv(t, &ctx);
        free(argv);
    }
    prun__iter_free(it);
}

static void exercise(const struct prun_job *job)
{
    static const struct prun_item items[2] = {
        {"a b", 0, NULL, NULL},
        {"it's", 0, NULL, NULL},
    };
    struct prun_ctx ctx = {"t", "run-1", 3, 10, 1, items, 2};
    struct prun_buf b = {0};
    size_t i;

    for (i = 0; i < job->ntasks; i++) {
        const struct prun_task *t = &job->tasks[i];
        char **argv;

        /* Items with keys are only valid for tasks whose items have keys. */
        ctx.nitems = t->foreach.kind == PRUN_SRC_LIST && t->foreach.nlist > 0 &&
                             t->foreach.list[0].nkeys > 0
                         ? 0
                         : 2;
        argv = prun__task_argv(t, &ctx);
        free(argv);
        prun__buf_reset(&b);
        (void)prun__task_cmdline(t, &ctx, &b);
        iterate(job, t);
    }
    prun__buf_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const struct prun_set sets[] = {{"day", "2026-11-21"}};
    struct prun_job *job = NULL;
    struct prun_err err = {0};

    if (prun__jobfile_load_mem(
            "fuzz.yaml", (const char *)data, size, sets, 1, &job, &err) == 0) {
        exercise(job);
        prun__job_free(job);
    }
    return 0;
}
