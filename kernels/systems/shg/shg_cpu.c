/* CPU kernels of the shg system (PHYSICS.md, "shg"; the math and the FFT packing are in shg.h):
 * the ideal map and its exact VJP, the device's map with phase, phase matching and blurred bins,
 * and the detector. Rows are independent, so every pass runs over blocks of rows in parallel, and
 * a block goes through all its stages (encode, autoconvolution, bins) while it is in cache. The
 * FFT form transforms two rows per complex FFT (the core backend's FFTW plans, one batched call
 * per block).
 *
 * The tape is laid out as shg_ops.h says (u, E, and Z in the FFT form). Work: without a tape the
 * forward keeps the tape's layout at its start; after it come [B, 2K] (the amplitudes; in the VJP
 * du and the amplitudes), [B, M] (the direct VJP's dE) and, in the FFT form, [ceil(B/2), 2L] (the
 * squared spectra, or the transformed gradients). The device map's work: per row, scratch of
 * shg_device_stride floats, then the intensity [B, M]. Regions start on 64-byte boundaries. */
#include <omp.h>
#include <string.h>

#include "kernels/cpu/cpu_ops.h"
#include "kernels/systems/shg/shg.h"
#include "kernels/systems/shg/shg_ops.h"

/* below this many output points per pass, threads cost more than they save */
#define SHG_OMP_MIN 16384

static int64_t shg_m(const pnn_shg_params *p) { return 2 * p->k - 1; }
static int64_t shg_pairs(const pnn_shg_params *p) { return (p->batch + 1) / 2; }

static size_t shg_tape_floats(const pnn_shg_params *p) {
    return (size_t)(pnn_shg_tape_z(p) + pnn_shg_spectra_floats(p));
}

/* offsets in work after the forward's tape: the amplitudes (or du), dE, the spectra scratch */
static int64_t shg_work_amp(const pnn_shg_params *p) { return (int64_t)shg_tape_floats(p); }
static int64_t shg_work_de(const pnn_shg_params *p) { return shg_work_amp(p) + pnn_shg_align(p->batch * 2 * p->k); }
static int64_t shg_work_spectra(const pnn_shg_params *p) {
    return shg_work_de(p) + pnn_shg_align(p->batch * shg_m(p));
}

static size_t shg_work_floats(const pnn_shg_params *p) {
    return (size_t)(shg_work_spectra(p) + pnn_shg_spectra_floats(p));
}

/* scratch floats per row of the device map: the split field and E (direct), or one padded complex
 * row (FFT) */
static int64_t shg_device_stride(const pnn_shg_params *p) {
    return p->form == PNN_SHG_DIRECT ? pnn_shg_align(2 * p->k + 2 * shg_m(p)) : 2 * p->fft_len;
}

static size_t shg_device_work_floats(const pnn_shg_params *p) {
    return (size_t)(p->batch * shg_device_stride(p) + pnn_shg_align(p->batch * shg_m(p)));
}

/* c: outputs in units of the open pulse's mean bin (shg.h) */
static float shg_norm(const pnn_shg_params *p) {
    double k = (double)p->k;
    return (float)((double)p->y_dim * 3.0 / (k * (2.0 * k * k + 1.0)));
}

/* u of one row: [x_row, theta] on their bins */
static void shg_encode_row(const pnn_shg_params *p, const int32_t *restrict bin_of, const float *restrict xr,
                           const float *restrict theta, float *restrict u) {
    for (int64_t i = 0; i < p->x_dim; i++) u[bin_of[i]] = xr[i];
    for (int64_t t = 0; t < p->k - p->x_dim; t++) u[bin_of[p->x_dim + t]] = theta[t];
}

/* Walks the bins of y_dim over m points in order without a division per bin: hi becomes
 * floor((j + 1) m / y_dim) from floor(j m / y_dim) by the quotient and a carried remainder. */
typedef struct shg_bins_walk {
    int64_t lo, hi, quot, rem, acc, y_dim;
} shg_bins_walk;

