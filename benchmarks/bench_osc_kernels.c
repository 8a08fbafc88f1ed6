/* Timing of the CPU oscillator kernels against raw OpenBLAS GEMM of the same shapes: forward
 * (taped and tape-free) and forward + VJP, in GFLOP/s counting only the GEMM work (2 B N^2 per
 * stage forward, twice that per stage in the VJP: g Q^T and the share of dQ = S^T G).
 * Usage: bench_osc_kernels [B N]... (default: the engine's workloads). */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "kernels/systems/oscillator/oscillator_ops.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

typedef struct {
    pnn_osc_params p;
    float *q0, *q_mat, *e, *qT, *tape, *work, *dq0, *dq_mat, *de, *a, *c;
} bench;

enum { RUN_FORWARD, RUN_FORWARD_NO_TAPE, RUN_FORWARD_VJP, RUN_GEMM_B, RUN_GEMM_2B };

static void run(bench *bn, int what) {
    const pnn_osc_params *p = &bn->p;
    int n = (int)p->n, rows = (int)p->batch;
    switch (what) {
    case RUN_FORWARD:
        pnn_cpu_osc_forward(NULL, p, bn->q0, bn->q_mat, bn->e, bn->qT, bn->tape, bn->work);
        break;
    case RUN_FORWARD_NO_TAPE:
        pnn_cpu_osc_forward(NULL, p, bn->q0, bn->q_mat, bn->e, bn->qT, NULL, bn->work);
        break;
    case RUN_FORWARD_VJP:
        pnn_cpu_osc_forward(NULL, p, bn->q0, bn->q_mat, bn->e, bn->qT, bn->tape, bn->work);
        pnn_cpu_osc_vjp(NULL, p, bn->tape, bn->q_mat, bn->qT, bn->dq0, bn->dq_mat, bn->de, bn->work);
        break;
    case RUN_GEMM_B:
    case RUN_GEMM_2B: {
        int m = what == RUN_GEMM_B ? rows : 2 * rows;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, n, n, 1.0f, bn->a, n, bn->q_mat, n,
                    0.0f, bn->c, n);
        break;
    }
    }
}

/* seconds per call, repeated for at least 0.5 s after one warm-up call */
static double time_call(bench *bn, int what) {
    run(bn, what);
    int reps = 0;
    double start = now(), elapsed;
    do {
        run(bn, what);
        reps++;
        elapsed = now() - start;
    } while (elapsed < 0.5);
    return elapsed / reps;
}

static float *filled(size_t n, float scale) {
    float *x = malloc(n * sizeof *x);
    if (!x) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    for (size_t i = 0; i < n; i++) x[i] = scale * (float)((i * 2654435761u) % 2001 - 1000) / 1000.0f;
    return x;
}

static void bench_shape(int64_t rows, int64_t n) {
    bench bn = {.p = {rows, n, 5, 0.1f, 0.1f}};
    size_t bnn = (size_t)(rows * n), nn = (size_t)(n * n);
    float r = 1.0f / sqrtf((float)n);
    float *c = filled(nn, r);
    bn.q_mat = filled(nn, 0);
    pnn_cpu_osc_build_q(NULL, n, c, bn.q_mat);
    bn.q0 = filled(bnn, 1);
    bn.e = filled((size_t)n, r);
    bn.qT = filled(bnn, 0);
    bn.dq0 = filled(bnn, 0);
    bn.dq_mat = filled(nn, 0);
    bn.de = filled((size_t)n, 0);
    bn.tape = filled(pnn_cpu_osc_tape_floats(&bn.p), 0);
    bn.work = filled(pnn_cpu_osc_work_floats(&bn.p), 0);
    bn.a = filled(2 * bnn, 1);
    bn.c = filled(2 * bnn, 0);
    double stage = 2.0 * (double)rows * (double)n * (double)n, stages = 4.0 * bn.p.nt;
    double t_fwd = time_call(&bn, RUN_FORWARD), t_bare = time_call(&bn, RUN_FORWARD_NO_TAPE);
    double t_all = time_call(&bn, RUN_FORWARD_VJP);
    double t_gb = time_call(&bn, RUN_GEMM_B), t_g2b = time_call(&bn, RUN_GEMM_2B);
    printf("B=%lld N=%lld nt=5: forward %.2f ms %.1f GFLOP/s | tape-free %.2f ms %.1f GFLOP/s | "
           "forward+vjp %.2f ms %.1f GFLOP/s | sgemm %lldx%lldx%lld %.1f GFLOP/s, %lldx%lldx%lld "
           "%.1f GFLOP/s\n",
           (long long)rows, (long long)n, 1e3 * t_fwd, stages * stage / t_fwd * 1e-9, 1e3 * t_bare,
           stages * stage / t_bare * 1e-9, 1e3 * t_all, 3 * stages * stage / t_all * 1e-9,
           (long long)rows, (long long)n, (long long)n, stage / t_gb * 1e-9, 2 * (long long)rows,
           (long long)n, (long long)n, 2 * stage / t_g2b * 1e-9);
    free(c), free(bn.q_mat), free(bn.q0), free(bn.e), free(bn.qT), free(bn.dq0), free(bn.dq_mat);
    free(bn.de), free(bn.tape), free(bn.work), free(bn.a), free(bn.c);
}

int main(int argc, char **argv) {
    if (argc > 1) {
        for (int i = 1; i + 1 < argc; i += 2) bench_shape(atoll(argv[i]), atoll(argv[i + 1]));
        return 0;
    }
    const int64_t shapes[][2] = {{512, 100}, {32, 1610}, {32, 4000}, {256, 2000}, {1024, 2000}};
    for (int i = 0; i < 5; i++) bench_shape(shapes[i][0], shapes[i][1]);
    return 0;
}
