/* The CPU tier's stand-in for cuBLAS: the calls pnn's CUDA files make, served by OpenBLAS
 * (tests/cuda_emu/cuda_emu.cpp). Column-major, as cuBLAS. */
#ifndef PNN_CUDA_EMU_CUBLAS_H
#define PNN_CUDA_EMU_CUBLAS_H
#include "../cuda_emu.h"

typedef struct {
    float x, y;
} cuComplex;
static inline cuComplex make_cuComplex(float r, float i) { return cuComplex{r, i}; }
typedef struct cublasContext *cublasHandle_t;
typedef enum {
    CUBLAS_STATUS_SUCCESS = 0,
    CUBLAS_STATUS_NOT_INITIALIZED = 1,
    CUBLAS_STATUS_ALLOC_FAILED = 3,
    CUBLAS_STATUS_INVALID_VALUE = 7
} cublasStatus_t;
typedef enum { CUBLAS_OP_N = 0, CUBLAS_OP_T = 1, CUBLAS_OP_C = 2 } cublasOperation_t;
typedef enum { CUBLAS_DEFAULT_MATH = 0, CUBLAS_TF32_TENSOR_OP_MATH = 3 } cublasMath_t;

cublasStatus_t cublasCreate(cublasHandle_t *h);
cublasStatus_t cublasDestroy(cublasHandle_t h);
cublasStatus_t cublasSetStream(cublasHandle_t h, cudaStream_t s);
cublasStatus_t cublasSetMathMode(cublasHandle_t h, cublasMath_t m);
const char *cublasGetStatusString(cublasStatus_t st);
cublasStatus_t cublasSgemm_64(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int64_t m, int64_t n,
                              int64_t k, const float *alpha, const float *a, int64_t lda, const float *b, int64_t ldb,
                              const float *beta, float *c, int64_t ldc);
cublasStatus_t cublasCgemm_64(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int64_t m, int64_t n,
                              int64_t k, const cuComplex *alpha, const cuComplex *a, int64_t lda, const cuComplex *b,
                              int64_t ldb, const cuComplex *beta, cuComplex *c, int64_t ldc);
#endif
