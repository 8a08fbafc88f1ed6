/* The conv2d digital layer: rows are samples, columns an image flattened NCHW (C*H*W), as
 * PyTorch's Conv2d (cross-correlation, one stride and one zero padding for both axes). The
 * compute is the backend's conv2d ops (kernels/cpu/conv_cpu.c, kernels/cuda/conv_*.cu). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pnn/layer.h"
#include "pnn/rng.h"

typedef struct {
    pnn_conv2d_params p; /* batch is set per call */
    int bias;
} conv2d_impl;

static int64_t conv2d_in_cols(const conv2d_impl *c) { return c->p.in_c * c->p.in_h * c->p.in_w; }
static int64_t conv2d_out_cols(const conv2d_impl *c) {
    return c->p.out_c * pnn_conv2d_out_h(&c->p) * pnn_conv2d_out_w(&c->p);
}

static pnn_status conv2d_out_shape(const pnn_layer *l, int64_t rows, int64_t cols, int64_t *out_rows,
                                   int64_t *out_cols) {
    const conv2d_impl *c = l->impl;
    if (cols != conv2d_in_cols(c))
        return PNN_ERROR(PNN_ERR_INVALID,
                         "layer '%s' (conv2d): expects images of %lld x %lld x %lld = %lld features, got %lld",
                         l->name, (long long)c->p.in_c, (long long)c->p.in_h, (long long)c->p.in_w,
                         (long long)conv2d_in_cols(c), (long long)cols);
    *out_rows = rows;
    *out_cols = conv2d_out_cols(c);
    return PNN_OK;
}

/* The ops do not validate: check once here that x, y (and dy, dx when given) fit. */
static pnn_status conv2d_check(const pnn_layer *l, const pnn_tensor *x, const pnn_tensor *y,
                               const pnn_tensor *dy, const pnn_tensor *dx) {
    int64_t rows, cols;
    char what[128];
    PNN_TRY(conv2d_out_shape(l, pnn_tensor_rows(x), pnn_tensor_cols(x), &rows, &cols));
    snprintf(what, sizeof what, "layer '%s' (conv2d) output", l->name);
    PNN_TRY(pnn_tensor_check2(y, rows, cols, what));
    if (dy) {
        snprintf(what, sizeof what, "layer '%s' (conv2d) output gradient", l->name);
        PNN_TRY(pnn_tensor_check2(dy, rows, cols, what));
    }
    if (dx) {
        snprintf(what, sizeof what, "layer '%s' (conv2d) input gradient", l->name);
        PNN_TRY(pnn_tensor_check2(dx, pnn_tensor_rows(x), pnn_tensor_cols(x), what));
    }
    return PNN_OK;
}

/* Scratch for one call. Taken per call rather than kept in the layer, so calls for different
 * micro-batch slots never share it; the CUDA backend's caching allocator makes this cheap. */
static pnn_status conv2d_work(const pnn_layer *l, const pnn_conv2d_params *p, float **work) {
    size_t floats = l->be->iface->conv2d_work_floats(p);
    *work = NULL;
    if (!floats) return PNN_OK;
    *work = l->be->iface->alloc(l->be->ctx, floats * sizeof(float));
    if (!*work)
        return PNN_ERROR(PNN_ERR_NOMEM, "layer '%s' (conv2d): out of memory for %.1f MiB of scratch on %s",
                         l->name, (double)floats * sizeof(float) / 1048576.0, l->be->iface->name);
    return PNN_OK;
}

static void conv2d_work_release(const pnn_layer *l, float *work) {
    if (work) l->be->iface->release(l->be->ctx, work);
}

static pnn_status conv2d_forward(pnn_layer *l, const pnn_tensor *x, pnn_tensor *y, pnn_pass pass, int slot) {
    const conv2d_impl *c = l->impl;
    (void)pass, (void)slot;
    PNN_TRY(conv2d_check(l, x, y, NULL, NULL));
    pnn_conv2d_params p = c->p;
    p.batch = pnn_tensor_rows(x);
    float *work;
    PNN_TRY(conv2d_work(l, &p, &work));
    l->be->iface->conv2d_forward(l->be->ctx, &p, x->data, l->params[0].value.data,
                                 c->bias ? l->params[1].value.data : NULL, y->data, work);
    conv2d_work_release(l, work);
    return PNN_OK;
}

static pnn_status conv2d_backward(pnn_layer *l, const pnn_tensor *x, const pnn_tensor *y, const pnn_tensor *dy,
                                  pnn_tensor *dx, int slot) {
    const conv2d_impl *c = l->impl;
    (void)slot;
    PNN_TRY(conv2d_check(l, x, y, dy, dx));
    pnn_conv2d_params p = c->p;
    p.batch = pnn_tensor_rows(x);
    float *work;
    PNN_TRY(conv2d_work(l, &p, &work));
    const pnn_backend_i *be = l->be->iface;
    be->conv2d_backward_filter(l->be->ctx, &p, x->data, dy->data, l->params[0].grad.data,
                               c->bias ? l->params[1].grad.data : NULL, work);
    if (dx) be->conv2d_backward_data(l->be->ctx, &p, dy->data, l->params[0].value.data, dx->data, work);
    conv2d_work_release(l, work);
    return PNN_OK;
}

