/* The multilayer perceptron of learned twins (mlp.h): forward and backward through the backend's
 * GEMM and elementwise ops, the folding of the standardisation, and the twin file. */
#include "host/twins/mlp.h"

#include "pnn/optim.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *act_name(pnn_act a) {
    return a == PNN_ACT_TANH ? "tanh" : a == PNN_ACT_RELU ? "relu" : a == PNN_ACT_SIGMOID ? "sigmoid" : "identity";
}

static int act_parse(const char *s, pnn_act *a) {
    static const struct { const char *n; pnn_act a; } t[] = {
        {"tanh", PNN_ACT_TANH}, {"relu", PNN_ACT_RELU}, {"sigmoid", PNN_ACT_SIGMOID}, {"identity", PNN_ACT_IDENTITY}};
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
        if (!strcmp(s, t[i].n)) {
            *a = t[i].a;
            return 1;
        }
    return 0;
}

static pnn_status mlp_alloc(const pnn_backend *be, int n_lin, const int64_t *dims, pnn_act act, pnn_mlp **out) {
    *out = NULL;
    if (n_lin < 1 || n_lin > PNN_MLP_MAX_LINEAR)
        return PNN_ERROR(PNN_ERR_INVALID, "a learned twin has 0 to %d hidden layers, not %d", PNN_MLP_MAX_LINEAR - 1,
                         n_lin - 1);
    for (int i = 0; i <= n_lin; i++)
        if (dims[i] < 1 || dims[i] > PNN_DEVICE_MAX_THETA_DIM)
            return PNN_ERROR(PNN_ERR_INVALID, "a learned twin's layer width %lld is out of range [1, %lld]",
                             (long long)dims[i], (long long)PNN_DEVICE_MAX_THETA_DIM);
    pnn_mlp *m = calloc(1, sizeof *m);
    pnn_layer *h = calloc(1, sizeof *h);
    if (!m || !h) {
        free(m);
        free(h);
        return PNN_ERROR(PNN_ERR_NOMEM, "out of memory for a learned twin");
    }
    m->be = be;
    m->n_lin = n_lin;
    m->act = act;
    memcpy(m->dims, dims, (size_t)(n_lin + 1) * sizeof *dims);
    m->holder = h;
    h->be = be;
    snprintf(h->name, sizeof h->name, "twin");
    pnn_status st = PNN_OK;
    for (int i = 0; i < n_lin && st == PNN_OK; i++) {
        char name[32];
        int64_t w[2] = {dims[i + 1], dims[i]}, b[1] = {dims[i + 1]};
        snprintf(name, sizeof name, "layers.%d.weight", i);
        st = pnn_layer_add_param(h, name, 2, w, NULL);
        snprintf(name, sizeof name, "layers.%d.bias", i);
        if (st == PNN_OK) st = pnn_layer_add_param(h, name, 1, b, NULL);
    }
    int64_t in = dims[0], o = dims[n_lin];
    m->in_mean = calloc((size_t)in, sizeof(float));
    m->in_std = malloc((size_t)in * sizeof(float));
    m->out_mean = calloc((size_t)o, sizeof(float));
    m->out_std = malloc((size_t)o * sizeof(float));
    if (st == PNN_OK && (!m->in_mean || !m->in_std || !m->out_mean || !m->out_std))
        st = PNN_ERROR(PNN_ERR_NOMEM, "out of memory for a learned twin");
    if (st != PNN_OK) {
        pnn_mlp_free(m);
        return st;
    }
    for (int64_t i = 0; i < in; i++) m->in_std[i] = 1.0f;
    for (int64_t i = 0; i < o; i++) m->out_std[i] = 1.0f;
    *out = m;
    return PNN_OK;
}

