/* SPDX-License-Identifier: MIT */
/*
 * Tests of the loader (lib/jobfile*.c) and of the model helpers in
 * lib/job.c and lib/job_tpl.c: every field of a full file landing in the
 * model, templates, argv and command lines, and errors with their exact
 * FILE:LINE:COL. Run from the repository root: the fixture tests read
 * tests/fixtures/.
 */
#include "job.h"
#include "unit.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

static struct prun_job *load_str(const char *name, const char *yaml,
    const struct prun_set *sets, size_t nsets, struct prun_err *err)
{
    struct prun_job *job = NULL;

    memset(err, 0, sizeof(*err));
    if (prun__jobfile_load_mem(
            name, yaml, strlen(yaml), sets, nsets, &job, err) < 0)
        return NULL;
    return job;
}

/* The message of loading yaml as "t.yaml", or "OK". */
static const char *load_msg(const char *yaml, struct prun_err *err)
{
    struct prun_job *job = load_str("t.yaml", yaml, NULL, 0, err);

    if (job != NULL) {
        prun__job_free(job);
        return "OK";
    }
    return err->msg;
}

static const struct prun_task *task(
    const struct prun_job *job, const char *name)
{
    size_t i;

    for (i = 0; i < job->ntasks; i++)
        if (strcmp(job->tasks[i].name, name) == 0)
            return &job->tasks[i];
    return NULL;
}

static const char *env_src(const struct prun_task *t, const char *key)
{
    size_t i;

    for (i = 0; i < t->nenv; i++)
        if (strcmp(t->env_keys[i], key) == 0)
            return t->env_vals[i].src;
    return NULL;
}

static const char *var(const struct prun_job *job, const char *key)
{
    size_t i;

    for (i = 0; i < job->nvars; i++)
        if (strcmp(job->var_keys[i], key) == 0)
            return job->var_vals[i];
    return NULL;
}

static void test_full_file(void)
{
    struct prun_err err;
    struct prun_job *job = NULL;
    const struct prun_task *f, *s, *r;

    ASSERT_EQ(prun__jobfile_load(
                  "tests/fixtures/good/full.yaml", NULL, 0, &job, &err),
        0);
    ASSERT_STREQ(job->path, "tests/fixtures/good/full.yaml");
    ASSERT_STREQ(job->name, "nightly-etl");
    ASSERT_EQ(job->jobs, 4);
    ASSERT_EQ(job->nvars, 2);
    ASSERT_STREQ(var(job, "day"), "2026-11-21");
    ASSERT_EQ(job->lock, 1);
    ASSERT_EQ(job->halt, PRUN_HALT_SOON);
    ASSERT_EQ(job->max_failures, 3);

    ASSERT_EQ(job->nsegs, 3);
    ASSERT_STREQ(job->segs[0].name, "genome");
    ASSERT_STREQ(job->segs[0].file, "data/2026-11-21/genome.npy");
    ASSERT_EQ(job->segs[0].pos.line, 11);
    ASSERT_EQ(job->segs[0].pos.col, 3);
    ASSERT_EQ(job->segs[0].writable, 0);
    ASSERT_STREQ(job->segs[1].dtype, "float32");
    ASSERT_EQ(job->segs[1].ndim, 2);
    ASSERT_EQ(job->segs[1].shape[0], 1000000);
    ASSERT_EQ(job->segs[1].shape[1], 16);
    ASSERT(job->segs[2].file == NULL);
    ASSERT_EQ(job->segs[2].size, 256ull << 20);
    ASSERT_EQ(job->segs[2].writable, 1);
    ASSERT_EQ(job->segs[2].hugepages, PRUN_HUGE_AUTO);
    ASSERT_EQ(job->segs[0].hugepages, PRUN_HUGE_DEFAULT);

    /* Tasks in file order. */
    ASSERT_EQ(job->ntasks, 3);
    ASSERT_STREQ(job->tasks[0].name, "fetch");
    ASSERT_STREQ(job->tasks[1].name, "simulate");
    ASSERT_STREQ(job->tasks[2].name, "reduce");
    f = &job->tasks[0];
    s = &job->tasks[1];
    r = &job->tasks[2];

    ASSERT_EQ(f->pos.line, 23);
    ASSERT_EQ(f->pos.col, 3);
    ASSERT_EQ(f->shell, 0);
    ASSERT_EQ(f->argc, 5);
    ASSERT_STREQ(f->argv[0].src, "curl");
    ASSERT_STREQ(f->argv[4].src, "{vars.out}/{index}.html");
    ASSERT_EQ(f->argv[4].pos.line, 24);
    ASSERT_EQ(f->foreach.kind, PRUN_SRC_LINES);
    ASSERT_STREQ(f->foreach.path, "urls-2026-11-21.txt");
    ASSERT_EQ(f->foreach.pos.line, 25);
    ASSERT_EQ(f->foreach.pos.col, 22);
    ASSERT_EQ(f->foreach.chunk, 1);
    ASSERT_EQ(f->jobs, 16);
    ASSERT(f->rate > 19.99 && f->rate < 20.01);
    /* env: defaults merged key by key, the task's MODE wins. */
    ASSERT_EQ(f->nenv, 2);
    ASSERT_STREQ(env_src(f, "OMP_NUM_THREADS"), "1");
    ASSERT_STREQ(env_src(f, "MODE"), "fetch");
    ASSERT_STREQ(env_src(s, "MODE"), "default");
    ASSERT_EQ(f->timeout_ms, 30 * 60 * 1000);
    ASSERT_EQ(f->kill_grace_ms, 10000);
    ASSERT_EQ(f->retries, 2);
    ASSERT_EQ(f->retry_delay_ms, 1000);
    ASSERT_EQ(f->nneeds, 0);
    ASSERT(f->cwd == NULL);

    ASSERT_EQ(s->foreach.kind, PRUN_SRC_RANGE);
    ASSERT_EQ(s->foreach.from, 0);
    ASSERT_EQ(s->foreach.to, 1000);
    ASSERT_EQ(s->foreach.step, 10);
    ASSERT_EQ(s->foreach.chunk, 4);
    ASSERT_EQ(s->timeout_ms, 0);
    ASSERT_EQ(s->nsegs, 2);
    ASSERT_EQ(s->segs[0], 0);
    ASSERT_EQ(s->segs[1], 2);

    ASSERT_EQ(r->shell, 1);
    ASSERT_EQ(r->argc, 1);
    ASSERT_EQ(r->nneeds, 2);
    ASSERT_EQ(r->needs[0], 1);
    ASSERT_EQ(r->needs[1], 0);
    ASSERT_EQ(r->nsegs, 1);
    ASSERT_EQ(r->segs[0], 2);
    ASSERT(r->cwd != NULL);
    ASSERT_STREQ(r->cwd->src, "/tmp/{task}");
    ASSERT_EQ(r->retries, 0);
    ASSERT_EQ(r->pool, 0);
    ASSERT_EQ(r->foreach.kind, PRUN_SRC_NONE);
    ASSERT_EQ(r->foreach.chunk, 1);
    prun__job_free(job);
}

