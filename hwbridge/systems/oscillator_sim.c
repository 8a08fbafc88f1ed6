/* sim:oscillator — the simulated physical system of coupled nonlinear oscillators
 * (PHYSICS.md): the ideal model plus what a lab instrument adds, which the twin never sees:
 * input noise drawn fresh on every call, a nonlinearity sin((1+eta) q) instead of sin q, and a
 * fixed hidden coupling Q_n = J2Q(qn * G) with G ~ N(0,1) drawn once from the device seed.
 * `mismatch` scales both hidden differences (0 = the ideal model). With `drift` D the hidden
 * coupling also moves with the calls: Q_n + D f(call) J2Q(qn mismatch G'), G' ~ N(0,1) another
 * draw of the seed and f the seeded slow drift of drift.h (periods around drift_period calls):
 * at D = 1 the moving part is as large as the fixed one. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/systems/oscillator/oscillator_ops.h"
#include "hwbridge/systems/drift.h"
#include "hwbridge/systems/oscillator.h"
#include "pnn/rng.h"

typedef struct osc_sim {
    const pnn_osc_ops *ops;   /* the backend's oscillator kernels */
    pnn_osc_params p;
    uint64_t seed;
    float noise;
    float *q_noise;   /* hidden Q_n [n, n] (NULL when mismatch is 0) */
    float *q_drift;   /* its moving part J2Q(qn mismatch G') [n, n] (NULL without drift) */
    float drift;
    pnn_sim_drift f;
    float *q_mat;     /* Q + Q_n for the current call */
    float *x_noisy;   /* [max rows, n] */
    float *work;
    int64_t rows_cap;
} osc_sim;

#define OSC_KEYS "n=100, nt=5, dt=0.1, eta=0.1, qn=0.2, mismatch=1, noise=0.02, drift=0, drift_period=1000, seed=0"

static void osc_release(const pnn_backend *be, osc_sim *s) {
    void *ctx = be->ctx;
    if (s->q_noise) be->iface->release(ctx, s->q_noise);
    if (s->q_drift) be->iface->release(ctx, s->q_drift);
    if (s->q_mat) be->iface->release(ctx, s->q_mat);
    if (s->x_noisy) be->iface->release(ctx, s->x_noisy);
    if (s->work) be->iface->release(ctx, s->work);
    s->x_noisy = s->work = NULL;
}

static void osc_close(pnn_device *dev) {
    osc_sim *s = dev->impl;
    osc_release(dev->be, s);
    free(s);
    free(dev);
}

/* Grows the per-call buffers to hold `rows` rows. */
static pnn_status osc_reserve(pnn_device *dev, int64_t rows) {
    osc_sim *s = dev->impl;
    if (rows <= s->rows_cap) return PNN_OK;
    const pnn_backend_i *be = dev->be->iface;
    if (s->x_noisy) be->release(dev->be->ctx, s->x_noisy);
    if (s->work) be->release(dev->be->ctx, s->work);
    pnn_osc_params p = s->p;
    p.batch = rows;
    s->x_noisy = be->alloc(dev->be->ctx, (size_t)(rows * p.n) * sizeof(float));
    s->work = be->alloc(dev->be->ctx, s->ops->work_floats(&p) * sizeof(float) + 64);
    if (!s->x_noisy || !s->work) {
        s->rows_cap = 0;
        return PNN_ERROR(PNN_ERR_NOMEM, "sim:oscillator: out of memory for a batch of %lld", (long long)rows);
    }
    s->rows_cap = rows;
    return PNN_OK;
}

static pnn_status osc_forward(pnn_device *dev, const pnn_tensor *x, const float *theta, pnn_tensor *y) {
    osc_sim *s = dev->impl;
    const pnn_backend_i *be = dev->be->iface;
    void *ctx = dev->be->ctx;
    int64_t rows = pnn_tensor_rows(x), n = s->p.n;
    PNN_TRY(osc_reserve(dev, rows));
    /* theta = [C (n*n), e (n)]; the instrument applies C as Q = J2Q(C), plus its hidden Q_n */
    s->ops->build_q(ctx, n, theta, s->q_mat);
    if (s->q_noise) be->axpby(ctx, n * n, 1.0f, s->q_noise, 1.0f, s->q_mat);
    if (s->q_drift)
        be->axpby(ctx, n * n, (float)(s->drift * pnn_sim_drift_at(&s->f, dev->calls)), s->q_drift, 1.0f, s->q_mat);
    const float *q0 = x->data;
    if (s->noise > 0) {
        be->rng_normal(ctx, s->seed, pnn_rng_stream("sim.oscillator.noise", dev->calls), 0, rows * n,
                       s->x_noisy);
        be->axpby(ctx, rows * n, 1.0f, x->data, s->noise, s->x_noisy);
        q0 = s->x_noisy;
    }
    pnn_osc_params p = s->p;
    p.batch = rows;
    s->ops->forward(ctx, &p, q0, s->q_mat, theta + n * n, y->data, NULL, s->work);
    return PNN_OK;
}

/* The noise call number `call` added: the same (seed, call) draw, regenerated. */
static pnn_status osc_input_noise(pnn_device *dev, uint64_t call, int64_t n, float *out) {
    osc_sim *s = dev->impl;
    const pnn_backend_i *be = dev->be->iface;
    be->rng_normal(dev->be->ctx, s->seed, pnn_rng_stream("sim.oscillator.noise", call), 0, n, out);
    be->scale(dev->be->ctx, n, s->noise, out, out);
    return PNN_OK;
}

static const pnn_device_i osc_iface = {
    .forward = osc_forward, .close = osc_close, .input_noise = osc_input_noise};

/* J2Q(scale G), G ~ N(0,1) [n, n] from the device seed's stream: a hidden coupling, in backend
 * memory (NULL when out of memory) */
