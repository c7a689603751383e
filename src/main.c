/*
 * main.c - the mpimap executable: MPI set-up around the library's mpm_main.
 */
#include <stdio.h>

#include "mpimap/mpimap.h"

int main(int argc, char **argv)
{
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
