/* sim:circuit — the simulated nonlinear analog circuit (PHYSICS.md, "circuit"): a driven, damped
 * oscillator with a saturating element, v'' + (w0/Qf) v' + w0^2 v + alpha tanh(kappa v) = w0^2 u,
 * driven by x and theta through one piecewise-constant drive u, with what a real circuit adds
 * and the twin never sees:
 *   - component tolerances: w0, Qf, alpha and kappa each times exp(0.05 mismatch g), g ~ N(0,1)
 *     drawn once from the device seed (a 5% spread at mismatch = 1);
 *   - drift: w0 also times 1 + mismatch drift f(call), f a sum of three slow sinusoids with
 *     periods and phases drawn from the seed, |f| <= 1, a function of (seed, call index) only,
 *     so a resumed run sees the same drift;
 *   - measurement noise: noise N(0,1) added to every output sample, drawn from (seed, call).
 * `mismatch` = 0 is the ideal circuit. This file also reads the system's keys for the twin. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hwbridge/systems/circuit.h"
#include "hwbridge/systems/drift.h"
#include "pnn/rng.h"

#define CIRCUIT_KEYS                                                                                          \
    "segments=16, x_dim=segments/2, y_dim=segments/2, layout=interleave, steps=20, T=4, w0=6.283185, Qf=4, " \
    "alpha=20, kappa=2, mismatch=1, drift=0.02, drift_period=1000, noise=0.01, seed=0"

/* relative spread of each hidden component error at mismatch = 1 */
#define CIRCUIT_TOLERANCE 0.05
#define CIRCUIT_TWO_PI 6.283185307179586

typedef struct circuit_sim {
    const pnn_circuit_ops *ops; /* the backend's circuit kernels */
    pnn_circuit_settings set;
    float w0, qf, alpha, kappa;    /* this device's hidden values */
    pnn_sim_drift drift;
    float *u;        /* drive [rows_cap, segments] */
    float *noise;    /* [rows_cap, y_dim] */
    int64_t rows_cap;
} circuit_sim;

/* layout: interleave (x and theta alternate over the segments) or concat (x first, then theta) */
static const char *const circuit_layouts[] = {"concat", "interleave", NULL};

/* The fastest rate of the circuit linearised at rest: sqrt(w0^2 + alpha kappa) when it rings
 * (w0 itself without the nonlinear element), the fast decay rate when it is overdamped. The
 * step bound w0 dt <= 0.2 is applied to it, so a stiff tanh term cannot slip past the bound. */
static double circuit_fastest_rate(double w0, double qf, double alpha, double kappa) {
    double omega2 = w0 * w0 + alpha * kappa, half_c = 0.5 * w0 / qf;
    return half_c * half_c > omega2 ? half_c + sqrt(half_c * half_c - omega2) : sqrt(omega2);
}

