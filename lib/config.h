/* SPDX-License-Identifier: MIT */
#ifndef PRUN_CONFIG_H
#define PRUN_CONFIG_H

/*
 * Configuration from INI files and the environment (README "Configuration"),
 * lowest to highest precedence: built-in defaults, /etc/parallelrun.ini, the
 * user's file (~/.config/parallelrun/config.ini, or $PARALLELRUN_CONFIG
 * instead), then PARALLELRUN_* variables. The job file and the command line
 * override these later, in cmd/.
 */

#include <stdint.h>

#include "job.h"
#include "util.h"

struct prun_config {
    char *redis_url;       /* [redis] url, PARALLELRUN_REDIS; NULL: embedded */
    char *redis_password;  /* [redis] password, PARALLELRUN_REDIS_PASSWORD */
    int64_t key_ttl_ms;    /* [redis] key_ttl, PARALLELRUN_KEY_TTL; 7d */
    unsigned jobs;         /* [run] jobs, PARALLELRUN_JOBS; 0: CPUs */
    int64_t kill_grace_ms; /* [run] kill_grace, PARALLELRUN_KILL_GRACE; 10s */
    char *results;         /* [run] results, PARALLELRUN_RESULTS; NULL */
    enum prun_hugepages hugepages; /* [segments] hugepages; auto */
    int64_t lock_lease_ms; /* [run] lock_lease, PARALLELRUN_LOCK_LEASE; 30s */
};

/* Fills c with the built-in defaults (no allocation). */
void prun__config_defaults(struct prun_config *c);

/*
 * Merges one INI file into c. A missing file is not an error unless
 * must_exist. Unknown sections or keys, and bad values, are PRUN_EINVAL
 * with "FILE:LINE: message". A file that sets a password and is readable by
 * group or others is refused (PRUN_EINVAL naming the file and its mode).
 */
int prun__config_load_file(struct prun_config *c, const char *path,
    int must_exist, struct prun_err *err);

/* Merges PARALLELRUN_* variables from the environment. */
int prun__config_load_env(struct prun_config *c, struct prun_err *err);

/*
 * The whole chain: defaults, /etc/parallelrun.ini, the user file or
 * $PARALLELRUN_CONFIG (which must exist when set), the environment.
 * etc_path overrides /etc/parallelrun.ini (tests); NULL for the default.
 */
int prun__config_load(
    struct prun_config *c, const char *etc_path, struct prun_err *err);

void prun__config_free(struct prun_config *c);

#endif
