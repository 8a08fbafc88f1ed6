/* CUDA kernels of the coupled-oscillator system (the CUDA twin of oscillator_cpu.c; the
 * per-element math is oscillator.h, shared with the CPU), reached through pnn_osc_cuda_ops. Two
 * regimes:
 *
 * Small n (n <= 256): one fused kernel integrates all nt steps. A block owns R rows of the batch
 * and one thread per oscillator j keeps q_j, p_j of its R rows in registers; the s of the two
 * stages of a pair go through shared memory, and thread j forms (s Q)_j of all 2R stage rows in
 * one pass over column j of Q (in shared memory when it fits, else read through L1), so each
 * read of Q feeds 2R FMAs. Only the tape (and qT) is written to global memory. The VJP is the
 * same kernel shape run backwards with Q^T (a transposed copy in work).
 *
 * Large n: as the CPU does it, per pair of RK4 stages one cuBLAS GEMM of 2B rows for the
 * coupling product s Q (or g Q^T), with the sin, right-hand side and stage updates fused into
 * one elementwise kernel between GEMMs.
 *
 * The tape layout is the CPU's in both regimes (8 nt B N floats: s of every stage in slot order
 * 4t + k, then w cos(w X) in the same order), so dQ += S^T G is one GEMM with K = 4 nt B and the
 * regimes can be mixed (a forward of one, the VJP of the other) and compared with the CPU. */
#include <pthread.h>

#include "kernels/cuda/cuda_common.cuh"
#include "kernels/systems/oscillator/oscillator.h"
#include "kernels/systems/oscillator/oscillator_ops.h"

#define OSC_SMALL_MAX_N 256
/* Q goes to shared memory when it takes at most this much (n <= 156) */
#define OSC_Q_SMEM_BYTES (96 * 1024)

static size_t osc_tape_floats(const pnn_osc_params *p) {
    return (size_t)8 * (size_t)p->nt * (size_t)p->batch * (size_t)p->n;
}

/* large regime: forward p, acc and s of stages (7 B N), VJP gq, gp, r and every stage's g
 * ((4 nt + 4) B N); small regime VJP: every stage's g and Q^T (4 nt B N + N^2) */
static size_t osc_work_floats(const pnn_osc_params *p) {
    size_t bn = (size_t)p->batch * (size_t)p->n;
    size_t work = ((size_t)4 * (size_t)p->nt + 4) * bn;
    if (p->n <= OSC_SMALL_MAX_N) work += (size_t)p->n * (size_t)p->n;
    return work;
}

/* ---- Q from C ---- */

/* q[i, j] = (c[i, j] + c[j, i]) / 2 through a 32 x 32 tile of c^T in shared memory, so both
 * reads are coalesced */
__global__ void build_q_sym_kernel(int64_t n, const float *c, float *q) {
    __shared__ float tile[32][33];
    int64_t i0 = (int64_t)blockIdx.y * 32, j0 = (int64_t)blockIdx.x * 32;
    for (int k = threadIdx.y; k < 32; k += blockDim.y) {
        int64_t r = j0 + k, col = i0 + threadIdx.x; /* c[j0 + k, i0 + x] = c^T[i0 + x, j0 + k] */
        tile[k][threadIdx.x] = r < n && col < n ? c[r * n + col] : 0.0f;
    }
    __syncthreads();
    for (int k = threadIdx.y; k < 32; k += blockDim.y) {
        int64_t i = i0 + k, j = j0 + threadIdx.x;
        if (i < n && j < n) q[i * n + j] = 0.5f * (c[i * n + j] + tile[threadIdx.x][k]);
    }
}

