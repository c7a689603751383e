/*
 * topo.c - thread placement with hwloc (see topo.h).
 */
#include "topo.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int mpm__topo_plan(hwloc_topology_t topo, hwloc_const_cpuset_t allowed, int nthreads, int bind,
                   mpm_placement_t *pl)
{
    return mpm__topo_plan_shared(topo, allowed, nthreads, bind, 0, 1, pl);
}

int mpm__topo_plan_shared(hwloc_topology_t topo, hwloc_const_cpuset_t allowed, int nthreads,
                          int bind, int share_index, int share_count, mpm_placement_t *pl)
{
    memset(pl, 0, sizeof *pl);
    if (hwloc_bitmap_iszero(allowed)) return -1;
    pl->allowed = hwloc_bitmap_dup(allowed);

    /* Cores intersecting the cpuset; PUs when the topology has no cores. */
    hwloc_obj_type_t type = hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_CORE) > 0 ? HWLOC_OBJ_CORE
                                                                              : HWLOC_OBJ_PU;
    /* A core partially inside the cpuset still counts: its allowed PUs are used. */
    int n = 0;
    int total = hwloc_get_nbobjs_by_type(topo, type);
    hwloc_obj_t *cores = calloc((size_t)(total > 0 ? total : 1), sizeof *cores);
    if (!cores) return -1;
    for (int i = 0; i < total; i++) {
        hwloc_obj_t o = hwloc_get_obj_by_type(topo, type, (unsigned)i);
        if (o && o->cpuset && hwloc_bitmap_intersects(o->cpuset, allowed)) cores[n++] = o;
    }
    if (n == 0) {
        free(cores);
        hwloc_bitmap_free(pl->allowed);
        pl->allowed = NULL;
        return -1;
    }
    /* Ranks given the same cpuset (mpirun --bind-to socket or none) split
     * its cores between them instead of all starting on the first core. */
    if (share_count > 1 && share_index >= 0 && share_index < share_count) {
        int lo, hi;
        if (share_count <= n) {
            lo = (int)((long long)share_index * n / share_count);
            hi = (int)((long long)(share_index + 1) * n / share_count);
        } else {
            lo = share_index % n;
            hi = lo + 1;
        }
        memmove(cores, cores + lo, (size_t)(hi - lo) * sizeof *cores);
        n = hi - lo;
        pl->share_index = share_index;
        pl->share_count = share_count;
    } else {
        pl->share_index = 0;
        pl->share_count = 1;
    }
    pl->ncores = n;
    pl->share = hwloc_bitmap_alloc();
    for (int i = 0; i < n; i++) hwloc_bitmap_or(pl->share, pl->share, cores[i]->cpuset);
    hwloc_bitmap_and(pl->share, pl->share, allowed);
    pl->nthreads = nthreads > 0 ? nthreads : n;
    pl->oversubscribed = pl->nthreads > n;
    pl->bind = bind;
    pl->cpusets = calloc((size_t)pl->nthreads, sizeof *pl->cpusets);
    pl->core_index = calloc((size_t)pl->nthreads, sizeof *pl->core_index);
    if (!pl->cpusets || !pl->core_index) {
        free(cores);
        mpm__topo_free(pl);
        return -1;
    }
    for (int t = 0; t < pl->nthreads; t++) {
        hwloc_obj_t c = cores[t % n];
        pl->cpusets[t] = hwloc_bitmap_alloc();
        if (bind) {
            hwloc_bitmap_and(pl->cpusets[t], c->cpuset, allowed);
            pl->core_index[t] = (int)c->logical_index;
        } else {
            hwloc_bitmap_copy(pl->cpusets[t], allowed);
            pl->core_index[t] = -1;
        }
    }
    free(cores);
    return 0;
}

static hwloc_topology_t run_topo;
static hwloc_const_cpuset_t run_set;

void mpm__topo_set_run(hwloc_topology_t topo, const mpm_placement_t *pl)
{
    run_topo = topo;
    run_set = pl ? pl->share : NULL;
}

hwloc_topology_t mpm__topo_run_topology(void) { return run_topo; }
hwloc_const_cpuset_t mpm__topo_run_cpuset(void) { return run_set; }

void mpm__topo_free(mpm_placement_t *pl)
{
    hwloc_bitmap_free(pl->share);
    pl->share = NULL;
    if (pl->cpusets)
        for (int t = 0; t < pl->nthreads; t++) hwloc_bitmap_free(pl->cpusets[t]);
    free(pl->cpusets);
    free(pl->core_index);
    if (pl->allowed) hwloc_bitmap_free(pl->allowed);
    memset(pl, 0, sizeof *pl);
}

int mpm__topo_load(hwloc_topology_t *topo, hwloc_cpuset_t allowed, char *err, size_t errlen)
{
    if (hwloc_topology_init(topo) < 0) {
        snprintf(err, errlen, "hwloc_topology_init: %s", strerror(errno));
        return -1;
    }
    if (hwloc_topology_load(*topo) < 0) {
        snprintf(err, errlen, "hwloc_topology_load: %s", strerror(errno));
        hwloc_topology_destroy(*topo);
        return -1;
    }
    if (hwloc_get_cpubind(*topo, allowed, HWLOC_CPUBIND_PROCESS) < 0) {
        /* Some systems cannot report a process binding: use what hwloc sees. */
        hwloc_bitmap_copy(allowed, hwloc_topology_get_allowed_cpuset(*topo));
    }
    hwloc_bitmap_and(allowed, allowed, hwloc_topology_get_topology_cpuset(*topo));
    if (hwloc_bitmap_iszero(allowed)) {
        snprintf(err, errlen, "the cpuset of this process contains no usable processor");
        hwloc_topology_destroy(*topo);
        return -1;
    }
    return 0;
}

int mpm__topo_bind_thread(hwloc_topology_t topo, const mpm_placement_t *pl, int i)
{
    if (!pl->bind) return 0;
    return hwloc_set_cpubind(topo, pl->cpusets[i], HWLOC_CPUBIND_THREAD) < 0 ? -1 : 0;
}

void mpm__topo_describe(hwloc_topology_t topo, const mpm_placement_t *pl, const char *host,
                        int rank, char *buf, size_t len)
{
    (void)topo;
    char set[256];
    hwloc_bitmap_list_snprintf(set, sizeof set, pl->allowed);
    size_t o = (size_t)snprintf(buf, len, "host %s rank %d: cpuset given %s, %d core%s for this rank",
                                host, rank, set, pl->ncores, pl->ncores == 1 ? "" : "s");
    if (pl->share_count > 1 && o < len)
        o += (size_t)snprintf(buf + o, len - o, " (cpuset shared by %d ranks, this is share %d)",
                              pl->share_count, pl->share_index);
    if (o < len)
        o += (size_t)snprintf(buf + o, len - o, ", %d thread%s%s", pl->nthreads,
                              pl->nthreads == 1 ? "" : "s",
                              pl->bind ? "" : ", not pinned (--bind none)");
    for (int t = 0; t < pl->nthreads && o < len; t++) {
        hwloc_bitmap_list_snprintf(set, sizeof set, pl->cpusets[t]);
        if (pl->bind)
            o += (size_t)snprintf(buf + o, len - o, "; thread %d -> core L#%d (PU %s)", t,
                                  pl->core_index[t], set);
        else
            o += (size_t)snprintf(buf + o, len - o, "; thread %d -> PUs %s", t, set);
    }
}
