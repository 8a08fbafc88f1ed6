/* CUDA kernels of the digital ops (the CUDA twins of kernels/cpu/ops_cpu.c): fill, copy2d,
 * elementwise maps, bias, patches, reductions, losses, optimizer updates and the Philox RNG.
 * Per-element math comes from kernels/math (activations.h, philox.h), the same code the CPU
 * runs. Reductions accumulate in double with a fixed order for a given size and GPU (no
 * atomics on floats), so results are run-to-run deterministic. */
#include <math.h>

#include "kernels/cuda/cuda_common.cuh"
#include "kernels/math/activations.h"
#include "kernels/math/philox.h"

#define WARP 32
#define FULL_MASK 0xffffffffu

/* ---- block reductions ---- */

__device__ __forceinline__ double warp_sum(double v) {
    for (int o = WARP / 2; o > 0; o /= 2) v += __shfl_xor_sync(FULL_MASK, v, o);
    return v;
}

/* sum of v over the block (blockDim.x a multiple of 32, <= 1024); the result in every thread */
__device__ double block_sum(double v) {
    __shared__ double partial[32];
    __syncthreads(); /* partial may still be read from a previous call */
    v = warp_sum(v);
    int lane = threadIdx.x % WARP, warp = threadIdx.x / WARP, warps = blockDim.x / WARP;
    if (lane == 0) partial[warp] = v;
    __syncthreads();
    v = lane < warps ? partial[lane] : 0.0;
    return warp_sum(v);
}

/* ---- fill, copy2d ---- */

__global__ void fill_kernel(float *dst, float value, int64_t n) {
    PNN_GRID_STRIDE(i, n) dst[i] = value;
}

void pnn_cuda_fill(void *ctx, float *dst, float value, int64_t n) {
    (void)ctx;
    if (n <= 0) return;
    cudaStream_t s = pnn_cuda_stream();
    if (value == 0.0f && !signbit(value)) {
        PNN_CUDA_CHECK(cudaMemsetAsync(dst, 0, (size_t)n * sizeof(float), s));
        return;
    }
    fill_kernel<<<pnn_cuda_blocks(n), PNN_CUDA_THREADS, 0, s>>>(dst, value, n);
    PNN_CUDA_LAUNCHED("fill_kernel");
}

void pnn_cuda_copy2d(void *ctx, float *dst, int64_t dst_pitch, const float *src, int64_t src_pitch, int64_t width,
                     int64_t height) {
    (void)ctx;
    if (width <= 0 || height <= 0) return;
    PNN_CUDA_CHECK(cudaMemcpy2DAsync(dst, (size_t)dst_pitch * sizeof(float), src, (size_t)src_pitch * sizeof(float),
                                     (size_t)width * sizeof(float), (size_t)height, cudaMemcpyDeviceToDevice,
                                     pnn_cuda_stream()));
}

/* ---- elementwise ---- */

__global__ void axpby_kernel(int64_t n, float alpha, const float *x, float beta, float *y) {
    PNN_GRID_STRIDE(i, n) y[i] = alpha * x[i] + beta * y[i];
}

__global__ void scale_kernel(int64_t n, float alpha, const float *x, float *y) {
    PNN_GRID_STRIDE(i, n) y[i] = alpha * x[i];
}

/* as in BLAS (and the CPU kernel), beta == 0 does not read y */
void pnn_cuda_axpby(void *ctx, int64_t n, float alpha, const float *x, float beta, float *y) {
    if (n <= 0) return;
    if (beta == 0.0f) {
        pnn_cuda_scale(ctx, n, alpha, x, y);
        return;
    }
    axpby_kernel<<<pnn_cuda_blocks(n), PNN_CUDA_THREADS, 0, pnn_cuda_stream()>>>(n, alpha, x, beta, y);
    PNN_CUDA_LAUNCHED("axpby_kernel");
}

void pnn_cuda_scale(void *ctx, int64_t n, float alpha, const float *x, float *y) {
    (void)ctx;
    if (n <= 0) return;
    scale_kernel<<<pnn_cuda_blocks(n), PNN_CUDA_THREADS, 0, pnn_cuda_stream()>>>(n, alpha, x, y);
    PNN_CUDA_LAUNCHED("scale_kernel");
}

