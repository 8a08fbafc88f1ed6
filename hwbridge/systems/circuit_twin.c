/* The analytic twin of the circuit system: the ideal circuit (nominal w0, Qf, alpha, kappa, no
 * drift) integrated by the same RK4 as the device, with the exact VJP of the discrete map. Taped
 * (training) forwards add output noise of the device's nominal size from the twin's own stream
 * (the device's draws stay unseen); evaluation forwards are noise-free. */
#include <stdlib.h>
#include <string.h>

#include "hwbridge/systems/circuit.h"
#include "pnn/rng.h"

typedef struct circuit_twin {
    const pnn_circuit_ops *ops; /* the backend's circuit kernels */
    pnn_circuit_settings set;
    float noise;      /* output noise of taped forwards */
    uint64_t seed;
    float *u_eval;    /* drive of untaped forwards [rows_cap, segments] */
    float *du;        /* [rows_cap, segments] */
    float *y_noise;   /* [rows_cap, y_dim] */
    int64_t rows_cap; /* rows the scratch holds */
    /* per slot, one buffer: the tape, then the drive [cap, segments], then the input [cap, x_dim] */
    float *slot[PNN_TWIN_MAX_SLOTS];
    int64_t slot_cap[PNN_TWIN_MAX_SLOTS];   /* rows each slot can hold */
    int64_t slot_rows[PNN_TWIN_MAX_SLOTS];  /* rows of the saved tape; 0 = none */
} circuit_twin;

static void twin_free(pnn_twin *tw) {
    circuit_twin *t = tw->impl;
    const pnn_backend *be = tw->be;
    float *bufs[] = {t->u_eval, t->du, t->y_noise};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        if (bufs[i]) be->iface->release(be->ctx, bufs[i]);
    for (int i = 0; i < PNN_TWIN_MAX_SLOTS; i++)
        if (t->slot[i]) be->iface->release(be->ctx, t->slot[i]);
    free(t);
    free(tw);
}

/* floats of a slot holding `rows` rows: tape, drive, input */
static size_t slot_floats(const circuit_twin *t, int64_t rows) {
    pnn_circuit_params p = t->set.p;
    p.batch = rows;
    return t->ops->tape_floats(&p) + (size_t)rows * (size_t)(p.segments + p.x_dim);
}

/* Grows the scratch to `rows` rows and, for slot >= 0, that slot's buffer. */
static pnn_status twin_reserve(pnn_twin *tw, int64_t rows, int slot) {
    circuit_twin *t = tw->impl;
    const pnn_backend *be = tw->be;
    const pnn_circuit_params *p = &t->set.p;
    /* refuse what no memory holds before multiplying it out */
    double bytes = (double)rows * (2.0 * (double)p->segments * (double)p->steps + (double)p->segments +
                                   (double)p->x_dim) * sizeof(float);
    if (bytes > 0x1p50)
        return PNN_ERROR(PNN_ERR_NOMEM, "circuit twin: a batch of %lld rows of %lld segments x %lld steps would need "
                         "%.3g GiB of tape; use smaller (micro-)batches or fewer steps", (long long)rows,
                         (long long)p->segments, (long long)p->steps, bytes / 0x1p30);
    if (rows > t->rows_cap) {
        float **bufs[] = {&t->u_eval, &t->du, &t->y_noise};
        size_t sizes[] = {(size_t)p->segments, (size_t)p->segments, (size_t)p->y_dim};
        t->rows_cap = rows;
        for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) {
            if (*bufs[i]) be->iface->release(be->ctx, *bufs[i]);
            *bufs[i] = be->iface->alloc(be->ctx, (size_t)rows * sizes[i] * sizeof(float));
            if (!*bufs[i]) t->rows_cap = 0;
        }
        if (!t->rows_cap)
            return PNN_ERROR(PNN_ERR_NOMEM, "circuit twin: out of memory for a batch of %lld rows", (long long)rows);
    }
    if (slot >= 0 && rows > t->slot_cap[slot]) {
        if (t->slot[slot]) be->iface->release(be->ctx, t->slot[slot]);
        t->slot[slot] = be->iface->alloc(be->ctx, slot_floats(t, rows) * sizeof(float));
        t->slot_cap[slot] = t->slot[slot] ? rows : 0;
        if (!t->slot[slot])
            return PNN_ERROR(PNN_ERR_NOMEM, "circuit twin: out of memory for a tape of %lld rows", (long long)rows);
    }
    return PNN_OK;
}

