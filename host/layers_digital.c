/* The digital layers: linear, activation, scale and the reshaping layers (patchify,
 * concat_rows, pad, slice). All compute goes through the backend table, so the same code runs
 * on every backend; only initial parameter values are made on the host. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pnn/layer.h"
#include "pnn/rng.h"

/* ---- shared plumbing ---- */

/* Allocates a layer of the given kind with a zeroed impl of impl_bytes. */
static pnn_status layer_new(const pnn_backend *be, const char *name, const pnn_layer_i *iface,
                            size_t impl_bytes, pnn_layer **out) {
    *out = NULL;
    if (!name || !*name || strlen(name) >= sizeof ((pnn_layer *)0)->name)
        return PNN_ERROR(PNN_ERR_INVALID, "a %s layer needs a name of 1 to %zu characters, got '%s'",
                         iface->kind, sizeof ((pnn_layer *)0)->name - 1, name ? name : "");
    pnn_layer *l = calloc(1, sizeof *l);
    void *impl = calloc(1, impl_bytes);
    if (!l || !impl) {
        free(l);
        free(impl);
        return PNN_ERROR(PNN_ERR_NOMEM, "out of memory creating layer '%s'", name);
    }
    l->iface = iface;
    l->be = be;
    l->impl = impl;
    snprintf(l->name, sizeof l->name, "%s", name);
    *out = l;
    return PNN_OK;
}

static void impl_free(pnn_layer *l) { free(l->impl); }

/* An error about layer l, prefixed "layer '<name>' (<kind>): ". */
__attribute__((format(printf, 3, 4))) static pnn_status layer_error(const pnn_layer *l, pnn_status s,
                                                                    const char *fmt, ...) {
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return PNN_ERROR(s, "layer '%s' (%s): %s", l->name, l->iface->kind, msg);
}

/* The ops below do not validate, so forward and backward check once here that y has the shape
 * out_shape gives for x, and (backward) that dy matches y and dx, when given, matches x. */
static pnn_status check_io(const pnn_layer *l, const pnn_tensor *x, const pnn_tensor *y,
                           const pnn_tensor *dy, const pnn_tensor *dx) {
    int64_t rows, cols;
    char what[128];
    PNN_TRY(l->iface->out_shape(l, pnn_tensor_rows(x), pnn_tensor_cols(x), &rows, &cols));
    snprintf(what, sizeof what, "layer '%s' (%s) output", l->name, l->iface->kind);
    PNN_TRY(pnn_tensor_check2(y, rows, cols, what));
    if (dy) {
        snprintf(what, sizeof what, "layer '%s' (%s) output gradient", l->name, l->iface->kind);
        PNN_TRY(pnn_tensor_check2(dy, rows, cols, what));
    }
    if (dx) {
        snprintf(what, sizeof what, "layer '%s' (%s) input gradient", l->name, l->iface->kind);
        PNN_TRY(pnn_tensor_check2(dx, pnn_tensor_rows(x), pnn_tensor_cols(x), what));
    }
    return PNN_OK;
}

static pnn_status same_shape(const pnn_layer *l, int64_t rows, int64_t cols, int64_t *out_rows,
                             int64_t *out_cols) {
    *out_rows = rows;
    *out_cols = cols;
    return PNN_OK;
}

/* ---- linear: y = x W^T + b ---- */

typedef struct {
    int64_t in, out;
    int bias;
} linear_impl;

static pnn_status linear_out_shape(const pnn_layer *l, int64_t rows, int64_t cols, int64_t *out_rows,
                                   int64_t *out_cols) {
    const linear_impl *p = l->impl;
    if (cols != p->in)
        return layer_error(l, PNN_ERR_INVALID, "expects %lld input features, got %lld", (long long)p->in,
                           (long long)cols);
    *out_rows = rows;
    *out_cols = p->out;
    return PNN_OK;
}

static pnn_status linear_forward(pnn_layer *l, const pnn_tensor *x, pnn_tensor *y, pnn_pass pass, int slot) {
    const linear_impl *p = l->impl;
    const pnn_backend_i *be = l->be->iface;
    PNN_TRY(check_io(l, x, y, NULL, NULL));
    int64_t rows = pnn_tensor_rows(x);
    be->gemm(l->be->ctx, false, true, rows, p->out, p->in, 1.0f, x->data, p->in, l->params[0].value.data,
             p->in, 0.0f, y->data, p->out);
    if (p->bias) be->add_bias(l->be->ctx, rows, p->out, l->params[1].value.data, y->data);
    return PNN_OK;
}

