/*
 * signals.c - drain on SIGTERM/SIGINT/SIGUSR1, clean up on the others
 * (see signals.h).
 */
#include "signals.h"

#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

static const int handled[] = {SIGTERM, SIGINT, SIGUSR1, SIGHUP, SIGQUIT, SIGUSR2, SIGBUS};
#define NHANDLED (sizeof handled / sizeof handled[0])
static struct sigaction saved[NHANDLED];
static int installed;

static char tmp_path[4096];
static volatile sig_atomic_t have_tmp, draining, pending;

static void on_signal(int sig)
{
    int drain_sig = sig == SIGTERM || sig == SIGINT || sig == SIGUSR1;
    if (draining && drain_sig && (!pending || sig == SIGUSR1)) {
        if (!pending) pending = sig;
        /* An interrupted run never commits its output: remove it now, while
         * there is time (mpirun may SIGKILL us about a second from now). */
        if (have_tmp) {
            have_tmp = 0;
            unlink(tmp_path);
        }
        return;
    }
    if (have_tmp) unlink(tmp_path);
    signal(sig, SIG_DFL);
    raise(sig);
}

static void install(void)
{
    if (installed) return;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < NHANDLED; i++) sigaction(handled[i], &sa, &saved[i]);
    installed = 1;
}

static void uninstall(void)
{
    if (!installed) return;
    for (size_t i = 0; i < NHANDLED; i++) sigaction(handled[i], &saved[i], NULL);
    installed = 0;
}

void mpm__sig_run_begin(void)
{
    pending = 0;
    draining = 1;
    install();
}

void mpm__sig_run_end(void)
{
    draining = 0;
    if (!have_tmp) uninstall();
}

int mpm__sig_pending(void) { return pending; }

void mpm__sig_guard_tmp(const char *path)
{
    if (!path) {
        have_tmp = 0;
        if (!draining) uninstall();
        return;
    }
    size_t n = strlen(path);
    if (n >= sizeof tmp_path) return;
    have_tmp = 0;
    memcpy(tmp_path, path, n + 1);
    have_tmp = 1;
    install();
}

void mpm__sig_block_thread(void)
{
    sigset_t set;
    sigemptyset(&set);
    for (size_t i = 0; i < NHANDLED; i++)
        if (handled[i] != SIGBUS) sigaddset(&set, handled[i]);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
}
