/* The CPU kernels of the digital ops (cpu_ops.h): copies, elementwise maps, bias, patches,
 * losses and optimizer updates. Loops over more than PNN_CPU_PARALLEL_MIN elements run with
 * OpenMP; smaller ones stay on one thread, where starting a team would cost more than it saves.
 * Reductions accumulate in double, so these kernels can serve as the reference of the GPU ones. */
#include <math.h>
#include <string.h>

#include "kernels/cpu/cpu_ops.h"
#include "kernels/math/activations.h"

/* columns summed together by one thread in bias_grad: a row segment that stays in cache */
#define PNN_CPU_BIAS_BLOCK 256

void pnn_cpu_copy2d(void *ctx, float *dst, int64_t dst_pitch, const float *src, int64_t src_pitch,
                    int64_t width, int64_t height) {
    (void)ctx;
    if (width <= 0) return;
#pragma omp parallel for if (width * height > PNN_CPU_PARALLEL_MIN)
    for (int64_t r = 0; r < height; r++)
        memmove(dst + r * dst_pitch, src + r * src_pitch, (size_t)width * sizeof(float));
}

/* As in BLAS, beta == 0 does not read y, so y may start uninitialised. */
void pnn_cpu_axpby(void *ctx, int64_t n, float alpha, const float *x, float beta, float *y) {
    (void)ctx;
    if (beta == 0.0f) {
        pnn_cpu_scale(ctx, n, alpha, x, y);
        return;
    }
#pragma omp parallel for if (n > PNN_CPU_PARALLEL_MIN)
    for (int64_t i = 0; i < n; i++) y[i] = alpha * x[i] + beta * y[i];
}

void pnn_cpu_scale(void *ctx, int64_t n, float alpha, const float *x, float *y) {
    (void)ctx;
#pragma omp parallel for if (n > PNN_CPU_PARALLEL_MIN)
    for (int64_t i = 0; i < n; i++) y[i] = alpha * x[i];
}

void pnn_cpu_clamp(void *ctx, int64_t n, float lo, float hi, float *x) {
    (void)ctx;
#pragma omp parallel for if (n > PNN_CPU_PARALLEL_MIN)
    for (int64_t i = 0; i < n; i++) x[i] = x[i] < lo ? lo : x[i] > hi ? hi : x[i];
}

void pnn_cpu_dot(void *ctx, int64_t n, const float *x, const float *y, float *out) {
    (void)ctx;
    double acc = 0.0;
#pragma omp parallel for reduction(+ : acc) if (n > PNN_CPU_PARALLEL_MIN)
    for (int64_t i = 0; i < n; i++) acc += (double)x[i] * (double)y[i];
    *out = (float)acc;
}

void pnn_cpu_add_bias(void *ctx, int64_t rows, int64_t cols, const float *bias, float *y) {
    (void)ctx;
#pragma omp parallel for if (rows * cols > PNN_CPU_PARALLEL_MIN)
    for (int64_t r = 0; r < rows; r++) {
        float *yr = y + r * cols;
        for (int64_t c = 0; c < cols; c++) yr[c] += bias[c];
    }
}

/* Each thread owns a block of columns and walks the rows, so reads stay row-major and no two
 * threads write the same dbias entry. */
void pnn_cpu_bias_grad(void *ctx, int64_t rows, int64_t cols, const float *dy, float *dbias) {
    (void)ctx;
    int64_t blocks = (cols + PNN_CPU_BIAS_BLOCK - 1) / PNN_CPU_BIAS_BLOCK;
#pragma omp parallel for if (rows * cols > PNN_CPU_PARALLEL_MIN && blocks > 1)
    for (int64_t blk = 0; blk < blocks; blk++) {
        int64_t c0 = blk * PNN_CPU_BIAS_BLOCK;
        int64_t width = cols - c0 < PNN_CPU_BIAS_BLOCK ? cols - c0 : PNN_CPU_BIAS_BLOCK;
        double acc[PNN_CPU_BIAS_BLOCK] = {0};
        for (int64_t r = 0; r < rows; r++) {
            const float *dyr = dy + r * cols + c0;
            for (int64_t c = 0; c < width; c++) acc[c] += dyr[c];
        }
        for (int64_t c = 0; c < width; c++) dbias[c0 + c] += (float)acc[c];
    }
}

