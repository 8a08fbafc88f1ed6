/* CPU kernels of the scattering system (PHYSICS.md, "scatter"): the elementwise parts of the map
 * and of its adjoint (scatter.h); the matrix products are the backend's gemm and cgemm. These are
 * the reference of the CUDA kernels. */
#include "kernels/systems/scatter/scatter.h"
#include "kernels/systems/scatter/scatter_ops.h"

/* below this many elements per pass, threads cost more than they save */
#define SCATTER_OMP_MIN 32768
/* modes per block of the theta adjoint: one thread sums all rows of a block of columns */
#define SCATTER_MODE_BLOCK 256

static void cpu_modulate(void *ctx, int64_t modes, int64_t y_dim, float gamma, const float *theta, const float *b2,
                         float *w) {
    (void)ctx;
#pragma omp parallel for schedule(static) if (modes * y_dim > SCATTER_OMP_MIN)
    for (int64_t m = 0; m < modes; m++) {
        float pr, pi;
        pnn_scatter_phase(theta[m], gamma, &pr, &pi);
        const float *restrict src = b2 + 2 * m * y_dim;
        float *restrict dst = w + 2 * m * y_dim;
#pragma omp simd
        for (int64_t k = 0; k < y_dim; k++) {
            float br = src[2 * k], bi = src[2 * k + 1];
            dst[2 * k] = pr * br - pi * bi;
            dst[2 * k + 1] = pr * bi + pi * br;
        }
    }
}

/* Each block of modes is summed over the rows in row order by one thread, in double, so the
 * result does not depend on the thread count. */
static void cpu_modulate_adjoint(void *ctx, int64_t rows, int64_t modes, const float *gu, const float *u,
                                 float *dtheta) {
    (void)ctx;
    int64_t blocks = (modes + SCATTER_MODE_BLOCK - 1) / SCATTER_MODE_BLOCK;
#pragma omp parallel for schedule(static) if (rows * modes > SCATTER_OMP_MIN && blocks > 1)
    for (int64_t blk = 0; blk < blocks; blk++) {
        int64_t m0 = blk * SCATTER_MODE_BLOCK;
        int64_t len = modes - m0 < SCATTER_MODE_BLOCK ? modes - m0 : SCATTER_MODE_BLOCK;
        double acc[SCATTER_MODE_BLOCK] = {0};
        for (int64_t b = 0; b < rows; b++) {
            const float *restrict g = gu + 2 * (b * modes + m0), *restrict f = u + 2 * (b * modes + m0);
#pragma omp simd
            for (int64_t j = 0; j < len; j++)
                acc[j] += (double)pnn_scatter_phase_grad(g[2 * j], g[2 * j + 1], f[2 * j], f[2 * j + 1]);
        }
        for (int64_t j = 0; j < len; j++) dtheta[m0 + j] += (float)acc[j];
    }
}

static void cpu_modulate_adjoint_medium(void *ctx, int64_t modes, int64_t y_dim, const float *s, const float *w,
                                        float *dtheta) {
    (void)ctx;
#pragma omp parallel for schedule(static) if (modes * y_dim > SCATTER_OMP_MIN)
    for (int64_t m = 0; m < modes; m++) {
        const float *restrict g = s + 2 * m * y_dim, *restrict f = w + 2 * m * y_dim;
        double acc = 0.0;
        for (int64_t k = 0; k < y_dim; k++) acc += (double)pnn_scatter_phase_grad(g[2 * k], g[2 * k + 1], f[2 * k], f[2 * k + 1]);
        dtheta[m] += (float)acc;
    }
}

static void cpu_detect(void *ctx, int64_t n, const float *z, const float *noise, float sigma, float full_well,
                       float *y) {
    (void)ctx;
#pragma omp parallel for simd schedule(static) if (n > SCATTER_OMP_MIN)
    for (int64_t i = 0; i < n; i++)
        y[i] = pnn_scatter_detect(z[2 * i], z[2 * i + 1], noise ? sigma * noise[i] : 0.0f, full_well);
}

static void cpu_detect_adjoint(void *ctx, int64_t n, const float *dy, const float *z, float *gz) {
    (void)ctx;
#pragma omp parallel for simd schedule(static) if (n > SCATTER_OMP_MIN)
    for (int64_t i = 0; i < n; i++) {
        gz[2 * i] = 2.0f * dy[i] * z[2 * i];
        gz[2 * i + 1] = 2.0f * dy[i] * z[2 * i + 1];
    }
}

const pnn_scatter_ops pnn_scatter_cpu_ops = {
    .modulate = cpu_modulate,
    .modulate_adjoint = cpu_modulate_adjoint,
    .modulate_adjoint_medium = cpu_modulate_adjoint_medium,
    .detect = cpu_detect,
    .detect_adjoint = cpu_detect_adjoint,
};
