/* The CUDA conv2d ops: cuDNN (conv_cudnn.cu) in builds with PNN_USE_CUDNN, and plain direct
 * kernels otherwise, or when cuDNN offers no algorithm for a shape, or when forced by
 * pnn_cuda_set_conv_direct (tests compare both). The direct kernels are deterministic (one
 * thread or block per output value, no atomics) and simple rather than fast. */
#include <stdio.h>

#include <atomic>

#include "kernels/cuda/cuda_common.cuh"

/* cuDNN takes its workspace from the caching allocator; the direct kernels need none */
size_t pnn_cuda_conv2d_work_floats(const pnn_conv2d_params *p) {
    (void)p;
    return 0;
}

/* y[b, o, oy, ox] = bias[o] + sum_{c, u, v} x[b, c, oy s - pad + u, ox s - pad + v] w[o, c, u, v] */
__global__ void conv_forward_kernel(pnn_conv2d_params p, int64_t oh, int64_t ow, const float *x, const float *w,
                                    const float *bias, float *y) {
    const int64_t total = p.batch * p.out_c * oh * ow;
    PNN_GRID_STRIDE(i, total) {
        int64_t ox = i % ow, t = i / ow;
        int64_t oy = t % oh;
        t /= oh;
        int64_t o = t % p.out_c, b = t / p.out_c;
        float acc = bias ? bias[o] : 0.0f;
        for (int64_t c = 0; c < p.in_c; c++) {
            const float *xc = x + (b * p.in_c + c) * p.in_h * p.in_w;
            const float *wc = w + (o * p.in_c + c) * p.kh * p.kw;
            for (int64_t u = 0; u < p.kh; u++) {
                int64_t iy = oy * p.stride - p.pad + u;
                if (iy < 0 || iy >= p.in_h) continue;
                for (int64_t v = 0; v < p.kw; v++) {
                    int64_t ix = ox * p.stride - p.pad + v;
                    if (ix >= 0 && ix < p.in_w) acc = fmaf(xc[iy * p.in_w + ix], wc[u * p.kw + v], acc);
                }
            }
        }
        y[i] = acc;
    }
}

/* dx[b, c, iy, ix] = sum over the outputs whose window covers (iy, ix) of dy w */
__global__ void conv_backward_data_kernel(pnn_conv2d_params p, int64_t oh, int64_t ow, const float *dy,
                                          const float *w, float *dx) {
    const int64_t total = p.batch * p.in_c * p.in_h * p.in_w;
    PNN_GRID_STRIDE(i, total) {
        int64_t ix = i % p.in_w, t = i / p.in_w;
        int64_t iy = t % p.in_h;
        t /= p.in_h;
        int64_t c = t % p.in_c, b = t / p.in_c;
        float acc = 0.0f;
        for (int64_t o = 0; o < p.out_c; o++) {
            const float *dyo = dy + (b * p.out_c + o) * oh * ow;
            const float *wo = w + (o * p.in_c + c) * p.kh * p.kw;
            for (int64_t u = 0; u < p.kh; u++) {
                int64_t ty = iy + p.pad - u;
                if (ty < 0 || ty % p.stride) continue;
                int64_t oy = ty / p.stride;
                if (oy >= oh) continue;
                for (int64_t v = 0; v < p.kw; v++) {
                    int64_t tx = ix + p.pad - v;
                    if (tx < 0 || tx % p.stride) continue;
                    int64_t ox = tx / p.stride;
                    if (ox < ow) acc = fmaf(dyo[oy * ow + ox], wo[u * p.kw + v], acc);
                }
            }
        }
        dx[i] = acc;
    }
}

