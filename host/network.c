/* Building a network from its config, and running it forward and backward. */
#include "pnn/network.h"

#include <stdio.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "pnn/clock.h"
#include "pnn/comm.h"
#include "pnn/device.h"
#include "pnn/fileio.h"
#include "pnn/twin.h"

static const char *const layer_kinds =
    "linear, conv2d, relu, tanh, sigmoid, scale, patchify, concat_rows, pad, slice, skip, concat_skip, normalize, "
    "physical";

/* Reads a list of n positive integers from map[key]; `example` shows the expected form. */
static pnn_status cfg_ints(const pnn_cfg *map, const char *key, int n, int64_t *out, const char *example) {
    const pnn_cfg *v = pnn_cfg_get(map, key);
    if (!v || pnn_cfg_type_of(v) != PNN_CFG_LIST || pnn_cfg_len(v) != n)
        return PNN_ERROR(PNN_ERR_CONFIG, "%s:%d: key '%s' must be a list of %d positive integers, %s",
                         pnn_cfg_source(map), pnn_cfg_line(v ? v : map), key, n, example);
    for (int i = 0; i < n; i++) {
        const char *s = pnn_cfg_scalar(pnn_cfg_at(v, i));
        char *end;
        long long x = s ? strtoll(s, &end, 10) : 0;
        if (!s || *end || x < 1 || x > 1 << 20)
            return PNN_ERROR(PNN_ERR_CONFIG, "%s:%d: key '%s' must be a list of %d positive integers, %s",
                             pnn_cfg_source(map), pnn_cfg_line(v), key, n, example);
        out[i] = x;
    }
    return PNN_OK;
}

static pnn_status cfg_pair(const pnn_cfg *map, const char *key, int64_t out[2]) {
    return cfg_ints(map, key, 2, out, "e.g. [7, 7]");
}

