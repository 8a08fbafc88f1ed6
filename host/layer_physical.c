/* The physical layer: forward on the device (or the twin), backward through the twin's VJP at
 * the same inputs and controls. This is where physics-aware training happens. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pnn/layer.h"
#include "pnn/rng.h"
#include "pnn/twin.h"

typedef struct phys_layer {
    pnn_device *dev;
    pnn_twin *twin;
    float *theta, *dtheta;    /* theta_dim floats each; the parameters are views into them */
    int64_t out_start, out_count;
    pnn_tensor x_full;        /* input padded to x_dim (when the input is narrower) */
    pnn_tensor y_dev, y_twin; /* full device and twin outputs */
    pnn_tensor dy_full, dx_full;
} phys_layer;

static const pnn_layer_i phys_iface;

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

/* Returns the device-width input: x itself when it already has x_dim columns. */
static pnn_status phys_full_input(pnn_layer *l, const pnn_tensor *x, const pnn_tensor **full) {
    phys_layer *p = l->impl;
    int64_t rows = pnn_tensor_rows(x), cols = pnn_tensor_cols(x), xd = p->dev->info.x_dim;
    if (cols == xd) {
        *full = x;
        return PNN_OK;
    }
    PNN_TRY(pnn_tensor_reshape2(&p->x_full, rows, xd));
    pnn_tensor_zero(&p->x_full);
    l->be->iface->copy2d(l->be->ctx, p->x_full.data, xd, x->data, cols, cols, rows);
    *full = &p->x_full;
    return PNN_OK;
}

static pnn_status phys_forward(pnn_layer *l, const pnn_tensor *x, pnn_tensor *y, pnn_pass pass) {
    phys_layer *p = l->impl;
    const pnn_tensor *xf;
    int64_t rows = pnn_tensor_rows(x), yd = p->dev->info.y_dim;
    PNN_TRY(phys_full_input(l, x, &xf));
    const pnn_tensor *source = NULL;
    if (pass == PNN_PASS_TRAIN_PAT || pass == PNN_PASS_EVAL_DEVICE) {
        PNN_TRY(pnn_tensor_reshape2(&p->y_dev, rows, yd));
        pnn_status st = pnn_device_forward(p->dev, xf, p->theta, &p->y_dev);
        if (st != PNN_OK) return pnn_error_prefix(st, "layer '%s': ", l->name);
        source = &p->y_dev;
    }
    if (pass != PNN_PASS_EVAL_DEVICE) {
        PNN_TRY(pnn_tensor_reshape2(&p->y_twin, rows, yd));
        PNN_TRY(p->twin->iface->forward(p->twin, xf, p->theta, &p->y_twin, pnn_pass_is_train(pass)));
        if (pass != PNN_PASS_TRAIN_PAT) source = &p->y_twin;
    }
    l->be->iface->copy2d(l->be->ctx, y->data, p->out_count, source->data + p->out_start, yd,
                         p->out_count, rows);
    return PNN_OK;
}

static pnn_status phys_backward(pnn_layer *l, const pnn_tensor *x, const pnn_tensor *y,
                                const pnn_tensor *dy, pnn_tensor *dx) {
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
    PNN_TRY(p->twin->iface->vjp(p->twin, p->theta, dy_full, dx_full, p->dtheta));
    if (dx && dx_full != dx)
        l->be->iface->copy2d(l->be->ctx, dx->data, pnn_tensor_cols(dx), dx_full->data, xd,
                             pnn_tensor_cols(dx), rows);
    return PNN_OK;
}

static void phys_destroy(pnn_layer *l) {
    phys_layer *p = l->impl;
    if (!p) return;
    pnn_twin_free(p->twin);
    pnn_device_close(p->dev);
    if (p->theta) l->be->iface->release(l->be->ctx, p->theta);
    if (p->dtheta) l->be->iface->release(l->be->ctx, p->dtheta);
    pnn_tensor *bufs[] = {&p->x_full, &p->y_dev, &p->y_twin, &p->dy_full, &p->dx_full};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) pnn_tensor_free(bufs[i]);
    free(p);
}

static const pnn_layer_i phys_iface = {
    .kind = "physical",
    .out_shape = phys_out_shape,
    .forward = phys_forward,
    .backward = phys_backward,
    .destroy = phys_destroy,
};

pnn_device *pnn_layer_physical_device(const pnn_layer *l) {
    return l->iface == &phys_iface ? ((const phys_layer *)l->impl)->dev : NULL;
}

pnn_twin *pnn_layer_physical_twin(const pnn_layer *l) {
    return l->iface == &phys_iface ? ((const phys_layer *)l->impl)->twin : NULL;
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

pnn_status pnn_layer_physical(pnn_layer **out, const pnn_backend *be, const char *name,
                              const char *device_uri, const char *twin_kind, double twin_noise,
                              const char *outputs, uint64_t seed) {
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
    pnn_tensor *bufs[] = {&p->x_full, &p->y_dev, &p->y_twin, &p->dy_full, &p->dx_full};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) bufs[i]->backend = be;
    st = pnn_device_open(device_uri, be, &p->dev);
    if (st != PNN_OK) {
        pnn_error_prefix(st, "layer '%s': ", name);
        goto fail;
    }
    PNN_GOTO(pnn_twin_create(twin_kind ? twin_kind : "analytic", p->dev, twin_noise, &p->twin));
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
    PNN_GOTO(p->twin->iface->init_theta(p->twin, seed, pnn_rng_stream(name, 0), p->theta));
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