/* the drive and the input saved in a slot, after its tape */
static float *slot_drive(const circuit_twin *t, int slot) {
    pnn_circuit_params p = t->set.p;
    p.batch = t->slot_cap[slot];
    return t->slot[slot] + t->ops->tape_floats(&p);
}

static float *slot_input(const circuit_twin *t, int slot) {
    return slot_drive(t, slot) + t->slot_cap[slot] * t->set.p.segments;
}

static pnn_status check_slot(int slot, int allow_none) {
    if ((allow_none && slot == -1) || (slot >= 0 && slot < PNN_TWIN_MAX_SLOTS)) return PNN_OK;
    return PNN_ERROR(PNN_ERR_INVALID, "circuit twin: tape slot %d out of range [0, %d)", slot, PNN_TWIN_MAX_SLOTS);
}

static pnn_status twin_forward(pnn_twin *tw, const pnn_tensor *x, const float *theta, pnn_tensor *y,
                               int tape_slot, const float *input_noise) {
    circuit_twin *t = tw->impl;
    const pnn_backend *be = tw->be;
    int64_t rows = pnn_tensor_rows(x), xd = t->set.p.x_dim, yd = t->set.p.y_dim;
    if (input_noise)
        return PNN_ERROR(PNN_ERR_UNSUPPORTED, "circuit twin: the circuit's noise is on its output; there is no input "
                         "noise to replay (twin_noise: oracle does not apply)");
    PNN_TRY(check_slot(tape_slot, 1));
    PNN_TRY(pnn_tensor_check2(x, -1, xd, "circuit twin input"));
    PNN_TRY(pnn_tensor_check2(y, rows, yd, "circuit twin output"));
    PNN_TRY(twin_reserve(tw, rows, tape_slot));
    pnn_circuit_params p = t->set.p;
    p.batch = rows;
    int taped = tape_slot >= 0;
    float *u = taped ? slot_drive(t, tape_slot) : t->u_eval;
    t->ops->drive(be->ctx, &p, x->data, theta, u);
    t->ops->forward(be->ctx, &p, u, y->data, taped ? t->slot[tape_slot] : NULL);
    if (!taped) return PNN_OK;
    be->iface->copy(be->ctx, slot_input(t, tape_slot), x->data, (size_t)(rows * xd) * sizeof(float));
    if (t->noise > 0) {
        be->iface->rng_normal(be->ctx, t->seed, pnn_rng_stream("twin.circuit.noise", tw->calls), 0, rows * yd,
                              t->y_noise);
        be->iface->axpby(be->ctx, rows * yd, t->noise, t->y_noise, 1.0f, y->data);
    }
    tw->calls++;
    t->slot_rows[tape_slot] = rows;
    return PNN_OK;
}

/* theta must be the taped forward's (the clip of the drive depends on it). */
static pnn_status twin_vjp(pnn_twin *tw, const float *theta, const pnn_tensor *dy, pnn_tensor *dx,
                           float *dtheta, int tape_slot) {
    circuit_twin *t = tw->impl;
    const pnn_backend *be = tw->be;
    int64_t rows = pnn_tensor_rows(dy);
    PNN_TRY(check_slot(tape_slot, 0));
    if (t->slot_rows[tape_slot] != rows)
        return PNN_ERROR(PNN_ERR_INVALID, "circuit twin: vjp of %lld rows without a matching taped forward in slot %d "
                         "(%lld rows)", (long long)rows, tape_slot, (long long)t->slot_rows[tape_slot]);
    PNN_TRY(pnn_tensor_check2(dy, rows, t->set.p.y_dim, "circuit twin output gradient"));
    if (dx) PNN_TRY(pnn_tensor_check2(dx, rows, t->set.p.x_dim, "circuit twin input gradient"));
    pnn_circuit_params p = t->set.p;
    p.batch = rows;
    t->ops->vjp(be->ctx, &p, slot_drive(t, tape_slot), t->slot[tape_slot], dy->data, t->du);
    t->ops->drive_backward(be->ctx, &p, slot_input(t, tape_slot), theta, t->du, dx ? dx->data : NULL, dtheta);
    return PNN_OK;
}

