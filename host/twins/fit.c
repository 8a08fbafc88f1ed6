/* Fitting learned twins (pnn/twin_fit.h): the data (measured from a device, or read from a
 * recording), the regression, and the twin file. Rows of one device call share its theta, so the
 * validation split holds out whole calls: a held-out theta was never seen in fitting. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "host/twins/mlp.h"
#include "hwbridge/record_file.h"
#include "pnn/clock.h"
#include "pnn/optim.h"
#include "pnn/rng.h"
#include "pnn/system.h"
#include "pnn/twin_fit.h"

void pnn_twin_fit_defaults(pnn_twin_fit_options *o) {
    memset(o, 0, sizeof *o);
    snprintf(o->kind, sizeof o->kind, "learned");
    o->samples = 4096;
    o->rows_per_call = 16;
    snprintf(o->x_dist, sizeof o->x_dist, "uniform");
    o->x_scale = 1.0;
    o->theta_spread = 0.5;
    o->hidden[0] = o->hidden[1] = 128;
    o->n_hidden = 2;
    snprintf(o->activation, sizeof o->activation, "tanh");
    o->lr = 1e-3;
    o->batch = 256;
    o->max_epochs = 300;
    o->patience = 30;
    o->val_frac = 0.2;
}

/* The pairs: rows of [x, theta] and y, call by call; ybase the analytic twin's y (or NULL). */
typedef struct fit_data {
    int64_t xd, td, yd, rows, calls;
    float *z, *y, *ybase;
    int64_t *call_start; /* calls + 1 */
    float *theta_center; /* td */
} fit_data;

static void data_free(fit_data *d) {
    free(d->z);
    free(d->y);
    free(d->ybase);
    free(d->call_start);
    free(d->theta_center);
    memset(d, 0, sizeof *d);
}

static pnn_status data_alloc(fit_data *d, const pnn_device_info *info, int64_t rows, int64_t calls, int with_base) {
    d->xd = info->x_dim;
    d->td = info->theta_dim;
    d->yd = info->y_dim;
    d->rows = rows;
    d->calls = calls;
    d->z = malloc((size_t)rows * (size_t)(d->xd + d->td) * sizeof(float));
    d->y = malloc((size_t)rows * (size_t)d->yd * sizeof(float));
    d->ybase = with_base ? malloc((size_t)rows * (size_t)d->yd * sizeof(float)) : NULL;
    d->call_start = calloc((size_t)calls + 1, sizeof(int64_t));
    d->theta_center = calloc((size_t)(d->td ? d->td : 1), sizeof(float));
    if (!d->z || !d->y || (with_base && !d->ybase) || !d->call_start || !d->theta_center)
        return PNN_ERROR(PNN_ERR_NOMEM, "out of memory for %lld samples of %lld + %lld inputs", (long long)rows,
                         (long long)d->xd, (long long)d->td);
    return PNN_OK;
}

/* The analytic twin's y at (x, theta) of one call, host in and out (eval forward, noise-free). */
static pnn_status base_call(pnn_twin *an, const float *x, const float *theta, int64_t rows, float *y, pnn_tensor *xt,
                            pnn_tensor *yt, float *theta_dev) {
    const pnn_backend *be = an->be;
    PNN_TRY(pnn_mlp_shape(xt, be, rows, an->info.x_dim));
    PNN_TRY(pnn_tensor_from_host(xt, x, rows * an->info.x_dim));
    if (an->info.theta_dim)
        be->iface->from_host(be->ctx, theta_dev, theta, (size_t)an->info.theta_dim * sizeof(float));
    an->theta_stale = 1;
    PNN_TRY(pnn_mlp_shape(yt, be, rows, an->info.y_dim));
    PNN_TRY(an->iface->forward(an, xt, theta_dev, yt, -1, NULL));
    return pnn_tensor_to_host(yt, y, rows * an->info.y_dim);
}

/* ---- measuring a device ---- */

