/* The analytic twin of the oscillator system: the ideal model (sin q, no hidden coupling, no
 * noise), integrated by the same RK4 as the device, with the exact VJP of the discrete map. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "pnn/rng.h"
#include "pnn/twin.h"

typedef struct osc_twin {
    pnn_osc_params p;
    float noise;    /* input noise of taped forwards */
    pnn_device *oracle;  /* non-NULL: replay this simulator's last input noise instead */
    uint64_t seed;
    float *x_noisy; /* [rows_cap, n] */
    float *q_mat;   /* Q = J2Q(C) of the last forward */
    float *dq_mat;  /* gradient of Q, n x n */
    float *tape;
    float *work;
    int64_t rows_cap;     /* rows the tape and work can hold */
    int64_t tape_rows;    /* rows of the saved tape; 0 = none */
} osc_twin;

static void twin_free(pnn_twin *tw) {
    osc_twin *t = tw->impl;
    const pnn_backend *be = tw->be;
    float *bufs[] = {t->q_mat, t->dq_mat, t->tape, t->work, t->x_noisy};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        if (bufs[i]) be->iface->release(be->ctx, bufs[i]);
    free(t);
    free(tw);
}

static pnn_status twin_reserve(pnn_twin *tw, int64_t rows) {
    osc_twin *t = tw->impl;
    if (rows <= t->rows_cap) return PNN_OK;
    const pnn_backend *be = tw->be;
    float **bufs[] = {&t->tape, &t->work, &t->x_noisy};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        if (*bufs[i]) be->iface->release(be->ctx, *bufs[i]);
    pnn_osc_params p = t->p;
    p.batch = rows;
    t->tape = be->iface->alloc(be->ctx, be->iface->osc_tape_floats(&p) * sizeof(float) + 64);
    t->work = be->iface->alloc(be->ctx, be->iface->osc_work_floats(&p) * sizeof(float) + 64);
    t->x_noisy = be->iface->alloc(be->ctx, (size_t)(rows * p.n) * sizeof(float) + 64);
    t->rows_cap = t->tape && t->work && t->x_noisy ? rows : 0;
    if (!t->rows_cap)
        return PNN_ERROR(PNN_ERR_NOMEM, "oscillator twin: out of memory for a tape of %lld rows",
                         (long long)rows);
    return PNN_OK;
}

static pnn_status twin_forward(pnn_twin *tw, const pnn_tensor *x, const float *theta, pnn_tensor *y,
                               int save_tape) {
    osc_twin *t = tw->impl;
    const pnn_backend *be = tw->be;
    int64_t rows = pnn_tensor_rows(x), n = t->p.n;
    PNN_TRY(pnn_tensor_check2(x, -1, n, "oscillator twin input"));
    PNN_TRY(pnn_tensor_check2(y, rows, n, "oscillator twin output"));
    PNN_TRY(twin_reserve(tw, rows));
    pnn_osc_params p = t->p;
    p.batch = rows;
    be->iface->osc_build_q(be->ctx, n, theta, t->q_mat);
    const float *q0 = x->data;
    if (save_tape && t->oracle && t->oracle->calls > 0) {
        PNN_TRY(t->oracle->iface->last_input_noise(t->oracle, rows * n, t->x_noisy));
        be->iface->axpby(be->ctx, rows * n, 1.0f, x->data, 1.0f, t->x_noisy);
        q0 = t->x_noisy;
    } else if (save_tape && t->noise > 0) {
        be->iface->rng_normal(be->ctx, t->seed, pnn_rng_stream("twin.oscillator.noise", tw->calls), 0, rows * n,
                              t->x_noisy);
        be->iface->axpby(be->ctx, rows * n, 1.0f, x->data, t->noise, t->x_noisy);
        q0 = t->x_noisy;
    }
    if (save_tape) tw->calls++;
    be->iface->osc_forward(be->ctx, &p, q0, t->q_mat, theta + n * n, y->data, save_tape ? t->tape : NULL,
                           t->work);
    t->tape_rows = save_tape ? rows : 0;
    return PNN_OK;
}

