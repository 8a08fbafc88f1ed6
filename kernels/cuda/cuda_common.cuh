/* What the CUDA backend's files share: the check macros (one per error domain, recording the
 * call text, file and line), the calling thread's stream and cuBLAS handle, the caching
 * allocator for scratch, launch sizes, and the op functions the table in backend_cuda.cu
 * points at (each with the signature of its pnn_backend_i member).
 *
 * Ops return void in the table, so a failure is recorded: the thread-local error is set
 * (pnn_last_error) and the backend keeps the first one until pnn_cuda_backend_status() reads it.
 *
 * Streams: every op runs on pnn_cuda_stream(), the per-thread default stream of the calling
 * thread (cudaStreamPerThread), so the main thread and device worker threads run concurrently
 * and ops of one thread stay ordered. Between threads there is no ordering: a thread that
 * hands backend memory to another calls sync first. PNN_CUDA_STREAMS=shared puts every thread
 * on the one legacy stream instead (a diagnostic for a missing sync). */
#ifndef PNN_CUDA_COMMON_CUH
#define PNN_CUDA_COMMON_CUH

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <stdint.h>

#include "kernels/cuda/cuda_backend.h"
#include "pnn/backend.h"
#include "pnn/status.h"

#define PNN_CUDA_THREADS 256

/* ---- errors ---- */
pnn_status pnn_cuda_record(pnn_status st, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
pnn_status pnn_cuda_check_rt(cudaError_t err, const char *call, const char *file, int line);
pnn_status pnn_cuda_check_blas(cublasStatus_t st, const char *call, const char *file, int line);

#define PNN_CUDA_CHECK(call) pnn_cuda_check_rt((call), #call, __FILE__, __LINE__)
#define PNN_CUBLAS_CHECK(call) pnn_cuda_check_blas((call), #call, __FILE__, __LINE__)
/* after a kernel launch: launch errors (bad configuration) show at once, faults at the next sync */
#define PNN_CUDA_LAUNCHED(kernel) pnn_cuda_check_rt(cudaGetLastError(), "launch of " kernel, __FILE__, __LINE__)
#define PNN_CUDA_FAIL(st, ...) pnn_cuda_record((st), __FILE__, __LINE__, __VA_ARGS__)

/* ---- context ---- */
cudaStream_t pnn_cuda_stream(void);
cublasHandle_t pnn_cuda_cublas(void); /* NULL after a recorded failure */
int pnn_cuda_sm_count(void);
size_t pnn_cuda_smem_optin(void);
int pnn_cuda_tf32(void);
int pnn_cuda_conv_direct(void);

/* ---- scratch from the caching allocator (NULL and a recorded error on failure) ---- */
void *pnn_cuda_alloc(void *ctx, size_t bytes);
void pnn_cuda_release(void *ctx, void *ptr);

/* blocks for a grid-stride loop over n elements: enough to fill the GPU, no more */
static inline unsigned pnn_cuda_blocks(int64_t n) {
    int64_t b = (n + PNN_CUDA_THREADS - 1) / PNN_CUDA_THREADS;
    int64_t cap = (int64_t)pnn_cuda_sm_count() * 16;
    if (b > cap) b = cap;
    return b < 1 ? 1u : (unsigned)b;
}

#define PNN_GRID_STRIDE(i, n)                                                                     \
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < (n);                      \
         i += (int64_t)gridDim.x * blockDim.x)

/* ---- ops (backend_cuda.cu, ops_cuda.cu, complex_cuda.cu, conv_cuda.cu) ---- */
void pnn_cuda_gemm(void *ctx, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                   const float *a, int64_t lda, const float *b, int64_t ldb, float beta, float *c, int64_t ldc);
void pnn_cuda_fill(void *ctx, float *dst, float value, int64_t n);
void pnn_cuda_cgemm(void *ctx, char op_a, char op_b, int64_t m, int64_t n, int64_t k, const float alpha[2],
                    const float *a, int64_t lda, const float *b, int64_t ldb, const float beta[2], float *c,
                    int64_t ldc);