static pnn_status linear_backward(pnn_layer *l, const pnn_tensor *x, const pnn_tensor *y,
                                  const pnn_tensor *dy, pnn_tensor *dx, int slot) {
    const linear_impl *p = l->impl;
    const pnn_backend_i *be = l->be->iface;
    PNN_TRY(check_io(l, x, y, dy, dx));
    int64_t rows = pnn_tensor_rows(x);
    /* dW += dy^T x;  db += column sums of dy;  dx = dy W */
    be->gemm(l->be->ctx, true, false, p->out, p->in, rows, 1.0f, dy->data, p->out, x->data, p->in, 1.0f,
             l->params[0].grad.data, p->in);
    if (p->bias) be->bias_grad(l->be->ctx, rows, p->out, dy->data, l->params[1].grad.data);
    if (dx)
        be->gemm(l->be->ctx, false, false, rows, p->in, p->out, 1.0f, dy->data, p->out,
                 l->params[0].value.data, p->in, 0.0f, dx->data, p->in);
    return PNN_OK;
}

static const pnn_layer_i linear_iface = {
    .kind = "linear",
    .out_shape = linear_out_shape,
    .forward = linear_forward,
    .backward = linear_backward,
    .destroy = impl_free,
};

pnn_status pnn_param_init_uniform(pnn_param *prm, float bound, uint64_t seed) {
    int64_t n = prm->value.numel;
    float *host = malloc((size_t)n * sizeof *host);
    if (!host) return PNN_ERROR(PNN_ERR_NOMEM, "out of memory initialising '%s'", prm->name);
    pnn_rng_uniform(seed, pnn_rng_stream(prm->name, 0), 0, n, host);
    for (int64_t i = 0; i < n; i++) host[i] = bound * (2.0f * host[i] - 1.0f);
    pnn_status st = pnn_tensor_from_host(&prm->value, host, n);
    free(host);
    return st;
}

pnn_status pnn_layer_linear(pnn_layer **out, const pnn_backend *be, const char *name, int64_t in,
                            int64_t out_dim, int bias, uint64_t seed) {
    pnn_status st;
    pnn_layer *l;
    *out = NULL;
    if (in < 1 || out_dim < 1)
        return PNN_ERROR(PNN_ERR_INVALID, "layer '%s' (linear): needs at least 1 input and 1 output "
                                          "feature, got in=%lld out=%lld",
                         name, (long long)in, (long long)out_dim);
    PNN_TRY(layer_new(be, name, &linear_iface, sizeof(linear_impl), &l));
    linear_impl *p = l->impl;
    p->in = in;
    p->out = out_dim;
    p->bias = bias != 0;
    float bound = 1.0f / sqrtf((float)in);
    int64_t wshape[2] = {out_dim, in};
    PNN_GOTO(pnn_layer_add_param(l, "weight", 2, wshape, NULL));
    if (p->bias) PNN_GOTO(pnn_layer_add_param(l, "bias", 1, &out_dim, NULL));
    for (int i = 0; i < l->n_params; i++) PNN_GOTO(pnn_param_init_uniform(&l->params[i], bound, seed));
    *out = l;
    return PNN_OK;
fail:
    pnn_layer_free(l);
    return st;
}

/* ---- activation: y = f(x) elementwise ---- */

typedef struct {
    pnn_act act;
} activation_impl;

static pnn_status activation_forward(pnn_layer *l, const pnn_tensor *x, pnn_tensor *y, pnn_pass pass, int slot) {
    const activation_impl *p = l->impl;
    PNN_TRY(check_io(l, x, y, NULL, NULL));
    l->be->iface->act_forward(l->be->ctx, p->act, x->numel, x->data, y->data);
    return PNN_OK;
}

static pnn_status activation_backward(pnn_layer *l, const pnn_tensor *x, const pnn_tensor *y,
                                      const pnn_tensor *dy, pnn_tensor *dx, int slot) {
    const activation_impl *p = l->impl;
    PNN_TRY(check_io(l, x, y, dy, dx));
    if (dx) l->be->iface->act_backward(l->be->ctx, p->act, x->numel, x->data, y->data, dy->data, dx->data);
    return PNN_OK;
}

/* One table per function, indexed by pnn_act, so messages name the layer by what it computes. */
#define PNN_ACTIVATION_IFACE(kind_name)                                                                  \
    {                                                                                                    \
        .kind = kind_name, .out_shape = same_shape, .forward = activation_forward,                       \
        .backward = activation_backward, .destroy = impl_free                                            \
    }
