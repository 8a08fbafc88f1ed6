/* The learned twin kinds (docs/architecture.md, "Learned twins"):
 *   learned:FILE   an MLP fitted to the device's own measurements maps [x, theta] to y;
 *   residual:FILE  the analytic twin plus an MLP fitted to what the analytic twin misses,
 *                  y = f_analytic(x, theta) + r(x, theta); its VJP is the sum of both.
 * The file (pnn twin fit) says which system and dims it was fitted to; a file for another system
 * or dims is refused before any buffer is sized from it. The MLP models the device's mean
 * response: its forwards add no noise (a residual twin's analytic part keeps its own). Initial
 * theta: the centre the fit drew its controls around (the learned twin is valid near it), or the
 * analytic twin's (residual). */
#include <stdlib.h>
#include <string.h>

#include "host/twins/kind.h"
#include "host/twins/mlp.h"

typedef struct learned_twin {
    pnn_mlp *mlp;            /* folded: raw [x, theta] in, raw y (or residual) out */
    pnn_twin *analytic;      /* residual kind only */
    float *theta_center;     /* host, theta_dim */
    pnn_mlp_tape tapes[PNN_TWIN_MAX_SLOTS], eval_tape;
    pnn_tensor work[2], y_corr;
} learned_twin;

static pnn_status learned_forward(pnn_twin *tw, const pnn_tensor *x, const float *theta, pnn_tensor *y, int tape_slot,
                                  const float *input_noise) {
    learned_twin *t = tw->impl;
    if (tape_slot >= PNN_TWIN_MAX_SLOTS)
        return PNN_ERROR(PNN_ERR_INVALID, "learned twin: slot %d out of range", tape_slot);
    pnn_mlp_tape *tape = tape_slot >= 0 ? &t->tapes[tape_slot] : &t->eval_tape;
    PNN_TRY(pnn_tensor_check2(x, pnn_tensor_rows(x), tw->info.x_dim, "learned twin input"));
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
        pnn_twin_free(t->analytic);
        free(t->theta_center);
        for (int i = 0; i < PNN_TWIN_MAX_SLOTS; i++) pnn_mlp_tape_free(&t->tapes[i]);
        pnn_mlp_tape_free(&t->eval_tape);
        pnn_tensor_free(&t->work[0]);
        pnn_tensor_free(&t->work[1]);
        pnn_tensor_free(&t->y_corr);
        free(t);
    }
    free(tw);
}

static const pnn_twin_i learned_iface = {learned_forward, learned_vjp, learned_init_theta, learned_free};

static pnn_status create(const char *kind, const char *path, pnn_device *dev, double noise, pnn_twin **out) {
    pnn_twin *tw = calloc(1, sizeof *tw);
    learned_twin *t = calloc(1, sizeof *t);
    pnn_mlp *raw = NULL;
    pnn_twin_file_info fi;
    pnn_status st;
    if (!tw || !t) {
        free(tw);
        free(t);
        return PNN_ERROR(PNN_ERR_NOMEM, "out of memory for a learned twin");
    }
    tw->iface = &learned_iface;
    tw->impl = t;
    tw->be = dev->be;
    tw->info = dev->info;
    if (!strcmp(kind, "learned") && noise == PNN_TWIN_NOISE_ORACLE) {
        st = PNN_ERROR(PNN_ERR_CONFIG, "twin_noise: oracle needs an analytic model of the noise; a learned twin "
                       "models the device's mean response (use twin_noise: 0 or leave it out)");
        goto fail;
    }
    PNN_GOTO(pnn_mlp_load(dev->be, path, &raw, &fi, &t->theta_center));
    if (strcmp(fi.kind, kind)) {
        st = PNN_ERROR(PNN_ERR_CONFIG, "twin file %s holds a %s twin; use twin: {kind: %s, path: %s}", path, fi.kind,
                       fi.kind, path);
        goto fail;
    }
    PNN_GOTO(pnn_twin_file_check_device(&fi, path, &dev->info));
    PNN_GOTO(pnn_mlp_fold(raw, &t->mlp));
    if (!strcmp(kind, "residual")) PNN_GOTO(pnn_twin_create("analytic", dev, noise, &t->analytic));
    pnn_mlp_free(raw);
    *out = tw;
    return PNN_OK;
fail:
    pnn_mlp_free(raw);
    learned_free(tw);
    return pnn_error_prefix(st, "%s twin: ", kind);
}

static pnn_status learned_create(const char *arg, pnn_device *dev, double noise, pnn_twin **out) {
    return create("learned", arg, dev, noise, out);
}

static pnn_status residual_create(const char *arg, pnn_device *dev, double noise, pnn_twin **out) {
    return create("residual", arg, dev, noise, out);
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
