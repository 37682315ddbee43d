/* SPDX-License-Identifier: MIT */
#ifndef PRUN_WQ_H
#define PRUN_WQ_H
/*
 * The work queue (docs/work-queue.md): a run's instances as entries of
 * Redis streams, one per task, consumed by one group; claims carry a
 * lease and a fence token; completions are fenced; retries wait in a
 * delayed set; entries whose worker vanished are reclaimed and, past
 * max_deliveries, dead-lettered. Every key lives under the run's hash
 * tag, parallelrun:{RID}:wq:..., and has a TTL.
 *
 * Calls are blocking round trips over a struct prun_conn (its reply
 * timeout applies). None of them prints or retries by itself.
 */
#include <stddef.h>
#include <stdint.h>

#include "coord.h"

#define PRUN_WQ_LEASE_MS       30000
#define PRUN_WQ_MAX_DELIVERIES 3
#define PRUN_WQ_TTL_MS         (7LL * 24 * 3600 * 1000)

/* The set of runs workers serve (members: run ids). */
#define PRUN_WQ_RUNS_KEY "parallelrun:wq:runs"

struct prun_wq;

/*
 * A queue handle for run_id over c (borrowed: it must outlive the handle).
 * consumer names this party in the group (a worker: "host:pid"). Returns
 * 0 or PRUN_ENOMEM / PRUN_EINVAL with err set.
 */
int prun__wq_new(struct prun_conn *c, const char *run_id, const char *consumer,
    struct prun_wq **out, struct prun_err *err);
void prun__wq_free(struct prun_wq *q);

/* What a task of the run allows: global caps, over every worker. */
struct prun_wq_task {
    const char *name;
    unsigned cap; /* attempts at once, 0: none */
    double rate;  /* claims per second, 0: unlimited */
};

/* What workers need to know about the run (stored in its meta hash). */
struct prun_wq_run {
    int64_t ttl_ms;          /* every key's TTL; 0: PRUN_WQ_TTL_MS */
    unsigned max_deliveries; /* 0: PRUN_WQ_MAX_DELIVERIES */
    const char *job;         /* job file, absolute path, or NULL */
    const char *cwd;         /* the runner's directory, or NULL */
    const char *sets;        /* --set VAR=VALUE entries joined by \x1f */
    const char *host;
    const struct prun_wq_task *tasks;
    size_t ntasks;
};

/*
 * Creates (or re-opens, keeping what is there) the run's queue: its meta
 * hash, one stream and group per task, and announces it in
 * PRUN_WQ_RUNS_KEY. Returns 0 or PRUN_EREDIS.
 */
int prun__wq_create(
    struct prun_wq *q, const struct prun_wq_run *r, struct prun_err *err);

/*
 * The run is over: leaves the set of served runs and marks the queue
 * closed (claims get nothing). Its keys expire with their TTL.
 */
int prun__wq_close(struct prun_wq *q, struct prun_err *err);

/* Nonzero while the run's meta hash exists (0 on an error too). */
int prun__wq_exists(struct prun_wq *q, struct prun_err *err);

/* Reads a meta field of the run into buf ("" when absent). */
int prun__wq_meta(struct prun_wq *q, const char *field, char *buf, size_t n,
    struct prun_err *err);

/* One instance to queue. */
struct prun_wq_entry {
    const char *task;
    const char *key;        /* unique in the run: its terminal record's name */
    unsigned max_attempts;  /* >= 1 */
    int64_t retry_delay_ms; /* before the 2nd attempt, doubled after */
    const char *payload;    /* what the worker needs, opaque here */
    size_t payload_len;
};

/* Queues n entries in one pipelined round trip. */
int prun__wq_enqueue(struct prun_wq *q, const struct prun_wq_entry *e, size_t n,
    struct prun_err *err);

/* A claimed entry; strings are owned by the claim (prun__wq_claim_clear). */
struct prun__wq_claim {
    char *task, *id, *key, *payload;
    size_t payload_len;
    uint64_t fence;
    unsigned attempt, max_attempts, deliveries;
    int64_t lease_ms;
};
void prun__wq_claim_clear(struct prun__wq_claim *c);

