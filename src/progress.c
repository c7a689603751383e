/*
 * progress.c - rank 0's progress report (see progress.h).
 */
#include "progress.h"

#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "util.h"

#define BAR_INTERVAL 0.2
#define BAR_WIDTH 24

/* Non-zero while a bar is drawn on standard error (read by mpm__log). */
int mpm__progress_bar_shown;

void mpm__progress_erase(void)
{
    if (!mpm__progress_bar_shown) return;
    fputs("\r\033[K", stderr);
    fflush(stderr);
    mpm__progress_bar_shown = 0;
}

static void human(char *dst, size_t n, double v, int integers)
{
    static const char *const bu[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
    static const char *const iu[] = {"", "K", "M", "G", "T", "P"};
    double base = integers ? 1000.0 : 1024.0;
    int u = 0;
    while (v >= base && u < 5) {
        v /= base;
        u++;
    }
    if (integers)
        snprintf(dst, n, u ? "%.1f%s" : "%.0f%s", v, iu[u]);
    else
        snprintf(dst, n, u ? "%.1f %s" : "%.0f %s", v, bu[u]);
}

static void duration(char *dst, size_t n, double s)
{
    if (s < 0) s = 0;
    unsigned long t = (unsigned long)(s + 0.5);
    if (t >= 3600)
        snprintf(dst, n, "%luh%02lum%02lus", t / 3600, t / 60 % 60, t % 60);
    else if (t >= 60)
        snprintf(dst, n, "%lum%02lus", t / 60, t % 60);
    else
        snprintf(dst, n, "%lus", t);
}

void mpm__progress_format(char *dst, size_t n, int bar, uint64_t chunks, uint64_t done,
                          uint64_t total, int integers, double elapsed)
{
    char d[32], t[32], r[32], eta[32], b[BAR_WIDTH + 3] = "";
    human(d, sizeof d, (double)done, integers);
    human(t, sizeof t, (double)total, integers);
    double rate = elapsed > 0 ? (double)done / elapsed : 0;
    char rh[24];
    human(rh, sizeof rh, rate, integers);
    snprintf(r, sizeof r, "%s/s", rh);
    if (total && done <= total) {
        double frac = (double)done / (double)total;
        if (bar) {
            int fill = (int)(frac * BAR_WIDTH);
            b[0] = '[';
            for (int i = 0; i < BAR_WIDTH; i++) b[1 + i] = i < fill ? '#' : '.';
            b[BAR_WIDTH + 1] = ']';
            b[BAR_WIDTH + 2] = 0;
        }
        if (rate > 0 && done < total)
            duration(eta, sizeof eta, (double)(total - done) / rate);
        else
            snprintf(eta, sizeof eta, done == total ? "0s" : "?");
        snprintf(dst, n, "%s%s%llu chunks, %s / %s %s(%.1f%%), %s, ETA %s", b, bar ? " " : "",
                 (unsigned long long)chunks, d, t, integers ? "integers " : "", 100.0 * frac, r,
                 eta);
    } else {
        snprintf(dst, n, "%llu chunks, %s %sdone, %s", (unsigned long long)chunks, d,
                 integers ? "integers " : "", r);
    }
}

void mpm__progress_init(mpm_progress_t *p, int choice, int quiet, int tty, double interval,
                        uint64_t total, int integers)
{
    memset(p, 0, sizeof *p);
    p->total = total;
    p->integers = integers;
    p->t0 = mpm__now();
    if (choice == MPM_PROGRESS_OFF || (choice == MPM_PROGRESS_AUTO && quiet)) return;
    p->mode = tty ? MPM_PMODE_BAR : MPM_PMODE_LINES;
    p->interval = tty ? BAR_INTERVAL : interval;
    p->next = p->t0 + p->interval;
}

void mpm__progress_tick(mpm_progress_t *p, uint64_t chunks, uint64_t done, int force)
{
    if (p->mode == MPM_PMODE_NONE) return;
    double now = mpm__now();
    if (!force && now < p->next) return;
    p->next = now + p->interval;
    char text[256];
    mpm__progress_format(text, sizeof text, p->mode == MPM_PMODE_BAR, chunks, done, p->total,
                         p->integers, now - p->t0);
    if (p->mode == MPM_PMODE_BAR) {
        fprintf(stderr, "\r\033[K%s", text);
        mpm__progress_bar_shown = 1;
    } else {
        struct timespec ts;
        struct tm tm;
        clock_gettime(CLOCK_REALTIME, &ts);
        gmtime_r(&ts.tv_sec, &tm);
        fprintf(stderr, "mpimap: progress %04d-%02d-%02dT%02d:%02d:%02dZ: %s\n", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, text);
    }
    fflush(stderr);
}