/* Moves every patch row between the image layout and the patch layout; to_patches picks the
 * direction, so patchify and unpatchify share one index computation and stay exact inverses. */
static void patch_transfer(int64_t b, int64_t h, int64_t w, int64_t ph, int64_t pw, float *images,
                           float *patches, int to_patches) {
    int64_t nph = h / ph, npw = w / pw;
    int64_t lines = b * nph * npw * ph; /* one line = pw floats of one patch row */
#pragma omp parallel for if (b * h * w > PNN_CPU_PARALLEL_MIN)
    for (int64_t line = 0; line < lines; line++) {
        int64_t a = line % ph, patch = line / ph;
        int64_t pc = patch % npw, pr = (patch / npw) % nph, img = patch / (npw * nph);
        float *im = images + img * h * w + (pr * ph + a) * w + pc * pw;
        float *pa = patches + patch * ph * pw + a * pw;
        if (to_patches) memcpy(pa, im, (size_t)pw * sizeof(float));
        else memcpy(im, pa, (size_t)pw * sizeof(float));
    }
}

void pnn_cpu_patchify(void *ctx, int64_t b, int64_t h, int64_t w, int64_t ph, int64_t pw,
                      const float *images, float *patches) {
    (void)ctx;
    patch_transfer(b, h, w, ph, pw, (float *)images, patches, 1);
}

void pnn_cpu_unpatchify(void *ctx, int64_t b, int64_t h, int64_t w, int64_t ph, int64_t pw,
                        const float *patches, float *images) {
    (void)ctx;
    patch_transfer(b, h, w, ph, pw, images, (float *)patches, 0);
}

/* Log-sum-exp around the row maximum, in double, so logits of +-1000 give finite losses. A label
 * outside [0, classes) (which callers reject first) gives a NaN loss instead of a stray read. */
void pnn_cpu_softmax_xent(void *ctx, int64_t rows, int64_t classes, const float *logits,
                          const float *labels, float *loss_rows, float *correct_rows, float *dlogits,
                          float grad_scale) {
    (void)ctx;
#pragma omp parallel for if (rows * classes > PNN_CPU_PARALLEL_MIN)
    for (int64_t r = 0; r < rows; r++) {
        const float *z = logits + r * classes;
        int64_t argmax = 0;
        for (int64_t c = 1; c < classes; c++)
            if (z[c] > z[argmax]) argmax = c;
        double zmax = z[argmax], sum = 0.0;
        for (int64_t c = 0; c < classes; c++) sum += exp((double)z[c] - zmax);
        double lse = zmax + log(sum);
        float lf = labels[r];
        int64_t label = (lf >= 0.0f && lf < (float)classes) ? (int64_t)lf : -1;
        loss_rows[r] = label >= 0 ? (float)(lse - z[label]) : NAN;
        correct_rows[r] = argmax == label ? 1.0f : 0.0f;
        if (dlogits) {
            float *d = dlogits + r * classes;
            for (int64_t c = 0; c < classes; c++) {
                double p = exp((double)z[c] - lse);
                d[c] = (float)((p - (c == label ? 1.0 : 0.0)) * grad_scale);
            }
        }
    }
}

void pnn_cpu_mse(void *ctx, int64_t rows, int64_t cols, const float *y, const float *target,
                 float *loss_rows, float *dy, float grad_scale) {
    (void)ctx;
    float dscale = 2.0f * grad_scale / (float)cols;
#pragma omp parallel for if (rows * cols > PNN_CPU_PARALLEL_MIN)
    for (int64_t r = 0; r < rows; r++) {
        const float *yr = y + r * cols, *tr = target + r * cols;
        double acc = 0.0;
        for (int64_t c = 0; c < cols; c++) {
            double d = (double)yr[c] - (double)tr[c];
            acc += d * d;
        }
        loss_rows[r] = (float)(acc / (double)cols);
        if (dy)
            for (int64_t c = 0; c < cols; c++) dy[r * cols + c] = dscale * (yr[c] - tr[c]);
    }
}

