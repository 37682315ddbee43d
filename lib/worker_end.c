/* SPDX-License-Identifier: MIT */
/*
 * worker_end: the end of an attempt a queue worker ran
 * (docs/work-queue.md): its terminal record (kind, status, the stderr
 * tail), its output read back (worker_out.c), and the fenced completion;
 * during a Redis outage the completion is kept and sent when Redis is
 * back; and the record a worker leaves on a run it gives up on, so that
 * the run can say why instead of waiting. It is not the claiming side
 * (worker.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "worker_int.h"
#include "worker_out.h"

static const char *kind_of(
    const struct prun__attempt *a, int status, int *ok, int *code)
{
    *ok = 0;
    *code = 0;
    if (status == -1 || a->exec_err[0] != '\0')
        return "exec";
    if (WIFEXITED(status)) {
        *code = WEXITSTATUS(status);
        *ok = *code == 0;
    } else {
        *code = WTERMSIG(status);
    }
    if (*ok)
        return "exit";
    if (a->why == PRUN__WHY_TIMEOUT)
        return "timeout";
    if (a->why == PRUN__WHY_CANCEL)
        return "cancelled";
    return WIFEXITED(status) ? "exit" : "signal";
}

static void build_record(struct worker *w, struct wattempt *wa, int status,
    int *okp, struct prun_buf *b)
{
    const struct prun__attempt *a = &wa->a;
    const char *tail = a->cap ? prun__capture_err_tail(a->cap) : "";
    const char *kind;
    int ok, code;

    kind = kind_of(a, status, &ok, &code);
    *okp = ok;
    prun__buf_printf(b,
        "{\"ok\":%s,\"status\":%d,\"kind\":\"%s\",\"code\":%d,"
        "\"attempt\":%u,\"worker\":",
        ok ? "true" : "false", status, kind, code, wa->c.attempt);
    prun__buf_add_json(b, w->id, strlen(w->id));
    prun__buf_adds(b, ",\"ms\":");
    prun__buf_printf(b, "%lld", (long long)(prun__now_ms() - a->start_mono));
    prun__buf_adds(b, ",\"reason\":");
    prun__buf_add_json(b, a->exec_err, strlen(a->exec_err));
    prun__buf_adds(b, ",\"tail\":");
    prun__buf_add_json(b, tail, strlen(tail));
    prun__buf_addc(b, '}');
}

/* Sends one completion to r; 0 when Redis answered (whatever it said). */
static int send_completion(struct worker *w, struct wrun *r,
    const struct prun__wq_claim *c, int ok, const char *rec,
    const struct prun_buf *out, const struct prun_buf *err)
{
    struct prun_wq_output o = {out->data ? out->data : "",
        err->data ? err->data : "", out->len, err->len};
    struct prun_err e;
    int rc;

    if (w->conn == NULL || r->q == NULL)
        return -1;
    rc = prun__wq_complete_out(r->q, c, ok, rec, &o, &e);
    if (prun__worker_is_conn_error(rc)) {
        char what[300];

        snprintf(what, sizeof(what), "completion of %s", c->key);
        /*
         * Refused for good: the completion is dropped, never reported as
         * done; the entry stays pending and is reclaimed after its lease.
         */
        if (prun__worker_redis_fail(w, r, what, rc, &e) == PRUN_WQ_FAULT_PERM)
            return 0;
        return -1;
    }
    prun__worker_redis_ok(w);
    switch (rc) {
    case PRUN_WQ_DONE:
        if (ok)
            w->st->succeeded++;
        else
            w->st->failed++;
        break;
    case PRUN_WQ_RETRY:
        w->st->retried++;
        break;
    case PRUN_WQ_STALE:
        w->st->stale++;
        prun__worker_say(w,
            "run %s: %s: completion rejected as stale (the lease was "
            "lost; another worker owns it)",
            r->rid, c->key);
        break;
    case PRUN_WQ_DUP:
        w->st->dup++;
        prun__worker_say(
            w, "run %s: %s: duplicate completion rejected", r->rid, c->key);
        break;
    default:
        if (rc < 0)
            prun__worker_say(w, "run %s: %s: %s", r->rid, c->key, e.msg);
        break;
    }
    return 0;
}

