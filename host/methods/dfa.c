/* dfa: direct feedback alignment (Nøkland, NeurIPS 2016). The forward pass is PAT's (the devices
 * answer, the twins tape); the output error e = dL/dy is not backpropagated through the network
 * but sent to every block at once through a fixed random matrix: block k's output gradient is
 * B_k e, B_k [d_k, out_dim] with N(0, 1) entries times feedback_scale / sqrt(out_dim), drawn once
 * from (the run's seed, k). A block is a layer with parameters and the parameter-free layers after
 * it; the backward runs inside each block only (a physical layer's through its twin's VJP: the
 * local derivative), so no gradient crosses from one block to the one before. The last block
 * (the network's output) gets e itself: its gradient is exact. Keys (method: {kind: dfa, ...}):
 * physical (twin, the default: a physical layer's controls learn through its twin's local
 * derivative; none: they stay as initialised, and the physical layer is a fixed random
 * feature map), feedback_scale (default 1). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "host/methods/method_impl.h"
#include "pnn/rng.h"

#define DFA_MAX_BLOCKS 64

typedef struct dfa_state {
    int physical_none;
    double scale;
    const pnn_backend *be;
    int n_blocks;
    int first[DFA_MAX_BLOCKS], last[DFA_MAX_BLOCKS];
    float *b[DFA_MAX_BLOCKS];  /* B_k [d_k, out_dim], backend memory; NULL until first used */
    int64_t d[DFA_MAX_BLOCKS];
    pnn_tensor g;              /* a block's output gradient */
    uint64_t seed;
} dfa_state;

static void dfa_destroy(void *state) {
    dfa_state *s = state;
    if (!s) return;
    for (int k = 0; k < s->n_blocks; k++)
        if (s->b[k]) s->be->iface->release(s->be->ctx, s->b[k]);
    pnn_tensor_free(&s->g);
    free(s);
}

static pnn_status dfa_create(const pnn_cfg *spec, void **state) {
    dfa_state *s = calloc(1, sizeof *s);
    if (!s) return PNN_ERROR(PNN_ERR_NOMEM, "out of memory for the dfa method");
    s->scale = 1.0;
    s->n_blocks = -1; /* found at the first step, from the network */
    if (spec) {
        static const char *const keys[] = {"kind", "physical", "feedback_scale", NULL};
        const char *phys = "twin";
        pnn_status st = pnn_cfg_check_keys(spec, keys, "method dfa");
        if (st == PNN_OK) st = pnn_cfg_str(spec, "physical", 0, "twin", &phys);
        if (st == PNN_OK && strcmp(phys, "twin") && strcmp(phys, "none"))
            st = PNN_ERROR(PNN_ERR_CONFIG, "%s:%d: method dfa: physical is '%s'; expected twin (the controls learn "
                           "through the twin's local derivative) or none (they stay as initialised)",
                           pnn_cfg_source(spec), pnn_cfg_line(pnn_cfg_get(spec, "physical")), phys);
        if (st == PNN_OK) st = pnn_cfg_float(spec, "feedback_scale", 0, 1.0, 1e-6, 1e6, &s->scale);
        if (st != PNN_OK) {
            free(s);
            return st;
        }
        s->physical_none = !strcmp(phys, "none");
    }
    *state = s;
    return PNN_OK;
}

/* The blocks of net: each starts at a layer with parameters; layers before the first one belong
 * to none (they have nothing to learn). */
static pnn_status find_blocks(dfa_state *s, const pnn_network *net) {
    s->n_blocks = 0;
    for (int i = 0; i < net->n_layers; i++) {
        if (net->layers[i]->n_params == 0) {
            if (s->n_blocks) s->last[s->n_blocks - 1] = i;
            continue;
        }
        if (s->n_blocks == DFA_MAX_BLOCKS)
            return PNN_ERROR(PNN_ERR_UNSUPPORTED, "method dfa: more than %d layers with parameters", DFA_MAX_BLOCKS);
        s->first[s->n_blocks] = s->last[s->n_blocks] = i;
        s->n_blocks++;
    }
    if (!s->n_blocks) return PNN_ERROR(PNN_ERR_CONFIG, "method dfa: the network has no parameters to train");
    return PNN_OK;
}

static pnn_status dfa_backward(void *user, pnn_network *net, int slot, const pnn_tensor *e) {
    dfa_state *s = user;
    const pnn_backend_i *bi = s->be->iface;
    void *ctx = s->be->ctx;
    int64_t rows = pnn_tensor_rows(e), out = net->out_dim;
    for (int k = s->n_blocks - 1; k >= 0; k--) {
        int first = s->first[k], last = s->last[k];
        if (s->physical_none && pnn_layer_physical_device(net->layers[first])) continue;
        if (k == s->n_blocks - 1 && last == net->n_layers - 1) {
            PNN_TRY(pnn_network_backward_block(net, slot, first, last, e));
            continue;
        }
        int64_t d = pnn_tensor_cols(&net->acts[slot][last + 1]);
        if (!s->b[k]) {
            s->b[k] = bi->alloc(ctx, (size_t)(d * out) * sizeof(float));
            if (!s->b[k]) return PNN_ERROR(PNN_ERR_NOMEM, "method dfa: out of memory for a feedback matrix");
            bi->rng_normal(ctx, s->seed, pnn_rng_stream("method.dfa.feedback", (uint64_t)k), 0, d * out, s->b[k]);
            bi->scale(ctx, d * out, (float)(s->scale / sqrt((double)out)), s->b[k], s->b[k]);
            s->d[k] = d;
        }
        if (s->d[k] != d)
            return PNN_ERROR(PNN_ERR_INVALID, "method dfa: block %d gives %lld features, its feedback matrix was made "
                             "for %lld", k, (long long)d, (long long)s->d[k]);
        PNN_TRY(pnn_tensor_reshape2(&s->g, rows, d));
        /* g [rows, d] = e [rows, out] B_k^T */
        bi->gemm(ctx, false, true, rows, d, out, 1.0f, e->data, out, s->b[k], out, 0.0f, s->g.data, d);
        PNN_TRY(pnn_network_backward_block(net, slot, first, last, &s->g));
    }
    return PNN_OK;
}

static pnn_status dfa_gradient(pnn_trainer *tr, int64_t row0, int64_t rows, int64_t b_global,
                               pnn_schedule_stats *stats) {
    dfa_state *s = tr->method_state;
    if (s->n_blocks < 0) {
        s->be = tr->be;
        s->g.backend = tr->be;
        s->seed = tr->opt.seed;
        pnn_status st = find_blocks(s, tr->net);
        if (st != PNN_OK) {
            s->n_blocks = -1;
            return st;
        }
    }
    tr->net->backward_hook = dfa_backward;
    tr->net->backward_user = s;
    pnn_status st = pnn_method_backprop(tr, PNN_PASS_TRAIN_PAT, row0, rows, b_global, stats);
    tr->net->backward_hook = NULL;
    tr->net->backward_user = NULL;
    return st;
}

const pnn_method_i pnn_method_dfa = {
    .name = "dfa",
    .summary = "direct feedback alignment: the output error to every block through fixed random matrices",
    .create = dfa_create,
    .destroy = dfa_destroy,
    .gradient = dfa_gradient,
};
