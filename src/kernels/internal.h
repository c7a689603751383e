/*
 * internal.h - internal entry points of the kernels (mpm__ prefix), so that
 * the fuzz targets (tests/fuzz) can reach code that is otherwise static.
 * Each is a thin wrapper around the kernel's own code, not a copy of it.
 * Not part of the API; the kernels include this header so that the
 * definitions match the declarations.
 */
#ifndef MPM_KERNELS_INTERNAL_H
#define MPM_KERNELS_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "mpimap/kernel.h"

/* fetch.c: the check every URL gets before any attempt (scheme http or
 * https, a host). 0 with host[] = "HOST:PORT" (the per-host key), or -1
 * with why[] set. */
int mpm__fetch_vet(const char *url, char *host, size_t hostn, char *why, size_t whyn);

/* hash.c, --check: parses one manifest line l[0..n) (no newline; modified
 * in place by unescaping) as the manifest reader does. algo: --algo (-1:
 * not given); *inferred: the algorithm inferred from an earlier plain line
 * (-1: none yet), updated. Returns 0 with *algo_out, the digest dg[0..*dlen)
 * and the path (*path, *plen, pointing into l); 1 for an improperly
 * formatted line; 2 for an ambiguous digest length (why set). */
int mpm__hash_parse_line(int algo, int *inferred, char *l, size_t n, int *algo_out,
                         unsigned char *dg, int *dlen, char **path, size_t *plen, char *why,
                         size_t whyn);
/* hash.c: the manifest line (with its newline) that `hash` writes for path
 * p[0..n) with digest dg of algorithm algo (--tag when tag), into line
 * (emptied first). 0, or -1 when out of memory. */
int mpm__hash_manifest_line(int tag, int algo, const unsigned char *dg, const char *p, size_t n,
                            mpm_buf_t *line);

/* exec.c: the argument vector of one task, as map() builds it from the
 * options check() made (opts) for item[0..n), task number `task` ({#})
 * and slot index `slot` ({%} is slot + 1): the words, each followed by a
 * NUL, appended to *words, their number in *nwords, and the command line
 * quoted for a shell (the joblog's Command) appended to *cmdline. 0, or -1
 * when out of memory. */
int mpm__exec_words(const void *opts, const char *item, size_t n, uint64_t task, int slot,
                    mpm_buf_t *words, int *nwords, mpm_buf_t *cmdline);

#endif
