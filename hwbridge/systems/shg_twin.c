/* The analytic twin of the shg system: the ideal model (flat spectral phase, perfect phase
 * matching, a sharp spectrometer, no dark offset), with the exact VJP of the map. Taped
 * (training) forwards model the device's nominal detector noise: y (1 + noise n) with the twin's
 * own draws n, and the VJP goes through the same factor. */
#include <stdlib.h>
#include <string.h>

#include "hwbridge/systems/shg.h"
#include "pnn/rng.h"

typedef struct shg_twin {
    const pnn_shg_ops *ops; /* the backend's shg kernels */
    pnn_shg_settings set;
    float noise;     /* detector noise of taped forwards */
    uint64_t seed;
    int32_t *bin_of; /* [K] */
    float *normals;  /* [rows_cap, y_dim] */
    float *work;
    int64_t rows_cap;
    float *tape[PNN_TWIN_MAX_SLOTS];        /* the kernels' tape, then the detector factors [rows, y_dim] */
    int64_t tape_cap[PNN_TWIN_MAX_SLOTS];   /* rows each tape can hold */
    int64_t tape_rows[PNN_TWIN_MAX_SLOTS];  /* rows of the saved tape; 0 = none */
    int tape_gain[PNN_TWIN_MAX_SLOTS];      /* the saved forward applied detector factors */
} shg_twin;

static void twin_free(pnn_twin *tw) {
    shg_twin *t = tw->impl;
    const pnn_backend *be = tw->be;
    void *bufs[] = {t->bin_of, t->normals, t->work};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        if (bufs[i]) be->iface->release(be->ctx, bufs[i]);
    for (int i = 0; i < PNN_TWIN_MAX_SLOTS; i++)
        if (t->tape[i]) be->iface->release(be->ctx, t->tape[i]);
    free(t);
    free(tw);
}

/* floats of a slot's tape: the kernels' part, then the detector factors */
static size_t twin_tape_floats(const shg_twin *t, const pnn_shg_params *p) {
    return t->ops->tape_floats(p) + (size_t)(p->batch * p->y_dim);
}

/* Grows the scratch to `rows` rows and, for slot >= 0, that slot's tape. */
static pnn_status twin_reserve(pnn_twin *tw, int64_t rows, int slot) {
    shg_twin *t = tw->impl;
    const pnn_backend *be = tw->be;
    pnn_shg_params p = pnn_shg_params_of(&t->set, rows);
    /* refuse what no memory holds before multiplying it out */
    double per_row = 4.0 * (double)t->set.k + 2.0 * (double)p.fft_len + (double)p.y_dim;
    if ((double)rows * per_row * sizeof(float) > 0x1p50)
        return PNN_ERROR(PNN_ERR_NOMEM, "shg twin: a batch of %lld rows at K=%lld would need %.3g GiB of scratch; use "
                         "smaller (micro-)batches", (long long)rows, (long long)t->set.k,
                         (double)rows * per_row * sizeof(float) / 0x1p30);
    if (rows > t->rows_cap) {
        if (t->work) be->iface->release(be->ctx, t->work);
        if (t->normals) be->iface->release(be->ctx, t->normals);
        t->work = be->iface->alloc(be->ctx, t->ops->work_floats(&p) * sizeof(float) + 64);
        t->normals = be->iface->alloc(be->ctx, (size_t)(rows * p.y_dim) * sizeof(float) + 64);
        t->rows_cap = t->work && t->normals ? rows : 0;
        if (!t->rows_cap)
            return PNN_ERROR(PNN_ERR_NOMEM, "shg twin: out of memory for a batch of %lld rows", (long long)rows);
    }
    if (slot >= 0 && rows > t->tape_cap[slot]) {
        if (t->tape[slot]) be->iface->release(be->ctx, t->tape[slot]);
        t->tape[slot] = be->iface->alloc(be->ctx, twin_tape_floats(t, &p) * sizeof(float) + 64);
        t->tape_cap[slot] = t->tape[slot] ? rows : 0;
        if (!t->tape[slot])
            return PNN_ERROR(PNN_ERR_NOMEM, "shg twin: out of memory for a tape of %lld rows", (long long)rows);
    }
    return PNN_OK;
}