static const pnn_layer_i activation_ifaces[] = {
    [PNN_ACT_IDENTITY] = PNN_ACTIVATION_IFACE("identity"),
    [PNN_ACT_RELU] = PNN_ACTIVATION_IFACE("relu"),
    [PNN_ACT_TANH] = PNN_ACTIVATION_IFACE("tanh"),
    [PNN_ACT_SIGMOID] = PNN_ACTIVATION_IFACE("sigmoid"),
};

pnn_status pnn_layer_activation(pnn_layer **out, const pnn_backend *be, const char *name, pnn_act act) {
    *out = NULL;
    if ((int)act < 0 || (size_t)act >= sizeof activation_ifaces / sizeof *activation_ifaces)
        return PNN_ERROR(PNN_ERR_INVALID, "layer '%s': unknown activation %d; known: identity, relu, "
                                          "tanh, sigmoid",
                         name, (int)act);
    PNN_TRY(layer_new(be, name, &activation_ifaces[act], sizeof(activation_impl), out));
    ((activation_impl *)(*out)->impl)->act = act;
    return PNN_OK;
}

/* ---- scale: y = a x with a trainable scalar a ---- */

typedef struct {
    pnn_tensor partial; /* one float of backend memory: sum(x dy) before it joins da */
} scale_impl;

/* dst = a src for n floats, with a read in backend memory: a gemm of [n, 1] by [1, 1], so that
 * no backend needs a host copy of a. */
static void scale_by_param(pnn_layer *l, int64_t n, const float *src, float *dst) {
    l->be->iface->gemm(l->be->ctx, false, false, n, 1, 1, 1.0f, src, 1, l->params[0].value.data, 1, 0.0f,
                       dst, 1);
}

static pnn_status scale_forward(pnn_layer *l, const pnn_tensor *x, pnn_tensor *y, pnn_pass pass, int slot) {
    PNN_TRY(check_io(l, x, y, NULL, NULL));
    scale_by_param(l, x->numel, x->data, y->data);
    return PNN_OK;
}

static pnn_status scale_backward(pnn_layer *l, const pnn_tensor *x, const pnn_tensor *y,
                                 const pnn_tensor *dy, pnn_tensor *dx, int slot) {
    scale_impl *p = l->impl;
    const pnn_backend_i *be = l->be->iface;
    PNN_TRY(check_io(l, x, y, dy, dx));
    be->dot(l->be->ctx, x->numel, x->data, dy->data, p->partial.data);
    be->axpby(l->be->ctx, 1, 1.0f, p->partial.data, 1.0f, l->params[0].grad.data);
    if (dx) scale_by_param(l, dy->numel, dy->data, dx->data);
    return PNN_OK;
}

static void scale_destroy(pnn_layer *l) {
    scale_impl *p = l->impl;
    if (p) pnn_tensor_free(&p->partial);
    free(p);
}

static const pnn_layer_i scale_iface = {
    .kind = "scale",
    .out_shape = same_shape,
    .forward = scale_forward,
    .backward = scale_backward,
    .destroy = scale_destroy,
};

pnn_status pnn_layer_scale(pnn_layer **out, const pnn_backend *be, const char *name, float init) {
    pnn_status st;
    pnn_layer *l;
    *out = NULL;
    if (!isfinite(init))
        return PNN_ERROR(PNN_ERR_INVALID, "layer '%s' (scale): initial value must be finite", name);
    PNN_TRY(layer_new(be, name, &scale_iface, sizeof(scale_impl), &l));
    scale_impl *p = l->impl;
    int64_t one = 1;
    pnn_param *a;
    PNN_GOTO(pnn_layer_add_param(l, "scale", 1, &one, &a));
    PNN_GOTO(pnn_tensor_from_host(&a->value, &init, 1));
    PNN_GOTO(pnn_tensor_init(&p->partial, be, 1, &one));
    *out = l;
    return PNN_OK;
fail:
    pnn_layer_free(l);
    return st;
}

/* ---- patchify: [b, h*w] -> [b*P, ph*pw] ---- */

typedef struct {
    int64_t h, w, ph, pw;
} patchify_impl;