static inline shg_bins_walk shg_walk_start(int64_t m, int64_t y_dim) {
    return (shg_bins_walk){0, 0, m / y_dim, m % y_dim, 0, y_dim};
}

static inline void shg_walk_next(shg_bins_walk *w) {
    w->lo = w->hi;
    w->hi += w->quot;
    w->acc += w->rem;
    if (w->acc >= w->y_dim) w->acc -= w->y_dim, w->hi++;
}

/* y_j = c sum over bin j of e^2 */
static void shg_bin_row(const pnn_shg_params *p, float c, const float *restrict e, float *restrict y) {
    shg_bins_walk w = shg_walk_start(shg_m(p), p->y_dim);
    for (int64_t j = 0; j < p->y_dim; j++) {
        shg_walk_next(&w);
        float sum = 0.0f;
        for (int64_t i = w.lo; i < w.hi; i++) sum += e[i] * e[i];
        y[j] = c * sum;
    }
}

/* dE(m) = 2 c E(m) (gain dy)_bin(m) of one row, at de[m * step] */
static void shg_output_grad_row(const pnn_shg_params *p, float c, const float *restrict e, const float *restrict gain,
                                const float *restrict dy, float *restrict de, int64_t step) {
    shg_bins_walk w = shg_walk_start(shg_m(p), p->y_dim);
    for (int64_t j = 0; j < p->y_dim; j++) {
        shg_walk_next(&w);
        float g = 2.0f * c * dy[j] * (gain ? gain[j] : 1.0f);
        for (int64_t i = w.lo; i < w.hi; i++) de[i * step] = g * e[i];
    }
}

/* From the correlations c(j) (dA_j = 2 c(j)) to du of the row (in place) and dx of its data bins */
static void shg_input_grad_row(const pnn_shg_params *p, const int32_t *restrict bin_of, const float *restrict u,
                               float *restrict du, float *restrict dx) {
#pragma omp simd
    for (int64_t i = 0; i < p->k; i++) du[i] = 2.0f * du[i] * pnn_shg_amplitude_grad(u[i]);
    if (dx)
        for (int64_t i = 0; i < p->x_dim; i++) dx[i] = du[bin_of[i]];
}

/* E(m) = sum_{k+l=m} a_k a_l of one real row, each pair once, as rows of products added into E
 * (E[k + l] += 2 a_k a_l for l > k: contiguous, so the inner loop is one vector axpy) */
static void shg_autoconv_row(int64_t k, const float *restrict a, float *restrict e) {
    memset(e, 0, (size_t)(2 * k - 1) * sizeof *e);
    for (int64_t i = 0; i < k; i++) {
        float ai = a[i], twice = 2.0f * ai;
        float *restrict ei = e + i;
        ei[i] += ai * ai;
#pragma omp simd
        for (int64_t l = i + 1; l < k; l++) ei[l] += twice * a[l];
    }
}

/* pairs per block of the FFT form: enough blocks for the threads, blocks small enough for cache */
static int64_t shg_pair_block(const pnn_shg_params *p) {
    int64_t pairs = shg_pairs(p), threads = omp_get_max_threads();
    int64_t block = (pairs + threads - 1) / threads, cap = 8192 / p->fft_len;
    if (block > cap) block = cap;
    return block < 1 ? 1 : block;
}

/* the packed square (forward) or correlation product (VJP, with the taped spectra z) of one pair's
 * transform src, into dst (may be src), over k = 0..L/2 and their mirrors L - k */
static void shg_pair_products(int64_t len, const float *src, float *dst, const float *restrict z) {
    for (int64_t i = 0; i <= len / 2; i++) {
        int64_t i2 = i ? len - i : 0;
        float w1r = src[2 * i], w1i = src[2 * i + 1], w2r = src[2 * i2], w2i = src[2 * i2 + 1];
        if (z)
            pnn_shg_correlate_pair(w1r, w1i, w2r, w2i, z[2 * i], z[2 * i + 1], z[2 * i2], z[2 * i2 + 1], &dst[2 * i],
                                   &dst[2 * i + 1], &dst[2 * i2], &dst[2 * i2 + 1]);
        else
            pnn_shg_square_pair(w1r, w1i, w2r, w2i, &dst[2 * i], &dst[2 * i + 1], &dst[2 * i2], &dst[2 * i2 + 1]);
    }
}

