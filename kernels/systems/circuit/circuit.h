/* Per-element math of the circuit system (PHYSICS.md, "circuit"), written once for the CPU loops
 * (circuit_cpu.c) and the CUDA threads (circuit_cuda.cu): a driven, damped oscillator with a
 * saturating, transistor-like element,
 *     v'' + (w0/Qf) v' + w0^2 v + alpha tanh(kappa v) = w0^2 u(t),
 * as the first-order system v' = w, w' = F(v, w, u) = a (u - v) - c w - alpha tanh(kappa v) with
 * a = w0^2 and c = w0/Qf, integrated by classic RK4 with step h; u is constant over a step.
 *
 * One step from (v, w), stage k at (v_k, w_k), f_k = F(v_k, w_k, u):
 *   v2 = v + h/2 w,    w2 = w + h/2 f1
 *   v3 = v + h/2 w2,   w3 = w + h/2 f2
 *   v4 = v + h w3,     w4 = w + h f3
 *   v' = v + h/6 (w + 2 w2 + 2 w3 + w4),   w' = w + h/6 (f1 + 2 f2 + 2 f3 + f4)
 * Its exact adjoint, with (Gv, Gw) the adjoints of (v', w'), D_k = dF/dv at stage k
 * = -a - alpha kappa (1 - tanh^2(kappa v_k)) and dF/dw = -c, dF/du = a:
 *   e4 = h/6 Gw,                 gw4 = h/6 Gv - c e4,    gv4 = D4 e4
 *   e3 = h/3 Gw + h gw4,         gw3 = h/3 Gv + h gv4 - c e3,     gv3 = D3 e3
 *   e2 = h/3 Gw + h/2 gw3,       gw2 = h/3 Gv + h/2 gv3 - c e2,   gv2 = D2 e2
 *   e1 = h/6 Gw + h/2 gw2
 *   gv = Gv + gv2 + gv3 + gv4 + D1 e1,   gw = Gw + gw2 + gw3 + gw4 + h/6 Gv + h/2 gv2 - c e1
 *   gu += a (e1 + e2 + e3 + e4)
 * where e_k is the adjoint of f_k and (gv_k, gw_k) that of stage k's position. The adjoint
 * recomputes the stages from the taped (v, w) of the step with the same code as the forward, so
 * it differentiates exactly the numbers the forward produced. */
#ifndef PNN_MATH_CIRCUIT_H
#define PNN_MATH_CIRCUIT_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "kernels/math/hd.h"
#include "kernels/math/tanh.h"

/* The step's constants: a = w0^2, c = w0/Qf, alpha, kappa, and the step h. */
typedef struct pnn_circuit_coef {
    float a, c, alpha, kappa, h;
} pnn_circuit_coef;

/* the constants of a circuit with these values and step dt */
PNN_HD pnn_circuit_coef pnn_circuit_coef_of(float w0, float qf, float alpha, float kappa, float dt) {
    pnn_circuit_coef k;
    k.a = w0 * w0;
    k.c = w0 / qf;
    k.alpha = alpha;
    k.kappa = kappa;
    k.h = dt;
    return k;
}

/* tanh as plain arithmetic (kernels/math/tanh.h): vectorises on the CPU, and the CPU and GPU
 * compute the same numbers */
PNN_HD float pnn_circuit_tanh(float x) { return pnn_tanh_arith(x); }

/* the drive amplifier's rails: u = x clipped to [-1, 1] (NaN passes) */
PNN_HD float pnn_circuit_clip(float x) { return x > 1.0f ? 1.0f : x < -1.0f ? -1.0f : x; }

/* the gradient through pnn_circuit_clip: g where x is inside the rails, else 0 */
PNN_HD float pnn_circuit_clip_grad(float x, float g) { return x >= -1.0f && x <= 1.0f ? g : 0.0f; }

/* Which input drives segment i of s: returns 1 with *idx the column of x, or 0 with *idx the
 * entry of theta. Concatenated: x first, then theta. Interleaved: x column j drives segment
 * floor(j s / x_dim), theta fills the others in order (x_dim = s/2: x0 t0 x1 t1 ...). */
