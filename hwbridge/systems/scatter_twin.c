/* The analytic twin of the scattering system: the ideal map |W2 diag(exp(i theta)) W1 x|^2 with
 * the nominal medium (drawn from the device seed as the device draws it, without its hidden
 * errors), a linear phase response and no full well, with the exact VJP of that map (scatter.h).
 * The camera's read noise is additive, so the VJP does not depend on it; taped forwards add
 * noise of the device's nominal level to y from the twin's own stream, which is what in-silico
 * training sees. */
#include <math.h>
#include <stdlib.h>

#include "kernels/systems/scatter/scatter_ops.h"
#include "hwbridge/systems/scatter.h"
#include "pnn/rng.h"

typedef struct scatter_twin {
    const pnn_scatter_ops *ops; /* the backend's scattering kernels */
    pnn_scatter_settings set;
    float noise;    /* read noise of taped forwards */
    uint64_t seed;
    float *b1, *b2; /* the nominal medium */
    float *w;       /* diag(phi) b2, rebuilt when theta changed (tw->theta_stale) */
    float *t;       /* b1 w, the transfer matrix, rebuilt on first use after w */
    int t_stale;
    float *g_mat, *s_mat; /* the transfer form's VJP: x^T gz (x_dim x y_dim), b1^H g_mat (modes x y_dim) */
    /* scratch, with the rows each holds */
    float *u, *z, *gu, *gz, *noise_buf;
    int64_t u_cap, z_cap, gu_cap, gz_cap, noise_cap;
    /* per slot, the form its forward took and what its VJP needs: the fields form keeps u
     * (2 B modes floats) then z (2 B y_dim); the transfer form x (B x_dim) then z */
    float *tape[PNN_TWIN_MAX_SLOTS];
    int64_t tape_cap[PNN_TWIN_MAX_SLOTS];  /* floats each tape can hold */
    int64_t tape_rows[PNN_TWIN_MAX_SLOTS]; /* rows of the saved tape; 0 = none */
    int tape_transfer[PNN_TWIN_MAX_SLOTS];
} scatter_twin;

static void twin_free(pnn_twin *tw) {
    scatter_twin *t = tw->impl;
    const pnn_backend *be = tw->be;
    float *bufs[] = {t->b1, t->b2, t->w, t->t, t->g_mat, t->s_mat, t->u, t->z, t->gu, t->gz, t->noise_buf};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        if (bufs[i]) be->iface->release(be->ctx, bufs[i]);
    for (int i = 0; i < PNN_TWIN_MAX_SLOTS; i++)
        if (t->tape[i]) be->iface->release(be->ctx, t->tape[i]);
    free(t);
    free(tw);
}

static pnn_status check_slot(int slot, int allow_none) {
    if ((allow_none && slot == -1) || (slot >= 0 && slot < PNN_TWIN_MAX_SLOTS)) return PNN_OK;
    return PNN_ERROR(PNN_ERR_INVALID, "scatter twin: tape slot %d out of range [0, %d)", slot, PNN_TWIN_MAX_SLOTS);
}

/* input_noise is the oracle's, which pnn_scatter_twin_create refuses: it is never given here. */
static pnn_status twin_forward(pnn_twin *tw, const pnn_tensor *x, const float *theta, pnn_tensor *y, int tape_slot,
                               const float *input_noise) {
    scatter_twin *t = tw->impl;
    const pnn_backend *be = tw->be;
    int64_t rows = pnn_tensor_rows(x), d = t->set.x_dim, m = t->set.modes, k = t->set.y_dim;
    PNN_TRY(check_slot(tape_slot, 1));
    PNN_TRY(pnn_tensor_check2(x, -1, d, "scatter twin input"));
    PNN_TRY(pnn_tensor_check2(y, rows, k, "scatter twin output"));
    int taped = tape_slot >= 0, transfer = pnn_scatter_use_transfer(&t->set, rows);
    float *u = NULL, *z, *x_kept = NULL;
    if (taped) {
        /* counted in floats: the two forms keep different amounts per row */
        PNN_TRY(pnn_scatter_grow(be, &t->tape[tape_slot], &t->tape_cap[tape_slot], rows * ((transfer ? d : 2 * m) + 2 * k),
                                 1));
        if (transfer) x_kept = t->tape[tape_slot];
        else u = t->tape[tape_slot];
        z = t->tape[tape_slot] + rows * (transfer ? d : 2 * m);
    } else {
        PNN_TRY(pnn_scatter_grow(be, &t->z, &t->z_cap, rows, 2 * k));
        if (!transfer) PNN_TRY(pnn_scatter_grow(be, &t->u, &t->u_cap, rows, 2 * m));
        u = t->u, z = t->z;
    }
    if (taped && t->noise > 0) PNN_TRY(pnn_scatter_grow(be, &t->noise_buf, &t->noise_cap, rows, k));
    if (tw->theta_stale) {
        t->ops->modulate(be->ctx, m, k, 0.0f, theta, t->b2, t->w);
        tw->theta_stale = 0;
        t->t_stale = 1;
    }
    if (transfer) {
        if (t->t_stale) pnn_scatter_transfer(be, &t->set, t->b1, t->w, t->t);
        t->t_stale = 0;
        if (x_kept) be->iface->copy(be->ctx, x_kept, x->data, (size_t)(rows * d) * sizeof(float));
        pnn_scatter_through(be, &t->set, rows, x->data, t->t, z);
    } else {
        pnn_scatter_fields(be, &t->set, rows, x->data, t->b1, t->w, u, z);
    }
    const float *noise = NULL;
    if (taped && t->noise > 0) {
        be->iface->rng_normal(be->ctx, t->seed, pnn_rng_stream("twin.scatter.noise", tw->calls), 0, rows * k,
                              t->noise_buf);
        noise = t->noise_buf;
    }
    if (taped) {
        tw->calls++;
        t->tape_rows[tape_slot] = rows;
        t->tape_transfer[tape_slot] = transfer;
    }
    t->ops->detect(be->ctx, rows * k, z, noise, t->noise, INFINITY, y->data);
    return PNN_OK;
}

