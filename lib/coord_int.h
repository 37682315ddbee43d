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

/* Runs a Lua script with EVALSHA, loading it with EVAL when not cached. */
redisReply *prun__eval(struct prun_conn *c, struct prun_err *err,
    const char *script, int nkeys, int nargs, const char **args);

/* Progress reports of a run's running instances, as field/value pairs
 * (KEYS: progress hash, running hash); shared by writer and readers. */
extern const char prun__progress_lua[];

#endif