__global__ void clamp_kernel(int64_t n, float lo, float hi, float *x) {
    PNN_GRID_STRIDE(i, n) x[i] = x[i] < lo ? lo : x[i] > hi ? hi : x[i];
}

void pnn_cuda_clamp(void *ctx, int64_t n, float lo, float hi, float *x) {
    (void)ctx;
    if (n <= 0) return;
    clamp_kernel<<<pnn_cuda_blocks(n), PNN_CUDA_THREADS, 0, pnn_cuda_stream()>>>(n, lo, hi, x);
    PNN_CUDA_LAUNCHED("clamp_kernel");
}

__global__ void add_bias_kernel(int64_t total, int64_t cols, const float *bias, float *y) {
    PNN_GRID_STRIDE(i, total) y[i] += bias[i % cols];
}

void pnn_cuda_add_bias(void *ctx, int64_t rows, int64_t cols, const float *bias, float *y) {
    (void)ctx;
    int64_t total = rows * cols;
    if (total <= 0) return;
    add_bias_kernel<<<pnn_cuda_blocks(total), PNN_CUDA_THREADS, 0, pnn_cuda_stream()>>>(total, cols, bias, y);
    PNN_CUDA_LAUNCHED("add_bias_kernel");
}

__global__ void act_forward_kernel(pnn_act act, int64_t n, const float *x, float *y) {
    PNN_GRID_STRIDE(i, n) y[i] = pnn_act_apply(act, x[i]);
}

__global__ void act_backward_kernel(pnn_act act, int64_t n, const float *x, const float *y, const float *dy,
                                    float *dx) {
    PNN_GRID_STRIDE(i, n) dx[i] = dy[i] * pnn_act_derivative(act, x[i], y[i]);
}

void pnn_cuda_act_forward(void *ctx, pnn_act act, int64_t n, const float *x, float *y) {
    (void)ctx;
    if (n <= 0) return;
    act_forward_kernel<<<pnn_cuda_blocks(n), PNN_CUDA_THREADS, 0, pnn_cuda_stream()>>>(act, n, x, y);
    PNN_CUDA_LAUNCHED("act_forward_kernel");
}

void pnn_cuda_act_backward(void *ctx, pnn_act act, int64_t n, const float *x, const float *y, const float *dy,
                           float *dx) {
    (void)ctx;
    if (n <= 0) return;
    act_backward_kernel<<<pnn_cuda_blocks(n), PNN_CUDA_THREADS, 0, pnn_cuda_stream()>>>(act, n, x, y, dy, dx);
    PNN_CUDA_LAUNCHED("act_backward_kernel");
}

/* ---- patches: element i of the patch layout <-> its place in the image layout ---- */

__global__ void patch_kernel(int64_t total, int64_t h, int64_t w, int64_t ph, int64_t pw, const float *src,
                             float *dst, int to_patches) {
    const int64_t nph = h / ph, npw = w / pw, psize = ph * pw;
    PNN_GRID_STRIDE(i, total) {
        int64_t patch = i / psize, within = i % psize;
        int64_t a = within / pw, col = within % pw;
        int64_t pc = patch % npw, pr = (patch / npw) % nph, img = patch / (npw * nph);
        int64_t im = img * h * w + (pr * ph + a) * w + pc * pw + col;
        if (to_patches) dst[i] = src[im];
        else dst[im] = src[i];
    }
}

void pnn_cuda_patchify(void *ctx, int64_t b, int64_t h, int64_t w, int64_t ph, int64_t pw, const float *images,
                       float *patches) {
    (void)ctx;
    int64_t total = b * h * w;
    if (total <= 0) return;
    patch_kernel<<<pnn_cuda_blocks(total), PNN_CUDA_THREADS, 0, pnn_cuda_stream()>>>(total, h, w, ph, pw, images,
                                                                                     patches, 1);
    PNN_CUDA_LAUNCHED("patch_kernel");
}