/*
 * Claims up to want entries with a lease of lease_ms, in one script:
 * promotes retries that are due, reclaims entries whose lease ran out
 * (dead-lettering those delivered max_deliveries times), then reads new
 * entries, within each task's caps. out has room for want claims; *n is
 * how many were filled. Returns 0, PRUN_ENOTFOUND when the run's queue is
 * gone (ended and expired, or Redis lost its data), or PRUN_EREDIS.
 */
int prun__wq_claim(struct prun_wq *q, size_t want, int64_t lease_ms,
    struct prun__wq_claim *out, size_t *n, struct prun_err *err);

/*
 * Renews the leases of n claims, owner- and fence-checked. lost[i] is set
 * to 1 when claim i is no longer ours (it must be stopped), else 0.
 */
int prun__wq_renew(struct prun_wq *q, const struct prun__wq_claim *c, size_t n,
    int *lost, struct prun_err *err);

enum prun_wq_result {
    PRUN_WQ_DONE = 0,  /* the terminal record is written */
    PRUN_WQ_RETRY = 1, /* failed; queued again after its delay */
    PRUN_WQ_STALE = 2, /* the claim was lost: rejected */
    PRUN_WQ_DUP = 3,   /* this completion was already accepted */
};

/*
 * Completes claim c: ok says whether the attempt succeeded, record is its
 * terminal record (a JSON object). Fenced: a claim that is no longer ours
 * is rejected. Returns a prun_wq_result (>= 0), PRUN_ENOTFOUND when the
 * run's queue is gone, or PRUN_EREDIS.
 */
int prun__wq_complete(struct prun_wq *q, const struct prun__wq_claim *c, int ok,
    const char *record, struct prun_err *err);

/* An instance's output, sent back with its terminal record. */
struct prun_wq_output {
    const char *out, *err;
    size_t outlen, errlen;
};

/*
 * prun__wq_complete() that also puts o (NULL: none) on the ends stream
 * with the terminal record, binary-safe, for the run to write out.
 */
int prun__wq_complete_out(struct prun_wq *q, const struct prun__wq_claim *c,
    int ok, const char *record, const struct prun_wq_output *o,
    struct prun_err *err);

/*
 * Hands c back unfinished (a worker draining): another worker may claim it
 * at once, and this one's completion of it would be stale.
 */
int prun__wq_release(
    struct prun_wq *q, const struct prun__wq_claim *c, struct prun_err *err);

/* A terminal record from the run's completion stream. */
struct prun_wq_end {
    char id[48];  /* stream id, to read on from */
    char *key;    /* the instance's key */
    char *record; /* JSON */
    uint64_t fence;
    unsigned attempt;
};
void prun__wq_end_clear(struct prun_wq_end *e);

/*
 * Reads up to max terminal records after stream id after ("0" from the
 * start), without blocking. Returns how many were filled, or < 0.
 */
int prun__wq_read_ends(struct prun_wq *q, const char *after,
    struct prun_wq_end *out, size_t max, struct prun_err *err);

/* Counters of the run's queue. */
struct prun__wq_stats {
    long long enqueued, ok, failed, retried, stale, dup, dead, lost;
    long long done;    /* terminal records */
    long long pending; /* claimed, not completed */
    long long backlog; /* in the streams, not yet claimed */
    long long delayed; /* retries waiting */
};
int prun__wq_stats(
    struct prun_wq *q, struct prun__wq_stats *st, struct prun_err *err);

/* The terminal record of key, malloc'd in *out (NULL when none). */
int prun__wq_record(
    struct prun_wq *q, const char *key, char **out, struct prun_err *err);

/* ---- Sorting Redis's failures ------------------------------------------ */

/* What a failed queue call means for the party that made it. */
enum prun_wq_fault {
    PRUN_WQ_FAULT_CONN = 0, /* no connection or no reply: reconnect, retry */
    PRUN_WQ_FAULT_BUSY = 1, /* BUSY, LOADING, TRYAGAIN, MASTERDOWN: retry */
    PRUN_WQ_FAULT_PERM = 2, /* any other error reply: retrying cannot help */
};

