/* Building a network from its config, and running it forward and backward. */
#include "pnn/network.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pnn/device.h"
#include "pnn/twin.h"

static const char *const layer_kinds =
    "linear, relu, tanh, sigmoid, scale, patchify, concat_rows, pad, slice, physical";

/* Reads a [a, b] pair of positive integers from map[key]. */
static pnn_status cfg_pair(const pnn_cfg *map, const char *key, int64_t out[2]) {
    const pnn_cfg *v = pnn_cfg_get(map, key);
    if (!v || pnn_cfg_type_of(v) != PNN_CFG_LIST || pnn_cfg_len(v) != 2)
        return PNN_ERROR(PNN_ERR_CONFIG, "%s:%d: key '%s' must be a list of two integers, e.g. [7, 7]",
                         pnn_cfg_source(map), pnn_cfg_line(v ? v : map), key);
    for (int i = 0; i < 2; i++) {
        const char *s = pnn_cfg_scalar(pnn_cfg_at(v, i));
        char *end;
        long long x = s ? strtoll(s, &end, 10) : 0;
        if (!s || *end || x < 1 || x > 1 << 20)
            return PNN_ERROR(PNN_ERR_CONFIG, "%s:%d: key '%s' must be a list of two positive integers",
                             pnn_cfg_source(map), pnn_cfg_line(v), key);
        out[i] = x;
    }
    return PNN_OK;
}

static pnn_status build_layer(const pnn_cfg *m, int index, const pnn_backend *be, int64_t in_cols,
                              uint64_t seed, pnn_layer **out) {
    const char *kind, *name;
    char default_name[64];
    PNN_TRY(pnn_cfg_str(m, "kind", 1, NULL, &kind));
    snprintf(default_name, sizeof default_name, "%s%d", kind, index);
    PNN_TRY(pnn_cfg_str(m, "name", 0, default_name, &name));
    char where[96];
    snprintf(where, sizeof where, "layer %d (%s)", index, kind);
    if (!strcmp(kind, "linear")) {
        static const char *const keys[] = {"kind", "name", "out", "bias", NULL};
        int64_t out_dim;
        int bias;
        PNN_TRY(pnn_cfg_check_keys(m, keys, where));
        PNN_TRY(pnn_cfg_int(m, "out", 1, 0, 1, 1 << 24, &out_dim));
        PNN_TRY(pnn_cfg_bool(m, "bias", 0, 1, &bias));
        return pnn_layer_linear(out, be, name, in_cols, out_dim, bias, seed);
    }
    if (!strcmp(kind, "relu") || !strcmp(kind, "tanh") || !strcmp(kind, "sigmoid")) {
        static const char *const keys[] = {"kind", "name", NULL};
        PNN_TRY(pnn_cfg_check_keys(m, keys, where));
        pnn_act act = !strcmp(kind, "relu") ? PNN_ACT_RELU : !strcmp(kind, "tanh") ? PNN_ACT_TANH : PNN_ACT_SIGMOID;
        return pnn_layer_activation(out, be, name, act);
    }
    if (!strcmp(kind, "scale")) {
        static const char *const keys[] = {"kind", "name", "init", NULL};
        double init;
        PNN_TRY(pnn_cfg_check_keys(m, keys, where));
        PNN_TRY(pnn_cfg_float(m, "init", 0, 1.0, -1e6, 1e6, &init));
        return pnn_layer_scale(out, be, name, (float)init);
    }
    if (!strcmp(kind, "patchify")) {
        static const char *const keys[] = {"kind", "name", "image", "patch", NULL};
        int64_t image[2], patch[2];
        PNN_TRY(pnn_cfg_check_keys(m, keys, where));
        PNN_TRY(cfg_pair(m, "image", image));
        PNN_TRY(cfg_pair(m, "patch", patch));
        return pnn_layer_patchify(out, be, name, image[0], image[1], patch[0], patch[1]);
    }
    if (!strcmp(kind, "concat_rows")) {
        static const char *const keys[] = {"kind", "name", "group", NULL};
        int64_t group;
        PNN_TRY(pnn_cfg_check_keys(m, keys, where));
        PNN_TRY(pnn_cfg_int(m, "group", 1, 0, 1, 1 << 24, &group));
        return pnn_layer_concat_rows(out, be, name, group);
    }
    if (!strcmp(kind, "pad")) {
        static const char *const keys[] = {"kind", "name", "before", "after", "value", NULL};
        int64_t before, after;
        double value;
        PNN_TRY(pnn_cfg_check_keys(m, keys, where));
        PNN_TRY(pnn_cfg_int(m, "before", 0, 0, 0, 1 << 24, &before));
        PNN_TRY(pnn_cfg_int(m, "after", 0, 0, 0, 1 << 24, &after));
        PNN_TRY(pnn_cfg_float(m, "value", 0, 0.0, -1e30, 1e30, &value));
        return pnn_layer_pad(out, be, name, before, after, (float)value);
    }
    if (!strcmp(kind, "slice")) {
        static const char *const keys[] = {"kind", "name", "start", "count", NULL};
        int64_t start, count;
        PNN_TRY(pnn_cfg_check_keys(m, keys, where));
        PNN_TRY(pnn_cfg_int(m, "start", 0, 0, 0, 1 << 24, &start));
        PNN_TRY(pnn_cfg_int(m, "count", 1, 0, 1, 1 << 24, &count));
        return pnn_layer_slice(out, be, name, start, count);
    }
    if (!strcmp(kind, "physical")) {
        static const char *const keys[] = {"kind", "name", "device", "twin", "twin_noise", "outputs", NULL};
        const char *device, *twin, *outputs;
        double twin_noise;
        PNN_TRY(pnn_cfg_check_keys(m, keys, where));
        const char *tn = pnn_cfg_scalar(pnn_cfg_get(m, "twin_noise"));
        if (tn && !strcmp(tn, "oracle")) twin_noise = PNN_TWIN_NOISE_ORACLE;
        else PNN_TRY(pnn_cfg_float(m, "twin_noise", 0, -1.0, -1.0, 100.0, &twin_noise));
        PNN_TRY(pnn_cfg_str(m, "device", 1, NULL, &device));
        PNN_TRY(pnn_cfg_str(m, "twin", 0, "analytic", &twin));
        PNN_TRY(pnn_cfg_str(m, "outputs", 0, "all", &outputs));
        return pnn_layer_physical(out, be, name, device, twin, twin_noise, outputs, seed);
    }
    return PNN_ERROR(PNN_ERR_CONFIG, "%s:%d: unknown layer kind '%s'; known kinds: %s", pnn_cfg_source(m),
                     pnn_cfg_line(pnn_cfg_get(m, "kind")), kind, layer_kinds);
}

