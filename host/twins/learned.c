/* The learned twin kinds (docs/architecture.md, "Learned twins"):
 *   learned:FILE   an MLP fitted to the device's own measurements maps [x, theta] to y;
 *   residual:FILE  the analytic twin plus an MLP fitted to what the analytic twin misses,
 *                  y = f_analytic(x, theta) + r(x, theta); its VJP is the sum of both.
 * The file (pnn twin fit) says which system and dims it was fitted to; a file for another system
 * or dims is refused before any buffer is sized from it. The MLP models the device's mean
 * response: its forwards add no noise (a residual twin's analytic part keeps its own). Initial
 * theta: the centre the fit drew its controls around (the learned twin is valid near it), or the
 * analytic twin's (residual).
 *
 * Config map keys besides kind and path:
 *   fit: {samples, rows_per_call, hidden: [W, ...], activation, epochs, patience, lr, batch,
 *         val_frac, theta_spread, x_dist, x_scale, seed}
 *        when the file does not exist, fit it to the layer's device before training (as pnn twin
 *        fit would; the calls count as the device's) and write it; when it does, use it.
 *   refine: {every, buffer, steps, batch, lr, seed}
 *        online refinement, the PAT paper's practice: the device's answers of PAT training calls
 *        go into a ring buffer of `buffer` rows (standardised as the file says); after every
 *        `every` such calls, at the start of the next pass, `steps` Adam steps of `batch` rows
 *        drawn from the buffer refit the MLP. The buffer, the MLP and its optimizer are the twin's
 *        checkpoint state (pnn_twin_i.state), so --resume continues exactly. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "host/twins/kind.h"
#include "host/twins/mlp.h"
#include "pnn/fileio.h"
#include "pnn/optim.h"
#include "pnn/rng.h"
#include "pnn/twin_fit.h"

/* the meta state tensor: what the ring buffer holds and where refinement stands */
enum { META_COUNT, META_NEXT, META_SINCE, META_REFITS, META_OPT_STEPS, META_N };

typedef struct refine_cfg {
    int64_t every, buffer, steps, batch;
    double lr;
    uint64_t seed;
} refine_cfg;

typedef struct learned_twin {
    pnn_mlp *mlp;            /* folded: raw [x, theta] in, raw y (or residual) out */
    pnn_mlp *raw;            /* the file's MLP with its standardisation (what refinement trains) */
    pnn_twin *analytic;      /* residual kind only */
    float *theta_center;     /* host, theta_dim */
    pnn_mlp_tape tapes[PNN_TWIN_MAX_SLOTS], eval_tape, fit_tape;
    pnn_tensor work[2], y_corr;
    /* refinement (refining = 0: none) */
    int refining;
    refine_cfg rc;
    pnn_optimizer *opt;
    pnn_tensor buf_z, buf_t, meta;   /* [buffer, in], [buffer, y_dim], [1, META_N] */
    float m[META_N];                 /* host copy of meta */
    pnn_tensor xb, tb, yb, dy, loss, y_base;
    float *zh, *th, *yh, *bh;        /* host rows of one observed call */
} learned_twin;

static pnn_status meta_store(pnn_twin *tw) {
    learned_twin *t = tw->impl;
    return pnn_tensor_from_host(&t->meta, t->m, META_N);
}

/* Refits the raw MLP on the buffer and folds it again (at the start of a pass: no tape of the
 * folded one is waiting for its backward). */
