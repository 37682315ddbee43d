/* SPDX-License-Identifier: MIT */
#ifndef PRUN_EVLOOP_H
#define PRUN_EVLOOP_H
/*
 * The run loop's kernel objects (evloop.c): its epoll set, the signals it
 * takes (blocked, read from a signalfd) and its one timerfd.
 */
#include <signal.h>
#include <stdint.h>

#include "executor.h"
#include "util.h"

struct prun__evloop {
    int epfd, sigfd, timerfd; /* -1 none */
    int64_t armed;            /* the timer's expiry (ms), 0 disarmed */
    sigset_t oldmask;         /* the signal mask before open, restored */
    int masked;               /* oldmask was saved (open got that far) */
};

/* Sets every fd to -1 and the timer disarmed: close is then safe. */
void prun__evloop_init(struct prun__evloop *ev);
/*
 * Makes this process a subreaper that ignores SIGPIPE, blocks SIGCHLD,
 * SIGINT, SIGTERM, SIGHUP, SIGCONT and SIGWINCH, and opens the epoll set,
 * the signalfd for those signals and the timerfd (all non-blocking,
 * close-on-exec). Returns 0, or a negative PRUN_E* with err filled; what
 * was opened is closed by prun__evloop_close either way.
 */
int prun__evloop_open(struct prun__evloop *ev, struct prun_err *err);
/* Closes the fds and puts the signal mask back as open found it. */
void prun__evloop_close(struct prun__evloop *ev);
/*
 * Puts fd on the epoll set (or changes its events if it is there): w's
 * callback is called with the events when they come. Returns 0, or -1
 * with errno.
 */
int prun__evloop_watch(
    struct prun__evloop *ev, int fd, uint32_t events, struct prun__watch *w);
void prun__evloop_unwatch(struct prun__evloop *ev, int fd);
/* The next pending signal's number, or 0 when none is pending. */
int prun__evloop_signal(struct prun__evloop *ev);
/*
 * Arms the timer for at (ms on CLOCK_MONOTONIC; INT64_MAX or 0: disarmed).
 * The kernel is asked only when at changes.
 */
void prun__evloop_arm(struct prun__evloop *ev, int64_t at);
/* The timer fired: reads it, and it is disarmed. */
void prun__evloop_expired(struct prun__evloop *ev);
/*
 * Waits up to timeout_ms (-1: until something happens) and calls the
 * callback of every watch that is ready. Returns how many were, 0 when a
 * signal interrupted the wait, or -1 with errno.
 */
int prun__evloop_dispatch(struct prun__evloop *ev, int timeout_ms);

#endif
