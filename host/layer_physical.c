/* The physical layer: forward on the device (or the twin), backward through the twin's VJP at
 * the same inputs and controls. This is where physics-aware training happens. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pnn/clock.h"
#include "pnn/config.h"
#include "pnn/layer.h"
#include "pnn/rng.h"
#include "pnn/twin.h"

/* A micro-batch between its forward_begin and its backward. */
typedef struct phys_slot {
    pnn_tensor x_full;   /* input padded to x_dim (when the input is narrower); read by the device */
    pnn_tensor y_dev;    /* full device output */
    pnn_ticket ticket;
    int in_flight;       /* a device request is out */
    pnn_device *dev;     /* the copy it went to */
    double waited_s;     /* forward_end's time blocked on the device */
    int twin_done;       /* the twin's taped forward ran in forward_begin */
} phys_slot;

typedef struct phys_layer {
    pnn_device *dev;          /* the device: copy 0, which evaluation uses */
    /* device copies (variation-aware training): PAT forwards go to copies[rr % n_copies] in turn;
     * rr counts them and is checkpointed with the call counters (pnn_network_counters) */
    pnn_device *copies[PNN_LAYER_MAX_COPIES];
    int n_copies;
    uint64_t rr;
    pnn_twin *twin;           /* NULL with twin: none (the device alone: evaluation and model-free methods) */
    uint64_t no_twin_calls;   /* twin: none: stands in for the twin's call counter (always 0) */
    int oracle;               /* twin_noise: oracle (the twin is fed the simulator's own draws) */
    int estimate;             /* twin_noise: estimate (the noise estimated from the device's output) */
    pnn_tensor est_r, est_g, est_y2, est_n2; /* estimate: residual, gradient, probe output and input */
    float *est_dtheta, *est_dot;             /* estimate: a dtheta nobody reads; 2 floats of dot products */
    float *theta, *dtheta;    /* theta_dim floats each; the parameters are views into them */
    int64_t out_start, out_count;
    phys_slot slots[PNN_LAYER_MAX_SLOTS];
    pnn_tensor y_twin, noise; /* scratch: full twin output; the device's input noise (oracle) */
    pnn_tensor dy_full, dx_full;
} phys_layer;

static const pnn_layer_i phys_iface;

/* a theta_range this wide means "no range" (the oscillator's is +-1e30) */
#define PNN_THETA_UNBOUNDED 1e29f

static pnn_status phys_out_shape(const pnn_layer *l, int64_t rows, int64_t cols, int64_t *out_rows,
                                 int64_t *out_cols) {
    const phys_layer *p = l->impl;
    if (cols > p->dev->info.x_dim)
        return PNN_ERROR(PNN_ERR_INVALID,
                         "layer '%s' (physical): input has %lld features but the device %s takes at "
                         "most %lld; add a slice or linear layer before it, or use a larger system",
                         l->name, (long long)cols, p->dev->info.uri, (long long)p->dev->info.x_dim);
    *out_rows = rows;
    *out_cols = p->out_count;
    return PNN_OK;
}

/* Returns the device-width input: x itself when it already has x_dim columns, else the
 * slot's padded copy. */
static pnn_status phys_full_input(pnn_layer *l, const pnn_tensor *x, int slot, const pnn_tensor **full) {
    phys_layer *p = l->impl;
    int64_t rows = pnn_tensor_rows(x), cols = pnn_tensor_cols(x), xd = p->dev->info.x_dim;
    if (cols == xd) {
        *full = x;
        return PNN_OK;
    }
    pnn_tensor *xf = &p->slots[slot].x_full;
    PNN_TRY(pnn_tensor_reshape2(xf, rows, xd));
    pnn_tensor_zero(xf);
    l->be->iface->copy2d(l->be->ctx, xf->data, xd, x->data, cols, cols, rows);
    *full = xf;
    return PNN_OK;
}

static pnn_status check_slot(const pnn_layer *l, int slot) {
    if (slot >= 0 && slot < PNN_LAYER_MAX_SLOTS) return PNN_OK;
    return PNN_ERROR(PNN_ERR_INVALID, "layer '%s': slot %d out of range [0, %d)", l->name, slot,
                     PNN_LAYER_MAX_SLOTS);
}

