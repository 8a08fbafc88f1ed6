/* Times the nccl comm kind's gradient all-reduce in GPU memory: 2,600,000 floats by default (the
 * reference network's gradient), against no comm on one rank.
 * usage: bench_nccl [--floats N] [--reps R] [--json FILE] [--commit ID]
 * Alone (one rank, MPI as a singleton) or under mpirun with one rank per GPU. Rank 0 prints one
 * JSON object (and writes it to FILE) with the median, best and mean milliseconds of:
 *   nccl_allreduce: pnn_comm_allreduce_sum of the GPU buffer (ncclAllReduce and stream wait);
 *   nccl_step: what the trainer adds per step with comm nccl: the gradients copied into the
 *     buffer (one device copy here), the all-reduce, and the copy back;
 *   none: the same call through comm none on one rank (the trainer does nothing then);
 *   host_roundtrip: device-to-host and host-to-device copies of the buffer, the least that
 *     comm mpi adds with the cuda backend before MPI's own sum.
 * A repetition lasts as long as its slowest rank. Exit 77 in a build without NCCL or without
 * a GPU. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pnn/clock.h"
#include "pnn/comm.h"

#ifdef PNN_USE_NCCL

#include <cuda_runtime_api.h>

typedef enum { NCCL_ALLREDUCE, NCCL_STEP, NONE, HOST_ROUNDTRIP } variant;
static const char *const variant_names[] = {"nccl_allreduce", "nccl_step", "none", "host_roundtrip"};

typedef struct {
    double median, best, mean;
} timing;

#define CUDA_OK(call)                                                                                         \
    do {                                                                                                      \
        cudaError_t e_ = (call);                                                                              \
        if (e_ != cudaSuccess)                                                                                \
            return PNN_ERROR(PNN_ERR_CUDA, "%s failed: %s (%s:%d)", #call, cudaGetErrorString(e_), __FILE__, \
                             __LINE__);                                                                       \
    } while (0)

static pnn_status one(variant v, pnn_comm *c, pnn_comm *none, float *dev, float *grads, float *host, int64_t n) {
    size_t bytes = (size_t)n * sizeof(float);
    switch (v) {
    case NCCL_ALLREDUCE: return pnn_comm_allreduce_sum(c, dev, n, PNN_REDUCE_FAST);
    case NCCL_STEP:
        CUDA_OK(cudaMemcpyAsync(dev, grads, bytes, cudaMemcpyDeviceToDevice, cudaStreamPerThread));
        CUDA_OK(cudaStreamSynchronize(cudaStreamPerThread));
        PNN_TRY(pnn_comm_allreduce_sum(c, dev, n, PNN_REDUCE_FAST));
        CUDA_OK(cudaMemcpyAsync(grads, dev, bytes, cudaMemcpyDeviceToDevice, cudaStreamPerThread));
        CUDA_OK(cudaStreamSynchronize(cudaStreamPerThread));
        return PNN_OK;
    case NONE: return pnn_comm_allreduce_sum(none, dev, n, PNN_REDUCE_FAST);
    case HOST_ROUNDTRIP:
        CUDA_OK(cudaMemcpyAsync(host, dev, bytes, cudaMemcpyDeviceToHost, cudaStreamPerThread));
        CUDA_OK(cudaMemcpyAsync(dev, host, bytes, cudaMemcpyHostToDevice, cudaStreamPerThread));
        CUDA_OK(cudaStreamSynchronize(cudaStreamPerThread));
        return PNN_OK;
    }
    return PNN_ERR_INVALID;
}

/* reps repetitions after 3 warm-ups, each started together after a barrier */
static pnn_status time_variant(variant v, pnn_comm *c, pnn_comm *none, float *dev, float *grads, float *host,
                               int64_t n, int reps, timing *out) {
    double *t = malloc((size_t)reps * sizeof *t), *all = malloc((size_t)c->size * sizeof *all);
    pnn_status st = t && all ? PNN_OK : PNN_ERROR(PNN_ERR_NOMEM, "out of memory for timings");
    for (int k = -3; k < reps && st == PNN_OK; k++) {
        st = pnn_comm_barrier(c);
        double t0 = pnn_now_s();
        if (st == PNN_OK) st = one(v, c, none, dev, grads, host, n);
        double dt = pnn_now_s() - t0;
        if (st == PNN_OK) st = pnn_comm_allgather(c, &dt, sizeof dt, all);
        if (st == PNN_OK && k >= 0) {
            t[k] = 0;
            for (int r = 0; r < c->size; r++) t[k] = all[r] > t[k] ? all[r] : t[k];
        }
    }
    if (st == PNN_OK) {
        double sum = 0;
        for (int k = 0; k < reps; k++) sum += t[k];
        qsort(t, (size_t)reps, sizeof *t, pnn_cmp_double);
        out->median = 1e3 * t[reps / 2];
        out->best = 1e3 * t[0];
        out->mean = 1e3 * sum / reps;
    }
    free(t);
    free(all);
    return st;
}