/* The FFT form of forward for pairs [q0, q1): encode, pack the amplitudes, transform (into the
 * tape's Z), square into sq, transform back, unpack E, bin. */
static void shg_forward_fft_block(const pnn_shg_params *p, const int32_t *bin_of, const float *x,
                                  const float *theta, float *y, float *u, float *e, float *z, float *sq, int64_t q0,
                                  int64_t q1, float c) {
    const int64_t k = p->k, m = shg_m(p), len = p->fft_len, rows = p->batch;
    for (int64_t q = q0; q < q1; q++) {
        float *zq = z + q * 2 * len, *u0 = u + 2 * q * k, *u1 = u0 + k;
        int two = 2 * q + 1 < rows;
        shg_encode_row(p, bin_of, x + 2 * q * p->x_dim, theta, u0);
        if (two) shg_encode_row(p, bin_of, x + (2 * q + 1) * p->x_dim, theta, u1);
#pragma omp simd
        for (int64_t i = 0; i < k; i++) {
            zq[2 * i] = pnn_shg_amplitude(u0[i]);
            zq[2 * i + 1] = two ? pnn_shg_amplitude(u1[i]) : 0.0f;
        }
        memset(zq + 2 * k, 0, (size_t)(2 * (len - k)) * sizeof *zq);
    }
    pnn_cpu_fft(NULL, len, q1 - q0, 0, z + q0 * 2 * len, z + q0 * 2 * len);
    for (int64_t q = q0; q < q1; q++) shg_pair_products(len, z + q * 2 * len, sq + q * 2 * len, NULL);
    pnn_cpu_fft(NULL, len, q1 - q0, 1, sq + q0 * 2 * len, sq + q0 * 2 * len);
    const float inv = 1.0f / (float)len;
    for (int64_t q = q0; q < q1; q++) {
        const float *s = sq + q * 2 * len;
        float *e0 = e + 2 * q * m, *e1 = e0 + m;
        int two = 2 * q + 1 < rows;
#pragma omp simd
        for (int64_t i = 0; i < m; i++) e0[i] = s[2 * i] * inv;
        shg_bin_row(p, c, e0, y + 2 * q * p->y_dim);
        if (!two) continue;
#pragma omp simd
        for (int64_t i = 0; i < m; i++) e1[i] = s[2 * i + 1] * inv;
        shg_bin_row(p, c, e1, y + (2 * q + 1) * p->y_dim);
    }
}

static void shg_forward(void *ctx, const pnn_shg_params *p, const int32_t *bin_of, const float *x, const float *theta,
                        float *y, float *tape, float *work) {
    (void)ctx;
    const int64_t rows = p->batch, k = p->k, m = shg_m(p);
    if (rows <= 0) return;
    if (!tape) tape = work; /* the tape's layout at the start of work; the scratch is after it */
    float *u = tape, *e = tape + pnn_shg_tape_e(p), c = shg_norm(p);
    if (p->form == PNN_SHG_DIRECT) {
        float *amp = work + shg_work_amp(p);
#pragma omp parallel for schedule(static) if (rows * m > SHG_OMP_MIN)
        for (int64_t r = 0; r < rows; r++) {
            float *a = amp + r * k;
            shg_encode_row(p, bin_of, x + r * p->x_dim, theta, u + r * k);
#pragma omp simd
            for (int64_t i = 0; i < k; i++) a[i] = pnn_shg_amplitude(u[r * k + i]);
            shg_autoconv_row(k, a, e + r * m);
            shg_bin_row(p, c, e + r * m, y + r * p->y_dim);
        }
        return;
    }
    float *z = tape + pnn_shg_tape_z(p), *sq = work + shg_work_spectra(p);
    int64_t pairs = shg_pairs(p), block = shg_pair_block(p);
#pragma omp parallel for schedule(static) if (rows * p->fft_len > SHG_OMP_MIN)
    for (int64_t q0 = 0; q0 < pairs; q0 += block)
        shg_forward_fft_block(p, bin_of, x, theta, y, u, e, z, sq, q0, q0 + block < pairs ? q0 + block : pairs, c);
}