/*
 * Sorts the failure of a call over c that returned rc with e filled: the
 * one place the queue's parties decide whether to ride a failure out or
 * give up. A reply timeout or a broken connection is FAULT_CONN; an error
 * reply is FAULT_BUSY when the server says it cannot answer yet, else
 * FAULT_PERM (OOM, NOPERM, READONLY, WRONGTYPE, a script's error, NOSCRIPT
 * after the reload, a reply of the wrong shape). Other codes (out of
 * memory here, bad input) are FAULT_PERM.
 */
enum prun_wq_fault prun__wq_fault(
    struct prun_conn *c, int rc, const struct prun_err *e);

/*
 * The same for the text of an error reply (the async reader's): BUSY,
 * LOADING, TRYAGAIN or MASTERDOWN is FAULT_BUSY, any other FAULT_PERM.
 */
enum prun_wq_fault prun__wq_fault_reply(const char *msg);

/* ---- Pool mode --------------------------------------------------------- */

/* At most this many items a slot holds at once, and completes per call. */
#define PRUN_WQ_POOL_BATCH 256

/* An item of a worker slot. */
struct prun_wq_pool_item {
    char id[48]; /* its stream entry */
    char *key;   /* "TASK INDEX", malloc'd */
    char *item;  /* its value, malloc'd */
};
void prun__wq_pool_item_clear(struct prun_wq_pool_item *it);

/* One item the slot finished (ok 1, failed 0) or hands back unstarted (3). */
struct prun_wq_pool_fin {
    const char *id;
    int ok;
};

struct prun_wq_pool_req {
    const char *task;
    /*
     * '1' / '2': every item the slot holds is done / failed (the CLI: a
     * slot holds one); 'L': the items in fin are; '0': none (asking again
     * after a lost reply).
     */
    char mark;
    const struct prun_wq_pool_fin *fin;
    size_t nfin; /* <= PRUN_WQ_POOL_BATCH */
    size_t want; /* items to hold (capped by the task's batch:TASK) */
    int64_t lease_ms;
    const char *slot_key, *done_key;
    const char *rec_ok, *rec_fail; /* terminal records */
};

/*
 * A pool worker slot's `next` (the handle's consumer names the slot): in
 * one script, completes what rq says (fenced), then returns every item the
 * slot holds, claiming up to want. Returns 1 with *n items in out (owned:
 * prun__wq_pool_item_clear), 0 when no item is left, 2 when the caller
 * should wait and ask again, PRUN_ENOTFOUND when the queue is gone, or
 * PRUN_EREDIS.
 */
int prun__wq_pool_next(struct prun_wq *q, const struct prun_wq_pool_req *rq,
    struct prun_wq_pool_item *out, size_t max, size_t *n, struct prun_err *err);

/* What became of a pool task's items, at the end of the run. */
struct prun_wq_tally {
    long long fed;  /* items queued, -1 unknown (the feed never finished) */
    long long term; /* items with a terminal record */
    long long ok;   /* ... a successful one */
    size_t nfail;   /* failed items listed below (at most 20) */
    struct {
        unsigned long long index;
        char reason[200];
    } fail[20];
};
/* Returns 0, PRUN_ENOTFOUND when the queue is gone, or PRUN_EREDIS. */
int prun__wq_pool_tally(struct prun_wq *q, const char *task,
    struct prun_wq_tally *t, struct prun_err *err);

/*
 * One line per pool task of run rid, "  TASK: items: N queued, OK done,
 * F failed" (N "?" while still being fed), appended to out ("" for a run
 * without pool tasks). For `parallelrun status`.
 */
int prun__wq_pool_status(struct prun_conn *c, const char *rid,
    struct prun_buf *out, struct prun_err *err);