static void test_defaults_when_unset(void)
{
    struct prun_err err;
    struct prun_job *job = load_str("dir/my job.v2.yaml",
        "tasks:\n  a: {run: [\"true\"]}\n", NULL, 0, &err);
    const struct prun_task *t;

    ASSERT(job != NULL);
    ASSERT_STREQ(job->name, "my-job.v2");
    ASSERT_EQ(job->jobs, 0);
    ASSERT_EQ(job->max_failures, 1);
    ASSERT_EQ(job->halt, PRUN_HALT_NEVER);
    ASSERT_EQ(job->lock, 0);
    t = &job->tasks[0];
    ASSERT_EQ(t->timeout_ms, 0);
    ASSERT_EQ(t->kill_grace_ms, -1);
    ASSERT_EQ(t->retries, 0);
    ASSERT_EQ(t->retry_delay_ms, 1000);
    ASSERT_EQ(t->jobs, 0);
    ASSERT(t->rate == 0);
    ASSERT_EQ(t->nenv, 0);
    ASSERT_EQ(t->pool, 0);
    prun__job_free(job);

    job = load_str(".hidden..x.yaml", "tasks: {a: {run: x}}\n", NULL, 0, &err);
    ASSERT(job != NULL);
    ASSERT_STREQ(job->name, "hidden.-x");
    prun__job_free(job);
}

static void test_sets_override_and_add(void)
{
    static const struct prun_set sets[] = {
        {"day", "2027-01-01"}, {"extra", "a b"}};
    struct prun_err err;
    struct prun_buf b = {0};
    struct prun_ctx ctx = {0};
    struct prun_job *job = load_str("t.yaml",
        "vars: {day: monday, keep: k, extra: x}\n"
        "segments: {s: {file: \"{vars.day}.bin\"}}\n"
        "tasks:\n  a:\n    run: [echo, "
        "\"{vars.day}-{vars.extra}-{vars.keep}\"]\n"
        "    segments: [s]\n",
        sets, 2, &err);

    ASSERT(job != NULL);
    ASSERT_EQ(job->nvars, 3);
    ASSERT_STREQ(var(job, "day"), "2027-01-01");
    ASSERT_STREQ(var(job, "extra"), "a b");
    ASSERT_STREQ(var(job, "keep"), "k");
    ASSERT_STREQ(job->segs[0].file, "2027-01-01.bin");
    /* {vars.} is resolved at compile time into one literal part. */
    ASSERT_EQ(job->tasks[0].argv[1].nparts, 1);
    ASSERT_EQ(job->tasks[0].argv[1].parts[0].kind, PRUN_PH_LIT);
    ASSERT_EQ(prun__tpl_expand(&job->tasks[0].argv[1], &ctx, 0, &b), 0);
    ASSERT_STREQ(b.data, "2027-01-01-a b-k");
    prun__buf_free(&b);
    prun__job_free(job);

    /* --set of a variable the file does not declare is refused. */
    ASSERT(load_str("t.yaml", "tasks: {a: {run: \"echo {vars.new}\"}}\n",
               &(struct prun_set){"new", "v"}, 1, &err) == NULL);
    ASSERT_EQ(err.code, PRUN_EINVAL);
    ASSERT_CONTAINS(err.msg, "--set new: t.yaml declares no such variable");

    ASSERT(load_str("t.yaml", "tasks: {a: {run: x}}\n",
               &(struct prun_set){"bad name", "v"}, 1, &err) == NULL);
    ASSERT_EQ(err.code, PRUN_EINVAL);
    ASSERT_CONTAINS(err.msg, "--set: invalid variable name 'bad name'");
}

static void test_matrix_and_list_of_maps(void)
{
    struct prun_err err;
    struct prun_job *job = NULL;
    const struct prun_task *t, *h;
    const struct prun_item *it;

    ASSERT_EQ(prun__jobfile_load(
                  "tests/fixtures/good/matrix.yaml", NULL, 0, &job, &err),
        0);
    t = task(job, "train");
    ASSERT(t != NULL);
    ASSERT_EQ(t->foreach.kind, PRUN_SRC_MATRIX);
    ASSERT_EQ(t->foreach.naxes, 2);
    ASSERT_STREQ(t->foreach.axes[0].name, "lr");
    ASSERT_EQ(t->foreach.axes[0].nvals, 2);
    ASSERT_STREQ(t->foreach.axes[0].vals[1], "0.01");
    ASSERT_STREQ(t->foreach.axes[1].name, "depth");
    ASSERT_EQ(t->foreach.axes[1].nvals, 3);
    ASSERT_STREQ(t->foreach.axes[1].vals[2], "8");
    ASSERT_EQ(t->argv[2].parts[0].kind, PRUN_PH_ITEM_KEY);
    ASSERT_STREQ(t->argv[2].parts[0].text, "lr");

    h = task(job, "hosts");
    ASSERT(h != NULL);
    ASSERT_EQ(h->foreach.kind, PRUN_SRC_LIST);
    ASSERT_EQ(h->foreach.nlist, 2);
    it = &h->foreach.list[1];
    /* Keys in the first item's order, whatever order the item uses. */
    ASSERT_EQ(it->nkeys, 2);
    ASSERT_STREQ(it->keys[0], "host");
    ASSERT_STREQ(it->vals[0], "beta");
    ASSERT_STREQ(it->vals[1], "2222");
    ASSERT_STREQ(it->text, "beta 2222");
    ASSERT_STREQ(h->foreach.list[0].text, "alpha 22");
    ASSERT_EQ(h->nneeds, 1);
    ASSERT_EQ(h->needs[0], 0);
    prun__job_free(job);
}

