/* SPDX-License-Identifier: MIT */
/*
 * parallelrun worker / workers: a queue worker serving the distributed
 * runs of one Redis (lib/worker.c), and the list of live workers.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cmd.h"
#include "config.h"
#include "coord.h"
#include "worker.h"
#include "wq.h"

static const char worker_usage[] =
    "usage: parallelrun worker --redis URL [--slots N] [--lease DUR]\n"
    "                          [--drain-timeout DUR] [--outage DUR]\n"
    "Serves the distributed runs (run --distributed) of the Redis at URL,\n"
    "every live one at once: claims up to N instances at once over all of\n"
    "them (default: the CPU count), round robin over the runs with work,\n"
    "and runs them here; cancelling a run stops only its instances.\n"
    "SIGTERM: no new claims; running instances (of every run) get the\n"
    "drain timeout (default 30s) to finish, then are handed back. --lease\n"
    "(default 30s) is how long a claim survives this worker's silence;\n"
    "--outage (default 60s) how long Redis may be unreachable (or busy).\n"
    "Exit status: 0 stopped by a signal after draining; 2 usage; 3 Redis\n"
    "unreachable for longer than --outage, an error reply to a queue\n"
    "command (OOM, NOPERM, READONLY, ...), or a system failure.\n";

static const char workers_usage[] =
    "usage: parallelrun workers [--redis URL]\n"
    "Lists the live workers: id, host, slots, running, last heartbeat, and\n"
    "the runs each serves (comma-separated).\n";

enum { OPT_REDIS = 256, OPT_SLOTS, OPT_LEASE, OPT_DRAIN, OPT_OUTAGE };

static const struct option worker_opts[] = {
    {"redis", required_argument, NULL, OPT_REDIS},
    {"slots", required_argument, NULL, OPT_SLOTS},
    {"lease", required_argument, NULL, OPT_LEASE},
    {"drain-timeout", required_argument, NULL, OPT_DRAIN},
    {"outage", required_argument, NULL, OPT_OUTAGE},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

static void log_line(void *ctx, const char *msg)
{
    (void)ctx;
    cmd_warn("worker: %s", msg);
}

int cmd_worker(int argc, char **argv)
{
    struct prun_worker_opts o;
    struct prun_worker_stats st;
    struct prun_config cfg;
    struct prun_err e;
    const char *url = NULL;
    long long v;
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    int c, rc;

    memset(&o, 0, sizeof(o));
    o.slots = ncpu > 0 ? (unsigned)ncpu : 1;
    o.lease_ms = PRUN_WQ_LEASE_MS;
    o.drain_ms = 30000;
    o.outage_ms = 60000;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "+h", worker_opts, NULL)) != -1) {
        switch (c) {
        case OPT_REDIS:
            url = optarg;
            break;
        case OPT_SLOTS:
            if (prun__parse_int(optarg, 1, 10000, &v, &e) < 0)
                return cmd_usage("--slots: %s", e.msg);
            o.slots = (unsigned)v;
            break;
        case OPT_LEASE:
            if (prun__parse_duration(optarg, &o.lease_ms, &e) < 0 ||
                o.lease_ms < 300)
                return cmd_usage("--lease: expected a duration of at least "
                                 "300ms, got '%s'",
                    optarg);
            break;
        case OPT_DRAIN:
            if (prun__parse_duration(optarg, &o.drain_ms, &e) < 0)
                return cmd_usage("--drain-timeout: %s", e.msg);
            break;
        case OPT_OUTAGE:
            if (prun__parse_duration(optarg, &o.outage_ms, &e) < 0)
                return cmd_usage("--outage: %s", e.msg);
            break;
        case 'h':
            fputs(worker_usage, stdout);
            return EXIT_OK;
        default:
            return cmd_usage("worker: unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return cmd_usage("worker: unexpected argument '%s'", argv[optind]);
    prun__config_defaults(&cfg);
    if (prun__config_load(&cfg, NULL, &e) < 0)
        return cmd_fail(&e);
    if (url == NULL)
        url = cfg.redis_url;
    if (url == NULL || strcmp(url, "off") == 0) {
        prun__config_free(&cfg);
        return cmd_usage("worker: --redis URL is needed (the server the "
                         "distributed runs use)");
    }
    o.url = url;
    o.password = cfg.redis_password;
    o.kill_grace_ms = cfg.kill_grace_ms;
    o.log = log_line;
    rc = prun__worker_run(&o, &st, &e);
    if (rc == 0)
        cmd_warn("worker: stopped: %llu started, %llu succeeded, %llu failed, "
                 "%llu retried, %llu stale, %llu handed back",
            st.started, st.succeeded, st.failed, st.retried, st.stale,
            st.released);
    prun__config_free(&cfg);
    if (rc < 0)
        return cmd_fail(&e);
    return EXIT_OK;
}

int cmd_workers(int argc, char **argv)
{
    struct prun_config cfg;
    struct prun_conn *conn = NULL;
    struct prun_wq_worker *ws = NULL;
    struct prun_err e;
    const char *url = NULL;
    size_t n = 0, i;
    int c, rc;

    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "+h", worker_opts, NULL)) != -1) {
        if (c == OPT_REDIS) {
            url = optarg;
        } else if (c == 'h') {
            fputs(workers_usage, stdout);
            return EXIT_OK;
        } else {
            return cmd_usage("workers: unknown option '%s'", argv[optind - 1]);
        }
    }
    prun__config_defaults(&cfg);
    if (prun__config_load(&cfg, NULL, &e) < 0)
        return cmd_fail(&e);
    if (url == NULL)
        url = cfg.redis_url;
    if (url == NULL || strcmp(url, "off") == 0) {
        prun__config_free(&cfg);
        return cmd_usage("workers: --redis URL is needed");
    }
    rc = prun__conn_open(url, cfg.redis_password, 5000, &conn, &e);
    if (rc == 0)
        rc = prun__wq_workers(conn, &ws, &n, &e);
    if (rc < 0) {
        prun__conn_close(conn);
        prun__config_free(&cfg);
        return cmd_fail(&e);
    }
    printf("%-32s %-20s %5s %7s %-14s %s\n", "WORKER", "HOST", "SLOTS",
        "RUNNING", "HEARTBEAT", "RUNS");
    for (i = 0; i < n; i++) {
        long long ago = (long long)(prun__wall_ms() - ws[i].beat_ms);
        char when[32];

        snprintf(when, sizeof(when), "%lld.%llds ago", ago / 1000,
            (ago % 1000) / 100);
        printf("%-32s %-20s %5u %7u %-14s %s\n", ws[i].id, ws[i].host,
            ws[i].slots, ws[i].running, when, ws[i].run[0] ? ws[i].run : "-");
    }
    free(ws);
    prun__conn_close(conn);
    prun__config_free(&cfg);
    return EXIT_OK;
}