static pnn_status check_slot(int slot, int allow_none) {
    if ((allow_none && slot == -1) || (slot >= 0 && slot < PNN_TWIN_MAX_SLOTS)) return PNN_OK;
    return PNN_ERROR(PNN_ERR_INVALID, "shg twin: tape slot %d out of range [0, %d)", slot, PNN_TWIN_MAX_SLOTS);
}

static pnn_status twin_forward(pnn_twin *tw, const pnn_tensor *x, const float *theta, pnn_tensor *y, int tape_slot,
                               const float *input_noise) {
    shg_twin *t = tw->impl;
    const pnn_backend *be = tw->be;
    int64_t rows = pnn_tensor_rows(x), yd = t->set.y_dim;
    PNN_TRY(check_slot(tape_slot, 1));
    if (input_noise)
        return PNN_ERROR(PNN_ERR_UNSUPPORTED, "shg twin: the shg system's noise is at its detector; there is no input "
                         "noise to replay (twin_noise: oracle does not apply)");
    PNN_TRY(pnn_tensor_check2(x, -1, t->set.x_dim, "shg twin input"));
    PNN_TRY(pnn_tensor_check2(y, rows, yd, "shg twin output"));
    PNN_TRY(twin_reserve(tw, rows, tape_slot));
    pnn_shg_params p = pnn_shg_params_of(&t->set, rows);
    int taped = tape_slot >= 0;
    float *tape = taped ? t->tape[tape_slot] : NULL;
    t->ops->forward(be->ctx, &p, t->bin_of, x->data, theta, y->data, tape, t->work);
    if (!taped) return PNN_OK;
    t->tape_gain[tape_slot] = t->noise > 0;
    if (t->noise > 0) {
        be->iface->rng_normal(be->ctx, t->seed, pnn_rng_stream("twin.shg.noise", tw->calls), 0, rows * yd, t->normals);
        t->ops->detect(be->ctx, rows * yd, yd, t->normals, t->noise, NULL, y->data, tape + t->ops->tape_floats(&p));
    }
    tw->calls++;
    t->tape_rows[tape_slot] = rows;
    return PNN_OK;
}

/* Everything the VJP needs is in the tape, so theta itself is not needed here. */
static pnn_status twin_vjp(pnn_twin *tw, const float *theta, const pnn_tensor *dy, pnn_tensor *dx, float *dtheta,
                           int tape_slot) {
    shg_twin *t = tw->impl;
    const pnn_backend *be = tw->be;
    int64_t rows = pnn_tensor_rows(dy);
    PNN_TRY(check_slot(tape_slot, 0));
    if (t->tape_rows[tape_slot] != rows)
        return PNN_ERROR(PNN_ERR_INVALID, "shg twin: vjp of %lld rows without a matching taped forward in slot %d (%lld "
                         "rows)", (long long)rows, tape_slot, (long long)t->tape_rows[tape_slot]);
    PNN_TRY(pnn_tensor_check2(dy, rows, t->set.y_dim, "shg twin output gradient"));
    if (dx) PNN_TRY(pnn_tensor_check2(dx, rows, t->set.x_dim, "shg twin input gradient"));
    pnn_shg_params p = pnn_shg_params_of(&t->set, rows);
    const float *tape = t->tape[tape_slot];
    t->ops->vjp(be->ctx, &p, t->bin_of, tape, t->tape_gain[tape_slot] ? tape + t->ops->tape_floats(&p) : NULL,
                dy->data, dx ? dx->data : NULL, dtheta, t->work);
    return PNN_OK;
}

/* The mask starts half open, U(0.25, 0.75): every control bin passes light (a closed one has no
 * gradient) and none is near the floor of dA/du. */
