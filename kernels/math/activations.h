/* Elementwise math of the digital ops, written once for the CPU kernels and the CUDA kernels:
 * activations and their derivatives, and the per-element optimizer updates. */
#ifndef PNN_MATH_ACTIVATIONS_H
#define PNN_MATH_ACTIVATIONS_H

#include <math.h>

#include "pnn/backend.h"

#include "hd.h"

/* 1 / (1 + e^-x) without overflow for large |x|: exp only ever sees a non-positive argument. */
PNN_HD float pnn_sigmoid(float x) {
    if (x >= 0.0f) return 1.0f / (1.0f + expf(-x));
    float e = expf(x);
    return e / (1.0f + e);
}

PNN_HD float pnn_act_apply(pnn_act act, float x) {
    switch (act) {
    case PNN_ACT_RELU: return x > 0.0f ? x : 0.0f;
    case PNN_ACT_TANH: return tanhf(x);
    case PNN_ACT_SIGMOID: return pnn_sigmoid(x);
    default: return x;
    }
}

/* f'(x) for y = f(x); tanh and sigmoid use y, which the forward already computed. The ReLU
 * derivative at 0 is taken as 0, as PyTorch does. */
PNN_HD float pnn_act_derivative(pnn_act act, float x, float y) {
    switch (act) {
    case PNN_ACT_RELU: return x > 0.0f ? 1.0f : 0.0f;
    case PNN_ACT_TANH: return 1.0f - y * y;
    case PNN_ACT_SIGMOID: return y * (1.0f - y);
    default: return 1.0f;
    }
}

/* One Adam update of one parameter (PyTorch's Adam, L2 weight decay added to the gradient).
 * bc1 = 1 - beta1^step and bc2 = 1 - beta2^step are computed once per call by the caller. */
PNN_HD void pnn_adam_element(float *param, float grad, float *m, float *v, float lr, float beta1,
                             float beta2, float eps, float weight_decay, float bc1, float bc2) {
    float g = grad + weight_decay * *param;
    *m = beta1 * *m + (1.0f - beta1) * g;
    *v = beta2 * *v + (1.0f - beta2) * g * g;
    float mhat = *m / bc1, vhat = *v / bc2;
    *param -= lr * mhat / (sqrtf(vhat) + eps);
}

/* One SGD-with-momentum update of one parameter (PyTorch's SGD without dampening or Nesterov;
 * a zero velocity makes the first step plain SGD, as PyTorch's lazily created buffer does). */
PNN_HD void pnn_sgd_element(float *param, float grad, float *velocity, float lr, float momentum,
                            float weight_decay) {
    float g = grad + weight_decay * *param;
    *velocity = momentum * *velocity + g;
    *param -= lr * *velocity;
}

#endif