static pnn_status refit(pnn_twin *tw) {
    learned_twin *t = tw->impl;
    const pnn_backend *be = tw->be;
    int64_t in = t->raw->dims[0], yd = t->raw->dims[t->raw->n_lin], count = (int64_t)t->m[META_COUNT];
    int64_t b = t->rc.batch < count ? t->rc.batch : count;
    float u[1024];
    PNN_TRY(pnn_mlp_shape(&t->xb, be, b, in));
    PNN_TRY(pnn_mlp_shape(&t->tb, be, b, yd));
    for (int64_t s = 0; s < t->rc.steps; s++) {
        pnn_rng_uniform(t->rc.seed, pnn_rng_stream("twin.refine", (uint64_t)t->m[META_REFITS]), (uint64_t)(s * b), b, u);
        for (int64_t i = 0; i < b; i++) {
            int64_t r = (int64_t)(u[i] * (float)count);
            r = r < count ? r : count - 1;
            be->iface->copy(be->ctx, t->xb.data + i * in, t->buf_z.data + r * in, (size_t)in * sizeof(float));
            be->iface->copy(be->ctx, t->tb.data + i * yd, t->buf_t.data + r * yd, (size_t)yd * sizeof(float));
        }
        PNN_TRY(pnn_mlp_fit_step(t->raw, t->opt, &t->xb, &t->tb, &t->fit_tape, &t->yb, &t->dy, &t->loss, t->work));
    }
    t->m[META_REFITS] += 1;
    t->m[META_SINCE] = 0;
    t->m[META_OPT_STEPS] = (float)pnn_optimizer_step_count(t->opt);
    PNN_TRY(meta_store(tw));
    pnn_mlp *folded;
    PNN_TRY(pnn_mlp_fold(t->raw, &folded));
    pnn_mlp_free(t->mlp);
    t->mlp = folded;
    return PNN_OK;
}

static pnn_status learned_forward(pnn_twin *tw, const pnn_tensor *x, const float *theta, pnn_tensor *y, int tape_slot,
                                  const float *input_noise) {
    learned_twin *t = tw->impl;
    if (tape_slot >= PNN_TWIN_MAX_SLOTS)
        return PNN_ERROR(PNN_ERR_INVALID, "learned twin: slot %d out of range", tape_slot);
    pnn_mlp_tape *tape = tape_slot >= 0 ? &t->tapes[tape_slot] : &t->eval_tape;
    PNN_TRY(pnn_tensor_check2(x, pnn_tensor_rows(x), tw->info.x_dim, "learned twin input"));
    /* theta_stale marks the start of a pass (pnn_layer_i.params_changed) */
    if (t->refining && tw->theta_stale && t->m[META_SINCE] >= (float)t->rc.every && t->m[META_COUNT] >= 1)
        PNN_TRY(refit(tw));
    if (!t->analytic) {
        PNN_TRY(pnn_mlp_forward(t->mlp, x, theta, tw->info.theta_dim, tape, y));
        if (tape_slot >= 0) tw->calls++;
        tw->theta_stale = 0;
        return PNN_OK;
    }
    pnn_twin *a = t->analytic;
    a->calls = tw->calls; /* a resumed run restored the outer counter */
    a->theta_stale |= tw->theta_stale;
    tw->theta_stale = 0;
    PNN_TRY(a->iface->forward(a, x, theta, y, tape_slot, input_noise));
    tw->calls = a->calls;
    PNN_TRY(pnn_mlp_forward(t->mlp, x, theta, tw->info.theta_dim, tape, &t->y_corr));
    tw->be->iface->axpby(tw->be->ctx, y->numel, 1.0f, t->y_corr.data, 1.0f, y->data);
    return PNN_OK;
}

static pnn_status learned_vjp(pnn_twin *tw, const float *theta, const pnn_tensor *dy, pnn_tensor *dx, float *dtheta,
                              int tape_slot) {
    learned_twin *t = tw->impl;
    if (tape_slot < 0 || tape_slot >= PNN_TWIN_MAX_SLOTS)
        return PNN_ERROR(PNN_ERR_INVALID, "learned twin: vjp of slot %d, which has no tape", tape_slot);
    int acc = 0;
    if (t->analytic) {
        PNN_TRY(t->analytic->iface->vjp(t->analytic, theta, dy, dx, dtheta, tape_slot));
        acc = 1;
    }
    if (dx) PNN_TRY(pnn_mlp_shape(dx, tw->be, pnn_tensor_rows(dy), tw->info.x_dim));
    return pnn_mlp_backward(t->mlp, NULL, tw->info.theta_dim, &t->tapes[tape_slot], dy, dx, acc, dtheta, t->work);
}

static pnn_status learned_init_theta(pnn_twin *tw, uint64_t seed, uint64_t stream, float *theta) {
    learned_twin *t = tw->impl;
    if (t->analytic) return t->analytic->iface->init_theta(t->analytic, seed, stream, theta);
    if (tw->info.theta_dim > 0)
        tw->be->iface->from_host(tw->be->ctx, theta, t->theta_center, (size_t)tw->info.theta_dim * sizeof(float));
    return PNN_OK;
}

