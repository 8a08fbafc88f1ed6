/* The callback twin kind: a twin whose forward and VJP are functions of the host program, registered
 * by name (include/pnn/callback.h), e.g. a PyTorch module through the Python package's pnn.TorchTwin
 * (forward under autograd, the VJP by torch.autograd). `twin: callback:NAME`. Its work is on host
 * memory: with another backend this kind copies. The controls start where pnn_theta_default_init
 * puts them. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "host/twins/kind.h"
#include "pnn/callback.h"

typedef struct cb_twin {
    char name[64];
    pnn_callback_twin_spec spec;
    pnn_device *dev;     /* the device it was made for: its controls' default start */
    float *x, *y, *dy, *dx, *theta, *dtheta; /* host copies for a backend that is not host memory */
    int64_t rows_cap;
} cb_twin;

static void cb_free(pnn_twin *tw) {
    cb_twin *t = tw->impl;
    pnn_callback_release(t->name);
    free(t->x), free(t->y), free(t->dy), free(t->dx), free(t->theta), free(t->dtheta);
    free(t);
    free(tw);
}

static int on_host(const pnn_twin *tw) { return tw->be == pnn_backend_cpu(); }

static pnn_status host_buffers(pnn_twin *tw, int64_t rows) {
    cb_twin *t = tw->impl;
    if (rows <= t->rows_cap) return PNN_OK;
    size_t xd = (size_t)tw->info.x_dim, yd = (size_t)tw->info.y_dim, td = (size_t)tw->info.theta_dim + 1;
    free(t->x), free(t->y), free(t->dy), free(t->dx);
    t->x = malloc((size_t)rows * xd * sizeof(float)), t->dx = malloc((size_t)rows * xd * sizeof(float));
    t->y = malloc((size_t)rows * yd * sizeof(float)), t->dy = malloc((size_t)rows * yd * sizeof(float));
    if (!t->theta) t->theta = malloc(td * sizeof(float));
    if (!t->dtheta) t->dtheta = malloc(td * sizeof(float));
    t->rows_cap = t->x && t->dx && t->y && t->dy && t->theta && t->dtheta ? rows : 0;
    if (!t->rows_cap) return PNN_ERROR(PNN_ERR_NOMEM, "callback twin %s: out of memory for %lld rows", t->name,
                                       (long long)rows);
    return PNN_OK;
}

static pnn_status status_of(const cb_twin *t, int rc, const char *what, const char *err) {
    if (rc == PNN_CALLBACK_OK) return PNN_OK;
    return PNN_ERROR(PNN_ERR_FORMAT, "callback twin %s, %s: %s", t->name, what, err[0] ? err : "(no message)");
}

static pnn_status cb_forward(pnn_twin *tw, const pnn_tensor *x, const float *theta, pnn_tensor *y, int slot,
                             const float *input_noise) {
    cb_twin *t = tw->impl;
    const pnn_backend *be = tw->be;
    int64_t rows = pnn_tensor_rows(x), xd = tw->info.x_dim, yd = tw->info.y_dim;
    if (input_noise)
        return PNN_ERROR(PNN_ERR_UNSUPPORTED, "callback twin %s: it cannot replay the device's noise draws "
                         "(twin_noise: oracle or estimate); leave twin_noise out", t->name);
    if (slot < -1 || slot >= PNN_TWIN_MAX_SLOTS)
        return PNN_ERROR(PNN_ERR_INVALID, "callback twin %s: tape slot %d out of range", t->name, slot);
    PNN_TRY(pnn_tensor_check2(x, -1, xd, "callback twin input"));
    PNN_TRY(pnn_tensor_check2(y, rows, yd, "callback twin output"));
    const float *xh = x->data, *th = theta;
    float *yh = y->data;
    if (!on_host(tw)) {
        PNN_TRY(host_buffers(tw, rows));
        be->iface->to_host(be->ctx, t->x, x->data, (size_t)(rows * xd) * sizeof(float));
        be->iface->to_host(be->ctx, t->theta, theta, (size_t)tw->info.theta_dim * sizeof(float));
        xh = t->x, th = t->theta, yh = t->y;
    }
    char err[4096] = "";
    int rc = t->spec.forward(t->spec.user, rows, xh, th, yh, slot, err, sizeof err);
    err[sizeof err - 1] = 0;
    PNN_TRY(status_of(t, rc, "forward", err));
    if (!on_host(tw)) be->iface->from_host(be->ctx, y->data, t->y, (size_t)(rows * yd) * sizeof(float));
    if (slot >= 0) tw->calls++;
    return PNN_OK;
}

