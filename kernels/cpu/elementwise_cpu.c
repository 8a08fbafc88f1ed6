/* The CPU's elementwise ops of digital layers and optimizers: activations, their derivatives,
 * and the Adam and SGD updates. Compiled with -O3 -ffast-math -fno-finite-math-only (CMakeLists):
 * each loop is specialised per activation so that GCC vectorises it (tanh as arithmetic,
 * kernels/math/tanh.h, within 1e-7 of tanhf; sqrtf without errno); NaN still propagates. The per-element math
 * is the one the CUDA kernels use (kernels/math/activations.h). Measured: fitting a 1.2 M
 * parameter tanh MLP spent 17 % of its time in scalar tanhf and 15 % in a scalar Adam before. */
#include <math.h>

#include "kernels/cpu/cpu_ops.h"
#include "kernels/math/activations.h"
#include "kernels/math/tanh.h"

void pnn_cpu_act_forward(void *ctx, pnn_act act, int64_t n, const float *x, float *y) {
    (void)ctx;
    switch (act) {
    case PNN_ACT_TANH:
#pragma omp parallel for simd if (n > PNN_CPU_PARALLEL_MIN)
        for (int64_t i = 0; i < n; i++) y[i] = pnn_tanh_arith(x[i]);
        break;
    case PNN_ACT_RELU:
#pragma omp parallel for simd if (n > PNN_CPU_PARALLEL_MIN)
        for (int64_t i = 0; i < n; i++) y[i] = x[i] > 0.0f ? x[i] : (x[i] != x[i] ? x[i] : 0.0f);
        break;
    default:
#pragma omp parallel for if (n > PNN_CPU_PARALLEL_MIN)
        for (int64_t i = 0; i < n; i++) y[i] = pnn_act_apply(act, x[i]);
    }
}

void pnn_cpu_act_backward(void *ctx, pnn_act act, int64_t n, const float *x, const float *y, const float *dy,
                          float *dx) {
    (void)ctx;
    switch (act) {
    case PNN_ACT_TANH:
#pragma omp parallel for simd if (n > PNN_CPU_PARALLEL_MIN)
        for (int64_t i = 0; i < n; i++) dx[i] = dy[i] * (1.0f - y[i] * y[i]);
        break;
    default:
#pragma omp parallel for if (n > PNN_CPU_PARALLEL_MIN)
        for (int64_t i = 0; i < n; i++) dx[i] = dy[i] * pnn_act_derivative(act, x[i], y[i]);
    }
}

void pnn_cpu_adam_update(void *ctx, int64_t n, float *param, const float *grad, float *m, float *v, float lr,
                         float beta1, float beta2, float eps, float weight_decay, int64_t step) {
    (void)ctx;
    float bc1 = (float)(1.0 - pow(beta1, (double)step));
    float bc2 = (float)(1.0 - pow(beta2, (double)step));
#pragma omp parallel for simd if (n > PNN_CPU_PARALLEL_MIN)
    for (int64_t i = 0; i < n; i++)
        pnn_adam_element(&param[i], grad[i], &m[i], &v[i], lr, beta1, beta2, eps, weight_decay, bc1, bc2);
}

void pnn_cpu_sgd_update(void *ctx, int64_t n, float *param, const float *grad, float *velocity, float lr,
                        float momentum, float weight_decay) {
    (void)ctx;
#pragma omp parallel for simd if (n > PNN_CPU_PARALLEL_MIN)
    for (int64_t i = 0; i < n; i++) pnn_sgd_element(&param[i], grad[i], &velocity[i], lr, momentum, weight_decay);
}
