/* SPDX-License-Identifier: MIT */
#ifndef PRUN_COORD_H
#define PRUN_COORD_H

/*
 * coord: everything parallelrun does with Redis (docs/redis-schema.md), spread
 * over coord_url.c (addresses), coord.c (connections, the embedded server),
 * coord_state.c and coord_record.c (the runner's pipelined state writer and
 * what it records), coord_read.c (status and runs), coord_sync.c
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
 * Parses "redis://[[user][:pass]@]host[:port][/db]" or
 * "unix://[[user][:pass]@]/path[?db=N]". User and password may be
 * percent-encoded; "user@" alone names an ACL user whose password comes
 * from elsewhere ([redis] password). A password in the URL is kept in
 * a->password (it never reaches argv). Error messages show the URL
 * redacted (prun__redis_url_redact).
 */
int prun__redis_url_parse(
    const char *url, struct prun_redis_addr *a, struct prun_err *err);
/*
 * The URL of a with its user but never its password (for messages and
 * for children, who get the password in a variable of its own).
 */
void prun__redis_url_format(
    const struct prun_redis_addr *a, char *buf, size_t n);
/*
 * url as given, its password (if any) replaced by "***": the one way any
 * message shows a URL that did not go through prun__redis_url_format. It
 * works on URLs that do not parse too.
 */
void prun__redis_url_redact(const char *url, char *buf, size_t n);
/* Nonzero if url carries a non-empty password. */
int prun__redis_url_has_password(const char *url);

/* A blocking connection (CLI commands, children, startup checks). */
struct prun_conn;

/*
 * Connects to url (password, if not NULL, overrides one in the URL), with
 * timeout_ms for the connect and for each reply. AUTH (AUTH user password
 * when the URL names a user) and SELECT are sent as commands. A Redis
 * Cluster node is refused: parallelrun does not follow MOVED redirects.
 * Errors: PRUN_EREDIS "cannot connect to Redis at ADDR: reason", the
 * reason being Redis's own message when it refused.
 */
int prun__conn_open(const char *url, const char *password, int timeout_ms,
    struct prun_conn **out, struct prun_err *err);
/* Connects to PARALLELRUN_REDIS (+ PARALLELRUN_REDIS_PASSWORD). */
int prun__conn_from_env(struct prun_conn **out, struct prun_err *err);
void prun__conn_close(struct prun_conn *c);
/* The address it is connected to, without password. */
const char *prun__conn_url(const struct prun_conn *c);

/*
 * The embedded server (README "Status, resume and cron: Redis"): a private
 * redis-server per user on a unix socket in a 0700 directory, no TCP port, its
 * data saved in the user's state directory. Where it lives depends on the user
 * alone (the passwd home directory), or on an explicit PARALLELRUN_STATE_DIR.
 * Every process using it holds a shared flock on its "users" file; a keeper
 * process stops it (saving) once it has had no user for
 * PARALLELRUN_EMBEDDED_LINGER (default 10 s), including after its last user was
 * killed.
 */
struct prun_embedded;

/*
 * Starts the server (and its keeper) if it is not running, and registers
 * this process as a user. *url_out is its unix:// URL. Call it before
 * mapping anything large: it may fork. Errors: PRUN_EREDIS/PRUN_ESYS with
 * the reason (redis-server missing, socket path, log tail), PRUN_EINVAL
 * for a bad PARALLELRUN_EMBEDDED_LINGER or PARALLELRUN_STATE_DIR.
 */
int prun__embedded_acquire(
    struct prun_embedded **out, char *url_out, size_t n, struct prun_err *err);
/*
 * Can the server keep what it holds? With save_now, first asks it to save
 * in the background (cheap: the server forks). Returns 0 (also for e NULL),
 * or PRUN_ESYS with err saying why not: its last save failed (the reason
 * from its log) or the state directory has no room for its data file.
 */
int prun__embedded_check_saved(
    struct prun_embedded *e, int save_now, struct prun_err *err);
/*
 * Unregisters. With a linger of 0 the last user stops the server itself
 * (saving) before this returns; otherwise its keeper does, later.
 */
void prun__embedded_release(struct prun_embedded *e);

/* The per-user state directory and the embedded server's runtime
 * directory inside it (created 0700). */
int prun__runtime_dir(char *buf, size_t n, struct prun_err *err);
int prun__state_dir(char *buf, size_t n, struct prun_err *err);

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