static pnn_status cb_vjp(pnn_twin *tw, const float *theta, const pnn_tensor *dy, pnn_tensor *dx, float *dtheta,
                         int slot) {
    cb_twin *t = tw->impl;
    const pnn_backend *be = tw->be;
    int64_t rows = pnn_tensor_rows(dy), xd = tw->info.x_dim, yd = tw->info.y_dim, td = tw->info.theta_dim;
    if (slot < 0 || slot >= PNN_TWIN_MAX_SLOTS)
        return PNN_ERROR(PNN_ERR_INVALID, "callback twin %s: tape slot %d out of range", t->name, slot);
    PNN_TRY(pnn_tensor_check2(dy, rows, yd, "callback twin output gradient"));
    if (dx) PNN_TRY(pnn_tensor_check2(dx, rows, xd, "callback twin input gradient"));
    char err[4096] = "";
    int rc;
    if (on_host(tw)) {
        rc = t->spec.vjp(t->spec.user, rows, theta, dy->data, dx ? dx->data : NULL, dtheta, slot, err, sizeof err);
    } else {
        PNN_TRY(host_buffers(tw, rows));
        be->iface->to_host(be->ctx, t->dy, dy->data, (size_t)(rows * yd) * sizeof(float));
        be->iface->to_host(be->ctx, t->theta, theta, (size_t)td * sizeof(float));
        be->iface->to_host(be->ctx, t->dtheta, dtheta, (size_t)td * sizeof(float));
        rc = t->spec.vjp(t->spec.user, rows, t->theta, t->dy, dx ? t->dx : NULL, t->dtheta, slot, err, sizeof err);
        if (rc == PNN_CALLBACK_OK) {
            if (dx) be->iface->from_host(be->ctx, dx->data, t->dx, (size_t)(rows * xd) * sizeof(float));
            be->iface->from_host(be->ctx, dtheta, t->dtheta, (size_t)td * sizeof(float));
        }
    }
    err[sizeof err - 1] = 0;
    return status_of(t, rc, "vjp", err);
}

static pnn_status cb_init_theta(pnn_twin *tw, uint64_t seed, uint64_t stream, float *theta) {
    cb_twin *t = tw->impl;
    return pnn_theta_default_init(t->dev, tw->be, seed, stream, theta);
}

static const pnn_twin_i cb_iface = {
    .forward = cb_forward, .vjp = cb_vjp, .init_theta = cb_init_theta, .free = cb_free};

static pnn_status callback_create(const char *arg, const pnn_cfg *opts, pnn_device *dev, double noise,
                                  pnn_twin **out) {
    static const char *const keys[] = {"kind", "name", NULL};
    const char *name = arg;
    *out = NULL;
    if (opts) {
        PNN_TRY(pnn_cfg_check_keys(opts, keys, "twin (callback)"));
        PNN_TRY(pnn_cfg_str(opts, "name", 0, arg, &name));
    }
    if (!name[0])
        return PNN_ERROR(PNN_ERR_CONFIG, "twin kind 'callback' needs the name it was registered under: twin: "
                         "callback:NAME (or {kind: callback, name: NAME})");
    if (noise != -1.0 && noise != 0.0)
        return PNN_ERROR(PNN_ERR_CONFIG, "twin callback:%s: twin_noise is for pnn's own twins; a callback twin "
                         "models its noise itself (leave twin_noise out)", name);
    pnn_callback_twin_spec spec;
    PNN_TRY(pnn_callback_twin_acquire(name, &spec));
    if (spec.x_dim != dev->info.x_dim || spec.y_dim != dev->info.y_dim || spec.theta_dim != dev->info.theta_dim) {
        pnn_callback_release(name);
        return PNN_ERROR(PNN_ERR_CONFIG, "callback twin %s has x_dim %lld, y_dim %lld, theta_dim %lld, and device %s "
                         "has %lld, %lld, %lld; register the twin with the device's dims", name,
                         (long long)spec.x_dim, (long long)spec.y_dim, (long long)spec.theta_dim, dev->info.uri,
                         (long long)dev->info.x_dim, (long long)dev->info.y_dim, (long long)dev->info.theta_dim);
    }
    pnn_twin *tw;
    pnn_status st = pnn_twin_new(dev, &cb_iface, sizeof(cb_twin), "a callback twin", &tw);
    if (st != PNN_OK) {
        pnn_callback_release(name);
        return st;
    }
    cb_twin *t = tw->impl;
    snprintf(t->name, sizeof t->name, "%s", name);
    t->spec = spec;
    t->dev = dev;
    *out = tw;
    return PNN_OK;
}

const pnn_twin_kind pnn_twin_kind_callback = {
    .name = "callback",
    .summary = "functions of the host program registered by name (a PyTorch module from Python): callback:NAME",
    .takes_name = 1,
    .create = callback_create,
};