PNN_HD int pnn_circuit_source(int64_t i, int64_t s, int64_t x_dim, int interleave, int64_t *idx) {
    if (!interleave) {
        *idx = i < x_dim ? i : i - x_dim;
        return i < x_dim;
    }
    int64_t j = (i * x_dim + s - 1) / s; /* x columns on segments before i: ceil(i x_dim / s) */
    if (j < x_dim && j * s / x_dim == i) {
        *idx = j;
        return 1;
    }
    *idx = i - j;
    return 0;
}

/* the step after which output j of y_dim is sampled: floor((j + 1) n_steps / y_dim), so the
 * samples close y_dim equal spans of the run (rounded down to the step grid) */
PNN_HD int64_t pnn_circuit_sample_step(int64_t j, int64_t n_steps, int64_t y_dim) {
    return (j + 1) * n_steps / y_dim;
}

/* F at a stage; *th gets tanh(kappa v) */
PNN_HD float pnn_circuit_force(pnn_circuit_coef k, float v, float w, float u, float *th) {
    *th = pnn_circuit_tanh(k.kappa * v);
    return k.a * (u - v) - k.c * w - k.alpha * *th;
}

/* The four stages of a step from (v, w): velocities w2..w4, forces f1..f4 and tanh th1..th4. */
typedef struct pnn_circuit_stages {
    float w2, w3, w4, f1, f2, f3, f4, th1, th2, th3, th4;
} pnn_circuit_stages;

PNN_HD pnn_circuit_stages pnn_circuit_stage(pnn_circuit_coef k, float u, float v, float w) {
    pnn_circuit_stages s;
    const float hh = 0.5f * k.h;
    s.f1 = pnn_circuit_force(k, v, w, u, &s.th1);
    s.w2 = w + hh * s.f1;
    s.f2 = pnn_circuit_force(k, v + hh * w, s.w2, u, &s.th2);
    s.w3 = w + hh * s.f2;
    s.f3 = pnn_circuit_force(k, v + hh * s.w2, s.w3, u, &s.th3);
    s.w4 = w + k.h * s.f3;
    s.f4 = pnn_circuit_force(k, v + k.h * s.w3, s.w4, u, &s.th4);
    return s;
}

/* one RK4 step of (v, w) under drive u */
PNN_HD void pnn_circuit_step(pnn_circuit_coef k, float u, float *v, float *w) {
    const float v0 = *v, w0 = *w, h6 = k.h / 6.0f;
    pnn_circuit_stages s = pnn_circuit_stage(k, u, v0, w0);
    *v = v0 + h6 * (w0 + 2.0f * (s.w2 + s.w3) + s.w4);
    *w = w0 + h6 * (s.f1 + 2.0f * (s.f2 + s.f3) + s.f4);
}

/* dF/dv at a stage, from its tanh */
PNN_HD float pnn_circuit_dforce(pnn_circuit_coef k, float th) {
    return -k.a - k.alpha * k.kappa * (1.0f - th * th);
}

/* The adjoint of one step taken from (v, w) under drive u: (gv, gw), the adjoints of the step's
 * result, become those of (v, w); gu accumulates the adjoint of u. */
PNN_HD void pnn_circuit_step_adjoint(pnn_circuit_coef k, float u, float v, float w, float *gv, float *gw,
                                     float *gu) {
    const pnn_circuit_stages s = pnn_circuit_stage(k, u, v, w);
    const float h = k.h, h2 = 0.5f * h, h3 = h / 3.0f, h6 = h / 6.0f, Gv = *gv, Gw = *gw;
    float e4 = h6 * Gw;
    float gw4 = h6 * Gv - k.c * e4, gv4 = pnn_circuit_dforce(k, s.th4) * e4;
    float e3 = h3 * Gw + h * gw4;
    float gw3 = h3 * Gv + h * gv4 - k.c * e3, gv3 = pnn_circuit_dforce(k, s.th3) * e3;
    float e2 = h3 * Gw + h2 * gw3;
    float gw2 = h3 * Gv + h2 * gv3 - k.c * e2, gv2 = pnn_circuit_dforce(k, s.th2) * e2;
    float e1 = h6 * Gw + h2 * gw2;
    *gv = Gv + gv2 + gv3 + gv4 + pnn_circuit_dforce(k, s.th1) * e1;
    *gw = Gw + gw2 + gw3 + gw4 + h6 * Gv + h2 * gv2 - k.c * e1;
    *gu += k.a * (e1 + e2 + e3 + e4);
}

#endif
