/* The CPU kernels behind the CPU backend table: each has the signature of its entry in
 * pnn_backend_i (include/pnn/backend.h), ctx unused. They are also the reference that GPU
 * kernels are tested against. */
#ifndef PNN_CPU_OPS_H
#define PNN_CPU_OPS_H

#include "pnn/backend.h"

/* Elements below which an elementwise CPU op runs on one thread (a parallel region costs more). */
#define PNN_CPU_PARALLEL_MIN 32768

void pnn_cpu_gemm(void *ctx, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                  const float *a, int64_t lda, const float *b, int64_t ldb, float beta, float *c,
                  int64_t ldc);
void pnn_cpu_cgemm(void *ctx, char op_a, char op_b, int64_t m, int64_t n, int64_t k, const float alpha[2],
                   const float *a, int64_t lda, const float *b, int64_t ldb, const float beta[2], float *c,
                   int64_t ldc);
void pnn_cpu_fft(void *ctx, int64_t n, int64_t batch, int inverse, const float *x, float *y);
void pnn_cpu_copy2d(void *ctx, float *dst, int64_t dst_pitch, const float *src, int64_t src_pitch,
                    int64_t width, int64_t height);
void pnn_cpu_axpby(void *ctx, int64_t n, float alpha, const float *x, float beta, float *y);
void pnn_cpu_scale(void *ctx, int64_t n, float alpha, const float *x, float *y);
void pnn_cpu_clamp(void *ctx, int64_t n, float lo, float hi, float *x);
void pnn_cpu_dot(void *ctx, int64_t n, const float *x, const float *y, float *out);
void pnn_cpu_add_bias(void *ctx, int64_t rows, int64_t cols, const float *bias, float *y);
void pnn_cpu_bias_grad(void *ctx, int64_t rows, int64_t cols, const float *dy, float *dbias);
void pnn_cpu_act_forward(void *ctx, pnn_act act, int64_t n, const float *x, float *y);
void pnn_cpu_act_backward(void *ctx, pnn_act act, int64_t n, const float *x, const float *y,
                          const float *dy, float *dx);
void pnn_cpu_patchify(void *ctx, int64_t b, int64_t h, int64_t w, int64_t ph, int64_t pw,
                      const float *images, float *patches);
void pnn_cpu_unpatchify(void *ctx, int64_t b, int64_t h, int64_t w, int64_t ph, int64_t pw,
                        const float *patches, float *images);
void pnn_cpu_softmax_xent(void *ctx, int64_t rows, int64_t classes, const float *logits,
                          const float *labels, float *loss_rows, float *correct_rows, float *dlogits,
                          float grad_scale);
void pnn_cpu_mse(void *ctx, int64_t rows, int64_t cols, const float *y, const float *target,
                 float *loss_rows, float *dy, float grad_scale);
void pnn_cpu_adam_update(void *ctx, int64_t n, float *param, const float *grad, float *m, float *v,
                         float lr, float beta1, float beta2, float eps, float weight_decay,
                         int64_t step);
void pnn_cpu_sgd_update(void *ctx, int64_t n, float *param, const float *grad, float *velocity,
                        float lr, float momentum, float weight_decay);

size_t pnn_cpu_conv2d_work_floats(const pnn_conv2d_params *p);
void pnn_cpu_conv2d_forward(void *ctx, const pnn_conv2d_params *p, const float *x, const float *weight,
                            const float *bias, float *y, float *work);
void pnn_cpu_conv2d_backward_data(void *ctx, const pnn_conv2d_params *p, const float *dy,
                                  const float *weight, float *dx, float *work);
void pnn_cpu_conv2d_backward_filter(void *ctx, const pnn_conv2d_params *p, const float *x,
                                    const float *dy, float *dweight, float *dbias, float *work);

#endif
