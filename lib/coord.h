/* SPDX-License-Identifier: MIT */
#ifndef PRUN_COORD_H
#define PRUN_COORD_H

/*
 * coord: everything parallelrun does with Redis (DESIGN §6), spread over
 * coord.c (addresses, connections, the embedded server), coord_state.c
 * (the runner's pipelined state writer, status and runs), coord_sync.c
 * (barriers, locks, counters, queues, progress, pool items). Only these
 * files include hiredis, through coord_int.h. The key schema is in
 * docs/redis-schema.md.
 */

#include <stdint.h>
#include <sys/types.h>

#include "util.h"

/* A parsed Redis address. */
struct prun_redis_addr {
    int is_unix;
    char path[108]; /* unix socket */
    char host[256];
    int port;
    int db;
    char user[64];
    char password[256];
};

/*
 * Parses "redis://[user:pass@]host[:port][/db]" or "unix:///path[?db=N]".
 * A password in the URL is kept in a->password (it never reaches argv).
 */
int prun_redis_url_parse(
    const char *url, struct prun_redis_addr *a, struct prun_err *err);
/* The URL of a without its password (for messages and children). */
void prun_redis_url_format(
    const struct prun_redis_addr *a, char *buf, size_t n);

/* A blocking connection (CLI commands, children, startup checks). */
struct prun_conn;

/*
 * Connects to url (password, if not NULL, overrides one in the URL), with
 * timeout_ms for the connect and for each reply. AUTH and SELECT are sent
 * as commands. Errors: PRUN_EREDIS "cannot connect to Redis at ADDR:
 * reason".
 */
int prun_conn_open(const char *url, const char *password, int timeout_ms,
    struct prun_conn **out, struct prun_err *err);
/* Connects to PARALLELRUN_REDIS (+ PARALLELRUN_REDIS_PASSWORD). */
int prun_conn_from_env(struct prun_conn **out, struct prun_err *err);
void prun_conn_close(struct prun_conn *c);
/* The address it is connected to, without password. */
const char *prun_conn_url(const struct prun_conn *c);

/*
 * The embedded server: a private redis-server per user on a unix socket in
 * a 0700 directory, no TCP port, its data saved in the user's state
 * directory. Where it lives depends on the user alone (the passwd home
 * directory), or on an explicit PARALLELRUN_STATE_DIR. Every process using
 * it holds a shared flock on its "users" file; a keeper process stops it
 * (saving) once it has had no user for PARALLELRUN_EMBEDDED_LINGER
 * (default 10 s), including after its last user was killed.
 */
struct prun_embedded;

/*
 * Starts the server (and its keeper) if it is not running, and registers
 * this process as a user. *url_out is its unix:// URL. Call it before
 * mapping anything large: it may fork. Errors: PRUN_EREDIS/PRUN_ESYS with
 * the reason (redis-server missing, socket path, log tail), PRUN_EINVAL
 * for a bad PARALLELRUN_EMBEDDED_LINGER or PARALLELRUN_STATE_DIR.
 */
int prun_embedded_acquire(
    struct prun_embedded **out, char *url_out, size_t n, struct prun_err *err);
/*
 * Can the server keep what it holds? With save_now, first asks it to save
 * in the background (cheap: the server forks). Returns 0 (also for e NULL),
 * or PRUN_ESYS with err saying why not: its last save failed (the reason
 * from its log) or the state directory has no room for its data file.
 */
int prun_embedded_check_saved(
    struct prun_embedded *e, int save_now, struct prun_err *err);
/*
 * Unregisters. With a linger of 0 the last user stops the server itself
 * (saving) before this returns; otherwise its keeper does, later.
 */
void prun_embedded_release(struct prun_embedded *e);

/* The per-user state directory and the embedded server's runtime
 * directory inside it (created 0700). */
int prun_runtime_dir(char *buf, size_t n, struct prun_err *err);
int prun_state_dir(char *buf, size_t n, struct prun_err *err);

/* ---- The runner's state writer (coord_state.c) ---------------------------
 *
 * Pipelined and non-blocking: records are formatted and queued at once and
 * written when the socket is writable, so a slow or absent Redis never
 * delays a spawn. Every command it sends is idempotent (HSET, SADD, HDEL,
 * PEXPIRE, SET), and a command leaves the queue only when its reply came:
 * after a reconnect the unacknowledged ones are sent again and nothing is
 * lost or counted twice.
 */
struct prun_state;

struct prun_state_opts {
    const char *url;
    const char *password;
    const char *run_id;
    int64_t key_ttl_ms;
    const char *job_name; /* for the job lock, or NULL when lock: false */
};

int prun_state_open(const struct prun_state_opts *o, struct prun_state **out,
    struct prun_err *err);
void prun_state_close(struct prun_state *s);

/* The socket to watch (-1 while disconnected) and whether to watch for
 * writability too. */
int prun_state_fd(const struct prun_state *s);
int prun_state_want_write(const struct prun_state *s);
/*
 * Writes what was recorded since the last call, in as few writes as the
 * socket takes. Recording only queues, so the runner calls this once per
 * turn of its loop rather than once per record.
 */