/* q[i, i] = -(sum of row i of the symmetric part), one warp per row, in double */
__global__ void build_q_diag_kernel(int64_t n, float *q) {
    int64_t i = (int64_t)blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
    int lane = threadIdx.x % 32;
    if (i >= n) return;
    double sum = 0.0;
    for (int64_t j = lane; j < n; j += 32) sum += q[i * n + j];
    for (int o = 16; o > 0; o /= 2) sum += __shfl_xor_sync(0xffffffffu, sum, o);
    if (lane == 0) q[i * n + i] = (float)-sum;
}

static void osc_build_q(void *ctx, int64_t n, const float *c, float *q) {
    (void)ctx;
    if (n <= 0) return;
    cudaStream_t s = pnn_cuda_stream();
    dim3 grid((unsigned)((n + 31) / 32), (unsigned)((n + 31) / 32)), block(32, 8);
    build_q_sym_kernel<<<grid, block, 0, s>>>(n, c, q);
    PNN_CUDA_LAUNCHED("build_q_sym_kernel");
    build_q_diag_kernel<<<(unsigned)((n + 7) / 8), 256, 0, s>>>(n, q);
    PNN_CUDA_LAUNCHED("build_q_diag_kernel");
}

/* dc[i, j] += (g_ij + g_ji - g_ii - g_jj) / 2 off the diagonal, -g_ii on it (see the CPU kernel) */
__global__ void build_q_backward_kernel(int64_t n, const float *dq, float *dc) {
    __shared__ float tile[32][33];
    int64_t i0 = (int64_t)blockIdx.y * 32, j0 = (int64_t)blockIdx.x * 32;
    for (int k = threadIdx.y; k < 32; k += blockDim.y) {
        int64_t r = j0 + k, col = i0 + threadIdx.x;
        tile[k][threadIdx.x] = r < n && col < n ? dq[r * n + col] : 0.0f;
    }
    __syncthreads();
    for (int k = threadIdx.y; k < 32; k += blockDim.y) {
        int64_t i = i0 + k, j = j0 + threadIdx.x;
        if (i >= n || j >= n) continue;
        float gii = dq[i * n + i];
        dc[i * n + j] += i == j ? -gii : 0.5f * (dq[i * n + j] + tile[threadIdx.x][k] - gii - dq[j * n + j]);
    }
}

static void osc_build_q_backward(void *ctx, int64_t n, const float *dq, float *dc) {
    (void)ctx;
    if (n <= 0) return;
    dim3 grid((unsigned)((n + 31) / 32), (unsigned)((n + 31) / 32)), block(32, 8);
    build_q_backward_kernel<<<grid, block, 0, pnn_cuda_stream()>>>(n, dq, dc);
    PNN_CUDA_LAUNCHED("build_q_backward_kernel");
}

/* mt = m^T for an n x n matrix (the small-regime VJP reads Q^T by columns) */
__global__ void transpose_kernel(int64_t n, const float *m, float *mt) {
    __shared__ float tile[32][33];
    int64_t i0 = (int64_t)blockIdx.y * 32, j0 = (int64_t)blockIdx.x * 32;
    for (int k = threadIdx.y; k < 32; k += blockDim.y) {
        int64_t r = i0 + k, col = j0 + threadIdx.x;
        tile[k][threadIdx.x] = r < n && col < n ? m[r * n + col] : 0.0f;
    }
    __syncthreads();
    for (int k = threadIdx.y; k < 32; k += blockDim.y) {
        int64_t r = j0 + k, col = i0 + threadIdx.x; /* mt[j0 + k, i0 + x] = m[i0 + x, j0 + k] */
        if (r < n && col < n) mt[r * n + col] = tile[threadIdx.x][k];
    }
}

/* ---- small regime: fused kernels ---- */

/* a[r] = sum_k buf[r, k] M[k, j] and b[r] = sum_k buf[R + r, k] M[k, j] for the 2R stage rows in
 * buf (shared, [2R, n]); k in order, so the result does not depend on the launch */
