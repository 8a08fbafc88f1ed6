/* The CPU tier of the CUDA kernels: pnn's .cu files compiled as C++ for the CPU against this
 * header, so that their indexing, shared-memory sizing and barrier logic run under
 * AddressSanitizer in CI and are compared with the CPU reference (tests/test_backend_ops.c),
 * without a GPU.
 *
 * Every CUDA thread of a block is a fiber (ucontext) on one OS thread; blocks run one after
 * another. __syncthreads is a real barrier: a fiber stops there until every live thread of its
 * block has arrived, and a barrier that cannot be reached (divergent code) is reported as a
 * deadlock. __shfl_xor_sync exchanges values through a warp-wide barrier. Static __shared__
 * arrays become function statics (blocks never overlap), dynamic shared memory a buffer of the
 * launch's size. The runtime, cuBLAS and cuFFT calls the kernels make are served by the CPU
 * (memcpy, OpenBLAS, FFTW). What this cannot show: timing, real races between threads or
 * streams, memory-model effects, the behaviour of the real cuBLAS/cuFFT/cuDNN (docs/gpu.md). */
#ifndef PNN_CUDA_EMU_H
#define PNN_CUDA_EMU_H

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>

/* ---- keywords ---- */
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__ static

/* ---- the thread hierarchy ---- */
struct dim3 {
    unsigned x, y, z;
    constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};
typedef dim3 uint3;

namespace pnn_emu {
extern dim3 thread_idx, block_idx, block_dim, grid_dim;
extern unsigned char *dyn_smem;
void syncthreads();
/* a value exchanged within the calling thread's warp: each thread's v, read back from lane */
uint64_t warp_exchange(uint64_t v, int lane);
void launch(const std::function<void()> &kernel, dim3 grid, dim3 block, size_t smem = 0, void *stream = nullptr);
}  // namespace pnn_emu

#define threadIdx (pnn_emu::thread_idx)
#define blockIdx (pnn_emu::block_idx)
#define blockDim (pnn_emu::block_dim)
#define gridDim (pnn_emu::grid_dim)
#define warpSize 32
#define __syncthreads() pnn_emu::syncthreads()
#define PNN_EMU_DYN_SMEM(type) ((type *)pnn_emu::dyn_smem)

template <typename T> static inline T __shfl_xor_sync(unsigned mask, T v, int lane_mask, int width = 32) {
    (void)mask;
    static_assert(sizeof(T) <= 8, "shuffle of a value over 8 bytes");
    uint64_t bits = 0;
    std::memcpy(&bits, &v, sizeof v);
    int lane = (int)((pnn_emu::thread_idx.x + pnn_emu::thread_idx.y * pnn_emu::block_dim.x) % 32);
    int from = (lane ^ lane_mask) % width + lane / width * width;
    bits = pnn_emu::warp_exchange(bits, from);
    T out;
    std::memcpy(&out, &bits, sizeof out);
    return out;
}

/* one OS thread runs the fibers: no two threads ever touch memory at once */
template <typename T> static inline T atomicAdd(T *p, T v) {
    T old = *p;
    *p = old + v;
    return old;
}

/* ---- the runtime ---- */
typedef enum {
    cudaSuccess = 0,
    cudaErrorInvalidValue = 1,
    cudaErrorMemoryAllocation = 2,
    cudaErrorInvalidConfiguration = 9,
    cudaErrorNoDevice = 100
} cudaError_t;
typedef enum { cudaMemcpyHostToHost, cudaMemcpyHostToDevice, cudaMemcpyDeviceToHost, cudaMemcpyDeviceToDevice } cudaMemcpyKind;
typedef enum { cudaMemoryTypeUnregistered, cudaMemoryTypeHost, cudaMemoryTypeDevice } cudaMemoryType;
typedef enum { cudaFuncAttributeMaxDynamicSharedMemorySize = 8 } cudaFuncAttribute;
typedef struct CUstream_st *cudaStream_t;
typedef struct CUevent_st *cudaEvent_t;
#define cudaStreamPerThread ((cudaStream_t)0x2)
#define cudaStreamLegacy ((cudaStream_t)0x1)
#define cudaEventDisableTiming 0x2

struct cudaDeviceProp {
    char name[256];
    int major, minor, multiProcessorCount;
    size_t sharedMemPerBlockOptin, totalGlobalMem;
};
struct cudaPointerAttributes {
    cudaMemoryType type;
};

cudaError_t cudaGetDeviceCount(int *n);
cudaError_t cudaSetDevice(int d);
cudaError_t cudaGetDeviceProperties(cudaDeviceProp *p, int d);
cudaError_t cudaMalloc(void **p, size_t bytes);
cudaError_t cudaFree(void *p);
cudaError_t cudaMemGetInfo(size_t *free_b, size_t *total_b);
cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind, cudaStream_t s);
cudaError_t cudaMemcpy2DAsync(void *dst, size_t dpitch, const void *src, size_t spitch, size_t width, size_t height,
                              cudaMemcpyKind kind, cudaStream_t s);
cudaError_t cudaMemsetAsync(void *dst, int value, size_t bytes, cudaStream_t s);
cudaError_t cudaStreamSynchronize(cudaStream_t s);
cudaError_t cudaDeviceSynchronize();
cudaError_t cudaStreamWaitEvent(cudaStream_t s, cudaEvent_t e, unsigned flags);
cudaError_t cudaEventCreateWithFlags(cudaEvent_t *e, unsigned flags);
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s);
cudaError_t cudaEventDestroy(cudaEvent_t e);
cudaError_t cudaPointerGetAttributes(cudaPointerAttributes *a, const void *p);
cudaError_t cudaGetLastError();
cudaError_t cudaPeekAtLastError();
const char *cudaGetErrorString(cudaError_t e);
const char *cudaGetErrorName(cudaError_t e);
template <typename F> static inline cudaError_t cudaFuncSetAttribute(F f, cudaFuncAttribute a, int v) {
    (void)f, (void)a, (void)v;
    return cudaSuccess;
}

#endif