static int uses_device(pnn_pass pass) { return pass == PNN_PASS_TRAIN_PAT || pass == PNN_PASS_EVAL_DEVICE; }

/* The twin's forward at the slot's input; taped in training. In the oracle setting the input
 * noise is the one the simulator drew in the calls that served this slot. */
static pnn_status twin_forward(pnn_layer *l, const pnn_tensor *xf, pnn_pass pass, int slot, uint64_t first_call) {
    phys_layer *p = l->impl;
    pnn_device *dev = p->slots[slot].dev ? p->slots[slot].dev : p->dev;
    int64_t rows = pnn_tensor_rows(xf), yd = p->dev->info.y_dim, xd = p->dev->info.x_dim;
    PNN_TRY(pnn_tensor_reshape2(&p->y_twin, rows, yd));
    const float *noise = NULL;
    if (p->oracle && pass == PNN_PASS_TRAIN_PAT) {
        PNN_TRY(pnn_tensor_reshape2(&p->noise, rows, xd));
        int64_t mb = dev->info.max_batch;
        for (int64_t r0 = 0, call = (int64_t)first_call; r0 < rows; r0 += mb, call++)
            PNN_TRY(dev->iface->input_noise(dev, (uint64_t)call, (rows - r0 < mb ? rows - r0 : mb) * xd,
                                               p->noise.data + r0 * xd));
        noise = p->noise.data;
    }
    return p->twin->iface->forward(p->twin, xf, p->theta, &p->y_twin, pnn_pass_is_train(pass) ? slot : -1, noise);
}

/* twin_noise: estimate (twin.h): the input noise the device had, estimated from its output y_dev;
 * leaves the slot's tape at x + n. Each step: r = f(x + n) - y_dev, g = J^T r (the VJP of the
 * taped forward), Jg by a finite difference, n -= (|g|^2 / |Jg|^2) g (the exact minimiser of the
 * linearised |r|^2 along g). Two steps, then the final taped forward. */
#ifndef PNN_ESTIMATE_STEPS /* (a build may set it, to measure another count) */
#define PNN_ESTIMATE_STEPS 2
#endif
static pnn_status estimate_noise(pnn_layer *l, const pnn_tensor *xf, const pnn_tensor *y_dev, int slot) {
    phys_layer *p = l->impl;
    const pnn_backend_i *ops = l->be->iface;
    void *ctx = l->be->ctx;
    int64_t rows = pnn_tensor_rows(xf), xd = p->dev->info.x_dim, yd = p->dev->info.y_dim;
    pnn_twin *tw = p->twin;
    PNN_TRY(pnn_tensor_reshape2(&p->noise, rows, xd));
    PNN_TRY(pnn_tensor_reshape2(&p->y_twin, rows, yd));
    PNN_TRY(pnn_tensor_reshape2(&p->est_r, rows, yd));
    PNN_TRY(pnn_tensor_reshape2(&p->est_y2, rows, yd));
    PNN_TRY(pnn_tensor_reshape2(&p->est_g, rows, xd));
    PNN_TRY(pnn_tensor_reshape2(&p->est_n2, rows, xd));
    pnn_tensor_zero(&p->noise);
    for (int k = 0; k < PNN_ESTIMATE_STEPS; k++) {
        PNN_TRY(tw->iface->forward(tw, xf, p->theta, &p->y_twin, slot, p->noise.data));
        ops->copy(ctx, p->est_r.data, p->y_twin.data, (size_t)(rows * yd) * sizeof(float));
        ops->axpby(ctx, rows * yd, -1.0f, y_dev->data, 1.0f, p->est_r.data);
        PNN_TRY(tw->iface->vjp(tw, p->theta, &p->est_r, &p->est_g, p->est_dtheta, slot));
        float dots[2];
        ops->dot(ctx, rows * xd, p->est_g.data, p->est_g.data, p->est_dot);
        ops->to_host(ctx, dots, p->est_dot, sizeof(float));
        double gg = dots[0];
        if (!(gg > 0) || !isfinite(gg)) break; /* nothing left to explain, or a bad residual */
        /* Jg ~ (f(x + n + eps g) - f(x + n)) / eps, |eps g| = 1e-3 per element on average */
        float eps = (float)(1e-3 * sqrt((double)(rows * xd) / gg));
        ops->copy(ctx, p->est_n2.data, p->noise.data, (size_t)(rows * xd) * sizeof(float));
        ops->axpby(ctx, rows * xd, eps, p->est_g.data, 1.0f, p->est_n2.data);
        PNN_TRY(tw->iface->forward(tw, xf, p->theta, &p->est_y2, -1, p->est_n2.data));
        ops->axpby(ctx, rows * yd, -1.0f, p->y_twin.data, 1.0f, p->est_y2.data);
        ops->dot(ctx, rows * yd, p->est_y2.data, p->est_y2.data, p->est_dot);
        ops->to_host(ctx, dots + 1, p->est_dot, sizeof(float));
        double jg2 = (double)dots[1] / ((double)eps * eps);
        if (!(jg2 > 0) || !isfinite(jg2)) break;
        ops->axpby(ctx, rows * xd, (float)(-gg / jg2), p->est_g.data, 1.0f, p->noise.data);
    }
    return tw->iface->forward(tw, xf, p->theta, &p->y_twin, slot, p->noise.data);
}

