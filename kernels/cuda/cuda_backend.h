/* The C entry points of the CUDA backend (kernels/cuda, PNN_USE_CUDA builds only): what
 * base/backend_cpu.c registers, and the few switches that tests and benchmarks use. Layers,
 * twins and devices never include this: they reach the backend through pnn_backend_get. */
#ifndef PNN_CUDA_BACKEND_H
#define PNN_CUDA_BACKEND_H

#include <stdint.h>

#include "pnn/backend.h"

#ifdef __cplusplus
extern "C" {
#endif

/* GPUs visible to this process (0 when the driver is missing or reports none). */
int pnn_cuda_device_count(void);
/* The CUDA backend on device PNN_CUDA_DEVICE (default 0), initialised on first use; fails with
 * PNN_ERR_UNSUPPORTED when there is no GPU and PNN_ERR_CUDA when the device cannot start. */
pnn_status pnn_cuda_backend_get(const pnn_backend **be);
/* Waits for this thread's ops, then returns the first error recorded by any op since the last
 * call (and puts its message in pnn_last_error()), or PNN_OK. */
pnn_status pnn_cuda_backend_status(void);

/* GEMMs on TF32 tensor cores (1) or exact fp32 (0, the default, so CPU and GPU agree to fp32
 * rounding). Also set by PNN_CUDA_TF32=1 at start. Applies to cuBLAS and cuDNN calls. */
void pnn_cuda_set_tf32(int on);
/* Convolutions: 0 cuDNN when built with it, 1 the plain CUDA kernels. For tests. */
void pnn_cuda_set_conv_direct(int on);
/* The raw uint32 Philox stream (seed, stream) from offset, computed on the GPU and copied to
 * host memory: what rng_normal transforms; tests compare it bit for bit with the CPU's. */
pnn_status pnn_cuda_philox_u32(uint64_t seed, uint64_t stream, uint64_t offset, int64_t n, uint32_t *host);
/* Bytes the caching allocator holds from cudaMalloc, and of those in use. */
void pnn_cuda_memory_stats(size_t *reserved, size_t *in_use);
/* A short description of the device ("NVIDIA H100 80GB HBM3, sm_90, 132 SMs"). */
const char *pnn_cuda_device_name(void);

#ifdef __cplusplus
}
#endif
#endif
