/* CPU kernels of the circuit system (PHYSICS.md, "circuit"): the drive built from x and theta
 * and its gradient, the RK4 integration of a batch, and the exact vector-Jacobian product of
 * that discrete map. The per-element math is circuit.h.
 *
 * Each row is one scalar ODE integrated sequentially in time, so the rows are the parallelism:
 * a block of CIRCUIT_LANES rows advances together, one SIMD lane per row (the step is plain
 * arithmetic, tanh included, so it vectorises), and OpenMP threads take blocks.
 *
 * Tape layout (2 S steps B floats): the state (v, w) at the start of step n, for every row, at
 * [(2 n) B, (2 n + 1) B) and [(2 n + 1) B, (2 n + 2) B). A block's lanes are contiguous there,
 * and the CUDA kernels (one thread per row) read it coalesced. The VJP recomputes each step's
 * stages from it. */
#include <string.h>

#include "kernels/systems/circuit/circuit.h"
#include "kernels/systems/circuit/circuit_ops.h"

/* rows per SIMD block: two AVX2 vectors, two independent dependency chains per step */
#define CIRCUIT_LANES 16
/* below this many row-steps per call, threads cost more than they save */
#define CIRCUIT_OMP_MIN 20000

size_t pnn_cpu_circuit_tape_floats(const pnn_circuit_params *p) {
    return (size_t)2 * (size_t)p->segments * (size_t)p->steps * (size_t)p->batch;
}

static pnn_circuit_coef circuit_coef(const pnn_circuit_params *p) {
    return pnn_circuit_coef_of(p->w0, p->qf, p->alpha, p->kappa, p->dt);
}

void pnn_cpu_circuit_drive(void *ctx, const pnn_circuit_params *p, const float *x, const float *theta, float *u) {
    (void)ctx;
    const int64_t s = p->segments, xd = p->x_dim;
#pragma omp parallel for schedule(static) if (p->batch * s > CIRCUIT_OMP_MIN)
    for (int64_t b = 0; b < p->batch; b++)
        for (int64_t i = 0; i < s; i++) {
            int64_t idx;
            int from_x = pnn_circuit_source(i, s, xd, p->interleave, &idx);
            u[b * s + i] = pnn_circuit_clip(from_x ? x[b * xd + idx] : theta[idx]);
        }
}

/* dtheta sums over rows in double, so the result does not depend on the batch order of sums */
void pnn_cpu_circuit_drive_backward(void *ctx, const pnn_circuit_params *p, const float *x, const float *theta,
                                    const float *du, float *dx, float *dtheta) {
    (void)ctx;
    const int64_t s = p->segments, xd = p->x_dim;
#pragma omp parallel for schedule(static) if (p->batch * s > CIRCUIT_OMP_MIN)
    for (int64_t i = 0; i < s; i++) {
        int64_t idx;
        if (pnn_circuit_source(i, s, xd, p->interleave, &idx)) {
            if (dx)
                for (int64_t b = 0; b < p->batch; b++)
                    dx[b * xd + idx] = pnn_circuit_clip_grad(x[b * xd + idx], du[b * s + i]);
        } else {
            double sum = 0;
            for (int64_t b = 0; b < p->batch; b++) sum += du[b * s + i];
            dtheta[idx] += pnn_circuit_clip_grad(theta[idx], (float)sum);
        }
    }
}

/* Rows b0 .. b0 + lanes - 1 (lanes <= CIRCUIT_LANES) from rest; lanes past the batch run on a
 * zero drive and are never stored. */
static void circuit_forward_block(const pnn_circuit_params *p, pnn_circuit_coef k, int64_t b0, int lanes,
                                  const float *u, float *y, float *tape) {
    const int64_t bsz = p->batch, s = p->segments, n_steps = s * p->steps, yd = p->y_dim;
    float v[CIRCUIT_LANES] = {0}, w[CIRCUIT_LANES] = {0}, ub[CIRCUIT_LANES] = {0};
    int64_t j = 0, next = pnn_circuit_sample_step(0, n_steps, yd);
    for (int64_t seg = 0; seg < s; seg++) {
        for (int l = 0; l < lanes; l++) ub[l] = u[(b0 + l) * s + seg];
        for (int64_t n = seg * p->steps; n < (seg + 1) * p->steps; n++) {
            if (tape) {
                float *tv = tape + 2 * n * bsz + b0, *tw = tv + bsz;
                for (int l = 0; l < lanes; l++) tv[l] = v[l], tw[l] = w[l];
            }
#pragma omp simd
            for (int l = 0; l < CIRCUIT_LANES; l++) pnn_circuit_step(k, ub[l], &v[l], &w[l]);
            if (n + 1 == next) {
                for (int l = 0; l < lanes; l++) y[(b0 + l) * yd + j] = v[l];
                j++;
                next = j < yd ? pnn_circuit_sample_step(j, n_steps, yd) : -1;
            }
        }
    }
}