pnn_status pnn_mlp_create(const pnn_backend *be, int64_t in, const int64_t *hidden, int n_hidden, int64_t out,
                          pnn_act act, uint64_t seed, pnn_mlp **out_mlp) {
    int64_t dims[PNN_MLP_MAX_LINEAR + 1];
    if (n_hidden < 0 || n_hidden >= PNN_MLP_MAX_LINEAR)
        return PNN_ERROR(PNN_ERR_INVALID, "a learned twin has 0 to %d hidden layers, not %d", PNN_MLP_MAX_LINEAR - 1,
                         n_hidden);
    dims[0] = in;
    for (int i = 0; i < n_hidden; i++) dims[i + 1] = hidden[i];
    dims[n_hidden + 1] = out;
    PNN_TRY(mlp_alloc(be, n_hidden + 1, dims, act, out_mlp));
    pnn_mlp *m = *out_mlp;
    for (int i = 0; i < m->n_lin; i++) {
        float bound = 1.0f / sqrtf((float)dims[i]);
        pnn_status st = pnn_param_init_uniform(pnn_mlp_weight(m, i), bound, seed);
        if (st == PNN_OK) st = pnn_param_init_uniform(pnn_mlp_bias(m, i), bound, seed);
        if (st != PNN_OK) {
            pnn_mlp_free(m);
            *out_mlp = NULL;
            return st;
        }
    }
    return PNN_OK;
}

void pnn_mlp_free(pnn_mlp *m) {
    if (!m) return;
    pnn_layer_free(m->holder);
    free(m->in_mean);
    free(m->in_std);
    free(m->out_mean);
    free(m->out_std);
    free(m);
}

int64_t pnn_mlp_param_count(const pnn_mlp *m) {
    int64_t n = 0;
    for (int i = 0; i < m->n_lin; i++) n += m->dims[i + 1] * (m->dims[i] + 1);
    return n;
}

void pnn_mlp_tape_free(pnn_mlp_tape *t) {
    for (int i = 0; i < PNN_MLP_MAX_LINEAR; i++) {
        pnn_tensor_free(&t->pre[i]);
        pnn_tensor_free(&t->post[i]);
    }
}

/* host copies of every parameter, in holder order */
static pnn_status params_to_host(const pnn_mlp *m, float **host) {
    for (int i = 0; i < m->holder->n_params; i++) {
        const pnn_tensor *v = &m->holder->params[i].value;
        host[i] = malloc((size_t)v->numel * sizeof(float));
        if (!host[i]) return PNN_ERROR(PNN_ERR_NOMEM, "out of memory copying a learned twin");
        PNN_TRY(pnn_tensor_to_host(v, host[i], v->numel));
    }
    return PNN_OK;
}

pnn_status pnn_mlp_fold(const pnn_mlp *m, pnn_mlp **out) {
    float *host[2 * PNN_MLP_MAX_LINEAR] = {0};
    pnn_status st = mlp_alloc(m->be, m->n_lin, m->dims, m->act, out);
    if (st != PNN_OK) return st;
    st = params_to_host(m, host);
    if (st == PNN_OK) {
        /* first layer: W'[:, j] = W[:, j] / s_j, b' = b - sum_j W[:, j] mean_j / s_j */
        int64_t in = m->dims[0], h0 = m->dims[1];
        float *w = host[0], *b = host[1];
        for (int64_t r = 0; r < h0; r++) {
            double acc = b[r];
            for (int64_t j = 0; j < in; j++) {
                w[r * in + j] /= m->in_std[j];
                acc -= (double)w[r * in + j] * m->in_mean[j];
            }
            b[r] = (float)acc;
        }
        /* last layer: row r times out_std_r, b' = out_std b + out_mean */
        int L = m->n_lin - 1;
        int64_t o = m->dims[L + 1], hl = m->dims[L];
        w = host[2 * L];
        b = host[2 * L + 1];
        for (int64_t r = 0; r < o; r++) {
            for (int64_t j = 0; j < hl; j++) w[r * hl + j] *= m->out_std[r];
            b[r] = b[r] * m->out_std[r] + m->out_mean[r];
        }
        for (int i = 0; i < m->holder->n_params && st == PNN_OK; i++)
            st = pnn_tensor_from_host(&(*out)->holder->params[i].value, host[i], (*out)->holder->params[i].value.numel);
    }
    for (int i = 0; i < 2 * PNN_MLP_MAX_LINEAR; i++) free(host[i]);
    if (st != PNN_OK) {
        pnn_mlp_free(*out);
        *out = NULL;
    }
    return st;
}

