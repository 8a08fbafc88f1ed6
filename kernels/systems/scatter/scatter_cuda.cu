/* CUDA kernels of the scattering system (the CUDA twin of scatter_cpu.c; the per-element math is
 * scatter.h, shared with the CPU), reached through pnn_scatter_cuda_ops. The matrix products are
 * the backend's cuBLAS gemm and cgemm. */
#include "kernels/cuda/cuda_common.cuh"
#include "kernels/systems/scatter/scatter.h"
#include "kernels/systems/scatter/scatter_ops.h"

/* rows of one block's share of the theta adjoint (partial sums in double, then summed in order) */
#define SCATTER_ROWS_PER_CHUNK 64
#define SCATTER_MAX_CHUNKS 256

__global__ void scatter_modulate_kernel(int64_t modes, int64_t y_dim, float gamma, const float *theta,
                                        const float *b2, float *w) {
    PNN_GRID_STRIDE(i, modes * y_dim) {
        float pr, pi;
        pnn_scatter_phase(theta[i / y_dim], gamma, &pr, &pi);
        float br = b2[2 * i], bi = b2[2 * i + 1];
        w[2 * i] = pr * br - pi * bi;
        w[2 * i + 1] = pr * bi + pi * br;
    }
}

static void cuda_modulate(void *ctx, int64_t modes, int64_t y_dim, float gamma, const float *theta, const float *b2,
                          float *w) {
    (void)ctx;
    if (modes * y_dim <= 0) return;
    scatter_modulate_kernel<<<pnn_cuda_blocks(modes * y_dim), PNN_CUDA_THREADS, 0, pnn_cuda_stream()>>>(
        modes, y_dim, gamma, theta, b2, w);
    PNN_CUDA_LAUNCHED("scatter_modulate_kernel");
}

/* partial[chunk, m] = sum over the chunk's rows, in row order, of Im(gu conj(u)) at mode m */
__global__ void scatter_phase_partial_kernel(int64_t rows, int64_t modes, int64_t rows_per_chunk, const float *gu,
                                             const float *u, double *partial) {
    int64_t m = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (m >= modes) return;
    int64_t b0 = (int64_t)blockIdx.y * rows_per_chunk, b1 = b0 + rows_per_chunk < rows ? b0 + rows_per_chunk : rows;
    double acc = 0.0;
    for (int64_t b = b0; b < b1; b++) {
        int64_t i = 2 * (b * modes + m);
        acc += (double)pnn_scatter_phase_grad(gu[i], gu[i + 1], u[i], u[i + 1]);
    }
    partial[(int64_t)blockIdx.y * modes + m] = acc;
}

__global__ void scatter_phase_final_kernel(int64_t modes, int chunks, const double *partial, float *dtheta) {
    PNN_GRID_STRIDE(m, modes) {
        double total = 0.0;
        for (int k = 0; k < chunks; k++) total += partial[(int64_t)k * modes + m];
        dtheta[m] += (float)total;
    }
}

static void cuda_modulate_adjoint(void *ctx, int64_t rows, int64_t modes, const float *gu, const float *u,
                                  float *dtheta) {
    (void)ctx;
    if (rows <= 0 || modes <= 0) return;
    cudaStream_t s = pnn_cuda_stream();
    int64_t chunks = (rows + SCATTER_ROWS_PER_CHUNK - 1) / SCATTER_ROWS_PER_CHUNK;
    if (chunks > SCATTER_MAX_CHUNKS) chunks = SCATTER_MAX_CHUNKS;
    int64_t rows_per_chunk = (rows + chunks - 1) / chunks;
    double *partial = (double *)pnn_cuda_alloc(NULL, (size_t)(chunks * modes) * sizeof(double));
    if (!partial) {
        PNN_CUDA_FAIL(PNN_ERR_NOMEM, "scatter: no GPU memory for %lld partial sums of the phase gradient",
                      (long long)(chunks * modes));
        return;
    }
    dim3 grid((unsigned)((modes + PNN_CUDA_THREADS - 1) / PNN_CUDA_THREADS), (unsigned)chunks);
    scatter_phase_partial_kernel<<<grid, PNN_CUDA_THREADS, 0, s>>>(rows, modes, rows_per_chunk, gu, u, partial);
    PNN_CUDA_LAUNCHED("scatter_phase_partial_kernel");
    scatter_phase_final_kernel<<<pnn_cuda_blocks(modes), PNN_CUDA_THREADS, 0, s>>>(modes, (int)chunks, partial,
                                                                                   dtheta);
    PNN_CUDA_LAUNCHED("scatter_phase_final_kernel");
    pnn_cuda_release(NULL, partial);
}