void pnn_cuda_unpatchify(void *ctx, int64_t b, int64_t h, int64_t w, int64_t ph, int64_t pw, const float *patches,
                         float *images) {
    (void)ctx;
    int64_t total = b * h * w;
    if (total <= 0) return;
    patch_kernel<<<pnn_cuda_blocks(total), PNN_CUDA_THREADS, 0, pnn_cuda_stream()>>>(total, h, w, ph, pw, patches,
                                                                                     images, 0);
    PNN_CUDA_LAUNCHED("patch_kernel");
}

/* ---- reductions ---- */

/* at most this many blocks write partial sums; the second pass adds them in order */
#define DOT_BLOCKS 256

__global__ void dot_partial_kernel(int64_t n, const float *x, const float *y, double *partial) {
    double acc = 0.0;
    PNN_GRID_STRIDE(i, n) acc += (double)x[i] * (double)y[i];
    acc = block_sum(acc);
    if (threadIdx.x == 0) partial[blockIdx.x] = acc;
}

__global__ void dot_final_kernel(int parts, const double *partial, float *out) {
    double acc = 0.0;
    for (int i = threadIdx.x; i < parts; i += blockDim.x) acc += partial[i];
    acc = block_sum(acc);
    if (threadIdx.x == 0) *out = (float)acc;
}

void pnn_cuda_dot(void *ctx, int64_t n, const float *x, const float *y, float *out) {
    cudaStream_t s = pnn_cuda_stream();
    if (n <= 0) {
        pnn_cuda_fill(ctx, out, 0.0f, 1);
        return;
    }
    unsigned blocks = pnn_cuda_blocks(n);
    if (blocks > DOT_BLOCKS) blocks = DOT_BLOCKS;
    double *partial = (double *)pnn_cuda_alloc(ctx, blocks * sizeof(double));
    if (!partial) {
        PNN_CUDA_FAIL(PNN_ERR_NOMEM, "dot: no GPU memory for %u partial sums", blocks);
        return;
    }
    dot_partial_kernel<<<blocks, PNN_CUDA_THREADS, 0, s>>>(n, x, y, partial);
    PNN_CUDA_LAUNCHED("dot_partial_kernel");
    dot_final_kernel<<<1, PNN_CUDA_THREADS, 0, s>>>((int)blocks, partial, out);
    PNN_CUDA_LAUNCHED("dot_final_kernel");
    pnn_cuda_release(ctx, partial);
}

__global__ void count_nonfinite_kernel(int64_t n, const float *x, unsigned long long *count) {
    double c = 0.0;
    PNN_GRID_STRIDE(i, n) c += isfinite(x[i]) ? 0.0 : 1.0;
    c = block_sum(c);
    if (threadIdx.x == 0 && c > 0) atomicAdd(count, (unsigned long long)c); /* integers: order-free */
}

int64_t pnn_cuda_count_nonfinite(void *ctx, int64_t n, const float *x) {
    if (n <= 0) return 0;
    cudaStream_t s = pnn_cuda_stream();
    unsigned long long *count = (unsigned long long *)pnn_cuda_alloc(ctx, sizeof *count), host = 0;
    if (!count) {
        PNN_CUDA_FAIL(PNN_ERR_NOMEM, "count_nonfinite: no GPU memory for the counter");
        return 0;
    }
    if (PNN_CUDA_CHECK(cudaMemsetAsync(count, 0, sizeof *count, s)) == PNN_OK) {
        count_nonfinite_kernel<<<pnn_cuda_blocks(n), PNN_CUDA_THREADS, 0, s>>>(n, x, count);
        if (PNN_CUDA_LAUNCHED("count_nonfinite_kernel") == PNN_OK &&
            PNN_CUDA_CHECK(cudaMemcpyAsync(&host, count, sizeof host, cudaMemcpyDeviceToHost, s)) == PNN_OK)
            PNN_CUDA_CHECK(cudaStreamSynchronize(s));
    }
    pnn_cuda_release(ctx, count);
    return (int64_t)host;
}

/* Column sums in two passes: blocks of 32 columns x 8 row lanes sum a chunk of rows each into
 * partial[chunk, col] (double); then one thread per column adds the chunks in order. */