static pnn_status measure(pnn_device *dev, const pnn_twin_fit_options *o, pnn_twin *an, fit_data *d) {
    const pnn_device_info *info = &dev->info;
    const pnn_backend *be = dev->be;
    int64_t per = o->rows_per_call, calls = (o->samples + per - 1) / per;
    int64_t xd = info->x_dim, td = info->theta_dim, yd = info->y_dim, in = xd + td;
    pnn_tensor xt = {0}, yt = {0}, bx = {0}, by = {0};
    float *theta_dev = NULL, *xh = NULL, *th = NULL;
    int64_t *pool_perm = NULL;
    pnn_status st = PNN_OK;
    PNN_TRY(data_alloc(d, info, o->samples, calls, an != NULL));
    /* the centre of the controls */
    if (o->theta_center) {
        memcpy(d->theta_center, o->theta_center, (size_t)td * sizeof(float));
    } else if (td && an) {
        theta_dev = be->iface->alloc(be->ctx, (size_t)td * sizeof(float));
        if (!theta_dev) return PNN_ERROR(PNN_ERR_NOMEM, "out of memory for theta");
        PNN_GOTO(an->iface->init_theta(an, o->seed, pnn_rng_stream("fit.theta_center", 0), theta_dev));
        be->iface->to_host(be->ctx, d->theta_center, theta_dev, (size_t)td * sizeof(float));
    } else {
        const float *r = info->theta_range;
        float mid = isfinite(r[0]) && isfinite(r[1]) && r[1] - r[0] < 1e29f ? 0.5f * (r[0] + r[1]) : 0.0f;
        for (int64_t j = 0; j < td; j++) d->theta_center[j] = mid;
    }
    double rms = 0;
    for (int64_t j = 0; j < td; j++) rms += (double)d->theta_center[j] * d->theta_center[j];
    rms = td ? sqrt(rms / (double)td) : 0;
    if (rms < 1e-3) rms = 0.1; /* a centre at zero: spread in absolute units */
    if (!theta_dev && td) theta_dev = be->iface->alloc(be->ctx, (size_t)td * sizeof(float));
    xh = malloc((size_t)per * (size_t)xd * sizeof(float));
    th = malloc((size_t)(td ? td : 1) * sizeof(float));
    if ((td && !theta_dev) || !xh || !th) {
        st = PNN_ERROR(PNN_ERR_NOMEM, "out of memory measuring the device");
        goto fail;
    }
    const float *xr = info->x_range, *tr = info->theta_range;
    int x_uniform = !strcmp(o->x_dist, "uniform") && xr[1] - xr[0] < 1e29f && isfinite(xr[0]) && isfinite(xr[1]);
    uint64_t sx = pnn_rng_stream("fit.x", 0), sth = pnn_rng_stream("fit.theta", 0);
    if (o->x_pool) {
        pool_perm = malloc((size_t)o->x_pool_rows * sizeof *pool_perm);
        if (!pool_perm) {
            st = PNN_ERROR(PNN_ERR_NOMEM, "out of memory for the order of %lld data rows", (long long)o->x_pool_rows);
            goto fail;
        }
        pnn_rng_permutation(o->seed, sx, o->x_pool_rows, pool_perm);
    }
    for (int64_t c = 0, row = 0; c < calls; c++) {
        int64_t rows = o->samples - row < per ? o->samples - row : per;
        if (o->x_pool) {
            /* the task's own inputs of this layer, in a seeded order, again from the start when used up */
            for (int64_t r = 0; r < rows; r++)
                memcpy(xh + r * xd, o->x_pool + pool_perm[(row + r) % o->x_pool_rows] * xd, (size_t)xd * sizeof(float));
        } else if (x_uniform) {
            pnn_rng_uniform(o->seed, sx, (uint64_t)(row * xd), rows * xd, xh);
            for (int64_t i = 0; i < rows * xd; i++) xh[i] = xr[0] + (xr[1] - xr[0]) * xh[i];
        } else {
            pnn_rng_normal(o->seed, sx, (uint64_t)(row * xd), rows * xd, xh);
            for (int64_t i = 0; i < rows * xd; i++) xh[i] *= (float)o->x_scale;
            if (xr[1] - xr[0] < 1e29f)
                for (int64_t i = 0; i < rows * xd; i++) xh[i] = fminf(fmaxf(xh[i], xr[0]), xr[1]);
        }
        if (td) {
            pnn_rng_normal(o->seed, sth, (uint64_t)(c * td), td, th);
            for (int64_t j = 0; j < td; j++) {
                float v = d->theta_center[j] + (float)(o->theta_spread * rms) * th[j];
                th[j] = fminf(fmaxf(v, tr[0]), tr[1]);
            }
            be->iface->from_host(be->ctx, theta_dev, th, (size_t)td * sizeof(float));
        }
        PNN_GOTO(pnn_mlp_shape(&bx, be, rows, xd));
        PNN_GOTO(pnn_mlp_shape(&by, be, rows, yd));
        PNN_GOTO(pnn_tensor_from_host(&bx, xh, rows * xd));
        pnn_request req = {&bx, theta_dev, &by};
        pnn_ticket ticket;
        PNN_GOTO(pnn_device_submit(dev, &req, &ticket));
        PNN_GOTO(pnn_device_wait(dev, ticket, -1, NULL));
        PNN_GOTO(pnn_tensor_to_host(&by, d->y + row * yd, rows * yd));
        for (int64_t r = 0; r < rows; r++) {
            memcpy(d->z + (row + r) * in, xh + r * xd, (size_t)xd * sizeof(float));
            if (td) memcpy(d->z + (row + r) * in + xd, th, (size_t)td * sizeof(float));
        }
        if (an) PNN_GOTO(base_call(an, xh, th, rows, d->ybase + row * yd, &xt, &yt, theta_dev));
        d->call_start[c] = row;
        row += rows;
        d->call_start[c + 1] = row;
        if (o->progress) o->progress(o->user, "measure", c + 1, calls, 0);
    }
fail:
    if (theta_dev) be->iface->release(be->ctx, theta_dev);
    free(pool_perm);
    free(xh);
    free(th);
    pnn_tensor_free(&xt);
    pnn_tensor_free(&yt);
    pnn_tensor_free(&bx);
    pnn_tensor_free(&by);
    return st;
}