/* rank/local_rank fill a physical layer's device template ({rank}, {local_rank}). */
static pnn_status build_layer(const pnn_cfg *m, int index, const pnn_backend *be, int64_t in_cols,
                              uint64_t seed, int rank, int local_rank, pnn_layer *const *before,
                              pnn_layer **out) {
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
    if (!strcmp(kind, "skip")) {
        static const char *const keys[] = {"kind", "name", NULL};
        PNN_TRY(pnn_cfg_check_keys(m, keys, where));
        return pnn_layer_skip(out, be, name);
    }
    if (!strcmp(kind, "concat_skip")) {
        static const char *const keys[] = {"kind", "name", "from", NULL};
        const char *from;
        PNN_TRY(pnn_cfg_check_keys(m, keys, where));
        PNN_TRY(pnn_cfg_str(m, "from", 1, NULL, &from));
        for (int i = index - 1; i >= 0; i--)
            if (!strcmp(before[i]->name, from)) {
                if (!pnn_layer_is_skip(before[i]))
                    return PNN_ERROR(PNN_ERR_CONFIG, "%s:%d: %s: from '%s' names layer %d, a %s layer; it must name "
                                     "a skip layer", pnn_cfg_source(m), pnn_cfg_line(pnn_cfg_get(m, "from")), where,
                                     from, i, before[i]->iface->kind);
                return pnn_layer_concat_skip(out, be, name, before[i]);
            }
        return PNN_ERROR(PNN_ERR_CONFIG, "%s:%d: %s: from '%s' names no earlier layer; put {kind: skip, name: %s} "
                         "before the layers whose output it joins", pnn_cfg_source(m),
                         pnn_cfg_line(pnn_cfg_get(m, "from")), where, from, from);
    }
    if (!strcmp(kind, "normalize")) {
        static const char *const keys[] = {"kind", "name", "abs", NULL};
        int abs_first;
        PNN_TRY(pnn_cfg_check_keys(m, keys, where));
        PNN_TRY(pnn_cfg_bool(m, "abs", 0, 0, &abs_first));
        return pnn_layer_normalize(out, be, name, abs_first);
    }
    if (!strcmp(kind, "conv2d")) {
        static const char *const keys[] = {"kind", "name", "image", "out_channels", "kernel", "stride", "pad", "bias",
                                           NULL};
        int64_t image[3], kernel[2], out_c, stride, pad;
        int bias;
        PNN_TRY(pnn_cfg_check_keys(m, keys, where));
        PNN_TRY(cfg_ints(m, "image", 3, image, "[channels, height, width], e.g. [1, 28, 28]"));
        PNN_TRY(cfg_ints(m, "kernel", 2, kernel, "[height, width], e.g. [3, 3]"));
        PNN_TRY(pnn_cfg_int(m, "out_channels", 1, 0, 1, 1 << 16, &out_c));
        PNN_TRY(pnn_cfg_int(m, "stride", 0, 1, 1, 1 << 10, &stride));
        PNN_TRY(pnn_cfg_int(m, "pad", 0, 0, 0, 1 << 10, &pad));
        PNN_TRY(pnn_cfg_bool(m, "bias", 0, 1, &bias));
        return pnn_layer_conv2d(out, be, name, image[0], image[1], image[2], out_c, kernel[0], kernel[1], stride, pad,
                                bias, seed);
    }
    if (!strcmp(kind, "physical")) {
        static const char *const keys[] = {"kind", "name", "device", "twin", "twin_noise", "outputs", NULL};
        const char *device, *outputs;
        double twin_noise;
        PNN_TRY(pnn_cfg_check_keys(m, keys, where));
        const char *tn = pnn_cfg_scalar(pnn_cfg_get(m, "twin_noise"));
        if (tn && !strcmp(tn, "oracle")) twin_noise = PNN_TWIN_NOISE_ORACLE;
        else if (tn && !strcmp(tn, "estimate")) twin_noise = PNN_TWIN_NOISE_ESTIMATE;
        else if (tn && !strcmp(tn, "nominal")) twin_noise = -1.0;
        else if (pnn_cfg_float(m, "twin_noise", 0, -1.0, -1.0, 100.0, &twin_noise) != PNN_OK) {
            char close[16];
            pnn_suggest(tn, "oracle, estimate, nominal", close, sizeof close);
            return PNN_ERROR(PNN_ERR_CONFIG, "%s:%d: %s: twin_noise is '%s'; expected the input noise the twin models "
                             "in training (a number >= 0; nominal or -1, the default, for the device's nominal noise), estimate "
                             "(estimated from the device's output) or oracle (the simulator's own draws)%s%s%s",
                             pnn_cfg_source(pnn_cfg_get(m, "twin_noise")), pnn_cfg_line(pnn_cfg_get(m, "twin_noise")),
                             where, tn ? tn : "?",
                             *close ? "; did you mean '" : "", close, *close ? "'?" : "");
        }
        const pnn_cfg *dnode = pnn_cfg_get(m, "device");
        int n_list = pnn_cfg_type_of(dnode) == PNN_CFG_LIST ? pnn_cfg_len(dnode) : 0;
        if (dnode && pnn_cfg_type_of(dnode) == PNN_CFG_LIST && !n_list)
            return PNN_ERROR(PNN_ERR_CONFIG, "%s:%d: %s: key 'device' is an empty list; give a device URI, or a "
                             "list of from 1 to %d copies of the device", pnn_cfg_source(dnode), pnn_cfg_line(dnode),
                             where, PNN_LAYER_MAX_COPIES);
        if (!n_list) PNN_TRY(pnn_cfg_str(m, "device", 1, NULL, &device));
        PNN_TRY(pnn_cfg_str(m, "outputs", 0, "all", &outputs));
        /* device: a URI, or copies of the device (a list of URIs, or a {A..B} range in one); the
         * config keeps the template; each rank opens its own device */
        char *uris[PNN_LAYER_MAX_COPIES] = {0}, why[512];
        int n = 0;
        pnn_status st = PNN_OK;
        for (int i = 0; st == PNN_OK && i < (n_list ? n_list : 1); i++) {
            const char *templ = n_list ? pnn_cfg_scalar(pnn_cfg_at(dnode, i)) : device;
            if (!templ) {
                st = PNN_ERROR(PNN_ERR_CONFIG, "item %d is not a device URI", i);
                break;
            }
            int first = n;
            st = pnn_device_uri_expand(templ, uris, &n, PNN_LAYER_MAX_COPIES);
            for (int k = first; st == PNN_OK && k < n; k++) {
                char uri[1024];
                st = pnn_comm_expand(uris[k], rank, local_rank, uri, sizeof uri);
                if (st == PNN_OK) {
                    free(uris[k]);
                    if (!(uris[k] = strdup(uri))) st = PNN_ERROR(PNN_ERR_NOMEM, "out of memory");
                }
            }
        }
        if (st != PNN_OK) {
            snprintf(why, sizeof why, "%s", pnn_last_error());
            st = PNN_ERROR(PNN_ERR_CONFIG, "%s:%d: %s: key 'device': %s", pnn_cfg_source(dnode), pnn_cfg_line(dnode),
                           where, why);
        } else {
            st = pnn_layer_physical_cfg(out, be, name, (const char *const *)uris, n, pnn_cfg_get(m, "twin"),
                                        twin_noise, outputs, seed);
        }
        for (int k = 0; k < n; k++) free(uris[k]);
        return st;
    }
    return PNN_ERROR(PNN_ERR_CONFIG, "%s:%d: unknown layer kind '%s'; known kinds: %s", pnn_cfg_source(m),
                     pnn_cfg_line(pnn_cfg_get(m, "kind")), kind, layer_kinds);
}