#define COLSUM_ROWS_PER_CHUNK 512
#define COLSUM_MAX_CHUNKS 256

__global__ void column_partial_kernel(int64_t rows, int64_t cols, int64_t rows_per_chunk, const float *x,
                                      double *partial) {
    __shared__ double acc[8][33];
    int64_t c = (int64_t)blockIdx.x * 32 + threadIdx.x;
    int64_t r0 = (int64_t)blockIdx.y * rows_per_chunk, r1 = r0 + rows_per_chunk < rows ? r0 + rows_per_chunk : rows;
    double sum = 0.0;
    if (c < cols)
        for (int64_t r = r0 + threadIdx.y; r < r1; r += 8) sum += x[r * cols + c];
    acc[threadIdx.y][threadIdx.x] = sum;
    __syncthreads();
    if (threadIdx.y == 0 && c < cols) {
        double total = 0.0;
        for (int k = 0; k < 8; k++) total += acc[k][threadIdx.x];
        partial[(int64_t)blockIdx.y * cols + c] = total;
    }
}

__global__ void column_final_kernel(int64_t cols, int chunks, const double *partial, float *out) {
    PNN_GRID_STRIDE(c, cols) {
        double total = 0.0;
        for (int k = 0; k < chunks; k++) total += partial[(int64_t)k * cols + c];
        out[c] += (float)total;
    }
}

void pnn_cuda_column_sums(int64_t rows, int64_t cols, const float *x, float *out) {
    if (rows <= 0 || cols <= 0) return;
    cudaStream_t s = pnn_cuda_stream();
    int64_t chunks = (rows + COLSUM_ROWS_PER_CHUNK - 1) / COLSUM_ROWS_PER_CHUNK;
    if (chunks > COLSUM_MAX_CHUNKS) chunks = COLSUM_MAX_CHUNKS;
    int64_t rows_per_chunk = (rows + chunks - 1) / chunks;
    double *partial = (double *)pnn_cuda_alloc(NULL, (size_t)(chunks * cols) * sizeof(double));
    if (!partial) {
        PNN_CUDA_FAIL(PNN_ERR_NOMEM, "column sums: no GPU memory for %lld partial sums", (long long)(chunks * cols));
        return;
    }
    dim3 grid((unsigned)((cols + 31) / 32), (unsigned)chunks), block(32, 8);
    column_partial_kernel<<<grid, block, 0, s>>>(rows, cols, rows_per_chunk, x, partial);
    PNN_CUDA_LAUNCHED("column_partial_kernel");
    column_final_kernel<<<pnn_cuda_blocks(cols), PNN_CUDA_THREADS, 0, s>>>(cols, (int)chunks, partial, out);
    PNN_CUDA_LAUNCHED("column_final_kernel");
    pnn_cuda_release(NULL, partial);
}

void pnn_cuda_bias_grad(void *ctx, int64_t rows, int64_t cols, const float *dy, float *dbias) {
    (void)ctx;
    pnn_cuda_column_sums(rows, cols, dy, dbias);
}

/* ---- losses: one warp per row, double accumulation, as the CPU kernels ---- */

#define ROWS_PER_BLOCK (PNN_CUDA_THREADS / WARP)

/* log-sum-exp around the row maximum; argmax is the first index of the maximum (as the CPU's
 * strict > scan); a label outside [0, classes) gives a NaN loss */
