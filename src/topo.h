/*
 * topo.h - where the pool threads of a rank run.
 *
 * The launcher (mpirun --bind-to, srun --cpu-bind, taskset) gives each rank a
 * cpuset. We read it with hwloc_get_cpubind(HWLOC_CPUBIND_PROCESS), list the
 * cores that intersect it, and place pool thread i on core i mod ncores,
 * restricted to the PUs of that core inside the cpuset: a thread never runs
 * outside what the launcher gave the rank. The plan is a pure function of a
 * topology and a cpuset, so tests run it on synthetic topologies.
 *
 * Thread safety: plan/free on one thread; mpm__topo_bind_thread may be called
 * concurrently by pool threads (hwloc topologies are read-only after load).
 */
#ifndef MPM_TOPO_H
#define MPM_TOPO_H

#include <hwloc.h>

typedef struct mpm_placement_s {
    int nthreads;           /* threads to start */
    int ncores;             /* cores that intersect the allowed cpuset */
    int oversubscribed;     /* nthreads > ncores */
    int bind;               /* 1: threads are pinned to `cpusets` */
    hwloc_bitmap_t allowed; /* the cpuset the rank was given */
    hwloc_bitmap_t share;   /* the PUs of this rank's cores (its share of `allowed`) */
    hwloc_bitmap_t *cpusets; /* per thread: the PUs it may run on */
    int *core_index;        /* per thread: logical index of its core (-1 unbound) */
    int share_index, share_count; /* this rank's share of a cpuset given to several ranks */
} mpm_placement_t;

/* Plans nthreads (0 = one per allowed core) threads on `allowed`.
 * bind = 0 plans no pinning. Returns 0, or -1 if the cpuset holds no PU. */
int mpm__topo_plan(hwloc_topology_t topo, hwloc_const_cpuset_t allowed, int nthreads, int bind,
                   mpm_placement_t *pl);
/* The same for share_count ranks of one node given the same cpuset: rank
 * share_index gets the share_index-th of share_count equal slices of its
 * cores (one core, round-robin, when there are more ranks than cores). */
int mpm__topo_plan_shared(hwloc_topology_t topo, hwloc_const_cpuset_t allowed, int nthreads,
                          int bind, int share_index, int share_count, mpm_placement_t *pl);
void mpm__topo_free(mpm_placement_t *pl);

/* Loads this machine's topology and the cpuset of this process.
 * Returns 0 or -1 (with a message in err). */
int mpm__topo_load(hwloc_topology_t *topo, hwloc_cpuset_t allowed, char *err, size_t errlen);

/* Pins the calling thread to pl->cpusets[i]; 0 or -1 (errno set). */
int mpm__topo_bind_thread(hwloc_topology_t topo, const mpm_placement_t *pl, int i);

/* The running engine's topology and this rank's share of the cores (the
 * union of the planned threads' cpusets; the whole allowed set when the
 * threads are not pinned), for kernels that place work of their own (exec
 * pins its tasks). Set by the engine once the pool is planned (before the
 * kernel's layout hook), cleared (NULL) at the end of the run. Read-only
 * for everyone else. */
void mpm__topo_set_run(hwloc_topology_t topo, const mpm_placement_t *pl);
hwloc_topology_t mpm__topo_run_topology(void);
hwloc_const_cpuset_t mpm__topo_run_cpuset(void);

/* Writes "host H rank R: cpuset given 0-1 (2 cores); thread 0 -> core L#0 (PUs 0)..."
 * to buf. */
void mpm__topo_describe(hwloc_topology_t topo, const mpm_placement_t *pl, const char *host,
                        int rank, char *buf, size_t len);

#endif
