/* The shg system's own ops (PHYSICS.md, "shg"), one table per backend: the CPU kernels in
 * shg_cpu.c, the CUDA kernels in shg_cuda.cu. The simulated device and the analytic twin
 * (hwbridge/systems/shg_*.c) reach them through pnn_shg_ops_for(backend); the core backend table
 * knows nothing of pulses. The math, and the FFT packing both backends use, is in shg.h. */
#ifndef PNN_SHG_OPS_H
#define PNN_SHG_OPS_H

#include <stddef.h>
#include <stdint.h>

#include "pnn/backend.h"

#ifdef __cplusplus
extern "C" {
#endif

/* How the autoconvolution is computed: directly, O(K^2), or by FFT, O(K log K). */
typedef enum { PNN_SHG_DIRECT = 0, PNN_SHG_FFT = 1 } pnn_shg_form;

/* One evaluation of the map (shg.h). Every pointer of an op is backend memory. */
typedef struct pnn_shg_params {
    int64_t batch;  /* rows */
    int64_t k;      /* spectral bins of the fundamental; the output has M = 2K - 1 points */
    int64_t x_dim;  /* u = [x (x_dim), theta (K - x_dim)] */
    int64_t y_dim;  /* output bins over the M points */
    pnn_shg_form form;
    int64_t fft_len; /* L, a power of two >= M (pnn_shg_fft_len) */
} pnn_shg_params;

/* The device's blur and binning as one sparse map: y_j = sum_t I(start[j] + t) weight[offset[j] + t]
 * for t < count[j], where I is the intensity at the M output points. */
typedef struct pnn_shg_bins {
    const int32_t *start, *count, *offset; /* y_dim each */
    const float *weight;
} pnn_shg_bins;

typedef struct pnn_shg_ops {
    /* The ideal map (flat phase): y [B, y_dim] from x [B, x_dim] and theta [K - x_dim], with
     * bin_of [K] the layout (shg.h). tape (may be NULL) gets what vjp needs, tape_floats(p);
     * work is scratch of work_floats(p). */
    void (*forward)(void *ctx, const pnn_shg_params *p, const int32_t *bin_of, const float *x, const float *theta,
                    float *y, float *tape, float *work);
    /* The exact vector-Jacobian product of forward's map at the taped point (dA/du floored as
     * shg.h says): dx = J_x^T (gain * dy) (overwritten; may be NULL), dtheta += J_theta^T (gain * dy);
     * gain [B, y_dim] (may be NULL: ones) is the detector factor the forward's output was scaled by. */
    void (*vjp)(void *ctx, const pnn_shg_params *p, const int32_t *bin_of, const float *tape, const float *gain,
                const float *dy, float *dx, float *dtheta, float *work);
    /* The device's map before its detector: a_k = A_k (phase[2k] + i phase[2k+1]), E = a * a,
     * I(m) = |pm[m] E(m)|^2, y by bins. work is scratch of device_work_floats(p). */
    void (*device_forward)(void *ctx, const pnn_shg_params *p, const int32_t *bin_of, const float *x,
                           const float *theta, const float *phase, const float *pm, const pnn_shg_bins *bins,
                           float *y, float *work);
    /* The detector, over n outputs with y_dim per row: y = y (1 + sigma normals) + offset[col]
     * (normals and offset may be NULL: no noise, no offset); gain (may be NULL) gets 1 + sigma normals. */
    void (*detect)(void *ctx, int64_t n, int64_t y_dim, const float *normals, float sigma, const float *offset,
                   float *y, float *gain);
    size_t (*tape_floats)(const pnn_shg_params *p);
    size_t (*work_floats)(const pnn_shg_params *p);
    size_t (*device_work_floats)(const pnn_shg_params *p);
} pnn_shg_ops;

/* The tape's layout, the same on every backend (so tapes and tests compare): u [B, K] by bin, E
 * [B, M], then in the FFT form the packed spectra Z [ceil(B/2), 2L] (pair q holds rows 2q and
 * 2q + 1). Every region starts on a 64-byte boundary, as FFTW's SIMD codelets and vector loads like. */
static inline int64_t pnn_shg_align(int64_t n) { return (n + 15) & ~(int64_t)15; }
static inline int64_t pnn_shg_tape_e(const pnn_shg_params *p) { return pnn_shg_align(p->batch * p->k); }
static inline int64_t pnn_shg_tape_z(const pnn_shg_params *p) {
    return pnn_shg_tape_e(p) + pnn_shg_align(p->batch * (2 * p->k - 1));
}
static inline int64_t pnn_shg_spectra_floats(const pnn_shg_params *p) {
    return p->form == PNN_SHG_FFT ? pnn_shg_align((p->batch + 1) / 2 * 2 * p->fft_len) : 0;
}

/* Below this K, form auto computes the autoconvolution directly; from it on, by FFT (measured on
 * the CPU: benchmarks/bench_shg.c --crossover). */
#define PNN_SHG_FFT_MIN_K 64

/* L: the smallest power of two >= 2K - 1 */
int64_t pnn_shg_fft_len(int64_t k);

/* The table for the backend's kernels (the CUDA one on a CUDA backend, else the CPU's). */
const pnn_shg_ops *pnn_shg_ops_for(const pnn_backend *be);

/* The CPU kernels: also the reference the CUDA ones are tested against. */
extern const pnn_shg_ops pnn_shg_cpu_ops;

#ifdef PNN_USE_CUDA
extern const pnn_shg_ops pnn_shg_cuda_ops;
#endif

#ifdef __cplusplus
}
#endif
#endif