/* ---- reading a recording ---- */

static pnn_status read_recording(const char *path, const pnn_device_info *info, pnn_twin *an, int64_t max_rows,
                                 fit_data *d) {
    static pnn_rec_file zero;
    pnn_rec_file f = zero;
    pnn_device_info header;
    uint64_t bytes;
    pnn_status st;
    pnn_tensor xt = {0}, yt = {0};
    float *theta_dev = NULL;
    const pnn_backend *be = an ? an->be : NULL;
    PNN_GOTO(pnn_rec_open(&f, path, strlen(path), 0, &bytes));
    PNN_GOTO(pnn_rec_read_header(&f, &header));
    PNN_GOTO(pnn_rec_scan(&f, 1));
    int64_t rows = 0, calls = 0;
    for (uint64_t k = 0; k < f.n_calls && rows < max_rows; k++, calls++) rows += (int64_t)f.index[k].batch;
    if (calls == 0) {
        st = PNN_ERROR(PNN_ERR_FORMAT, "recording %s holds no device calls to fit to", path);
        goto fail;
    }
    PNN_GOTO(data_alloc(d, info, rows, calls, an != NULL));
    int64_t xd = d->xd, td = d->td, yd = d->yd, in = xd + td;
    float *xh = NULL, *th = malloc((size_t)(td ? td : 1) * sizeof(float));
    double *tsum = calloc((size_t)(td ? td : 1), sizeof(double));
    if (an && td) theta_dev = be->iface->alloc(be->ctx, (size_t)td * sizeof(float));
    if (!th || !tsum || (an && td && !theta_dev)) {
        free(th);
        free(tsum);
        st = PNN_ERROR(PNN_ERR_NOMEM, "out of memory reading %s", path);
        goto fail;
    }
    int64_t row = 0;
    for (int64_t c = 0; c < calls && st == PNN_OK; c++) {
        const pnn_rec_entry *e = &f.index[c];
        int64_t b = (int64_t)e->batch;
        float *nx = realloc(xh, (size_t)b * (size_t)xd * sizeof(float));
        if (!nx) {
            st = PNN_ERROR(PNN_ERR_NOMEM, "out of memory reading %s", path);
            break;
        }
        xh = nx;
        if (td) st = pnn_rec_read_theta(&f, e->theta_offset, th);
        if (st == PNN_OK) st = pnn_rec_read_call(&f, (uint64_t)c, xh, d->y + row * yd);
        if (st != PNN_OK) break;
        for (int64_t r = 0; r < b; r++) {
            memcpy(d->z + (row + r) * in, xh + r * xd, (size_t)xd * sizeof(float));
            if (td) memcpy(d->z + (row + r) * in + xd, th, (size_t)td * sizeof(float));
        }
        for (int64_t j = 0; j < td; j++) tsum[j] += th[j];
        if (an) st = base_call(an, xh, th, b, d->ybase + row * yd, &xt, &yt, theta_dev);
        d->call_start[c] = row;
        row += b;
        d->call_start[c + 1] = row;
    }
    for (int64_t j = 0; j < td; j++) d->theta_center[j] = (float)(tsum[j] / (double)calls);
    free(xh);
    free(th);
    free(tsum);
fail:
    if (theta_dev) be->iface->release(be->ctx, theta_dev);
    pnn_tensor_free(&xt);
    pnn_tensor_free(&yt);
    pnn_rec_close(&f);
    return st;
}

