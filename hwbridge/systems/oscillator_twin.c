/* The analytic twin of the oscillator system: the ideal model (sin q, no hidden coupling, no
 * noise), integrated by the same RK4 as the device, with the exact VJP of the discrete map. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/systems/oscillator/oscillator_ops.h"
#include "hwbridge/systems/oscillator.h"
#include "pnn/rng.h"

typedef struct osc_twin {
    const pnn_osc_ops *ops; /* the backend's oscillator kernels */
    pnn_osc_params p;
    float noise;    /* input noise of taped forwards */
    uint64_t seed;
    float *x_noisy; /* [rows_cap, n] */
    float *q_mat;   /* Q = J2Q(C), rebuilt when theta changed (tw->theta_stale) */
    float *dq_mat;  /* gradient of Q, n x n */
    float *work;
    int64_t rows_cap;     /* rows work and x_noisy can hold */
    float *tape[PNN_TWIN_MAX_SLOTS];
    int64_t tape_cap[PNN_TWIN_MAX_SLOTS];   /* rows each tape can hold */
    int64_t tape_rows[PNN_TWIN_MAX_SLOTS];  /* rows of the saved tape; 0 = none */
} osc_twin;

static void twin_free(pnn_twin *tw) {
    osc_twin *t = tw->impl;
    const pnn_backend *be = tw->be;
    float *bufs[] = {t->q_mat, t->dq_mat, t->work, t->x_noisy};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        if (bufs[i]) be->iface->release(be->ctx, bufs[i]);
    for (int i = 0; i < PNN_TWIN_MAX_SLOTS; i++)
        if (t->tape[i]) be->iface->release(be->ctx, t->tape[i]);
    free(t);
    free(tw);
}

/* Grows the scratch to `rows` rows and, for slot >= 0, that slot's tape. */
static pnn_status twin_reserve(pnn_twin *tw, int64_t rows, int slot) {
    osc_twin *t = tw->impl;
    const pnn_backend *be = tw->be;
    pnn_osc_params p = t->p;
    p.batch = rows;
    /* the tape is 8 nt B n floats: refuse what no memory holds before multiplying it out */
    if ((double)rows * (double)p.n * (8.0 * p.nt + 8) * sizeof(float) > 0x1p50)
        return PNN_ERROR(PNN_ERR_NOMEM, "oscillator twin: a batch of %lld rows at n=%lld, nt=%d would need %.3g GiB "
                         "of tape; use smaller (micro-)batches", (long long)rows, (long long)p.n, p.nt,
                         (double)rows * (double)p.n * 8.0 * p.nt * sizeof(float) / 0x1p30);
    if (rows > t->rows_cap) {
        float **bufs[] = {&t->work, &t->x_noisy};
        for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
            if (*bufs[i]) be->iface->release(be->ctx, *bufs[i]);
        t->work = be->iface->alloc(be->ctx, t->ops->work_floats(&p) * sizeof(float) + 64);
        t->x_noisy = be->iface->alloc(be->ctx, (size_t)(rows * p.n) * sizeof(float) + 64);
        t->rows_cap = t->work && t->x_noisy ? rows : 0;
        if (!t->rows_cap)
            return PNN_ERROR(PNN_ERR_NOMEM, "oscillator twin: out of memory for a batch of %lld rows",
                             (long long)rows);
    }
    if (slot >= 0 && rows > t->tape_cap[slot]) {
        if (t->tape[slot]) be->iface->release(be->ctx, t->tape[slot]);
        t->tape[slot] = be->iface->alloc(be->ctx, t->ops->tape_floats(&p) * sizeof(float) + 64);
        t->tape_cap[slot] = t->tape[slot] ? rows : 0;
        if (!t->tape[slot])
            return PNN_ERROR(PNN_ERR_NOMEM, "oscillator twin: out of memory for a tape of %lld rows",
                             (long long)rows);
    }
    return PNN_OK;
}

static pnn_status check_slot(int slot, int allow_none) {
    if ((allow_none && slot == -1) || (slot >= 0 && slot < PNN_TWIN_MAX_SLOTS)) return PNN_OK;
    return PNN_ERROR(PNN_ERR_INVALID, "oscillator twin: tape slot %d out of range [0, %d)", slot,
                     PNN_TWIN_MAX_SLOTS);
}

