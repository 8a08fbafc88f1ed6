/* Per-element math of the shg system (PHYSICS.md, "shg": a broadband pulse, shaped and frequency
 * doubled), written once for the CPU loops (shg_cpu.c) and the CUDA kernels (shg_cuda.cu).
 *
 * The map, for one sample: u = [x, theta] (K values) lands on the K spectral bins of the
 * fundamental through bin_of (bin_of[i] is the bin of u_i: the layout); A_k = sqrt(u_k), u clamped
 * to [0, 1], is the field amplitude; the doubled field is the autoconvolution E(m) = sum_{k+l=m} a_k a_l
 * (m = 0..M-1, M = 2K-1) with a_k = A_k in the ideal model (flat phase) and a_k = A_k exp(i phi_k)
 * on the device; the output y_j = c sum_{m in bin j} |E(m)|^2 over y_dim bins, bin j being
 * [floor(j M / y_dim), floor((j+1) M / y_dim)). c = y_dim / P_K with P_K = sum_m |E(m)|^2 of the
 * all-open pulse (u = 1) = K (2K^2 + 1) / 3: outputs are in units of the open pulse's mean bin.
 *
 * The autoconvolution by FFT (length L >= M, zero-padded) packs two real rows r, r' into one
 * complex sequence z = A_r + i A_r'. With Z its transform, s = Z(k) + conj(Z(L-k)) and
 * d = Z(k) - conj(Z(L-k)), the transforms of the two rows are s/2 and -i d/2, so
 *   P(k) = (s^2 - i d^2) / 4   (P(L-k) likewise from conj(s), -conj(d))
 * is the transform of E_r + i E_r', whose inverse gives both autoconvolutions at once. The VJP's
 * correlations c_r(j) = sum_m dE_r(m) A_r(m - j) pack the same way: with W the transform of
 * dE_r + i dE_r' and sw, dw its s and d, Q(k) = (sw conj(s) + i dw conj(d)) / 4 is the transform
 * of c_r + i c_r'. */
#ifndef PNN_MATH_SHG_H
#define PNN_MATH_SHG_H

#include <math.h>
#include <stdint.h>

#include "kernels/math/hd.h"

/* A pulse shaper transmits between nothing and everything: u is clamped to [0, 1], A = sqrt(u)
 * (sqrt(max(u, 0)) on the range the device allows, x_range = theta_range = [0, 1]). dA/du is
 * 1 / (2 sqrt(u)), infinite at u = 0: below u = PNN_SHG_U_FLOOR the VJP uses the value at the
 * floor (1 / (2 sqrt(1e-4)) = 50); where u <= 0 (a closed bin) or u > 1 (a saturated one) it is
 * 0, the exact derivative of the clamp's flat parts. */
#define PNN_SHG_U_FLOOR 1e-4f

/* A = sqrt(min(max(u, 0), 1)); NaN stays NaN (so a bad input shows in y) */
PNN_HD float pnn_shg_amplitude(float u) { return u <= 0.0f ? 0.0f : u >= 1.0f ? 1.0f : sqrtf(u); }

/* dA/du at u (see above) */
PNN_HD float pnn_shg_amplitude_grad(float u) {
    float v = u < PNN_SHG_U_FLOOR ? PNN_SHG_U_FLOOR : u; /* not fmaxf: a libm call where NaN must survive */
    return u <= 0.0f || u > 1.0f ? 0.0f : 0.5f / sqrtf(v);
}

/* first output point of bin j of y_dim over m points */
PNN_HD int64_t pnn_shg_bin_start(int64_t j, int64_t m, int64_t y_dim) { return j * m / y_dim; }

/* the bin of output point i */
PNN_HD int64_t pnn_shg_bin_of_point(int64_t i, int64_t m, int64_t y_dim) { return ((i + 1) * y_dim - 1) / m; }

/* The bin of u_i (u = [x, theta]) for layout 0 (concat: x on bins 0..x_dim-1, theta after) or 1
 * (interleave: x and theta alternate from bin 0, x first; the longer one's rest fills the top). */
PNN_HD int64_t pnn_shg_bin_of(int64_t i, int64_t k, int64_t x_dim, int layout) {
    if (layout == 0) return i;
    int64_t t_dim = k - x_dim, pairs = x_dim < t_dim ? x_dim : t_dim;
    int64_t j = i < x_dim ? i : i - x_dim; /* index within x or theta */
    if (j < pairs) return 2 * j + (i < x_dim ? 0 : 1);
    return 2 * pairs + (j - pairs);
}

/* The packed-spectrum square at k and L-k: given z1 = Z(k), z2 = Z(L-k), writes P(k) to p1 and
 * P(L-k) to p2 (for k = 0 or L/2, z1 = z2 and p1 = p2 are the same point) */
PNN_HD void pnn_shg_square_pair(float z1r, float z1i, float z2r, float z2i, float *p1r, float *p1i,
                                float *p2r, float *p2i) {
    float sr = z1r + z2r, si = z1i - z2i; /* s = z1 + conj(z2) */
    float dr = z1r - z2r, di = z1i + z2i; /* d = z1 - conj(z2) */
    float s2r = sr * sr - si * si, s2i = 2.0f * sr * si;
    float d2r = dr * dr - di * di, d2i = 2.0f * dr * di;
    /* P(k) = (s^2 - i d^2)/4; P(L-k) = (conj(s)^2 - i conj(d)^2)/4 */
    *p1r = 0.25f * (s2r + d2i);
    *p1i = 0.25f * (s2i - d2r);
    *p2r = 0.25f * (s2r - d2i);
    *p2i = 0.25f * (-s2i - d2r);
}

/* The packed correlation product at k and L-k: w1 = W(k), w2 = W(L-k) (transform of the packed
 * output gradients), z1 = Z(k), z2 = Z(L-k) (packed spectrum of the amplitudes); writes Q(k) and
 * Q(L-k) */
PNN_HD void pnn_shg_correlate_pair(float w1r, float w1i, float w2r, float w2i, float z1r, float z1i, float z2r,
                                   float z2i, float *q1r, float *q1i, float *q2r, float *q2i) {
    float swr = w1r + w2r, swi = w1i - w2i, dwr = w1r - w2r, dwi = w1i + w2i;
    float szr = z1r + z2r, szi = z1i - z2i, dzr = z1r - z2r, dzi = z1i + z2i;
    /* a = sw conj(sz), b = dw conj(dz) */
    float ar = swr * szr + swi * szi, ai = swi * szr - swr * szi;
    float br = dwr * dzr + dwi * dzi, bi = dwi * dzr - dwr * dzi;
    /* Q(k) = (a + i b)/4; Q(L-k) = (conj(a) + i conj(b))/4 */
    *q1r = 0.25f * (ar - bi);
    *q1i = 0.25f * (ai + br);
    *q2r = 0.25f * (ar + bi);
    *q2i = 0.25f * (br - ai);
}

/* y = y (1 + sigma n) + offset, the detector; the factor goes to gain when it is not NULL */
PNN_HD float pnn_shg_detect(float y, float n, float sigma, float offset, float *gain) {
    float g = 1.0f + sigma * n;
    if (gain) *gain = g;
    return y * g + offset;
}

#endif