/* ---- the regression ---- */

typedef struct fitter {
    const pnn_backend *be;
    pnn_mlp *mlp;
    pnn_mlp_tape tape;
    pnn_tensor xb, tb, yb, dy, loss, work[2];
    float *xh, *th, *pred;
} fitter;

/* NMSE of y over rows (a list of row indices): the model's prediction of the target plus ybase
 * (residual) against y, over the spread of y */
static pnn_status nmse_of(fitter *F, const fit_data *d, const float *zstd, const int64_t *rows, int64_t n,
                          int residual, double *out) {
    pnn_mlp *m = F->mlp;
    int64_t in = d->xd + d->td, yd = d->yd, chunk = 1024;
    double *mean = calloc((size_t)yd, sizeof(double)), err = 0, var = 0;
    if (!mean) return PNN_ERROR(PNN_ERR_NOMEM, "out of memory");
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < yd; j++) mean[j] += d->y[rows[i] * yd + j];
    for (int64_t j = 0; j < yd; j++) mean[j] /= (double)(n ? n : 1);
    pnn_status st = PNN_OK;
    for (int64_t i0 = 0; i0 < n && st == PNN_OK; i0 += chunk) {
        int64_t b = n - i0 < chunk ? n - i0 : chunk;
        for (int64_t i = 0; i < b; i++) memcpy(F->xh + i * in, zstd + rows[i0 + i] * in, (size_t)in * sizeof(float));
        st = pnn_mlp_shape(&F->xb, F->be, b, in);
        if (st == PNN_OK) st = pnn_tensor_from_host(&F->xb, F->xh, b * in);
        if (st == PNN_OK) st = pnn_mlp_forward(m, &F->xb, NULL, 0, &F->tape, &F->yb);
        if (st == PNN_OK) st = pnn_tensor_to_host(&F->yb, F->pred, b * yd);
        for (int64_t i = 0; i < b && st == PNN_OK; i++) {
            int64_t r = rows[i0 + i];
            for (int64_t j = 0; j < yd; j++) {
                double p = (double)F->pred[i * yd + j] * m->out_std[j] + m->out_mean[j];
                if (residual) p += d->ybase[r * yd + j];
                double y = d->y[r * yd + j], e = p - y, v = y - mean[j];
                err += e * e;
                var += v * v;
            }
        }
    }
    free(mean);
    *out = var > 0 ? err / var : (err > 0 ? INFINITY : 0);
    return st;
}

static double base_nmse(const fit_data *d, const int64_t *rows, int64_t n) {
    if (!d->ybase || !n) return NAN;
    int64_t yd = d->yd;
    double err = 0, var = 0, *mean = calloc((size_t)yd, sizeof(double));
    if (!mean) return NAN;
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < yd; j++) mean[j] += d->y[rows[i] * yd + j] / (double)n;
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < yd; j++) {
            double e = d->ybase[rows[i] * yd + j] - d->y[rows[i] * yd + j], v = d->y[rows[i] * yd + j] - mean[j];
            err += e * e;
            var += v * v;
        }
    free(mean);
    return var > 0 ? err / var : NAN;
}

static pnn_act act_of(const char *s) {
    return !strcmp(s, "relu") ? PNN_ACT_RELU : !strcmp(s, "sigmoid") ? PNN_ACT_SIGMOID : PNN_ACT_TANH;
}

