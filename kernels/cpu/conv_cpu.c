/* CPU kernels of the 2-D convolution ops (backend.h, conv2d_*): im2col + OpenBLAS sgemm per
 * sample, NCHW. Samples go in chunks whose column matrices fit the work buffer; within a chunk
 * the samples run in parallel (OpenMP), each calling a single-threaded sgemm (the OpenMP build
 * of OpenBLAS does not spawn threads inside a parallel region); a chunk of one sample lets
 * OpenBLAS thread the GEMM itself. Also the reference the CUDA conv kernels are tested against
 * (tests/test_backend_ops.c), itself checked against a direct double convolution
 * (tests/test_conv2d.c). */
#include <cblas.h>
#include <string.h>

#include "kernels/cpu/cpu_ops.h"

/* floats of one sample's column matrix are capped so a chunk stays within ~64 MiB of work */
#define PNN_CONV_WORK_CAP (INT64_C(1) << 24)
#define PNN_CONV_MAX_CHUNK 16

static int64_t conv_k(const pnn_conv2d_params *p) { return p->in_c * p->kh * p->kw; }
static int64_t conv_ohw(const pnn_conv2d_params *p) { return pnn_conv2d_out_h(p) * pnn_conv2d_out_w(p); }

/* a 1x1 kernel with stride 1 and no padding needs no column matrix: x is one already */
static int conv_is_pointwise(const pnn_conv2d_params *p) {
    return p->kh == 1 && p->kw == 1 && p->stride == 1 && p->pad == 0;
}

/* samples per chunk: as many as the cap allows, at most PNN_CONV_MAX_CHUNK */
static int64_t conv_chunk(const pnn_conv2d_params *p) {
    int64_t per = conv_k(p) * conv_ohw(p);
    int64_t g = per > 0 ? PNN_CONV_WORK_CAP / per : 1;
    if (g < 1) g = 1;
    if (g > PNN_CONV_MAX_CHUNK) g = PNN_CONV_MAX_CHUNK;
    if (g > p->batch) g = p->batch;
    return g < 1 ? 1 : g;
}

size_t pnn_cpu_conv2d_work_floats(const pnn_conv2d_params *p) {
    if (conv_is_pointwise(p)) return 0;
    return (size_t)conv_chunk(p) * (size_t)conv_k(p) * (size_t)conv_ohw(p);
}

/* cols [K, oh*ow] of one image x [in_c, in_h, in_w]; row (c, ky, kx), zeros where the kernel
 * hangs over the padding */
static void im2col(const pnn_conv2d_params *p, const float *x, float *cols) {
    const int64_t oh = pnn_conv2d_out_h(p), ow = pnn_conv2d_out_w(p);
    for (int64_t c = 0; c < p->in_c; c++)
        for (int64_t ky = 0; ky < p->kh; ky++)
            for (int64_t kx = 0; kx < p->kw; kx++) {
                float *row = cols + ((c * p->kh + ky) * p->kw + kx) * oh * ow;
                const float *xc = x + c * p->in_h * p->in_w;
                for (int64_t oy = 0; oy < oh; oy++) {
                    int64_t iy = oy * p->stride - p->pad + ky;
                    float *dst = row + oy * ow;
                    if (iy < 0 || iy >= p->in_h) {
                        memset(dst, 0, (size_t)ow * sizeof *dst);
                        continue;
                    }
                    const float *src = xc + iy * p->in_w;
                    for (int64_t ox = 0; ox < ow; ox++) {
                        int64_t ix = ox * p->stride - p->pad + kx;
                        dst[ox] = ix >= 0 && ix < p->in_w ? src[ix] : 0.0f;
                    }
                }
            }
}

/* dx [in_c, in_h, in_w] += the column matrix folded back (overlapping windows add up) */
static void col2im_add(const pnn_conv2d_params *p, const float *cols, float *dx) {
    const int64_t oh = pnn_conv2d_out_h(p), ow = pnn_conv2d_out_w(p);
    for (int64_t c = 0; c < p->in_c; c++)
        for (int64_t ky = 0; ky < p->kh; ky++)
            for (int64_t kx = 0; kx < p->kw; kx++) {
                const float *row = cols + ((c * p->kh + ky) * p->kw + kx) * oh * ow;
                float *dc = dx + c * p->in_h * p->in_w;
                for (int64_t oy = 0; oy < oh; oy++) {
                    int64_t iy = oy * p->stride - p->pad + ky;
                    if (iy < 0 || iy >= p->in_h) continue;
                    for (int64_t ox = 0; ox < ow; ox++) {
                        int64_t ix = ox * p->stride - p->pad + kx;
                        if (ix >= 0 && ix < p->in_w) dc[iy * p->in_w + ix] += row[oy * ow + ox];
                    }
                }
            }
}