static pnn_status patchify_out_shape(const pnn_layer *l, int64_t rows, int64_t cols, int64_t *out_rows,
                                     int64_t *out_cols) {
    const patchify_impl *p = l->impl;
    if (cols != p->h * p->w)
        return layer_error(l, PNN_ERR_INVALID, "expects %lld input features (a %lldx%lld image), got %lld",
                           (long long)(p->h * p->w), (long long)p->h, (long long)p->w, (long long)cols);
    *out_rows = rows * (p->h / p->ph) * (p->w / p->pw);
    *out_cols = p->ph * p->pw;
    return PNN_OK;
}

static pnn_status patchify_forward(pnn_layer *l, const pnn_tensor *x, pnn_tensor *y, pnn_pass pass, int slot) {
    const patchify_impl *p = l->impl;
    PNN_TRY(check_io(l, x, y, NULL, NULL));
    l->be->iface->patchify(l->be->ctx, pnn_tensor_rows(x), p->h, p->w, p->ph, p->pw, x->data, y->data);
    return PNN_OK;
}

static pnn_status patchify_backward(pnn_layer *l, const pnn_tensor *x, const pnn_tensor *y,
                                    const pnn_tensor *dy, pnn_tensor *dx, int slot) {
    const patchify_impl *p = l->impl;
    PNN_TRY(check_io(l, x, y, dy, dx));
    if (dx)
        l->be->iface->unpatchify(l->be->ctx, pnn_tensor_rows(x), p->h, p->w, p->ph, p->pw, dy->data,
                                 dx->data);
    return PNN_OK;
}

static const pnn_layer_i patchify_iface = {
    .kind = "patchify",
    .out_shape = patchify_out_shape,
    .forward = patchify_forward,
    .backward = patchify_backward,
    .destroy = impl_free,
};

pnn_status pnn_layer_patchify(pnn_layer **out, const pnn_backend *be, const char *name, int64_t h,
                              int64_t w, int64_t ph, int64_t pw) {
    *out = NULL;
    if (h < 1 || w < 1 || ph < 1 || pw < 1 || h % ph || w % pw)
        return PNN_ERROR(PNN_ERR_INVALID, "layer '%s' (patchify): a %lldx%lld image does not split into "
                                          "whole %lldx%lld patches",
                         name, (long long)h, (long long)w, (long long)ph, (long long)pw);
    PNN_TRY(layer_new(be, name, &patchify_iface, sizeof(patchify_impl), out));
    patchify_impl *p = (*out)->impl;
    p->h = h, p->w = w, p->ph = ph, p->pw = pw;
    return PNN_OK;
}

/* ---- concat_rows: [r, c] -> [r/group, c*group], a reshape of row-major memory ---- */

typedef struct {
    int64_t group;
} concat_impl;

static pnn_status concat_out_shape(const pnn_layer *l, int64_t rows, int64_t cols, int64_t *out_rows,
                                   int64_t *out_cols) {
    const concat_impl *p = l->impl;
    if (rows % p->group)
        return layer_error(l, PNN_ERR_INVALID, "expects a multiple of %lld input rows, got %lld",
                           (long long)p->group, (long long)rows);
    *out_rows = rows / p->group;
    *out_cols = cols * p->group;
    return PNN_OK;
}

static void copy_floats(const pnn_layer *l, float *dst, const float *src, int64_t n) {
    l->be->iface->copy(l->be->ctx, dst, src, (size_t)n * sizeof(float));
}

static pnn_status concat_forward(pnn_layer *l, const pnn_tensor *x, pnn_tensor *y, pnn_pass pass, int slot) {
    PNN_TRY(check_io(l, x, y, NULL, NULL));
    copy_floats(l, y->data, x->data, x->numel);
    return PNN_OK;
}

static pnn_status concat_backward(pnn_layer *l, const pnn_tensor *x, const pnn_tensor *y,
                                  const pnn_tensor *dy, pnn_tensor *dx, int slot) {
    PNN_TRY(check_io(l, x, y, dy, dx));
    if (dx) copy_floats(l, dx->data, dy->data, dy->numel);
    return PNN_OK;
}

static const pnn_layer_i concat_iface = {
    .kind = "concat_rows",
    .out_shape = concat_out_shape,
    .forward = concat_forward,
    .backward = concat_backward,
    .destroy = impl_free,
};

pnn_status pnn_layer_concat_rows(pnn_layer **out, const pnn_backend *be, const char *name,
                                 int64_t group) {
    *out = NULL;
    if (group < 1)
        return PNN_ERROR(PNN_ERR_INVALID, "layer '%s' (concat_rows): group must be at least 1, got %lld",
                         name, (long long)group);
    PNN_TRY(layer_new(be, name, &concat_iface, sizeof(concat_impl), out));
    ((concat_impl *)(*out)->impl)->group = group;
    return PNN_OK;
}