static void learned_free(pnn_twin *tw) {
    learned_twin *t = tw->impl;
    if (t) {
        pnn_mlp_free(t->mlp);
        pnn_mlp_free(t->raw);
        pnn_twin_free(t->analytic);
        free(t->theta_center);
        for (int i = 0; i < PNN_TWIN_MAX_SLOTS; i++) pnn_mlp_tape_free(&t->tapes[i]);
        pnn_mlp_tape_free(&t->eval_tape);
        pnn_mlp_tape_free(&t->fit_tape);
        pnn_optimizer_free(t->opt);
        pnn_tensor *ts[] = {&t->work[0], &t->work[1], &t->y_corr, &t->buf_z, &t->buf_t, &t->meta, &t->xb,
                            &t->tb, &t->yb, &t->dy, &t->loss, &t->y_base};
        for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++) pnn_tensor_free(ts[i]);
        free(t->zh);
        free(t->th);
        free(t->yh);
        free(t->bh);
        free(t);
    }
    free(tw);
}

/* A PAT training call's answer: its rows go into the ring buffer, standardised. */
static pnn_status learned_observe(pnn_twin *tw, const pnn_tensor *x, const float *theta, const pnn_tensor *y) {
    learned_twin *t = tw->impl;
    if (!t->refining) return PNN_OK;
    const pnn_backend *be = tw->be;
    pnn_mlp *raw = t->raw;
    int64_t rows = pnn_tensor_rows(x), xd = tw->info.x_dim, td = tw->info.theta_dim, yd = tw->info.y_dim, in = xd + td;
    float *nz = realloc(t->zh, (size_t)(rows * in) * sizeof(float)), *nt;
    if (nz) t->zh = nz;
    nt = nz ? realloc(t->th, (size_t)(rows * yd) * sizeof(float)) : NULL;
    if (nt) t->th = nt;
    float *ny = nt ? realloc(t->yh, (size_t)(rows * (xd > yd ? xd : yd)) * sizeof(float)) : NULL;
    if (ny) t->yh = ny;
    float *nb = ny ? realloc(t->bh, (size_t)(rows * yd + td) * sizeof(float)) : NULL;
    if (nb) t->bh = nb;
    if (!nb) return PNN_ERROR(PNN_ERR_NOMEM, "learned twin: out of memory keeping a call");
    float *th_host = t->bh + rows * yd;
    if (td) be->iface->to_host(be->ctx, th_host, theta, (size_t)td * sizeof(float));
    PNN_TRY(pnn_tensor_to_host(x, t->yh, rows * xd));
    for (int64_t r = 0; r < rows; r++) {
        for (int64_t j = 0; j < xd; j++)
            t->zh[r * in + j] = (t->yh[r * xd + j] - raw->in_mean[j]) / raw->in_std[j];
        for (int64_t j = 0; j < td; j++)
            t->zh[r * in + xd + j] = (th_host[j] - raw->in_mean[xd + j]) / raw->in_std[xd + j];
    }
    if (t->analytic) { /* the target is what the analytic twin misses, noise-free */
        PNN_TRY(pnn_mlp_shape(&t->y_base, be, rows, yd));
        t->analytic->theta_stale = 1;
        PNN_TRY(t->analytic->iface->forward(t->analytic, x, theta, &t->y_base, -1, NULL));
        PNN_TRY(pnn_tensor_to_host(&t->y_base, t->bh, rows * yd));
    }
    PNN_TRY(pnn_tensor_to_host(y, t->yh, rows * yd));
    for (int64_t r = 0; r < rows; r++)
        for (int64_t j = 0; j < yd; j++) {
            float target = t->yh[r * yd + j] - (t->analytic ? t->bh[r * yd + j] : 0.0f);
            t->th[r * yd + j] = (target - raw->out_mean[j]) / raw->out_std[j];
        }
    int64_t cap = t->rc.buffer, next = (int64_t)t->m[META_NEXT];
    for (int64_t r = 0; r < rows; r++) {
        be->iface->from_host(be->ctx, t->buf_z.data + next * in, t->zh + r * in, (size_t)in * sizeof(float));
        be->iface->from_host(be->ctx, t->buf_t.data + next * yd, t->th + r * yd, (size_t)yd * sizeof(float));
        next = (next + 1) % cap;
    }
    t->m[META_NEXT] = (float)next;
    t->m[META_COUNT] = (float)(t->m[META_COUNT] + (float)rows < (float)cap ? t->m[META_COUNT] + (float)rows : (float)cap);
    t->m[META_SINCE] += 1;
    return meta_store(tw);
}