/* The FFT form of the VJP for pairs [q0, q1): pack dE of both rows, transform, multiply by the
 * conjugate spectra of the amplitudes (Z, taped), transform back: the correlations, then du and dx. */
static void shg_vjp_fft_block(const pnn_shg_params *p, const int32_t *bin_of, const float *u, const float *e,
                              const float *z, const float *gain, const float *dy, float *dx, float *du, float *w,
                              int64_t q0, int64_t q1, float c) {
    const int64_t k = p->k, m = shg_m(p), len = p->fft_len, rows = p->batch, yd = p->y_dim;
    for (int64_t q = q0; q < q1; q++) {
        float *wq = w + q * 2 * len;
        for (int half = 0; half < 2; half++) {
            int64_t r = 2 * q + half;
            if (r < rows) shg_output_grad_row(p, c, e + r * m, gain ? gain + r * yd : NULL, dy + r * yd, wq + half, 2);
            else
                for (int64_t i = 0; i < m; i++) wq[2 * i + 1] = 0.0f;
        }
        memset(wq + 2 * m, 0, (size_t)(2 * (len - m)) * sizeof *wq);
    }
    pnn_cpu_fft(NULL, len, q1 - q0, 0, w + q0 * 2 * len, w + q0 * 2 * len);
    for (int64_t q = q0; q < q1; q++) shg_pair_products(len, w + q * 2 * len, w + q * 2 * len, z + q * 2 * len);
    pnn_cpu_fft(NULL, len, q1 - q0, 1, w + q0 * 2 * len, w + q0 * 2 * len);
    const float inv = 1.0f / (float)len;
    for (int64_t q = q0; q < q1; q++)
        for (int half = 0; half < 2 && 2 * q + half < rows; half++) {
            int64_t r = 2 * q + half;
            const float *wq = w + q * 2 * len + half;
            float *dur = du + r * k;
#pragma omp simd
            for (int64_t i = 0; i < k; i++) dur[i] = wq[2 * i] * inv;
            shg_input_grad_row(p, bin_of, u + r * k, dur, dx ? dx + r * p->x_dim : NULL);
        }
}

/* dtheta[t] += sum over rows of du[r, bin of theta_t]: theta is shared by the rows. Threads take
 * blocks of controls and walk the rows in order, so the sum does not depend on the threads. */
static void shg_theta_grad(const pnn_shg_params *p, const int32_t *bin_of, const float *du, float *dtheta) {
    enum { BLOCK = 256 };
    const int64_t rows = p->batch, k = p->k, t_dim = k - p->x_dim;
    const int32_t *bins = bin_of + p->x_dim;
#pragma omp parallel for schedule(static) if (rows * t_dim > SHG_OMP_MIN)
    for (int64_t t0 = 0; t0 < t_dim; t0 += BLOCK) {
        int64_t n = t_dim - t0 < BLOCK ? t_dim - t0 : BLOCK;
        float acc[BLOCK] = {0};
        for (int64_t r = 0; r < rows; r++) {
            const float *dur = du + r * k;
            for (int64_t t = 0; t < n; t++) acc[t] += dur[bins[t0 + t]];
        }
        for (int64_t t = 0; t < n; t++) dtheta[t0 + t] += acc[t];
    }
}

