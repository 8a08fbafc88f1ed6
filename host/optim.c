/* Optimizers: Adam and SGD with momentum over a list of parameters. The state (moments or
 * velocity) lives on each parameter's backend and is updated by the backend's op. */
#include "pnn/optim.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum { OPTIM_ADAM, OPTIM_SGD } optim_kind;

/* State tensor i belongs to params[i / per_param]; for Adam, even i are m and odd i are v. */
struct pnn_optimizer {
    pnn_optim_config cfg;
    optim_kind kind;
    pnn_param **params;
    int n_params;
    int per_param;           /* state tensors per parameter: 2 (adam) or 1 (sgd) */
    pnn_tensor *state;       /* n_params * per_param */
    char (*state_names)[128];
    int64_t steps;
};

pnn_status pnn_optim_defaults(const char *kind, pnn_optim_config *cfg) {
    memset(cfg, 0, sizeof *cfg);
    if (!strcmp(kind, "adam")) {
        cfg->lr = 1e-3f;
        cfg->beta1 = 0.9f;
        cfg->beta2 = 0.999f;
        cfg->eps = 1e-8f;
    } else if (!strcmp(kind, "sgd")) {
        cfg->lr = 1e-2f;
        cfg->momentum = 0.9f;
    } else {
        return PNN_ERROR(PNN_ERR_INVALID, "unknown optimizer '%s'; known: adam, sgd", kind);
    }
    snprintf(cfg->kind, sizeof cfg->kind, "%s", kind);
    return PNN_OK;
}

/* Rejects values for which the update is undefined or diverges by construction (a beta of 1
 * divides by zero in the bias correction). */
static pnn_status check_config(const pnn_optim_config *c, optim_kind *kind) {
    if (!strcmp(c->kind, "adam")) *kind = OPTIM_ADAM;
    else if (!strcmp(c->kind, "sgd")) *kind = OPTIM_SGD;
    else return PNN_ERROR(PNN_ERR_INVALID, "unknown optimizer '%s'; known: adam, sgd", c->kind);
    if (!(c->lr >= 0.0f && isfinite(c->lr)))
        return PNN_ERROR(PNN_ERR_INVALID, "optimizer %s: lr must be finite and >= 0, got %g", c->kind,
                         (double)c->lr);
    if (!(c->weight_decay >= 0.0f && isfinite(c->weight_decay)))
        return PNN_ERROR(PNN_ERR_INVALID, "optimizer %s: weight_decay must be finite and >= 0, got %g",
                         c->kind, (double)c->weight_decay);
    if (*kind == OPTIM_ADAM &&
        !(c->beta1 >= 0.0f && c->beta1 < 1.0f && c->beta2 >= 0.0f && c->beta2 < 1.0f && c->eps >= 0.0f))
        return PNN_ERROR(PNN_ERR_INVALID, "optimizer adam: needs 0 <= beta1, beta2 < 1 and eps >= 0, got "
                                          "beta1=%g beta2=%g eps=%g",
                         (double)c->beta1, (double)c->beta2, (double)c->eps);
    if (*kind == OPTIM_SGD && !(c->momentum >= 0.0f && c->momentum <= 1.0f))
        return PNN_ERROR(PNN_ERR_INVALID, "optimizer sgd: momentum must be in [0, 1], got %g",
                         (double)c->momentum);
    return PNN_OK;
}