static pnn_tensor *learned_state(pnn_twin *tw, int i, const char **name) {
    learned_twin *t = tw->impl;
    if (!t->refining || i < 0) return NULL;
    int np = t->raw->holder->n_params, no = pnn_optimizer_state_count(t->opt);
    if (i < np) {
        *name = t->raw->holder->params[i].name;
        return &t->raw->holder->params[i].value;
    }
    if (i < np + no) return pnn_optimizer_state(t->opt, i - np, name);
    static const char *const names[] = {"buffer.inputs", "buffer.targets", "refine"};
    pnn_tensor *ts[] = {&t->buf_z, &t->buf_t, &t->meta};
    if (i - np - no >= 3) return NULL;
    *name = names[i - np - no];
    return ts[i - np - no];
}

static pnn_status learned_state_loaded(pnn_twin *tw) {
    learned_twin *t = tw->impl;
    if (!t->refining) return PNN_OK;
    PNN_TRY(pnn_tensor_to_host(&t->meta, t->m, META_N));
    int64_t cap = t->rc.buffer;
    if (!(t->m[META_COUNT] >= 0 && t->m[META_COUNT] <= (float)cap && t->m[META_NEXT] >= 0 &&
          t->m[META_NEXT] < (float)cap && t->m[META_SINCE] >= 0 && t->m[META_REFITS] >= 0 && t->m[META_OPT_STEPS] >= 0))
        return PNN_ERROR(PNN_ERR_FORMAT, "learned twin: the checkpoint's refinement state is out of range");
    pnn_optimizer_set_step_count(t->opt, (int64_t)t->m[META_OPT_STEPS]);
    pnn_mlp *folded;
    PNN_TRY(pnn_mlp_fold(t->raw, &folded));
    pnn_mlp_free(t->mlp);
    t->mlp = folded;
    return PNN_OK;
}

static const pnn_twin_i learned_iface = {.forward = learned_forward,
                                         .vjp = learned_vjp,
                                         .init_theta = learned_init_theta,
                                         .free = learned_free,
                                         .observe = learned_observe,
                                         .state = learned_state,
                                         .state_loaded = learned_state_loaded};

/* where a config key is, for messages (pnn_cfg_check_keys adds the file and line) */
static void where_of(const pnn_cfg *node, const char *what, char *buf, size_t size) {
    (void)node;
    snprintf(buf, size, "twin %s", what);
}