static pnn_status fit(const fit_data *d, const pnn_backend *be, const pnn_twin_fit_options *o, const char *out_path,
                      const pnn_device_info *info, const char *source, pnn_twin_fit_report *r) {
    int residual = !strcmp(o->kind, "residual");
    int64_t in = d->xd + d->td, yd = d->yd, n_val_calls = (int64_t)llround((double)d->calls * o->val_frac);
    int64_t *callperm = malloc((size_t)d->calls * sizeof(int64_t)), *tr_rows = NULL, *va_rows = NULL, ntr = 0, nva = 0;
    float *zstd = NULL, *tstd = NULL, **best = NULL;
    fitter F = {.be = be};
    pnn_optimizer *opt = NULL;
    pnn_status st = PNN_OK;
    if (!callperm) return PNN_ERROR(PNN_ERR_NOMEM, "out of memory");
    pnn_rng_permutation(o->seed, pnn_rng_stream("fit.split", 0), d->calls, callperm);
    int64_t *is_val = calloc((size_t)d->calls, sizeof(int64_t));
    tr_rows = malloc((size_t)d->rows * sizeof(int64_t));
    va_rows = malloc((size_t)d->rows * sizeof(int64_t));
    if (!is_val || !tr_rows || !va_rows) {
        free(is_val);
        st = PNN_ERROR(PNN_ERR_NOMEM, "out of memory");
        goto fail;
    }
    for (int64_t i = 0; i < n_val_calls; i++) is_val[callperm[i]] = 1;
    for (int64_t c = 0; c < d->calls; c++)
        for (int64_t row = d->call_start[c]; row < d->call_start[c + 1]; row++) {
            if (is_val[c]) va_rows[nva++] = row;
            else tr_rows[ntr++] = row;
        }
    free(is_val);
    if (n_val_calls < 1 || nva < 8 || ntr < 32) {
        st = PNN_ERROR(PNN_ERR_INVALID, "%lld samples in %lld device calls are too few to hold out %.0f %% of the calls "
                       "for validation (%lld held-out rows, %lld to fit; need at least 8 and 32): measure more "
                       "(--samples) or in smaller calls (--rows-per-call)",
                       (long long)d->rows, (long long)d->calls, 100 * o->val_frac, (long long)nva, (long long)ntr);
        goto fail;
    }
    int64_t hid_dims[PNN_FIT_MAX_HIDDEN];
    memcpy(hid_dims, o->hidden, sizeof hid_dims);
    PNN_GOTO(pnn_mlp_create(be, in, hid_dims, o->n_hidden, yd, act_of(o->activation), o->seed, &F.mlp));
    pnn_mlp *m = F.mlp;
    /* standardisation from the rows fitted to */
    zstd = malloc((size_t)d->rows * (size_t)in * sizeof(float));
    tstd = malloc((size_t)d->rows * (size_t)yd * sizeof(float));
    F.xh = malloc((size_t)(o->batch > 1024 ? o->batch : 1024) * (size_t)in * sizeof(float));
    F.th = malloc((size_t)o->batch * (size_t)yd * sizeof(float));
    F.pred = malloc((size_t)1024 * (size_t)yd * sizeof(float));
    if (!zstd || !tstd || !F.xh || !F.th || !F.pred) {
        st = PNN_ERROR(PNN_ERR_NOMEM, "out of memory for %lld samples", (long long)d->rows);
        goto fail;
    }
    for (int side = 0; side < 2; side++) {
        int64_t w = side ? yd : in;
        float *mean = side ? m->out_mean : m->in_mean, *sd = side ? m->out_std : m->in_std;
        for (int64_t j = 0; j < w; j++) {
            double s = 0, s2 = 0;
            for (int64_t i = 0; i < ntr; i++) {
                int64_t row = tr_rows[i];
                double v = side ? d->y[row * yd + j] - (residual ? d->ybase[row * yd + j] : 0) : d->z[row * in + j];
                s += v;
                s2 += v * v;
            }
            double mu = s / (double)ntr, var = s2 / (double)ntr - mu * mu, sdv = var > 0 ? sqrt(var) : 0;
            mean[j] = (float)mu;
            sd[j] = sdv > 1e-6 * (fabs(mu) > 1 ? fabs(mu) : 1) ? (float)sdv : 1.0f; /* a constant column */
        }
    }
    for (int64_t row = 0; row < d->rows; row++) {
        for (int64_t j = 0; j < in; j++) zstd[row * in + j] = (d->z[row * in + j] - m->in_mean[j]) / m->in_std[j];
        for (int64_t j = 0; j < yd; j++) {
            float t = d->y[row * yd + j] - (residual ? d->ybase[row * yd + j] : 0);
            tstd[row * yd + j] = (t - m->out_mean[j]) / m->out_std[j];
        }
    }
    pnn_optim_config oc;
    PNN_GOTO(pnn_optim_defaults("adam", &oc));
    oc.lr = (float)o->lr;
    pnn_param *plist[2 * PNN_MLP_MAX_LINEAR];
    int np = m->holder->n_params;
    for (int i = 0; i < np; i++) plist[i] = &m->holder->params[i];
    PNN_GOTO(pnn_optimizer_create(&oc, plist, np, &opt));
    best = calloc((size_t)np, sizeof *best);
    if (!best) {
        st = PNN_ERROR(PNN_ERR_NOMEM, "out of memory");
        goto fail;
    }
    for (int i = 0; i < np; i++) {
        best[i] = malloc((size_t)plist[i]->value.numel * sizeof(float));
        if (!best[i]) {
            st = PNN_ERROR(PNN_ERR_NOMEM, "out of memory");
            goto fail;
        }
    }
    int64_t *perm = malloc((size_t)ntr * sizeof(int64_t));
    if (!perm) {
        st = PNN_ERROR(PNN_ERR_NOMEM, "out of memory");
        goto fail;
    }
    double best_val = INFINITY, t_fit = 0, t0 = pnn_now_s();
    int64_t best_epoch = 0, rows_done = 0, epoch, epochs_run = 0;
    PNN_GOTO(nmse_of(&F, d, zstd, va_rows, nva, residual, &best_val));
    for (int i = 0; i < np; i++) PNN_GOTO(pnn_tensor_to_host(&plist[i]->value, best[i], plist[i]->value.numel));
    for (epoch = 1; epoch <= o->max_epochs && st == PNN_OK; epoch++) {
        double te = pnn_now_s(), loss_sum = 0;
        pnn_rng_permutation(o->seed, pnn_rng_stream("fit.epoch", (uint64_t)epoch), ntr, perm);
        for (int64_t i0 = 0; i0 < ntr && st == PNN_OK; i0 += o->batch) {
            int64_t b = ntr - i0 < o->batch ? ntr - i0 : o->batch;
            for (int64_t i = 0; i < b; i++) {
                int64_t row = tr_rows[perm[i0 + i]];
                memcpy(F.xh + i * in, zstd + row * in, (size_t)in * sizeof(float));
                memcpy(F.th + i * yd, tstd + row * yd, (size_t)yd * sizeof(float));
            }
            PNN_GOTO(pnn_mlp_shape(&F.xb, be, b, in));
            PNN_GOTO(pnn_mlp_shape(&F.tb, be, b, yd));
            PNN_GOTO(pnn_tensor_from_host(&F.xb, F.xh, b * in));
            PNN_GOTO(pnn_tensor_from_host(&F.tb, F.th, b * yd));
            PNN_GOTO(pnn_mlp_fit_step(m, opt, &F.xb, &F.tb, &F.tape, &F.yb, &F.dy, &F.loss, F.work));
            rows_done += b;
            if (i0 == 0 || i0 + b >= ntr) {
                float l[1];
                be->iface->to_host(be->ctx, l, F.loss.data, sizeof l);
                loss_sum = l[0];
            }
        }
        if (be->iface->status) PNN_GOTO(be->iface->status(be->ctx));
        t_fit += pnn_now_s() - te;
        double val;
        PNN_GOTO(nmse_of(&F, d, zstd, va_rows, nva, residual, &val));
        if (!isfinite(val)) {
            st = PNN_ERROR(PNN_ERR_FORMAT, "the fit diverged at epoch %lld (validation NMSE %g): lower --lr",
                           (long long)epoch, val);
            break;
        }
        if (o->curve)
            fprintf(o->curve, "%lld,%.6g,%.6g,%.3f\n", (long long)epoch, loss_sum / (double)yd, val, pnn_now_s() - t0);
        if (val < best_val) {
            best_val = val;
            best_epoch = epoch;
            for (int i = 0; i < np; i++) PNN_GOTO(pnn_tensor_to_host(&plist[i]->value, best[i], plist[i]->value.numel));
        }
        epochs_run = epoch;
        if (o->progress) o->progress(o->user, "fit", epoch, o->max_epochs, val);
        if (epoch - best_epoch >= o->patience) break;
    }
    free(perm);
    if (st != PNN_OK) goto fail;
    for (int i = 0; i < np; i++) PNN_GOTO(pnn_tensor_from_host(&plist[i]->value, best[i], plist[i]->value.numel));
    memset(r, 0, sizeof *r);
    r->samples = d->rows;
    r->train_rows = ntr;
    r->val_rows = nva;
    r->params = pnn_mlp_param_count(m);
    r->epochs = epochs_run;
    r->best_epoch = best_epoch;
    r->val_nmse = best_val;
    r->fit_s = t_fit;
    r->fit_samples_per_s = t_fit > 0 ? (double)rows_done / t_fit : 0;
    r->analytic_val_nmse = base_nmse(d, va_rows, nva);
    PNN_GOTO(nmse_of(&F, d, zstd, tr_rows, ntr, residual, &r->train_nmse));
    pnn_twin_file_info fi = {0};
    snprintf(fi.kind, sizeof fi.kind, "%s", o->kind);
    snprintf(fi.system, sizeof fi.system, "%s", info->system);
    snprintf(fi.system_uri, sizeof fi.system_uri, "%s", info->system_uri);
    fi.x_dim = d->xd;
    fi.theta_dim = d->td;
    fi.y_dim = yd;
    fi.validation_nmse = best_val;
    fi.device_calls = d->calls;
    fi.samples = d->rows;
    char tn[32], an[32], ep[24];
    snprintf(tn, sizeof tn, "%.6g", r->train_nmse);
    snprintf(an, sizeof an, "%.6g", r->analytic_val_nmse);
    snprintf(ep, sizeof ep, "%lld", (long long)best_epoch);
    pnn_st_meta extra[] = {{"source", source}, {"train_nmse", tn}, {"analytic_validation_nmse", an}, {"epochs", ep}};
    PNN_GOTO(pnn_mlp_save(m, out_path, &fi, d->theta_center, extra, 4));
fail:
    if (best)
        for (int i = 0; i < 2 * PNN_MLP_MAX_LINEAR && F.mlp && i < F.mlp->holder->n_params; i++) free(best[i]);
    free(best);
    pnn_optimizer_free(opt);
    pnn_mlp_tape_free(&F.tape);
    pnn_tensor_free(&F.xb);
    pnn_tensor_free(&F.tb);
    pnn_tensor_free(&F.yb);
    pnn_tensor_free(&F.dy);
    pnn_tensor_free(&F.loss);
    pnn_tensor_free(&F.work[0]);
    pnn_tensor_free(&F.work[1]);
    pnn_mlp_free(F.mlp);
    free(F.xh);
    free(F.th);
    free(F.pred);
    free(zstd);
    free(tstd);
    free(callperm);
    free(tr_rows);
    free(va_rows);
    return st;
}