static void test_merge_keys(void)
{
    struct prun_err err;
    struct prun_job *job = NULL;
    const struct prun_task *a, *b;

    ASSERT_EQ(prun__jobfile_load(
                  "tests/fixtures/good/merge.yaml", NULL, 0, &job, &err),
        0);
    a = task(job, "a");
    b = task(job, "b");
    ASSERT(a != NULL && b != NULL);
    ASSERT_EQ(a->timeout_ms, 5 * 60 * 1000);
    ASSERT_EQ(a->retries, 1); /* explicit wins over merged */
    ASSERT_EQ(b->retries, 3);
    ASSERT_STREQ(env_src(a, "LANG"), "C");
    ASSERT_EQ(b->nneeds, 1);
    ASSERT_EQ(b->needs[0], 0);
    prun__job_free(job);

    /* Earlier merge sources win over later ones; none is a duplicate. */
    ASSERT_STREQ(load_msg("x-a: &a {retries: 1, timeout: 1s}\n"
                          "x-b: &b {retries: 2, pool: true}\n"
                          "tasks:\n  t:\n    <<: [*a, *b]\n    run: x\n",
                     &err),
        "OK");
    job = load_str("t.yaml",
        "x-a: &a {retries: 1, timeout: 1s}\nx-b: &b {retries: 2, pool: true}\n"
        "tasks:\n  t:\n    <<: [*a, *b]\n    run: x\n",
        NULL, 0, &err);
    ASSERT(job != NULL);
    ASSERT_EQ(job->tasks[0].retries, 1);
    ASSERT_EQ(job->tasks[0].pool, 1);
    ASSERT_EQ(job->tasks[0].timeout_ms, 1000);
    prun__job_free(job);
}

static void test_glob_lines_rate(void)
{
    struct prun_err err;
    struct prun_job *job = NULL;

    ASSERT_EQ(prun__jobfile_load(
                  "tests/fixtures/good/glob.yaml", NULL, 0, &job, &err),
        0);
    ASSERT_EQ(job->tasks[0].foreach.kind, PRUN_SRC_GLOB);
    ASSERT_STREQ(job->tasks[0].foreach.path, "logs/*.log");
    ASSERT(job->tasks[0].rate == 5.0);
    ASSERT_EQ(job->tasks[1].foreach.kind, PRUN_SRC_LINES);
    ASSERT_STREQ(job->tasks[1].foreach.path, "-");
    prun__job_free(job);

    job = load_str("t.yaml",
        "tasks:\n  a:\n    run: x\n    rate: 100/m\n    needs: []\n"
        "    foreach: {list: [a, 'b c', \"\"]}\n",
        NULL, 0, &err);
    ASSERT(job != NULL);
    ASSERT(job->tasks[0].rate > 1.66 && job->tasks[0].rate < 1.67);
    ASSERT_EQ(job->tasks[0].foreach.nlist, 3);
    ASSERT_STREQ(job->tasks[0].foreach.list[1].text, "b c");
    ASSERT_STREQ(job->tasks[0].foreach.list[2].text, "");
    ASSERT_EQ(job->tasks[0].foreach.list[0].nkeys, 0);
    prun__job_free(job);
}

/* A model with no tasks, for compiling templates by hand. */
static struct prun_job *bare_job(void)
{
    static const char *keys[] = {"day", "user"};
    static const char *vals[] = {"mon", "ann"};
    struct prun_arena *a = prun__arena_new();
    struct prun_job *job = prun__arena_alloc(a, sizeof(*job));

    job->arena = a;
    job->path = "j.yaml";
    job->nvars = 2;
    job->var_keys = keys;
    job->var_vals = vals;
    return job;
}

static int expand(struct prun_job *job, const char *src,
    const struct prun_ctx *ctx, int quote, const char *const *keys,
    size_t nkeys, struct prun_buf *out, struct prun_err *err)
{
    struct prun_tpl t;
    struct prun_pos pos = {1, 1};
    int rc = prun__tpl_compile(job, &t, src, pos, keys, nkeys, err);

    prun__buf_reset(out);
    if (rc < 0)
        return rc;
    return prun__tpl_expand(&t, ctx, quote, out);
}

static void test_tpl_every_placeholder(void)
{
    static const char *const keys[] = {"host", "port"};
    static const char *const vals[] = {"h1", "80"};
    struct prun_item items[1] = {{"h1 80", 2, keys, vals}};
    struct prun_ctx ctx = {"fetch", "R1", 7, 10, 2, items, 1, 0};
    struct prun_job *job = bare_job();
    struct prun_buf b = {0};
    struct prun_err err;

    ASSERT_EQ(expand(job,
                  "{item}|{item.port}|{index}|{count}|{task}|{run_id}|"
                  "{attempt}|{vars.user}|{{x}}|a}b",
                  &ctx, 0, keys, 2, &b, &err),
        0);
    ASSERT_STREQ(b.data, "h1 80|80|7|10|fetch|R1|2|ann|{x}|a}b");

    /* Unknown count (lines from stdin) expands to nothing. */
    ctx.count = -1;
    ASSERT_EQ(expand(job, "[{count}]", &ctx, 0, NULL, 0, &b, &err), 0);
    ASSERT_STREQ(b.data, "[]");

    /* Empty template: an empty, terminated string. */
    ASSERT_EQ(expand(job, "", &ctx, 0, NULL, 0, &b, &err), 0);
    ASSERT(b.data != NULL);
    ASSERT_STREQ(b.data, "");
    prun__buf_free(&b);
    prun__job_free(job);
}