static pnn_status phys_forward_begin(pnn_layer *l, const pnn_tensor *x, pnn_pass pass, int slot) {
    phys_layer *p = l->impl;
    PNN_TRY(check_slot(l, slot));
    phys_slot *s = &p->slots[slot];
    if (s->in_flight)
        return PNN_ERROR(PNN_ERR_INVALID, "layer '%s': slot %d already has a forward in flight", l->name, slot);
    s->twin_done = 0;
    if (!p->twin && pass != PNN_PASS_EVAL_DEVICE)
        return PNN_ERROR(PNN_ERR_UNSUPPORTED, "layer '%s' has no twin (twin: none) and runs on its device alone, but "
                         "this pass needs one (%s); train it with a method that needs no twin (spsa, phyll) or give "
                         "it a twin", l->name, pass == PNN_PASS_TRAIN_PAT ? "a PAT forward tapes the twin"
                                                                         : "it runs the twin");
    if (!uses_device(pass)) return PNN_OK; /* the twin runs in forward_end */
    const pnn_tensor *xf;
    PNN_TRY(phys_full_input(l, x, slot, &xf));
    PNN_TRY(pnn_tensor_reshape2(&s->y_dev, pnn_tensor_rows(x), p->dev->info.y_dim));
    pnn_request req = {xf, p->theta, &s->y_dev};
    s->dev = pass == PNN_PASS_TRAIN_PAT ? p->copies[p->rr % (uint64_t)p->n_copies] : p->dev;
    pnn_status st = pnn_device_submit(s->dev, &req, &s->ticket);
    if (st != PNN_OK) return pnn_error_prefix(st, "layer '%s': ", l->name);
    s->in_flight = 1;
    if (pass == PNN_PASS_TRAIN_PAT) p->rr++;
    if (pass == PNN_PASS_TRAIN_PAT && !p->oracle && !p->estimate) {
        /* meanwhile, the twin's taped forward at the same input and controls */
        PNN_TRY(twin_forward(l, xf, pass, slot, 0));
        s->twin_done = 1;
    }
    return PNN_OK;
}

static int phys_forward_ready(pnn_layer *l, int slot) {
    phys_layer *p = l->impl;
    phys_slot *s = &p->slots[slot];
    return !s->in_flight || pnn_device_ready(s->dev, s->ticket);
}