void pnn_network_free(pnn_network *net) {
    if (!net) return;
    for (int i = 0; i < net->n_layers; i++) pnn_layer_free(net->layers[i]);
    for (int s = 0; s < PNN_LAYER_MAX_SLOTS; s++) {
        if (!net->acts[s]) continue;
        for (int i = 0; i <= net->n_layers; i++) pnn_tensor_free(&net->acts[s][i]);
        free(net->acts[s]);
    }
    if (net->grads)
        for (int i = 0; i <= net->n_layers; i++) pnn_tensor_free(&net->grads[i]);
    free(net->layers);
    free(net->grads);
    free(net->params);
    free(net);
}

pnn_status pnn_network_build(const pnn_cfg *list, const pnn_backend *be, int64_t in_dim, uint64_t seed,
                             pnn_network **out) {
    return pnn_network_build_rank(list, be, in_dim, seed, 0, 0, out);
}

pnn_status pnn_network_build_rank(const pnn_cfg *list, const pnn_backend *be, int64_t in_dim, uint64_t seed,
                                  int rank, int local_rank, pnn_network **out) {
    pnn_status st = PNN_OK;
    *out = NULL;
    if (!list || pnn_cfg_type_of(list) != PNN_CFG_LIST || pnn_cfg_len(list) == 0)
        return PNN_ERROR(PNN_ERR_CONFIG, "%s:%d: 'network' must be a non-empty list of layers, each a map "
                                         "with a 'kind' (%s)",
                         list ? pnn_cfg_source(list) : "config", list ? pnn_cfg_line(list) : 0, layer_kinds);
    pnn_network *net = calloc(1, sizeof *net);
    int n = pnn_cfg_len(list);
    if (!net || !(net->layers = calloc((size_t)n, sizeof *net->layers)) ||
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
        st = build_layer(m, i, be, cols, seed, rank, local_rank, net->layers, &net->layers[i]);
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
    for (int i = 0; i <= n; i++) PNN_GOTO(pnn_tensor_init2(&net->grads[i], be, 1, 1));
    *out = net;
    return PNN_OK;
fail:
    pnn_network_free(net);
    return st;
}

/* The activations of a slot, allocated on first use. */
static pnn_status slot_acts(pnn_network *net, int slot, pnn_tensor **out) {
    if (slot < 0 || slot >= PNN_LAYER_MAX_SLOTS)
        return PNN_ERROR(PNN_ERR_INVALID, "micro-batch slot %d out of range [0, %d): use fewer, larger "
                         "micro-batches", slot, PNN_LAYER_MAX_SLOTS);
    if (!net->acts[slot]) {
        pnn_tensor *a = calloc((size_t)net->n_layers + 1, sizeof *a);
        if (!a) return PNN_ERROR(PNN_ERR_NOMEM, "out of memory for the activations of micro-batch %d", slot);
        for (int i = 0; i <= net->n_layers; i++) a[i].backend = net->be;
        net->acts[slot] = a;
    }
    *out = net->acts[slot];
    return PNN_OK;
}

/* Copies x into the slot's input and rewinds its forward. */
static pnn_status forward_start(pnn_network *net, int slot, const pnn_tensor *x) {
    pnn_tensor *acts = NULL;
    PNN_TRY(pnn_tensor_check2(x, -1, net->in_dim, "network input"));
    PNN_TRY(slot_acts(net, slot, &acts));
    PNN_TRY(pnn_tensor_reshape2(&acts[0], pnn_tensor_rows(x), net->in_dim));
    PNN_TRY(pnn_tensor_copy(&acts[0], x));
    net->state[slot] = (pnn_slot_state){0, 0, 0};
    return PNN_OK;
}

/* Layers whose forward this slot has started, a begun one included. */
static int slot_reached(const pnn_network *net, int slot) {
    return net->state[slot].layer + net->state[slot].begun;
}

/* How far forward_advance goes. */
typedef enum {
    ADVANCE_NONBLOCKING, /* returns after starting a layer that waits (so the caller can feed other
                          * devices), at a layer that is not ready, or before a waiting layer
                          * index >= limit (one the slot ahead has not started yet) */
    ADVANCE_WAIT_ONE,    /* waits for the current layer, then goes on as non-blocking */
    ADVANCE_TO_END       /* runs to the end, waiting as needed */
} advance_mode;

/* Runs the slot's forward onward; *waited gets the seconds spent blocked. */
static pnn_status forward_advance(pnn_network *net, int slot, pnn_pass pass, advance_mode mode, int limit,
                                  double *waited) {
    pnn_slot_state *st = &net->state[slot];
    pnn_tensor *acts = net->acts[slot];
    while (st->layer < net->n_layers) {
        int i = st->layer;
        pnn_layer *l = net->layers[i];
        if (!l->iface->forward_begin) {
            int64_t rows, cols;
            PNN_TRY(l->iface->out_shape(l, pnn_tensor_rows(&acts[i]), pnn_tensor_cols(&acts[i]), &rows, &cols));
            PNN_TRY(pnn_tensor_reshape2(&acts[i + 1], rows, cols));
            PNN_TRY(l->iface->forward(l, &acts[i], &acts[i + 1], pass, slot));
            st->layer++;
            continue;
        }
        if (!st->begun) {
            if (mode == ADVANCE_NONBLOCKING && i >= limit) return PNN_OK;
            int64_t rows, cols;
            PNN_TRY(l->iface->out_shape(l, pnn_tensor_rows(&acts[i]), pnn_tensor_cols(&acts[i]), &rows, &cols));
            PNN_TRY(pnn_tensor_reshape2(&acts[i + 1], rows, cols));
            PNN_TRY(l->iface->forward_begin(l, &acts[i], pass, slot));
            st->begun = 1;
            if (mode == ADVANCE_NONBLOCKING) return PNN_OK;
        }
        if (mode == ADVANCE_NONBLOCKING && !l->iface->forward_ready(l, slot)) return PNN_OK;
        double t0 = pnn_now_s();
        pnn_status s = l->iface->forward_end(l, &acts[i], &acts[i + 1], pass, slot);
        if (waited) *waited += l->iface->forward_waited ? l->iface->forward_waited(l, slot) : pnn_now_s() - t0;
        st->begun = 0;
        PNN_TRY(s);
        st->layer++;
        if (mode == ADVANCE_WAIT_ONE) mode = ADVANCE_NONBLOCKING;
    }
    return PNN_OK;
}

static pnn_status backward_slot(pnn_network *net, int slot, const pnn_tensor *dy) {
    int n = net->n_layers;
    pnn_tensor *acts = net->acts[slot];
    if (!acts || net->state[slot].layer != n)
        return PNN_ERROR(PNN_ERR_INVALID, "backward of micro-batch %d before its forward finished", slot);
    PNN_TRY(pnn_tensor_check2(dy, pnn_tensor_rows(&acts[n]), net->out_dim, "network output gradient"));
    PNN_TRY(pnn_tensor_reshape2(&net->grads[n], pnn_tensor_rows(dy), net->out_dim));
    PNN_TRY(pnn_tensor_copy(&net->grads[n], dy));
    for (int i = n - 1; i >= 0; i--) {
        pnn_layer *l = net->layers[i];
        pnn_tensor *dx = NULL;
        if (i > 0) {
            PNN_TRY(pnn_tensor_reshape2(&net->grads[i], pnn_tensor_rows(&acts[i]), pnn_tensor_cols(&acts[i])));
            dx = &net->grads[i];
        }
        PNN_TRY(l->iface->backward(l, &acts[i], &acts[i + 1], &net->grads[i + 1], dx, slot));
    }
    return PNN_OK;
}

pnn_status pnn_network_backward_block(pnn_network *net, int slot, int first, int last, const pnn_tensor *dy) {
    pnn_tensor *acts = net->acts[slot];
    if (first < 0 || last >= net->n_layers || first > last)
        return PNN_ERROR(PNN_ERR_INVALID, "backward block %d..%d of a network of %d layers", first, last, net->n_layers);
    if (!acts || net->state[slot].begun || net->state[slot].layer <= last || net->state[slot].first > first)
        return PNN_ERROR(PNN_ERR_INVALID, "backward of layers %d..%d of micro-batch %d, whose forward ran layers "
                         "%d..%d", first, last, slot, net->state[slot].first, net->state[slot].layer - 1);
    PNN_TRY(pnn_tensor_check2(dy, pnn_tensor_rows(&acts[last + 1]), pnn_tensor_cols(&acts[last + 1]),
                              "block output gradient"));
    const pnn_tensor *g = dy;
    for (int i = last; i >= first; i--) {
        pnn_layer *l = net->layers[i];
        pnn_tensor *dx = NULL;
        if (i > first) {
            PNN_TRY(pnn_tensor_reshape2(&net->grads[i], pnn_tensor_rows(&acts[i]), pnn_tensor_cols(&acts[i])));
            dx = &net->grads[i];
        }
        PNN_TRY(l->iface->backward(l, &acts[i], &acts[i + 1], g, dx, slot));
        g = dx;
    }
    return PNN_OK;
}

/* After failure st: waits for and drops every device request still in flight, keeping st's
 * message (the waits may fail too). */
static pnn_status abandon_all(pnn_network *net, pnn_status st) {
    char message[2048];
    snprintf(message, sizeof message, "%s", pnn_last_error());
    for (int i = 0; i < net->n_layers; i++)
        if (net->layers[i]->iface->forward_abandon) net->layers[i]->iface->forward_abandon(net->layers[i]);
    for (int s = 0; s < PNN_LAYER_MAX_SLOTS; s++) net->state[s] = (pnn_slot_state){0, 0, 0};
    return pnn_error_at(st, __FILE__, __LINE__, "%s", message);
}

pnn_status pnn_network_forward_block(pnn_network *net, int slot, int first, int last, const pnn_tensor *x,
                                     pnn_pass pass, const pnn_tensor **y) {
    pnn_tensor *acts = NULL;
    if (first < 0 || last >= net->n_layers || first > last)
        return PNN_ERROR(PNN_ERR_INVALID, "forward block %d..%d of a network of %d layers", first, last, net->n_layers);
    PNN_TRY(slot_acts(net, slot, &acts));
    for (int i = first; i <= last; i++)
        if (net->layers[i]->iface->params_changed) net->layers[i]->iface->params_changed(net->layers[i]);
    if (x != &acts[first]) {
        PNN_TRY(pnn_tensor_reshape2(&acts[first], pnn_tensor_rows(x), pnn_tensor_cols(x)));
        PNN_TRY(pnn_tensor_copy(&acts[first], x));
    }
    net->state[slot] = (pnn_slot_state){first, 0, first};
    for (int i = first; i <= last; i++) {
        pnn_layer *l = net->layers[i];
        int64_t rows, cols;
        pnn_status st = l->iface->out_shape(l, pnn_tensor_rows(&acts[i]), pnn_tensor_cols(&acts[i]), &rows, &cols);
        if (st == PNN_OK) st = pnn_tensor_reshape2(&acts[i + 1], rows, cols);
        if (st == PNN_OK) st = l->iface->forward(l, &acts[i], &acts[i + 1], pass, slot);
        if (st != PNN_OK) {
            net->state[slot] = (pnn_slot_state){0, 0, 0};
            return abandon_all(net, st);
        }
        net->state[slot].layer = i + 1;
    }
    *y = &acts[last + 1];
    return PNN_OK;
}

/* Every pass starts from parameters that may have changed since the last one. */
static void params_may_have_changed(pnn_network *net) {
    for (int i = 0; i < net->n_layers; i++)
        if (net->layers[i]->iface->params_changed) net->layers[i]->iface->params_changed(net->layers[i]);
}

pnn_status pnn_network_forward(pnn_network *net, const pnn_tensor *x, pnn_pass pass, const pnn_tensor **y) {
    params_may_have_changed(net);
    pnn_status st = forward_start(net, 0, x);
    if (st == PNN_OK) st = forward_advance(net, 0, pass, ADVANCE_TO_END, net->n_layers, NULL);
    if (st != PNN_OK) return abandon_all(net, st);
    *y = &net->acts[0][net->n_layers];
    return PNN_OK;
}

pnn_status pnn_network_backward(pnn_network *net, const pnn_tensor *dy) { return backward_slot(net, 0, dy); }

/* Largest |value| of a tensor (host copy in chunks; for error messages). */
static double max_abs(const pnn_tensor *t) {
    float buf[4096];
    double m = 0;
    for (int64_t first = 0; first < t->numel; first += 4096) {
        int64_t k = t->numel - first < 4096 ? t->numel - first : 4096;
        t->backend->iface->to_host(t->backend->ctx, buf, t->data + first, (size_t)k * sizeof(float));
        for (int64_t i = 0; i < k; i++) m = fabs((double)buf[i]) > m ? fabs((double)buf[i]) : m;
    }
    return m;
}

/* After a loss that failed on NaN or Inf: names the first layer whose output holds them and how
 * large its input was, so that a device answering 1e38 is not mistaken for a diverged run. */
static pnn_status explain_nonfinite(pnn_network *net, int slot, pnn_status st) {
    const pnn_tensor *acts = net->acts[slot];
    for (int i = 0; i < net->n_layers; i++) {
        const pnn_tensor *out = &acts[i + 1];
        if (!out->backend || !out->backend->iface->count_nonfinite(out->backend->ctx, out->numel, out->data)) continue;
        char why[2048];
        snprintf(why, sizeof why, "%s", pnn_last_error());
        return PNN_ERROR(st, "%s. Layer '%s' was the first to give NaN or Inf, from an input whose largest value is "
                         "%.3g%s%s%s", why, net->layers[i]->name, max_abs(&acts[i]),
                         i ? " (the output of layer '" : "", i ? net->layers[i - 1]->name : "", i ? "')" : "");
    }
    return st;
}

static pnn_status finish_micro(pnn_network *net, int slot, pnn_loss_fn loss, void *user) {
    pnn_tensor *dy = &net->grads[net->n_layers];
    const pnn_tensor *y = &net->acts[slot][net->n_layers];
    PNN_TRY(pnn_tensor_reshape2(dy, pnn_tensor_rows(y), net->out_dim));
    pnn_status st = loss(user, slot, y, dy);
    if (st == PNN_ERR_FORMAT) st = explain_nonfinite(net, slot, st);
    PNN_TRY(st);
    if (net->backward_hook) return net->backward_hook(net->backward_user, net, slot, dy);
    /* backward_slot copies dy onto itself harmlessly: it is grads[n] already */
    return backward_slot(net, slot, dy);
}

static pnn_status run_sequential(pnn_network *net, int n, const pnn_tensor *xs, pnn_pass pass, pnn_loss_fn loss,
                                 void *user, double *waited) {
    for (int k = 0; k < n; k++) {
        PNN_TRY(forward_start(net, k, &xs[k]));
        PNN_TRY(forward_advance(net, k, pass, ADVANCE_TO_END, net->n_layers, waited));
        PNN_TRY(finish_micro(net, k, loss, user));
    }
    return PNN_OK;
}

/* The pipelined schedule. The backend thread loops over: start every forward as far as it can
 * go without waiting (in slot order, a slot never starting a waiting layer before the slot
 * ahead of it has, so that devices and twins see their calls in slot order); then the next
 * backward in slot order if its forward is done; when neither can move, it blocks on the
 * oldest request in flight. */
static pnn_status run_pipelined(pnn_network *net, int n, const pnn_tensor *xs, pnn_pass pass, pnn_loss_fn loss,
                                void *user, double *waited) {
    for (int k = 0; k < n; k++) PNN_TRY(forward_start(net, k, &xs[k]));
    int next_backward = 0;
    while (next_backward < n) {
        int moved = 0;
        for (int k = next_backward; k < n; k++) {
            if (net->state[k].layer == net->n_layers) continue;
            int before = slot_reached(net, k), layer_before = net->state[k].layer;
            int limit = k == 0 || net->state[k - 1].layer == net->n_layers ? net->n_layers : slot_reached(net, k - 1);
            PNN_TRY(forward_advance(net, k, pass, ADVANCE_NONBLOCKING, limit, waited));
            moved |= slot_reached(net, k) != before || net->state[k].layer != layer_before;
        }
        if (net->state[next_backward].layer == net->n_layers) {
            PNN_TRY(finish_micro(net, next_backward, loss, user));
            next_backward++;
            continue;
        }
        if (!moved) /* nothing can move without a device: wait on the oldest micro-batch */
            PNN_TRY(forward_advance(net, next_backward, pass, ADVANCE_WAIT_ONE, net->n_layers, waited));
    }
    return PNN_OK;
}

pnn_status pnn_network_train_micro(pnn_network *net, int n, const pnn_tensor *xs, pnn_pass pass,
                                   int pipelined, pnn_loss_fn loss, void *user, pnn_schedule_stats *stats) {
    if (n < 1 || n > PNN_LAYER_MAX_SLOTS)
        return PNN_ERROR(PNN_ERR_INVALID, "%d micro-batches: use between 1 and %d", n, PNN_LAYER_MAX_SLOTS);
    double waited = 0, t0 = pnn_now_s();
    params_may_have_changed(net);
    pnn_status st = pipelined ? run_pipelined(net, n, xs, pass, loss, user, &waited)
                              : run_sequential(net, n, xs, pass, loss, user, &waited);
    if (st != PNN_OK) st = abandon_all(net, st);
    if (stats) {
        stats->wall_s = pnn_now_s() - t0;
        stats->wait_s = waited;
    }
    return st;
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
        if (d && k + 2 <= max) {
            counters[k++] = &d->calls;
            counters[k++] = pnn_layer_physical_twin_calls(net->layers[i]);
        }
    }
    /* device copies' counters after every pair (the pairs' layout is what ranks offset) */
    for (int i = 0; i < net->n_layers && k < max; i++)
        k += pnn_layer_physical_copy_counters(net->layers[i], counters + k, max - k);
    return k;
}