template <int R>
__device__ __forceinline__ void osc_couple(const float *buf, const float *M, int n, int j, float *a, float *b) {
#pragma unroll
    for (int r = 0; r < R; r++) a[r] = b[r] = 0.0f;
    for (int k = 0; k < n; k++) {
        float m = M[k * n + j];
#pragma unroll
        for (int r = 0; r < R; r++) {
            a[r] = fmaf(buf[r * n + k], m, a[r]);
            b[r] = fmaf(buf[(R + r) * n + k], m, b[r]);
        }
    }
}

/* shared memory: the stage buffer [2R, n], then Q (or Q^T) [n, n] when q_in_smem */
template <int R>
__device__ __forceinline__ const float *osc_stage_q(float *smem, const float *m, int n, int q_in_smem) {
    if (!q_in_smem) return m;
    float *qs = smem + 2 * R * n;
    for (int i = threadIdx.x; i < n * n; i += blockDim.x) qs[i] = m[i];
    return qs; /* the first __syncthreads of the caller publishes it */
}

/* The forward of R rows per block, thread j = oscillator j (threads j >= n only take part in
 * the barriers). Rows past the batch compute on zeros and write nothing. */
template <int R>
__global__ void __launch_bounds__(OSC_SMALL_MAX_N) osc_forward_small_kernel(
    int64_t batch, int n, int nt, float h, float w, const float *__restrict__ q0, const float *__restrict__ q_mat,
    const float *__restrict__ e, float *__restrict__ qT, float *__restrict__ tape, int q_in_smem) {
    extern __shared__ float smem[];
    const int j = threadIdx.x;
    const bool col = j < n;
    const int64_t row0 = (int64_t)blockIdx.x * R, bn = batch * (int64_t)n, slots = 4 * (int64_t)nt;
    const float *M = osc_stage_q<R>(smem, q_mat, n, q_in_smem);
    const float ej = col ? e[j] : 0.0f;
    float q[R], p[R], sa[R], sb[R], a[R], b[R];
    int64_t idx[R]; /* row * n + j, or -1 for rows past the batch and threads past n */
#pragma unroll
    for (int r = 0; r < R; r++) {
        idx[r] = col && row0 + r < batch ? (row0 + r) * n + j : -1;
        q[r] = idx[r] >= 0 ? q0[idx[r]] : 0.0f;
        p[r] = 0.0f;
    }
    for (int t = 0; t < nt; t++) {
        /* stages 1-2 from (q, p) */
#pragma unroll
        for (int r = 0; r < R; r++) {
            float x1, x2, wc1, wc2;
            pnn_osc_start(q[r], p[r], h, &x1, &x2);
            pnn_osc_phase(x1, w, &sa[r], &wc1);
            pnn_osc_phase(x2, w, &sb[r], &wc2);
            if (col) smem[r * n + j] = sa[r], smem[(R + r) * n + j] = sb[r];
            if (tape && idx[r] >= 0) {
                tape[(4 * t) * bn + idx[r]] = sa[r];
                tape[(4 * t + 1) * bn + idx[r]] = sb[r];
                tape[(slots + 4 * t) * bn + idx[r]] = wc1;
                tape[(slots + 4 * t + 1) * bn + idx[r]] = wc2;
            }
        }
        __syncthreads();
        if (col) osc_couple<R>(smem, M, n, j, a, b);
        __syncthreads();
        /* stages 3-4 from a1, a2 */
#pragma unroll
        for (int r = 0; r < R; r++) {
            float x3 = 0.0f, x4 = 0.0f, wc3, wc4;
            if (col)
                pnn_osc_middle(pnn_osc_accel(a[r], sa[r], ej), pnn_osc_accel(b[r], sb[r], ej), h, &q[r], &p[r], &x3, &x4);
            pnn_osc_phase(x3, w, &sa[r], &wc3);
            pnn_osc_phase(x4, w, &sb[r], &wc4);
            if (col) smem[r * n + j] = sa[r], smem[(R + r) * n + j] = sb[r];
            if (tape && idx[r] >= 0) {
                tape[(4 * t + 2) * bn + idx[r]] = sa[r];
                tape[(4 * t + 3) * bn + idx[r]] = sb[r];
                tape[(slots + 4 * t + 2) * bn + idx[r]] = wc3;
                tape[(slots + 4 * t + 3) * bn + idx[r]] = wc4;
            }
        }
        __syncthreads();
        if (col) osc_couple<R>(smem, M, n, j, a, b);
        __syncthreads();
        if (col)
#pragma unroll
            for (int r = 0; r < R; r++)
                pnn_osc_finish(pnn_osc_accel(a[r], sa[r], ej), pnn_osc_accel(b[r], sb[r], ej), h, &q[r], &p[r]);
    }
#pragma unroll
    for (int r = 0; r < R; r++)
        if (idx[r] >= 0) qT[idx[r]] = q[r];
}