/*
 * Called once per kind of error reply (OOM, READONLY, NOPERM, WRONGTYPE,
 * MOVED, WRONGPASS...), when the first of that kind arrives, with a
 * message quoting Redis's own ("Redis at URL refused a state write: OOM
 * command not allowed..."). It runs inside the state calls (from the
 * runner's loop): the caller decides how to show it.
 */
typedef void (*prun_state_error_fn)(void *ctx, const char *msg);

struct prun_state_opts {
    const char *url;
    const char *password;
    const char *run_id;
    int64_t key_ttl_ms;
    prun_state_error_fn on_error; /* or NULL */
    void *on_error_ctx;
};

/* Records Redis refused, by kind of error. */
struct prun_state_error_kind {
    char kind[24];   /* "OOM", "READONLY", ... */
    char first[200]; /* Redis's message for the first of them */
    unsigned long long count;
};
/*
 * How many records Redis answered with an error (they are not sent again:
 * the run's state is incomplete), and the kinds (at most 8, *kinds points
 * into s).
 */
unsigned long long prun__state_refused(const struct prun_state *s,
    const struct prun_state_error_kind **kinds, size_t *nkinds);

int prun__state_open(const struct prun_state_opts *o, struct prun_state **out,
    struct prun_err *err);
void prun__state_close(struct prun_state *s);

/* The socket to watch (-1 while disconnected) and whether to watch for
 * writability too. */
int prun__state_fd(const struct prun_state *s);
int prun__state_want_write(const struct prun_state *s);
/*
 * Writes what was recorded since the last call, in as few writes as the
 * socket takes. Recording only queues, so the runner calls this once per
 * turn of its loop rather than once per record.
 */
void prun__state_pump(struct prun_state *s);
/* Records queued but not yet written (counted up to 256). */
size_t prun__state_pending(const struct prun_state *s);
/* Records not yet acknowledged by Redis, written or not. */
size_t prun__state_unacked(const struct prun_state *s);
/* The socket is readable/writable. */
void prun__state_io(struct prun_state *s, int readable, int writable);
/* Called at least every 500 ms: reconnects, heartbeat every 2 s. */
void prun__state_tick(struct prun_state *s, int64_t now);
/* Nonzero once `parallelrun cancel` asked this run to stop. */
int prun__state_cancel_requested(const struct prun_state *s);
/* Sum of the progress children reported (done, total), for display. */
void prun__state_progress(
    const struct prun_state *s, long long *done, long long *total);

struct prun_state_run {
    const char *name, *job;
    unsigned jobs;
    const char *resumed_from; /* or NULL */
};
void prun__state_run_start(struct prun_state *s, const struct prun_state_run *r,
    const char *const *task_names, size_t ntasks);

void prun__state_inst_start(struct prun_state *s, const char *task,
    unsigned long long index, unsigned attempt, long pid, const char *item);

struct prun_state_end {
    const char *task;
    unsigned long long index;
    unsigned attempt;
    int final; /* not going to be retried */
    int succeeded;
    int was_running;  /* it was listed by prun__state_inst_start */
    const char *item; /* the PARALLELRUN_ITEM value (done set) */
    /* for a final failure: */
    const char *kind; /* exit, signal, timeout, exec, cancelled */
    int status;
    const char *reason;
    const char *stderr_tail;
};
void prun__state_inst_end(struct prun_state *s, const struct prun_state_end *e);
/* Marks items of task as done without running them (--resume). */
void prun__state_done(struct prun_state *s, const char *task, const char *item);

/* Absolute counts, written on each heartbeat and at the end. */
struct prun__state_counts {
    long long total;
    unsigned long long succeeded, failed, cancelled, skipped, retried, running;
};
void prun__state_counts(struct prun_state *s,
    const struct prun__state_counts *c, const char *const *task_json,
    size_t ntasks);

/* The run ended: final state ("succeeded", "failed", "stopped"). */
void prun__state_run_end(
    struct prun_state *s, const char *state, int exit_code, int signal);
/*
 * Waits up to timeout_ms for everything queued to be acknowledged,
 * reconnecting as needed. Returns 0, or PRUN_EREDIS with err saying how
 * many records could not be written and why.
 */
int prun__state_flush(
    struct prun_state *s, int64_t timeout_ms, struct prun_err *err);

/*
 * Any command through the writer (argv, binary-safe lens), for the work
 * queue's pool mode (pool_wq.c); and what it needs to name the run's keys.
 */