static void test_tpl_parts(void)
{
    struct prun_job *job = bare_job();
    struct prun_tpl t;
    struct prun_pos pos = {3, 9};
    struct prun_err err;

    ASSERT_EQ(prun__tpl_compile(
                  job, &t, "a{{{vars.day}}}-{item}{index}", pos, NULL, 0, &err),
        0);
    ASSERT_EQ(t.nparts, 3);
    ASSERT_EQ(t.parts[0].kind, PRUN_PH_LIT);
    ASSERT_STREQ(t.parts[0].text, "a{mon}-");
    ASSERT_EQ(t.parts[0].len, 7);
    ASSERT_EQ(t.parts[1].kind, PRUN_PH_ITEM);
    ASSERT_EQ(t.parts[2].kind, PRUN_PH_INDEX);
    ASSERT_STREQ(t.src, "a{{{vars.day}}}-{item}{index}");
    ASSERT_EQ(t.pos.line, 3);
    ASSERT_EQ(t.pos.col, 9);
    prun__job_free(job);
}

static void test_tpl_errors(void)
{
    static const char *const keys[] = {"name", "port"};
    struct prun_job *job = bare_job();
    struct prun_tpl t;
    struct prun_pos pos = {4, 10};
    struct prun_err err;

    ASSERT_EQ(prun__tpl_compile(job, &t, "echo {itme}", pos, NULL, 0, &err),
        PRUN_EINVAL);
    ASSERT_STREQ(err.msg,
        "j.yaml:4:15: unknown placeholder '{itme}' (did you mean '{item}'?)");
    ASSERT_EQ(
        prun__tpl_compile(job, &t, "awk '{print $1}'", pos, NULL, 0, &err),
        PRUN_EINVAL);
    ASSERT_STREQ(err.msg, "j.yaml:4:15: unknown placeholder '{print $1}' "
                          "(write '{{' for a literal brace)");
    ASSERT_EQ(
        prun__tpl_compile(job, &t, "x {item", pos, NULL, 0, &err), PRUN_EINVAL);
    ASSERT_STREQ(err.msg, "j.yaml:4:12: unterminated placeholder '{item' "
                          "(write '{{' for a literal brace)");
    /* "{}" is GNU parallel's item now; source 0 does not exist. */
    ASSERT_EQ(prun__tpl_compile(job, &t, "{}", pos, NULL, 0, &err), 0);
    ASSERT_EQ(
        prun__tpl_compile(job, &t, "{0}", pos, NULL, 0, &err), PRUN_EINVAL);
    ASSERT_STREQ(err.msg, "j.yaml:4:10: unknown placeholder '{0}' "
                          "(write '{{' for a literal brace)");
    ASSERT_EQ(prun__tpl_compile(job, &t, "{item.nmae}", pos, keys, 2, &err),
        PRUN_EINVAL);
    ASSERT_STREQ(err.msg, "j.yaml:4:10: unknown placeholder '{item.nmae}' "
                          "(did you mean '{item.name}'?)");
    ASSERT_EQ(prun__tpl_compile(job, &t, "{item.zzzzzz}", pos, keys, 2, &err),
        PRUN_EINVAL);
    ASSERT_STREQ(err.msg, "j.yaml:4:10: unknown placeholder '{item.zzzzzz}' "
                          "(the items have no key 'zzzzzz')");
    ASSERT_EQ(prun__tpl_compile(job, &t, "{item.name}", pos, NULL, 0, &err),
        PRUN_EINVAL);
    ASSERT_CONTAINS(err.msg, "have no keys; use '{item}'");
    ASSERT_EQ(prun__tpl_compile(job, &t, "é{vars.usr}", pos, NULL, 0, &err),
        PRUN_EINVAL);
    ASSERT_STREQ(err.msg, "j.yaml:4:11: undefined variable '{vars.usr}' (did "
                          "you mean '{vars.user}'?)");
    ASSERT_EQ(prun__tpl_compile(job, &t, "{vars.qqqqqqq}", pos, NULL, 0, &err),
        PRUN_EINVAL);
    ASSERT_STREQ(err.msg, "j.yaml:4:10: undefined variable '{vars.qqqqqqq}' "
                          "(define it under 'vars:' or with --set)");
    prun__job_free(job);
}

static void test_tpl_shell_quoting(void)
{
    struct prun_item items[2] = {
        {"a b; rm -rf $(x)", 0, NULL, NULL}, {"it's", 0, NULL, NULL}};
    struct prun_ctx ctx = {"t", "R", 0, 1, 1, items, 1, 0};
    struct prun_job *job = bare_job();
    struct prun_buf b = {0};
    struct prun_err err;

    ASSERT_EQ(expand(job, "echo {item} > out", &ctx, 1, NULL, 0, &b, &err), 0);
    ASSERT_STREQ(b.data, "echo 'a b; rm -rf $(x)' > out");
    /* Without quoting (list form) the item is passed through as is. */
    ASSERT_EQ(expand(job, "{item}", &ctx, 0, NULL, 0, &b, &err), 0);
    ASSERT_STREQ(b.data, "a b; rm -rf $(x)");
    /* Several items: each quoted on its own, joined by one space. */
    ctx.nitems = 2;
    ASSERT_EQ(expand(job, "cat {item}", &ctx, 1, NULL, 0, &b, &err), 0);
    ASSERT_STREQ(b.data, "cat 'a b; rm -rf $(x)' 'it'\\''s'");
    ASSERT_EQ(expand(job, "x{item}y", &ctx, 0, NULL, 0, &b, &err), 0);
    ASSERT_STREQ(b.data, "xa b; rm -rf $(x) it'sy");
    prun__buf_free(&b);
    prun__job_free(job);
}

static void test_tpl_item_keys_chunk(void)
{
    static const char *const keys[] = {"host", "port"};
    static const char *const v1[] = {"h1", "80"};
    static const char *const v2[] = {"h 2", "81"};
    struct prun_item items[2] = {
        {"h1 80", 2, keys, v1}, {"h 2 81", 2, keys, v2}};
    struct prun_ctx ctx = {"t", "R", 0, 1, 1, items, 2, 0};
    struct prun_job *job = bare_job();
    struct prun_buf b = {0};
    struct prun_err err;

    ASSERT_EQ(
        expand(job, "{item.host}:{item.port}", &ctx, 0, keys, 2, &b, &err), 0);
    ASSERT_STREQ(b.data, "h1 h 2:80 81");
    ASSERT_EQ(expand(job, "{item.host}", &ctx, 1, keys, 2, &b, &err), 0);
    ASSERT_STREQ(b.data, "h1 'h 2'");
    prun__buf_free(&b);
    prun__job_free(job);
}

