/* Per-element math of the coupled-oscillator RK4 step and of its exact adjoint, written once for
 * the CPU loops (oscillator_cpu.c) and the CUDA kernels (oscillator_cuda.cu).
 *
 * One RK4 step of dq/dt = p, dp/dt = a(q) = -s + s Q + e, s = sin(w q), w = 1 + eta, from (q, p)
 * with step h, rewritten so that stages pair up (stage k's position needs a_{k-2}, not a_{k-1}):
 *   X1 = q,                      X2 = q + h/2 p
 *   X3 = q + h/2 p + h^2/4 a1,   X4 = q + h p + h^2/2 a2
 *   q' = q + h p + h^2/6 (a1 + a2 + a3),   p' = p + h/6 (a1 + 2 a2 + 2 a3 + a4)
 * with a_k = a(X_k). This is the classic RK4 map, algebraically unchanged; it lets stages 1-2 and
 * 3-4 share one GEMM of twice the rows. The adjoint of this map, with gq, gp the adjoints of
 * (q', p') and g_k the adjoint of a_k:
 *   g4 = h/6 gp,   g3 = h^2/6 gq + h/3 gp
 *   Xbar_k = (g_k Q^T - g_k) * w cos(w X_k)
 *   g2 = h^2/6 gq + h/3 gp + h^2/2 Xbar4,   g1 = h^2/6 gq + h/6 gp + h^2/4 Xbar3
 *   qbar = gq + Xbar1 + Xbar2 + Xbar3 + Xbar4,   pbar = h gq + gp + h/2 (Xbar2 + Xbar3) + h Xbar4
 *   dQ += sum_k s_k^T g_k,   de += column sums of sum_k g_k. */
#ifndef PNN_MATH_OSCILLATOR_H
#define PNN_MATH_OSCILLATOR_H

#include <math.h>
#include <stdbool.h>

#include "kernels/math/hd.h"

/* sin and cos of x together, within a few ulp for |x| < 1e5, as plain arithmetic: it
 * vectorises under any flags (GCC 12 does not vectorise sinf/cosf to libmvec with
 * -fno-finite-math-only, and fuses sin+cos into a non-vector sincos), and CPU and GPU compute
 * the same numbers. x = k pi/2 + r with |r| <= pi/4 (pi/2 split in two floats, reduced with fma
 * so no rounding or reassociation loses bits), then odd/even polynomials in r fitted here
 * (near-minimax, relative error < 1e-10 in exact arithmetic), and the quadrant k mod 4 picks
 * and signs them. NaN and Inf give NaN. */
PNN_HD void pnn_osc_sincos(float x, float *s, float *c) {
    const float pio2_hi = 1.57079637e+00f, pio2_lo = -4.37113883e-08f;
    float k = rintf(x * 0.636619772f);
    float r = fmaf(-k, pio2_hi, x);
    r = fmaf(-k, pio2_lo, r);
    float z = r * r;
    float ps = r + r * z * (-1.66666666e-01f + z * (8.33332988e-03f + z * (-1.98394929e-04f +
                                                                         z * 2.71980117e-06f)));
    float pc = 1.0f + z * (-0.5f + z * (4.16666666e-02f + z * (-1.38888843e-03f +
                                                               z * (2.47996643e-05f +
                                                                    z * -2.72221181e-07f))));
    float m = k - 4.0f * floorf(0.25f * k); /* k mod 4, exact in floats */
    bool odd = m == 1.0f || m == 3.0f;
    float sv = odd ? pc : ps, cv = odd ? ps : pc;
    *s = m >= 2.0f ? -sv : sv;
    *c = (m == 1.0f || m == 2.0f) ? -cv : cv;
}

/* s = sin(w x) and, when wc is not NULL, *wc = w cos(w x): what the adjoint needs of a stage */
PNN_HD void pnn_osc_phase(float x, float w, float *s, float *wc) {
    float sv, cv;
    pnn_osc_sincos(w * x, &sv, &cv);
    *s = sv;
    if (wc) *wc = w * cv;
}

/* the acceleration a = -s + (s Q) + e of one element, given sq = (s Q) of that element */
PNN_HD float pnn_osc_accel(float sq, float s, float e) { return sq - s + e; }

/* stage positions X1, X2 at the start of a step */
PNN_HD void pnn_osc_start(float q, float p, float h, float *x1, float *x2) {
    *x1 = q;
    *x2 = q + 0.5f * h * p;
}

/* from a1, a2: positions X3, X4, and (q, p) advanced by the a1, a2 part of the step */
PNN_HD void pnn_osc_middle(float a1, float a2, float h, float *q, float *p, float *x3, float *x4) {
    float q0 = *q, p0 = *p;
    *x3 = q0 + 0.5f * h * p0 + 0.25f * h * h * a1;
    *x4 = q0 + h * p0 + 0.5f * h * h * a2;
    *q = q0 + h * p0 + (h * h / 6.0f) * (a1 + a2);
    *p = p0 + (h / 6.0f) * (a1 + 2.0f * a2);
}

/* (q, p) completed by the a3, a4 part of the step */
PNN_HD void pnn_osc_finish(float a3, float a4, float h, float *q, float *p) {
    *q += (h * h / 6.0f) * a3;
    *p += (h / 6.0f) * (2.0f * a3 + a4);
}

/* adjoint, first half: g3, g4 from the adjoints gq, gp of the step's output */
PNN_HD void pnn_osc_adj_top(float gq, float gp, float h, float *g3, float *g4) {
    *g3 = (h * h / 6.0f) * gq + (h / 3.0f) * gp;
    *g4 = (h / 6.0f) * gp;
}

/* adjoint, second half: given r3 = (g3 Q^T), r4 = (g4 Q^T) and w cos(w X3), w cos(w X4), the
 * adjoints g1, g2, and (gq, gp) turned into the adjoints of (q, p) less the stage 1-2 terms */
PNN_HD void pnn_osc_adj_middle(float r3, float r4, float g3, float g4, float wc3, float wc4, float h,
                               float *gq, float *gp, float *g1, float *g2) {
    float xb3 = (r3 - g3) * wc3, xb4 = (r4 - g4) * wc4;
    float q0 = *gq, p0 = *gp;
    *g1 = (h * h / 6.0f) * q0 + (h / 6.0f) * p0 + 0.25f * h * h * xb3;
    *g2 = (h * h / 6.0f) * q0 + (h / 3.0f) * p0 + 0.5f * h * h * xb4;
    *gq = q0 + xb3 + xb4;
    *gp = h * q0 + p0 + 0.5f * h * xb3 + h * xb4;
}

/* adjoint, last part: (gq, gp) completed by the stage 1-2 terms into the adjoints of (q, p) */
PNN_HD void pnn_osc_adj_bottom(float r1, float r2, float g1, float g2, float wc1, float wc2, float h,
                               float *gq, float *gp) {
    float xb1 = (r1 - g1) * wc1, xb2 = (r2 - g2) * wc2;
    *gq += xb1 + xb2;
    *gp += 0.5f * h * xb2;
}

#endif