void prun__state_argv(
    struct prun_state *s, int argc, const char **argv, const size_t *lens);
/* The same, with fn called with the strings of the (array) reply. */
typedef void (*prun__state_list_fn)(void *arg, const char *const *v, size_t n);
void prun__state_argv_list(struct prun_state *s, int argc, const char **argv,
    const size_t *lens, prun__state_list_fn fn, void *arg);
const char *prun__state_run_id(const struct prun_state *s);
int64_t prun__state_ttl(const struct prun_state *s);

/* ---- Run-level operations over a blocking connection (coord_read.c) ---- */

/*
 * The job lock with a lease and a fencing token (coord_joblock.c). The
 * value stored is "RID HOST PID TOKEN SINCE_MS"; TOKEN comes from a
 * counter incremented on every take, so no two holders share a value.
 */
struct prun_joblock {
    char name[128];
    char key[256];
    char value[256];
    unsigned long long token;
    int64_t lease_ms;
    int64_t taken_ms; /* prun__boot_ms() just before the take */
};

/* CLOCK_BOOTTIME in ms: it keeps counting while the machine is suspended. */
int64_t prun__boot_ms(void);

/*
 * Takes job_name's lock for run_id with a lease of lease_ms. Returns 0
 * with *out filled, or PRUN_ELOCKED with err naming the holder's run id,
 * host and pid. A holder on this host whose pid is gone is taken over.
 */
int prun__joblock_acquire(struct prun_conn *c, const char *job_name,
    const char *run_id, int64_t lease_ms, struct prun_joblock *out,
    struct prun_err *err);
/* Releases l if it is still ours. */
void prun__joblock_drop(struct prun_conn *c, const struct prun_joblock *l);
/*
 * Says who holds l's lock now, for a message: "held by run RID since
 * 2026-01-02 03:04:05", "now held by no run", or "Redis unreachable: ...".
 */
void prun__joblock_describe(
    struct prun_conn *c, const struct prun_joblock *l, char *buf, size_t n);

/*
 * The state writer keeps the lock's lease: prun__state_joblock_hold() hands
 * it l; prun__state_joblock_renew() (from the loop, at least every 500 ms)
 * extends the lease every lease/3, one renewal in flight at a time, and
 * learns from the reply whether the value is still ours. The lease is
 * valid until the send time of the last acknowledged renewal plus the
 * lease, on CLOCK_BOOTTIME, which is never later than Redis's own expiry.
 * prun__state_joblock_check() returns 0 while it is valid, else
 * PRUN_ELOCKED with err saying why (for good: a lost lock stays lost).
 */
void prun__state_joblock_hold(
    struct prun_state *s, const struct prun_joblock *l);
void prun__state_joblock_renew(struct prun_state *s, int64_t boot_now);
int prun__state_joblock_check(
    struct prun_state *s, int64_t boot_now, struct prun_err *err);

/* A set of item values, for --resume. */
struct prun_strset;
/* The done items of each task of run rid (tasks in job order). */
int prun__resume_load(struct prun_conn *c, const char *rid,
    const char *job_name, const char *const *tasks, size_t ntasks,
    struct prun_strset ***out, struct prun_err *err);
int prun__strset_has(const struct prun_strset *s, const char *v);
void prun__strset_free(struct prun_strset *s);

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
/* 1 if run rid is recorded (and not expired), 0 if not, or a PRUN_E*. */
int prun__run_exists(
    struct prun_conn *c, const char *rid, struct prun_err *err);
/*
 * The id of the newest recorded run of the job named job_name, in rid;
 * PRUN_ENOTFOUND (err says so) when there is none.
 */
int prun__run_latest_of(struct prun_conn *c, const char *job_name, char *rid,
    size_t n, struct prun_err *err);
/* rid NULL: the newest run. PRUN_ENOTFOUND when there is none. */
int prun__status_load(struct prun_conn *c, const char *rid,
    struct prun_status *st, struct prun_err *err);
void prun__status_free(struct prun_status *st);
/* The newest runs, newest first (at most n). */
int prun__runs_list(struct prun_conn *c, size_t n, struct prun_run_info **out,
    size_t *count, struct prun_err *err);
/* Asks run rid to stop; pid and host tell who owns it. */
int prun__run_cancel(struct prun_conn *c, const char *rid, long *pid,
    char *host, size_t hostlen, struct prun_err *err);

#endif
