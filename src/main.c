/*
 * main.c - the mpimap executable: MPI set-up around the library's mpm_main.
 *
 * Started without a launcher (no mpirun, srun or hydra in the environment),
 * mpimap is an MPI singleton: one process, its threads doing the work. Open
 * MPI 4 then by default forks a helper daemon and initialises its UCX
 * transport, which costs about 0.4 s here before anything runs: more than
 * the whole computation of many jobs. A singleton never talks to another
 * process, so it asks Open MPI for an isolated singleton on the ob1 transport
 * (0.06 s), unless the user set those parameters. Under a launcher nothing
 * is changed: there the transport is the cluster's choice.
 *
 * Memory: chunks and results are buffers of a few MiB, allocated and freed
 * by different threads at a high rate. glibc serves such sizes with fresh
 * mmap()s (or trims its heaps after each free), so every chunk paid its
 * page faults again: a third of the image kernel's time. mpimap keeps
 * buffers below 64 MiB in its heaps and returns memory to the system once
 * 256 MiB are free at the top of a heap; peak RSS is unchanged.
 */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>

#include "mpimap/mpimap.h"

/* 1 when some launcher started this process. */
static int launched(void)
{
    static const char *const vars[] = {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE",
                                       "PMI_FD", "OMPI_MCA_orte_hnp_uri", NULL};
    for (int i = 0; vars[i]; i++)
        if (getenv(vars[i])) return 1;
    return 0;
}

int main(int argc, char **argv)
{
    mallopt(M_MMAP_THRESHOLD, 64 << 20);
    mallopt(M_TRIM_THRESHOLD, 256 << 20);
    if (!launched()) {
        setenv("OMPI_MCA_ess_singleton_isolated", "1", 0);
        setenv("OMPI_MCA_pml", "ob1", 0);
    }
    int provided = 0;
    if (MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) {
        fprintf(stderr, "mpimap: error: MPI_Init_thread failed\n");
        return MPM_EXIT_FAIL;
    }
    if (provided < MPI_THREAD_FUNNELED) {
        fprintf(stderr, "mpimap: error: this MPI library does not provide MPI_THREAD_FUNNELED\n");
        MPI_Finalize();
        return MPM_EXIT_FAIL;
    }
    int rc = mpm_main(argc, argv, MPI_COMM_WORLD);
    MPI_Finalize();
    return rc;
}
