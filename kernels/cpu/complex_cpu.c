/* Complex GEMM (OpenBLAS cgemm) and batched complex FFTs (FFTW, single precision) for the CPU
 * backend: the generic complex ops that wave and optical systems build on. FFTW plans are made
 * once per (length, batch, direction, in place or not) and kept for the process: planning is not
 * thread-safe, so it is done under a lock; executing a plan on other arrays is. */
#include <cblas.h>
#include <fftw3.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cpu/cpu_ops.h"

static CBLAS_TRANSPOSE blas_op(char op) {
    return op == 'C' ? CblasConjTrans : op == 'T' ? CblasTrans : CblasNoTrans;
}

void pnn_cpu_cgemm(void *ctx, char op_a, char op_b, int64_t m, int64_t n, int64_t k, const float alpha[2],
                   const float *a, int64_t lda, const float *b, int64_t ldb, const float beta[2], float *c,
                   int64_t ldc) {
    (void)ctx;
    if (m == 0 || n == 0) return;
    cblas_cgemm(CblasRowMajor, blas_op(op_a), blas_op(op_b), (blasint)m, (blasint)n, (blasint)k, alpha, a,
                (blasint)lda, b, (blasint)ldb, beta, c, (blasint)ldc);
}

typedef struct fft_plan {
    int64_t n, batch;
    int inverse, in_place;
    fftwf_plan plan;
    struct fft_plan *next;
} fft_plan;

static pthread_mutex_t plans_mu = PTHREAD_MUTEX_INITIALIZER;
static fft_plan *plans;

/* A plan for these sizes (made on scratch arrays: FFTW_ESTIMATE does not touch them anyway).
 * NULL when FFTW cannot make one. */
static fftwf_plan get_plan(int64_t n, int64_t batch, int inverse, int in_place) {
    pthread_mutex_lock(&plans_mu);
    fft_plan *p = plans;
    while (p && !(p->n == n && p->batch == batch && p->inverse == inverse && p->in_place == in_place)) p = p->next;
    if (!p && (p = calloc(1, sizeof *p))) {
        size_t floats = (size_t)(2 * n * batch);
        fftwf_complex *x = fftwf_malloc(floats * sizeof(float)), *y = in_place ? x : fftwf_malloc(floats * sizeof(float));
        int len = (int)n;
        if (x && y)
            p->plan = fftwf_plan_many_dft(1, &len, (int)batch, x, NULL, 1, len, y, NULL, 1, len,
                                          inverse ? FFTW_BACKWARD : FFTW_FORWARD, FFTW_ESTIMATE | FFTW_UNALIGNED);
        if (y != x) fftwf_free(y);
        fftwf_free(x);
        if (p->plan) {
            *p = (fft_plan){n, batch, inverse, in_place, p->plan, plans};
            plans = p;
        } else {
            free(p);
            p = NULL;
        }
    }
    pthread_mutex_unlock(&plans_mu);
    return p ? p->plan : NULL;
}

void pnn_cpu_fft(void *ctx, int64_t n, int64_t batch, int inverse, const float *x, float *y) {
    (void)ctx;
    if (n <= 0 || batch <= 0) return;
    fftwf_plan plan = get_plan(n, batch, inverse != 0, x == y);
    if (!plan) { /* FFTW refused the sizes: NaN, so the caller's finite checks see it */
        for (int64_t i = 0; i < 2 * n * batch; i++) y[i] = __builtin_nanf("");
        return;
    }
    fftwf_execute_dft(plan, (fftwf_complex *)x, (fftwf_complex *)y);
}