/* At slot's tape and the W (and T) of its forward, in the form the forward took
 * (kernels/systems/scatter/scatter.h): gz = 2 dy z, then either gu = gz W^H,
 * dtheta += sum_b Im(gu conj(u)), dx = Re(gu b1^H); or dx = Re(gz T^H), S = b1^H (x^T gz),
 * dtheta += sum_k Im(S conj(W)). Products of a real and a complex matrix are one real GEMM on the
 * complex one's interleaved floats. */
static pnn_status twin_vjp(pnn_twin *tw, const float *theta, const pnn_tensor *dy, pnn_tensor *dx, float *dtheta,
                           int tape_slot) {
    static const float one[2] = {1.0f, 0.0f}, zero[2] = {0.0f, 0.0f};
    scatter_twin *t = tw->impl;
    const pnn_backend *be = tw->be;
    const pnn_backend_i *ops = be->iface;
    int64_t rows = pnn_tensor_rows(dy), d = t->set.x_dim, m = t->set.modes, k = t->set.y_dim;
    PNN_TRY(check_slot(tape_slot, 0));
    if (t->tape_rows[tape_slot] != rows)
        return PNN_ERROR(PNN_ERR_INVALID,
                         "scatter twin: vjp of %lld rows without a matching taped forward in slot %d (%lld rows)",
                         (long long)rows, tape_slot, (long long)t->tape_rows[tape_slot]);
    PNN_TRY(pnn_tensor_check2(dy, rows, k, "scatter twin output gradient"));
    if (dx) PNN_TRY(pnn_tensor_check2(dx, rows, d, "scatter twin input gradient"));
    int transfer = t->tape_transfer[tape_slot];
    PNN_TRY(pnn_scatter_grow(be, &t->gz, &t->gz_cap, rows, 2 * k));
    if (!transfer) PNN_TRY(pnn_scatter_grow(be, &t->gu, &t->gu_cap, rows, 2 * m));
    const float *kept = t->tape[tape_slot], *z = kept + rows * (transfer ? d : 2 * m);
    t->ops->detect_adjoint(be->ctx, rows * k, dy->data, z, t->gz);
    if (transfer) {
        if (dx) ops->gemm(be->ctx, false, true, rows, d, 2 * k, 1.0f, t->gz, 2 * k, t->t, 2 * k, 0.0f, dx->data, d);
        ops->gemm(be->ctx, true, false, d, 2 * k, rows, 1.0f, kept, d, t->gz, 2 * k, 0.0f, t->g_mat, 2 * k);
        ops->cgemm(be->ctx, 'C', 'N', m, k, d, one, t->b1, m, t->g_mat, k, zero, t->s_mat, k);
        t->ops->modulate_adjoint_medium(be->ctx, m, k, t->s_mat, t->w, dtheta);
    } else {
        ops->cgemm(be->ctx, 'N', 'C', rows, m, k, one, t->gz, k, t->w, k, zero, t->gu, m);
        t->ops->modulate_adjoint(be->ctx, rows, m, t->gu, kept, dtheta);
        if (dx) ops->gemm(be->ctx, false, true, rows, d, 2 * m, 1.0f, t->gu, 2 * m, t->b1, 2 * m, 0.0f, dx->data, d);
    }
    return PNN_OK;
}