void prun_state_pump(struct prun_state *s);
/* Records queued but not yet written (counted up to 256). */
size_t prun_state_pending(const struct prun_state *s);
/* The socket is readable/writable. */
void prun_state_io(struct prun_state *s, int readable, int writable);
/* Called at least every 500 ms: reconnects, heartbeat every 2 s. */
void prun_state_tick(struct prun_state *s, int64_t now);
/* Nonzero once `parallelrun cancel` asked this run to stop. */
int prun_state_cancel_requested(const struct prun_state *s);
/* Sum of the progress children reported (done, total), for display. */
void prun_state_progress(
    const struct prun_state *s, long long *done, long long *total);

struct prun_state_run {
    const char *name, *job;
    unsigned jobs;
    const char *resumed_from; /* or NULL */
};
void prun_state_run_start(struct prun_state *s, const struct prun_state_run *r,
    const char *const *task_names, size_t ntasks);

void prun_state_inst_start(struct prun_state *s, const char *task,
    unsigned long long index, unsigned attempt, long pid, const char *item);

struct prun_state_end {
    const char *task;
    unsigned long long index;
    unsigned attempt;
    int final; /* not going to be retried */
    int succeeded;
    int was_running;  /* it was listed by prun_state_inst_start */
    const char *item; /* the PARALLELRUN_ITEM value (done set) */
    /* for a final failure: */
    const char *kind; /* exit, signal, timeout, exec, cancelled */
    int status;
    const char *reason;
    const char *stderr_tail;
};
void prun_state_inst_end(struct prun_state *s, const struct prun_state_end *e);
/* Marks items of task as done without running them (--resume). */
void prun_state_done(struct prun_state *s, const char *task, const char *item);

/* Absolute counts, written on each heartbeat and at the end. */
struct prun_state_counts {
    long long total;
    unsigned long long succeeded, failed, cancelled, skipped, retried, running;
};
void prun_state_counts(struct prun_state *s, const struct prun_state_counts *c,
    const char *const *task_json, size_t ntasks);

/* The run ended: final state ("succeeded", "failed", "stopped"). */
void prun_state_run_end(
    struct prun_state *s, const char *state, int exit_code, int signal);
/*
 * Waits up to timeout_ms for everything queued to be acknowledged,
 * reconnecting as needed. Returns 0, or PRUN_EREDIS with err saying how
 * many records could not be written and why.
 */
int prun_state_flush(
    struct prun_state *s, int64_t timeout_ms, struct prun_err *err);

/*
 * Pool mode: queue items for task (entries "INDEX\tITEM"); fed: all are
 * queued, count of them.
 */
void prun_state_pool_push(struct prun_state *s, const char *task,
    unsigned long long index, const char *item);
void prun_state_pool_fed(
    struct prun_state *s, const char *task, unsigned long long count);
/*
 * Worker W (attempt A) of task ended: ok → its current item is done, else
 * it goes back to the front of the queue.
 */
void prun_state_pool_worker_end(struct prun_state *s, const char *task,
    unsigned long long worker, unsigned attempt, int ok);

/* ---- Run-level operations over a blocking connection (coord_state.c) ---- */

/*
 * Takes the job lock of job_name for run_id (DESIGN: lock: true). Returns
 * 0, or PRUN_ELOCKED with err naming the holder's run id, host and pid.
 */
int prun_joblock_take(struct prun_conn *c, const char *job_name,
    const char *run_id, struct prun_err *err);
void prun_joblock_release(
    struct prun_conn *c, const char *job_name, const char *run_id);

/* A set of item values, for --resume. */
struct prun_strset;
/* The done items of each task of run rid (tasks in job order). */
int prun_resume_load(struct prun_conn *c, const char *rid, const char *job_name,
    const char *const *tasks, size_t ntasks, struct prun_strset ***out,
    struct prun_err *err);
int prun_strset_has(const struct prun_strset *s, const char *v);
void prun_strset_free(struct prun_strset *s);

/* What status and runs show. Strings are owned by the struct. */
struct prun_run_info {
    char run_id[64], name[128], job[512], host[128], state[16];
    long long pid, started_ms, ended_ms, exit_code, total, succeeded, failed,
        cancelled, skipped, retried, running, jobs, signal;
    char resumed_from[64], redis_note[256];
};
struct prun_status {
    struct prun_run_info run;
    size_t nrunning, nfailed, nprogress, ntasks;
    char **running;       /* JSON objects (schema: running) */
    char **failed;        /* JSON objects (schema: failed) */
    char **progress_keys; /* TASK[INDEX] */
    char **progress_vals; /* "DONE TOTAL" */
    char **task_names;
    char **task_json;
};
/* rid NULL: the newest run. PRUN_ENOTFOUND when there is none. */
int prun_status_load(struct prun_conn *c, const char *rid,
    struct prun_status *st, struct prun_err *err);
void prun_status_free(struct prun_status *st);
/* The newest runs, newest first (at most n). */
int prun_runs_list(struct prun_conn *c, size_t n, struct prun_run_info **out,
    size_t *count, struct prun_err *err);
/* Asks run rid to stop; pid and host tell who owns it. */
int prun_run_cancel(struct prun_conn *c, const char *rid, long *pid, char *host,
    size_t hostlen, struct prun_err *err);

#endif