static pnn_status check_options(const pnn_twin_fit_options *o) {
    if (strcmp(o->kind, "learned") && strcmp(o->kind, "residual"))
        return PNN_ERROR(PNN_ERR_INVALID, "twin kind '%s' cannot be fitted; fit learned or residual", o->kind);
    if (strcmp(o->x_dist, "uniform") && strcmp(o->x_dist, "normal"))
        return PNN_ERROR(PNN_ERR_INVALID, "x distribution '%s': expected uniform or normal", o->x_dist);
    if (strcmp(o->activation, "tanh") && strcmp(o->activation, "relu") && strcmp(o->activation, "sigmoid"))
        return PNN_ERROR(PNN_ERR_INVALID, "activation '%s': expected tanh, relu or sigmoid", o->activation);
    if (o->samples < 1 || o->rows_per_call < 1 || o->batch < 1 || o->max_epochs < 1 || o->patience < 1 ||
        !(o->lr > 0) || !(o->val_frac > 0 && o->val_frac < 1) || !(o->theta_spread >= 0) || !(o->x_scale > 0))
        return PNN_ERROR(PNN_ERR_INVALID, "fit options out of range: samples, rows per call, batch, epochs and "
                         "patience >= 1, lr > 0, 0 < validation share < 1, spread >= 0, x scale > 0");
    return PNN_OK;
}