static void test_argv_and_cmdline(void)
{
    struct prun_err err;
    struct prun_item items[3] = {
        {"a b", 0, NULL, NULL}, {"c", 0, NULL, NULL}, {"$(d)", 0, NULL, NULL}};
    struct prun_ctx ctx = {"list", "R9", 4, 12, 1, items, 3, 0};
    struct prun_buf b = {0};
    char **argv;
    struct prun_job *job = load_str("t.yaml",
        "tasks:\n"
        "  list:\n"
        "    run: [grep, -e, \"{item}\", \"--tag={task}-{index}\", "
        "\"{item}\"]\n"
        "    foreach: {list: [x], chunk: 3}\n"
        "  sh:\n"
        "    run: \"grep {item} > out-{index}.txt\"\n"
        "  one:\n"
        "    run: [echo, \"{item}\", \"it's\"]\n",
        NULL, 0, &err);

    ASSERT(job != NULL);
    /* A lone {item} becomes one argument per item of the chunk. */
    argv = prun__task_argv(&job->tasks[0], &ctx);
    ASSERT(argv != NULL);
    ASSERT_STREQ(argv[0], "grep");
    ASSERT_STREQ(argv[1], "-e");
    ASSERT_STREQ(argv[2], "a b");
    ASSERT_STREQ(argv[3], "c");
    ASSERT_STREQ(argv[4], "$(d)");
    ASSERT_STREQ(argv[5], "--tag=list-4");
    ASSERT_STREQ(argv[6], "a b");
    ASSERT_STREQ(argv[8], "$(d)");
    ASSERT(argv[9] == NULL);
    free(argv);

    ASSERT_EQ(prun__task_cmdline(&job->tasks[0], &ctx, &b), 0);
    ASSERT_STREQ(b.data, "grep -e 'a b' c '$(d)' --tag=list-4 'a b' c '$(d)'");

    /* Shell form: /bin/sh -c with each substituted value quoted. */
    ctx.task = "sh";
    argv = prun__task_argv(&job->tasks[1], &ctx);
    ASSERT(argv != NULL);
    ASSERT_STREQ(argv[0], "/bin/sh");
    ASSERT_STREQ(argv[1], "-c");
    ASSERT_STREQ(argv[2], "grep 'a b' c '$(d)' > out-4.txt");
    ASSERT(argv[3] == NULL);
    free(argv);
    prun__buf_reset(&b);
    ASSERT_EQ(prun__task_cmdline(&job->tasks[1], &ctx, &b), 0);
    ASSERT_STREQ(b.data, "grep 'a b' c '$(d)' > out-4.txt");

    /* One item: {item} stays one argument, with its space. */
    ctx.nitems = 1;
    argv = prun__task_argv(&job->tasks[2], &ctx);
    ASSERT(argv != NULL);
    ASSERT_STREQ(argv[1], "a b");
    ASSERT_STREQ(argv[2], "it's");
    ASSERT(argv[3] == NULL);
    free(argv);
    prun__buf_reset(&b);
    ASSERT_EQ(prun__task_cmdline(&job->tasks[2], &ctx, &b), 0);
    ASSERT_STREQ(b.data, "echo 'a b' 'it'\\''s'");
    prun__buf_free(&b);
    prun__job_free(job);
}

static void test_job_check_by_hand(void)
{
    struct prun_task tasks[3];
    size_t n0[] = {1}, n1[] = {2}, n2[] = {0}, bad[] = {7};
    struct prun_job job;
    struct prun_err err;

    memset(&job, 0, sizeof(job));
    memset(tasks, 0, sizeof(tasks));
    job.path = "h.yaml";
    job.tasks = tasks;
    job.ntasks = 3;
    tasks[0] = (struct prun_task){.name = "a", .pos = {2, 3}};
    tasks[1] = (struct prun_task){.name = "b", .pos = {5, 3}};
    tasks[2] = (struct prun_task){.name = "c", .pos = {8, 3}};
    ASSERT_EQ(prun__job_check(&job, &err), 0);

    /* b -> c -> a -> b, reported from a, the first in file order. */
    tasks[1].needs = n1;
    tasks[1].nneeds = 1;
    tasks[2].needs = n2;
    tasks[2].nneeds = 1;
    tasks[0].needs = n0;
    tasks[0].nneeds = 1;
    ASSERT_EQ(prun__job_check(&job, &err), PRUN_EINVAL);
    ASSERT_STREQ(err.msg, "h.yaml:2:3: dependency cycle: a -> b -> c -> a");

    /*
     * a -> c -> b -> c: the search enters the cycle at c, but it is
     * reported from b, its first task in file order.
     */
    n0[0] = 2;
    n1[0] = 2;
    n2[0] = 1;
    ASSERT_EQ(prun__job_check(&job, &err), PRUN_EINVAL);
    ASSERT_STREQ(err.msg, "h.yaml:5:3: dependency cycle: b -> c -> b");

    tasks[0].needs = bad;
    ASSERT_EQ(prun__job_check(&job, &err), PRUN_EINVAL);
    ASSERT_STREQ(
        err.msg, "h.yaml:2:3: task 'a' needs task #7, which is not defined");
    tasks[0].nneeds = 0;
    tasks[2].segs = bad;
    tasks[2].nsegs = 1;
    ASSERT_EQ(prun__job_check(&job, &err), PRUN_EINVAL);
    ASSERT_STREQ(
        err.msg, "h.yaml:8:3: task 'c' uses segment #7, which is not defined");

    prun__job_free(NULL);
}