/* c[m, n] = a[m, k] b[k, n] (+ c when accumulate), row-major, optionally a transposed */
static void gemm_rm(bool trans_a, int64_t m, int64_t n, int64_t k, const float *a, const float *b,
                    float beta, float *c) {
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, CblasNoTrans, (blasint)m, (blasint)n,
                (blasint)k, 1.0f, a, trans_a ? (blasint)m : (blasint)k, b, (blasint)n, beta, c, (blasint)n);
}

void pnn_cpu_conv2d_forward(void *ctx, const pnn_conv2d_params *p, const float *x, const float *weight,
                            const float *bias, float *y, float *work) {
    (void)ctx;
    const int64_t k = conv_k(p), ohw = conv_ohw(p), g = conv_chunk(p);
    const int64_t x_stride = p->in_c * p->in_h * p->in_w, y_stride = p->out_c * ohw;
    const int pointwise = conv_is_pointwise(p);
    for (int64_t b0 = 0; b0 < p->batch; b0 += g) {
        int64_t nb = p->batch - b0 < g ? p->batch - b0 : g;
#pragma omp parallel for schedule(static) if (nb > 1)
        for (int64_t i = 0; i < nb; i++) {
            const float *xi = x + (b0 + i) * x_stride;
            float *yi = y + (b0 + i) * y_stride;
            const float *cols = xi;
            if (!pointwise) {
                im2col(p, xi, work + i * k * ohw);
                cols = work + i * k * ohw;
            }
            gemm_rm(false, p->out_c, ohw, k, weight, cols, 0.0f, yi);
            if (bias)
                for (int64_t oc = 0; oc < p->out_c; oc++)
                    for (int64_t j = 0; j < ohw; j++) yi[oc * ohw + j] += bias[oc];
        }
    }
}

void pnn_cpu_conv2d_backward_data(void *ctx, const pnn_conv2d_params *p, const float *dy,
                                  const float *weight, float *dx, float *work) {
    (void)ctx;
    const int64_t k = conv_k(p), ohw = conv_ohw(p), g = conv_chunk(p);
    const int64_t x_stride = p->in_c * p->in_h * p->in_w, y_stride = p->out_c * ohw;
    const int pointwise = conv_is_pointwise(p);
    for (int64_t b0 = 0; b0 < p->batch; b0 += g) {
        int64_t nb = p->batch - b0 < g ? p->batch - b0 : g;
#pragma omp parallel for schedule(static) if (nb > 1)
        for (int64_t i = 0; i < nb; i++) {
            float *dxi = dx + (b0 + i) * x_stride;
            const float *dyi = dy + (b0 + i) * y_stride;
            if (pointwise) {
                gemm_rm(true, k, ohw, p->out_c, weight, dyi, 0.0f, dxi);
                continue;
            }
            float *cols = work + i * k * ohw;
            gemm_rm(true, k, ohw, p->out_c, weight, dyi, 0.0f, cols);
            memset(dxi, 0, (size_t)x_stride * sizeof *dxi);
            col2im_add(p, cols, dxi);
        }
    }
}

void pnn_cpu_conv2d_backward_filter(void *ctx, const pnn_conv2d_params *p, const float *x,
                                    const float *dy, float *dweight, float *dbias, float *work) {
    (void)ctx;
    const int64_t k = conv_k(p), ohw = conv_ohw(p), g = conv_chunk(p);
    const int64_t x_stride = p->in_c * p->in_h * p->in_w, y_stride = p->out_c * ohw;
    const int pointwise = conv_is_pointwise(p);
    for (int64_t b0 = 0; b0 < p->batch; b0 += g) {
        int64_t nb = p->batch - b0 < g ? p->batch - b0 : g;
        if (!pointwise) {
#pragma omp parallel for schedule(static) if (nb > 1)
            for (int64_t i = 0; i < nb; i++) im2col(p, x + (b0 + i) * x_stride, work + i * k * ohw);
        }
        /* dW[out_c, K] += dy_i[out_c, ohw] cols_i[K, ohw]^T, one threaded GEMM per sample */
        for (int64_t i = 0; i < nb; i++) {
            const float *cols = pointwise ? x + (b0 + i) * x_stride : work + i * k * ohw;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (blasint)p->out_c, (blasint)k, (blasint)ohw,
                        1.0f, dy + (b0 + i) * y_stride, (blasint)ohw, cols, (blasint)ohw, 1.0f, dweight,
                        (blasint)k);
        }
    }
    if (!dbias) return;
#pragma omp parallel for schedule(static) if (p->batch * y_stride > 32768)
    for (int64_t oc = 0; oc < p->out_c; oc++) {
        double acc = 0.0;
        for (int64_t b = 0; b < p->batch; b++) {
            const float *d = dy + b * y_stride + oc * ohw;
            for (int64_t j = 0; j < ohw; j++) acc += d[j];
        }
        dbias[oc] += (float)acc;
    }
}