/* Phases uniform in [-pi, pi): a modulator set at random, the usual start. */
static pnn_status twin_init_theta(pnn_twin *tw, uint64_t seed, uint64_t stream, float *theta) {
    int64_t total = tw->info.theta_dim;
    float *host = malloc((size_t)total * sizeof(float));
    if (!host) return PNN_ERROR(PNN_ERR_NOMEM, "out of memory initialising scatter phases");
    pnn_rng_uniform(seed, stream, 0, total, host);
    for (int64_t i = 0; i < total; i++) host[i] = 3.14159265f * (2.0f * host[i] - 1.0f);
    tw->be->iface->from_host(tw->be->ctx, theta, host, (size_t)total * sizeof(float));
    free(host);
    return PNN_OK;
}

static const pnn_twin_i scatter_twin_iface = {
    .forward = twin_forward, .vjp = twin_vjp, .init_theta = twin_init_theta, .free = twin_free};

/* A scattering system has x_dim, y_dim and theta_dim = modes as its URI says (the twin draws the
 * medium from those): a device that reports anything else (a crafted server or recording
 * header) is refused before any buffer is sized from its dims. */
static pnn_status check_device_dims(const pnn_device_info *info, const pnn_scatter_settings *s) {
    if (info->x_dim != s->x_dim || info->y_dim != s->y_dim || info->theta_dim != s->modes)
        return PNN_ERROR(PNN_ERR_FORMAT,
                         "device %s reports x_dim %lld, y_dim %lld, theta_dim %lld, which is not a scatter system "
                         "of its URI %s (x_dim %lld, y_dim %lld, theta_dim = modes %lld); check the device or "
                         "recording",
                         info->uri, (long long)info->x_dim, (long long)info->y_dim, (long long)info->theta_dim,
                         info->system_uri, (long long)s->x_dim, (long long)s->y_dim, (long long)s->modes);
    return PNN_OK;
}

pnn_status pnn_scatter_twin_create(pnn_device *dev, double noise, pnn_twin **out) {
    pnn_uri u;
    pnn_scatter_settings set;
    *out = NULL;
    PNN_TRY(pnn_uri_parse(dev->info.system_uri[0] ? dev->info.system_uri : dev->info.uri, &u));
    PNN_TRY(pnn_scatter_read_settings(&u, &set));
    PNN_TRY(check_device_dims(&dev->info, &set));
    if (noise == PNN_TWIN_NOISE_ORACLE || noise == PNN_TWIN_NOISE_ESTIMATE)
        return PNN_ERROR(PNN_ERR_CONFIG, "twin_noise: %s stands for a device's input noise, and the scatter "
                         "system's noise is the camera's, on its output, which the twin's gradient does not "
                         "depend on; leave twin_noise out (the nominal level) or give a number",
                         noise == PNN_TWIN_NOISE_ORACLE ? "oracle" : "estimate");
    pnn_twin *tw;
    PNN_TRY(pnn_twin_new(dev, &scatter_twin_iface, sizeof(scatter_twin), "a scatter twin", &tw));
    scatter_twin *t = tw->impl;
    t->ops = pnn_scatter_ops_for(dev->be);
    t->set = set;
    t->noise = (float)(noise < 0 ? set.noise : noise);
    t->seed = (uint64_t)set.seed ^ 0x7477696eull; /* the twin's own draws, never the device's */
    const pnn_backend_i *bi = dev->be->iface;
    t->b1 = bi->alloc(dev->be->ctx, (size_t)(2 * set.x_dim * set.modes) * sizeof(float));
    t->b2 = bi->alloc(dev->be->ctx, (size_t)(2 * set.modes * set.y_dim) * sizeof(float));
    t->w = bi->alloc(dev->be->ctx, (size_t)(2 * set.modes * set.y_dim) * sizeof(float));
    t->t = bi->alloc(dev->be->ctx, (size_t)(2 * set.x_dim * set.y_dim) * sizeof(float));
    t->g_mat = bi->alloc(dev->be->ctx, (size_t)(2 * set.x_dim * set.y_dim) * sizeof(float));
    t->s_mat = bi->alloc(dev->be->ctx, (size_t)(2 * set.modes * set.y_dim) * sizeof(float));
    pnn_status st = PNN_OK;
    if (!t->b1 || !t->b2 || !t->w || !t->t || !t->g_mat || !t->s_mat)
        st = PNN_ERROR(PNN_ERR_NOMEM, "out of memory creating a scatter twin (%lld modes)", (long long)set.modes);
    else
        st = pnn_scatter_draw_media(dev->be, &set, 0.0, t->b1, t->b2);
    if (st != PNN_OK) {
        twin_free(tw);
        return st;
    }
    *out = tw;
    return PNN_OK;
}