static void shg_vjp(void *ctx, const pnn_shg_params *p, const int32_t *bin_of, const float *tape, const float *gain,
                    const float *dy, float *dx, float *dtheta, float *work) {
    (void)ctx;
    const int64_t rows = p->batch, k = p->k, m = shg_m(p), yd = p->y_dim;
    if (rows <= 0) return;
    const float *u = tape, *e = tape + pnn_shg_tape_e(p);
    float *du = work + shg_work_amp(p), c = shg_norm(p);
    if (p->form == PNN_SHG_DIRECT) {
        float *amp = du + rows * k, *de = work + shg_work_de(p);
#pragma omp parallel for schedule(static) if (rows * m > SHG_OMP_MIN)
        for (int64_t r = 0; r < rows; r++) {
            float *ar = amp + r * k, *der = de + r * m, *dur = du + r * k;
#pragma omp simd
            for (int64_t i = 0; i < k; i++) ar[i] = pnn_shg_amplitude(u[r * k + i]);
            shg_output_grad_row(p, c, e + r * m, gain ? gain + r * yd : NULL, dy + r * yd, der, 1);
            /* the correlation sum_l dE(j + l) A_l, as rows A_l dE(l + .) added into it */
            memset(dur, 0, (size_t)k * sizeof *dur);
            for (int64_t l = 0; l < k; l++) {
                const float al = ar[l], *restrict dl = der + l;
#pragma omp simd
                for (int64_t j = 0; j < k; j++) dur[j] += al * dl[j];
            }
            shg_input_grad_row(p, bin_of, u + r * k, dur, dx ? dx + r * p->x_dim : NULL);
        }
    } else {
        const float *z = tape + pnn_shg_tape_z(p);
        float *w = work + shg_work_spectra(p);
        int64_t pairs = shg_pairs(p), block = shg_pair_block(p);
#pragma omp parallel for schedule(static) if (rows * p->fft_len > SHG_OMP_MIN)
        for (int64_t q0 = 0; q0 < pairs; q0 += block)
            shg_vjp_fft_block(p, bin_of, u, e, z, gain, dy, dx, du, w, q0, q0 + block < pairs ? q0 + block : pairs, c);
    }
    shg_theta_grad(p, bin_of, du, dtheta);
}

/* The device's intensity at the M points of one row from its complex doubled field (real and
 * imaginary parts at re[i * step], im[i * step]), with the phase-matching factors pm */
static void shg_intensity_row(int64_t m, const float *restrict re, const float *restrict im, int64_t step,
                              const float *restrict pm, float *restrict out) {
    for (int64_t i = 0; i < m; i++) {
        float r = re[i * step], q = im[i * step];
        out[i] = pm[i] * pm[i] * (r * r + q * q);
    }
}

/* Complex E(m) of one row of u directly, each pair once, into er and ei (M each), from the split
 * real and imaginary parts of the phased field (s: 2K floats of scratch), as rows of products */
static void shg_autoconv_complex_row(int64_t k, const float *restrict u, const float *restrict phase,
                                     float *restrict s, float *restrict er, float *restrict ei) {
    float *ar = s, *ai = s + k;
    for (int64_t i = 0; i < k; i++) {
        float a = pnn_shg_amplitude(u[i]);
        ar[i] = a * phase[2 * i];
        ai[i] = a * phase[2 * i + 1];
    }
    memset(er, 0, (size_t)(2 * k - 1) * sizeof *er);
    memset(ei, 0, (size_t)(2 * k - 1) * sizeof *ei);
    for (int64_t i = 0; i < k; i++) {
        float pr = ar[i], pi = ai[i], tr = 2.0f * pr, ti = 2.0f * pi;
        float *restrict eri = er + i, *restrict eii = ei + i;
        eri[i] += pr * pr - pi * pi;
        eii[i] += 2.0f * pr * pi;
#pragma omp simd
        for (int64_t l = i + 1; l < k; l++) {
            eri[l] += tr * ar[l] - ti * ai[l];
            eii[l] += tr * ai[l] + ti * ar[l];
        }
    }
}

/* y_j = sum_t I(start_j + t) weight(offset_j + t) */
static void shg_weighted_bins_row(int64_t y_dim, const pnn_shg_bins *bins, const float *restrict in,
                                  float *restrict y) {
    for (int64_t j = 0; j < y_dim; j++) {
        const float *src = in + bins->start[j], *w = bins->weight + bins->offset[j];
        float sum = 0.0f;
        int64_t n = bins->count[j];
#pragma omp simd reduction(+ : sum)
        for (int64_t t = 0; t < n; t++) sum += src[t] * w[t];
        y[j] = sum;
    }
}