static float *hidden_coupling(const pnn_backend *be, const osc_sim *s, int64_t n, const char *stream, double scale) {
    const pnn_backend_i *bi = be->iface;
    float *g = malloc((size_t)(n * n) * sizeof(float));
    float *g_dev = bi->alloc(be->ctx, (size_t)(n * n) * sizeof(float));
    float *q = bi->alloc(be->ctx, (size_t)(n * n) * sizeof(float));
    if (g && g_dev && q) {
        pnn_rng_normal(s->seed, pnn_rng_stream(stream, 0), 0, n * n, g);
        for (int64_t i = 0; i < n * n; i++) g[i] *= (float)scale;
        bi->from_host(be->ctx, g_dev, g, (size_t)(n * n) * sizeof(float));
        s->ops->build_q(be->ctx, n, g_dev, q);
    } else if (q) {
        bi->release(be->ctx, q);
        q = NULL;
    }
    if (g_dev) bi->release(be->ctx, g_dev);
    free(g);
    return q;
}

static pnn_status osc_open(pnn_uri *u, const char *uri, const pnn_backend *be, pnn_device **out) {
    int64_t n, nt, seed;
    double dt, eta, qn, mismatch, noise, drift, drift_period;
    PNN_TRY(pnn_uri_int(u, "n", 100, 1, PNN_OSC_MAX_N, &n));
    PNN_TRY(pnn_uri_int(u, "nt", 5, 1, 100000, &nt));
    PNN_TRY(pnn_uri_double(u, "dt", 0.1, 1e-6, 10, &dt));
    PNN_TRY(pnn_uri_double(u, "eta", 0.1, -0.99, 10, &eta));
    PNN_TRY(pnn_uri_double(u, "qn", 0.2, 0, 100, &qn));
    PNN_TRY(pnn_uri_double(u, "mismatch", 1.0, 0, 100, &mismatch));
    PNN_TRY(pnn_uri_double(u, "noise", 0.02, 0, 100, &noise));
    PNN_TRY(pnn_uri_double(u, "drift", 0, 0, 10, &drift));
    PNN_TRY(pnn_uri_double(u, "drift_period", 1000, 1, 1e12, &drift_period));
    PNN_TRY(pnn_uri_int(u, "seed", 0, 0, INT64_MAX, &seed));
    PNN_TRY(pnn_uri_check_all_used(u, OSC_KEYS ", " PNN_SIM_KEYS));

    pnn_device *dev = calloc(1, sizeof *dev);
    osc_sim *s = calloc(1, sizeof *s);
    if (!dev || !s) {
        free(dev);
        free(s);
        return PNN_ERROR(PNN_ERR_NOMEM, "out of memory opening %s", uri);
    }
    dev->iface = &osc_iface;
    dev->be = be;
    dev->impl = s;
    s->ops = pnn_osc_ops_for(be);
    s->p = (pnn_osc_params){.batch = 0, .n = n, .nt = (int)nt, .dt = (float)dt, .eta = (float)(eta * mismatch)};
    s->seed = (uint64_t)seed;
    s->noise = (float)noise;
    s->drift = (float)drift;
    pnn_sim_drift_init(&s->f, s->seed, "sim.oscillator.drift", drift_period);

    pnn_device_info *info = &dev->info;
    snprintf(info->system, sizeof info->system, "oscillator");
    snprintf(info->uri, sizeof info->uri, "%s", uri);
    info->x_dim = info->y_dim = n;
    info->theta_dim = n * n + n;
    info->x_range[0] = info->theta_range[0] = -1e30f;
    info->x_range[1] = info->theta_range[1] = 1e30f;
    info->n_theta_parts = 2;
    info->theta_parts[0] = (pnn_theta_part){"C", 2, {n, n}};
    info->theta_parts[1] = (pnn_theta_part){"e", 1, {n, 0}};

    const pnn_backend_i *bi = be->iface;
    s->q_mat = bi->alloc(be->ctx, (size_t)(n * n) * sizeof(float));
    if (!s->q_mat) goto nomem;
    if (qn * mismatch > 0 && !(s->q_noise = hidden_coupling(be, s, n, "sim.oscillator.qn", qn * mismatch)))
        goto nomem;
    if (qn * mismatch * drift > 0 &&
        !(s->q_drift = hidden_coupling(be, s, n, "sim.oscillator.qn_drift", qn * mismatch)))
        goto nomem;
    *out = dev;
    return PNN_OK;
nomem:
    osc_close(dev);
    return PNN_ERROR(PNN_ERR_NOMEM, "out of memory opening %s (n = %lld)", uri, (long long)n);
}

/* Per RK4 stage one B x N x N product (2 B N^2), 4 nt stages; the VJP does two products per
 * stage (dx and dQ), the device one. */
static pnn_status osc_flops(pnn_uri *u, int64_t rows, double out[3]) {
    int64_t n, nt;
    PNN_TRY(pnn_uri_int(u, "n", 100, 1, PNN_OSC_MAX_N, &n));
    PNN_TRY(pnn_uri_int(u, "nt", 5, 1, 100000, &nt));
    double fwd = 2.0 * (double)rows * (double)n * (double)n * 4.0 * (double)nt;
    out[0] = fwd, out[1] = 2.0 * fwd, out[2] = fwd;
    return PNN_OK;
}

const pnn_system pnn_system_oscillator = {
    .name = "oscillator",
    .summary = "coupled nonlinear oscillators (mechanics): theta = [C (n x n), e (n)], y = q(T)",
    .keys = OSC_KEYS,
    .open_sim = osc_open,
    .analytic_twin = pnn_osc_twin_create,
    .flops = osc_flops,
};
