/* Backends: where tensors live and ops run. A backend is a table of function pointers and a
 * context, chosen once; layers, twins, devices and trainers call ops through the table and
 * never branch on CPU versus GPU. All pointers passed to ops are backend memory. Ops do not
 * validate: their callers check shapes once, above. */
#ifndef PNN_BACKEND_H
#define PNN_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pnn/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct pnn_backend pnn_backend;

typedef enum { PNN_ACT_IDENTITY, PNN_ACT_RELU, PNN_ACT_TANH, PNN_ACT_SIGMOID } pnn_act;

/* Shape of one 2-D convolution (see conv2d_forward). */
typedef struct pnn_conv2d_params {
    int64_t batch, in_c, in_h, in_w;
    int64_t out_c, kh, kw;
    int64_t stride, pad;
} pnn_conv2d_params;

static inline int64_t pnn_conv2d_out_h(const pnn_conv2d_params *p) {
    return (p->in_h + 2 * p->pad - p->kh) / p->stride + 1;
}
static inline int64_t pnn_conv2d_out_w(const pnn_conv2d_params *p) {
    return (p->in_w + 2 * p->pad - p->kw) / p->stride + 1;
}

typedef struct pnn_backend_i {
    const char *name;
    /* memory: alloc returns NULL on failure; sizes in bytes */
    void *(*alloc)(void *ctx, size_t bytes);
    void (*release)(void *ctx, void *ptr);
    void (*to_host)(void *ctx, void *host, const void *src, size_t bytes);
    void (*from_host)(void *ctx, void *dst, const void *host, size_t bytes);
    void (*copy)(void *ctx, void *dst, const void *src, size_t bytes);
    void (*fill)(void *ctx, float *dst, float value, int64_t n);
    /* waits until every op issued so far has finished */
    void (*sync)(void *ctx);
    /* Handing results between threads without a full sync (all may be NULL: the CPU's ops are
     * done when they return). event_record marks the point after every op this thread has
     * issued; event_wait makes this thread's later ops wait for a point another thread marked;
     * event_free releases it (after the wait was issued). */
    void *(*event_record)(void *ctx);
    void (*event_wait)(void *ctx, void *event);
    void (*event_free)(void *ctx, void *event);
    /* Waits for the ops this thread issued and returns the first failure any op recorded since
     * the last call (its message in pnn_last_error()), clearing it. May be NULL: a backend whose
     * ops cannot fail (the CPU's). */
    pnn_status (*status)(void *ctx);

    /* C[m,n] = alpha * op(A)[m,k] * op(B)[k,n] + beta * C, row-major, leading dimensions given */
    void (*gemm)(void *ctx, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                 const float *a, int64_t lda, const float *b, int64_t ldb, float beta, float *c,
                 int64_t ldc);
    /* Complex matrices hold interleaved (re, im) floats, row-major, leading dimensions counted in
     * complex elements. C[m,n] = alpha op(A)[m,k] op(B)[k,n] + beta C, where op is 'N' (none),
     * 'T' (transpose) or 'C' (conjugate transpose); alpha and beta are complex. */
    void (*cgemm)(void *ctx, char op_a, char op_b, int64_t m, int64_t n, int64_t k, const float alpha[2],
                  const float *a, int64_t lda, const float *b, int64_t ldb, const float beta[2], float *c,
                  int64_t ldc);
    /* batch complex FFTs of length n, each over n interleaved complex values, from x to y (y may
     * be x): forward y_k = sum_j x_j e^(-2 pi i jk/n), or inverse with e^(+...) and no 1/n */
    void (*fft)(void *ctx, int64_t n, int64_t batch, int inverse, const float *x, float *y);
    /* number of NaN and Inf values among x[0..n) (synchronous: the result is on the host) */
    int64_t (*count_nonfinite)(void *ctx, int64_t n, const float *x);
    /* out[i] = standard normal number (offset + i) of (seed, stream), as pnn_rng_normal */
    void (*rng_normal)(void *ctx, uint64_t seed, uint64_t stream, uint64_t offset, int64_t n, float *out);
    /* dst[r, c] = src[r, c] for a height x width block with row pitches in floats */
    void (*copy2d)(void *ctx, float *dst, int64_t dst_pitch, const float *src, int64_t src_pitch,
                   int64_t width, int64_t height);
    /* y = alpha * x + beta * y */
    void (*axpby)(void *ctx, int64_t n, float alpha, const float *x, float beta, float *y);
    /* y = alpha * x */
    void (*scale)(void *ctx, int64_t n, float alpha, const float *x, float *y);
    /* x[i] = min(max(x[i], lo), hi), in place (NaN stays NaN) */
    void (*clamp)(void *ctx, int64_t n, float lo, float hi, float *x);
    /* *out (backend memory, one float) = sum x[i] * y[i], accumulated in double */
    void (*dot)(void *ctx, int64_t n, const float *x, const float *y, float *out);
    /* y[r, :] += bias for each of rows; dbias += column sums of dy */
    void (*add_bias)(void *ctx, int64_t rows, int64_t cols, const float *bias, float *y);
    void (*bias_grad)(void *ctx, int64_t rows, int64_t cols, const float *dy, float *dbias);

    void (*act_forward)(void *ctx, pnn_act act, int64_t n, const float *x, float *y);
    /* dx = dy * f'(x), given x and y = f(x) */
    void (*act_backward)(void *ctx, pnn_act act, int64_t n, const float *x, const float *y,
                         const float *dy, float *dx);

    /* images [b, h*w] -> patches [b * (h/ph) * (w/pw), ph*pw], patch-major, row-major inside a
     * patch; h % ph == 0 and w % pw == 0. unpatchify is its exact inverse (for gradients). */
    void (*patchify)(void *ctx, int64_t b, int64_t h, int64_t w, int64_t ph, int64_t pw,
                     const float *images, float *patches);
    void (*unpatchify)(void *ctx, int64_t b, int64_t h, int64_t w, int64_t ph, int64_t pw,
                       const float *patches, float *images);

    /* Softmax cross-entropy over rows x classes; labels hold class indices as floats.
     * loss_rows[r] = -log softmax(logits[r])[label]; dlogits = (softmax - onehot) * grad_scale
     * (dlogits may be NULL); correct_rows[r] = 1 when argmax equals the label, else 0. */
    void (*softmax_xent)(void *ctx, int64_t rows, int64_t classes, const float *logits,
                         const float *labels, float *loss_rows, float *correct_rows,
                         float *dlogits, float grad_scale);
    /* MSE: loss_rows[r] = mean_c (y - t)^2; dy = 2 (y - t) / cols * grad_scale (may be NULL) */
    void (*mse)(void *ctx, int64_t rows, int64_t cols, const float *y, const float *target,
                float *loss_rows, float *dy, float grad_scale);

    /* Optimizer updates over n parameters, in place. step counts from 1 (Adam bias correction). */
    void (*adam_update)(void *ctx, int64_t n, float *param, const float *grad, float *m, float *v,
                        float lr, float beta1, float beta2, float eps, float weight_decay,
                        int64_t step);
    void (*sgd_update)(void *ctx, int64_t n, float *param, const float *grad, float *velocity,
                       float lr, float momentum, float weight_decay);

    /* 2-D convolution (cross-correlation, as PyTorch's Conv2d), NCHW, one stride and one zero
     * padding for both axes: x [batch, in_c, in_h, in_w], weight [out_c, in_c, kh, kw],
     * y [batch, out_c, out_h, out_w] (pnn_conv2d_out_h/w). work is scratch of
     * conv2d_work_floats(p) floats (0 allowed: the backend then needs none). */
    size_t (*conv2d_work_floats)(const pnn_conv2d_params *p);
    /* y = conv(x, weight) (+ bias[out_c] per channel when bias is not NULL); y overwritten */
    void (*conv2d_forward)(void *ctx, const pnn_conv2d_params *p, const float *x,
                           const float *weight, const float *bias, float *y, float *work);
    /* dx = the gradient of the input given dy (overwritten) */
    void (*conv2d_backward_data)(void *ctx, const pnn_conv2d_params *p, const float *dy,
                                 const float *weight, float *dx, float *work);
    /* dweight += the gradient of the weight; dbias (may be NULL) += per-channel sums of dy */
    void (*conv2d_backward_filter)(void *ctx, const pnn_conv2d_params *p, const float *x,
                                   const float *dy, float *dweight, float *dbias, float *work);
} pnn_backend_i;

