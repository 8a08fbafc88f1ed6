/* The CPU tier's stand-in for cuFFT: batched complex-to-complex transforms, served by FFTW
 * (tests/cuda_emu/cuda_emu.cpp). */
#ifndef PNN_CUDA_EMU_CUFFT_H
#define PNN_CUDA_EMU_CUFFT_H
#include "../cuda_emu.h"

typedef struct {
    float x, y;
} cufftComplex;
typedef int cufftHandle;
typedef enum { CUFFT_SUCCESS = 0, CUFFT_INVALID_PLAN = 1, CUFFT_ALLOC_FAILED = 2, CUFFT_INVALID_VALUE = 4 } cufftResult;
typedef enum { CUFFT_C2C = 0x29 } cufftType;
#define CUFFT_FORWARD (-1)
#define CUFFT_INVERSE 1

cufftResult cufftCreate(cufftHandle *plan);
cufftResult cufftMakePlanMany64(cufftHandle plan, int rank, long long *n, long long *inembed, long long istride,
                                long long idist, long long *onembed, long long ostride, long long odist,
                                cufftType type, long long batch, size_t *work);
cufftResult cufftSetStream(cufftHandle plan, cudaStream_t s);
cufftResult cufftExecC2C(cufftHandle plan, cufftComplex *in, cufftComplex *out, int direction);
cufftResult cufftDestroy(cufftHandle plan);
#endif