__global__ void softmax_xent_kernel(int64_t rows, int64_t classes, const float *logits, const float *labels,
                                    float *loss_rows, float *correct_rows, float *dlogits, float grad_scale) {
    int lane = threadIdx.x % WARP;
    int64_t r = (int64_t)blockIdx.x * ROWS_PER_BLOCK + threadIdx.x / WARP;
    if (r >= rows) return; /* whole warps leave together: no shuffles are left waiting */
    const float *z = logits + r * classes;
    float best = -INFINITY;
    int64_t arg = -1;
    for (int64_t c = lane; c < classes; c += WARP)
        if (arg < 0 || z[c] > best) best = z[c], arg = c;
    for (int o = WARP / 2; o > 0; o /= 2) {
        float ob = __shfl_xor_sync(FULL_MASK, best, o);
        long long oa = __shfl_xor_sync(FULL_MASK, (long long)arg, o);
        if (oa >= 0 && (arg < 0 || ob > best || (ob == best && oa < arg))) best = ob, arg = oa;
    }
    double zmax = best, sum = 0.0;
    for (int64_t c = lane; c < classes; c += WARP) sum += exp((double)z[c] - zmax);
    sum = warp_sum(sum);
    double lse = zmax + log(sum);
    float lf = labels[r];
    int64_t label = (lf >= 0.0f && lf < (float)classes) ? (int64_t)lf : -1;
    if (lane == 0) {
        loss_rows[r] = label >= 0 ? (float)(lse - z[label]) : NAN;
        correct_rows[r] = arg == label ? 1.0f : 0.0f;
    }
    if (dlogits)
        for (int64_t c = lane; c < classes; c += WARP) {
            double p = exp((double)z[c] - lse);
            dlogits[r * classes + c] = (float)((p - (c == label ? 1.0 : 0.0)) * grad_scale);
        }
}

void pnn_cuda_softmax_xent(void *ctx, int64_t rows, int64_t classes, const float *logits, const float *labels,
                           float *loss_rows, float *correct_rows, float *dlogits, float grad_scale) {
    (void)ctx;
    if (rows <= 0) return;
    unsigned blocks = (unsigned)((rows + ROWS_PER_BLOCK - 1) / ROWS_PER_BLOCK);
    softmax_xent_kernel<<<blocks, PNN_CUDA_THREADS, 0, pnn_cuda_stream()>>>(rows, classes, logits, labels, loss_rows,
                                                                            correct_rows, dlogits, grad_scale);
    PNN_CUDA_LAUNCHED("softmax_xent_kernel");
}

__global__ void mse_kernel(int64_t rows, int64_t cols, const float *y, const float *target, float *loss_rows,
                           float *dy, float dscale) {
    int lane = threadIdx.x % WARP;
    int64_t r = (int64_t)blockIdx.x * ROWS_PER_BLOCK + threadIdx.x / WARP;
    if (r >= rows) return;
    const float *yr = y + r * cols, *tr = target + r * cols;
    double acc = 0.0;
    for (int64_t c = lane; c < cols; c += WARP) {
        double d = (double)yr[c] - (double)tr[c];
        acc += d * d;
        if (dy) dy[r * cols + c] = dscale * (yr[c] - tr[c]);
    }
    acc = warp_sum(acc);
    if (lane == 0) loss_rows[r] = (float)(acc / (double)cols);
}

void pnn_cuda_mse(void *ctx, int64_t rows, int64_t cols, const float *y, const float *target, float *loss_rows,
                  float *dy, float grad_scale) {
    (void)ctx;
    if (rows <= 0) return;
    unsigned blocks = (unsigned)((rows + ROWS_PER_BLOCK - 1) / ROWS_PER_BLOCK);
    mse_kernel<<<blocks, PNN_CUDA_THREADS, 0, pnn_cuda_stream()>>>(rows, cols, y, target, loss_rows, dy,
                                                                   2.0f * grad_scale / (float)cols);
    PNN_CUDA_LAUNCHED("mse_kernel");
}

/* ---- optimizers ---- */

__global__ void adam_kernel(int64_t n, float *param, const float *grad, float *m, float *v, float lr, float beta1,
                            float beta2, float eps, float weight_decay, float bc1, float bc2) {
    PNN_GRID_STRIDE(i, n) pnn_adam_element(&param[i], grad[i], &m[i], &v[i], lr, beta1, beta2, eps, weight_decay, bc1, bc2);
}

void pnn_cuda_adam_update(void *ctx, int64_t n, float *param, const float *grad, float *m, float *v, float lr,
                          float beta1, float beta2, float eps, float weight_decay, int64_t step) {
    (void)ctx;
    if (n <= 0) return;
    /* the bias corrections exactly as the CPU computes them */
    float bc1 = (float)(1.0 - pow(beta1, (double)step));
    float bc2 = (float)(1.0 - pow(beta2, (double)step));
    adam_kernel<<<pnn_cuda_blocks(n), PNN_CUDA_THREADS, 0, pnn_cuda_stream()>>>(n, param, grad, m, v, lr, beta1, beta2,
                                                                                eps, weight_decay, bc1, bc2);
    PNN_CUDA_LAUNCHED("adam_kernel");
}