static pnn_status phys_forward_end(pnn_layer *l, const pnn_tensor *x, pnn_tensor *y, pnn_pass pass, int slot) {
    phys_layer *p = l->impl;
    PNN_TRY(check_slot(l, slot));
    phys_slot *s = &p->slots[slot];
    s->waited_s = 0;
    int64_t rows = pnn_tensor_rows(x), yd = p->dev->info.y_dim;
    const pnn_tensor *source = &p->y_twin;
    if (uses_device(pass)) {
        if (!s->in_flight)
            return PNN_ERROR(PNN_ERR_INVALID, "layer '%s': forward_end of slot %d without a forward_begin",
                             l->name, slot);
        uint64_t first_call = 0;
        double t0 = pnn_now_s();
        pnn_status st = pnn_device_wait(s->dev, s->ticket, -1, &first_call);
        s->waited_s = pnn_now_s() - t0;
        s->in_flight = 0;
        if (st != PNN_OK) return pnn_error_prefix(st, "layer '%s': ", l->name);
        source = &s->y_dev;
        if (pass == PNN_PASS_TRAIN_PAT && !s->twin_done) {
            const pnn_tensor *xf;
            PNN_TRY(phys_full_input(l, x, slot, &xf));
            if (p->estimate) PNN_TRY(estimate_noise(l, xf, &s->y_dev, slot));
            else PNN_TRY(twin_forward(l, xf, pass, slot, first_call));
        }
        if (pass == PNN_PASS_TRAIN_PAT && p->twin && p->twin->iface->observe) {
            /* a learned twin keeps what the device answered, to refine itself on */
            const pnn_tensor *xf;
            PNN_TRY(phys_full_input(l, x, slot, &xf));
            PNN_TRY(p->twin->iface->observe(p->twin, xf, p->theta, &s->y_dev));
        }
    } else {
        const pnn_tensor *xf;
        if (!p->twin)
            return PNN_ERROR(PNN_ERR_UNSUPPORTED, "layer '%s' has no twin (twin: none): it runs on its device alone",
                             l->name);
        PNN_TRY(phys_full_input(l, x, slot, &xf));
        PNN_TRY(twin_forward(l, xf, pass, slot, 0));
    }
    l->be->iface->copy2d(l->be->ctx, y->data, p->out_count, source->data + p->out_start, yd, p->out_count, rows);
    return PNN_OK;
}

static pnn_status phys_forward(pnn_layer *l, const pnn_tensor *x, pnn_tensor *y, pnn_pass pass, int slot) {
    PNN_TRY(phys_forward_begin(l, x, pass, slot));
    return phys_forward_end(l, x, y, pass, slot);
}

static double phys_forward_waited(pnn_layer *l, int slot) {
    phys_layer *p = l->impl;
    return slot >= 0 && slot < PNN_LAYER_MAX_SLOTS ? p->slots[slot].waited_s : 0;
}

static void phys_forward_abandon(pnn_layer *l) {
    phys_layer *p = l->impl;
    for (int i = 0; i < PNN_LAYER_MAX_SLOTS; i++)
        if (p->slots[i].in_flight) {
            pnn_device_wait(p->slots[i].dev, p->slots[i].ticket, -1, NULL);
            p->slots[i].in_flight = 0;
        }
}

static pnn_status phys_backward(pnn_layer *l, const pnn_tensor *x, const pnn_tensor *y,
                                const pnn_tensor *dy, pnn_tensor *dx, int slot) {
    phys_layer *p = l->impl;
    int64_t rows = pnn_tensor_rows(dy), yd = p->dev->info.y_dim, xd = p->dev->info.x_dim;
    const pnn_tensor *dy_full = dy;
    if (p->out_count != yd) {
        PNN_TRY(pnn_tensor_reshape2(&p->dy_full, rows, yd));
        pnn_tensor_zero(&p->dy_full);
        l->be->iface->copy2d(l->be->ctx, p->dy_full.data + p->out_start, yd, dy->data, p->out_count,
                             p->out_count, rows);
        dy_full = &p->dy_full;
    }
    pnn_tensor *dx_full = NULL;
    if (dx) {
        if (pnn_tensor_cols(dx) == xd) {
            dx_full = dx;
        } else {
            PNN_TRY(pnn_tensor_reshape2(&p->dx_full, rows, xd));
            dx_full = &p->dx_full;
        }
    }
    if (!p->twin)
        return PNN_ERROR(PNN_ERR_UNSUPPORTED, "layer '%s' has no twin (twin: none), and a backward pass runs through "
                         "the twin; train it with a method that needs no twin (spsa, phyll)", l->name);
    PNN_TRY(p->twin->iface->vjp(p->twin, p->theta, dy_full, dx_full, p->dtheta, slot));
    if (dx && dx_full != dx)
        l->be->iface->copy2d(l->be->ctx, dx->data, pnn_tensor_cols(dx), dx_full->data, xd,
                             pnn_tensor_cols(dx), rows);
    return PNN_OK;
}