struct pnn_backend {
    const pnn_backend_i *iface;
    void *ctx;
};

/* The CPU backend (OpenBLAS + OpenMP); always available. */
const pnn_backend *pnn_backend_cpu(void);
/* "cpu", "cuda" or "auto"; fails with PNN_ERR_UNSUPPORTED for a backend this build lacks.
 * "auto" is CUDA when this build has it and a GPU is present, else the CPU. Test-only:
 * "faulty:OP:N" is pnn_backend_faulty(OP, N). */
pnn_status pnn_backend_get(const char *name, const pnn_backend **be);
/* Test-only: the CPU backend with op OP (gemm, to_host, from_host, copy, fill, axpby, scale,
 * add_bias, act_forward, act_backward, softmax_xent, adam_update, rng_normal, count_nonfinite)
 * failing on each of its calls after the first `after`: the op does nothing (count_nonfinite
 * returns 0) and records an error that pnn_backend_status returns, as a GPU op that fails
 * asynchronously does. It shows, without a GPU, that every failure surfaces. */
pnn_status pnn_backend_faulty(const char *op, int64_t after, const pnn_backend **be);
/* Calls of the op so far of a backend made by pnn_backend_faulty (-1 for any other backend). */
int64_t pnn_backend_faulty_calls(const pnn_backend *be);
/* Ops return nothing, and a GPU backend runs them asynchronously: this waits for the ops this
 * thread issued and returns the first error any op of the backend recorded since the last call
 * (its message in pnn_last_error()), or PNN_OK. Always PNN_OK on the CPU. */
pnn_status pnn_backend_status(const pnn_backend *be);

#define PNN_BE(t) ((t)->backend->iface)

#ifdef __cplusplus
}
#endif
#endif