static void unlink_held(struct worker *w, struct wattempt *wa)
{
    if (wa->prev)
        wa->prev->next = wa->next;
    else
        w->held = wa->next;
    if (wa->next)
        wa->next->prev = wa->prev;
    wa->prev = wa->next = NULL;
    w->running--;
    wa->run->running--;
}

void prun__worker_attempt_ended(void *ctx, struct prun__attempt *a, int status)
{
    struct worker *w = ctx;
    struct wattempt *wa = (struct wattempt *)a;
    struct wrun *r = wa->run;
    struct prun_buf rec = {0}, out = {0}, err = {0};
    struct prun_err e;
    int ok = 0;

    unlink_held(w, wa);
    build_record(w, wa, status, &ok, &rec);
    /* The results files are complete once the capture is finished. */
    if (a->cap)
        prun__capture_finish(a->cap, 0, &e);
    a->cap = NULL;
    /* No task: the payload did not match the job (nothing ran). */
    if (wa->a.task != NULL)
        prun__wout_take(w->resdir, r->rid, wa->a.task->name, wa->inst.index,
            w->id, &out, &err);
    if (!wa->released && rec.data != NULL &&
        send_completion(w, r, &wa->c, ok, rec.data, &out, &err) < 0) {
        struct pending *p = calloc(1, sizeof(*p));

        if (p != NULL) {
            p->c = wa->c;
            memset(&wa->c, 0, sizeof(wa->c));
            p->record = rec.data;
            rec.data = NULL;
            p->out = out;
            p->err = err;
            memset(&out, 0, sizeof(out));
            memset(&err, 0, sizeof(err));
            p->ok = ok;
            p->run = r;
            r->npend++;
            p->next = w->pend;
            w->pend = p;
        }
    }
    prun__buf_free(&rec);
    prun__buf_free(&out);
    prun__buf_free(&err);
    prun__wq_claim_clear(&wa->c);
    free(wa->inst.items);
    free(wa);
    /* A slot is free: look for more at once if there was more. */
    if (r->got_work)
        w->next_claim = r->next_claim = 0;
}

void prun__worker_flush_pending(struct worker *w)
{
    while (w->pend != NULL && w->conn != NULL) {
        struct pending *p = w->pend;

        if (send_completion(
                w, p->run, &p->c, p->ok, p->record, &p->out, &p->err) < 0)
            return;
        w->pend = p->next;
        p->run->npend--;
        prun__wq_claim_clear(&p->c);
        free(p->record);
        prun__buf_free(&p->out);
        prun__buf_free(&p->err);
        free(p);
    }
}

void prun__worker_gave_up(struct worker *w, const char *rid, const char *why)
{
    struct prun_wq_giveup g = {w->id, w->host, "host", why};
    const struct wrun *r = w->runs;
    struct prun_err e;

    if (why == NULL) {
        g.kind = prun__worker_is_conn_error(w->fatal) ? "redis" : "system";
        why = w->have_fatal_err ? w->fatal_err.msg : "the worker failed";
    }
    for (; w->conn != NULL && (rid != NULL || r != NULL); r = r->next) {
        const char *id = rid != NULL ? rid : r->rid;
        char prefix[160];

        /* The run knows its own id: "run RID: " is not repeated. */
        snprintf(prefix, sizeof(prefix), "run %s: ", id);
        g.reason = why;
        if (strncmp(why, prefix, strlen(prefix)) == 0)
            g.reason = why + strlen(prefix);
        if (prun__wq_gave_up(w->conn, id, &g, &e) < 0)
            prun__worker_say(w,
                "run %s: cannot record why this worker gave up: %s", id, e.msg);
        if (rid != NULL)
            break;
    }
}