/* the analytic twin of dev's system when pnn knows it (NULL otherwise; required for residual) */
static pnn_status analytic_of(pnn_device *dev, const pnn_twin_fit_options *o, pnn_twin **an) {
    *an = NULL;
    if (!pnn_system_find(dev->info.system)) {
        if (!strcmp(o->kind, "residual"))
            return PNN_ERROR(PNN_ERR_UNSUPPORTED, "a residual twin corrects the analytic twin, and pnn has none for "
                             "system '%s'; fit --kind learned", dev->info.system);
        return PNN_OK;
    }
    return pnn_twin_create("analytic", dev, 0.0, an);
}

pnn_status pnn_twin_fit_device(pnn_device *dev, const pnn_twin_fit_options *o, const char *out_path,
                               pnn_twin_fit_report *r) {
    fit_data d = {0};
    pnn_twin *an = NULL;
    PNN_TRY(check_options(o));
    PNN_TRY(analytic_of(dev, o, &an));
    double t0 = pnn_now_s();
    uint64_t calls0 = dev->calls;
    pnn_status st = measure(dev, o, an, &d);
    double ms = pnn_now_s() - t0;
    if (st == PNN_OK) st = fit(&d, dev->be, o, out_path, &dev->info, dev->info.uri, r);
    if (st == PNN_OK) {
        r->measure_s = ms;
        r->device_calls = (int64_t)(dev->calls - calls0);
    }
    pnn_twin_free(an);
    data_free(&d);
    return st;
}

