/* SPDX-License-Identifier: MIT */
#ifndef PRUN_COORD_STATE_INT_H
#define PRUN_COORD_STATE_INT_H
/*
 * Private to the runner's state writer: shared by its two halves,
 * coord_state.c (the queue of commands, the connection, the replies, the
 * job lock's lease) and coord_record.c (what is written: the run's keys,
 * the heartbeat, instances, counts, the end). Nothing else includes it.
 */
#include "coord_int.h"

/* Given the last reply of a command, unless Redis refused it. */
typedef void (*prun__state_reply_fn)(
    struct prun_state *s, redisReply *r, void *arg);

/* Error replies, by kind (the first word of Redis's message). */
#define ERR_KINDS 8

struct prun_state {
    struct prun_redis_addr addr;
    char url[300];
    char run_id[64];
    char host[128];
    int64_t ttl_ms;
    redisContext *c;
    int want_write;
    int64_t next_retry;
    int64_t next_beat;
    size_t preamble; /* replies owed to AUTH/SELECT on this connection */
    struct cmd *head, *tail; /* unacknowledged, oldest first */
    struct cmd *unsent;      /* first not yet given to this connection */
    size_t queued;
    int cancel;
    long long prog_done, prog_total;
    char **tasks; /* task names, for the done:TASK sets' TTL */
    size_t ntasks;
    char last_error[200];
    int started;
    /* The job lock's lease (prun__state_joblock_hold), if any. */
    struct prun_joblock lock;
    int64_t lock_until;      /* boottime ms; 0: no lock held */
    int64_t lock_next_renew; /* boottime ms */
    int lock_inflight;       /* a renewal awaits its reply */
    int lock_lost; /* 1 taken over, 2 gone from Redis, 3 lease ran out */
    char lock_holder[256]; /* the value found instead of ours */
    prun_state_error_fn on_error;
    void *on_error_ctx;
    unsigned long long refused; /* records Redis answered with an error */
    size_t nkinds;
    struct prun_state_error_kind kinds[ERR_KINDS];
};

/*
 * Hands queued commands to the connection and writes what the socket
 * takes; nothing while disconnected.
 */
void prun__state_send(struct prun_state *s);
/* Starts a connection (AUTH, SELECT, then the whole unacknowledged queue). */
void prun__state_connect(struct prun_state *s);
/* Queues one command; fmt is a hiredis format: %s, %b (pointer, length)... */
void prun__state_enqueue(struct prun_state *s, prun__state_reply_fn fn,
    void *arg, const char *fmt, ...);
/*
 * Queues "MULTI; CMD; PEXPIRE k ttl; EXEC" as one entry: a key is never
 * created without its TTL. cmd is a formatted command (taken over).
 */
void prun__state_enqueue_with_ttl(
    struct prun_state *s, const char *k, int64_t ttl, char *cmd, int cmdlen);

#endif
