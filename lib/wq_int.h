/* SPDX-License-Identifier: MIT */
#ifndef PRUN_WQ_INT_H
#define PRUN_WQ_INT_H
/*
 * What wq.c, wq_pool.c and wq_workers.c share: the queue handle and the
 * reply helpers. Nothing outside those three files includes it.
 */
#include <hiredis.h>

#include "coord_int.h"
#include "wq.h"

struct prun_wq {
    struct prun_conn *c;
    char rid[128];
    char prefix[200]; /* parallelrun:{RID}:wq */
    char meta[220];
    char me[160];
};

/* A string reply copied (malloc'd; "" for another type; NULL no memory). */
char *prun__wq_dup_str(const redisReply *r);
/* An integer or numeric string reply's value, else 0. */
long long prun__wq_int_of(const redisReply *r);
/* The value of field name of an HGETALL reply, else 0. */
long long prun__wq_hget_int(const redisReply *r, const char *name);
/* The script that creates a run's queue (wq.c). */
const char *prun__wq_create_script(void);
/* PRUN_ENOTFOUND: the run's queue is not on this Redis (any more). */
int prun__wq_gone(struct prun_wq *q, struct prun_err *err);

#endif