void pnn_cpu_circuit_forward(void *ctx, const pnn_circuit_params *p, const float *u, float *y, float *tape) {
    (void)ctx;
    const pnn_circuit_coef k = circuit_coef(p);
    const int64_t blocks = (p->batch + CIRCUIT_LANES - 1) / CIRCUIT_LANES;
#pragma omp parallel for schedule(static) if (p->batch * p->segments * p->steps > CIRCUIT_OMP_MIN)
    for (int64_t blk = 0; blk < blocks; blk++) {
        int64_t b0 = blk * CIRCUIT_LANES;
        int lanes = (int)(p->batch - b0 < CIRCUIT_LANES ? p->batch - b0 : CIRCUIT_LANES);
        circuit_forward_block(p, k, b0, lanes, u, y, tape);
    }
}

/* The adjoint of circuit_forward_block, steps in reverse: the sample of output j adds dy[j] to
 * the adjoint of v after its step; each step's adjoint recomputes its stages from the tape. */
static void circuit_vjp_block(const pnn_circuit_params *p, pnn_circuit_coef k, int64_t b0, int lanes,
                              const float *u, const float *tape, const float *dy, float *du) {
    const int64_t bsz = p->batch, s = p->segments, n_steps = s * p->steps, yd = p->y_dim;
    float gv[CIRCUIT_LANES] = {0}, gw[CIRCUIT_LANES] = {0}, gu[CIRCUIT_LANES];
    float ub[CIRCUIT_LANES] = {0}, v[CIRCUIT_LANES] = {0}, w[CIRCUIT_LANES] = {0};
    int64_t j = yd - 1, next = pnn_circuit_sample_step(j, n_steps, yd);
    for (int64_t seg = s - 1; seg >= 0; seg--) {
        for (int l = 0; l < lanes; l++) ub[l] = u[(b0 + l) * s + seg];
        for (int l = 0; l < CIRCUIT_LANES; l++) gu[l] = 0.0f;
        for (int64_t n = (seg + 1) * p->steps - 1; n >= seg * p->steps; n--) {
            if (n + 1 == next) {
                for (int l = 0; l < lanes; l++) gv[l] += dy[(b0 + l) * yd + j];
                j--;
                next = j >= 0 ? pnn_circuit_sample_step(j, n_steps, yd) : -1;
            }
            const float *tv = tape + 2 * n * bsz + b0, *tw = tv + bsz;
            for (int l = 0; l < lanes; l++) v[l] = tv[l], w[l] = tw[l];
#pragma omp simd
            for (int l = 0; l < CIRCUIT_LANES; l++) pnn_circuit_step_adjoint(k, ub[l], v[l], w[l], &gv[l], &gw[l], &gu[l]);
        }
        for (int l = 0; l < lanes; l++) du[(b0 + l) * s + seg] = gu[l];
    }
}

void pnn_cpu_circuit_vjp(void *ctx, const pnn_circuit_params *p, const float *u, const float *tape,
                         const float *dy, float *du) {
    (void)ctx;
    const pnn_circuit_coef k = circuit_coef(p);
    const int64_t blocks = (p->batch + CIRCUIT_LANES - 1) / CIRCUIT_LANES;
#pragma omp parallel for schedule(static) if (p->batch * p->segments * p->steps > CIRCUIT_OMP_MIN)
    for (int64_t blk = 0; blk < blocks; blk++) {
        int64_t b0 = blk * CIRCUIT_LANES;
        int lanes = (int)(p->batch - b0 < CIRCUIT_LANES ? p->batch - b0 : CIRCUIT_LANES);
        circuit_vjp_block(p, k, b0, lanes, u, tape, dy, du);
    }
}

const pnn_circuit_ops pnn_circuit_cpu_ops = {
    .drive = pnn_cpu_circuit_drive,
    .drive_backward = pnn_cpu_circuit_drive_backward,
    .forward = pnn_cpu_circuit_forward,
    .vjp = pnn_cpu_circuit_vjp,
    .tape_floats = pnn_cpu_circuit_tape_floats,
};