int pnn_network_all_devices(const pnn_network *net, pnn_device **devs, int max) {
    int k = 0;
    for (int i = 0; i < net->n_layers; i++)
        for (int c = 0; c < pnn_layer_physical_n_copies(net->layers[i]) && k < max; c++)
            devs[k++] = pnn_layer_physical_copy(net->layers[i], c);
    return k;
}

int pnn_network_counter_count(const pnn_network *net) {
    int n = 0;
    for (int i = 0; i < net->n_layers; i++) {
        int c = pnn_layer_physical_n_copies(net->layers[i]);
        if (c >= 1) n += 2 + (c > 1 ? c : 0); /* (device, twin); then the position and copies 1.. */
    }
    return n;
}

int pnn_network_copies(const pnn_network *net) {
    int most = 0;
    for (int i = 0; i < net->n_layers; i++) {
        int c = pnn_layer_physical_n_copies(net->layers[i]);
        if (c > most) most = c;
    }
    return most;
}

int pnn_network_twin_states(const pnn_network *net, pnn_tensor **t, char (*names)[PNN_TWIN_STATE_NAME_MAX], int max) {
    int k = 0;
    for (int i = 0; i < net->n_layers; i++) {
        pnn_twin *tw = pnn_layer_physical_twin(net->layers[i]);
        if (!tw || !tw->iface->state) continue;
        const char *name;
        pnn_tensor *s;
        for (int j = 0; (s = tw->iface->state(tw, j, &name)) != NULL; j++, k++)
            if (k < max) {
                t[k] = s;
                snprintf(names[k], PNN_TWIN_STATE_NAME_MAX, "twin_state.%s.%s", net->layers[i]->name, name);
            }
    }
    return k;
}

pnn_status pnn_network_twin_states_loaded(pnn_network *net) {
    for (int i = 0; i < net->n_layers; i++) {
        pnn_twin *tw = pnn_layer_physical_twin(net->layers[i]);
        if (tw && tw->iface->state_loaded) PNN_TRY(tw->iface->state_loaded(tw));
    }
    return PNN_OK;
}

pnn_param *pnn_network_param(const pnn_network *net, const char *name) {
    for (int i = 0; i < net->n_params; i++)
        if (!strcmp(net->params[i]->name, name)) return net->params[i];
    return NULL;
}