__global__ void sgd_kernel(int64_t n, float *param, const float *grad, float *velocity, float lr, float momentum,
                           float weight_decay) {
    PNN_GRID_STRIDE(i, n) pnn_sgd_element(&param[i], grad[i], &velocity[i], lr, momentum, weight_decay);
}

void pnn_cuda_sgd_update(void *ctx, int64_t n, float *param, const float *grad, float *velocity, float lr,
                         float momentum, float weight_decay) {
    (void)ctx;
    if (n <= 0) return;
    sgd_kernel<<<pnn_cuda_blocks(n), PNN_CUDA_THREADS, 0, pnn_cuda_stream()>>>(n, param, grad, velocity, lr, momentum,
                                                                              weight_decay);
    PNN_CUDA_LAUNCHED("sgd_kernel");
}

/* ---- the Philox stream: one thread per block of four numbers, as base/rng.c ---- */

__global__ void rng_normal_kernel(uint64_t seed, uint64_t stream, uint64_t offset, int64_t n, float *out) {
    uint64_t first = offset / 4, blocks = (offset + (uint64_t)n - 1) / 4 - first + 1;
    PNN_GRID_STRIDE(k, (int64_t)blocks) {
        uint64_t block = first + (uint64_t)k;
        uint32_t r[4];
        float v[4];
        pnn_philox_block(seed, stream, block, r);
        pnn_box_muller(r[0], r[1], &v[0], &v[1]);
        pnn_box_muller(r[2], r[3], &v[2], &v[3]);
        for (int j = 0; j < 4; j++) {
            uint64_t g = block * 4 + (uint64_t)j;
            if (g >= offset && g - offset < (uint64_t)n) out[g - offset] = v[j];
        }
    }
}

void pnn_cuda_rng_normal(void *ctx, uint64_t seed, uint64_t stream, uint64_t offset, int64_t n, float *out) {
    (void)ctx;
    if (n <= 0) return;
    rng_normal_kernel<<<pnn_cuda_blocks((n + 3) / 4 + 1), PNN_CUDA_THREADS, 0, pnn_cuda_stream()>>>(seed, stream,
                                                                                                   offset, n, out);
    PNN_CUDA_LAUNCHED("rng_normal_kernel");
}

__global__ void philox_u32_kernel(uint64_t seed, uint64_t stream, uint64_t offset, int64_t n, uint32_t *out) {
    PNN_GRID_STRIDE(i, n) {
        uint64_t g = offset + (uint64_t)i;
        uint32_t r[4];
        pnn_philox_block(seed, stream, g / 4, r);
        out[i] = r[g % 4];
    }
}

pnn_status pnn_cuda_philox_u32(uint64_t seed, uint64_t stream, uint64_t offset, int64_t n, uint32_t *host) {
    if (n <= 0) return PNN_OK;
    cudaStream_t s = pnn_cuda_stream();
    uint32_t *dev = (uint32_t *)pnn_cuda_alloc(NULL, (size_t)n * sizeof(uint32_t));
    if (!dev) return PNN_ERROR(PNN_ERR_NOMEM, "philox test stream: no GPU memory for %lld numbers", (long long)n);
    philox_u32_kernel<<<pnn_cuda_blocks(n), PNN_CUDA_THREADS, 0, s>>>(seed, stream, offset, n, dev);
    pnn_status st = PNN_CUDA_LAUNCHED("philox_u32_kernel");
    if (st == PNN_OK) st = PNN_CUDA_CHECK(cudaMemcpyAsync(host, dev, (size_t)n * sizeof(uint32_t), cudaMemcpyDeviceToHost, s));
    if (st == PNN_OK) st = PNN_CUDA_CHECK(cudaStreamSynchronize(s));
    pnn_cuda_release(NULL, dev);
    return st;
}