/* The VJP of R rows per block, steps in reverse (the CPU's osc_adj_* passes fused): the adjoints
 * g of every stage go to g (work, tape slot order) for the dQ GEMM and the de sums after it.
 * qt is Q^T, so (g Q^T)_j = sum_k g_k qt[k, j] is the same column pass as the forward's. */
template <int R>
__global__ void __launch_bounds__(OSC_SMALL_MAX_N) osc_vjp_small_kernel(
    int64_t batch, int n, int nt, float h, const float *__restrict__ wc_tape, const float *__restrict__ qt,
    const float *__restrict__ dqT, float *__restrict__ dq0, float *__restrict__ g, int q_in_smem) {
    extern __shared__ float smem[];
    const int j = threadIdx.x;
    const bool col = j < n;
    const int64_t row0 = (int64_t)blockIdx.x * R, bn = batch * (int64_t)n;
    const float *M = osc_stage_q<R>(smem, qt, n, q_in_smem);
    float gq[R], gp[R], ga[R], gb[R], ra[R], rb[R];
    int64_t idx[R];
    int t = nt - 1;
#pragma unroll
    for (int r = 0; r < R; r++) {
        idx[r] = col && row0 + r < batch ? (row0 + r) * n + j : -1;
        gq[r] = idx[r] >= 0 ? dqT[idx[r]] : 0.0f;
        gp[r] = 0.0f;
        pnn_osc_adj_top(gq[r], gp[r], h, &ga[r], &gb[r]);
        if (col) smem[r * n + j] = ga[r], smem[(R + r) * n + j] = gb[r];
        if (idx[r] >= 0) g[(4 * t + 2) * bn + idx[r]] = ga[r], g[(4 * t + 3) * bn + idx[r]] = gb[r];
    }
    for (; t >= 0; t--) {
        __syncthreads();
        if (col) osc_couple<R>(smem, M, n, j, ra, rb); /* r3, r4 */
        __syncthreads();
#pragma unroll
        for (int r = 0; r < R; r++) {
            float wc3 = idx[r] >= 0 ? wc_tape[(4 * t + 2) * bn + idx[r]] : 0.0f;
            float wc4 = idx[r] >= 0 ? wc_tape[(4 * t + 3) * bn + idx[r]] : 0.0f;
            float g1 = 0.0f, g2 = 0.0f;
            if (col) pnn_osc_adj_middle(ra[r], rb[r], ga[r], gb[r], wc3, wc4, h, &gq[r], &gp[r], &g1, &g2);
            ga[r] = g1, gb[r] = g2;
            if (col) smem[r * n + j] = g1, smem[(R + r) * n + j] = g2;
            if (idx[r] >= 0) g[(4 * t) * bn + idx[r]] = g1, g[(4 * t + 1) * bn + idx[r]] = g2;
        }
        __syncthreads();
        if (col) osc_couple<R>(smem, M, n, j, ra, rb); /* r1, r2 */
        __syncthreads();
#pragma unroll
        for (int r = 0; r < R; r++) {
            float wc1 = idx[r] >= 0 ? wc_tape[(4 * t) * bn + idx[r]] : 0.0f;
            float wc2 = idx[r] >= 0 ? wc_tape[(4 * t + 1) * bn + idx[r]] : 0.0f;
            if (col) pnn_osc_adj_bottom(ra[r], rb[r], ga[r], gb[r], wc1, wc2, h, &gq[r], &gp[r]);
            if (t > 0) {
                pnn_osc_adj_top(gq[r], gp[r], h, &ga[r], &gb[r]);
                if (col) smem[r * n + j] = ga[r], smem[(R + r) * n + j] = gb[r];
                if (idx[r] >= 0) g[(4 * t - 2) * bn + idx[r]] = ga[r], g[(4 * t - 1) * bn + idx[r]] = gb[r];
            } else if (dq0 && idx[r] >= 0) {
                dq0[idx[r]] = gq[r];
            }
        }
    }
}

