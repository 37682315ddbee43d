/* SPDX-License-Identifier: MIT */
#ifndef PRUN_COORD_INT_H
#define PRUN_COORD_INT_H

/*
 * Private to the coord module (coord*.c): the only place hiredis is
 * included. Nothing outside lib/coord*.c may include this header.
 */

#include <hiredis.h>

#include "coord.h"

#define PRUN_SCRIPT_CACHE 16

struct prun_conn {
    redisContext *ctx;
    char url[300];  /* without password */
    int timeout_ms; /* per reply, unless a command sets its own */
    struct {
        const char *script; /* identity: the static string's address */
        char sha[41];
    } scripts[PRUN_SCRIPT_CACHE];
};

/*
 * Runs a command (printf-style, hiredis format) and returns its reply, or
 * NULL with err filled (PRUN_EREDIS "Redis at URL: reason", or the server's
 * error text for an error reply). The caller frees the reply with
 * freeReplyObject().
 */
redisReply *prun__cmd(
    struct prun_conn *c, struct prun_err *err, const char *fmt, ...);
/* The same with an argv vector. */
redisReply *prun__cmdv(struct prun_conn *c, struct prun_err *err, int argc,
    const char **argv, const size_t *argvlen);
/* Sets the reply timeout for the next commands (ms; 0 = none). */
void prun__conn_timeout(struct prun_conn *c, int64_t ms);
/* ms as the struct timeval hiredis takes for its timeouts. */
struct timeval prun__tv_ms(int64_t ms);

/* Runs a Lua script with EVALSHA, loading it with EVAL when not cached. */
redisReply *prun__eval(struct prun_conn *c, struct prun_err *err,
    const char *script, int nkeys, int nargs, const char **args);

/* Progress reports of a run's running instances, as field/value pairs
 * (KEYS: progress hash, running hash); shared by writer and readers. */
extern const char prun__progress_lua[];

/* ---- Shared by coord_sync.c, coord_lock.c and coord_pool.c ---- */

#define KEY_MAX      512 /* a key of a run, "parallelrun:{RID}:..." */
#define NAME_MAX_LEN 200 /* a barrier's, lock's, counter's or queue's name */

int prun__sync_conn_get(struct prun_conn **out, struct prun_err *err);
int prun__sync_redis_fail(struct prun_err *err);
int prun__sync_check_name(
    const char *kind, const char *name, struct prun_err *err);
int prun__sync_key(char *buf, struct prun_err *err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void prun__sync_key_ttl(char *buf, size_t n);
void prun__sync_fmt_wait(int64_t ms, char *buf, size_t n);
void prun__sync_block_secs(int64_t ms, char *buf, size_t n);
int prun__sync_reply_int(const redisReply *r, long long *out);
int prun__sync_bad_reply(
    struct prun_conn *c, const char *what, struct prun_err *err);
int prun__sync_io_fail(struct prun_conn *c, struct prun_err *err);
int prun__sync_env_need(
    const char *var, const char **out, struct prun_err *err);

#endif
