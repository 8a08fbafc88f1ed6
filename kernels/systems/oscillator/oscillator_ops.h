/* The coupled-oscillator system's own ops (PHYSICS.md, "oscillator"), one table per backend:
 * the CPU kernels here, the CUDA kernels in oscillator_cuda.cu. The simulated device and the
 * analytic twin (hwbridge/systems/) reach them through pnn_osc_ops_for(backend); the core
 * backend table knows nothing of oscillators. */
#ifndef PNN_OSCILLATOR_OPS_H
#define PNN_OSCILLATOR_OPS_H

#include <stddef.h>
#include <stdint.h>

#include "pnn/backend.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Parameters of one coupled-oscillator integration. */
typedef struct pnn_osc_params {
    int64_t batch;  /* B: rows integrated together */
    int64_t n;      /* N: oscillators */
    int nt;         /* RK4 steps */
    float dt;       /* step size */
    float eta;      /* nonlinearity s = sin((1+eta) q); 0 in the ideal model */
} pnn_osc_params;

typedef struct pnn_osc_ops {
    /* Q from C: S = (C + C^T)/2, Q = S off the diagonal, Q_ii = -sum_k S_ki. */
    void (*build_q)(void *ctx, int64_t n, const float *c, float *q);
    /* dC += the gradient through build_q given dQ */
    void (*build_q_backward)(void *ctx, int64_t n, const float *dq, float *dc);
    /* RK4 from q(0) = q0, p(0) = 0 over nt steps of dq/dt = p, dp/dt = -s + s Q + e with
     * s = sin((1+eta) q), rows of the batch independent. qT gets q(T). tape (may be NULL) gets
     * what vjp needs, tape_floats(p) floats; work is scratch of work_floats(p). */
    void (*forward)(void *ctx, const pnn_osc_params *p, const float *q0, const float *q_mat, const float *e,
                    float *qT, float *tape, float *work);
    /* The exact vector-Jacobian product of the discrete map above at the taped point:
     * dq0 = (dq(T)/dq0)^T dqT (overwritten; may be NULL), dQ += ..., de += ... */
    void (*vjp)(void *ctx, const pnn_osc_params *p, const float *tape, const float *q_mat, const float *dqT,
                float *dq0, float *dq_mat, float *de, float *work);
    size_t (*tape_floats)(const pnn_osc_params *p);
    size_t (*work_floats)(const pnn_osc_params *p);
} pnn_osc_ops;

/* The table for the backend's kernels (the CUDA one on a CUDA backend, else the CPU's). */
const pnn_osc_ops *pnn_osc_ops_for(const pnn_backend *be);

/* The CPU kernels: also the reference the CUDA ones are tested against. */
extern const pnn_osc_ops pnn_osc_cpu_ops;
void pnn_cpu_osc_build_q(void *ctx, int64_t n, const float *c, float *q);
void pnn_cpu_osc_build_q_backward(void *ctx, int64_t n, const float *dq, float *dc);
void pnn_cpu_osc_forward(void *ctx, const pnn_osc_params *p, const float *q0, const float *q_mat, const float *e,
                         float *qT, float *tape, float *work);
void pnn_cpu_osc_vjp(void *ctx, const pnn_osc_params *p, const float *tape, const float *q_mat, const float *dqT,
                     float *dq0, float *dq_mat, float *de, float *work);
size_t pnn_cpu_osc_tape_floats(const pnn_osc_params *p);
size_t pnn_cpu_osc_work_floats(const pnn_osc_params *p);

#ifdef PNN_USE_CUDA
extern const pnn_osc_ops pnn_osc_cuda_ops;
/* 0 picks by size (fused kernel for n <= 256, GEMM stages above), 1 forces the fused small-n
 * kernel where it applies (n <= 256), 2 forces the GEMM path. For tests. */
void pnn_osc_cuda_set_regime(int regime);
#endif

#ifdef __cplusplus
}
#endif
#endif