static void test_long_chain_no_recursion(void)
{
    /* 20000 tasks each needing the next: deep, not cyclic. */
    struct prun_buf y = {0};
    struct prun_err err;
    struct prun_job *job;
    int i, n = 20000;

    prun__buf_adds(&y, "tasks:\n");
    for (i = 0; i < n; i++)
        prun__buf_printf(&y, "  t%d: {run: x%s%d}\n", i,
            i + 1 < n ? ", needs: t" : "", i + 1 < n ? i + 1 : 0);
    job = load_str("chain.yaml", y.data, NULL, 0, &err);
    ASSERT(job != NULL);
    ASSERT_EQ(job->ntasks, (size_t)n);
    ASSERT_EQ(job->tasks[0].needs[0], 1);
    prun__job_free(job);
    prun__buf_free(&y);
}

static void test_error_positions(void)
{
    struct prun_err err;

    ASSERT_STREQ(load_msg("tasks:\n  fetch:\n    run: x\n    cmd: y\n", &err),
        "t.yaml:4:5: unknown key 'cmd' in task 'fetch' (did you mean 'run'?)");
    ASSERT_STREQ(load_msg("jobs: four\ntasks: {a: {run: x}}\n", &err),
        "t.yaml:1:7: 'jobs' must be an integer >= 1, got 'four'");
    ASSERT_STREQ(load_msg("jobs: [4]\ntasks: {a: {run: x}}\n", &err),
        "t.yaml:1:7: 'jobs' must be an integer >= 1, got a sequence");
    ASSERT_STREQ(load_msg("tasks: [a]\n", &err),
        "t.yaml:1:8: 'tasks' must be a mapping, got a sequence");
    ASSERT_STREQ(load_msg("tasks:\n  a:\n    run: x\n    timeout:\n", &err),
        "t.yaml:4:5: missing value for 'timeout'");
    ASSERT_STREQ(
        load_msg(
            "tasks:\n  a:\n    run: x\n    kill_grace: 1 fortnight\n", &err),
        "t.yaml:4:17: 'kill_grace': invalid duration '1 fortnight' (expected "
        "e.g. 500ms, 30s, 10m, 2h, 1d)");
    ASSERT_STREQ(load_msg("tasks:\n  a:\n    run: x\n    timeout: -5s\n", &err),
        "t.yaml:4:14: 'timeout' must not be negative, got '-5s'");
    ASSERT_STREQ(
        load_msg("segments:\n  s: {size: 0}\ntasks: {a: {run: x}}\n", &err),
        "t.yaml:2:13: 'size' must be greater than 0, got '0'");
    ASSERT_STREQ(
        load_msg("segments:\n  s: {size: 1Q}\ntasks: {a: {run: x}}\n", &err),
        "t.yaml:2:13: 'size': invalid size '1Q' (expected e.g. 64KiB, 256MiB, "
        "2GiB)");
    ASSERT_STREQ(load_msg("tasks:\n  a: {run: x, rate: 0/s}\n", &err),
        "t.yaml:2:21: 'rate': invalid rate '0/s' (expected e.g. 20/s, 100/m, "
        "5/h)");
    ASSERT_STREQ(
        load_msg("tasks:\n  a: {run: x, jobs: -99999999999999999999}\n", &err),
        "t.yaml:2:21: 'jobs' must be an integer >= 1, got "
        "'-99999999999999999999'");
    ASSERT_STREQ(
        load_msg("tasks:\n  a: {run: x, retries: 9223372036854775808}\n", &err),
        "t.yaml:2:24: 'retries' must be at most 1000, got "
        "'9223372036854775808'");
    ASSERT_STREQ(load_msg("tasks:\n  a:\n    run: x\n    needs: [b]\n"
                          "  b:\n    run: y\n    needs: [c]\n"
                          "  c:\n    run: z\n    needs: a\n",
                     &err),
        "t.yaml:2:3: dependency cycle: a -> b -> c -> a");
    ASSERT_STREQ(
        load_msg("tasks:\n  a: {run: x}\n  b: {run: y, needs: [x]}\n", &err),
        "t.yaml:3:23: task 'b' needs 'x', which is not defined (did you mean "
        "'a'?)");
    ASSERT_STREQ(
        load_msg("tasks:\n  a: {run: x}\n  b: {run: y, needs: zzzzz}\n", &err),
        "t.yaml:3:22: task 'b' needs 'zzzzz', which is not defined");
    ASSERT_STREQ(load_msg("tasks:\n  ../x: {run: y}\n", &err),
        "t.yaml:2:3: invalid task name '../x': it must not contain '/' or "
        "'..'");
    ASSERT_STREQ(load_msg("tasks:\n  'a b': {run: y}\n", &err),
        "t.yaml:2:3: invalid task name 'a b' (use letters, digits, '.', '_' "
        "and '-', starting with a letter or digit, at most 64)");
    ASSERT_STREQ(load_msg("name: a/b\ntasks: {a: {run: x}}\n", &err),
        "t.yaml:1:7: invalid job name 'a/b': it must not contain '/' or '..'");
    ASSERT_STREQ(load_msg("tasks:\n  a: {run: x}\n  a: {run: y}\n", &err),
        "t.yaml:3:3: duplicate key 'a' (first at line 2)");
    ASSERT_STREQ(load_msg("tasks:\n  a: {run: x, run: y}\n", &err),
        "t.yaml:2:15: duplicate key 'run' (first at line 2)");
    ASSERT_STREQ(load_msg("", &err), "t.yaml:1:1: empty job file");
    ASSERT_STREQ(load_msg("~\n", &err), "t.yaml:1:1: empty job file");
    ASSERT_STREQ(load_msg("hello\n", &err),
        "t.yaml:1:1: the job file must be a mapping (got a string)");
    ASSERT_STREQ(load_msg("[a]\n", &err),
        "t.yaml:1:1: the job file must be a mapping (got a sequence)");
    ASSERT_STREQ(load_msg("tasks: {a: {run: x}}\n--- {}\n", &err),
        "t.yaml:2:1: only one YAML document is allowed");
    ASSERT_STREQ(load_msg("tasks:\n  a: {run: \"\\xc3\\x28 \\0\"}\n", &err),
        "t.yaml:2:12: strings must not contain NUL characters");
    ASSERT_STREQ(load_msg("tasks:\n  a: {run: [x, {y: 1}]}\n", &err),
        "t.yaml:2:16: 'run' elements must be strings, got a mapping");
    ASSERT_STREQ(load_msg("tasks:\n  a: {run: []}\n", &err),
        "t.yaml:2:12: 'run' must not be an empty sequence");
    ASSERT_STREQ(
        load_msg("tasks:\n  a:\n    run: x\n    foreach: {range: [1]}\n", &err),
        "t.yaml:4:22: 'range' must be [from, to] or [from, to, step], got 1 "
        "value");
    ASSERT_STREQ(load_msg("tasks:\n  a:\n    run: x\n    foreach:\n"
                          "      list: [{a: 1, b: 2}, {a: 3}]\n",
                     &err),
        "t.yaml:5:28: 'list' item lacks key 'b' of the first item (line 5)");
    ASSERT_STREQ(load_msg("tasks:\n  a:\n    run: x\n    foreach:\n"
                          "      list: [a, {b: 1}]\n",
                     &err),
        "t.yaml:5:17: 'list' items must all be strings like the first, got a "
        "mapping");
    ASSERT_STREQ(load_msg("tasks:\n  a:\n    run: x\n    foreach:\n"
                          "      matrix: {os: []}\n",
                     &err),
        "t.yaml:5:20: matrix axis 'os' must be a non-empty sequence, got an "
        "empty one");
    ASSERT_STREQ(
        load_msg("tasks:\n  a:\n    run: x\n    foreach: {glob: a, lines: b}\n",
            &err),
        "t.yaml:4:24: 'foreach' has both 'glob' and 'lines'; use only one");
    ASSERT_STREQ(
        load_msg(
            "segments:\n  Bad-Name: {size: 1}\ntasks: {a: {run: x}}\n", &err),
        "t.yaml:2:3: invalid segment name 'Bad-Name' (use letters, digits and "
        "'_', not starting with a digit, at most 64)");
    ASSERT_STREQ(load_msg("segments:\n  s: {file: f, writable: true}\n"
                          "tasks: {a: {run: x}}\n",
                     &err),
        "t.yaml:2:16: file segments are read-only; use size: with writable: "
        "true");
    ASSERT_STREQ(load_msg("tasks:\n  a: {run: x, segments: [s]}\n", &err),
        "t.yaml:2:26: task 'a' uses segment 's', which is not defined (no "
        "'segments:')");
    ASSERT_STREQ(
        load_msg("tasks:\n  a: {run: x}\n  b: {run: y, needs: b}\n", &err),
        "t.yaml:3:22: task 'b' needs itself");
    ASSERT_STREQ(
        load_msg("defaults: {timeot: 1s}\ntasks: {a: {run: x}}\n", &err),
        "t.yaml:1:12: unknown key 'timeot' in 'defaults' (did you mean "
        "'timeout'?)");
    ASSERT_STREQ(load_msg("tasks:\n  a: {run: x, depends_on: [b]}\n", &err),
        "t.yaml:2:15: unknown key 'depends_on' in task 'a' (did you mean "
        "'needs'?)");
    ASSERT_STREQ(
        load_msg("tasks:\n  a: {run: x, foreach: {items: [1]}}\n", &err),
        "t.yaml:2:25: unknown key 'items' in 'foreach' of task 'a' (did you "
        "mean 'list'?)");
    ASSERT_STREQ(load_msg("tasks:\n  a: {run: x, env: {A: [1]}}\n", &err),
        "t.yaml:2:24: 'A' must be a string, got a sequence");
    ASSERT_STREQ(
        load_msg("tasks:\n  a: {run: \"x {item.k}\", foreach: {matrix: "
                 "{kk: [1]}}}\n",
            &err),
        "t.yaml:2:15: unknown placeholder '{item.k}' (did you mean "
        "'{item.kk}'?)");
    ASSERT_STREQ(
        load_msg("tasks:\n  a: {run: x, foreach: {glob: '{item}'}}\n", &err),
        "t.yaml:2:32: 'glob' may only use {vars.NAME} placeholders, not "
        "'{item}'");
}

