/* SPDX-License-Identifier: MIT */
/*
 * output_progress: the progress line on stderr, redrawn in place and cut
 * to the terminal's width. The width is asked once and again only after
 * SIGWINCH (the runner's signalfd calls prun__output_winch), not at every
 * redraw. It does not decide when to redraw: the runner does.
 */
#include "output_int.h"

#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>

void prun__output_progress(struct prun_output *o, const struct prun_progress *p)
{
    char line[200], eta[32] = "", el[32];
    unsigned long long done = p->done + p->failed;
    struct winsize ws;
    int n;

    if (!o->opts.progress)
        return;
    prun__fmt_duration(p->elapsed_ms, el, sizeof(el));
    if (p->total > 0) {
        int width = 24, fill = (int)((double)done * width / (double)p->total);
        char bar[32];

        if (fill > width)
            fill = width;
        memset(bar, '=', (size_t)fill);
        memset(bar + fill, ' ', (size_t)(width - fill));
        bar[width] = '\0';
        if (done > 0 && done < (unsigned long long)p->total) {
            int64_t left =
                (int64_t)((double)p->elapsed_ms / (double)done *
                          (double)((unsigned long long)p->total - done));
            char d[24];
            snprintf(eta, sizeof(eta), "  ETA %s",
                prun__fmt_duration(left, d, sizeof(d)));
        }
        n = snprintf(line, sizeof(line),
            "[%s] %llu/%lld  %llu failed  %llu running  %s%s", bar, done,
            p->total, p->failed, p->running, el, eta);
    } else {
        n = snprintf(line, sizeof(line),
            "%llu done  %llu failed  %llu running  %s", done, p->failed,
            p->running, el);
    }
    if (n < 0)
        return;
    if (p->child_total > 0 && (size_t)n < sizeof(line))
        snprintf(line + n, sizeof(line) - (size_t)n, "  [running: %lld/%lld]",
            p->child_done, p->child_total);
    else if (p->child_done > 0 && (size_t)n < sizeof(line))
        snprintf(line + n, sizeof(line) - (size_t)n, "  [running: %lld done]",
            p->child_done);
    /*
     * A line wider than the terminal wraps, and "\r" then goes back to the
     * start of its last row only: every redraw would leave a copy above.
     * So it is cut to the width, asked once and again after each SIGWINCH
     * (prun__output_winch), which also redraws at once.
     */
    if (o->cols == 0)
        o->cols =
            ioctl(2, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 1 ? ws.ws_col : -1;
    if (o->cols > 1 && strlen(line) >= (size_t)o->cols)
        line[o->cols - 1] = '\0';
    snprintf(o->progress_line, sizeof(o->progress_line), "\r\033[K%s", line);
    prun__write_all(2, o->progress_line, strlen(o->progress_line));
    o->progress_shown = 1;
}

void prun__output_progress_clear(struct prun_output *o)
{
    if (!o->progress_shown)
        return;
    prun__write_all(2, "\r\033[K", 4);
    o->progress_shown = 0;
}

void prun__output_winch(struct prun_output *o)
{
    if (o != NULL)
        o->cols = 0;
}