/* The controls stay within what the device takes (projected after every update, and after a
 * checkpoint is loaded): a shaper transmits between nothing and everything, a drive has rails,
 * and a served instrument refuses controls outside its theta_range. */
static void phys_params_changed(pnn_layer *l) {
    phys_layer *p = l->impl;
    const float *range = p->dev->info.theta_range;
    if (range[0] > -PNN_THETA_UNBOUNDED || range[1] < PNN_THETA_UNBOUNDED)
        l->be->iface->clamp(l->be->ctx, p->dev->info.theta_dim, range[0], range[1], p->theta);
    if (p->twin) pnn_twin_theta_changed(p->twin);
}

static void phys_destroy(pnn_layer *l) {
    phys_layer *p = l->impl;
    if (!p) return;
    if (p->dev) phys_forward_abandon(l);
    pnn_twin_free(p->twin);
    for (int i = 0; i < p->n_copies; i++) pnn_device_close(p->copies[i]);
    if (!p->n_copies) pnn_device_close(p->dev);
    if (p->theta) l->be->iface->release(l->be->ctx, p->theta);
    if (p->dtheta) l->be->iface->release(l->be->ctx, p->dtheta);
    if (p->est_dtheta) l->be->iface->release(l->be->ctx, p->est_dtheta);
    if (p->est_dot) l->be->iface->release(l->be->ctx, p->est_dot);
    pnn_tensor *bufs[] = {&p->y_twin, &p->noise, &p->dy_full, &p->dx_full, &p->est_r, &p->est_g, &p->est_y2, &p->est_n2};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) pnn_tensor_free(bufs[i]);
    for (int i = 0; i < PNN_LAYER_MAX_SLOTS; i++) {
        pnn_tensor_free(&p->slots[i].x_full);
        pnn_tensor_free(&p->slots[i].y_dev);
    }
    free(p);
}

static const pnn_layer_i phys_iface = {
    .kind = "physical",
    .out_shape = phys_out_shape,
    .forward = phys_forward,
    .backward = phys_backward,
    .forward_begin = phys_forward_begin,
    .forward_ready = phys_forward_ready,
    .forward_end = phys_forward_end,
    .forward_abandon = phys_forward_abandon,
    .forward_waited = phys_forward_waited,
    .params_changed = phys_params_changed,
    .destroy = phys_destroy,
};

pnn_device *pnn_layer_physical_device(const pnn_layer *l) {
    return l->iface == &phys_iface ? ((const phys_layer *)l->impl)->dev : NULL;
}

uint64_t *pnn_layer_physical_twin_calls(pnn_layer *l) {
    if (l->iface != &phys_iface) return NULL;
    phys_layer *p = l->impl;
    return p->twin ? &p->twin->calls : &p->no_twin_calls;
}

pnn_twin *pnn_layer_physical_twin(const pnn_layer *l) {
    return l->iface == &phys_iface ? ((const phys_layer *)l->impl)->twin : NULL;
}

int pnn_layer_physical_copy_counters(pnn_layer *l, uint64_t **counters, int max) {
    if (l->iface != &phys_iface) return 0;
    phys_layer *p = l->impl;
    if (p->n_copies < 2) return 0;
    int k = 0;
    if (k < max) counters[k++] = &p->rr;
    for (int i = 1; i < p->n_copies && k < max; i++) counters[k++] = &p->copies[i]->calls;
    return k;
}

