/* Measures this machine's ceilings for the PAT step's floor: OpenBLAS sgemm GFLOP/s at the
 * shapes the oscillator networks use (and a large square one), and the memory bandwidth of a
 * streaming triad. Prints one JSON object. Usage: bench_floor [threads-note] */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "pnn/clock.h"

/* Best GFLOP/s of C[m,n] = A[m,k] B[k,n] over repeats lasting ~0.5 s. */
static double gemm_gflops(int m, int n, int k, int trans_b) {
    float *a = malloc(sizeof(float) * (size_t)m * k), *b = malloc(sizeof(float) * (size_t)k * n);
    float *c = malloc(sizeof(float) * (size_t)m * n);
    for (size_t i = 0; i < (size_t)m * k; i++) a[i] = (float)(i % 7) * 0.1f;
    for (size_t i = 0; i < (size_t)k * n; i++) b[i] = (float)(i % 5) * 0.1f;
    double best = 1e30, t_end = pnn_now_s() + 0.5;
    for (int rep = 0; rep < 3 || pnn_now_s() < t_end; rep++) {
        double t0 = pnn_now_s();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, m, n, k, 1.0f, a, k, b,
                    trans_b ? k : n, 0.0f, c, n);
        double dt = pnn_now_s() - t0;
        if (dt < best) best = dt;
    }
    free(a), free(b), free(c);
    return 2.0 * m * n * k / best / 1e9;
}

/* Best GB/s of a[i] = b[i] + s * c[i] over 3 x 64 MiB arrays (counting 3 streams). */
static double triad_gbs(void) {
    size_t n = (size_t)16 << 20;
    float *a = malloc(n * sizeof(float)), *b = malloc(n * sizeof(float)), *c = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) b[i] = 1.0f, c[i] = 2.0f, a[i] = 0.0f;
    double best = 1e30;
    for (int rep = 0; rep < 8; rep++) {
        double t0 = pnn_now_s();
#pragma omp parallel for
        for (size_t i = 0; i < n; i++) a[i] = b[i] + 0.5f * c[i];
        double dt = pnn_now_s() - t0;
        if (dt < best) best = dt;
    }
    double gbs = 3.0 * n * sizeof(float) / best / 1e9 + a[n / 2] * 0.0;
    free(a), free(b), free(c);
    return gbs;
}

int main(void) {
    printf("{\"sgemm_gflops\": {\"2048x2048x2048\": %.1f, \"32x1610x1610\": %.1f, \"32x1610x1610_bT\": %.1f, "
           "\"512x100x100\": %.1f, \"1610x1610x640\": %.1f}, \"triad_gbs\": %.1f}\n",
           gemm_gflops(2048, 2048, 2048, 0), gemm_gflops(32, 1610, 1610, 0), gemm_gflops(32, 1610, 1610, 1),
           gemm_gflops(512, 100, 100, 0), gemm_gflops(1610, 1610, 640, 0), triad_gbs());
    return 0;
}