pnn_status pnn_mlp_forward(pnn_mlp *m, const pnn_tensor *x, const float *theta, int64_t theta_dim,
                           pnn_mlp_tape *tape, pnn_tensor *y) {
    const pnn_backend_i *ops = m->be->iface;
    void *ctx = m->be->ctx;
    int64_t rows = pnn_tensor_rows(x), xw = m->dims[0] - theta_dim;
    if (theta_dim < 0 || xw < 1 || pnn_tensor_cols(x) != xw)
        return PNN_ERROR(PNN_ERR_INVALID, "learned twin: input of %lld columns and %lld controls for a network "
                         "of %lld inputs", (long long)pnn_tensor_cols(x), (long long)theta_dim, (long long)m->dims[0]);
    PNN_TRY(pnn_mlp_shape(y, m->be, rows, m->dims[m->n_lin]));
    const float *h = x->data;
    int64_t ldh = xw;
    for (int i = 0; i < m->n_lin; i++) {
        int64_t din = m->dims[i], dout = m->dims[i + 1];
        int last = i == m->n_lin - 1;
        const float *w = pnn_mlp_weight(m, i)->value.data, *b = pnn_mlp_bias(m, i)->value.data;
        pnn_tensor *pre = last ? y : &tape->pre[i];
        if (!last) {
            PNN_TRY(pnn_mlp_shape(&tape->pre[i], m->be, rows, dout));
            PNN_TRY(pnn_mlp_shape(&tape->post[i], m->be, rows, dout));
        }
        ops->gemm(ctx, false, true, rows, dout, i == 0 ? xw : din, 1.0f, h, ldh, w, din, 0.0f, pre->data, dout);
        if (i == 0 && theta_dim > 0) {
            /* the controls' share of the first layer, once for the whole batch */
            pnn_tensor *c = &tape->post[PNN_MLP_MAX_LINEAR - 1];
            PNN_TRY(pnn_mlp_shape(c, m->be, 1, dout));
            ops->copy(ctx, c->data, b, (size_t)dout * sizeof(float));
            ops->gemm(ctx, false, true, 1, dout, theta_dim, 1.0f, theta, theta_dim, w + xw, din, 1.0f, c->data, dout);
            ops->add_bias(ctx, rows, dout, c->data, pre->data);
        } else {
            ops->add_bias(ctx, rows, dout, b, pre->data);
        }
        if (!last) {
            ops->act_forward(ctx, m->act, rows * dout, pre->data, tape->post[i].data);
            h = tape->post[i].data;
            ldh = dout;
        }
    }
    return PNN_OK;
}