/* Q and the tape come from the forward, so theta itself is not needed here. */
static pnn_status twin_vjp(pnn_twin *tw, const float *theta, const pnn_tensor *dy, pnn_tensor *dx,
                           float *dtheta) {
    osc_twin *t = tw->impl;
    const pnn_backend *be = tw->be;
    int64_t rows = pnn_tensor_rows(dy), n = t->p.n;
    if (t->tape_rows != rows)
        return PNN_ERROR(PNN_ERR_INVALID,
                         "oscillator twin: vjp of %lld rows without a matching taped forward (%lld rows)",
                         (long long)rows, (long long)t->tape_rows);
    PNN_TRY(pnn_tensor_check2(dy, rows, n, "oscillator twin output gradient"));
    if (dx) PNN_TRY(pnn_tensor_check2(dx, rows, n, "oscillator twin input gradient"));
    pnn_osc_params p = t->p;
    p.batch = rows;
    be->iface->fill(be->ctx, t->dq_mat, 0.0f, n * n);
    be->iface->osc_vjp(be->ctx, &p, t->tape, t->q_mat, dy->data, dx ? dx->data : NULL, t->dq_mat,
                       dtheta + n * n, t->work);
    be->iface->osc_build_q_backward(be->ctx, n, t->dq_mat, dtheta);
    return PNN_OK;
}

/* Like PyTorch's nn.Linear (the reference's choice): C and e uniform in +-1/sqrt(n). */
static pnn_status twin_init_theta(pnn_twin *tw, uint64_t seed, uint64_t stream, float *theta) {
    int64_t n = tw->info.x_dim, total = tw->info.theta_dim;
    float *host = malloc((size_t)total * sizeof(float));
    if (!host) return PNN_ERROR(PNN_ERR_NOMEM, "out of memory initialising oscillator controls");
    pnn_rng_uniform(seed, stream, 0, total, host);
    float bound = 1.0f / sqrtf((float)n);
    for (int64_t i = 0; i < total; i++) host[i] = (2.0f * host[i] - 1.0f) * bound;
    tw->be->iface->from_host(tw->be->ctx, theta, host, (size_t)total * sizeof(float));
    free(host);
    return PNN_OK;
}

static const pnn_twin_i osc_twin_iface = {
    .forward = twin_forward, .vjp = twin_vjp, .init_theta = twin_init_theta, .free = twin_free};

pnn_status pnn_twin_oscillator_create(pnn_device *dev, double noise, pnn_twin **out) {
    pnn_uri u;
    int64_t nt, seed;
    double dt, nominal_noise;
    PNN_TRY(pnn_uri_parse(dev->info.uri, &u));
    PNN_TRY(pnn_uri_int(&u, "nt", 5, 1, 100000, &nt));
    PNN_TRY(pnn_uri_double(&u, "dt", 0.1, 1e-6, 10, &dt));
    PNN_TRY(pnn_uri_double(&u, "noise", 0.02, 0, 100, &nominal_noise));
    PNN_TRY(pnn_uri_int(&u, "seed", 0, 0, INT64_MAX, &seed));
    pnn_twin *tw = calloc(1, sizeof *tw);
    osc_twin *t = calloc(1, sizeof *t);
    if (!tw || !t) {
        free(tw);
        free(t);
        return PNN_ERROR(PNN_ERR_NOMEM, "out of memory creating an oscillator twin");
    }
    tw->iface = &osc_twin_iface;
    tw->info = dev->info;
    tw->be = dev->be;
    tw->impl = t;
    int64_t n = dev->info.x_dim;
    t->p = (pnn_osc_params){.batch = 0, .n = n, .nt = (int)nt, .dt = (float)dt, .eta = 0.0f};
    t->noise = (float)(noise < 0 ? nominal_noise : noise);
    if (noise == PNN_TWIN_NOISE_ORACLE) {
        if (!dev->iface->last_input_noise) {
            twin_free(tw);
            return PNN_ERROR(PNN_ERR_UNSUPPORTED, "twin_noise: oracle needs a simulated device; %s cannot replay "
                             "its noise", dev->info.uri);
        }
        t->oracle = dev;
    }
    t->seed = (uint64_t)seed ^ 0x7477696eull; /* the twin's own draws, never the device's */
    t->q_mat = dev->be->iface->alloc(dev->be->ctx, (size_t)(n * n) * sizeof(float));
    t->dq_mat = dev->be->iface->alloc(dev->be->ctx, (size_t)(n * n) * sizeof(float));
    if (!t->q_mat || !t->dq_mat) {
        twin_free(tw);
        return PNN_ERROR(PNN_ERR_NOMEM, "out of memory creating an oscillator twin (n = %lld)", (long long)n);
    }
    *out = tw;
    return PNN_OK;
}
