/*
 * registry.c - the table of built-in kernels. A new kernel adds one line.
 */
#include <string.h>

#include "mpimap/mpimap.h"

extern const mpm_kernel_t mpm_kernel_fib;
extern const mpm_kernel_t mpm_kernel_primes;
extern const mpm_kernel_t mpm_kernel_wordcount;
extern const mpm_kernel_t mpm_kernel_test;
extern const mpm_kernel_t mpm_kernel_image;
extern const mpm_kernel_t mpm_kernel_kmeans;
extern const mpm_kernel_t mpm_kernel_hash;
extern const mpm_kernel_t mpm_kernel_fetch;
extern const mpm_kernel_t mpm_kernel_exec;

static const mpm_kernel_t *const registry[] = {&mpm_kernel_fib, &mpm_kernel_primes,
                                               &mpm_kernel_wordcount, &mpm_kernel_image,
                                               &mpm_kernel_kmeans, &mpm_kernel_hash,
                                               &mpm_kernel_fetch, &mpm_kernel_exec,
                                               &mpm_kernel_test, NULL};

const mpm_kernel_t *const *mpm_kernels(void) { return registry; }

const mpm_kernel_t *mpm_kernel_find(const char *name)
{
    for (int i = 0; registry[i]; i++)
        if (strcmp(registry[i]->name, name) == 0) return registry[i];
    return NULL;
}