pnn_device *pnn_layer_physical_copy(const pnn_layer *l, int i) {
    if (l->iface != &phys_iface) return NULL;
    const phys_layer *p = l->impl;
    return i >= 0 && i < p->n_copies ? p->copies[i] : NULL;
}

int pnn_layer_physical_n_copies(const pnn_layer *l) {
    return l->iface == &phys_iface ? ((const phys_layer *)l->impl)->n_copies : 0;
}

/* A copy must be the same system with the same interface as copy 0: only what is hidden differs. */
static pnn_status check_copy(const char *name, const pnn_device *d0, const pnn_device *d) {
    const pnn_device_info *a = &d0->info, *b = &d->info;
    int same = !strcmp(a->system, b->system) && a->x_dim == b->x_dim && a->y_dim == b->y_dim &&
               a->theta_dim == b->theta_dim && a->n_theta_parts == b->n_theta_parts &&
               !memcmp(a->theta_range, b->theta_range, sizeof a->theta_range) &&
               !memcmp(a->x_range, b->x_range, sizeof a->x_range);
    for (int i = 0; same && i < a->n_theta_parts; i++)
        same = !strcmp(a->theta_parts[i].name, b->theta_parts[i].name) &&
               a->theta_parts[i].ndim == b->theta_parts[i].ndim &&
               !memcmp(a->theta_parts[i].shape, b->theta_parts[i].shape, sizeof a->theta_parts[i].shape);
    if (same) return PNN_OK;
    return PNN_ERROR(PNN_ERR_CONFIG,
                     "layer '%s': device copy %s is not a copy of %s: %s with x_dim %lld, y_dim %lld, theta_dim %lld "
                     "against %s with %lld, %lld, %lld (copies share the controls: only their hidden differences may "
                     "differ)",
                     name, b->uri, a->uri, b->system, (long long)b->x_dim, (long long)b->y_dim,
                     (long long)b->theta_dim, a->system, (long long)a->x_dim, (long long)a->y_dim,
                     (long long)a->theta_dim);
}

/* "all", "last:K" or "first:K" of y_dim outputs -> [start, start + count) */
static pnn_status parse_outputs(const char *name, const char *spec, int64_t y_dim, int64_t *start,
                                int64_t *count) {
    long long k = 0;
    char tail;
    if (!spec || !strcmp(spec, "all")) {
        *start = 0;
        *count = y_dim;
        return PNN_OK;
    }
    int last = !strncmp(spec, "last:", 5), first = !strncmp(spec, "first:", 6);
    if ((last || first) && sscanf(spec + (last ? 5 : 6), "%lld%c", &k, &tail) == 1 && k >= 1 && k <= y_dim) {
        *start = last ? y_dim - k : 0;
        *count = k;
        return PNN_OK;
    }
    return PNN_ERROR(PNN_ERR_CONFIG,
                     "layer '%s' (physical): outputs '%s' is not valid; use all, last:K or first:K with "
                     "1 <= K <= %lld",
                     name, spec, (long long)y_dim);
}

/* Adds a parameter whose value and gradient are views into the layer's theta buffers. */
static pnn_status add_theta_param(pnn_layer *l, const pnn_theta_part *part, int64_t offset) {
    phys_layer *p = l->impl;
    pnn_param *params = realloc(l->params, (size_t)(l->n_params + 1) * sizeof *params);
    if (!params) return PNN_ERROR(PNN_ERR_NOMEM, "out of memory adding parameters to '%s'", l->name);
    l->params = params;
    pnn_param *prm = &params[l->n_params];
    memset(prm, 0, sizeof *prm);
    snprintf(prm->name, sizeof prm->name, "%s.%s", l->name, part->name);
    PNN_TRY(pnn_tensor_view(&prm->value, l->be, p->theta + offset, part->ndim, part->shape));
    PNN_TRY(pnn_tensor_view(&prm->grad, l->be, p->dtheta + offset, part->ndim, part->shape));
    l->n_params++;
    return PNN_OK;
}