/* ---- pad: [r, c] -> [r, before + c + after] ---- */

typedef struct {
    int64_t before, after;
    float value;
} pad_impl;

static pnn_status pad_out_shape(const pnn_layer *l, int64_t rows, int64_t cols, int64_t *out_rows,
                                int64_t *out_cols) {
    const pad_impl *p = l->impl;
    *out_rows = rows;
    *out_cols = p->before + cols + p->after;
    return PNN_OK;
}

static pnn_status pad_forward(pnn_layer *l, const pnn_tensor *x, pnn_tensor *y, pnn_pass pass, int slot) {
    const pad_impl *p = l->impl;
    const pnn_backend_i *be = l->be->iface;
    PNN_TRY(check_io(l, x, y, NULL, NULL));
    int64_t cols = pnn_tensor_cols(x), out_cols = pnn_tensor_cols(y);
    be->fill(l->be->ctx, y->data, p->value, y->numel);
    be->copy2d(l->be->ctx, y->data + p->before, out_cols, x->data, cols, cols, pnn_tensor_rows(x));
    return PNN_OK;
}

static pnn_status pad_backward(pnn_layer *l, const pnn_tensor *x, const pnn_tensor *y,
                               const pnn_tensor *dy, pnn_tensor *dx, int slot) {
    const pad_impl *p = l->impl;
    PNN_TRY(check_io(l, x, y, dy, dx));
    if (dx) {
        int64_t cols = pnn_tensor_cols(x);
        l->be->iface->copy2d(l->be->ctx, dx->data, cols, dy->data + p->before, pnn_tensor_cols(dy), cols,
                             pnn_tensor_rows(x));
    }
    return PNN_OK;
}

static const pnn_layer_i pad_iface = {
    .kind = "pad",
    .out_shape = pad_out_shape,
    .forward = pad_forward,
    .backward = pad_backward,
    .destroy = impl_free,
};

pnn_status pnn_layer_pad(pnn_layer **out, const pnn_backend *be, const char *name, int64_t before,
                         int64_t after, float value) {
    *out = NULL;
    if (before < 0 || after < 0 || !isfinite(value))
        return PNN_ERROR(PNN_ERR_INVALID, "layer '%s' (pad): needs before, after >= 0 and a finite value, "
                                          "got before=%lld after=%lld value=%g",
                         name, (long long)before, (long long)after, (double)value);
    PNN_TRY(layer_new(be, name, &pad_iface, sizeof(pad_impl), out));
    pad_impl *p = (*out)->impl;
    p->before = before, p->after = after, p->value = value;
    return PNN_OK;
}

int64_t pnn_layer_pad_before(const pnn_layer *l) {
    return l && l->iface == &pad_iface ? ((const pad_impl *)l->impl)->before : -1;
}

/* ---- slice: [r, c] -> [r, count], columns start..start+count-1 ---- */

typedef struct {
    int64_t start, count;
} slice_impl;

static pnn_status slice_out_shape(const pnn_layer *l, int64_t rows, int64_t cols, int64_t *out_rows,
                                  int64_t *out_cols) {
    const slice_impl *p = l->impl;
    if (cols < p->start + p->count)
        return layer_error(l, PNN_ERR_INVALID,
                           "expects at least %lld input features (it takes columns %lld..%lld), got %lld",
                           (long long)(p->start + p->count), (long long)p->start,
                           (long long)(p->start + p->count - 1), (long long)cols);
    *out_rows = rows;
    *out_cols = p->count;
    return PNN_OK;
}

static pnn_status slice_forward(pnn_layer *l, const pnn_tensor *x, pnn_tensor *y, pnn_pass pass, int slot) {
    const slice_impl *p = l->impl;
    PNN_TRY(check_io(l, x, y, NULL, NULL));
    l->be->iface->copy2d(l->be->ctx, y->data, p->count, x->data + p->start, pnn_tensor_cols(x), p->count,
                         pnn_tensor_rows(x));
    return PNN_OK;
}