/* fit: {...} of the config, into fit options */
static pnn_status read_fit(const pnn_cfg *f, const char *kind, pnn_twin_fit_options *o) {
    static const char *const keys[] = {"samples", "rows_per_call", "hidden", "activation", "epochs", "patience", "lr",
                                       "batch", "val_frac", "theta_spread", "x_dist", "x_scale", "seed", NULL};
    char where[128];
    const char *act, *xdist;
    int64_t seed;
    where_of(f, "fit", where, sizeof where);
    if (pnn_cfg_type_of(f) != PNN_CFG_MAP)
        return PNN_ERROR(PNN_ERR_CONFIG, "%s:%d: %s: expected a map, e.g. {samples: 4096}", pnn_cfg_source(f),
                         pnn_cfg_line(f), where);
    PNN_TRY(pnn_cfg_check_keys(f, keys, where));
    pnn_twin_fit_defaults(o);
    snprintf(o->kind, sizeof o->kind, "%s", kind);
    PNN_TRY(pnn_cfg_int(f, "samples", 0, o->samples, 1, (int64_t)1 << 30, &o->samples));
    PNN_TRY(pnn_cfg_int(f, "rows_per_call", 0, o->rows_per_call, 1, (int64_t)1 << 20, &o->rows_per_call));
    PNN_TRY(pnn_cfg_int(f, "epochs", 0, o->max_epochs, 1, 1000000, &o->max_epochs));
    PNN_TRY(pnn_cfg_int(f, "patience", 0, o->patience, 1, 1000000, &o->patience));
    PNN_TRY(pnn_cfg_int(f, "batch", 0, o->batch, 1, (int64_t)1 << 20, &o->batch));
    PNN_TRY(pnn_cfg_int(f, "seed", 0, 0, 0, INT64_MAX, &seed));
    o->seed = (uint64_t)seed;
    PNN_TRY(pnn_cfg_float(f, "lr", 0, o->lr, 1e-9, 10, &o->lr));
    PNN_TRY(pnn_cfg_float(f, "val_frac", 0, o->val_frac, 0.01, 0.9, &o->val_frac));
    PNN_TRY(pnn_cfg_float(f, "theta_spread", 0, o->theta_spread, 0, 100, &o->theta_spread));
    PNN_TRY(pnn_cfg_float(f, "x_scale", 0, o->x_scale, 1e-9, 1e9, &o->x_scale));
    PNN_TRY(pnn_cfg_str(f, "activation", 0, o->activation, &act));
    PNN_TRY(pnn_cfg_str(f, "x_dist", 0, o->x_dist, &xdist));
    snprintf(o->activation, sizeof o->activation, "%s", act);
    snprintf(o->x_dist, sizeof o->x_dist, "%s", xdist);
    const pnn_cfg *h = pnn_cfg_get(f, "hidden");
    if (h) {
        if (pnn_cfg_type_of(h) != PNN_CFG_LIST || pnn_cfg_len(h) > PNN_FIT_MAX_HIDDEN)
            return PNN_ERROR(PNN_ERR_CONFIG, "%s: hidden: expected a list of up to %d widths, e.g. [128, 128]", where,
                             PNN_FIT_MAX_HIDDEN);
        o->n_hidden = pnn_cfg_len(h);
        for (int i = 0; i < o->n_hidden; i++) {
            const char *v = pnn_cfg_scalar(pnn_cfg_at(h, i));
            char *end;
            long long w = v ? strtoll(v, &end, 10) : 0;
            if (!v || *end || w < 1 || w > (1 << 20))
                return PNN_ERROR(PNN_ERR_CONFIG, "%s: hidden[%d] is '%s'; expected a width in [1, 1048576]", where, i,
                                 v ? v : "not a number");
            o->hidden[i] = w;
        }
    }
    return PNN_OK;
}

static pnn_status read_refine(const pnn_cfg *r, refine_cfg *rc) {
    static const char *const keys[] = {"every", "buffer", "steps", "batch", "lr", "seed", NULL};
    char where[128];
    int64_t seed;
    where_of(r, "refine", where, sizeof where);
    if (pnn_cfg_type_of(r) != PNN_CFG_MAP)
        return PNN_ERROR(PNN_ERR_CONFIG, "%s:%d: %s: expected a map, e.g. {every: 10, buffer: 4096, steps: 10}",
                         pnn_cfg_source(r), pnn_cfg_line(r), where);
    PNN_TRY(pnn_cfg_check_keys(r, keys, where));
    PNN_TRY(pnn_cfg_int(r, "every", 0, 10, 1, 1 << 30, &rc->every));
    PNN_TRY(pnn_cfg_int(r, "buffer", 0, 4096, 1, 1 << 24, &rc->buffer));
    PNN_TRY(pnn_cfg_int(r, "steps", 0, 10, 1, 1 << 20, &rc->steps));
    PNN_TRY(pnn_cfg_int(r, "batch", 0, 64, 1, 1024, &rc->batch));
    PNN_TRY(pnn_cfg_float(r, "lr", 0, 1e-3, 1e-9, 10, &rc->lr));
    PNN_TRY(pnn_cfg_int(r, "seed", 0, 0, 0, INT64_MAX, &seed));
    rc->seed = (uint64_t)seed;
    return PNN_OK;
}

static pnn_status setup_refine(pnn_twin *tw) {
    learned_twin *t = tw->impl;
    pnn_mlp *raw = t->raw;
    int64_t in = raw->dims[0], yd = raw->dims[raw->n_lin];
    pnn_optim_config oc;
    pnn_param *plist[2 * PNN_MLP_MAX_LINEAR];
    PNN_TRY(pnn_optim_defaults("adam", &oc));
    oc.lr = (float)t->rc.lr;
    for (int i = 0; i < raw->holder->n_params; i++) plist[i] = &raw->holder->params[i];
    PNN_TRY(pnn_optimizer_create(&oc, plist, raw->holder->n_params, &t->opt));
    PNN_TRY(pnn_tensor_init2(&t->buf_z, tw->be, t->rc.buffer, in));
    PNN_TRY(pnn_tensor_init2(&t->buf_t, tw->be, t->rc.buffer, yd));
    PNN_TRY(pnn_tensor_init2(&t->meta, tw->be, 1, META_N));
    t->refining = 1;
    return PNN_OK;
}

