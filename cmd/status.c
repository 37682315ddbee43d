/* SPDX-License-Identifier: MIT */
/*
 * parallelrun status / runs / cancel: reading and steering runs through
 * Redis, from any terminal, during a run or after it. Without a configured
 * Redis they use the embedded server, starting it from its saved data if
 * it is not running (it lingers a little after its last user), and warn
 * when it cannot save its data.
 */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cmd.h"
#include "config.h"
#include "coord.h"
#include "wq.h"

struct conn_setup {
    struct prun_config cfg;
    struct prun_embedded *embedded;
    struct prun_conn *conn;
};

static int connect_redis(
    struct conn_setup *cs, const char *url_opt, struct prun_err *err)
{
    char url[320];
    const char *url_p;
    int rc;

    memset(cs, 0, sizeof(*cs));
    prun__config_defaults(&cs->cfg);
    rc = prun__config_load(&cs->cfg, NULL, err);
    if (rc < 0)
        return rc;
    url_p = url_opt ? url_opt : cs->cfg.redis_url;
    if (url_p != NULL &&
        (strcmp(url_p, "off") == 0 || strcmp(url_p, "none") == 0))
        return prun__err_set(
            err, PRUN_EINVAL, "Redis is off: there is no run state to read");
    if (url_p == NULL) {
        struct prun_err e;

        rc = prun__embedded_acquire(&cs->embedded, url, sizeof(url), err);
        if (rc < 0)
            return rc;
        url_p = url;
        if (prun__embedded_check_saved(cs->embedded, 0, &e) < 0)
            cmd_warn("%s", e.msg);
    }
    return prun__conn_open(url_p, cs->cfg.redis_password, 5000, &cs->conn, err);
}

static void disconnect_redis(struct conn_setup *cs)
{
    prun__conn_close(cs->conn);
    prun__embedded_release(cs->embedded);
    prun__config_free(&cs->cfg);
}

/*
 * Reads field key of a flat JSON object written by parallelrun itself:
 * a string (unescaped into buf) or a number (copied as text).
 */
static const char *json_get(
    const char *obj, const char *key, char *buf, size_t n)
{
    char pat[80];
    const char *p;
    size_t o = 0;

    buf[0] = '\0';
    snprintf(pat, sizeof(pat), "\"%s\":", key);
    p = strstr(obj, pat);
    if (p == NULL)
        return buf;
    p += strlen(pat);
    if (*p != '"') {
        while (*p && *p != ',' && *p != '}' && o + 1 < n)
            buf[o++] = *p++;
        buf[o] = '\0';
        return buf;
    }
    for (p++; *p && *p != '"' && o + 1 < n; p++) {
        char c = *p;

        if (c == '\\' && p[1]) {
            p++;
            c = *p == 'n' ? '\n' : *p == 't' ? '\t' : *p == 'r' ? '\r' : *p;
            if (*p == 'u') {
                c = '?';
                p += strlen(p) >= 5 ? 4 : 0;
            }
        }
        buf[o++] = c;
    }
    buf[o] = '\0';
    return buf;
}

static const char *fmt_time(long long ms, char *buf, size_t n)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;

    if (ms <= 0) {
        snprintf(buf, n, "-");
        return buf;
    }
    localtime_r(&t, &tm);
    strftime(buf, n, "%Y-%m-%d %H:%M:%S", &tm);
    return buf;
}

static long long elapsed_ms(const struct prun_run_info *in)
{
    long long end = in->ended_ms > 0 ? in->ended_ms : prun__wall_ms();
    return in->started_ms > 0 ? end - in->started_ms : 0;
}

