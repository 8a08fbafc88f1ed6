/* CPU kernels of the coupled-oscillator system (PHYSICS.md, "oscillator"): Q from C and its
 * gradient, the RK4 integration of a batch, and the exact vector-Jacobian product of that
 * discrete map. The per-element math lives in oscillator.h, which also derives the
 * paired-stage form used here: stages 1-2 and 3-4 of a step each go through one GEMM of 2B rows
 * (one pass over Q for two stages), the same in the adjoint.
 *
 * Tape layout (8 nt B N floats), stage k (0..3) of step t at slot 4t + k, each slot B x N:
 *   [0, 4 nt B N)           s  = sin(w X) of every stage, slot order
 *   [4 nt B N, 8 nt B N)    wc = w cos(w X) of every stage, slot order
 * with w = 1 + eta and X the stage positions. The slot order makes the s of all stages one
 * (4 nt B) x N matrix, so dQ = S^T G is one GEMM with K = 4 nt B.
 *
 * Work: forward uses p (B N), s Q of two stages (2 B N) and, without a tape, s of stages 1-2 and
 * 3-4 (4 B N); the VJP uses the adjoints of q and p (2 B N), g Q^T of two stages (2 B N) and the
 * adjoints g of every stage's acceleration in tape slot order (4 nt B N). */
#include <cblas.h>
#include <stdbool.h>
#include <string.h>

#include "kernels/systems/oscillator/oscillator.h"
#include "kernels/systems/oscillator/oscillator_ops.h"

/* below this many elements per pass, threads cost more than they save */
#define PNN_OSC_OMP_MIN 32768

size_t pnn_cpu_osc_tape_floats(const pnn_osc_params *p) {
    return (size_t)8 * (size_t)p->nt * (size_t)p->batch * (size_t)p->n;
}

size_t pnn_cpu_osc_work_floats(const pnn_osc_params *p) {
    return ((size_t)4 * (size_t)p->nt + 4) * (size_t)p->batch * (size_t)p->n;
}

/* Q from C, in two row-parallel passes: the symmetric part (blocked, so the transposed reads of
 * C stay in cache), then the diagonal from row sums (S is symmetric, so row sums are the column
 * sums the definition asks for). */
void pnn_cpu_osc_build_q(void *ctx, int64_t n, const float *c, float *q) {
    const int64_t tile = 64;
#pragma omp parallel for schedule(static) if (n * n > PNN_OSC_OMP_MIN)
    for (int64_t i0 = 0; i0 < n; i0 += tile)
        for (int64_t j0 = 0; j0 < n; j0 += tile)
            for (int64_t i = i0; i < i0 + tile && i < n; i++)
                for (int64_t j = j0; j < j0 + tile && j < n; j++)
                    q[i * n + j] = 0.5f * (c[i * n + j] + c[j * n + i]);
#pragma omp parallel for schedule(static) if (n * n > PNN_OSC_OMP_MIN)
    for (int64_t i = 0; i < n; i++) {
        float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
        for (int64_t j = 0; j < n; j++) sum += q[i * n + j];
        q[i * n + i] = -sum;
    }
}

/* dC += the gradient through pnn_cpu_osc_build_q. With G = dQ: dS_ij = G_ij - G_jj off the
 * diagonal, dS_ii = -G_ii, dC = (dS + dS^T)/2, i.e. dC_ij = (G_ij + G_ji - G_ii - G_jj)/2 for
 * i != j and dC_ii = -G_ii. */
void pnn_cpu_osc_build_q_backward(void *ctx, int64_t n, const float *dq, float *dc) {
    const int64_t tile = 64;
#pragma omp parallel for schedule(static) if (n * n > PNN_OSC_OMP_MIN)
    for (int64_t i0 = 0; i0 < n; i0 += tile)
        for (int64_t j0 = 0; j0 < n; j0 += tile)
            for (int64_t i = i0; i < i0 + tile && i < n; i++) {
                float gii = dq[i * n + i];
                for (int64_t j = j0; j < j0 + tile && j < n; j++)
                    dc[i * n + j] += i == j ? -gii
                                            : 0.5f * (dq[i * n + j] + dq[j * n + i] - gii - dq[j * n + j]);
            }
}