/* Rows per block: the most (up to 8, for reuse of each Q read) that still gives every SM a block. */
static int osc_rows_per_block(int64_t batch) {
    int64_t sms = pnn_cuda_sm_count();
    for (int r = 8; r > 1; r /= 2)
        if ((batch + r - 1) / r >= sms) return r;
    return 1;
}

static size_t osc_small_smem(int rows, int n, int q_in_smem) {
    return ((size_t)2 * rows * n + (q_in_smem ? (size_t)n * n : 0)) * sizeof(float);
}

static int osc_q_in_smem(int rows, int n) {
    return (size_t)n * n * sizeof(float) <= OSC_Q_SMEM_BYTES &&
           osc_small_smem(rows, n, 1) <= pnn_cuda_smem_optin();
}

static volatile int g_regime; /* pnn_osc_cuda_set_regime */

void pnn_osc_cuda_set_regime(int regime) { g_regime = regime; }

static int osc_use_small(const pnn_osc_params *p) {
    int regime = g_regime;
    if (p->n > OSC_SMALL_MAX_N || regime == 2) return 0;
    return 1; /* regime 0 (by size) and 1 (forced) agree here */
}

#define OSC_LAUNCH_SMALL(kernel, rows, grid, threads, smem, s, ...)                                           \
    switch (rows) {                                                                                          \
    case 8: kernel<8><<<grid, threads, smem, s>>>(__VA_ARGS__); break;                                      \
    case 4: kernel<4><<<grid, threads, smem, s>>>(__VA_ARGS__); break;                                      \
    case 2: kernel<2><<<grid, threads, smem, s>>>(__VA_ARGS__); break;                                      \
    default: kernel<1><<<grid, threads, smem, s>>>(__VA_ARGS__); break;                                     \
    }

/* Once per process, before the first launch: let the fused kernels take shared memory beyond the
 * default 48 KiB. A failure is recorded (the launches then fail and say so). */
static pthread_once_t g_init = PTHREAD_ONCE_INIT;

static void osc_init_once(void) {
    int max_smem = (int)pnn_cuda_smem_optin();
    const void *kernels[] = {
        (const void *)osc_forward_small_kernel<1>, (const void *)osc_forward_small_kernel<2>,
        (const void *)osc_forward_small_kernel<4>, (const void *)osc_forward_small_kernel<8>,
        (const void *)osc_vjp_small_kernel<1>,     (const void *)osc_vjp_small_kernel<2>,
        (const void *)osc_vjp_small_kernel<4>,     (const void *)osc_vjp_small_kernel<8>};
    for (size_t i = 0; i < sizeof kernels / sizeof *kernels; i++)
        if (PNN_CUDA_CHECK(cudaFuncSetAttribute(kernels[i], cudaFuncAttributeMaxDynamicSharedMemorySize, max_smem)) !=
            PNN_OK)
            return;
}

static void osc_init(void) { pthread_once(&g_init, osc_init_once); }