void pnn_network_free(pnn_network *net) {
    if (!net) return;
    for (int i = 0; i < net->n_layers; i++) pnn_layer_free(net->layers[i]);
    if (net->acts)
        for (int i = 0; i <= net->n_layers; i++) {
            pnn_tensor_free(&net->acts[i]);
            pnn_tensor_free(&net->grads[i]);
        }
    free(net->layers);
    free(net->acts);
    free(net->grads);
    free(net->params);
    free(net);
}

pnn_status pnn_network_build(const pnn_cfg *list, const pnn_backend *be, int64_t in_dim, uint64_t seed,
                             pnn_network **out) {
    pnn_status st = PNN_OK;
    *out = NULL;
    if (!list || pnn_cfg_type_of(list) != PNN_CFG_LIST || pnn_cfg_len(list) == 0)
        return PNN_ERROR(PNN_ERR_CONFIG, "%s:%d: 'network' must be a non-empty list of layers, each a map "
                                         "with a 'kind' (%s)",
                         list ? pnn_cfg_source(list) : "config", list ? pnn_cfg_line(list) : 0, layer_kinds);
    pnn_network *net = calloc(1, sizeof *net);
    int n = pnn_cfg_len(list);
    if (!net || !(net->layers = calloc((size_t)n, sizeof *net->layers)) ||
        !(net->acts = calloc((size_t)n + 1, sizeof *net->acts)) ||
        !(net->grads = calloc((size_t)n + 1, sizeof *net->grads))) {
        pnn_network_free(net);
        return PNN_ERROR(PNN_ERR_NOMEM, "out of memory building a network of %d layers", n);
    }
    net->be = be;
    net->in_dim = in_dim;
    /* Shapes are checked with one sample: rows that layers multiply or divide must work out. */
    int64_t rows = 1, cols = in_dim;
    for (int i = 0; i < n; i++) {
        const pnn_cfg *m = pnn_cfg_at(list, i);
        if (pnn_cfg_type_of(m) != PNN_CFG_MAP) {
            st = PNN_ERROR(PNN_ERR_CONFIG, "%s:%d: network layer %d is not a map with a 'kind'",
                           pnn_cfg_source(m), pnn_cfg_line(m), i);
            goto fail;
        }
        st = build_layer(m, i, be, cols, seed, &net->layers[i]);
        if (st == PNN_OK) {
            net->n_layers = i + 1;
            pnn_layer *l = net->layers[i];
            st = l->iface->out_shape(l, rows, cols, &rows, &cols);
        }
        if (st != PNN_OK) {
            /* config errors already carry file:line; others get the layer's place */
            if (st != PNN_ERR_CONFIG)
                pnn_error_prefix(st, "%s:%d: network layer %d: ", pnn_cfg_source(m), pnn_cfg_line(m), i);
            if (st == PNN_ERR_INVALID) st = PNN_ERR_CONFIG;
            goto fail;
        }
        net->n_params += net->layers[i]->n_params;
    }
    if (rows != 1) {
        st = PNN_ERROR(PNN_ERR_CONFIG,
                       "%s: the network turns one sample into %lld rows; end it with concat_rows so that "
                       "each sample gives one row",
                       pnn_cfg_source(list), (long long)rows);
        goto fail;
    }
    net->out_dim = cols;
    net->params = calloc((size_t)net->n_params + 1, sizeof *net->params);
    if (!net->params) {
        st = PNN_ERROR(PNN_ERR_NOMEM, "out of memory listing parameters");
        goto fail;
    }
    int k = 0;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < net->layers[i]->n_params; j++) net->params[k++] = &net->layers[i]->params[j];
    for (int i = 0; i <= n; i++) {
        PNN_GOTO(pnn_tensor_init2(&net->acts[i], be, 1, 1));
        PNN_GOTO(pnn_tensor_init2(&net->grads[i], be, 1, 1));
    }
    *out = net;
    return PNN_OK;