/* c[m x n] = a[m x n] . Q (or Q^T), Q n x n: the coupling product of a block of stage rows */
static void osc_gemm(bool trans_q, int64_t m, int64_t n, const float *a, const float *q_mat, float *c) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, trans_q ? CblasTrans : CblasNoTrans, (int)m, (int)n,
                (int)n, 1.0f, a, (int)n, q_mat, (int)n, 0.0f, c, (int)n);
}

/* positions x (one row, in place) become s = sin(w x); wc (may be NULL) gets w cos(w x) */
static inline void osc_phase_row(int64_t n, float w, float *restrict xs, float *restrict wc) {
    if (wc) {
#pragma omp simd
        for (int64_t j = 0; j < n; j++) pnn_osc_phase(xs[j], w, &xs[j], &wc[j]);
    } else {
#pragma omp simd
        for (int64_t j = 0; j < n; j++) pnn_osc_phase(xs[j], w, &xs[j], NULL);
    }
}

/* The pass between two steps, row-parallel. When acc34 is NULL the state starts at (q0, 0);
 * otherwise the previous step is finished from acc34 = (s3 Q, s4 Q) and s34. When s12 is not
 * NULL, stages 1-2 of the next step are set up: s12 gets their s (2 B x N), wc12 (may be NULL)
 * their w cos. */
static void osc_pass_boundary(const pnn_osc_params *p, const float *restrict e,
                              const float *restrict q0, const float *restrict acc34,
                              const float *restrict s34, float *restrict q, float *restrict pm,
                              float *restrict s12, float *restrict wc12) {
    const int64_t rows = p->batch, n = p->n, bn = rows * n;
    const float h = p->dt, w = 1.0f + p->eta;
#pragma omp parallel for schedule(static) if (bn > PNN_OSC_OMP_MIN)
    for (int64_t b = 0; b < rows; b++) {
        float *qr = q + b * n, *pr = pm + b * n;
        if (!acc34) {
            memcpy(qr, q0 + b * n, (size_t)n * sizeof *qr);
            memset(pr, 0, (size_t)n * sizeof *pr);
        } else {
            const float *a3 = acc34 + b * n, *a4 = acc34 + bn + b * n;
            const float *s3 = s34 + b * n, *s4 = s34 + bn + b * n;
#pragma omp simd
            for (int64_t j = 0; j < n; j++)
                pnn_osc_finish(pnn_osc_accel(a3[j], s3[j], e[j]), pnn_osc_accel(a4[j], s4[j], e[j]), h,
                               &qr[j], &pr[j]);
        }
        if (s12) {
            float *x1 = s12 + b * n, *x2 = s12 + bn + b * n;
#pragma omp simd
            for (int64_t j = 0; j < n; j++) pnn_osc_start(qr[j], pr[j], h, &x1[j], &x2[j]);
            osc_phase_row(n, w, x1, wc12 ? wc12 + b * n : NULL);
            osc_phase_row(n, w, x2, wc12 ? wc12 + bn + b * n : NULL);
        }
    }
}

/* The pass in the middle of a step, row-parallel: a1, a2 from acc12 = (s1 Q, s2 Q) and s12;
 * (q, pm) advance by their part of the step; s34 and wc34 (may be NULL) get stages 3-4. */