/* The controlled drive values start uniform over the rails, U(-1, 1). */
static pnn_status twin_init_theta(pnn_twin *tw, uint64_t seed, uint64_t stream, float *theta) {
    int64_t total = tw->info.theta_dim;
    float *host = malloc((size_t)total * sizeof(float));
    if (!host) return PNN_ERROR(PNN_ERR_NOMEM, "out of memory initialising circuit controls");
    pnn_rng_uniform(seed, stream, 0, total, host);
    for (int64_t i = 0; i < total; i++) host[i] = 2.0f * host[i] - 1.0f;
    tw->be->iface->from_host(tw->be->ctx, theta, host, (size_t)total * sizeof(float));
    free(host);
    return PNN_OK;
}

static const pnn_twin_i circuit_twin_iface = {
    .forward = twin_forward, .vjp = twin_vjp, .init_theta = twin_init_theta, .free = twin_free};

/* A circuit has x_dim and y_dim as its URI says and theta_dim = segments - x_dim: a device that
 * reports anything else (a crafted server or recording header) is refused before any buffer is
 * sized from its dims. */
static pnn_status check_device_dims(const pnn_device_info *info, const pnn_uri *u, const pnn_circuit_settings *set) {
    if (strcmp(u->system, "circuit"))
        return PNN_ERROR(PNN_ERR_FORMAT, "device %s reports system circuit but its system URI %s is a %s; check the "
                         "device or recording", info->uri, info->system_uri, u->system);
    int64_t theta_dim = set->p.segments - set->p.x_dim;
    if (info->x_dim != set->p.x_dim || info->y_dim != set->p.y_dim || info->theta_dim != theta_dim)
        return PNN_ERROR(PNN_ERR_FORMAT, "device %s reports x_dim %lld, y_dim %lld, theta_dim %lld, which is not a "
                         "circuit system as its URI %s describes it (x_dim %lld, y_dim %lld, theta_dim = segments - "
                         "x_dim = %lld); check the device or recording", info->uri, (long long)info->x_dim,
                         (long long)info->y_dim, (long long)info->theta_dim,
                         info->system_uri[0] ? info->system_uri : info->uri, (long long)set->p.x_dim,
                         (long long)set->p.y_dim, (long long)theta_dim);
    return PNN_OK;
}

pnn_status pnn_circuit_twin_create(pnn_device *dev, double noise, pnn_twin **out) {
    pnn_uri u;
    pnn_circuit_settings set;
    *out = NULL;
    PNN_TRY(pnn_uri_parse(dev->info.system_uri[0] ? dev->info.system_uri : dev->info.uri, &u));
    PNN_TRY(pnn_circuit_read_settings(&u, &set));
    PNN_TRY(check_device_dims(&dev->info, &u, &set));
    if (noise == PNN_TWIN_NOISE_ESTIMATE)
        return PNN_ERROR(PNN_ERR_CONFIG, "twin_noise: estimate stands for a device's input noise, and the %s "
                         "system's noise is on its output, which the twin's gradient does not depend on; leave "
                         "twin_noise out (the nominal level) or give a number", dev->info.system);
    pnn_twin *tw;
    PNN_TRY(pnn_twin_new(dev, &circuit_twin_iface, sizeof(circuit_twin), "a circuit twin", &tw));
    circuit_twin *t = tw->impl;
    t->ops = pnn_circuit_ops_for(dev->be);
    t->set = set;
    t->noise = (float)(noise == PNN_TWIN_NOISE_ORACLE ? 0.0 : noise < 0 ? set.noise : noise);
    t->seed = (uint64_t)set.seed ^ 0x7477696eull; /* the twin's own draws, never the device's */
    *out = tw;
    return PNN_OK;
}