pnn_status pnn_circuit_read_settings(pnn_uri *u, pnn_circuit_settings *out) {
    int64_t s, xd, yd, steps, seed;
    double T, w0, qf, alpha, kappa, mismatch, drift, drift_period, noise;
    int interleave;
    memset(out, 0, sizeof *out);
    PNN_TRY(pnn_uri_int(u, "segments", 16, 2, PNN_CIRCUIT_MAX_SEGMENTS, &s));
    PNN_TRY(pnn_uri_int(u, "x_dim", s / 2, 1, s - 1, &xd));
    PNN_TRY(pnn_uri_int(u, "steps", 20, 1, PNN_CIRCUIT_MAX_RUN_STEPS, &steps));
    if (steps > PNN_CIRCUIT_MAX_RUN_STEPS / s)
        return PNN_ERROR(PNN_ERR_INVALID, "device parameters segments=%lld and steps=%lld: a run of %lld RK4 steps is "
                         "more than %lld; use fewer segments or steps", (long long)s, (long long)steps,
                         (long long)(s * steps), (long long)PNN_CIRCUIT_MAX_RUN_STEPS);
    int64_t max_y = s * steps < PNN_DEVICE_MAX_XY_DIM ? s * steps : PNN_DEVICE_MAX_XY_DIM;
    PNN_TRY(pnn_uri_int(u, "y_dim", s / 2, 1, max_y, &yd));
    PNN_TRY(pnn_uri_choice(u, "layout", circuit_layouts, 1, &interleave));
    PNN_TRY(pnn_uri_double(u, "T", 4.0, 1e-6, 1e6, &T));
    PNN_TRY(pnn_uri_double(u, "w0", CIRCUIT_TWO_PI, 1e-6, 1e6, &w0));
    PNN_TRY(pnn_uri_double(u, "Qf", 4.0, 0.01, 1e6, &qf));
    PNN_TRY(pnn_uri_double(u, "alpha", 20.0, 0, 1e6, &alpha));
    PNN_TRY(pnn_uri_double(u, "kappa", 2.0, 0, 1e3, &kappa));
    PNN_TRY(pnn_uri_double(u, "mismatch", 1.0, 0, 5, &mismatch));
    PNN_TRY(pnn_uri_double(u, "drift", 0.02, 0, 0.5, &drift));
    PNN_TRY(pnn_uri_double(u, "drift_period", 1000, 1, 1e12, &drift_period));
    PNN_TRY(pnn_uri_double(u, "noise", 0.01, 0, 100, &noise));
    PNN_TRY(pnn_uri_int(u, "seed", 0, 0, INT64_MAX, &seed));
    if (mismatch * drift > 0.5)
        return PNN_ERROR(PNN_ERR_INVALID, "device parameters mismatch=%g and drift=%g: w0 would drift by up to %g%%; "
                         "keep mismatch * drift <= 0.5", mismatch, drift, 100 * mismatch * drift);
    double dt = T / ((double)s * (double)steps), rate = circuit_fastest_rate(w0, qf, alpha, kappa);
    if (rate * dt > PNN_CIRCUIT_MAX_W0_DT * (1 + 1e-9)) {
        double dt_max = PNN_CIRCUIT_MAX_W0_DT / rate;
        return PNN_ERROR(PNN_ERR_INVALID, "device parameters T=%g, segments=%lld, steps=%lld give dt = %g, and the "
                         "circuit's fastest rate %g (sqrt(w0^2 + alpha kappa), or its damping when overdamped) times "
                         "dt is %g > %g: RK4 would be inaccurate. The largest allowed dt is %g: use steps >= %lld",
                         T, (long long)s, (long long)steps, dt, rate, rate * dt, PNN_CIRCUIT_MAX_W0_DT, dt_max,
                         (long long)ceil(T / ((double)s * dt_max) - 1e-9));
    }
    out->p = (pnn_circuit_params){.batch = 0, .segments = s, .steps = steps, .x_dim = xd, .y_dim = yd,
                                  .interleave = interleave, .dt = (float)dt, .w0 = (float)w0, .qf = (float)qf,
                                  .alpha = (float)alpha, .kappa = (float)kappa};
    out->T = T;
    out->mismatch = mismatch;
    out->drift = drift;
    out->drift_period = drift_period;
    out->noise = noise;
    out->seed = seed;
    return PNN_OK;
}

static void circuit_close(pnn_device *dev) {
    circuit_sim *s = dev->impl;
    if (s) {
        if (s->u) dev->be->iface->release(dev->be->ctx, s->u);
        if (s->noise) dev->be->iface->release(dev->be->ctx, s->noise);
        free(s);
    }
    free(dev);
}

/* Grows the per-call buffers to hold `rows` rows. */
static pnn_status circuit_reserve(pnn_device *dev, int64_t rows) {
    circuit_sim *s = dev->impl;
    if (rows <= s->rows_cap) return PNN_OK;
    const pnn_backend_i *be = dev->be->iface;
    if (s->u) be->release(dev->be->ctx, s->u);
    if (s->noise) be->release(dev->be->ctx, s->noise);
    s->u = be->alloc(dev->be->ctx, (size_t)(rows * s->set.p.segments) * sizeof(float));
    s->noise = be->alloc(dev->be->ctx, (size_t)(rows * s->set.p.y_dim) * sizeof(float));
    if (!s->u || !s->noise) {
        s->rows_cap = 0;
        return PNN_ERROR(PNN_ERR_NOMEM, "sim:circuit: out of memory for a batch of %lld", (long long)rows);
    }
    s->rows_cap = rows;
    return PNN_OK;
}

