/* The oscillator system's ops, CPU against CUDA (tests/test_oscillator.c checks the CPU kernels
 * against double references): Q and its gradient, and forward and VJP in both CUDA regimes (the
 * fused kernel for small n, GEMM stages for n >= 1024, and each regime forced on the same n). */
#include <math.h>

#include "kernels/systems/oscillator/oscillator_ops.h"
#include "tests/backend_ops/harness.h"

static void case_build_q(run_ctx *r, int v) {
    int64_t n = v ? 300 : 37;
    float *c = dev_random(r, n * n, -1, 1, 120), *q = dev_buffer(r, n * n), *dc = dev_random(r, n * n, -1, 1, 121);
    const pnn_osc_ops *osc = pnn_osc_ops_for(r->be);
    osc->build_q(r->ctx, n, c, q);
    osc->build_q_backward(r->ctx, n, q, dc);
    output(r, "q", q, n * n);
    output(r, "dc", dc, n * n);
}

/* n, batch, nt, eta: small regime (n <= 256), the boundary, large regime (n >= 1024) */
static const int64_t osc_shapes[][3] = {{100, 37, 5}, {7, 3, 2}, {256, 19, 3}, {200, 11, 4}, {1024, 8, 3}, {1610, 5, 2}};

static void case_oscillator(run_ctx *r, int v) {
    const int64_t *s = osc_shapes[v / 2];
    const pnn_osc_ops *osc = pnn_osc_ops_for(r->be);
    pnn_osc_params p = {.batch = s[1], .n = s[0], .nt = (int)s[2], .dt = 0.1f, .eta = (v & 1) ? 0.1f : 0.0f};
    int64_t bn = p.batch * p.n, nn = p.n * p.n;
    float bound = 1.0f / sqrtf((float)p.n);
    float *c = dev_random(r, nn, -bound, bound, 130), *q = dev_buffer(r, nn), *e = dev_random(r, p.n, -bound, bound, 131);
    osc->build_q(r->ctx, p.n, c, q);
    r->ops->axpby(r->ctx, 1, 1.0f, e, 1.0f, q + 1); /* Q not symmetric: the VJP must use Q^T */
    float *q0 = dev_random(r, bn, -1, 1, 132), *qT = dev_buffer(r, bn), *qT2 = dev_buffer(r, bn);
    float *tape = dev_buffer(r, (int64_t)osc->tape_floats(&p));
    float *work = dev_filled(r, (int64_t)osc->work_floats(&p), NAN);
    osc->forward(r->ctx, &p, q0, q, e, qT, tape, work);
    osc->forward(r->ctx, &p, q0, q, e, qT2, NULL, work);
    float *dqT = dev_random(r, bn, -1, 1, 133), *dq0 = dev_buffer(r, bn);
    float *dq = dev_random(r, nn, -1, 1, 134), *de = dev_random(r, p.n, -1, 1, 135);
    osc->vjp(r->ctx, &p, tape, q, dqT, dq0, dq, de, work);
    output(r, "qT", qT, bn);
    output(r, "qT_without_tape", qT2, bn);
    output(r, "tape", tape, 8 * p.nt * bn); /* both backends: s, then w cos, of every stage */
    output(r, "dq0", dq0, bn);
    output(r, "dQ", dq, nn);
    output(r, "de", de, p.n);
}

/* the same, on CUDA with the regime forced: 1 the fused small-n kernel, 2 the GEMM stages */
static void with_regime(run_ctx *r, int v, int regime) {
#ifdef PNN_USE_CUDA
    if (r->is_cuda) pnn_osc_cuda_set_regime(regime);
#else
    (void)regime;
#endif
    case_oscillator(r, v);
#ifdef PNN_USE_CUDA
    if (r->is_cuda) pnn_osc_cuda_set_regime(0);
#endif
}
static void case_oscillator_small(run_ctx *r, int v) { with_regime(r, v, 1); }
static void case_oscillator_large(run_ctx *r, int v) { with_regime(r, v, 2); }

PNN_BACKEND_OPS_CASES(oscillator,
    {"osc_build_q", case_build_q, 0, 1e-6}, {"osc_build_q", case_build_q, 1, 1e-6},
    {"osc small n=100", case_oscillator, 0, 1e-5},   {"osc small n=100 eta", case_oscillator, 1, 1e-5},
    {"osc small n=7", case_oscillator, 3, 1e-5},     {"osc small n=256", case_oscillator, 5, 1e-5},
    {"osc n=200 forced small", case_oscillator_small, 7, 1e-5},
    {"osc n=200 forced large", case_oscillator_large, 6, 1e-5},
    {"osc large n=1024", case_oscillator, 8, 1e-4},  {"osc large n=1024 eta", case_oscillator, 9, 1e-4},
    {"osc large n=1610", case_oscillator, 11, 1e-4})
