/* Complex GEMM (cuBLAS) and batched complex FFTs (cuFFT) for the CUDA backend, the twins of
 * kernels/cpu/complex_cpu.c. Row-major operands are cuBLAS's column-major transposes, so
 * C^T = op(B)^T op(A)^T is computed, with op(X)^T of the column-major view X^T being that view
 * itself ('N'), its transpose ('T') or its conjugate transpose ('C'). cuFFT plans are cached per
 * (length, batch) and run under a lock, since a plan's stream is set per call. */
#include <cufft.h>
#include <pthread.h>

#include "kernels/cuda/cuda_common.cuh"

static cublasOperation_t blas_op(char op) {
    return op == 'C' ? CUBLAS_OP_C : op == 'T' ? CUBLAS_OP_T : CUBLAS_OP_N;
}

void pnn_cuda_cgemm(void *ctx, char op_a, char op_b, int64_t m, int64_t n, int64_t k, const float alpha[2],
                    const float *a, int64_t lda, const float *b, int64_t ldb, const float beta[2], float *c,
                    int64_t ldc) {
    (void)ctx;
    if (m == 0 || n == 0) return;
    cublasHandle_t h = pnn_cuda_cublas();
    if (!h) return;
    const cuComplex al = make_cuComplex(alpha[0], alpha[1]), be = make_cuComplex(beta[0], beta[1]);
    PNN_CUBLAS_CHECK(cublasCgemm_64(h, blas_op(op_b), blas_op(op_a), n, m, k, &al, (const cuComplex *)b, ldb,
                                    (const cuComplex *)a, lda, &be, (cuComplex *)c, ldc));
}

typedef struct fft_plan {
    int64_t n, batch;
    cufftHandle plan;
    struct fft_plan *next;
} fft_plan;

static pthread_mutex_t g_fft_mu = PTHREAD_MUTEX_INITIALIZER;
static fft_plan *g_plans;

void pnn_cuda_fft(void *ctx, int64_t n, int64_t batch, int inverse, const float *x, float *y) {
    (void)ctx;
    if (n <= 0 || batch <= 0) return;
    pthread_mutex_lock(&g_fft_mu);
    fft_plan *p = g_plans;
    while (p && !(p->n == n && p->batch == batch)) p = p->next;
    if (!p) {
        p = (fft_plan *)calloc(1, sizeof *p);
        long long len = n;
        size_t work = 0;
        cufftResult r = p ? cufftCreate(&p->plan) : CUFFT_ALLOC_FAILED;
        if (r == CUFFT_SUCCESS)
            r = cufftMakePlanMany64(p->plan, 1, &len, NULL, 1, len, NULL, 1, len, CUFFT_C2C, (long long)batch, &work);
        if (r != CUFFT_SUCCESS) {
            if (p) cufftDestroy(p->plan);
            free(p);
            pthread_mutex_unlock(&g_fft_mu);
            PNN_CUDA_FAIL(r == CUFFT_ALLOC_FAILED ? PNN_ERR_NOMEM : PNN_ERR_CUDA,
                          "cuFFT cannot plan %lld transforms of length %lld (cufftResult %d)", (long long)batch,
                          (long long)n, (int)r);
            return;
        }
        p->n = n, p->batch = batch, p->next = g_plans;
        g_plans = p;
    }
    cufftResult r = cufftSetStream(p->plan, pnn_cuda_stream());
    if (r == CUFFT_SUCCESS)
        r = cufftExecC2C(p->plan, (cufftComplex *)x, (cufftComplex *)y, inverse ? CUFFT_INVERSE : CUFFT_FORWARD);
    pthread_mutex_unlock(&g_fft_mu);
    if (r != CUFFT_SUCCESS)
        PNN_CUDA_FAIL(PNN_ERR_CUDA, "cufftExecC2C of %lld transforms of length %lld failed (cufftResult %d)",
                      (long long)batch, (long long)n, (int)r);
}
