/*
 * p2pbw.c - plain MPI point-to-point bandwidth, the anchor for the engine
 * overhead benchmark: rank 0 streams TOTAL bytes to rank 1 in messages of
 * SIZE bytes with WINDOW nonblocking sends in flight (what the engine does
 * for one worker), and prints GB/s.
 *
 *   mpirun -np 2 mpimap-p2pbw [TOTAL_MIB=1024] [SIZE_KIB=64] [WINDOW=2]
 */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    int rank, size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    long long total = (argc > 1 ? atoll(argv[1]) : 1024) << 20;
    int msg = (argc > 2 ? atoi(argv[2]) : 64) << 10;
    int window = argc > 3 ? atoi(argv[3]) : 2;
    if (size != 2 || msg <= 0 || window <= 0 || total <= 0) {
        if (rank == 0) fprintf(stderr, "usage: mpirun -np 2 mpimap-p2pbw [MiB] [KiB] [window]\n");
        MPI_Finalize();
        return 2;
    }
    long long n = total / msg;
    char *buf = malloc((size_t)msg * (size_t)window);
    memset(buf, 1, (size_t)msg * (size_t)window);
    MPI_Request *req = calloc((size_t)window, sizeof *req);
    for (int i = 0; i < window; i++) req[i] = MPI_REQUEST_NULL;
    MPI_Barrier(MPI_COMM_WORLD);
    double t0 = MPI_Wtime();
    for (long long i = 0; i < n; i++) {
        int slot = (int)(i % window);
        MPI_Wait(&req[slot], MPI_STATUS_IGNORE);
        if (rank == 0)
            MPI_Isend(buf + (size_t)slot * msg, msg, MPI_BYTE, 1, 0, MPI_COMM_WORLD, &req[slot]);
        else
            MPI_Irecv(buf + (size_t)slot * msg, msg, MPI_BYTE, 0, 0, MPI_COMM_WORLD, &req[slot]);
    }
    /* Not MPI_Waitall(..., MPI_STATUSES_IGNORE): with MPICH's mpi.h (where
     * it is (MPI_Status *)1) GCC 12 flags the array parameter. */
    for (int i = 0; i < window; i++) MPI_Wait(&req[i], MPI_STATUS_IGNORE);
    int ack = 0;
    if (rank == 1) MPI_Send(&ack, 1, MPI_INT, 0, 1, MPI_COMM_WORLD);
    else MPI_Recv(&ack, 1, MPI_INT, 1, 1, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    double t = MPI_Wtime() - t0;
    if (rank == 0)
        printf("p2p: %lld bytes in %lld messages of %d bytes, window %d: %.3f s, %.2f GB/s\n",
               n * msg, n, msg, window, t, (double)(n * msg) / t / 1e9);
    free(req);
    free(buf);
    MPI_Finalize();
    return 0;
}