/* The running instances, with their own progress where they report it. */
static void print_running(const struct prun_status *st)
{
    char buf[1100], d[32];
    size_t i, k;

    if (st->nrunning > 0)
        printf("  running:\n");
    for (i = 0; i < st->nrunning; i++) {
        const char *o = st->running[i];
        char task[128], idx[32], pid[32], started[32], item[128];
        const char *prog = NULL;

        json_get(o, "task", task, sizeof(task));
        json_get(o, "index", idx, sizeof(idx));
        json_get(o, "pid", pid, sizeof(pid));
        json_get(o, "started_ms", started, sizeof(started));
        json_get(o, "item", item, sizeof(item));
        snprintf(buf, sizeof(buf), "%s[%s]", task, idx);
        for (k = 0; k < st->nprogress; k++)
            if (strcmp(st->progress_keys[k], buf) == 0)
                prog = st->progress_vals[k];
        printf("    %-20s pid %-7s %8s", buf, pid,
            prun__fmt_duration(prun__wall_ms() - atoll(started), d, sizeof(d)));
        if (prog) {
            long long dn = 0, tot = -1;
            sscanf(prog, "%lld %lld", &dn, &tot);
            if (tot > 0)
                printf("  %lld/%lld (%lld%%)", dn, tot, dn * 100 / tot);
            else
                printf("  %lld done", dn);
        }
        if (item[0])
            printf("  '%s'", item);
        printf("\n");
    }
}

/* The failed instances, each with the last lines of its stderr. */
static void print_failed(const struct prun_status *st)
{
    char buf[1100], b2[64];
    size_t i;

    if (st->nfailed > 0)
        printf("  failed:\n");
    for (i = 0; i < st->nfailed; i++) {
        const char *o = st->failed[i];
        char task[128], idx[32], reason[256], item[128];
        const char *p, *nl;

        json_get(o, "task", task, sizeof(task));
        json_get(o, "index", idx, sizeof(idx));
        json_get(o, "reason", reason, sizeof(reason));
        json_get(o, "item", item, sizeof(item));
        json_get(o, "attempt", b2, sizeof(b2));
        printf("    %s[%s]", task, idx);
        if (item[0])
            printf(" '%s'", item);
        if (atoi(b2) > 1)
            printf(" (attempt %s)", b2);
        printf(": %s\n", reason);
        json_get(o, "stderr_tail", buf, sizeof(buf));
        for (p = buf; *p; p = nl + 1) {
            nl = strchr(p, '\n');
            printf("        %.*s\n", nl ? (int)(nl - p) : (int)strlen(p), p);
            if (nl == NULL)
                break;
        }
    }
}

static void print_status_text(const struct prun_status *st)
{
    const struct prun_run_info *in = &st->run;
    char t1[32], d[32];

    printf("run %s  %s  %s", in->run_id, in->name, in->state);
    if (strcmp(in->state, "running") != 0 && strcmp(in->state, "lost") != 0)
        printf(" (exit %lld)", in->exit_code);
    printf("\n  job %s, host %s, pid %lld, started %s, %s %s\n", in->job,
        in->host, in->pid, fmt_time(in->started_ms, t1, sizeof(t1)),
        strcmp(in->state, "running") == 0 ? "running for" : "took",
        prun__fmt_duration(elapsed_ms(in), d, sizeof(d)));
    if (in->resumed_from[0])
        printf("  resumed from %s\n", in->resumed_from);
    printf("  instances: ");
    if (in->total >= 0)
        printf("%lld total, ", in->total);
    printf("%lld succeeded, %lld failed, %lld running", in->succeeded,
        in->failed, in->running);
    if (in->skipped)
        printf(", %lld not started", in->skipped);
    if (in->retried)
        printf(", %lld retried", in->retried);
    printf("\n");
    if (strcmp(in->state, "lost") == 0)
        printf("  the runner stopped sending heartbeats: it was killed or its "
               "host went away\n");
    print_running(st);
    print_failed(st);
    if (in->redis_note[0])
        printf("  note: %s\n", in->redis_note);
}

