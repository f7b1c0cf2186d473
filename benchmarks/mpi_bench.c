/* OpenMPI side of benchmarks/compare_comm.sh: the same ops, sizes and timing rule as `tandem bench comm`
 * (median per-iteration time, slowest rank), float32 data, one JSON object per line on rank 0.
 * MPI_BENCH_THREAD_LEVEL=multiple starts MPI with MPI_Init_thread(MPI_THREAD_MULTIPLE), the level Tandem's MPI
 * backend needs (its groups run on different threads), so the two compare at the same level; default MPI_Init. */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int compare_doubles(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void run_op(const char *op, float *in, float *out, int count, int rank, int ranks) {
    if (!strcmp(op, "all_reduce")) {
        MPI_Allreduce(MPI_IN_PLACE, in, count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    } else if (!strcmp(op, "all_gather")) {
        MPI_Allgather(in, count / ranks, MPI_FLOAT, out, count / ranks, MPI_FLOAT, MPI_COMM_WORLD);
    } else if (!strcmp(op, "reduce_scatter")) {
        MPI_Reduce_scatter_block(in, out, count / ranks, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    } else if (!strcmp(op, "broadcast")) {
        MPI_Bcast(in, count, MPI_FLOAT, 0, MPI_COMM_WORLD);
    } else if (!strcmp(op, "all_to_all")) {
        MPI_Alltoall(in, count / ranks, MPI_FLOAT, out, count / ranks, MPI_FLOAT, MPI_COMM_WORLD);
    } else if (!strcmp(op, "send_recv")) {
        MPI_Sendrecv(in, count, MPI_FLOAT, (rank + 1) % ranks, 0, out, count, MPI_FLOAT, (rank + ranks - 1) % ranks, 0,
                     MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    }
}

static double bus_factor(const char *op, int ranks) {
    double n = ranks;
    if (!strcmp(op, "all_reduce")) return 2 * (n - 1) / n;
    if (!strcmp(op, "broadcast") || !strcmp(op, "send_recv")) return 1;
    return (n - 1) / n;
}

int main(int argc, char **argv) {
    if (argc < 6) {
        fprintf(stderr, "usage: mpi_bench OPS(comma-separated) MIN_BYTES MAX_BYTES STEP_FACTOR ITERS [WARMUP]\n");
        return 2;
    }
    const char *level = getenv("MPI_BENCH_THREAD_LEVEL");
    if (level && !strcmp(level, "multiple")) {
        int provided;
        MPI_Init_thread(&argc, &argv, MPI_THREAD_MULTIPLE, &provided);
        if (provided < MPI_THREAD_MULTIPLE) {
            fprintf(stderr, "mpi_bench: MPI gives thread level %d, not MPI_THREAD_MULTIPLE\n", provided);
            MPI_Abort(MPI_COMM_WORLD, 2);
        }
    } else if (level && strcmp(level, "single")) {
        fprintf(stderr, "mpi_bench: MPI_BENCH_THREAD_LEVEL must be single or multiple, got %s\n", level);
        return 2;
    } else {
        MPI_Init(&argc, &argv);
    }
    int rank, ranks;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &ranks);
    long min_bytes = atol(argv[2]), max_bytes = atol(argv[3]);
    int step = atoi(argv[4]), iters = atoi(argv[5]), warmup = argc > 6 ? atoi(argv[6]) : 5;
    char *ops = strdup(argv[1]);
    float *in = malloc(max_bytes + 64), *out = malloc(max_bytes + 64);
    double *times = malloc(sizeof(double) * iters);
    for (char *op = strtok(ops, ","); op; op = strtok(NULL, ",")) {
        for (long bytes = min_bytes; bytes <= max_bytes; bytes *= step) {
            int count = (int)(bytes / 4);
            if (strcmp(op, "all_reduce") && strcmp(op, "broadcast") && strcmp(op, "send_recv")) count -= count % ranks;
            for (int i = 0; i < count; i++) in[i] = (float)(i % 3 + 1);
            for (int i = 0; i < warmup; i++) run_op(op, in, out, count, rank, ranks);
            MPI_Barrier(MPI_COMM_WORLD);
            for (int i = 0; i < iters; i++) {
                double start = MPI_Wtime();
                run_op(op, in, out, count, rank, ranks);
                times[i] = (MPI_Wtime() - start) * 1e6;
            }
            qsort(times, iters, sizeof(double), compare_doubles);
            double median = times[iters / 2], slowest;
            MPI_Allreduce(&median, &slowest, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
            if (rank == 0) {
                double algbw = (double)count * 4 / (slowest * 1000);
                printf("{\"tool\":\"openmpi\",\"op\":\"%s\",\"bytes\":%d,\"ranks\":%d,\"time_us\":%.3f,\"algbw_gbps\":%.4f,"
                       "\"busbw_gbps\":%.4f}\n", op, count * 4, ranks, slowest, algbw, algbw * bus_factor(op, ranks));
                fflush(stdout);
            }
        }
    }
    MPI_Finalize();
    return 0;
}