void pnn_cuda_fft(void *ctx, int64_t n, int64_t batch, int inverse, const float *x, float *y);
int64_t pnn_cuda_count_nonfinite(void *ctx, int64_t n, const float *x);
void pnn_cuda_rng_normal(void *ctx, uint64_t seed, uint64_t stream, uint64_t offset, int64_t n, float *out);
void pnn_cuda_copy2d(void *ctx, float *dst, int64_t dst_pitch, const float *src, int64_t src_pitch,
                     int64_t width, int64_t height);
void pnn_cuda_axpby(void *ctx, int64_t n, float alpha, const float *x, float beta, float *y);
void pnn_cuda_scale(void *ctx, int64_t n, float alpha, const float *x, float *y);
void pnn_cuda_clamp(void *ctx, int64_t n, float lo, float hi, float *x);
void pnn_cuda_dot(void *ctx, int64_t n, const float *x, const float *y, float *out);
void pnn_cuda_add_bias(void *ctx, int64_t rows, int64_t cols, const float *bias, float *y);
void pnn_cuda_bias_grad(void *ctx, int64_t rows, int64_t cols, const float *dy, float *dbias);
void pnn_cuda_act_forward(void *ctx, pnn_act act, int64_t n, const float *x, float *y);
void pnn_cuda_act_backward(void *ctx, pnn_act act, int64_t n, const float *x, const float *y,
                           const float *dy, float *dx);
void pnn_cuda_patchify(void *ctx, int64_t b, int64_t h, int64_t w, int64_t ph, int64_t pw,
                       const float *images, float *patches);
void pnn_cuda_unpatchify(void *ctx, int64_t b, int64_t h, int64_t w, int64_t ph, int64_t pw,
                         const float *patches, float *images);
void pnn_cuda_softmax_xent(void *ctx, int64_t rows, int64_t classes, const float *logits,
                           const float *labels, float *loss_rows, float *correct_rows, float *dlogits,
                           float grad_scale);
void pnn_cuda_mse(void *ctx, int64_t rows, int64_t cols, const float *y, const float *target,
                  float *loss_rows, float *dy, float grad_scale);
void pnn_cuda_adam_update(void *ctx, int64_t n, float *param, const float *grad, float *m, float *v,
                          float lr, float beta1, float beta2, float eps, float weight_decay, int64_t step);
void pnn_cuda_sgd_update(void *ctx, int64_t n, float *param, const float *grad, float *velocity,
                         float lr, float momentum, float weight_decay);

size_t pnn_cuda_conv2d_work_floats(const pnn_conv2d_params *p);
void pnn_cuda_conv2d_forward(void *ctx, const pnn_conv2d_params *p, const float *x, const float *weight,
                             const float *bias, float *y, float *work);
void pnn_cuda_conv2d_backward_data(void *ctx, const pnn_conv2d_params *p, const float *dy,
                                   const float *weight, float *dx, float *work);
void pnn_cuda_conv2d_backward_filter(void *ctx, const pnn_conv2d_params *p, const float *x,
                                     const float *dy, float *dweight, float *dbias, float *work);

/* cuDNN convolutions (conv_cudnn.cu, PNN_USE_CUDNN builds): PNN_ERR_UNSUPPORTED when cuDNN
 * offers no suitable algorithm or a call cannot be set up, so the caller can use the plain kernels
 * instead; after a set-up failure pnn_cudnn_broken() says why (NULL while cuDNN works). */
const char *pnn_cudnn_broken(void);
pnn_status pnn_cudnn_conv2d_forward(const pnn_conv2d_params *p, const float *x, const float *weight,
                                    const float *bias, float *y);
pnn_status pnn_cudnn_conv2d_backward_data(const pnn_conv2d_params *p, const float *dy, const float *weight,
                                          float *dx);
pnn_status pnn_cudnn_conv2d_backward_filter(const pnn_conv2d_params *p, const float *x, const float *dy,
                                            float *dweight, float *dbias);

/* column sums: out[c] += sum over rows of x[r, c], accumulated in double, deterministic */
void pnn_cuda_column_sums(int64_t rows, int64_t cols, const float *x, float *out);

#endif