fail:
    pnn_network_free(net);
    return st;
}

pnn_status pnn_network_forward(pnn_network *net, const pnn_tensor *x, pnn_pass pass, const pnn_tensor **y) {
    PNN_TRY(pnn_tensor_check2(x, -1, net->in_dim, "network input"));
    int64_t rows = pnn_tensor_rows(x), cols = net->in_dim;
    PNN_TRY(pnn_tensor_reshape2(&net->acts[0], rows, cols));
    PNN_TRY(pnn_tensor_copy(&net->acts[0], x));
    for (int i = 0; i < net->n_layers; i++) {
        pnn_layer *l = net->layers[i];
        PNN_TRY(l->iface->out_shape(l, rows, cols, &rows, &cols));
        PNN_TRY(pnn_tensor_reshape2(&net->acts[i + 1], rows, cols));
        PNN_TRY(l->iface->forward(l, &net->acts[i], &net->acts[i + 1], pass));
    }
    *y = &net->acts[net->n_layers];
    return PNN_OK;
}

pnn_status pnn_network_backward(pnn_network *net, const pnn_tensor *dy) {
    int n = net->n_layers;
    PNN_TRY(pnn_tensor_check2(dy, pnn_tensor_rows(&net->acts[n]), net->out_dim, "network output gradient"));
    PNN_TRY(pnn_tensor_reshape2(&net->grads[n], pnn_tensor_rows(dy), net->out_dim));
    PNN_TRY(pnn_tensor_copy(&net->grads[n], dy));
    for (int i = n - 1; i >= 0; i--) {
        pnn_layer *l = net->layers[i];
        pnn_tensor *dx = NULL;
        if (i > 0) {
            PNN_TRY(pnn_tensor_reshape2(&net->grads[i], pnn_tensor_rows(&net->acts[i]),
                                        pnn_tensor_cols(&net->acts[i])));
            dx = &net->grads[i];
        }
        PNN_TRY(l->iface->backward(l, &net->acts[i], &net->acts[i + 1], &net->grads[i + 1], dx));
    }
    return PNN_OK;
}

void pnn_network_zero_grad(pnn_network *net) {
    for (int i = 0; i < net->n_params; i++) pnn_tensor_zero(&net->params[i]->grad);
}

int64_t pnn_network_param_count(const pnn_network *net) {
    int64_t total = 0;
    for (int i = 0; i < net->n_params; i++) total += net->params[i]->value.numel;
    return total;
}

int pnn_network_devices(const pnn_network *net, pnn_device **devs, int max) {
    int k = 0;
    for (int i = 0; i < net->n_layers; i++) {
        pnn_device *d = pnn_layer_physical_device(net->layers[i]);
        if (d && k < max) devs[k++] = d;
    }
    return k;
}

int pnn_network_counters(const pnn_network *net, uint64_t **counters, int max) {
    int k = 0;
    for (int i = 0; i < net->n_layers; i++) {
        pnn_device *d = pnn_layer_physical_device(net->layers[i]);
        pnn_twin *t = pnn_layer_physical_twin(net->layers[i]);
        if (d && k + 2 <= max) {
            counters[k++] = &d->calls;
            counters[k++] = &t->calls;
        }
    }
    return k;
}

pnn_param *pnn_network_param(const pnn_network *net, const char *name) {
    for (int i = 0; i < net->n_params; i++)
        if (!strcmp(net->params[i]->name, name)) return net->params[i];
    return NULL;
}