int main(int argc, char **argv) {
    int64_t n = 2600000;
    int reps = 50;
    const char *json = NULL, *commit = "";
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--floats") && i + 1 < argc) n = atoll(argv[++i]);
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc) reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--json") && i + 1 < argc) json = argv[++i];
        else if (!strcmp(argv[i], "--commit") && i + 1 < argc) commit = argv[++i];
        else {
            fprintf(stderr, "usage: bench_nccl [--floats N] [--reps R] [--json FILE] [--commit ID]\n");
            return 64;
        }
    }
    if (n < 1 || reps < 1) {
        fprintf(stderr, "bench_nccl: --floats and --reps must be positive\n");
        return 64;
    }
    int gpus = 0;
    if (cudaGetDeviceCount(&gpus) != cudaSuccess || gpus == 0) {
        printf("bench_nccl: skip: no GPU here\n");
        return 77;
    }
    pnn_comm *c = NULL, *none = NULL;
    if (pnn_comm_init("nccl", &argc, &argv, &c) != PNN_OK) {
        fprintf(stderr, "bench_nccl: %s\n", pnn_last_error());
        return 1;
    }
    pnn_status st = PNN_OK;
    if (c->size == 1) st = pnn_comm_init("none", NULL, NULL, &none);
    size_t bytes = (size_t)n * sizeof(float);
    float *dev = NULL, *grads = NULL, *host = NULL;
    if (st == PNN_OK && (cudaMalloc((void **)&dev, bytes) != cudaSuccess ||
                         cudaMalloc((void **)&grads, bytes) != cudaSuccess ||
                         cudaMallocHost((void **)&host, bytes) != cudaSuccess))
        st = PNN_ERROR(PNN_ERR_NOMEM, "cannot allocate 2 x %zu bytes on the GPU and %zu pinned", bytes, bytes);
    if (st == PNN_OK && (cudaMemset(dev, 0, bytes) != cudaSuccess || cudaMemset(grads, 0, bytes) != cudaSuccess))
        st = PNN_ERROR(PNN_ERR_CUDA, "cudaMemset failed");
    timing t[4];
    int have[4] = {0, 0, 0, 0};
    for (int v = 0; v < 4 && st == PNN_OK; v++) {
        if (v == NONE && !none) continue;
        st = time_variant((variant)v, c, none, dev, grads, host, n, reps, &t[v]);
        have[v] = st == PNN_OK;
    }
    char device[256] = "";
    struct cudaDeviceProp prop;
    int d = 0;
    if (cudaGetDevice(&d) == cudaSuccess && cudaGetDeviceProperties(&prop, d) == cudaSuccess)
        snprintf(device, sizeof device, "%s", prop.name);
    if (st == PNN_OK && c->rank == 0) {
        char out[4096];
        int len = snprintf(out, sizeof out,
                           "{\"bench\": \"nccl_allreduce\", \"commit\": \"%s\", \"device\": \"%s\", \"ranks\": %d, "
                           "\"floats\": %lld, \"bytes\": %zu, \"reps\": %d",
                           commit, device, c->size, (long long)n, bytes, reps);
        for (int v = 0; v < 4; v++) {
            if (!have[v]) {
                len += snprintf(out + len, sizeof out - (size_t)len, ", \"%s\": null", variant_names[v]);
                continue;
            }
            len += snprintf(out + len, sizeof out - (size_t)len,
                            ", \"%s\": {\"ms_median\": %.4f, \"ms_best\": %.4f, \"ms_mean\": %.4f}", variant_names[v],
                            t[v].median, t[v].best, t[v].mean);
        }
        /* NCCL's bus bandwidth of an all-reduce: 2 (P-1) / P bytes per rank through the slowest link */
        double sec = t[NCCL_ALLREDUCE].median * 1e-3;
        len += snprintf(out + len, sizeof out - (size_t)len, ", \"algbw_GBps\": %.2f, \"busbw_GBps\": %.2f}",
                        bytes / sec / 1e9, 2.0 * (c->size - 1) / c->size * bytes / sec / 1e9);
        printf("%s\n", out);
        if (json) {
            FILE *f = fopen(json, "w");
            if (!f || fprintf(f, "%s\n", out) < 0 || fclose(f) != 0)
                st = PNN_ERROR(PNN_ERR_IO, "cannot write %s", json);
        }
    }
    if (st != PNN_OK) fprintf(stderr, "bench_nccl: rank %d: %s\n", c->rank, pnn_last_error());
    cudaFree(dev);
    cudaFree(grads);
    cudaFreeHost(host);
    pnn_comm_free(none);
    if (pnn_comm_shutdown(c) != PNN_OK && st == PNN_OK) {
        fprintf(stderr, "bench_nccl: %s\n", pnn_last_error());
        st = PNN_ERR_IO;
    }
    pnn_comm_free(c);
    return st == PNN_OK ? 0 : 1;
}

#else /* !PNN_USE_NCCL */

int main(void) {
    printf("bench_nccl: skip: this build has no NCCL (configure with -DPNN_NCCL=ON: CUDA backend, MPI and NCCL)\n");
    return 77;
}

#endif