/* ---- large regime: elementwise passes between GEMMs (the CPU's osc_pass_* / osc_adj_*) ---- */

/* between two steps: start (q0, 0) or finish the step from acc34 = (s3 Q, s4 Q) and s34; then,
 * when s12 is not NULL, stages 1-2 of the next step (wc12 may be NULL) */
__global__ void osc_boundary_kernel(int64_t bn, int64_t n, float h, float w, const float *e, const float *q0,
                                    const float *acc34, const float *s34, float *q, float *pm, float *s12,
                                    float *wc12) {
    PNN_GRID_STRIDE(i, bn) {
        float qi, pi;
        if (!acc34) {
            qi = q0[i];
            pi = 0.0f;
        } else {
            float ej = e[i % n];
            qi = q[i], pi = pm[i];
            pnn_osc_finish(pnn_osc_accel(acc34[i], s34[i], ej), pnn_osc_accel(acc34[bn + i], s34[bn + i], ej), h, &qi,
                           &pi);
        }
        q[i] = qi, pm[i] = pi;
        if (s12) {
            float x1, x2, s1, s2, wc1, wc2;
            pnn_osc_start(qi, pi, h, &x1, &x2);
            pnn_osc_phase(x1, w, &s1, &wc1);
            pnn_osc_phase(x2, w, &s2, &wc2);
            s12[i] = s1, s12[bn + i] = s2;
            if (wc12) wc12[i] = wc1, wc12[bn + i] = wc2;
        }
    }
}

/* in the middle of a step: a1, a2 from acc12 and s12; (q, pm) advance; s34 (wc34 may be NULL) */
__global__ void osc_middle_kernel(int64_t bn, int64_t n, float h, float w, const float *e, const float *acc12,
                                  const float *s12, float *q, float *pm, float *s34, float *wc34) {
    PNN_GRID_STRIDE(i, bn) {
        float ej = e[i % n], qi = q[i], pi = pm[i], x3, x4, s3, s4, wc3, wc4;
        pnn_osc_middle(pnn_osc_accel(acc12[i], s12[i], ej), pnn_osc_accel(acc12[bn + i], s12[bn + i], ej), h, &qi,
                       &pi, &x3, &x4);
        q[i] = qi, pm[i] = pi;
        pnn_osc_phase(x3, w, &s3, &wc3);
        pnn_osc_phase(x4, w, &s4, &wc4);
        s34[i] = s3, s34[bn + i] = s4;
        if (wc34) wc34[i] = wc3, wc34[bn + i] = wc4;
    }
}

/* adjoint between two steps: start (dqT, 0) or finish the later step from r12 = (g1 Q^T, g2 Q^T);
 * then g34 of the earlier step, or dq0 (may be NULL) when there is none */
__global__ void osc_adj_boundary_kernel(int64_t bn, float h, const float *dqT, const float *r12, const float *g12,
                                        const float *wc12, float *gq, float *gp, float *g34, float *dq0) {
    PNN_GRID_STRIDE(i, bn) {
        float a, b;
        if (!r12) {
            a = dqT[i];
            b = 0.0f;
        } else {
            a = gq[i], b = gp[i];
            pnn_osc_adj_bottom(r12[i], r12[bn + i], g12[i], g12[bn + i], wc12[i], wc12[bn + i], h, &a, &b);
        }
        gq[i] = a, gp[i] = b;
        if (g34) pnn_osc_adj_top(a, b, h, &g34[i], &g34[bn + i]);
        else if (dq0) dq0[i] = a;
    }
}

__global__ void osc_adj_middle_kernel(int64_t bn, float h, const float *r34, const float *g34, const float *wc34,
                                      float *gq, float *gp, float *g12) {
    PNN_GRID_STRIDE(i, bn) {
        float a = gq[i], b = gp[i];
        pnn_osc_adj_middle(r34[i], r34[bn + i], g34[i], g34[bn + i], wc34[i], wc34[bn + i], h, &a, &b, &g12[i],
                           &g12[bn + i]);
        gq[i] = a, gp[i] = b;
    }
}