/* one warp per mode, its y_dim terms in double, reduced in a fixed order */
__global__ void scatter_phase_medium_kernel(int64_t modes, int64_t y_dim, const float *s, const float *w,
                                            float *dtheta) {
    int64_t m = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) / 32;
    int lane = threadIdx.x % 32;
    if (m >= modes) return; /* whole warps leave together */
    double acc = 0.0;
    for (int64_t k = lane; k < y_dim; k += 32) {
        int64_t i = 2 * (m * y_dim + k);
        acc += (double)pnn_scatter_phase_grad(s[i], s[i + 1], w[i], w[i + 1]);
    }
    for (int o = 16; o > 0; o /= 2) acc += __shfl_xor_sync(0xffffffffu, acc, o);
    if (lane == 0) dtheta[m] += (float)acc;
}

static void cuda_modulate_adjoint_medium(void *ctx, int64_t modes, int64_t y_dim, const float *s, const float *w,
                                         float *dtheta) {
    (void)ctx;
    if (modes <= 0 || y_dim <= 0) return;
    unsigned blocks = (unsigned)((modes * 32 + PNN_CUDA_THREADS - 1) / PNN_CUDA_THREADS);
    scatter_phase_medium_kernel<<<blocks, PNN_CUDA_THREADS, 0, pnn_cuda_stream()>>>(modes, y_dim, s, w, dtheta);
    PNN_CUDA_LAUNCHED("scatter_phase_medium_kernel");
}

__global__ void scatter_detect_kernel(int64_t n, const float *z, const float *noise, float sigma, float full_well,
                                      float *y) {
    PNN_GRID_STRIDE(i, n) y[i] = pnn_scatter_detect(z[2 * i], z[2 * i + 1], noise ? sigma * noise[i] : 0.0f, full_well);
}

static void cuda_detect(void *ctx, int64_t n, const float *z, const float *noise, float sigma, float full_well,
                        float *y) {
    (void)ctx;
    if (n <= 0) return;
    scatter_detect_kernel<<<pnn_cuda_blocks(n), PNN_CUDA_THREADS, 0, pnn_cuda_stream()>>>(n, z, noise, sigma,
                                                                                          full_well, y);
    PNN_CUDA_LAUNCHED("scatter_detect_kernel");
}

__global__ void scatter_detect_adjoint_kernel(int64_t n, const float *dy, const float *z, float *gz) {
    PNN_GRID_STRIDE(i, n) {
        gz[2 * i] = 2.0f * dy[i] * z[2 * i];
        gz[2 * i + 1] = 2.0f * dy[i] * z[2 * i + 1];
    }
}

static void cuda_detect_adjoint(void *ctx, int64_t n, const float *dy, const float *z, float *gz) {
    (void)ctx;
    if (n <= 0) return;
    scatter_detect_adjoint_kernel<<<pnn_cuda_blocks(n), PNN_CUDA_THREADS, 0, pnn_cuda_stream()>>>(n, dy, z, gz);
    PNN_CUDA_LAUNCHED("scatter_detect_adjoint_kernel");
}

extern "C" const pnn_scatter_ops pnn_scatter_cuda_ops = {
    .modulate = cuda_modulate,
    .modulate_adjoint = cuda_modulate_adjoint,
    .modulate_adjoint_medium = cuda_modulate_adjoint_medium,
    .detect = cuda_detect,
    .detect_adjoint = cuda_detect_adjoint,
};