static pnn_status slice_backward(pnn_layer *l, const pnn_tensor *x, const pnn_tensor *y,
                                 const pnn_tensor *dy, pnn_tensor *dx, int slot) {
    const slice_impl *p = l->impl;
    const pnn_backend_i *be = l->be->iface;
    PNN_TRY(check_io(l, x, y, dy, dx));
    if (dx) {
        be->fill(l->be->ctx, dx->data, 0.0f, dx->numel);
        be->copy2d(l->be->ctx, dx->data + p->start, pnn_tensor_cols(x), dy->data, p->count, p->count,
                   pnn_tensor_rows(x));
    }
    return PNN_OK;
}

static const pnn_layer_i slice_iface = {
    .kind = "slice",
    .out_shape = slice_out_shape,
    .forward = slice_forward,
    .backward = slice_backward,
    .destroy = impl_free,
};

pnn_status pnn_layer_slice(pnn_layer **out, const pnn_backend *be, const char *name, int64_t start,
                           int64_t count) {
    *out = NULL;
    if (start < 0 || count < 1)
        return PNN_ERROR(PNN_ERR_INVALID, "layer '%s' (slice): needs start >= 0 and count >= 1, got "
                                          "start=%lld count=%lld",
                         name, (long long)start, (long long)count);
    PNN_TRY(layer_new(be, name, &slice_iface, sizeof(slice_impl), out));
    slice_impl *p = (*out)->impl;
    p->start = start, p->count = count;
    return PNN_OK;
}

/* ---- skip and concat_skip: y = [f(x); x] across the layers between them ----
 * skip is the identity that remembers, per micro-batch slot, the tensor it was given; a later
 * concat_skip appends those columns to its own input. In the backward pass concat_skip runs
 * first (layers go backward in reverse) and leaves the gradient of the appended columns with its
 * skip, which adds it to the gradient that comes back through the layers between them. */

typedef struct {
    int64_t cols;                               /* input columns (known once the network is built) */
    const pnn_tensor *x[PNN_LAYER_MAX_SLOTS];   /* the slot's input (the network's activation) */
    pnn_tensor pending[PNN_LAYER_MAX_SLOTS];    /* gradient left by concat_skip, when has[slot] */
    int has[PNN_LAYER_MAX_SLOTS];
} skip_impl;

static pnn_status skip_out_shape(const pnn_layer *l, int64_t rows, int64_t cols, int64_t *out_rows,
                                 int64_t *out_cols) {
    ((skip_impl *)l->impl)->cols = cols; /* the network checks shapes in order while building */
    *out_rows = rows;
    *out_cols = cols;
    return PNN_OK;
}

static pnn_status skip_forward(pnn_layer *l, const pnn_tensor *x, pnn_tensor *y, pnn_pass pass, int slot) {
    skip_impl *p = l->impl;
    PNN_TRY(check_io(l, x, y, NULL, NULL));
    if (slot < 0 || slot >= PNN_LAYER_MAX_SLOTS) return layer_error(l, PNN_ERR_INVALID, "slot %d out of range", slot);
    p->x[slot] = x;
    p->has[slot] = 0;
    return pnn_tensor_copy(y, x);
}

static pnn_status skip_backward(pnn_layer *l, const pnn_tensor *x, const pnn_tensor *y,
                                const pnn_tensor *dy, pnn_tensor *dx, int slot) {
    skip_impl *p = l->impl;
    PNN_TRY(check_io(l, x, y, dy, dx));
    if (!dx) return PNN_OK;
    PNN_TRY(pnn_tensor_copy(dx, dy));
    if (p->has[slot]) {
        PNN_TRY(pnn_tensor_check2(&p->pending[slot], pnn_tensor_rows(dx), pnn_tensor_cols(dx), "skip gradient"));
        l->be->iface->axpby(l->be->ctx, dx->numel, 1.0f, p->pending[slot].data, 1.0f, dx->data);
        p->has[slot] = 0;
    }
    return PNN_OK;
}

static void skip_destroy(pnn_layer *l) {
    skip_impl *p = l->impl;
    for (int s = 0; s < PNN_LAYER_MAX_SLOTS; s++) pnn_tensor_free(&p->pending[s]);
    free(p);
}

static const pnn_layer_i skip_iface = {
    .kind = "skip",
    .out_shape = skip_out_shape,
    .forward = skip_forward,
    .backward = skip_backward,
    .destroy = skip_destroy,
};

pnn_status pnn_layer_skip(pnn_layer **out, const pnn_backend *be, const char *name) {
    *out = NULL;
    PNN_TRY(layer_new(be, name, &skip_iface, sizeof(skip_impl), out));
    skip_impl *p = (*out)->impl;
    for (int s = 0; s < PNN_LAYER_MAX_SLOTS; s++) p->pending[s].backend = be;
    return PNN_OK;
}

