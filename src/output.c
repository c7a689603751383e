/*
 * output.c - ordered, atomic output (see output.h).
 */
#include "output.h"

#include <errno.h>
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "signals.h"

/* Signals: while the temporary file exists, signals.c removes it when the
 * process is signalled (see signals.h). */

/*
 * Temporary files are named DIR/.NAME.mpimap-HOST-PID-XXXXXX. A run killed
 * with SIGKILL (or a lost node) cannot remove its own; the next run writing
 * NAME removes those made on this host by a process that no longer exists.
 */
static void remove_stale(const char *dir, const char *base, const char *host)
{
    DIR *d = opendir(dir);
    if (!d) return;
    size_t pl = strlen(base) + 9; /* "." base ".mpimap-" */
    struct dirent *e;
    while ((e = readdir(d))) {
        const char *n = e->d_name;
        size_t len = strlen(n);
        if (len < pl + 9 || n[0] != '.' || strncmp(n + 1, base, strlen(base)) ||
            strncmp(n + 1 + strlen(base), ".mpimap-", 8) || n[len - 7] != '-')
            continue;
        /* HOST-PID between the prefix and "-XXXXXX" */
        const char *hp = n + pl, *end = n + len - 7, *dash = end;
        while (dash > hp && dash[-1] != '-') dash--;
        if (dash <= hp + 1 || (size_t)(dash - 1 - hp) != strlen(host) ||
            strncmp(hp, host, strlen(host)))
            continue;
        char *stop = NULL;
        long pid = strtol(dash, &stop, 10);
        if (stop != end || pid <= 0 || (kill((pid_t)pid, 0) == 0 || errno != ESRCH)) continue;
        char path[4096];
        if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, n) < sizeof path) unlink(path);
    }
    closedir(d);
}

static int write_all(mpm_out_t *o, const char *p, size_t n)
{
    while (n) {
        ssize_t w = write(o->fd, p, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            snprintf(o->err, sizeof o->err, "cannot write '%s': %s",
                     o->tmp ? o->tmp : o->path ? o->path : "standard output", strerror(errno));
            o->failed = 1;
            return -1;
        }
        p += w;
        n -= (size_t)w;
        o->bytes += (uint64_t)w;
    }
    return 0;
}

int mpm__out_open(mpm_out_t *o, const char *path, mpm_format_t fmt, const char *const *cols)
{
    memset(o, 0, sizeof *o);
    o->fmt = fmt;
    o->cols = cols;
    o->fd = 1;
    if (!path || strcmp(path, "-") == 0) return 0;
    o->path = path;
    if (mpm__out_in_place(path)) {
        o->fd = open(path, O_WRONLY | O_CLOEXEC);
        if (o->fd < 0) {
            snprintf(o->err, sizeof o->err, "cannot open output '%s': %s", path, strerror(errno));
            return -1;
        }
        o->direct = 1;
        return 0;
    }
    char *d = strdup(path), *b = strdup(path);
    if (!d || !b) {
        free(d);
        free(b);
        snprintf(o->err, sizeof o->err, "out of memory");
        return -1;
    }
    char host[256] = "localhost";
    gethostname(host, sizeof host - 1);
    host[sizeof host - 1] = 0;
    for (char *h = host; *h; h++)
        if (*h == '/') *h = '_';
    size_t n = strlen(path) + strlen(host) + 64;
    o->tmp = malloc(n);
    if (!o->tmp) {
        free(d);
        free(b);
        snprintf(o->err, sizeof o->err, "out of memory");
        return -1;
    }
    const char *dn = dirname(d), *bn = basename(b);
    remove_stale(dn, bn, host);
    snprintf(o->tmp, n, "%s/.%s.mpimap-%s-%ld-XXXXXX", dn, bn, host, (long)getpid());
    free(d);
    free(b);
    o->fd = mkstemp(o->tmp);
    if (o->fd < 0) {
        snprintf(o->err, sizeof o->err, "cannot create output '%s': %s", path, strerror(errno));
        free(o->tmp);
        o->tmp = NULL;
        return -1;
    }
    mpm__sig_guard_tmp(o->tmp);
    /* mkstemp creates 0600; a finished output gets the usual 0666 & ~umask. */
    mode_t um = umask(0);
    umask(um);
    fchmod(o->fd, 0666 & ~um);
    return 0;
}

static int start(mpm_out_t *o)
{
    if (o->started) return 0;
    o->started = 1;
    if (o->fmt == MPM_FMT_JSON) return write_all(o, "[\n", 2);
    if (o->fmt == MPM_FMT_TSV && o->cols) {
        o->scratch.len = 0;
        for (int i = 0; o->cols[i]; i++)
            if ((i && mpm_buf_append(&o->scratch, "\t", 1)) ||
                mpm_buf_append(&o->scratch, o->cols[i], strlen(o->cols[i])))
                return -1;
        if (mpm_buf_append(&o->scratch, "\n", 1)) return -1;
        return write_all(o, o->scratch.data, o->scratch.len);
    }
    return 0;
}