/* c[m, n] = a[m, n] Q (or Q^T) */
static void osc_gemm(bool trans_q, int64_t m, int64_t n, const float *a, const float *q_mat, float *c) {
    pnn_cuda_gemm(NULL, false, trans_q, m, n, n, 1.0f, a, n, q_mat, n, 0.0f, c, n);
}

static void osc_forward_large(const pnn_osc_params *p, const float *q0, const float *q_mat, const float *e, float *qT,
                              float *tape, float *work) {
    cudaStream_t s = pnn_cuda_stream();
    const int64_t n = p->n, bn = p->batch * n, slots = 4 * (int64_t)p->nt;
    const float h = p->dt, w = 1.0f + p->eta;
    const unsigned blocks = pnn_cuda_blocks(bn);
    float *pm = work, *acc = work + bn, *s12_work = work + 3 * bn, *s34_work = work + 5 * bn;
    const float *s34_prev = NULL;
    for (int t = 0; t < p->nt; t++) {
        float *s12 = tape ? tape + 4 * t * bn : s12_work;
        float *s34 = tape ? tape + (4 * t + 2) * bn : s34_work;
        float *wc12 = tape ? tape + (slots + 4 * t) * bn : NULL;
        float *wc34 = tape ? tape + (slots + 4 * t + 2) * bn : NULL;
        osc_boundary_kernel<<<blocks, PNN_CUDA_THREADS, 0, s>>>(bn, n, h, w, e, q0, t ? acc : NULL, s34_prev, qT, pm,
                                                                s12, wc12);
        PNN_CUDA_LAUNCHED("osc_boundary_kernel");
        osc_gemm(false, 2 * p->batch, n, s12, q_mat, acc);
        osc_middle_kernel<<<blocks, PNN_CUDA_THREADS, 0, s>>>(bn, n, h, w, e, acc, s12, qT, pm, s34, wc34);
        PNN_CUDA_LAUNCHED("osc_middle_kernel");
        osc_gemm(false, 2 * p->batch, n, s34, q_mat, acc);
        s34_prev = s34;
    }
    osc_boundary_kernel<<<blocks, PNN_CUDA_THREADS, 0, s>>>(bn, n, h, w, e, q0, acc, s34_prev, qT, pm, NULL, NULL);
    PNN_CUDA_LAUNCHED("osc_boundary_kernel");
}

static void osc_forward(void *ctx, const pnn_osc_params *p, const float *q0, const float *q_mat, const float *e,
                        float *qT, float *tape, float *work) {
    (void)ctx;
    osc_init();
    if (p->batch <= 0 || p->n <= 0) return;
    if (p->nt <= 0) {
        PNN_CUDA_CHECK(cudaMemcpyAsync(qT, q0, (size_t)(p->batch * p->n) * sizeof(float), cudaMemcpyDeviceToDevice,
                                       pnn_cuda_stream()));
        return;
    }
    if (!osc_use_small(p)) {
        osc_forward_large(p, q0, q_mat, e, qT, tape, work);
        return;
    }
    const int n = (int)p->n, rows = osc_rows_per_block(p->batch), q_smem = osc_q_in_smem(rows, n);
    const unsigned grid = (unsigned)((p->batch + rows - 1) / rows), threads = (unsigned)((n + 31) / 32 * 32);
    const size_t smem = osc_small_smem(rows, n, q_smem);
    OSC_LAUNCH_SMALL(osc_forward_small_kernel, rows, grid, threads, smem, pnn_cuda_stream(), p->batch, n, p->nt, p->dt,
                     1.0f + p->eta, q0, q_mat, e, qT, tape, q_smem);
    PNN_CUDA_LAUNCHED("osc_forward_small_kernel");
}