int pnn_layer_is_skip(const pnn_layer *l) { return l && l->iface == &skip_iface; }

typedef struct {
    pnn_layer *skip;
} concat_skip_impl;

static pnn_status concat_skip_out_shape(const pnn_layer *l, int64_t rows, int64_t cols, int64_t *out_rows,
                                        int64_t *out_cols) {
    const skip_impl *s = ((const concat_skip_impl *)l->impl)->skip->impl;
    *out_rows = rows;
    *out_cols = cols + s->cols;
    return PNN_OK;
}

/* The skip's input of this slot, checked against x's rows. */
static pnn_status skipped(const pnn_layer *l, const pnn_tensor *x, int slot, const pnn_tensor **out) {
    const pnn_layer *sl = ((const concat_skip_impl *)l->impl)->skip;
    const skip_impl *s = sl->impl;
    if (slot < 0 || slot >= PNN_LAYER_MAX_SLOTS || !s->x[slot])
        return layer_error(l, PNN_ERR_INVALID, "its skip layer '%s' has not run for micro-batch %d", sl->name, slot);
    if (pnn_tensor_rows(s->x[slot]) != pnn_tensor_rows(x) || pnn_tensor_cols(s->x[slot]) != s->cols)
        return layer_error(l, PNN_ERR_INVALID, "gets %lld rows, and its skip layer '%s' kept %lld rows of %lld "
                           "columns (expected %lld): the layers between them must keep one row per row",
                           (long long)pnn_tensor_rows(x), sl->name, (long long)pnn_tensor_rows(s->x[slot]),
                           (long long)pnn_tensor_cols(s->x[slot]), (long long)s->cols);
    *out = s->x[slot];
    return PNN_OK;
}

static pnn_status concat_skip_forward(pnn_layer *l, const pnn_tensor *x, pnn_tensor *y, pnn_pass pass, int slot) {
    const pnn_tensor *h;
    PNN_TRY(check_io(l, x, y, NULL, NULL));
    PNN_TRY(skipped(l, x, slot, &h));
    int64_t rows = pnn_tensor_rows(x), c = pnn_tensor_cols(x), hc = pnn_tensor_cols(h), yc = c + hc;
    l->be->iface->copy2d(l->be->ctx, y->data, yc, x->data, c, c, rows);
    l->be->iface->copy2d(l->be->ctx, y->data + c, yc, h->data, hc, hc, rows);
    return PNN_OK;
}

static pnn_status concat_skip_backward(pnn_layer *l, const pnn_tensor *x, const pnn_tensor *y,
                                       const pnn_tensor *dy, pnn_tensor *dx, int slot) {
    const pnn_tensor *h;
    PNN_TRY(check_io(l, x, y, dy, dx));
    PNN_TRY(skipped(l, x, slot, &h));
    skip_impl *s = ((concat_skip_impl *)l->impl)->skip->impl;
    int64_t rows = pnn_tensor_rows(x), c = pnn_tensor_cols(x), hc = pnn_tensor_cols(h), yc = c + hc;
    if (dx) l->be->iface->copy2d(l->be->ctx, dx->data, c, dy->data, yc, c, rows);
    PNN_TRY(pnn_tensor_reshape2(&s->pending[slot], rows, hc));
    l->be->iface->copy2d(l->be->ctx, s->pending[slot].data, hc, dy->data + c, yc, hc, rows);
    s->has[slot] = 1;
    return PNN_OK;
}

static const pnn_layer_i concat_skip_iface = {
    .kind = "concat_skip",
    .out_shape = concat_skip_out_shape,
    .forward = concat_skip_forward,
    .backward = concat_skip_backward,
    .destroy = impl_free,
};

pnn_status pnn_layer_concat_skip(pnn_layer **out, const pnn_backend *be, const char *name, pnn_layer *skip) {
    *out = NULL;
    if (!pnn_layer_is_skip(skip))
        return PNN_ERROR(PNN_ERR_INVALID, "layer '%s' (concat_skip): needs an earlier skip layer", name);
    PNN_TRY(layer_new(be, name, &concat_skip_iface, sizeof(concat_skip_impl), out));
    ((concat_skip_impl *)(*out)->impl)->skip = skip;
    return PNN_OK;
}

/* ---- normalize: each row to unit L2 norm, y = a / (|x| + eps), a = |x| elementwise with abs ----
 * (the encoding of an amplitude input, as PhyLL's acoustic system takes it). Computed on the host:
 * rows are short and the backend has no row norm. */