/* The device's map for rows [r0, r1): per row, u (in its intensity row for a moment), the phased
 * field, the complex autoconvolution (directly, or by one complex FFT per row: the phase makes the
 * rows complex, so they do not pack in pairs), the intensity, the weighted bins. */
static void shg_device_block(const pnn_shg_params *p, const int32_t *bin_of, const float *x, const float *theta,
                             const float *phase, const float *pm, const pnn_shg_bins *bins, float *y, float *work,
                             float *inten, int64_t stride, int64_t r0, int64_t r1) {
    const int64_t k = p->k, m = shg_m(p), len = p->fft_len;
    for (int64_t r = r0; r < r1; r++) {
        float *s = work + r * stride, *in = inten + r * m;
        shg_encode_row(p, bin_of, x + r * p->x_dim, theta, in);
        if (p->form == PNN_SHG_DIRECT) {
            shg_autoconv_complex_row(k, in, phase, s, s + 2 * k, s + 2 * k + m);
            shg_intensity_row(m, s + 2 * k, s + 2 * k + m, 1, pm, in);
        } else {
            memset(s, 0, (size_t)(2 * len) * sizeof *s);
            for (int64_t i = 0; i < k; i++) {
                float a = pnn_shg_amplitude(in[i]);
                s[2 * i] = a * phase[2 * i];
                s[2 * i + 1] = a * phase[2 * i + 1];
            }
        }
    }
    if (p->form == PNN_SHG_FFT) {
        float *buf = work + r0 * stride;
        pnn_cpu_fft(NULL, len, r1 - r0, 0, buf, buf);
        for (int64_t i = 0; i < (r1 - r0) * len; i++) {
            float re = buf[2 * i], im = buf[2 * i + 1];
            buf[2 * i] = re * re - im * im;
            buf[2 * i + 1] = 2.0f * re * im;
        }
        pnn_cpu_fft(NULL, len, r1 - r0, 1, buf, buf);
        const float inv = 1.0f / (float)len;
        for (int64_t r = r0; r < r1; r++) {
            float *s = work + r * stride;
            for (int64_t i = 0; i < 2 * m; i++) s[i] *= inv;
            shg_intensity_row(m, s, s + 1, 2, pm, inten + r * m);
        }
    }
    for (int64_t r = r0; r < r1; r++) shg_weighted_bins_row(p->y_dim, bins, inten + r * m, y + r * p->y_dim);
}

static void shg_device_forward(void *ctx, const pnn_shg_params *p, const int32_t *bin_of, const float *x,
                               const float *theta, const float *phase, const float *pm, const pnn_shg_bins *bins,
                               float *y, float *work) {
    (void)ctx;
    const int64_t rows = p->batch, stride = shg_device_stride(p);
    if (rows <= 0) return;
    float *inten = work + rows * stride;
    int64_t block = 2 * shg_pair_block(p);
#pragma omp parallel for schedule(static) if (rows * shg_m(p) > SHG_OMP_MIN)
    for (int64_t r0 = 0; r0 < rows; r0 += block)
        shg_device_block(p, bin_of, x, theta, phase, pm, bins, y, work, inten, stride,
                         r0, r0 + block < rows ? r0 + block : rows);
}

static void shg_detect(void *ctx, int64_t n, int64_t y_dim, const float *normals, float sigma, const float *offset,
                       float *y, float *gain) {
    (void)ctx;
#pragma omp parallel for schedule(static) if (n > SHG_OMP_MIN)
    for (int64_t i = 0; i < n; i++)
        y[i] = pnn_shg_detect(y[i], normals ? normals[i] : 0.0f, sigma, offset ? offset[i % y_dim] : 0.0f,
                              gain ? &gain[i] : NULL);
}

const pnn_shg_ops pnn_shg_cpu_ops = {
    .forward = shg_forward,
    .vjp = shg_vjp,
    .device_forward = shg_device_forward,
    .detect = shg_detect,
    .tape_floats = shg_tape_floats,
    .work_floats = shg_work_floats,
    .device_work_floats = shg_device_work_floats,
};
