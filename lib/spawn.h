/* SPDX-License-Identifier: MIT */
#ifndef PRUN_SPAWN_H
#define PRUN_SPAWN_H

/*
 * Starting and reaping children. A child gets its own process group (so a
 * signal reaches its grandchildren), dies with the runner (PDEATHSIG), has
 * exactly fds 0-2 plus those listed in keep_fds, and reports exec failure
 * through a close-on-exec pipe instead of a misleading exit status.
 */

#include <sys/types.h>

#include "util.h"

struct prun_spawn_opts {
    const char *path; /* executable: contains '/', or searched in PATH */
    char *const *argv;
    char *const *envp;   /* PATH for the search is taken from here */
    const char *cwd;     /* NULL: inherit */
    int stdin_fd;        /* -1: /dev/null */
    int stdout_fd;       /* required */
    int stderr_fd;       /* required */
    const int *keep_fds; /* inherited at the same number (segments) */
    size_t nkeep;
};

/* Where in the child a failure happened, for the message. */
enum prun_spawn_stage {
    PRUN_STAGE_NONE,
    PRUN_STAGE_CHDIR,
    PRUN_STAGE_DUP,
    PRUN_STAGE_EXEC,
};

/*
 * Starts a child. Returns 0 with *pid set, or: PRUN_ESYS when the runner
 * could not fork (err says why); PRUN_ENOTFOUND when the child started but
 * could not become the program (chdir or exec failed): then *pid is the
 * already-exited child, which the caller reaps as usual, and err says
 * "cannot run 'foo': No such file or directory".
 */
int prun__spawn(
    const struct prun_spawn_opts *o, pid_t *pid, struct prun_err *err);

/*
 * Marks every fd >= 3 close-on-exec, so descriptors the runner inherited
 * never leak into children. Called once at start.
 */
void prun__spawn_init(void);

/*
 * Lists the runner's direct children (orphaned grandchildren land here too,
 * since the runner is a subreaper). Returns the count stored in pids (at
 * most n), or -1.
 */
int prun__children(pid_t *pids, int n);

/*
 * Stops every remaining descendant: SIGKILL to each child and its process
 * group, reaping them, until none is left or timeout_ms passed. Used when
 * the run ends, so nothing it started outlives it.
 */
void prun__kill_descendants(int timeout_ms);

/*
 * The guardian: a small process forked at the start of a run that outlives
 * the runner only to clean up after it. It lives in a session of its own,
 * so nothing aimed at the runner's process group or session (kill -9
 * -PGID, a shell's kill %1, SIGHUP from a closing terminal) reaches it.
 * The runner tells it about each child process group as it starts and
 * ends, and the run's directory of published segments; if the runner dies,
 * even by SIGKILL, the guardian sees EOF on its pipe, sends SIGTERM to
 * every group it knows, SIGKILL 500 ms later, removes the directory and
 * exits. Grandchildren that left their group with setsid() are beyond its
 * reach (the runner's own end-of-run sweep does catch them while it lives).
 *
 * The guardian is the runner's child: the runner learns of its death by
 * SIGCHLD, reaps it, and calls prun__guardian_restart(), then tells the new
 * guardian every group that is still running.
 */
struct prun_guardian;

int prun__guardian_start(struct prun_guardian **out, struct prun_err *err);
void prun__guardian_add(struct prun_guardian *g, pid_t pgid);
void prun__guardian_del(struct prun_guardian *g, pid_t pgid);
/* The directory to remove if the runner dies (kept across restarts). */
int prun__guardian_set_dir(
    struct prun_guardian *g, const char *path, struct prun_err *err);
/*
 * Starts a new guardian in place of one that died (the caller reaped it)
 * and tells it the directory; the caller re-adds the live groups.
 */
int prun__guardian_restart(struct prun_guardian *g, struct prun_err *err);
/* Normal end: the guardian exits without killing anything; reaps it. */
void prun__guardian_stop(struct prun_guardian *g);
pid_t prun__guardian_pid(const struct prun_guardian *g);

#endif
