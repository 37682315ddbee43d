/* SPDX-License-Identifier: MIT */
#ifndef PRUN_COORD_KEEPER_H
#define PRUN_COORD_KEEPER_H

/*
 * Private to coord.c and coord_keeper.c: the keeper of the embedded
 * redis-server. See coord_keeper.c for what it does.
 */

#include <stdint.h>

#include "util.h"

/* How long the server stays up without users (PARALLELRUN_EMBEDDED_LINGER,
 * default 10 s). PRUN_EINVAL when the variable is not a duration. */
int prun__embedded_linger(int64_t *ms, struct prun_err *err);

/* 1 while a keeper looks after the server of runtime directory dir. */
int prun__keeper_alive(const char *dir);

/*
 * Starts a keeper for runtime directory dir (data in state, socket sock),
 * detached from the caller, and waits until the server answers. With adopt,
 * a server already answers on sock (its keeper died): the keeper looks
 * after that one instead of starting another; bin is the redis-server
 * to run otherwise. The caller holds the
 * directory's start/stop lock. Returns 0, or PRUN_EREDIS/PRUN_ESYS with the
 * reason (redis-server missing, the tail of its log).
 */
int prun__keeper_start(const char *dir, const char *state, const char *sock,
    const char *bin, int adopt, int64_t linger_ms, struct prun_err *err);

/*
 * Asks the server on sock to save its data and exit, and waits until it
 * has. Returns 0 (also when no server answers), or PRUN_EREDIS when it
 * could not save (it then keeps running), with the reason from its log.
 */
int prun__server_stop(
    const char *sock, const char *state, struct prun_err *err);

/*
 * Checks that the server on sock can keep its data on disk: with save_now,
 * it first asks for a background save of what it holds now. Fails with
 * PRUN_ESYS when its last save failed (the reason from its log) or when
 * the state directory has no room for its data file.
 */
int prun__server_check_saved(
    const char *sock, const char *state, int save_now, struct prun_err *err);

#endif