static void osc_pass_middle(const pnn_osc_params *p, const float *restrict e,
                            const float *restrict acc12, const float *restrict s12, float *restrict q,
                            float *restrict pm, float *restrict s34, float *restrict wc34) {
    const int64_t rows = p->batch, n = p->n, bn = rows * n;
    const float h = p->dt, w = 1.0f + p->eta;
#pragma omp parallel for schedule(static) if (bn > PNN_OSC_OMP_MIN)
    for (int64_t b = 0; b < rows; b++) {
        const float *a1 = acc12 + b * n, *a2 = acc12 + bn + b * n;
        const float *s1 = s12 + b * n, *s2 = s12 + bn + b * n;
        float *qr = q + b * n, *pr = pm + b * n, *x3 = s34 + b * n, *x4 = s34 + bn + b * n;
#pragma omp simd
        for (int64_t j = 0; j < n; j++)
            pnn_osc_middle(pnn_osc_accel(a1[j], s1[j], e[j]), pnn_osc_accel(a2[j], s2[j], e[j]), h,
                           &qr[j], &pr[j], &x3[j], &x4[j]);
        osc_phase_row(n, w, x3, wc34 ? wc34 + b * n : NULL);
        osc_phase_row(n, w, x4, wc34 ? wc34 + bn + b * n : NULL);
    }
}

/* RK4 over nt steps, two GEMMs of 2B rows per step. The state q lives in qT itself. Without a
 * tape the stage s go to work and w cos is never computed; the arithmetic is the same, so qT is
 * bit-identical either way. */
void pnn_cpu_osc_forward(void *ctx, const pnn_osc_params *p, const float *q0, const float *q_mat,
                         const float *e, float *qT, float *tape, float *work) {
    const int64_t n = p->n, bn = p->batch * n, slots = 4 * (int64_t)p->nt;
    float *pm = work, *acc = work + bn, *s12_work = work + 3 * bn, *s34_work = work + 5 * bn;
    const float *s34_prev = NULL;
    for (int t = 0; t < p->nt; t++) {
        float *s12 = tape ? tape + 4 * t * bn : s12_work;
        float *s34 = tape ? tape + (4 * t + 2) * bn : s34_work;
        float *wc12 = tape ? tape + (slots + 4 * t) * bn : NULL;
        float *wc34 = tape ? tape + (slots + 4 * t + 2) * bn : NULL;
        osc_pass_boundary(p, e, q0, t ? acc : NULL, s34_prev, qT, pm, s12, wc12);
        osc_gemm(false, 2 * p->batch, n, s12, q_mat, acc);
        osc_pass_middle(p, e, acc, s12, qT, pm, s34, wc34);
        osc_gemm(false, 2 * p->batch, n, s34, q_mat, acc);
        s34_prev = s34;
    }
    osc_pass_boundary(p, e, q0, acc, s34_prev, qT, pm, NULL, NULL);
}

/* The adjoint pass between two steps, row-parallel. When r12 is NULL the adjoints start at
 * (dqT, 0); otherwise the later step's adjoint is finished from r12 = (g1 Q^T, g2 Q^T), g12 and
 * wc12. Then g34 (when not NULL) gets g3, g4 of the earlier step; when it is NULL the adjoint of
 * q(0) is final and goes to dq0 (when not NULL). */
static void osc_adj_boundary(const pnn_osc_params *p, const float *restrict dqT,
                             const float *restrict r12, const float *restrict g12,
                             const float *restrict wc12, float *restrict gq, float *restrict gp,
                             float *restrict g34, float *restrict dq0) {
    const int64_t rows = p->batch, n = p->n, bn = rows * n;
    const float h = p->dt;
#pragma omp parallel for schedule(static) if (bn > PNN_OSC_OMP_MIN)
    for (int64_t b = 0; b < rows; b++) {
        float *gqr = gq + b * n, *gpr = gp + b * n;
        if (!r12) {
            memcpy(gqr, dqT + b * n, (size_t)n * sizeof *gqr);
            memset(gpr, 0, (size_t)n * sizeof *gpr);
        } else {
            const float *r1 = r12 + b * n, *r2 = r12 + bn + b * n;
            const float *g1 = g12 + b * n, *g2 = g12 + bn + b * n;
            const float *wc1 = wc12 + b * n, *wc2 = wc12 + bn + b * n;
#pragma omp simd
            for (int64_t j = 0; j < n; j++)
                pnn_osc_adj_bottom(r1[j], r2[j], g1[j], g2[j], wc1[j], wc2[j], h, &gqr[j], &gpr[j]);
        }
        if (g34) {
            float *g3 = g34 + b * n, *g4 = g34 + bn + b * n;
#pragma omp simd
            for (int64_t j = 0; j < n; j++) pnn_osc_adj_top(gqr[j], gpr[j], h, &g3[j], &g4[j]);
        } else if (dq0) {
            memcpy(dq0 + b * n, gqr, (size_t)n * sizeof *gqr);
        }
    }
}