static void add_info_json(struct prun_buf *b, const struct prun_run_info *in)
{
    prun__buf_adds(b, "{\"run_id\":");
    prun__buf_add_json(b, in->run_id, strlen(in->run_id));
    prun__buf_adds(b, ",\"name\":");
    prun__buf_add_json(b, in->name, strlen(in->name));
    prun__buf_adds(b, ",\"job\":");
    prun__buf_add_json(b, in->job, strlen(in->job));
    prun__buf_adds(b, ",\"host\":");
    prun__buf_add_json(b, in->host, strlen(in->host));
    prun__buf_adds(b, ",\"state\":");
    prun__buf_add_json(b, in->state, strlen(in->state));
    prun__buf_printf(b,
        ",\"pid\":%lld,\"started_ms\":%lld,\"ended_ms\":%lld,"
        "\"elapsed_ms\":%lld,\"exit_code\":%lld,\"jobs\":%lld,"
        "\"total\":%lld,\"succeeded\":%lld,\"failed\":%lld,"
        "\"cancelled\":%lld,\"skipped\":%lld,\"retried\":%lld,"
        "\"running\":%lld,\"resumed_from\":",
        in->pid, in->started_ms, in->ended_ms, elapsed_ms(in), in->exit_code,
        in->jobs, in->total, in->succeeded, in->failed, in->cancelled,
        in->skipped, in->retried, in->running);
    if (in->resumed_from[0])
        prun__buf_add_json(b, in->resumed_from, strlen(in->resumed_from));
    else
        prun__buf_adds(b, "null");
    prun__buf_addc(b, '}');
}

static void print_status_json(const struct prun_status *st)
{
    struct prun_buf b = {0};
    size_t i;

    prun__buf_adds(&b, "{\"run\":");
    add_info_json(&b, &st->run);
    prun__buf_adds(&b, ",\"tasks\":{");
    for (i = 0; i < st->ntasks; i++) {
        if (i)
            prun__buf_addc(&b, ',');
        prun__buf_add_json(&b, st->task_names[i], strlen(st->task_names[i]));
        prun__buf_addc(&b, ':');
        prun__buf_adds(&b, st->task_json[i]);
    }
    prun__buf_adds(&b, "},\"running\":[");
    for (i = 0; i < st->nrunning; i++)
        prun__buf_printf(&b, "%s%s", i ? "," : "", st->running[i]);
    prun__buf_adds(&b, "],\"failures\":[");
    for (i = 0; i < st->nfailed; i++)
        prun__buf_printf(&b, "%s%s", i ? "," : "", st->failed[i]);
    prun__buf_adds(&b, "],\"progress\":{");
    for (i = 0; i < st->nprogress; i++) {
        long long d = 0, t = -1;

        sscanf(st->progress_vals[i], "%lld %lld", &d, &t);
        if (i)
            prun__buf_addc(&b, ',');
        prun__buf_add_json(
            &b, st->progress_keys[i], strlen(st->progress_keys[i]));
        prun__buf_printf(&b, ":{\"done\":%lld,\"total\":%lld}", d, t);
    }
    prun__buf_adds(&b, "}}\n");
    if (b.data)
        fwrite(b.data, 1, b.len, stdout);
    prun__buf_free(&b);
}

