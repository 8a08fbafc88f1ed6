/* CUDA kernels of the circuit system (the CUDA twin of circuit_cpu.c; the per-element math is
 * circuit.h, shared with the CPU), reached through pnn_circuit_cuda_ops.
 *
 * A row is one scalar ODE, sequential in time: one thread per row keeps (v, w) in registers
 * for all segments * steps RK4 steps and writes the tape to global memory in the CPU's layout
 * (the state at the start of step n at [2 n B, 2 n B + 2 B)), so consecutive threads write
 * consecutive addresses and the CPU and CUDA tapes can be compared. The VJP is the same thread
 * running the steps backwards, recomputing each step's stages from the tape. The drive's
 * gradient sums theta's share over rows with one warp per segment, in double, in a fixed order. */
#include "kernels/cuda/cuda_common.cuh"
#include "kernels/systems/circuit/circuit.h"
#include "kernels/systems/circuit/circuit_ops.h"

#define CIRCUIT_ROW_THREADS 128

static size_t circuit_tape_floats(const pnn_circuit_params *p) {
    return (size_t)2 * (size_t)p->segments * (size_t)p->steps * (size_t)p->batch;
}

static pnn_circuit_coef circuit_coef(const pnn_circuit_params *p) {
    return pnn_circuit_coef_of(p->w0, p->qf, p->alpha, p->kappa, p->dt);
}

static unsigned circuit_row_blocks(int64_t batch) {
    return (unsigned)((batch + CIRCUIT_ROW_THREADS - 1) / CIRCUIT_ROW_THREADS);
}

__global__ void circuit_drive_kernel(pnn_circuit_params p, const float *x, const float *theta, float *u) {
    const int64_t s = p.segments;
    PNN_GRID_STRIDE(e, p.batch * s) {
        int64_t b = e / s, i = e % s, idx;
        int from_x = pnn_circuit_source(i, s, p.x_dim, p.interleave, &idx);
        u[e] = pnn_circuit_clip(from_x ? x[b * p.x_dim + idx] : theta[idx]);
    }
}

static void circuit_drive(void *ctx, const pnn_circuit_params *p, const float *x, const float *theta, float *u) {
    (void)ctx;
    if (p->batch <= 0) return;
    circuit_drive_kernel<<<pnn_cuda_blocks(p->batch * p->segments), PNN_CUDA_THREADS, 0, pnn_cuda_stream()>>>(
        *p, x, theta, u);
    PNN_CUDA_LAUNCHED("circuit_drive_kernel");
}

__global__ void circuit_drive_dx_kernel(pnn_circuit_params p, const float *x, const float *du, float *dx) {
    const int64_t s = p.segments;
    PNN_GRID_STRIDE(e, p.batch * s) {
        int64_t b = e / s, i = e % s, idx;
        if (pnn_circuit_source(i, s, p.x_dim, p.interleave, &idx))
            dx[b * p.x_dim + idx] = pnn_circuit_clip_grad(x[b * p.x_dim + idx], du[e]);
    }
}

/* one warp per segment: theta's segments get dtheta += clip_grad(sum over rows of du) */
__global__ void circuit_drive_dtheta_kernel(pnn_circuit_params p, const float *theta, const float *du,
                                            float *dtheta) {
    const int64_t i = (int64_t)blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, s = p.segments;
    const int lane = threadIdx.x % 32;
    int64_t idx;
    if (i >= s || pnn_circuit_source(i, s, p.x_dim, p.interleave, &idx)) return;
    double sum = 0.0;
    for (int64_t b = lane; b < p.batch; b += 32) sum += du[b * s + i];
    for (int o = 16; o > 0; o /= 2) sum += __shfl_xor_sync(0xffffffffu, sum, o);
    if (lane == 0) dtheta[idx] += pnn_circuit_clip_grad(theta[idx], (float)sum);
}