pnn_status pnn_optimizer_create(const pnn_optim_config *cfg, pnn_param *const *params, int n_params,
                                pnn_optimizer **out) {
    static const char *const adam_parts[] = {"m", "v"}, *const sgd_parts[] = {"velocity"};
    pnn_status st = PNN_OK;
    *out = NULL;
    optim_kind kind = OPTIM_ADAM;
    PNN_TRY(check_config(cfg, &kind));
    if (n_params < 0) return PNN_ERROR(PNN_ERR_INVALID, "optimizer over %d parameters", n_params);
    for (int i = 0; i < n_params; i++)
        if (params[i]->grad.numel != params[i]->value.numel)
            return PNN_ERROR(PNN_ERR_INVALID, "parameter '%s' has %lld values but %lld gradients",
                             params[i]->name, (long long)params[i]->value.numel,
                             (long long)params[i]->grad.numel);
    pnn_optimizer *o = calloc(1, sizeof *o);
    if (!o) return PNN_ERROR(PNN_ERR_NOMEM, "out of memory creating the optimizer");
    o->cfg = *cfg;
    o->kind = kind;
    o->n_params = n_params;
    o->per_param = kind == OPTIM_ADAM ? 2 : 1;
    size_t n_state = (size_t)n_params * (size_t)o->per_param;
    o->params = calloc((size_t)n_params + 1, sizeof *o->params);
    o->state = calloc(n_state + 1, sizeof *o->state);
    o->state_names = calloc(n_state + 1, sizeof *o->state_names);
    if (!o->params || !o->state || !o->state_names) {
        st = PNN_ERROR(PNN_ERR_NOMEM, "out of memory creating the optimizer");
        goto fail;
    }
    for (int i = 0; i < n_params; i++) {
        const pnn_tensor *v = &params[i]->value;
        o->params[i] = params[i];
        for (int j = 0; j < o->per_param; j++) {
            int s = i * o->per_param + j;
            snprintf(o->state_names[s], sizeof o->state_names[s], "optim.%s.%s.%s", cfg->kind,
                     kind == OPTIM_ADAM ? adam_parts[j] : sgd_parts[j], params[i]->name);
            PNN_GOTO(pnn_tensor_init(&o->state[s], v->backend, v->ndim, v->shape));
        }
    }
    *out = o;
    return PNN_OK;
fail:
    pnn_optimizer_free(o);
    return st;
}

void pnn_optimizer_free(pnn_optimizer *o) {
    if (!o) return;
    if (o->state)
        for (int s = 0; s < o->n_params * o->per_param; s++) pnn_tensor_free(&o->state[s]);
    free(o->state);
    free(o->state_names);
    free(o->params);
    free(o);
}

pnn_status pnn_optimizer_step(pnn_optimizer *o) {
    const pnn_optim_config *c = &o->cfg;
    o->steps++;
    for (int i = 0; i < o->n_params; i++) {
        pnn_param *p = o->params[i];
        const pnn_backend *be = p->value.backend;
        pnn_tensor *st = &o->state[i * o->per_param];
        if (o->kind == OPTIM_ADAM)
            be->iface->adam_update(be->ctx, p->value.numel, p->value.data, p->grad.data, st[0].data,
                                   st[1].data, c->lr, c->beta1, c->beta2, c->eps, c->weight_decay, o->steps);
        else
            be->iface->sgd_update(be->ctx, p->value.numel, p->value.data, p->grad.data, st[0].data, c->lr,
                                  c->momentum, c->weight_decay);
    }
    return PNN_OK;
}

int64_t pnn_optimizer_step_count(const pnn_optimizer *o) { return o->steps; }

/* Restoring the count on resume keeps Adam's bias correction where the checkpoint left it. */
void pnn_optimizer_set_step_count(pnn_optimizer *o, int64_t steps) { o->steps = steps > 0 ? steps : 0; }

void pnn_optimizer_set_lr(pnn_optimizer *o, float lr) { o->cfg.lr = lr; }

int pnn_optimizer_state_count(const pnn_optimizer *o) { return o->n_params * o->per_param; }

pnn_tensor *pnn_optimizer_state(pnn_optimizer *o, int i, const char **name) {
    if (i < 0 || i >= pnn_optimizer_state_count(o)) {
        if (name) *name = NULL;
        return NULL;
    }
    if (name) *name = o->state_names[i];
    return &o->state[i];
}