/*
 * Scripts the runner sends through its pipelined writer (EVAL with the
 * text; KEYS[1] is the meta key, ARGV[1] the prefix):
 * CREATE as prun__wq_create; POOL_END (consumer, task, ok, slot key, done
 * key): a pool worker ended; POOL_RENEW (task, consumer pairs);
 * POOL_TIMEOUT (task, consumer, timeout ms, slot key per worker): returns
 * the consumers whose item timed out (failed, slot emptied).
 */
enum prun__wq_script {
    PRUN__WQ_CREATE,
    PRUN__WQ_POOL_END,
    PRUN__WQ_POOL_RENEW,
    PRUN__WQ_POOL_TIMEOUT,
};
const char *prun__wq_script(enum prun__wq_script which);

/* ---- Workers and the runs they serve --------------------------------- */

/* The ids of the runs announced in PRUN_WQ_RUNS_KEY whose runner is alive
 * (*ids malloc'd). */
int prun__wq_runs(
    struct prun_conn *c, char ***ids, size_t *n, struct prun_err *err);
void prun__wq_strv_free(char **v, size_t n);

/* A worker as `parallelrun workers` shows it. */
struct prun_wq_worker {
    char id[160], host[128];
    char run[1024]; /* the runs it serves, comma-separated */
    long pid;
    unsigned slots, running;
    int64_t beat_ms; /* wall clock of its last heartbeat */
};

/*
 * Writes w's heartbeat: parallelrun:wq:worker:ID (a hash that expires
 * after ttl_ms) and its entry in parallelrun:wq:workers.
 */
int prun__wq_worker_beat(struct prun_conn *c, const struct prun_wq_worker *w,
    int64_t ttl_ms, struct prun_err *err);
/* The worker leaves (its heartbeat is deleted). */
int prun__wq_worker_gone(
    struct prun_conn *c, const char *id, struct prun_err *err);
/* Live workers (*out malloc'd); those whose heartbeat expired are pruned. */
int prun__wq_workers(struct prun_conn *c, struct prun_wq_worker **out,
    size_t *n, struct prun_err *err);

/* The registry of live workers, scored by their last heartbeat (wall ms). */
#define PRUN_WQ_WORKERS_KEY "parallelrun:wq:workers"
/* A worker's heartbeat hash is this prefix and its id. */
#define PRUN_WQ_WORKER_PREFIX "parallelrun:wq:worker:"
/* How long a worker's heartbeat lives unrenewed. */
#define PRUN_WQ_BEAT_TTL_MS 5000

/*
 * Why a worker gave up on a run, as it records it on the run's stream
 * parallelrun:{RID}:wq:gaveup (fields w, h, t, k, r): kind is "host" (this
 * host cannot serve the run: its job file, directory or segments), "redis"
 * (Redis refused or stayed away) or "system".
 */
struct prun_wq_giveup {
    const char *id, *host, *kind, *reason;
};

/*
 * Appends g to run rid's give-up stream, which lives as long as the run's
 * other keys (its meta's ttl). Returns 0, PRUN_ENOTFOUND when the run's
 * queue is gone, or PRUN_EREDIS with Redis's words in err.
 */
int prun__wq_gave_up(struct prun_conn *c, const char *rid,
    const struct prun_wq_giveup *g, struct prun_err *err);

/* ---- One instance of a job as an entry's payload (wq_inst.c) ----------
 *
 * What a worker needs to run an instance of a job it loaded itself: the
 * task's position in the job, {count} and the items. Fields are
 * length-prefixed ("LEN:BYTES"), so any byte may appear in an item.
 */
#include "job.h"

/* Appends the payload of an instance to out. */
int prun__wq_inst_pack(size_t task, long long count,
    const struct prun_item *items, size_t nitems, struct prun_buf *out);

/*
 * Decodes a payload: *items is one malloc'd block (free() it). Returns 0,
 * or PRUN_EINVAL for a malformed payload.
 */
int prun__wq_inst_unpack(const char *p, size_t len, size_t *task,
    long long *count, struct prun_item **items, size_t *nitems,
    struct prun_err *err);

#endif