static void circuit_drive_backward(void *ctx, const pnn_circuit_params *p, const float *x, const float *theta,
                                   const float *du, float *dx, float *dtheta) {
    (void)ctx;
    if (p->batch <= 0) return;
    cudaStream_t st = pnn_cuda_stream();
    if (dx) {
        circuit_drive_dx_kernel<<<pnn_cuda_blocks(p->batch * p->segments), PNN_CUDA_THREADS, 0, st>>>(*p, x, du, dx);
        PNN_CUDA_LAUNCHED("circuit_drive_dx_kernel");
    }
    circuit_drive_dtheta_kernel<<<(unsigned)((p->segments + 7) / 8), 256, 0, st>>>(*p, theta, du, dtheta);
    PNN_CUDA_LAUNCHED("circuit_drive_dtheta_kernel");
}

/* one thread per row: the CPU's circuit_forward_block with one lane */
__global__ void __launch_bounds__(CIRCUIT_ROW_THREADS)
    circuit_forward_kernel(pnn_circuit_params p, pnn_circuit_coef k, const float *__restrict__ u,
                           float *__restrict__ y, float *__restrict__ tape) {
    const int64_t b = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (b >= p.batch) return;
    const int64_t bsz = p.batch, s = p.segments, n_steps = s * p.steps, yd = p.y_dim;
    float v = 0.0f, w = 0.0f;
    int64_t j = 0, next = pnn_circuit_sample_step(0, n_steps, yd);
    for (int64_t seg = 0; seg < s; seg++) {
        const float ub = u[b * s + seg];
        for (int64_t n = seg * p.steps; n < (seg + 1) * p.steps; n++) {
            if (tape) {
                tape[2 * n * bsz + b] = v;
                tape[(2 * n + 1) * bsz + b] = w;
            }
            pnn_circuit_step(k, ub, &v, &w);
            if (n + 1 == next) {
                y[b * yd + j] = v;
                j++;
                next = j < yd ? pnn_circuit_sample_step(j, n_steps, yd) : -1;
            }
        }
    }
}

static void circuit_forward(void *ctx, const pnn_circuit_params *p, const float *u, float *y, float *tape) {
    (void)ctx;
    if (p->batch <= 0) return;
    circuit_forward_kernel<<<circuit_row_blocks(p->batch), CIRCUIT_ROW_THREADS, 0, pnn_cuda_stream()>>>(
        *p, circuit_coef(p), u, y, tape);
    PNN_CUDA_LAUNCHED("circuit_forward_kernel");
}

/* one thread per row: the CPU's circuit_vjp_block with one lane */
__global__ void __launch_bounds__(CIRCUIT_ROW_THREADS)
    circuit_vjp_kernel(pnn_circuit_params p, pnn_circuit_coef k, const float *__restrict__ u,
                       const float *__restrict__ tape, const float *__restrict__ dy, float *__restrict__ du) {
    const int64_t b = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (b >= p.batch) return;
    const int64_t bsz = p.batch, s = p.segments, n_steps = s * p.steps, yd = p.y_dim;
    float gv = 0.0f, gw = 0.0f;
    int64_t j = yd - 1, next = pnn_circuit_sample_step(j, n_steps, yd);
    for (int64_t seg = s - 1; seg >= 0; seg--) {
        const float ub = u[b * s + seg];
        float gu = 0.0f;
        for (int64_t n = (seg + 1) * p.steps - 1; n >= seg * p.steps; n--) {
            if (n + 1 == next) {
                gv += dy[b * yd + j];
                j--;
                next = j >= 0 ? pnn_circuit_sample_step(j, n_steps, yd) : -1;
            }
            pnn_circuit_step_adjoint(k, ub, tape[2 * n * bsz + b], tape[(2 * n + 1) * bsz + b], &gv, &gw, &gu);
        }
        du[b * s + seg] = gu;
    }
}

static void circuit_vjp(void *ctx, const pnn_circuit_params *p, const float *u, const float *tape, const float *dy,
                        float *du) {
    (void)ctx;
    if (p->batch <= 0) return;
    circuit_vjp_kernel<<<circuit_row_blocks(p->batch), CIRCUIT_ROW_THREADS, 0, pnn_cuda_stream()>>>(
        *p, circuit_coef(p), u, tape, dy, du);
    PNN_CUDA_LAUNCHED("circuit_vjp_kernel");
}

extern "C" const pnn_circuit_ops pnn_circuit_cuda_ops = {
    .drive = circuit_drive,
    .drive_backward = circuit_drive_backward,
    .forward = circuit_forward,
    .vjp = circuit_vjp,
    .tape_floats = circuit_tape_floats,
};
