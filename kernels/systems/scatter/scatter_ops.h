/* The scattering system's own ops (PHYSICS.md, "scatter"), one table per backend: the CPU
 * kernels in scatter_cpu.c, the CUDA kernels in scatter_cuda.cu. They are the elementwise parts
 * of the map (scatter.h): the phase modulation, the detection |z|^2 and their adjoints; the
 * products with the scattering matrices go through the core backend table (gemm, cgemm). The
 * simulated device and the analytic twin (hwbridge/systems/) reach them through
 * pnn_scatter_ops_for(backend). Complex arrays hold interleaved (re, im) floats. */
#ifndef PNN_SCATTER_OPS_H
#define PNN_SCATTER_OPS_H

#include <stdint.h>

#include "pnn/backend.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct pnn_scatter_ops {
    /* w[m, k] = exp(i (theta_m + gamma sin theta_m)) b2[m, k], M x K complex */
    void (*modulate)(void *ctx, int64_t modes, int64_t y_dim, float gamma, const float *theta, const float *b2,
                     float *w);
    /* dtheta[m] += sum_b Im(gu[b, m] conj(u[b, m])), gu and u rows x M complex: the adjoint of
     * modulate with gamma = 0 (the twin's ideal modulator) at the fields u on the modulator,
     * given their adjoint gu */
    void (*modulate_adjoint)(void *ctx, int64_t rows, int64_t modes, const float *gu, const float *u,
                             float *dtheta);
    /* dtheta[m] += sum_k Im(s[m, k] conj(w[m, k])), s and w M x K complex: the same adjoint in
     * the transfer-matrix form (scatter.h), s = W1 conj (x^T gz) summed over the batch already */
    void (*modulate_adjoint_medium)(void *ctx, int64_t modes, int64_t y_dim, const float *s, const float *w,
                                    float *dtheta);
    /* y[i] = min(|z_i|^2 + sigma noise[i], full_well) for n complex z; noise may be NULL (none)
     * and full_well INFINITY (no well) */
    void (*detect)(void *ctx, int64_t n, const float *z, const float *noise, float sigma, float full_well,
                   float *y);
    /* gz[i] = 2 dy[i] z[i], n complex: the adjoint of |z|^2 */
    void (*detect_adjoint)(void *ctx, int64_t n, const float *dy, const float *z, float *gz);
} pnn_scatter_ops;

/* The table for the backend's kernels (the CUDA one on a CUDA backend, else the CPU's). */
const pnn_scatter_ops *pnn_scatter_ops_for(const pnn_backend *be);

/* The CPU kernels: also the reference the CUDA ones are tested against. */
extern const pnn_scatter_ops pnn_scatter_cpu_ops;

#ifdef PNN_USE_CUDA
extern const pnn_scatter_ops pnn_scatter_cuda_ops;
#endif

#ifdef __cplusplus
}
#endif
#endif