#define NORMALIZE_EPS 1e-6

typedef struct {
    int abs;
    float *buf;     /* host: x, then y or dy */
    float *buf2;
    int64_t cap;
} normalize_impl;

static pnn_status normalize_buffers(pnn_layer *l, int64_t n) {
    normalize_impl *p = l->impl;
    if (p->cap >= n) return PNN_OK;
    free(p->buf);
    free(p->buf2);
    p->buf = malloc((size_t)n * sizeof(float));
    p->buf2 = malloc((size_t)n * sizeof(float));
    p->cap = p->buf && p->buf2 ? n : 0;
    return p->cap ? PNN_OK : layer_error(l, PNN_ERR_NOMEM, "out of memory for %lld floats", (long long)n);
}

static pnn_status normalize_forward(pnn_layer *l, const pnn_tensor *x, pnn_tensor *y, pnn_pass pass, int slot) {
    normalize_impl *p = l->impl;
    PNN_TRY(check_io(l, x, y, NULL, NULL));
    PNN_TRY(normalize_buffers(l, x->numel));
    PNN_TRY(pnn_tensor_to_host(x, p->buf, x->numel));
    int64_t rows = pnn_tensor_rows(x), c = pnn_tensor_cols(x);
    for (int64_t r = 0; r < rows; r++) {
        const float *xr = p->buf + r * c;
        float *yr = p->buf2 + r * c;
        double n2 = 0;
        for (int64_t j = 0; j < c; j++) n2 += (double)xr[j] * xr[j];
        double inv = 1.0 / (sqrt(n2) + NORMALIZE_EPS);
        for (int64_t j = 0; j < c; j++) yr[j] = (float)((p->abs ? fabs((double)xr[j]) : (double)xr[j]) * inv);
    }
    return pnn_tensor_from_host(y, p->buf2, y->numel);
}

/* With s_j = sign(x_j) (abs) or 1, a_j = s_j x_j and n = |x|:
 * dx_j = s_j g_j / (n + eps) - x_j (sum_i g_i a_i) / (n (n + eps)^2), the second term 0 at n = 0. */
static pnn_status normalize_backward(pnn_layer *l, const pnn_tensor *x, const pnn_tensor *y,
                                     const pnn_tensor *dy, pnn_tensor *dx, int slot) {
    normalize_impl *p = l->impl;
    PNN_TRY(check_io(l, x, y, dy, dx));
    if (!dx) return PNN_OK;
    PNN_TRY(normalize_buffers(l, x->numel));
    PNN_TRY(pnn_tensor_to_host(x, p->buf, x->numel));
    PNN_TRY(pnn_tensor_to_host(dy, p->buf2, dy->numel));
    int64_t rows = pnn_tensor_rows(x), c = pnn_tensor_cols(x);
    for (int64_t r = 0; r < rows; r++) {
        const float *xr = p->buf + r * c;
        float *gr = p->buf2 + r * c;
        double n2 = 0, ga = 0;
        for (int64_t j = 0; j < c; j++) {
            double s = p->abs && xr[j] < 0 ? -1.0 : 1.0;
            n2 += (double)xr[j] * xr[j];
            ga += (double)gr[j] * s * xr[j];
        }
        double n = sqrt(n2), d = n + NORMALIZE_EPS, k = n > 0 ? ga / (n * d * d) : 0;
        for (int64_t j = 0; j < c; j++) {
            double s = p->abs && xr[j] < 0 ? -1.0 : 1.0;
            gr[j] = (float)(s * gr[j] / d - k * xr[j]);
        }
    }
    return pnn_tensor_from_host(dx, p->buf2, dx->numel);
}

static void normalize_destroy(pnn_layer *l) {
    normalize_impl *p = l->impl;
    free(p->buf);
    free(p->buf2);
    free(p);
}

static const pnn_layer_i normalize_iface = {
    .kind = "normalize",
    .out_shape = same_shape,
    .forward = normalize_forward,
    .backward = normalize_backward,
    .destroy = normalize_destroy,
};

pnn_status pnn_layer_normalize(pnn_layer **out, const pnn_backend *be, const char *name, int abs_first) {
    *out = NULL;
    PNN_TRY(layer_new(be, name, &normalize_iface, sizeof(normalize_impl), out));
    ((normalize_impl *)(*out)->impl)->abs = abs_first;
    return PNN_OK;
}