pnn_status pnn_mlp_backward(pnn_mlp *m, const pnn_tensor *x, int64_t theta_dim, pnn_mlp_tape *tape,
                            const pnn_tensor *dy, pnn_tensor *dx, int accumulate, float *dtheta,
                            pnn_tensor work[2]) {
    const pnn_backend_i *ops = m->be->iface;
    void *ctx = m->be->ctx;
    int64_t rows = pnn_tensor_rows(dy), xw = m->dims[0] - theta_dim, maxw = 1;
    if (x && theta_dim > 0)
        return PNN_ERROR(PNN_ERR_INVALID, "learned twin: parameter gradients are for fitting, with theta in the rows");
    for (int i = 0; i <= m->n_lin; i++) maxw = m->dims[i] > maxw ? m->dims[i] : maxw;
    PNN_TRY(pnn_mlp_shape(&work[0], m->be, rows, maxw));
    PNN_TRY(pnn_mlp_shape(&work[1], m->be, rows, maxw));
    const float *da = dy->data;
    int cur = 0;
    for (int i = m->n_lin - 1; i >= 0; i--) {
        int64_t din = m->dims[i], dout = m->dims[i + 1];
        pnn_param *w = pnn_mlp_weight(m, i), *b = pnn_mlp_bias(m, i);
        if (x) {
            const float *h = i == 0 ? x->data : tape->post[i - 1].data;
            ops->gemm(ctx, true, false, dout, din, rows, 1.0f, da, dout, h, din, 1.0f, w->grad.data, din);
            ops->bias_grad(ctx, rows, dout, da, b->grad.data);
        }
        if (i > 0) {
            float *dh = work[cur].data;
            ops->gemm(ctx, false, false, rows, din, dout, 1.0f, da, dout, w->value.data, din, 0.0f, dh, din);
            ops->act_backward(ctx, m->act, rows * din, tape->pre[i - 1].data, tape->post[i - 1].data, dh, dh);
            da = dh;
            cur ^= 1;
            continue;
        }
        if (dx)
            ops->gemm(ctx, false, false, rows, xw, dout, 1.0f, da, dout, w->value.data, din, accumulate ? 1.0f : 0.0f,
                      dx->data, xw);
        if (dtheta && theta_dim > 0) {
            pnn_tensor *s = &tape->post[PNN_MLP_MAX_LINEAR - 1];
            PNN_TRY(pnn_mlp_shape(s, m->be, 1, dout));
            ops->fill(ctx, s->data, 0.0f, dout);
            ops->bias_grad(ctx, rows, dout, da, s->data);
            ops->gemm(ctx, false, false, 1, theta_dim, dout, 1.0f, s->data, dout, w->value.data + xw, din, 1.0f, dtheta,
                      theta_dim);
        }
    }
    return PNN_OK;
}

pnn_status pnn_mlp_fit_step(pnn_mlp *m, pnn_optimizer *opt, const pnn_tensor *x, const pnn_tensor *target,
                            pnn_mlp_tape *tape, pnn_tensor *y, pnn_tensor *dy, pnn_tensor *loss, pnn_tensor work[2]) {
    int64_t rows = pnn_tensor_rows(x), out = m->dims[m->n_lin];
    PNN_TRY(pnn_mlp_shape(dy, m->be, rows, out));
    PNN_TRY(pnn_mlp_shape(loss, m->be, rows, 1));
    for (int i = 0; i < m->holder->n_params; i++) PNN_TRY(pnn_tensor_zero(&m->holder->params[i].grad));
    PNN_TRY(pnn_mlp_forward(m, x, NULL, 0, tape, y));
    m->be->iface->mse(m->be->ctx, rows, out, y->data, target->data, loss->data, dy->data, 1.0f / (float)rows);
    PNN_TRY(pnn_mlp_backward(m, x, 0, tape, dy, NULL, 0, NULL, work));
    return pnn_optimizer_step(opt);
}

/* ---- the file ---- */