static void test_yaml_level_errors(void)
{
    struct prun_err err;
    struct prun_buf y = {0};
    int i;

    ASSERT_STREQ(load_msg("tasks:\n\ta: {run: x}\n", &err),
        "t.yaml:2:1: found character that cannot start any token while "
        "scanning for the next token");
    ASSERT_STREQ(load_msg("tasks:\n  a: {run: \"\xc3\x28\"}\n", &err),
        "t.yaml:2:13: invalid UTF-8 (byte 0xc3)");
    ASSERT_STREQ(load_msg("tasks:\n  a: {run: \"\xed\xa0\x80\"}\n", &err),
        "t.yaml:2:13: invalid UTF-8 (byte 0xed)");
    ASSERT_STREQ(load_msg("tasks: {a: *x}\n", &err),
        "t.yaml:1:12: alias '*x' names no anchor defined before it");
    /* An alias inside the node it names is not defined yet. */
    ASSERT_STREQ(load_msg("a: &a [*a]\n", &err),
        "t.yaml:1:8: alias '*a' names no anchor defined before it");
    ASSERT_STREQ(load_msg("tasks:\n  ? [a]\n  : {run: x}\n", &err),
        "t.yaml:2:5: mapping keys must be strings, got a sequence");

    /* Billion laughs: refused at the alias that crosses the bound. */
    prun__buf_adds(&y, "l0: &l0 [x, x, x, x, x, x, x, x, x, x]\n");
    for (i = 1; i < 9; i++)
        prun__buf_printf(&y,
            "l%d: &l%d [*l%d, *l%d, *l%d, *l%d, *l%d, *l%d, *l%d, *l%d, "
            "*l%d, *l%d]\n",
            i, i, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1,
            i - 1);
    prun__buf_adds(&y, "tasks: {a: {run: x}}\n");
    ASSERT_STREQ(load_msg(y.data, &err),
        "t.yaml:5:45: YAML aliases expand to more than 100000 nodes");

    /* 64 levels are fine, 65 are not. */
    prun__buf_reset(&y);
    prun__buf_adds(&y, "x-deep: ");
    for (i = 0; i < 63; i++)
        prun__buf_addc(&y, '[');
    for (i = 0; i < 63; i++)
        prun__buf_addc(&y, ']');
    prun__buf_adds(&y, "\ntasks: {a: {run: x}}\n");
    ASSERT_STREQ(load_msg(y.data, &err), "OK");
    prun__buf_reset(&y);
    prun__buf_adds(&y, "x-deep: ");
    for (i = 0; i < 64; i++)
        prun__buf_addc(&y, '[');
    ASSERT_STREQ(load_msg(y.data, &err),
        "t.yaml:1:72: YAML nesting is deeper than 64 levels");

    /* A shared subtree used a few times is fine. */
    ASSERT_STREQ(load_msg("x-e: &e {A: '1'}\ntasks:\n  a: {run: x, env: *e}\n"
                          "  b: {run: y, env: *e}\n",
                     &err),
        "OK");
    prun__buf_free(&y);
}