static const struct option status_opts[] = {
    {"watch", no_argument, NULL, 'w'},
    {"json", no_argument, NULL, 'J'},
    {"redis", required_argument, NULL, 'r'},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

/* Shared option loop: --watch (status only), --json, --redis URL. */
static int parse_common(int argc, char **argv, int allow_watch, int *watch,
    int *json, const char **redis, const char **arg)
{
    int c;

    optind = 1;
    opterr = 0;
    *arg = NULL;
    while ((c = getopt_long(argc, argv, "+h", status_opts, NULL)) != -1 ||
           optind < argc) {
        if (c == -1) {
            if (*arg != NULL)
                return cmd_usage(
                    "%s: unexpected argument '%s'", argv[0], argv[optind]);
            *arg = argv[optind++];
            continue;
        }
        switch (c) {
        case 'w':
            if (!allow_watch)
                return cmd_usage("%s: unknown option '--watch'", argv[0]);
            *watch = 1;
            break;
        case 'J':
            *json = 1;
            break;
        case 'r':
            *redis = optarg;
            break;
        case 'h':
            printf("usage: parallelrun status [RUN_ID|JOB] [--watch] [--json]\n"
                   "       parallelrun runs [--json]\n"
                   "       parallelrun cancel RUN_ID\n"
                   "\n"
                   "Exit status of status (with --watch: once the run ends):\n"
                   "  0  the run succeeded, or is still running\n"
                   "  1  the run failed, was stopped or cancelled, or is "
                   "lost;\n"
                   "     or there is no such run\n"
                   "  2  usage error\n"
                   "  3  Redis could not be reached\n");
            return -1;
        default:
            return cmd_usage(
                "%s: unknown option '%s'", argv[0], argv[optind - 1]);
        }
    }
    return 0;
}

/*
 * What status exits with for a run in this state: 0 while it runs or once
 * it succeeded, 1 for every way of not succeeding (failed, stopped,
 * cancelled, lost), so scripts and cron can test it.
 */
static int state_exit(const char *state)
{
    return strcmp(state, "succeeded") == 0 || strcmp(state, "running") == 0
               ? EXIT_OK
               : EXIT_FAILED;
}

/*
 * status ARG: a run id, else a job name (its newest run). A run id that is
 * also a job's name is the run, said so on stderr. Returns 0 with the run
 * id in rid, or a PRUN_E* with err set (PRUN_ENOTFOUND: neither).
 */
static int resolve_run(struct prun_conn *c, const char *arg, char *rid,
    size_t n, struct prun_err *err)
{
    char latest[64];
    int is_run, rc;

    if ((is_run = prun__run_exists(c, arg, err)) < 0)
        return is_run;
    rc = prun__run_latest_of(c, arg, latest, sizeof(latest), err);
    if (rc < 0 && rc != PRUN_ENOTFOUND)
        return rc;
    if (is_run) {
        if (rc == 0)
            cmd_warn("'%s' is a run id and a job name: showing that run (the "
                     "job's latest is %s)",
                arg, latest);
        snprintf(rid, n, "%s", arg);
        return 0;
    }
    if (rc < 0)
        return prun__err_set(err, PRUN_ENOTFOUND,
            "no run '%s' and no run of a job named '%s' in Redis at %s", arg,
            arg, prun__conn_url(c));
    snprintf(rid, n, "%s", latest);
    return 0;
}

int cmd_status(int argc, char **argv)
{
    struct conn_setup cs;
    struct prun_status st;
    struct prun_err e;
    const char *redis = NULL, *rid;
    char resolved[64];
    int watch = 0, json = 0, rc, tty = isatty(1);

    rc = parse_common(argc, argv, 1, &watch, &json, &redis, &rid);
    if (rc != 0)
        return rc < 0 ? EXIT_OK : rc;
    if (connect_redis(&cs, redis, &e) < 0) {
        rc = cmd_fail(&e);
        disconnect_redis(&cs);
        return rc;
    }
    if (rid != NULL &&
        (rc = resolve_run(cs.conn, rid, resolved, sizeof(resolved), &e)) < 0) {
        rc = rc == PRUN_ENOTFOUND ? (cmd_warn("%s", e.msg), 1) : cmd_fail(&e);
        disconnect_redis(&cs);
        return rc;
    }
    if (rid != NULL)
        rid = resolved;
    for (;;) {
        rc = prun__status_load(cs.conn, rid, &st, &e);
        if (rc < 0) {
            rc = rc == PRUN_ENOTFOUND ? (cmd_warn("%s", e.msg), 1)
                                      : cmd_fail(&e);
            break;
        }
        if (watch && tty)
            fputs("\033[H\033[2J", stdout);
        if (json) {
            print_status_json(&st);
        } else {
            struct prun_buf pool = {0};

            print_status_text(&st);
            /* Pool tasks: their items, not their workers (work queue). */
            if (prun__wq_pool_status(cs.conn, st.run.run_id, &pool, NULL) ==
                    0 &&
                pool.data != NULL)
                fputs(pool.data, stdout);
            prun__buf_free(&pool);
        }
        fflush(stdout);
        rc = state_exit(st.run.state);
        if (!watch || strcmp(st.run.state, "running") != 0) {
            prun__status_free(&st);
            break;
        }
        if (rid == NULL) {
            /* Keep watching this run, even if a newer one starts. */
            static char pinned[64];
            snprintf(pinned, sizeof(pinned), "%s", st.run.run_id);
            rid = pinned;
        }
        prun__status_free(&st);
        sleep(1);
    }
    disconnect_redis(&cs);
    return rc;
}

int cmd_runs(int argc, char **argv)
{
    struct conn_setup cs;
    struct prun_run_info *runs = NULL;
    struct prun_err e;
    const char *redis = NULL, *arg;
    size_t n = 0, i;
    int json = 0, watch = 0, rc;

    rc = parse_common(argc, argv, 0, &watch, &json, &redis, &arg);
    if (rc != 0)
        return rc < 0 ? EXIT_OK : rc;
    if (arg != NULL)
        return cmd_usage("runs: unexpected argument '%s'", arg);
    if (connect_redis(&cs, redis, &e) < 0 ||
        prun__runs_list(cs.conn, 50, &runs, &n, &e) < 0) {
        rc = cmd_fail(&e);
        disconnect_redis(&cs);
        return rc;
    }
    if (json) {
        struct prun_buf b = {0};

        prun__buf_addc(&b, '[');
        for (i = 0; i < n; i++) {
            if (i)
                prun__buf_addc(&b, ',');
            add_info_json(&b, &runs[i]);
        }
        prun__buf_adds(&b, "]\n");
        fwrite(b.data, 1, b.len, stdout);
        prun__buf_free(&b);
    } else {
        if (n > 0)
            printf("%-22s %-20s %-10s %-19s %9s %s\n", "RUN", "NAME", "STATE",
                "STARTED", "DURATION", "SUCCEEDED/FAILED/TOTAL");
        for (i = 0; i < n; i++) {
            char t1[32], d[32], tot[32];

            if (runs[i].total >= 0)
                snprintf(tot, sizeof(tot), "%lld", runs[i].total);
            else
                snprintf(tot, sizeof(tot), "?");
            printf("%-22s %-20s %-10s %-19s %9s %lld/%lld/%s\n", runs[i].run_id,
                runs[i].name, runs[i].state,
                fmt_time(runs[i].started_ms, t1, sizeof(t1)),
                prun__fmt_duration(elapsed_ms(&runs[i]), d, sizeof(d)),
                runs[i].succeeded, runs[i].failed, tot);
        }
    }
    free(runs);
    disconnect_redis(&cs);
    return EXIT_OK;
}

int cmd_cancel(int argc, char **argv)
{
    struct conn_setup cs;
    struct prun_err e;
    const char *redis = NULL, *rid;
    char host[128], me[128];
    long pid = 0;
    int json = 0, watch = 0, rc;

    rc = parse_common(argc, argv, 0, &watch, &json, &redis, &rid);
    if (rc != 0)
        return rc < 0 ? EXIT_OK : rc;
    if (rid == NULL)
        return cmd_usage("cancel: missing RUN_ID");
    if (connect_redis(&cs, redis, &e) < 0) {
        rc = cmd_fail(&e);
        disconnect_redis(&cs);
        return rc;
    }
    rc = prun__run_cancel(cs.conn, rid, &pid, host, sizeof(host), &e);
    disconnect_redis(&cs);
    if (rc == PRUN_ENOTFOUND || rc == PRUN_EINVAL) {
        cmd_warn("cancel: %s", e.msg);
        return EXIT_FAILED;
    }
    if (rc < 0)
        return cmd_fail(&e);
    /*
     * The runner also polls for the request, so this is only a shortcut:
     * on this host, tell it at once.
     */
    if (gethostname(me, sizeof(me)) == 0 && strcmp(me, host) == 0 && pid > 0)
        kill((pid_t)pid, SIGINT);
    printf("cancelling run %s (pid %ld on %s)\n", rid, pid, host);
    return EXIT_OK;
}