pnn_status pnn_mlp_save(const pnn_mlp *m, const char *path, const pnn_twin_file_info *info,
                        const float *theta_center, const pnn_st_meta *extra, int n_extra) {
    enum { N_FIXED = 5 };
    float *host[2 * PNN_MLP_MAX_LINEAR] = {0};
    pnn_st_entry e[2 * PNN_MLP_MAX_LINEAR + N_FIXED];
    char names[2 * PNN_MLP_MAX_LINEAR][32];
    pnn_st_meta meta[16 + 8];
    char sx[24], st_[24], sy[24], hid[16 * 21], nmse[32], calls[24], samples[24];
    pnn_status st = params_to_host(m, host);
    int n = 0;
    for (int i = 0; i < m->n_lin && st == PNN_OK; i++) {
        snprintf(names[2 * i], sizeof names[0], "layers.%d.weight", i);
        snprintf(names[2 * i + 1], sizeof names[0], "layers.%d.bias", i);
        e[n++] = (pnn_st_entry){names[2 * i], 2, {m->dims[i + 1], m->dims[i]}, host[2 * i]};
        e[n++] = (pnn_st_entry){names[2 * i + 1], 1, {m->dims[i + 1]}, host[2 * i + 1]};
    }
    int64_t in = m->dims[0], o = m->dims[m->n_lin];
    e[n++] = (pnn_st_entry){"norm.in_mean", 1, {in}, m->in_mean};
    e[n++] = (pnn_st_entry){"norm.in_std", 1, {in}, m->in_std};
    e[n++] = (pnn_st_entry){"norm.out_mean", 1, {o}, m->out_mean};
    e[n++] = (pnn_st_entry){"norm.out_std", 1, {o}, m->out_std};
    if (info->theta_dim > 0) e[n++] = (pnn_st_entry){"theta.center", 1, {info->theta_dim}, theta_center};
    snprintf(sx, sizeof sx, "%lld", (long long)info->x_dim);
    snprintf(st_, sizeof st_, "%lld", (long long)info->theta_dim);
    snprintf(sy, sizeof sy, "%lld", (long long)info->y_dim);
    hid[0] = 0;
    for (int i = 1; i < m->n_lin; i++)
        snprintf(hid + strlen(hid), sizeof hid - strlen(hid), "%s%lld", i > 1 ? "," : "", (long long)m->dims[i]);
    snprintf(nmse, sizeof nmse, "%.6g", info->validation_nmse);
    snprintf(calls, sizeof calls, "%lld", (long long)info->device_calls);
    snprintf(samples, sizeof samples, "%lld", (long long)info->samples);
    int k = 0;
    meta[k++] = (pnn_st_meta){"format", "pnn-twin/1"};
    meta[k++] = (pnn_st_meta){"kind", info->kind};
    meta[k++] = (pnn_st_meta){"system", info->system};
    meta[k++] = (pnn_st_meta){"system_uri", info->system_uri};
    meta[k++] = (pnn_st_meta){"x_dim", sx};
    meta[k++] = (pnn_st_meta){"theta_dim", st_};
    meta[k++] = (pnn_st_meta){"y_dim", sy};
    meta[k++] = (pnn_st_meta){"hidden", hid};
    meta[k++] = (pnn_st_meta){"activation", act_name(m->act)};
    meta[k++] = (pnn_st_meta){"validation_nmse", nmse};
    meta[k++] = (pnn_st_meta){"device_calls", calls};
    meta[k++] = (pnn_st_meta){"samples", samples};
    for (int i = 0; i < n_extra && k < (int)(sizeof meta / sizeof meta[0]); i++) meta[k++] = extra[i];
    if (st == PNN_OK) st = pnn_safetensors_write(path, e, n, meta, k);
    for (int i = 0; i < 2 * PNN_MLP_MAX_LINEAR; i++) free(host[i]);
    return st;
}

static pnn_status meta_int(const pnn_safetensors *f, const char *path, const char *key, int64_t min, int64_t max,
                           int64_t *out) {
    const char *v = pnn_safetensors_meta(f, key);
    char *end;
    if (!v) return PNN_ERROR(PNN_ERR_FORMAT, "twin file %s: metadata '%s' is missing", path, key);
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (errno || end == v || *end || x < min || x > max)
        return PNN_ERROR(PNN_ERR_FORMAT, "twin file %s: metadata '%s' is '%.40s'; expected a whole number in [%lld, %lld]",
                         path, key, v, (long long)min, (long long)max);
    *out = x;
    return PNN_OK;
}

static pnn_status meta_str(const pnn_safetensors *f, const char *path, const char *key, char *out, size_t size) {
    const char *v = pnn_safetensors_meta(f, key);
    if (!v) return PNN_ERROR(PNN_ERR_FORMAT, "twin file %s: metadata '%s' is missing", path, key);
    if (strlen(v) >= size)
        return PNN_ERROR(PNN_ERR_FORMAT, "twin file %s: metadata '%s' is longer than %zu characters", path, key,
                         size - 1);
    memcpy(out, v, strlen(v) + 1);
    return PNN_OK;
}