static void osc_vjp(void *ctx, const pnn_osc_params *p, const float *tape, const float *q_mat, const float *dqT,
                    float *dq0, float *dq_mat, float *de, float *work) {
    (void)ctx;
    osc_init();
    if (p->batch <= 0 || p->n <= 0) return;
    cudaStream_t s = pnn_cuda_stream();
    const int64_t n = p->n, bn = p->batch * n, slots = 4 * (int64_t)p->nt;
    if (p->nt <= 0) {
        if (dq0) PNN_CUDA_CHECK(cudaMemcpyAsync(dq0, dqT, (size_t)bn * sizeof(float), cudaMemcpyDeviceToDevice, s));
        return;
    }
    const float h = p->dt, *stage_s = tape, *wc = tape + slots * bn;
    float *g;
    if (osc_use_small(p)) {
        g = work;
        float *qt = work + slots * bn;
        dim3 tgrid((unsigned)((n + 31) / 32), (unsigned)((n + 31) / 32)), tblock(32, 8);
        transpose_kernel<<<tgrid, tblock, 0, s>>>(n, q_mat, qt);
        PNN_CUDA_LAUNCHED("transpose_kernel");
        const int rows = osc_rows_per_block(p->batch), q_smem = osc_q_in_smem(rows, (int)n);
        const unsigned grid = (unsigned)((p->batch + rows - 1) / rows), threads = (unsigned)((n + 31) / 32 * 32);
        const size_t smem = osc_small_smem(rows, (int)n, q_smem);
        OSC_LAUNCH_SMALL(osc_vjp_small_kernel, rows, grid, threads, smem, s, p->batch, (int)n, p->nt, h, wc, qt, dqT,
                         dq0, g, q_smem);
        PNN_CUDA_LAUNCHED("osc_vjp_small_kernel");
    } else {
        float *gq = work, *gp = work + bn, *r = work + 2 * bn;
        g = work + 4 * bn;
        const unsigned blocks = pnn_cuda_blocks(bn);
        int t = p->nt - 1;
        osc_adj_boundary_kernel<<<blocks, PNN_CUDA_THREADS, 0, s>>>(bn, h, dqT, NULL, NULL, NULL, gq, gp,
                                                                    g + (4 * t + 2) * bn, dq0);
        PNN_CUDA_LAUNCHED("osc_adj_boundary_kernel");
        for (; t >= 0; t--) {
            float *g12 = g + 4 * t * bn, *g34 = g + (4 * t + 2) * bn;
            osc_gemm(true, 2 * p->batch, n, g34, q_mat, r);
            osc_adj_middle_kernel<<<blocks, PNN_CUDA_THREADS, 0, s>>>(bn, h, r, g34, wc + (4 * t + 2) * bn, gq, gp, g12);
            PNN_CUDA_LAUNCHED("osc_adj_middle_kernel");
            osc_gemm(true, 2 * p->batch, n, g12, q_mat, r);
            osc_adj_boundary_kernel<<<blocks, PNN_CUDA_THREADS, 0, s>>>(bn, h, dqT, r, g12, wc + 4 * t * bn, gq, gp,
                                                                        t ? g + (4 * t - 2) * bn : NULL, dq0);
            PNN_CUDA_LAUNCHED("osc_adj_boundary_kernel");
        }
    }
    /* dQ += S^T G over all 4 nt B stage rows; de += the column sums of G */
    pnn_cuda_gemm(NULL, true, false, n, n, slots * p->batch, 1.0f, stage_s, n, g, n, 1.0f, dq_mat, n);
    pnn_cuda_column_sums(slots * p->batch, n, g, de);
}

extern "C" const pnn_osc_ops pnn_osc_cuda_ops = {
    .build_q = osc_build_q,
    .build_q_backward = osc_build_q_backward,
    .forward = osc_forward,
    .vjp = osc_vjp,
    .tape_floats = osc_tape_floats,
    .work_floats = osc_work_floats,
};
