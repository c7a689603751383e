/*
 * util.h - small internal helpers shared by the engine modules: logging,
 * number parsing, time. Not part of the public API.
 * Thread safety: everything here is safe from any thread; logging writes
 * whole lines with one fprintf so lines of different threads never mix.
 */
#ifndef MPM_UTIL_H
#define MPM_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "mpimap/kernel.h"

/* Rank of this process in the run's communicator, for log prefixes (-1: none). */
extern int mpm__log_rank;
extern int mpm__log_verbose; /* 0 normal, 1 -v, 2 -vv */
extern int mpm__log_quiet;

void mpm__log(int level, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

enum { MPM_LOG_ERROR = 0, MPM_LOG_WARN = 1, MPM_LOG_INFO = 2, MPM_LOG_DEBUG = 3 };

/* Error and warning lines: "mpimap: error: ..."; info and debug only with -v
 * and -vv and then prefixed with time, rank and file:line. */
#define MPM_LOG(level, ...) mpm__log((level), __FILE__, __LINE__, __VA_ARGS__)

/* Parses a size like "64K", "4MiB", "1g", "123" (binary multiples).
 * Returns 0 and sets *out, or -1 for malformed or overflowing text. */
int mpm__parse_size(const char *s, uint64_t *out);

/* Parses a whole decimal integer (optional sign, no junk); 0 or -1. */
int mpm__parse_ll(const char *s, long long *out);
int mpm__parse_u64(const char *s, uint64_t *out);

/* Makes room for `need` elements of `size` bytes in the array *pv of
 * capacity *cap (doubling, from 16). 0, or -1 when out of memory (the array
 * is left as it was). */
int mpm__grow(void *pv, size_t *cap, size_t need, size_t size);

/* pread() until n bytes, end of file or an error (EINTR retried). Returns the
 * bytes read (fewer than n at end of file), or -1 with errno set. */
long long mpm__pread_full(int fd, void *p, size_t n, uint64_t at);

/* Appends s (n bytes) to out as a JSON string: quotes, escapes, invalid
 * UTF-8 bytes shown as Latin-1 code points. 0, or -1 when out of memory. */
struct mpm_buf_s;
int mpm__json_string(struct mpm_buf_s *out, const char *s, size_t n);

/* Monotonic seconds. */
double mpm__now(void);

/* Copies at most n bytes of s into dst (size dstsize) making control bytes
 * visible, for quoting bad input in messages; returns dst. */
char *mpm__quote(char *dst, size_t dstsize, const char *s, size_t n);

/* Declares each argument as an input file, "-" as standard input (once
 * only). 0, or -1 with err set. */
int mpm__inputs_paths(mpm_inputs_t *in, int argc, char **argv, mpm_err_t *err);

/* Opens an input that a kernel's source reads as a stream of lines: standard
 * input, or the file. *own says whether to fclose it. NULL with err set
 * ("cannot open WHAT 'NAME': reason"). */
FILE *mpm__input_fopen(const mpm_input_t *in, const char *what, int *own, mpm_err_t *err);

#endif