static pnn_status create(const char *kind, const char *path, const pnn_cfg *opts, pnn_device *dev, double noise,
                         pnn_twin **out) {
    pnn_twin *tw;
    pnn_twin_file_info fi;
    pnn_status st;
    PNN_TRY(pnn_twin_new(dev, &learned_iface, sizeof(learned_twin), "a learned twin", &tw));
    learned_twin *t = tw->impl;
    if (!strcmp(kind, "learned") && (noise == PNN_TWIN_NOISE_ORACLE || noise == PNN_TWIN_NOISE_ESTIMATE)) {
        st = PNN_ERROR(PNN_ERR_CONFIG, "twin_noise: %s needs an analytic model of the input noise; a learned twin "
                       "models the device's mean response (use twin_noise: 0 or nominal, or a residual twin)",
                       noise == PNN_TWIN_NOISE_ORACLE ? "oracle" : "estimate");
        goto fail;
    }
    const pnn_cfg *fit = NULL, *refine = NULL;
    if (opts) {
        static const char *const keys[] = {"kind", "path", "fit", "refine", NULL};
        PNN_GOTO(pnn_cfg_check_keys(opts, keys, "twin"));
        fit = pnn_cfg_get(opts, "fit");
        refine = pnn_cfg_get(opts, "refine");
        if (refine) PNN_GOTO(read_refine(refine, &t->rc));
    }
    if (fit && access(path, F_OK) != 0) {
        /* fit the file to this device first, as pnn twin fit would */
        pnn_twin_fit_options o;
        pnn_twin_fit_report r;
        PNN_GOTO(read_fit(fit, kind, &o));
        fprintf(stderr, "pnn: fitting a %s twin to %s (%lld samples) into %s\n", kind, dev->info.uri,
                (long long)o.samples, path);
        PNN_GOTO(pnn_twin_fit_device(dev, &o, path, &r));
        fprintf(stderr, "pnn: validation NMSE=%.4g (the analytic twin alone: %.4g), %lld device calls\n", r.val_nmse,
                r.analytic_val_nmse, (long long)r.device_calls);
    } else if (fit) {
        fprintf(stderr, "pnn: %s exists: the %s twin in it is used (remove it to fit again)\n", path, kind);
    }
    PNN_GOTO(pnn_mlp_load(dev->be, path, &t->raw, &fi, &t->theta_center));
    if (strcmp(fi.kind, kind)) {
        st = PNN_ERROR(PNN_ERR_CONFIG, "twin file %s holds a %s twin; use twin: {kind: %s, path: %s}", path, fi.kind,
                       fi.kind, path);
        goto fail;
    }
    PNN_GOTO(pnn_twin_file_check_device(&fi, path, &dev->info));
    PNN_GOTO(pnn_mlp_fold(t->raw, &t->mlp));
    if (!strcmp(kind, "residual")) PNN_GOTO(pnn_twin_create("analytic", dev, noise, &t->analytic));
    if (refine) PNN_GOTO(setup_refine(tw));
    *out = tw;
    return PNN_OK;
fail:
    learned_free(tw);
    return pnn_error_prefix(st, "%s twin: ", kind);
}

static pnn_status learned_create(const char *arg, const pnn_cfg *opts, pnn_device *dev, double noise, pnn_twin **out) {
    return create("learned", arg, opts, dev, noise, out);
}

static pnn_status residual_create(const char *arg, const pnn_cfg *opts, pnn_device *dev, double noise,
                                  pnn_twin **out) {
    return create("residual", arg, opts, dev, noise, out);
}

const pnn_twin_kind pnn_twin_kind_learned = {
    .name = "learned",
    .summary = "an MLP fitted to the device's own measurements (pnn twin fit)",
    .needs_arg = 1,
    .create = learned_create,
};

const pnn_twin_kind pnn_twin_kind_residual = {
    .name = "residual",
    .summary = "the analytic twin plus an MLP fitted to what it misses (pnn twin fit --kind residual)",
    .needs_arg = 1,
    .create = residual_create,
};