pnn_status pnn_twin_fit_recording(const char *rec_path, pnn_device *dev, const pnn_backend *be,
                                  const pnn_twin_fit_options *o, const char *out_path, pnn_twin_fit_report *r) {
    char uri[PNN_PATH_MAX + 16];
    pnn_device *rep = NULL;
    pnn_twin *an = NULL;
    fit_data d = {0};
    PNN_TRY(check_options(o));
    PNN_TRY(pnn_path_format(uri, sizeof uri, "replay:%s", rec_path));
    PNN_TRY(pnn_device_open(uri, be, &rep));
    const pnn_device_info *ri = &rep->info;
    pnn_status st = PNN_OK;
    if (dev && (strcmp(dev->info.system, ri->system) || dev->info.x_dim != ri->x_dim ||
                dev->info.theta_dim != ri->theta_dim || dev->info.y_dim != ri->y_dim ||
                strcmp(dev->info.system_uri, ri->system_uri)))
        st = PNN_ERROR(PNN_ERR_CONFIG, "recording %s is of device %s (system '%s', x_dim=%lld theta_dim=%lld "
                       "y_dim=%lld), not of %s (system '%s', x_dim=%lld theta_dim=%lld y_dim=%lld); fit to a recording "
                       "of this device, or leave the device out", rec_path, ri->system_uri, ri->system,
                       (long long)ri->x_dim, (long long)ri->theta_dim, (long long)ri->y_dim, dev->info.system_uri,
                       dev->info.system, (long long)dev->info.x_dim, (long long)dev->info.theta_dim,
                       (long long)dev->info.y_dim);
    if (st == PNN_OK) st = analytic_of(rep, o, &an);
    double t0 = pnn_now_s();
    if (st == PNN_OK) st = read_recording(rec_path, ri, an, o->samples, &d);
    double rs = pnn_now_s() - t0;
    if (st == PNN_OK) st = fit(&d, be, o, out_path, ri, rec_path, r);
    if (st == PNN_OK) {
        r->measure_s = rs;
        r->device_calls = 0; /* spent earlier, by whoever recorded */
    }
    pnn_twin_free(an);
    pnn_device_close(rep);
    data_free(&d);
    return st;
}