static pnn_status circuit_forward(pnn_device *dev, const pnn_tensor *x, const float *theta, pnn_tensor *y) {
    circuit_sim *s = dev->impl;
    const pnn_backend_i *be = dev->be->iface;
    void *ctx = dev->be->ctx;
    int64_t rows = pnn_tensor_rows(x), yd = s->set.p.y_dim;
    PNN_TRY(circuit_reserve(dev, rows));
    pnn_circuit_params p = s->set.p;
    p.batch = rows;
    p.w0 = (float)(s->w0 * (1 + s->set.mismatch * s->set.drift * pnn_sim_drift_at(&s->drift, dev->calls)));
    p.qf = s->qf;
    p.alpha = s->alpha;
    p.kappa = s->kappa;
    s->ops->drive(ctx, &p, x->data, theta, s->u);
    s->ops->forward(ctx, &p, s->u, y->data, NULL);
    if (s->set.noise > 0) {
        be->rng_normal(ctx, (uint64_t)s->set.seed, pnn_rng_stream("sim.circuit.noise", dev->calls), 0, rows * yd,
                       s->noise);
        be->axpby(ctx, rows * yd, (float)s->set.noise, s->noise, 1.0f, y->data);
    }
    return PNN_OK;
}

static const pnn_device_i circuit_iface = {.forward = circuit_forward, .close = circuit_close};

static pnn_status circuit_open(pnn_uri *u, const char *uri, const pnn_backend *be, pnn_device **out) {
    pnn_circuit_settings set;
    PNN_TRY(pnn_circuit_read_settings(u, &set));
    PNN_TRY(pnn_uri_check_all_used(u, CIRCUIT_KEYS ", " PNN_SIM_KEYS));
    pnn_device *dev = calloc(1, sizeof *dev);
    circuit_sim *s = calloc(1, sizeof *s);
    if (!dev || !s) {
        free(dev);
        free(s);
        return PNN_ERROR(PNN_ERR_NOMEM, "out of memory opening %s", uri);
    }
    dev->iface = &circuit_iface;
    dev->be = be;
    dev->impl = s;
    s->ops = pnn_circuit_ops_for(be);
    s->set = set;

    /* the hidden component values, drawn once from the seed */
    float g[4];
    pnn_rng_normal((uint64_t)set.seed, pnn_rng_stream("sim.circuit.mismatch", 0), 0, 4, g);
    double spread = CIRCUIT_TOLERANCE * set.mismatch;
    s->w0 = (float)(set.p.w0 * exp(spread * g[0]));
    s->qf = (float)(set.p.qf * exp(spread * g[1]));
    s->alpha = (float)(set.p.alpha * exp(spread * g[2]));
    s->kappa = (float)(set.p.kappa * exp(spread * g[3]));
    pnn_sim_drift_init(&s->drift, (uint64_t)set.seed, "sim.circuit.drift", set.drift_period);

    pnn_device_info *info = &dev->info;
    snprintf(info->system, sizeof info->system, "circuit");
    snprintf(info->uri, sizeof info->uri, "%s", uri);
    info->x_dim = set.p.x_dim;
    info->y_dim = set.p.y_dim;
    info->theta_dim = set.p.segments - set.p.x_dim;
    /* the drive's rails: the circuit clips its drive there */
    info->x_range[0] = info->theta_range[0] = -1.0f;
    info->x_range[1] = info->theta_range[1] = 1.0f;
    info->n_theta_parts = 1;
    info->theta_parts[0] = (pnn_theta_part){"drive", 1, {info->theta_dim, 0}};
    *out = dev;
    return PNN_OK;
}

/* Per row and RK4 step, counted from circuit.h: 4 forces of 7 operations plus a tanh
 * (pnn_tanh_arith, about 40), 12 for the stages, 14 for the update: 214. The adjoint recomputes
 * the stages (200) and adds about 70. Elementwise work: no GEMM. */
static pnn_status circuit_flops(pnn_uri *u, int64_t rows, double out[3]) {
    pnn_circuit_settings set;
    PNN_TRY(pnn_circuit_read_settings(u, &set));
    double steps = (double)rows * (double)set.p.segments * (double)set.p.steps;
    out[0] = 214.0 * steps, out[1] = 270.0 * steps, out[2] = 214.0 * steps;
    return PNN_OK;
}

const pnn_system pnn_system_circuit = {
    .name = "circuit",
    .summary = "nonlinear analog circuit (electronics): x and theta drive v'' + (w0/Qf) v' + w0^2 v + "
               "alpha tanh(kappa v) = w0^2 u, y = v at y_dim times",
    .keys = CIRCUIT_KEYS,
    .open_sim = circuit_open,
    .analytic_twin = pnn_circuit_twin_create,
    .flops = circuit_flops,
};