static void test_nul_and_size_limits(void)
{
    struct prun_job *job = NULL;
    struct prun_err err;
    static const char nul[] = "tasks:\n  a: {run: x\0y}\n";
    size_t big = ((size_t)16 << 20) + 1;
    char *buf, path[] = "/tmp/prun-test-XXXXXX";
    int fd;

    ASSERT_EQ(prun__jobfile_load_mem(
                  "n.yaml", nul, sizeof(nul) - 1, NULL, 0, &job, &err),
        PRUN_EINVAL);
    ASSERT_STREQ(err.msg, "n.yaml:2:13: job file contains a NUL byte");

    buf = calloc(1, big);
    ASSERT(buf != NULL);
    memset(buf, ' ', big);
    ASSERT_EQ(prun__jobfile_load_mem("b.yaml", buf, big, NULL, 0, &job, &err),
        PRUN_EINVAL);
    free(buf);
    ASSERT_STREQ(err.msg, "b.yaml:1:1: job file is larger than 16 MiB");

    fd = mkstemp(path);
    ASSERT(fd >= 0);
    ASSERT_EQ(ftruncate(fd, (off_t)big), 0);
    close(fd);
    ASSERT_EQ(prun__jobfile_load(path, NULL, 0, &job, &err), PRUN_EINVAL);
    unlink(path);
    ASSERT_CONTAINS(err.msg, ":1:1: job file is larger than 16 MiB");
    ASSERT(strncmp(err.msg, path, strlen(path)) == 0);

    ASSERT_EQ(
        prun__jobfile_load("tests/fixtures/no-such.yaml", NULL, 0, &job, &err),
        PRUN_EINVAL);
    ASSERT_STREQ(err.msg, "cannot read 'tests/fixtures/no-such.yaml': No such "
                          "file or directory");
    ASSERT(job == NULL);
    ASSERT_EQ(prun__jobfile_load("-", NULL, 0, &job, &err), PRUN_EINVAL);
}

/* The first line of a file, without its newline, into buf. */
static int first_line(const char *path, char *buf, size_t n)
{
    FILE *f = fopen(path, "r");
    int ok;

    if (f == NULL)
        return -1;
    ok = fgets(buf, (int)n, f) != NULL;
    fclose(f);
    if (!ok)
        return -1;
    buf[strcspn(buf, "\n")] = '\0';
    return 0;
}

static void test_bad_fixtures(void)
{
    const char *dir = "tests/fixtures/bad";
    DIR *d = opendir(dir);
    struct dirent *e;
    int n = 0, bad = 0;

    ASSERT(d != NULL);
    while ((e = readdir(d)) != NULL) {
        char path[512], errpath[512], want[512], got[600];
        struct prun_job *job = NULL;
        struct prun_err err = {0};
        size_t len = strlen(e->d_name);
        int rc;

        if (len < 6 || strcmp(e->d_name + len - 5, ".yaml") != 0)
            continue;
        n++;
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        snprintf(errpath, sizeof(errpath), "%s/%.*s.err", dir, (int)len - 5,
            e->d_name);
        rc = prun__jobfile_load(path, NULL, 0, &job, &err);
        prun__job_free(job);
        if (first_line(errpath, want, sizeof(want)) < 0) {
            printf("# %s: missing %s\n", path, errpath);
            bad++;
            continue;
        }
        snprintf(got, sizeof(got), "parallelrun: %s", err.msg);
        if (rc != PRUN_EINVAL || strcmp(got, want) != 0) {
            printf("# %s (rc %d)\n#   got:  %s\n#   want: %s\n", path, rc,
                rc == 0 ? "(loaded)" : got, want);
            bad++;
        }
    }
    closedir(d);
    ASSERT(n >= 30);
    ASSERT_EQ(bad, 0);
}

static void test_good_fixtures(void)
{
    const char *dir = "tests/fixtures/good";
    DIR *d = opendir(dir);
    struct dirent *e;
    int n = 0, bad = 0;

    ASSERT(d != NULL);
    while ((e = readdir(d)) != NULL) {
        char path[512];
        struct prun_job *job = NULL;
        struct prun_err err = {0};
        size_t len = strlen(e->d_name);

        if (len < 6 || strcmp(e->d_name + len - 5, ".yaml") != 0)
            continue;
        n++;
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        if (prun__jobfile_load(path, NULL, 0, &job, &err) != 0 ||
            job->ntasks == 0) {
            printf("# %s: %s\n", path, err.msg);
            bad++;
        }
        prun__job_free(job);
    }
    closedir(d);
    ASSERT(n >= 3);
    ASSERT_EQ(bad, 0);
}

int main(void)
{
    RUN(test_full_file);
    RUN(test_defaults_when_unset);
    RUN(test_sets_override_and_add);
    RUN(test_matrix_and_list_of_maps);
    RUN(test_merge_keys);
    RUN(test_glob_lines_rate);
    RUN(test_tpl_every_placeholder);
    RUN(test_tpl_parts);
    RUN(test_tpl_errors);
    RUN(test_tpl_shell_quoting);
    RUN(test_tpl_item_keys_chunk);
    RUN(test_argv_and_cmdline);
    RUN(test_job_check_by_hand);
    RUN(test_long_chain_no_recursion);
    RUN(test_error_positions);
    RUN(test_yaml_level_errors);
    RUN(test_nul_and_size_limits);
    RUN(test_bad_fixtures);
    RUN(test_good_fixtures);
    return unit_done();
}