/* The adjoint pass in the middle of a step, row-parallel: from r34 = (g3 Q^T, g4 Q^T), g34 and
 * wc34, the adjoints g12 of stages 1-2 and the stage 3-4 terms of (gq, gp). */
static void osc_adj_middle(const pnn_osc_params *p, const float *restrict r34,
                           const float *restrict g34, const float *restrict wc34, float *restrict gq,
                           float *restrict gp, float *restrict g12) {
    const int64_t rows = p->batch, n = p->n, bn = rows * n;
    const float h = p->dt;
#pragma omp parallel for schedule(static) if (bn > PNN_OSC_OMP_MIN)
    for (int64_t b = 0; b < rows; b++) {
        const float *r3 = r34 + b * n, *r4 = r34 + bn + b * n;
        const float *g3 = g34 + b * n, *g4 = g34 + bn + b * n;
        const float *wc3 = wc34 + b * n, *wc4 = wc34 + bn + b * n;
        float *gqr = gq + b * n, *gpr = gp + b * n, *g1 = g12 + b * n, *g2 = g12 + bn + b * n;
#pragma omp simd
        for (int64_t j = 0; j < n; j++)
            pnn_osc_adj_middle(r3[j], r4[j], g3[j], g4[j], wc3[j], wc4[j], h, &gqr[j], &gpr[j], &g1[j],
                               &g2[j]);
    }
}

/* The exact VJP of pnn_cpu_osc_forward's map at the taped point, steps in reverse, two GEMMs
 * with Q^T of 2B rows per step. The adjoints g of all 4 nt stages are kept in tape slot order,
 * so dQ += S^T G is a single GEMM with K = 4 nt B at the end, and de += their column sums. */
void pnn_cpu_osc_vjp(void *ctx, const pnn_osc_params *p, const float *tape, const float *q_mat,
                     const float *dqT, float *dq0, float *dq_mat, float *de, float *work) {
    const int64_t n = p->n, bn = p->batch * n, slots = 4 * (int64_t)p->nt;
    const float *s = tape, *wc = tape + slots * bn;
    float *gq = work, *gp = work + bn, *r = work + 2 * bn, *g = work + 4 * bn;
    int t = p->nt - 1;
    osc_adj_boundary(p, dqT, NULL, NULL, NULL, gq, gp, g + (4 * t + 2) * bn, dq0);
    for (; t >= 0; t--) {
        float *g12 = g + 4 * t * bn, *g34 = g + (4 * t + 2) * bn;
        osc_gemm(true, 2 * p->batch, n, g34, q_mat, r);
        osc_adj_middle(p, r, g34, wc + (4 * t + 2) * bn, gq, gp, g12);
        osc_gemm(true, 2 * p->batch, n, g12, q_mat, r);
        osc_adj_boundary(p, dqT, r, g12, wc + 4 * t * bn, gq, gp, t ? g + (4 * t - 2) * bn : NULL, dq0);
    }
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)n, (int)n, (int)(slots * p->batch), 1.0f,
                s, (int)n, g, (int)n, 1.0f, dq_mat, (int)n);
    for (int64_t row = 0; row < slots * p->batch; row++) {
        const float *gr = g + row * n;
#pragma omp simd
        for (int64_t j = 0; j < n; j++) de[j] += gr[j];
    }
}

const pnn_osc_ops pnn_osc_cpu_ops = {
    .build_q = pnn_cpu_osc_build_q,
    .build_q_backward = pnn_cpu_osc_build_q_backward,
    .forward = pnn_cpu_osc_forward,
    .vjp = pnn_cpu_osc_vjp,
    .tape_floats = pnn_cpu_osc_tape_floats,
    .work_floats = pnn_cpu_osc_work_floats,
};
