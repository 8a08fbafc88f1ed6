/* Times the gradient all-reduce of pnn's comm module:
 * usage comm_allreduce [N_FLOATS [REPS [SHARDS [KIND]]]] (default 2,600,000 floats, the
 * 1610-oscillator network's gradient; 20 repetitions; 8 shards; comm kind auto).
 * Run it alone or under mpirun; rank 0 prints one JSON object with the median and best
 * milliseconds of: fast (MPI_Allreduce), exact (rank-order, one shard per rank) and
 * exact_shards (SHARDS shards of the global batch, pnn_comm_reduce_shards). */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "pnn/clock.h"
#include "pnn/comm.h"

typedef enum { FAST, EXACT, EXACT_SHARDS } variant;

/* Times reps reductions (after one warm-up), each started together after a barrier; the time
 * of a repetition is the slowest rank's. Writes the median and the best in ms. */
static pnn_status time_variant(pnn_comm *c, variant v, int64_t n, int reps, int64_t shards, double *median,
                               double *best) {
    int64_t first, count;
    PNN_TRY(pnn_comm_shard(c, shards, &first, &count));
    int64_t rows = v == EXACT_SHARDS ? count : 1;
    float *buf = malloc((size_t)((rows ? rows : 1) * n) * sizeof(float));
    float *out = malloc((size_t)n * sizeof(float));
    double *t = malloc((size_t)reps * sizeof(double));
    if (!buf || !out || !t) {
        free(buf), free(out), free(t);
        return PNN_ERROR(PNN_ERR_NOMEM, "out of memory for %lld floats", (long long)(rows * n));
    }
    for (int64_t i = 0; i < rows * n; i++) buf[i] = (float)((i * 2654435761u) % 1000) * 1e-3f - 0.5f;
    pnn_status st = PNN_OK;
    for (int k = -1; k < reps && st == PNN_OK; k++) {
        st = pnn_comm_barrier(c);
        double t0 = pnn_now_s();
        if (st == PNN_OK && v == FAST) st = pnn_comm_allreduce_sum(c, buf, n, PNN_REDUCE_FAST);
        if (st == PNN_OK && v == EXACT) st = pnn_comm_allreduce_sum(c, buf, n, PNN_REDUCE_EXACT);
        if (st == PNN_OK && v == EXACT_SHARDS) st = pnn_comm_reduce_shards(c, buf, rows, shards, n, out);
        double dt[1] = {pnn_now_s() - t0};
        /* a repetition lasts as long as its slowest rank */
        double *all = malloc((size_t)c->size * sizeof(double));
        if (st == PNN_OK && all) st = pnn_comm_allgather(c, dt, sizeof dt, all);
        if (st == PNN_OK && k >= 0) {
            t[k] = 0;
            for (int r = 0; r < c->size; r++) t[k] = all[r] > t[k] ? all[r] : t[k];
        }
        free(all);
        /* keep the values bounded across repetitions of the in-place sums */
        if (v != EXACT_SHARDS)
            for (int64_t i = 0; i < n; i++) buf[i] = (float)((i * 2654435761u) % 1000) * 1e-3f - 0.5f;
    }
    if (st == PNN_OK) {
        qsort(t, (size_t)reps, sizeof *t, pnn_cmp_double);
        *median = 1e3 * t[reps / 2];
        *best = 1e3 * t[0];
    }
    free(buf), free(out), free(t);
    return st;
}

int main(int argc, char **argv) {
    pnn_comm *c;
    if (pnn_comm_init(argc > 4 ? argv[4] : "auto", &argc, &argv, &c) != PNN_OK) {
        fprintf(stderr, "comm_allreduce: %s\n", pnn_last_error());
        return 1;
    }
    int64_t n = argc > 1 ? atoll(argv[1]) : 2600000;
    int reps = argc > 2 ? atoi(argv[2]) : 20;
    int64_t shards = argc > 3 ? atoll(argv[3]) : 8;
    if (n < 1 || reps < 1 || shards < 1) {
        fprintf(stderr, "usage: comm_allreduce [N_FLOATS [REPS [SHARDS [KIND]]]]\n");
        pnn_comm_free(c);
        return 64;
    }
    static const char *const names[] = {"fast", "exact", "exact_shards"};
    double med[3], best[3];
    pnn_status st = PNN_OK;
    for (int v = 0; v < 3 && st == PNN_OK; v++) st = time_variant(c, (variant)v, n, reps, shards, &med[v], &best[v]);
    if (st != PNN_OK) {
        fprintf(stderr, "comm_allreduce: rank %d: %s\n", c->rank, pnn_last_error());
        pnn_comm_free(c);
        return 1;
    }
    if (c->rank == 0) {
        printf("{\"ranks\": %d, \"comm\": \"%s\", \"floats\": %lld, \"bytes\": %lld, \"reps\": %d, \"shards\": %lld",
               c->size, pnn_comm_kind_name(c->kind), (long long)n, (long long)n * 4, reps, (long long)shards);
        for (int v = 0; v < 3; v++)
            printf(", \"%s_ms_median\": %.4f, \"%s_ms_best\": %.4f, \"%s_GBps_algbw\": %.3f", names[v], med[v],
                   names[v], best[v], names[v], (double)n * 4 / (med[v] * 1e-3) / 1e9);
        printf("}\n");
    }
    st = pnn_comm_shutdown(c);
    pnn_comm_free(c);
    return st == PNN_OK ? 0 : 1;
}