/* the tensor called name with the given shape (ndim 1 or 2), or PNN_ERR_FORMAT */
static pnn_status want(const pnn_safetensors *f, const char *path, const char *name, int ndim, int64_t d0, int64_t d1,
                       const pnn_st_entry **out) {
    const pnn_st_entry *e = pnn_safetensors_find(f, name);
    if (!e) return PNN_ERROR(PNN_ERR_FORMAT, "twin file %s: tensor '%s' is missing", path, name);
    if (e->ndim != ndim || e->shape[0] != d0 || (ndim == 2 && e->shape[1] != d1))
        return PNN_ERROR(PNN_ERR_FORMAT, "twin file %s: tensor '%s' has the wrong shape (expected [%lld%s%lld])", path,
                         name, (long long)d0, ndim == 2 ? ", " : "", ndim == 2 ? (long long)d1 : 0LL);
    *out = e;
    return PNN_OK;
}

pnn_status pnn_mlp_load(const pnn_backend *be, const char *path, pnn_mlp **out, pnn_twin_file_info *info,
                        float **theta_center) {
    pnn_safetensors *f = NULL;
    pnn_mlp *m = NULL;
    char fmt[32], act_s[16], hid[16 * 21];
    int64_t dims[PNN_MLP_MAX_LINEAR + 1];
    const pnn_st_entry *e;
    pnn_act act;
    pnn_status st;
    *out = NULL;
    *theta_center = NULL;
    memset(info, 0, sizeof *info);
    PNN_TRY(pnn_safetensors_read(path, &f));
    PNN_GOTO(meta_str(f, path, "format", fmt, sizeof fmt));
    if (strcmp(fmt, "pnn-twin/1")) {
        st = PNN_ERROR(PNN_ERR_FORMAT, "%s is not a twin file (format '%s', expected 'pnn-twin/1'; make one with "
                       "pnn twin fit)", path, fmt);
        goto fail;
    }
    PNN_GOTO(meta_str(f, path, "kind", info->kind, sizeof info->kind));
    PNN_GOTO(meta_str(f, path, "system", info->system, sizeof info->system));
    PNN_GOTO(meta_str(f, path, "system_uri", info->system_uri, sizeof info->system_uri));
    PNN_GOTO(meta_int(f, path, "x_dim", 1, PNN_DEVICE_MAX_XY_DIM, &info->x_dim));
    PNN_GOTO(meta_int(f, path, "theta_dim", 0, PNN_DEVICE_MAX_THETA_DIM, &info->theta_dim));
    PNN_GOTO(meta_int(f, path, "y_dim", 1, PNN_DEVICE_MAX_XY_DIM, &info->y_dim));
    PNN_GOTO(meta_int(f, path, "device_calls", 0, INT64_MAX, &info->device_calls));
    PNN_GOTO(meta_int(f, path, "samples", 0, INT64_MAX, &info->samples));
    const char *nm = pnn_safetensors_meta(f, "validation_nmse");
    info->validation_nmse = nm ? strtod(nm, NULL) : NAN;
    PNN_GOTO(meta_str(f, path, "activation", act_s, sizeof act_s));
    if (!act_parse(act_s, &act)) {
        st = PNN_ERROR(PNN_ERR_FORMAT, "twin file %s: activation '%s' is not one of tanh, relu, sigmoid, identity",
                       path, act_s);
        goto fail;
    }
    PNN_GOTO(meta_str(f, path, "hidden", hid, sizeof hid));
    int n_lin = 1;
    dims[0] = info->x_dim + info->theta_dim;
    for (const char *p = hid; *p;) {
        char *end;
        errno = 0;
        long long w = strtoll(p, &end, 10);
        if (errno || end == p || w < 1 || w > PNN_DEVICE_MAX_XY_DIM || (*end && *end != ',') ||
            n_lin >= PNN_MLP_MAX_LINEAR) {
            st = PNN_ERROR(PNN_ERR_FORMAT, "twin file %s: metadata 'hidden' is '%.60s'; expected up to %d widths "
                           "separated by commas", path, hid, PNN_MLP_MAX_LINEAR - 1);
            goto fail;
        }
        dims[n_lin++] = w;
        p = *end ? end + 1 : end;
    }
    dims[n_lin] = info->y_dim;
    PNN_GOTO(mlp_alloc(be, n_lin, dims, act, &m));
    for (int i = 0; i < n_lin; i++) {
        char name[32];
        snprintf(name, sizeof name, "layers.%d.weight", i);
        PNN_GOTO(want(f, path, name, 2, dims[i + 1], dims[i], &e));
        PNN_GOTO(pnn_tensor_from_host(&pnn_mlp_weight(m, i)->value, e->data, dims[i + 1] * dims[i]));
        snprintf(name, sizeof name, "layers.%d.bias", i);
        PNN_GOTO(want(f, path, name, 1, dims[i + 1], 0, &e));
        PNN_GOTO(pnn_tensor_from_host(&pnn_mlp_bias(m, i)->value, e->data, dims[i + 1]));
    }
    struct { const char *name; float *dst; int64_t n; int positive; } norms[] = {
        {"norm.in_mean", m->in_mean, dims[0], 0}, {"norm.in_std", m->in_std, dims[0], 1},
        {"norm.out_mean", m->out_mean, dims[n_lin], 0}, {"norm.out_std", m->out_std, dims[n_lin], 1}};
    for (int i = 0; i < 4; i++) {
        PNN_GOTO(want(f, path, norms[i].name, 1, norms[i].n, 0, &e));
        for (int64_t j = 0; j < norms[i].n; j++)
            if (norms[i].positive && !(e->data[j] > 0)) {
                st = PNN_ERROR(PNN_ERR_FORMAT, "twin file %s: %s[%lld] is %g; deviations must be positive", path,
                               norms[i].name, (long long)j, e->data[j]);
                goto fail;
            }
        memcpy(norms[i].dst, e->data, (size_t)norms[i].n * sizeof(float));
    }
    if (info->theta_dim > 0) {
        PNN_GOTO(want(f, path, "theta.center", 1, info->theta_dim, 0, &e));
        *theta_center = malloc((size_t)info->theta_dim * sizeof(float));
        if (!*theta_center) {
            st = PNN_ERROR(PNN_ERR_NOMEM, "out of memory reading %s", path);
            goto fail;
        }
        memcpy(*theta_center, e->data, (size_t)info->theta_dim * sizeof(float));
    }
    pnn_safetensors_free(f);
    *out = m;
    return PNN_OK;
fail:
    pnn_safetensors_free(f);
    pnn_mlp_free(m);
    free(*theta_center);
    *theta_center = NULL;
    return st;
}

pnn_status pnn_twin_file_check_device(const pnn_twin_file_info *fi, const char *path, const pnn_device_info *dev) {
    if (strcmp(fi->system, dev->system) || fi->x_dim != dev->x_dim || fi->theta_dim != dev->theta_dim ||
        fi->y_dim != dev->y_dim)
        return PNN_ERROR(PNN_ERR_CONFIG, "twin file %s models system '%s' with x_dim=%lld theta_dim=%lld y_dim=%lld, "
                         "but device %s is '%s' with x_dim=%lld theta_dim=%lld y_dim=%lld; fit a twin to this device "
                         "(pnn twin fit)", path, fi->system, (long long)fi->x_dim, (long long)fi->theta_dim,
                         (long long)fi->y_dim, dev->uri, dev->system, (long long)dev->x_dim, (long long)dev->theta_dim,
                         (long long)dev->y_dim);
    return PNN_OK;
}