pnn_status pnn_theta_default_init(pnn_device *dev, const pnn_backend *be, uint64_t seed, uint64_t stream,
                                  float *theta) {
    pnn_twin *tw = NULL;
    if (pnn_twin_create("analytic", dev, -1.0, &tw) == PNN_OK) {
        pnn_status st = tw->iface->init_theta(tw, seed, stream, theta);
        pnn_twin_free(tw);
        return st;
    }
    int64_t n = dev->info.theta_dim;
    float *h = malloc((size_t)(n ? n : 1) * sizeof(float));
    if (!h) return PNN_ERROR(PNN_ERR_NOMEM, "out of memory for the controls of device %s", dev->info.uri);
    float lo = dev->info.theta_range[0] > -1.0f ? dev->info.theta_range[0] : -1.0f;
    float hi = dev->info.theta_range[1] < 1.0f ? dev->info.theta_range[1] : 1.0f;
    pnn_rng_uniform(seed, stream, 0, n, h);
    for (int64_t i = 0; i < n; i++) h[i] = lo + (hi - lo) * h[i];
    be->iface->from_host(be->ctx, theta, h, (size_t)n * sizeof(float));
    free(h);
    pnn_error_clear();
    return PNN_OK;
}

/* twin_cfg (a config node) when given, else twin_kind (a spec string) */
static pnn_status physical(pnn_layer **out, const pnn_backend *be, const char *name, const char *const *uris,
                           int n_uris, const char *twin_kind, const pnn_cfg *twin_cfg, double twin_noise,
                           const char *outputs, uint64_t seed) {
    const char *device_uri = uris[0];
    pnn_status st = PNN_OK;
    *out = NULL;
    pnn_layer *l = calloc(1, sizeof *l);
    phys_layer *p = calloc(1, sizeof *p);
    if (!l || !p) {
        free(l);
        free(p);
        return PNN_ERROR(PNN_ERR_NOMEM, "out of memory creating layer '%s'", name);
    }
    l->iface = &phys_iface;
    l->be = be;
    l->impl = p;
    snprintf(l->name, sizeof l->name, "%s", name);
    pnn_tensor *bufs[] = {&p->y_twin, &p->noise, &p->dy_full, &p->dx_full, &p->est_r, &p->est_g, &p->est_y2, &p->est_n2};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) bufs[i]->backend = be;
    for (int i = 0; i < PNN_LAYER_MAX_SLOTS; i++) {
        p->slots[i].x_full.backend = be;
        p->slots[i].y_dev.backend = be;
    }
    if (n_uris < 1 || n_uris > PNN_LAYER_MAX_COPIES) {
        st = PNN_ERROR(PNN_ERR_CONFIG, "layer '%s': %d device copies; from 1 to %d", name, n_uris,
                       PNN_LAYER_MAX_COPIES);
        goto fail;
    }
    for (int i = 0; i < n_uris; i++) {
        st = pnn_device_open(uris[i], be, &p->copies[i]);
        if (st != PNN_OK) {
            pnn_error_prefix(st, "layer '%s': ", name);
            goto fail;
        }
        p->n_copies = i + 1;
        p->dev = p->copies[0];
        PNN_GOTO(check_copy(name, p->dev, p->copies[i]));
    }
    /* estimate: the twin models the nominal noise (in silico passes draw it) and takes the
     * estimated one from the layer in PAT; a kind that cannot take input noise refuses it */
    double tn = twin_noise;
    const char *scalar = twin_cfg ? pnn_cfg_scalar(twin_cfg) : twin_kind;
    int no_twin = scalar && !strcmp(scalar, "none");
    if (no_twin && (twin_noise == PNN_TWIN_NOISE_ORACLE || twin_noise == PNN_TWIN_NOISE_ESTIMATE || twin_noise >= 0)) {
        st = PNN_ERROR(PNN_ERR_CONFIG, "layer '%s': twin_noise is the noise its twin models, and it has none (twin: "
                       "none); drop twin_noise", name);
        goto fail;
    }
    if (!no_twin) {
        st = twin_cfg ? pnn_twin_create_cfg(twin_cfg, p->dev, tn, &p->twin)
                      : pnn_twin_create(twin_kind ? twin_kind : "analytic", p->dev, tn, &p->twin);
        if (st != PNN_OK) {
            char why[1024];
            snprintf(why, sizeof why, "%s", pnn_last_error());
            st = st == PNN_ERR_UNSUPPORTED
                     ? PNN_ERROR(st, "layer '%s': %s; a device without a twin still trains, with twin: none and a "
                                 "method that needs none (spsa, phyll)", name, why)
                     : PNN_ERROR(st, "layer '%s': %s", name, why);
            goto fail;
        }
    }
    p->oracle = twin_noise == PNN_TWIN_NOISE_ORACLE;
    p->estimate = twin_noise == PNN_TWIN_NOISE_ESTIMATE;
    for (int i = 0; p->oracle && i < p->n_copies; i++)
        if (!p->copies[i]->iface->input_noise) device_uri = p->copies[i]->info.uri;
    if (p->oracle && device_uri != uris[0]) {
        st = PNN_ERROR(PNN_ERR_CONFIG, "layer '%s': twin_noise: oracle replays the input noise a simulator drew, "
                       "which %s cannot give (a simulator with input noise can, e.g. sim:oscillator)", name,
                       device_uri);
        goto fail;
    }
    const pnn_device_info *info = &p->dev->info;
    PNN_GOTO(parse_outputs(name, outputs, info->y_dim, &p->out_start, &p->out_count));
    size_t bytes = (size_t)info->theta_dim * sizeof(float);
    p->theta = be->iface->alloc(be->ctx, bytes);
    p->dtheta = be->iface->alloc(be->ctx, bytes);
    if (!p->theta || !p->dtheta) {
        st = PNN_ERROR(PNN_ERR_NOMEM, "out of memory for the %lld controls of '%s'",
                       (long long)info->theta_dim, name);
        goto fail;
    }
    be->iface->fill(be->ctx, p->dtheta, 0.0f, info->theta_dim);
    if (p->estimate) {
        p->est_dtheta = be->iface->alloc(be->ctx, bytes ? bytes : sizeof(float));
        p->est_dot = be->iface->alloc(be->ctx, 2 * sizeof(float));
        if (!p->est_dtheta || !p->est_dot) {
            st = PNN_ERROR(PNN_ERR_NOMEM, "out of memory for the noise estimate of '%s'", name);
            goto fail;
        }
    }
    if (p->twin) PNN_GOTO(p->twin->iface->init_theta(p->twin, seed, pnn_rng_stream(name, 0), p->theta));
    else PNN_GOTO(pnn_theta_default_init(p->dev, be, seed, pnn_rng_stream(name, 0), p->theta));
    int64_t offset = 0;
    for (int i = 0; i < info->n_theta_parts; i++) {
        const pnn_theta_part *part = &info->theta_parts[i];
        PNN_GOTO(add_theta_param(l, part, offset));
        offset += part->ndim == 2 ? part->shape[0] * part->shape[1] : part->shape[0];
    }
    *out = l;
    return PNN_OK;
fail:
    pnn_layer_free(l);
    return st;
}

pnn_status pnn_layer_physical(pnn_layer **out, const pnn_backend *be, const char *name, const char *device_uri,
                              const char *twin_kind, double twin_noise, const char *outputs, uint64_t seed) {
    return physical(out, be, name, &device_uri, 1, twin_kind, NULL, twin_noise, outputs, seed);
}

pnn_status pnn_layer_physical_cfg(pnn_layer **out, const pnn_backend *be, const char *name, const char *const *uris,
                                  int n_uris, const pnn_cfg *twin, double twin_noise, const char *outputs,
                                  uint64_t seed) {
    return physical(out, be, name, uris, n_uris, NULL, twin, twin_noise, outputs, seed);
}

const pnn_tensor *pnn_layer_physical_noise_estimate(const pnn_layer *l) {
    if (!l || l->iface != &phys_iface) return NULL;
    const phys_layer *p = l->impl;
    return p->estimate ? &p->noise : NULL;
}
