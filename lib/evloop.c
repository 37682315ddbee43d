/* SPDX-License-Identifier: MIT */
/*
 * evloop: the run loop's kernel objects. One epoll set holds every fd the
 * loop waits for, each registered with a watch (a callback), so the loop
 * dispatches events without knowing what an fd is. The signals the loop
 * handles are blocked and read from a signalfd on that set; one timerfd,
 * armed for an absolute time on CLOCK_MONOTONIC, stands for every
 * deadline. The process becomes a subreaper (orphaned grandchildren are
 * reaped by the loop) and ignores SIGPIPE (a closed pipe is an error
 * return, never a death).
 *
 * This module is not the loop and decides nothing: what a signal means,
 * which deadline the timer is armed for and what each fd is are the
 * runner's (runner.c) and its executor's.
 */
#include "evloop.h"

#include <errno.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <unistd.h>

void prun__evloop_init(struct prun__evloop *ev)
{
    memset(ev, 0, sizeof(*ev));
    ev->epfd = ev->sigfd = ev->timerfd = -1;
}

int prun__evloop_open(struct prun__evloop *ev, struct prun_err *err)
{
    sigset_t mask;

    ev->epfd = ev->sigfd = ev->timerfd = -1;
    prctl(PR_SET_CHILD_SUBREAPER, 1);
    signal(SIGPIPE, SIG_IGN);
    sigemptyset(&mask);
    sigaddset(&mask, SIGCHLD);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGHUP);
    sigaddset(&mask, SIGCONT);
    sigaddset(&mask, SIGWINCH);
    if (sigprocmask(SIG_BLOCK, &mask, &ev->oldmask) < 0)
        return prun__err_sys(err, "sigprocmask");
    ev->masked = 1;
    ev->epfd = epoll_create1(EPOLL_CLOEXEC);
    ev->sigfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
    ev->timerfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
    if (ev->epfd < 0 || ev->sigfd < 0 || ev->timerfd < 0)
        return prun__err_sys(err, "cannot set up the event loop");
    return 0;
}

void prun__evloop_close(struct prun__evloop *ev)
{
    if (ev->epfd >= 0)
        close(ev->epfd);
    if (ev->sigfd >= 0)
        close(ev->sigfd);
    if (ev->timerfd >= 0)
        close(ev->timerfd);
    ev->epfd = ev->sigfd = ev->timerfd = -1;
    /* Only a mask open saved: an unset one would unblock every signal. */
    if (ev->masked)
        sigprocmask(SIG_SETMASK, &ev->oldmask, NULL);
    ev->masked = 0;
}

int prun__evloop_watch(
    struct prun__evloop *ev, int fd, uint32_t events, struct prun__watch *w)
{
    struct epoll_event e;

    memset(&e, 0, sizeof(e));
    e.events = events;
    e.data.ptr = w;
    if (epoll_ctl(ev->epfd, EPOLL_CTL_ADD, fd, &e) == 0)
        return 0;
    if (errno != EEXIST)
        return -1;
    return epoll_ctl(ev->epfd, EPOLL_CTL_MOD, fd, &e);
}

void prun__evloop_unwatch(struct prun__evloop *ev, int fd)
{
    epoll_ctl(ev->epfd, EPOLL_CTL_DEL, fd, NULL);
}

int prun__evloop_signal(struct prun__evloop *ev)
{
    struct signalfd_siginfo si;

    if (read(ev->sigfd, &si, sizeof(si)) != (ssize_t)sizeof(si))
        return 0;
    return (int)si.ssi_signo;
}

void prun__evloop_arm(struct prun__evloop *ev, int64_t at)
{
    struct itimerspec its;

    if (at == INT64_MAX)
        at = 0;
    if (at == ev->armed)
        return;
    memset(&its, 0, sizeof(its));
    if (at != 0) {
        its.it_value.tv_sec = at / 1000;
        its.it_value.tv_nsec = (at % 1000) * 1000000;
        if (at <= 0)
            its.it_value.tv_nsec = 1;
    }
    timerfd_settime(ev->timerfd, TFD_TIMER_ABSTIME, &its, NULL);
    ev->armed = at;
}

void prun__evloop_expired(struct prun__evloop *ev)
{
    uint64_t ticks;

    if (read(ev->timerfd, &ticks, sizeof(ticks)) < 0)
        ticks = 0;
    ev->armed = 0;
}

int prun__evloop_dispatch(struct prun__evloop *ev, int timeout_ms)
{
    struct epoll_event evs[64];
    int n = epoll_wait(ev->epfd, evs, 64, timeout_ms);

    if (n < 0)
        return errno == EINTR ? 0 : -1;
    for (int i = 0; i < n; i++) {
        struct prun__watch *w = evs[i].data.ptr;
        w->cb(w, evs[i].events);
    }
    return n;
}
