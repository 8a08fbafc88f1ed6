/* What every layer shares: its parameter list and its release. */
#include "pnn/layer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The parameter is named "<layer>.<pname>" (its checkpoint key); a name that would not fit is
 * refused rather than truncated, since two truncated names could collide in a checkpoint.
 * Growing l->params moves it: pointers from earlier calls are stale afterwards. */
pnn_status pnn_layer_add_param(pnn_layer *l, const char *pname, int ndim, const int64_t *shape,
                               pnn_param **out) {
    char name[sizeof ((pnn_param *)0)->name];
    int len = snprintf(name, sizeof name, "%s.%s", l->name, pname);
    if (len < 0 || (size_t)len >= sizeof name)
        return PNN_ERROR(PNN_ERR_INVALID, "parameter name '%s.%s' is longer than %zu characters",
                         l->name, pname, sizeof name - 1);
    pnn_param *params = realloc(l->params, (size_t)(l->n_params + 1) * sizeof *params);
    if (!params) return PNN_ERROR(PNN_ERR_NOMEM, "out of memory adding parameter '%s'", name);
    l->params = params;
    pnn_param *p = &params[l->n_params];
    memset(p, 0, sizeof *p);
    memcpy(p->name, name, (size_t)len + 1);
    pnn_status st = pnn_tensor_init(&p->value, l->be, ndim, shape);
    if (st == PNN_OK) st = pnn_tensor_init(&p->grad, l->be, ndim, shape);
    if (st != PNN_OK) {
        pnn_tensor_free(&p->value);
        pnn_tensor_free(&p->grad);
        return pnn_error_prefix(st, "parameter '%s': ", name);
    }
    l->n_params++;
    if (out) *out = p;
    return PNN_OK;
}

void pnn_layer_free(pnn_layer *l) {
    if (!l) return;
    if (l->iface && l->iface->destroy) l->iface->destroy(l);
    for (int i = 0; i < l->n_params; i++) {
        pnn_tensor_free(&l->params[i].value);
        pnn_tensor_free(&l->params[i].grad);
    }
    free(l->params);
    free(l);
}