int mpm__out_rows(mpm_out_t *o, const char *data, size_t len)
{
    if (o->failed) return -1;
    if (start(o)) return -1;
    if (len == 0) return 0;
    if (o->fmt != MPM_FMT_JSON) return write_all(o, data, len);
    /* JSON: rows are one object per line; join them with ",\n". */
    mpm_buf_t *s = &o->scratch;
    s->len = 0;
    if (mpm_buf_reserve(s, len + len / 8 + 16)) {
        snprintf(o->err, sizeof o->err, "out of memory");
        return -1;
    }
    const char *p = data, *end = data + len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t l = nl ? (size_t)(nl - p) : (size_t)(end - p);
        if (l) {
            if ((o->rows++ && mpm_buf_append(s, ",\n", 2)) || mpm_buf_append(s, p, l)) {
                snprintf(o->err, sizeof o->err, "out of memory");
                return -1;
            }
        }
        p += l + 1;
    }
    return write_all(o, s->data, s->len);
}

int mpm__out_in_place(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && !S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode);
}

int mpm__out_check_writable(const char *what, const char *path, char *why, size_t whyn)
{
    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
        snprintf(why, whyn, "%s '%s' is a directory", what, path);
        return -1;
    }
    if (mpm__out_in_place(path)) {
        if (access(path, W_OK) == 0) return 0;
        snprintf(why, whyn, "cannot write %s '%s': %s", what, path, strerror(errno));
        return -1;
    }
    const char *slash = strrchr(path, '/');
    char dir[PATH_MAX];
    if (!slash)
        snprintf(dir, sizeof dir, ".");
    else /* "/x" is in "/" */
        snprintf(dir, sizeof dir, "%.*s", (int)(slash - path) + (slash == path), path);
    if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
        snprintf(why, whyn, "cannot write %s '%s': directory '%s' does not exist", what, path, dir);
        return -1;
    }
    if (access(dir, W_OK | X_OK) < 0) {
        snprintf(why, whyn, "cannot write %s '%s': directory '%s': %s", what, path, dir,
                 strerror(errno));
        return -1;
    }
    return 0;
}

static int sync_outputs = 1;

void mpm__out_set_sync(int on) { sync_outputs = on; }

int mpm__out_commit(mpm_out_t *o) { return mpm__out_commit_as(o, NULL); }

int mpm__out_commit_as(mpm_out_t *o, const char *final)
{
    if (!final) final = o->path;
    int rc = 0;
    if (!o->failed && start(o) == 0 && o->fmt == MPM_FMT_JSON)
        rc = write_all(o, o->rows ? "\n]\n" : "]\n", o->rows ? 3 : 2);
    if (o->failed) rc = -1;
    if (o->direct) {
        if (close(o->fd) < 0 && rc == 0) {
            snprintf(o->err, sizeof o->err, "cannot close '%s': %s", o->path, strerror(errno));
            rc = -1;
        }
        o->fd = -1;
    } else if (o->path) {
        if (rc == 0 && sync_outputs && fsync(o->fd) < 0) {
            snprintf(o->err, sizeof o->err, "cannot sync '%s': %s", o->tmp, strerror(errno));
            rc = -1;
        }
        if (close(o->fd) < 0 && rc == 0) {
            snprintf(o->err, sizeof o->err, "cannot close '%s': %s", o->tmp, strerror(errno));
            rc = -1;
        }
        o->fd = -1;
        /* From here on the file is complete: a signal no longer removes it. */
        mpm__sig_guard_tmp(NULL);
        if (rc == 0 && rename(o->tmp, final) < 0) {
            snprintf(o->err, sizeof o->err, "cannot rename '%s' to '%s': %s", o->tmp, final,
                     strerror(errno));
            rc = -1;
        }
        if (rc) unlink(o->tmp);
        free(o->tmp);
        o->tmp = NULL;
    }
    mpm_buf_free(&o->scratch);
    return rc;
}

void mpm__out_abort(mpm_out_t *o)
{
    if (o->direct && o->fd >= 0) close(o->fd);
    if (o->path && o->tmp) {
        if (o->fd >= 0) close(o->fd);
        mpm__sig_guard_tmp(NULL);
        unlink(o->tmp);
    }
    free(o->tmp);
    o->tmp = NULL;
    o->fd = -1;
    mpm_buf_free(&o->scratch);
}