static pnn_status twin_forward(pnn_twin *tw, const pnn_tensor *x, const float *theta, pnn_tensor *y,
                               int tape_slot, const float *input_noise) {
    osc_twin *t = tw->impl;
    const pnn_backend *be = tw->be;
    int64_t rows = pnn_tensor_rows(x), n = t->p.n;
    PNN_TRY(check_slot(tape_slot, 1));
    PNN_TRY(pnn_tensor_check2(x, -1, n, "oscillator twin input"));
    PNN_TRY(pnn_tensor_check2(y, rows, n, "oscillator twin output"));
    PNN_TRY(twin_reserve(tw, rows, tape_slot));
    pnn_osc_params p = t->p;
    p.batch = rows;
    int taped = tape_slot >= 0;
    if (tw->theta_stale) {
        t->ops->build_q(be->ctx, n, theta, t->q_mat);
        tw->theta_stale = 0;
    }
    const float *q0 = x->data;
    if (input_noise) {
        be->iface->copy(be->ctx, t->x_noisy, input_noise, (size_t)(rows * n) * sizeof(float));
        be->iface->axpby(be->ctx, rows * n, 1.0f, x->data, 1.0f, t->x_noisy);
        q0 = t->x_noisy;
    } else if (taped && t->noise > 0) {
        be->iface->rng_normal(be->ctx, t->seed, pnn_rng_stream("twin.oscillator.noise", tw->calls), 0, rows * n,
                              t->x_noisy);
        be->iface->axpby(be->ctx, rows * n, 1.0f, x->data, t->noise, t->x_noisy);
        q0 = t->x_noisy;
    }
    if (taped) tw->calls++;
    t->ops->forward(be->ctx, &p, q0, t->q_mat, theta + n * n, y->data, taped ? t->tape[tape_slot] : NULL,
                           t->work);
    if (taped) t->tape_rows[tape_slot] = rows;
    return PNN_OK;
}

/* Q and the tape come from the forward, so theta itself is not needed here. */
static pnn_status twin_vjp(pnn_twin *tw, const float *theta, const pnn_tensor *dy, pnn_tensor *dx,
                           float *dtheta, int tape_slot) {
    osc_twin *t = tw->impl;
    const pnn_backend *be = tw->be;
    int64_t rows = pnn_tensor_rows(dy), n = t->p.n;
    PNN_TRY(check_slot(tape_slot, 0));
    if (t->tape_rows[tape_slot] != rows)
        return PNN_ERROR(PNN_ERR_INVALID,
                         "oscillator twin: vjp of %lld rows without a matching taped forward in slot %d "
                         "(%lld rows)",
                         (long long)rows, tape_slot, (long long)t->tape_rows[tape_slot]);
    PNN_TRY(pnn_tensor_check2(dy, rows, n, "oscillator twin output gradient"));
    if (dx) PNN_TRY(pnn_tensor_check2(dx, rows, n, "oscillator twin input gradient"));
    pnn_osc_params p = t->p;
    p.batch = rows;
    be->iface->fill(be->ctx, t->dq_mat, 0.0f, n * n);
    t->ops->vjp(be->ctx, &p, t->tape[tape_slot], t->q_mat, dy->data, dx ? dx->data : NULL, t->dq_mat,
                       dtheta + n * n, t->work);
    t->ops->build_q_backward(be->ctx, n, t->dq_mat, dtheta);
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

/* The oscillator system has x_dim = y_dim = n and theta = [C (n x n), e (n)]: a device that
 * reports anything else (a crafted server or recording header) is refused before any buffer is
 * sized from its dims. */
static pnn_status check_device_dims(const pnn_device_info *info, pnn_uri *u) {
    int64_t n = info->x_dim, n_uri;
    if (n < 1 || n > PNN_OSC_MAX_N || info->y_dim != n || info->theta_dim != n * n + n)
        return PNN_ERROR(PNN_ERR_FORMAT,
                         "device %s reports x_dim %lld, y_dim %lld, theta_dim %lld, which is not an oscillator "
                         "system (x_dim = y_dim = n in [1, %d] and theta_dim = n*n + n); check the device or "
                         "recording",
                         info->uri, (long long)info->x_dim, (long long)info->y_dim, (long long)info->theta_dim,
                         PNN_OSC_MAX_N);
    PNN_TRY(pnn_uri_int(u, "n", n, 1, PNN_OSC_MAX_N, &n_uri));
    if (n_uri != n)
        return PNN_ERROR(PNN_ERR_FORMAT, "device %s reports x_dim %lld but its system URI %s says n=%lld; check the "
                         "device or recording", info->uri, (long long)n, info->system_uri, (long long)n_uri);
    return PNN_OK;
}

pnn_status pnn_osc_twin_create(pnn_device *dev, double noise, pnn_twin **out) {
    pnn_uri u;
    int64_t nt, seed;
    double dt, nominal_noise;
    *out = NULL;
    PNN_TRY(pnn_uri_parse(dev->info.system_uri[0] ? dev->info.system_uri : dev->info.uri, &u));
    PNN_TRY(check_device_dims(&dev->info, &u));
    PNN_TRY(pnn_uri_int(&u, "nt", 5, 1, 100000, &nt));
    PNN_TRY(pnn_uri_double(&u, "dt", 0.1, 1e-6, 10, &dt));
    PNN_TRY(pnn_uri_double(&u, "noise", 0.02, 0, 100, &nominal_noise));
    PNN_TRY(pnn_uri_int(&u, "seed", 0, 0, INT64_MAX, &seed));
    pnn_twin *tw;
    PNN_TRY(pnn_twin_new(dev, &osc_twin_iface, sizeof(osc_twin), "an oscillator twin", &tw));
    osc_twin *t = tw->impl;
    int64_t n = dev->info.x_dim;
    t->ops = pnn_osc_ops_for(dev->be);
    t->p = (pnn_osc_params){.batch = 0, .n = n, .nt = (int)nt, .dt = (float)dt, .eta = 0.0f};
    t->noise = (float)(noise == PNN_TWIN_NOISE_ORACLE ? 0.0 : noise < 0 ? nominal_noise : noise);
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