static pnn_status twin_init_theta(pnn_twin *tw, uint64_t seed, uint64_t stream, float *theta) {
    int64_t total = tw->info.theta_dim;
    float *host = malloc((size_t)total * sizeof(float));
    if (!host) return PNN_ERROR(PNN_ERR_NOMEM, "out of memory initialising the shg mask");
    pnn_rng_uniform(seed, stream, 0, total, host);
    for (int64_t i = 0; i < total; i++) host[i] = 0.25f + 0.5f * host[i];
    tw->be->iface->from_host(tw->be->ctx, theta, host, (size_t)total * sizeof(float));
    free(host);
    return PNN_OK;
}

static const pnn_twin_i shg_twin_iface = {
    .forward = twin_forward, .vjp = twin_vjp, .init_theta = twin_init_theta, .free = twin_free};

/* The shg system has K = x_dim + theta_dim bins in [2, PNN_SHG_MAX_K], 1 <= y_dim <= 2K - 1, and its
 * system URI's k, x_dim and y_dim say the same: a device that reports anything else (a crafted
 * server or recording header) is refused before any buffer is sized from its dims. */
static pnn_status check_device_dims(const pnn_device_info *info, const pnn_shg_settings *s) {
    int64_t xd = info->x_dim, td = info->theta_dim, yd = info->y_dim;
    if (xd < 1 || td < 1 || xd > PNN_SHG_MAX_K || td > PNN_SHG_MAX_K || xd + td > PNN_SHG_MAX_K || yd < 1 ||
        yd > 2 * (xd + td) - 1)
        return PNN_ERROR(PNN_ERR_FORMAT,
                         "device %s reports x_dim %lld, y_dim %lld, theta_dim %lld, which is not an shg system (K = "
                         "x_dim + theta_dim in [2, %d] with both at least 1, and 1 <= y_dim <= 2K - 1); check the "
                         "device or recording",
                         info->uri, (long long)xd, (long long)yd, (long long)td, PNN_SHG_MAX_K);
    if (s->k != xd + td || s->x_dim != xd || s->y_dim != yd)
        return PNN_ERROR(PNN_ERR_FORMAT, "device %s reports x_dim %lld, theta_dim %lld, y_dim %lld but its system URI %s "
                         "says k=%lld, x_dim=%lld, y_dim=%lld; check the device or recording", info->uri, (long long)xd,
                         (long long)td, (long long)yd, info->system_uri, (long long)s->k, (long long)s->x_dim,
                         (long long)s->y_dim);
    return PNN_OK;
}

pnn_status pnn_shg_twin_create(pnn_device *dev, double noise, pnn_twin **out) {
    pnn_uri u;
    pnn_shg_settings set;
    *out = NULL;
    PNN_TRY(pnn_uri_parse(dev->info.system_uri[0] ? dev->info.system_uri : dev->info.uri, &u));
    pnn_status st = pnn_shg_read_settings(&u, &set);
    if (st != PNN_OK)
        return pnn_error_prefix(PNN_ERR_FORMAT, "device %s: its system URI %s: ", dev->info.uri, dev->info.system_uri);
    PNN_TRY(check_device_dims(&dev->info, &set));
    if (noise == PNN_TWIN_NOISE_ESTIMATE)
        return PNN_ERROR(PNN_ERR_CONFIG, "twin_noise: estimate stands for a device's input noise, and the %s "
                         "system's noise is on its output, which the twin's gradient does not depend on; leave "
                         "twin_noise out (the nominal level) or give a number", dev->info.system);
    pnn_twin *tw;
    PNN_TRY(pnn_twin_new(dev, &shg_twin_iface, sizeof(shg_twin), "an shg twin", &tw));
    shg_twin *t = tw->impl;
    t->ops = pnn_shg_ops_for(dev->be);
    t->set = set;
    t->noise = (float)(noise == PNN_TWIN_NOISE_ORACLE ? 0.0 : noise < 0 ? set.noise : noise);
    t->seed = (uint64_t)set.seed ^ 0x7477696eull; /* the twin's own draws, never the device's */
    st = pnn_shg_upload_layout(dev->be, &set, &t->bin_of);
    if (st != PNN_OK) {
        twin_free(tw);
        return st;
    }
    *out = tw;
    return PNN_OK;
}