static void conv2d_destroy(pnn_layer *l) { free(l->impl); }

static const pnn_layer_i conv2d_iface = {
    .kind = "conv2d",
    .out_shape = conv2d_out_shape,
    .forward = conv2d_forward,
    .backward = conv2d_backward,
    .destroy = conv2d_destroy,
};

pnn_status pnn_layer_conv2d(pnn_layer **out, const pnn_backend *be, const char *name, int64_t in_c,
                            int64_t in_h, int64_t in_w, int64_t out_c, int64_t kh, int64_t kw, int64_t stride,
                            int64_t pad, int bias, uint64_t seed) {
    *out = NULL;
    if (!name || !*name || strlen(name) >= sizeof ((pnn_layer *)0)->name)
        return PNN_ERROR(PNN_ERR_INVALID, "a conv2d layer needs a name of 1 to %zu characters, got '%s'",
                         sizeof ((pnn_layer *)0)->name - 1, name ? name : "");
    const int64_t big = INT64_C(1) << 20;
    if (in_c < 1 || in_h < 1 || in_w < 1 || out_c < 1 || kh < 1 || kw < 1 || in_c > big || in_h > big ||
        in_w > big || out_c > big || kh > big || kw > big)
        return PNN_ERROR(PNN_ERR_INVALID,
                         "layer '%s' (conv2d): image [%lld, %lld, %lld], out_channels %lld and kernel [%lld, %lld] "
                         "must all be positive",
                         name, (long long)in_c, (long long)in_h, (long long)in_w, (long long)out_c, (long long)kh,
                         (long long)kw);
    if (stride < 1 || pad < 0 || stride > big || pad > big)
        return PNN_ERROR(PNN_ERR_INVALID, "layer '%s' (conv2d): stride must be >= 1 and pad >= 0 (got %lld, %lld)",
                         name, (long long)stride, (long long)pad);
    if (kh > in_h + 2 * pad || kw > in_w + 2 * pad)
        return PNN_ERROR(PNN_ERR_INVALID,
                         "layer '%s' (conv2d): kernel [%lld, %lld] is larger than the padded image [%lld, %lld]",
                         name, (long long)kh, (long long)kw, (long long)(in_h + 2 * pad), (long long)(in_w + 2 * pad));
    pnn_layer *l = calloc(1, sizeof *l);
    conv2d_impl *c = calloc(1, sizeof *c);
    if (!l || !c) {
        free(l);
        free(c);
        return PNN_ERROR(PNN_ERR_NOMEM, "out of memory creating layer '%s'", name);
    }
    l->iface = &conv2d_iface;
    l->be = be;
    l->impl = c;
    snprintf(l->name, sizeof l->name, "%s", name);
    c->p = (pnn_conv2d_params){.batch = 0, .in_c = in_c, .in_h = in_h, .in_w = in_w, .out_c = out_c,
                               .kh = kh, .kw = kw, .stride = stride, .pad = pad};
    c->bias = bias != 0;
    /* PyTorch's Conv2d: kaiming_uniform(a = sqrt(5)) gives U(+-1/sqrt(fan_in)), the bias too */
    float bound = 1.0f / sqrtf((float)(in_c * kh * kw));
    int64_t wshape[4] = {out_c, in_c, kh, kw}, bshape[1] = {out_c};
    pnn_param *prm;
    pnn_status st = pnn_layer_add_param(l, "weight", 4, wshape, &prm);
    if (st == PNN_OK) st = pnn_param_init_uniform(prm, bound, seed);
    if (st == PNN_OK && c->bias) st = pnn_layer_add_param(l, "bias", 1, bshape, &prm);
    if (st == PNN_OK && c->bias) st = pnn_param_init_uniform(prm, bound, seed);
    if (st != PNN_OK) {
        pnn_layer_free(l);
        return st;
    }
    *out = l;
    return PNN_OK;
}

pnn_status pnn_layer_conv2d_out_image(const pnn_layer *l, int64_t *c, int64_t *h, int64_t *w) {
    if (!l || l->iface != &conv2d_iface)
        return PNN_ERROR(PNN_ERR_INVALID, "layer '%s' is not a conv2d layer", l ? l->name : "(null)");
    const conv2d_impl *ci = l->impl;
    *c = ci->p.out_c;
    *h = pnn_conv2d_out_h(&ci->p);
    *w = pnn_conv2d_out_w(&ci->p);
    return PNN_OK;
}