__device__ double conv_block_sum(double v) {
    __shared__ double partial[32];
    for (int o = 16; o > 0; o /= 2) v += __shfl_xor_sync(0xffffffffu, v, o);
    int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    if (lane == 0) partial[warp] = v;
    __syncthreads();
    v = lane < (int)(blockDim.x / 32) ? partial[lane] : 0.0;
    for (int o = 16; o > 0; o /= 2) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

/* one block per weight (o, c, u, v): dw += sum over (b, oy, ox) of dy x, in double */
__global__ void conv_backward_filter_kernel(pnn_conv2d_params p, int64_t oh, int64_t ow, const float *x,
                                            const float *dy, float *dw) {
    int64_t wi = blockIdx.x;
    int64_t v = wi % p.kw, t = wi / p.kw;
    int64_t u = t % p.kh;
    t /= p.kh;
    int64_t c = t % p.in_c, o = t / p.in_c;
    const int64_t per = oh * ow, total = p.batch * per;
    double acc = 0.0;
    for (int64_t k = threadIdx.x; k < total; k += blockDim.x) {
        int64_t b = k / per, oy = (k % per) / ow, ox = k % ow;
        int64_t iy = oy * p.stride - p.pad + u, ix = ox * p.stride - p.pad + v;
        if (iy < 0 || iy >= p.in_h || ix < 0 || ix >= p.in_w) continue;
        acc += (double)dy[(b * p.out_c + o) * per + oy * ow + ox] * x[((b * p.in_c + c) * p.in_h + iy) * p.in_w + ix];
    }
    acc = conv_block_sum(acc);
    if (threadIdx.x == 0) dw[wi] += (float)acc;
}

/* one block per output channel: dbias[o] += sum of dy over (b, oy, ox) */
__global__ void conv_backward_bias_kernel(pnn_conv2d_params p, int64_t per, const float *dy, float *dbias) {
    int64_t o = blockIdx.x;
    double acc = 0.0;
    for (int64_t k = threadIdx.x; k < p.batch * per; k += blockDim.x)
        acc += dy[((k / per) * p.out_c + o) * per + k % per];
    acc = conv_block_sum(acc);
    if (threadIdx.x == 0) dbias[o] += (float)acc;
}

/* cuDNN first (when built with it and not switched off); PNN_ERR_UNSUPPORTED from it means
 * "no algorithm for this shape" or "cuDNN cannot set calls up here": the direct kernels take
 * over, and in the second case say so once */
static int conv_try_cudnn(void) {
#ifdef PNN_USE_CUDNN
    return !pnn_cuda_conv_direct() && !pnn_cudnn_broken();
#else
    return 0;
#endif
}

/* 1 when cuDNN did the work; else the direct kernels must (nothing was written or recorded) */
static int cudnn_did(pnn_status st) {
    if (st != PNN_ERR_UNSUPPORTED) return 1; /* done, or a failure of the convolution itself (recorded) */
#ifdef PNN_USE_CUDNN
    static std::atomic<int> warned;
    const char *why = pnn_cudnn_broken();
    if (why && !warned.exchange(1))
        fprintf(stderr, "pnn: warning: cuDNN cannot be used (%s); convolutions run on pnn's own CUDA kernels\n", why);
#endif
    return 0;
}

void pnn_cuda_conv2d_forward(void *ctx, const pnn_conv2d_params *p, const float *x, const float *weight,
                             const float *bias, float *y, float *work) {
    (void)ctx, (void)work;
    if (p->batch <= 0) return;
    if (conv_try_cudnn() && cudnn_did(pnn_cudnn_conv2d_forward(p, x, weight, bias, y))) return;
    const int64_t oh = pnn_conv2d_out_h(p), ow = pnn_conv2d_out_w(p), total = p->batch * p->out_c * oh * ow;
    conv_forward_kernel<<<pnn_cuda_blocks(total), PNN_CUDA_THREADS, 0, pnn_cuda_stream()>>>(*p, oh, ow, x, weight,
                                                                                            bias, y);
    PNN_CUDA_LAUNCHED("conv_forward_kernel");
}

void pnn_cuda_conv2d_backward_data(void *ctx, const pnn_conv2d_params *p, const float *dy, const float *weight,
                                   float *dx, float *work) {
    (void)ctx, (void)work;
    if (p->batch <= 0) return;
    if (conv_try_cudnn() && cudnn_did(pnn_cudnn_conv2d_backward_data(p, dy, weight, dx))) return;
    const int64_t oh = pnn_conv2d_out_h(p), ow = pnn_conv2d_out_w(p), total = p->batch * p->in_c * p->in_h * p->in_w;
    conv_backward_data_kernel<<<pnn_cuda_blocks(total), PNN_CUDA_THREADS, 0, pnn_cuda_stream()>>>(*p, oh, ow, dy,
                                                                                                  weight, dx);
    PNN_CUDA_LAUNCHED("conv_backward_data_kernel");
}

void pnn_cuda_conv2d_backward_filter(void *ctx, const pnn_conv2d_params *p, const float *x, const float *dy,
                                     float *dweight, float *dbias, float *work) {
    (void)ctx, (void)work;
    if (p->batch <= 0) return;
    if (conv_try_cudnn() && cudnn_did(pnn_cudnn_conv2d_backward_filter(p, x, dy, dweight, dbias))) return;
    cudaStream_t s = pnn_cuda_stream();
    const int64_t oh = pnn_conv2d_out_h(p), ow = pnn_conv2d_out_w(p);
    const int64_t weights = p->out_c * p->in_c * p->kh * p->kw;
    conv_backward_filter_kernel<<<(unsigned)weights, PNN_CUDA_THREADS, 0, s>>>(*p, oh, ow, x, dy, dweight);
    PNN_CUDA_LAUNCHED("conv_backward_filter_kernel");
    if (dbias) {
        conv_backward_bias_kernel<<<(unsigned)p->out_c, PNN_CUDA_THREADS, 0, s>>>(*p, oh * ow, dy, dbias);
        PNN_CUDA_LAUNCHED("conv_backward_bias_kernel");
    }
}
