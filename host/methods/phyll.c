/* phyll: physical local learning (Momeni et al., Science 382, 1297 (2023); the public code
 * MomeniAli/PhyLL), a forward-forward method: no backward pass crosses the physical system.
 *
 * The network is a chain of blocks. A block ends at a digital layer with parameters (its output
 * is the block's z) and holds the layers before it back to the previous block's end; PhyLL's block
 * z = W [f_phys(|h| / |h|_2); h] + b is, in a config,
 *
 *     {kind: skip, name: h1}, {kind: normalize, abs: true}, {kind: physical, ...},
 *     {kind: concat_skip, from: h1}, {kind: linear, out: 20}
 *
 * (examples/vowels-oscillator-phyll.yaml). Each block k has a fixed random unit vector p_k (from
 * the run's seed) and the goodness g = cos(|z|, p_k). Positive data is the input with its first C
 * entries (C classes) replaced by a one-hot label of value max|x| over the rows at hand, negative
 * data the same with a wrong label drawn uniformly (from the seed and the step). Training is greedy,
 * block by block: the block's layers before z run once on the devices for the positive rows and
 * once for the negative (2 device passes per block per batch, kept), then `inner_steps` Adam steps
 * (the trainer's optimizer settings, or lr:) on the block's z layer minimise the local loss
 *
 *     mean over rows of softplus(-threshold (g_pos - g_neg)),   threshold 4,
 *
 * and the block's final z (positive and negative) is the next block's input. Inference tries
 * every label: C x L device passes per batch, the label with the largest goodness summed over
 * the blocks wins. The label embedding needs room: the network starts with {kind: pad, before: B},
 * B >= C (the label goes into the pad's columns, as PhyLL pads its 12 vowel features with 8
 * zeros), or embed: replace writes it over the first C input features (as forward-forward does on
 * image corners).
 *
 * Variants (key physical): fixed, the default, is PhyLL as published: the physical controls stay
 * as initialised (its code never trains them) and no twin runs. twin goes beyond it: the block's
 * device passes are PAT passes (the twins tape them), and at the first inner step of each batch
 * the block's local loss is backpropagated through the block (through the physical layer by its
 * twin's local derivative) to its controls, which take one optimizer step per batch; nothing
 * crosses into the block before. Reported by the trainer: the step loss is the sum over blocks
 * of the mean local loss over the inner steps, and the training accuracy the fraction of rows
 * whose true label's summed goodness beats the drawn wrong label's (a pair, not the C-way
 * prediction, which would cost C x L passes); test loss is the cross-entropy of
 * softmax(threshold x summed goodness) over the labels. Keys (method: {kind: phyll, ...}):
 * inner_steps (10), threshold (4), lr (the optimizer's), physical (fixed | twin), embed (pad |
 * replace). One process, comm.reduce fast. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "host/methods/method_impl.h"
#include "host/train_dp.h"
#include "pnn/clock.h"
#include "pnn/rng.h"

#define PHYLL_MAX_BLOCKS 32

typedef struct phyll_state {
    int64_t inner;
    double threshold, lr;       /* lr < 0: the trainer's optimizer's */
    int train_physical;         /* physical: twin (1) or spsa (2); fixed 0 */
    int64_t spsa_k;             /* physical: spsa: perturbations per block and batch */
    double spsa_c;
    int embed_replace;          /* embed: replace */
    /* found by prepare */
    int n_blocks, start;        /* blocks begin at layer start (1 after a pad that takes the label) */
    int first[PHYLL_MAX_BLOCKS], last[PHYLL_MAX_BLOCKS], has_physical[PHYLL_MAX_BLOCKS];
    int64_t d[PHYLL_MAX_BLOCKS];
    float *p[PHYLL_MAX_BLOCKS]; /* host, d[k] each: the unit goodness vectors */
    pnn_optimizer *opt_w[PHYLL_MAX_BLOCKS], *opt_theta[PHYLL_MAX_BLOCKS];
    pnn_param *theta[PHYLL_MAX_BLOCKS][64];     /* the block's physical controls */
    int n_theta[PHYLL_MAX_BLOCKS];
    float *t0, *tp, *delta;     /* host, per spsa estimate: controls, controls + c delta as run, delta */
    double *tg;
    int64_t cap_theta;
    int classes;
    pnn_tensor h[2], dz[2];     /* backend: block inputs (positive, negative), z gradients */
    float *buf, *zbuf[2];       /* host scratch */
    float *src;                 /* host: the rows to embed labels into (embed_source), src_rows x src_cols */
    int64_t src_rows, src_cols;
    double src_max;             /* max|.| over them: the label's value */
    double *gsum[2], *gv[2], *wv[2]; /* per row: summed goodness, goodness, loss weight (pos, neg) */
    double *gl;                 /* per row x label: summed goodness at evaluation */
    int *neg;
    int64_t cap_rows, cap_buf;
} phyll_state;

static void phyll_destroy(void *state) {
    phyll_state *s = state;
    if (!s) return;
    for (int k = 0; k < s->n_blocks; k++) {
        free(s->p[k]);
        pnn_optimizer_free(s->opt_w[k]);
        pnn_optimizer_free(s->opt_theta[k]);
    }
    for (int i = 0; i < 2; i++) {
        pnn_tensor_free(&s->h[i]);
        pnn_tensor_free(&s->dz[i]);
        free(s->zbuf[i]);
        free(s->gsum[i]);
        free(s->gv[i]);
        free(s->wv[i]);
    }
    free(s->buf);
    free(s->src);
    free(s->t0), free(s->tp), free(s->delta), free(s->tg);
    free(s->gl);
    free(s->neg);
    free(s);
}

static pnn_status phyll_create(const pnn_cfg *spec, void **state) {
    phyll_state *s = calloc(1, sizeof *s);
    if (!s) return PNN_ERROR(PNN_ERR_NOMEM, "out of memory for the phyll method");
    s->inner = 10;
    s->threshold = 4.0;
    s->lr = -1.0;
    s->spsa_k = 1;
    s->spsa_c = 0.01;
    if (spec) {
        static const char *const keys[] = {"kind", "inner_steps", "threshold", "lr", "physical", "embed",
                                           "perturbations", "c", NULL};
        const char *phys = "fixed", *embed = "pad";
        pnn_status st = pnn_cfg_check_keys(spec, keys, "method phyll");
        if (st == PNN_OK) st = pnn_cfg_int(spec, "inner_steps", 0, 10, 1, 1 << 16, &s->inner);
        if (st == PNN_OK) st = pnn_cfg_float(spec, "threshold", 0, 4.0, 1e-6, 1e6, &s->threshold);
        if (st == PNN_OK) st = pnn_cfg_float(spec, "lr", 0, -1.0, 0.0, 1e3, &s->lr);
        if (st == PNN_OK) st = pnn_cfg_str(spec, "physical", 0, "fixed", &phys);
        if (st == PNN_OK && strcmp(phys, "fixed") && strcmp(phys, "twin") && strcmp(phys, "spsa"))
            st = PNN_ERROR(PNN_ERR_CONFIG, "%s:%d: method phyll: physical is '%s'; expected fixed (the controls stay as "
                           "initialised, as in PhyLL), twin (they learn the block's local loss through the twin) or "
                           "spsa (they learn it from device passes alone)",
                           pnn_cfg_source(spec), pnn_cfg_line(pnn_cfg_get(spec, "physical")), phys);
        if (st == PNN_OK) st = pnn_cfg_int(spec, "perturbations", 0, 1, 1, 1 << 16, &s->spsa_k);
        if (st == PNN_OK) st = pnn_cfg_float(spec, "c", 0, 0.01, 1e-8, 1e3, &s->spsa_c);
        if (st == PNN_OK && strcmp(phys, "spsa") && (pnn_cfg_get(spec, "perturbations") || pnn_cfg_get(spec, "c")))
            st = PNN_ERROR(PNN_ERR_CONFIG, "%s:%d: method phyll: perturbations and c are for physical: spsa, and "
                           "physical is %s", pnn_cfg_source(spec), pnn_cfg_line(spec), phys);
        if (st == PNN_OK) st = pnn_cfg_str(spec, "embed", 0, "pad", &embed);
        if (st == PNN_OK && strcmp(embed, "pad") && strcmp(embed, "replace"))
            st = PNN_ERROR(PNN_ERR_CONFIG, "%s:%d: method phyll: embed is '%s'; expected pad (the label goes into the "
                           "columns of the network's first layer, a pad) or replace (over the first input features)",
                           pnn_cfg_source(spec), pnn_cfg_line(pnn_cfg_get(spec, "embed")), embed);
        if (st != PNN_OK) {
            free(s);
            return st;
        }
        s->train_physical = !strcmp(phys, "twin") ? 1 : !strcmp(phys, "spsa") ? 2 : 0;
        s->embed_replace = !strcmp(embed, "replace");
    }
    *state = s;
    return PNN_OK;
}

static int is_physical(const pnn_layer *l) { return pnn_layer_physical_device(l) != NULL; }

/* Checks the network, finds the blocks, draws the goodness vectors and makes the optimizers. */
static pnn_status phyll_prepare(pnn_trainer *tr) {
    phyll_state *s = tr->method_state;
    const pnn_network *net = tr->net;
    const char *src = pnn_cfg_source(tr->cfg);
    s->classes = tr->train.n_classes;
    int C = s->classes;
    if (C < 2) return PNN_ERROR(PNN_ERR_CONFIG, "%s: method phyll needs at least 2 classes, the data has %d", src, C);
    if (s->embed_replace) {
        if (net->in_dim <= C)
            return PNN_ERROR(PNN_ERR_CONFIG, "%s: method phyll (embed: replace) writes the label over the first %d of "
                             "the %lld input features, which would leave none", src, C, (long long)net->in_dim);
        s->start = 0;
    } else {
        int64_t before = pnn_layer_pad_before(net->layers[0]);
        if (before < C)
            return PNN_ERROR(PNN_ERR_CONFIG, "%s: method phyll needs the label-embedding input: start the network with "
                             "{kind: pad, before: %d} (or more; the label's one-hot goes into those columns, as PhyLL "
                             "pads its vowel features with 8 zeros), or set method {kind: phyll, embed: replace} to "
                             "write it over the first %d input features; layer 0 is %s%s", src, C, C,
                             net->layers[0]->iface->kind, before >= 0 ? " with too few columns before" : "");
        s->start = 1;
    }
    s->n_blocks = 0;
    int begin = s->start;
    for (int i = s->start; i < net->n_layers; i++) {
        const pnn_layer *l = net->layers[i];
        if (!l->n_params || is_physical(l)) continue;
        if (s->n_blocks == PHYLL_MAX_BLOCKS)
            return PNN_ERROR(PNN_ERR_CONFIG, "%s: method phyll: more than %d blocks", src, PHYLL_MAX_BLOCKS);
        int k = s->n_blocks++;
        s->first[k] = begin;
        s->last[k] = i;
        s->has_physical[k] = 0;
        for (int j = begin; j < i; j++) s->has_physical[k] |= is_physical(net->layers[j]);
        begin = i + 1;
    }
    if (!s->n_blocks)
        return PNN_ERROR(PNN_ERR_CONFIG, "%s: method phyll: the network has no digital layer with parameters (e.g. "
                         "linear) to end a block; a block is [layers...] then a linear layer whose output the goodness "
                         "scores", src);
    if (begin < net->n_layers)
        return PNN_ERROR(PNN_ERR_CONFIG, "%s: method phyll: layers %d..%d (from %s '%s') come after the last block's "
                         "%s layer, and phyll would neither train them nor read them; end the network with that layer",
                         src, begin, net->n_layers - 1, net->layers[begin]->iface->kind, net->layers[begin]->name,
                         net->layers[s->last[s->n_blocks - 1]]->iface->kind);
    /* the shapes: one sample through the layers, as the network was built */
    int64_t rows = 1, cols = net->in_dim;
    for (int i = 0; i < net->n_layers; i++) {
        PNN_TRY(net->layers[i]->iface->out_shape(net->layers[i], rows, cols, &rows, &cols));
        for (int k = 0; k < s->n_blocks; k++)
            if (s->last[k] == i) s->d[k] = cols;
    }
    pnn_optim_config oc = tr->opt.optim;
    if (s->lr >= 0) oc.lr = (float)s->lr;
    for (int k = 0; k < s->n_blocks; k++) {
        s->p[k] = malloc((size_t)s->d[k] * sizeof(float));
        if (!s->p[k]) return PNN_ERROR(PNN_ERR_NOMEM, "method phyll: out of memory");
        pnn_rng_normal(tr->opt.seed, pnn_rng_stream("method.phyll.p", (uint64_t)k), 0, s->d[k], s->p[k]);
        double n2 = 0;
        for (int64_t j = 0; j < s->d[k]; j++) n2 += (double)s->p[k][j] * s->p[k][j];
        for (int64_t j = 0; j < s->d[k]; j++) s->p[k][j] = (float)(s->p[k][j] / sqrt(n2));
        pnn_layer *end = net->layers[s->last[k]];
        pnn_param *wp[8];
        int nw = 0;
        for (int j = 0; j < end->n_params && nw < 8; j++) wp[nw++] = &end->params[j];
        PNN_TRY(pnn_optimizer_create(&oc, wp, nw, &s->opt_w[k]));
        if (s->train_physical && s->has_physical[k]) {
            int nt = 0;
            int64_t floats = 0;
            for (int j = s->first[k]; j < s->last[k]; j++) {
                pnn_layer *l = net->layers[j];
                for (int q = 0; q < l->n_params; q++) {
                    if (nt == 64)
                        return PNN_ERROR(PNN_ERR_CONFIG, "%s: method phyll: block %d has more than 64 parameter "
                                         "tensors before its z layer", src, k);
                    s->theta[k][nt++] = &l->params[q];
                    floats += l->params[q].value.numel;
                }
            }
            s->n_theta[k] = nt;
            if (floats > s->cap_theta) s->cap_theta = floats;
            if (nt) PNN_TRY(pnn_optimizer_create(&oc, s->theta[k], nt, &s->opt_theta[k]));
        }
    }
    if (s->train_physical == 2 && s->cap_theta) {
        size_t n = (size_t)s->cap_theta;
        s->t0 = malloc(n * sizeof(float)), s->tp = malloc(n * sizeof(float)), s->delta = malloc(n * sizeof(float));
        s->tg = malloc(n * sizeof(double));
        if (!s->t0 || !s->tp || !s->delta || !s->tg) return PNN_ERROR(PNN_ERR_NOMEM, "method phyll: out of memory");
    }
    for (int i = 0; i < 2; i++) {
        s->h[i].backend = s->dz[i].backend = tr->be;
        PNN_TRY(pnn_tensor_init2(&s->h[i], tr->be, 1, 1));
        PNN_TRY(pnn_tensor_init2(&s->dz[i], tr->be, 1, 1));
    }
    return PNN_OK;
}

static pnn_status reserve(phyll_state *s, int64_t rows, int64_t width) {
    int64_t need = rows * width;
    if (need > s->cap_buf) {
        free(s->buf);
        free(s->src);
        free(s->zbuf[0]);
        free(s->zbuf[1]);
        s->buf = malloc((size_t)need * sizeof(float));
        s->src = malloc((size_t)need * sizeof(float));
        s->zbuf[0] = malloc((size_t)need * sizeof(float));
        s->zbuf[1] = malloc((size_t)need * sizeof(float));
        s->cap_buf = s->buf && s->src && s->zbuf[0] && s->zbuf[1] ? need : 0;
        if (!s->cap_buf) return PNN_ERROR(PNN_ERR_NOMEM, "method phyll: out of memory for %lld floats", (long long)need);
    }
    if (rows > s->cap_rows) {
        int ok = 1;
        for (int q = 0; q < 2; q++) {
            free(s->gsum[q]);
            free(s->gv[q]);
            free(s->wv[q]);
            s->gsum[q] = malloc((size_t)rows * sizeof(double));
            s->gv[q] = malloc((size_t)rows * sizeof(double));
            s->wv[q] = malloc((size_t)rows * sizeof(double));
            ok = ok && s->gsum[q] && s->gv[q] && s->wv[q];
        }
        free(s->gl);
        free(s->neg);
        s->gl = malloc((size_t)(rows * s->classes) * sizeof(double));
        s->neg = malloc((size_t)rows * sizeof(int));
        s->cap_rows = ok && s->gl && s->neg ? rows : 0;
        if (!s->cap_rows) return PNN_ERROR(PNN_ERR_NOMEM, "method phyll: out of memory for %lld rows", (long long)rows);
    }
    return PNN_OK;
}

/* The widest activation of the network for one sample (buffers are rows x this). */
static int64_t widest(const pnn_network *net) {
    int64_t rows = 1, cols = net->in_dim, w = cols;
    for (int i = 0; i < net->n_layers; i++) {
        if (net->layers[i]->iface->out_shape(net->layers[i], rows, cols, &rows, &cols) != PNN_OK) break;
        if (cols * rows > w) w = cols * rows;
    }
    return w;
}

/* The rows labels go into, once per batch (or evaluation chunk): x itself (embed: replace) or x
 * through the pad layer (slot 2), kept on the host with its max|.|, the label's value. */
static pnn_status embed_source(pnn_trainer *tr, phyll_state *s, const pnn_tensor *x) {
    const pnn_tensor *u = x;
    if (!s->embed_replace) PNN_TRY(pnn_network_forward_block(tr->net, 2, 0, 0, x, PNN_PASS_EVAL_TWIN, &u));
    s->src_rows = pnn_tensor_rows(u), s->src_cols = pnn_tensor_cols(u);
    PNN_TRY(pnn_tensor_to_host(u, s->src, u->numel));
    s->src_max = 0;
    for (int64_t i = 0; i < u->numel; i++) s->src_max = fabs((double)s->src[i]) > s->src_max ? fabs((double)s->src[i]) : s->src_max;
    return PNN_OK;
}

/* out = the source rows with their first C columns zeroed and column label[r] of row r set to
 * the source's max|.|. */
static pnn_status embed_label(phyll_state *s, const int *label, pnn_tensor *out) {
    int64_t rows = s->src_rows, cols = s->src_cols;
    memcpy(s->buf, s->src, (size_t)(rows * cols) * sizeof(float));
    for (int64_t r = 0; r < rows; r++) {
        float *row = s->buf + r * cols;
        for (int c = 0; c < s->classes; c++) row[c] = 0.0f;
        row[label[r]] = (float)s->src_max;
    }
    PNN_TRY(pnn_tensor_reshape2(out, rows, cols));
    return pnn_tensor_from_host(out, s->buf, rows * cols);
}

/* g = cos(|z|, p) of each row of z [rows, d] (host); with dz, also dg/dz times w[r]. */
static void goodness(const float *z, int64_t rows, int64_t d, const float *p, double *g, const double *w, float *dz) {
    for (int64_t r = 0; r < rows; r++) {
        const float *zr = z + r * d;
        double n2 = 0, dot = 0;
        for (int64_t j = 0; j < d; j++) {
            double a = fabs((double)zr[j]);
            n2 += a * a;
            dot += a * p[j];
        }
        double n = sqrt(n2), den = n > 1e-6 ? n : 1e-6, gr = dot / den;
        g[r] = gr;
        if (!dz) continue;
        for (int64_t j = 0; j < d; j++) {
            double a = fabs((double)zr[j]), sg = zr[j] < 0 ? -1.0 : 1.0;
            double dga = n > 1e-6 ? (p[j] - gr * a / n) / n : p[j] / den;
            dz[r * d + j] = (float)(w[r] * sg * dga);
        }
    }
}

static double softplus(double x) { return x > 0 ? x + log1p(exp(-x)) : log1p(exp(x)); }
static double sigmoid(double x) { return x >= 0 ? 1.0 / (1.0 + exp(-x)) : exp(x) / (1.0 + exp(x)); }

/* The block's local loss (the sum over rows over b_global) at the current parameters, from a
 * device pass of its positive and one of its negative rows. */
static pnn_status block_loss(pnn_trainer *tr, phyll_state *s, int k, int64_t rows, int64_t b_global, double *loss) {
    int64_t d = s->d[k];
    for (int q = 0; q < 2; q++) {
        const pnn_tensor *z;
        PNN_TRY(pnn_network_forward_block(tr->net, q, s->first[k], s->last[k], &s->h[q], PNN_PASS_EVAL_DEVICE, &z));
        PNN_TRY(pnn_tensor_to_host(z, s->zbuf[q], rows * d));
        goodness(s->zbuf[q], rows, d, s->p[k], s->gv[q], NULL, NULL);
    }
    *loss = 0;
    for (int64_t r = 0; r < rows; r++) *loss += softplus(-s->threshold * (s->gv[0][r] - s->gv[1][r])) / (double)b_global;
    return PNN_OK;
}

/* Copies the block's controls to host buf (to_host) or from it. */
static pnn_status controls_io(phyll_state *s, int k, float *buf, int to_host) {
    int64_t off = 0;
    for (int i = 0; i < s->n_theta[k]; i++) {
        pnn_tensor *v = &s->theta[k][i]->value;
        PNN_TRY(to_host ? pnn_tensor_to_host(v, buf + off, v->numel) : pnn_tensor_from_host(v, buf + off, v->numel));
        off += v->numel;
    }
    return PNN_OK;
}

/* physical: spsa: the block's controls take one optimizer step along the simultaneous-perturbation
 * estimate of its local loss's gradient (the z layer as it stands), from 4 device passes per
 * perturbation (positive and negative rows at theta + c delta and theta - c delta); the estimate
 * uses the perturbation the devices really got (a device that bounds its controls projects them). */
static pnn_status spsa_controls(pnn_trainer *tr, phyll_state *s, int k, int64_t rows, int64_t b_global) {
    int64_t p = 0;
    for (int i = 0; i < s->n_theta[k]; i++) p += s->theta[k][i]->value.numel;
    PNN_TRY(controls_io(s, k, s->t0, 1));
    for (int64_t j = 0; j < p; j++) s->tg[j] = 0;
    uint64_t stream = pnn_rng_stream("method.phyll.spsa", (uint64_t)tr->global_step * PHYLL_MAX_BLOCKS + (uint64_t)k);
    pnn_status st = PNN_OK;
    for (int64_t e = 0; st == PNN_OK && e < s->spsa_k; e++) {
        pnn_rng_uniform(tr->opt.seed, stream, (uint64_t)(e * p), p, s->delta);
        double lp = 0, lm = 0;
        for (int64_t j = 0; j < p; j++) {
            s->delta[j] = s->delta[j] < 0.5f ? -1.0f : 1.0f;
            s->tp[j] = s->t0[j] + (float)s->spsa_c * s->delta[j];
        }
        st = controls_io(s, k, s->tp, 0);
        if (st == PNN_OK) st = block_loss(tr, s, k, rows, b_global, &lp);
        if (st == PNN_OK) st = controls_io(s, k, s->tp, 1); /* as the devices got them */
        for (int64_t j = 0; st == PNN_OK && j < p; j++) s->delta[j] = s->t0[j] - (float)s->spsa_c * s->delta[j];
        if (st == PNN_OK) st = controls_io(s, k, s->delta, 0);
        if (st == PNN_OK) st = block_loss(tr, s, k, rows, b_global, &lm);
        if (st == PNN_OK) st = controls_io(s, k, s->delta, 1);
        for (int64_t j = 0; st == PNN_OK && j < p; j++)
            s->tg[j] += (lp - lm) / (2.0 * s->spsa_c * (double)s->spsa_k) *
                        (((double)s->tp[j] - s->delta[j]) / (2.0 * s->spsa_c));
    }
    pnn_status put = controls_io(s, k, s->t0, 0);
    PNN_TRY(st);
    PNN_TRY(put);
    int64_t off = 0;
    for (int i = 0; i < s->n_theta[k]; i++) {
        pnn_tensor *g = &s->theta[k][i]->grad;
        for (int64_t j = 0; j < g->numel; j++) s->tp[j] = (float)s->tg[off + j];
        PNN_TRY(pnn_tensor_from_host(g, s->tp, g->numel));
        off += g->numel;
    }
    pnn_optimizer_set_step_count(s->opt_theta[k], tr->global_step);
    return pnn_optimizer_step(s->opt_theta[k]);
}

static pnn_status phyll_gradient(pnn_trainer *tr, int64_t row0, int64_t rows, int64_t b_global,
                                 pnn_schedule_stats *stats) {
    phyll_state *s = tr->method_state;
    pnn_network *net = tr->net;
    const pnn_backend *be = tr->be;
    double t0 = pnn_now_s();
    int C = s->classes;
    PNN_TRY(reserve(s, rows, widest(net)));
    /* the labels: the true one, and a wrong one drawn from (seed, step, row) */
    int *pos = malloc((size_t)rows * sizeof(int));
    float *u = malloc((size_t)rows * sizeof(float));
    if (!pos || !u) {
        free(pos);
        free(u);
        return PNN_ERROR(PNN_ERR_NOMEM, "method phyll: out of memory");
    }
    pnn_rng_uniform(tr->opt.seed, pnn_rng_stream("method.phyll.negative", (uint64_t)tr->global_step), (uint64_t)row0,
                    rows, u);
    for (int64_t r = 0; r < rows; r++) {
        pos[r] = (int)tr->yb_host[row0 + r];
        int shift = 1 + (int)(u[r] * (float)(C - 1));
        if (shift > C - 1) shift = C - 1;
        s->neg[r] = (pos[r] + shift) % C;
    }
    free(u);
    pnn_tensor x;
    int64_t xshape[2] = {rows, tr->train.dim};
    pnn_status st = pnn_tensor_view(&x, be, tr->xb.data + row0 * tr->train.dim, 2, xshape);
    if (st == PNN_OK) st = embed_source(tr, s, &x);
    if (st == PNN_OK) st = embed_label(s, pos, &s->h[0]);
    if (st == PNN_OK) st = embed_label(s, s->neg, &s->h[1]);
    free(pos);
    PNN_TRY(st);
    for (int64_t r = 0; r < rows; r++) s->gsum[0][r] = s->gsum[1][r] = 0;
    double *g[2] = {s->gv[0], s->gv[1]}, *w[2] = {s->wv[0], s->wv[1]};
    double loss_sum = 0;
    pnn_pass pre_pass = s->train_physical == 1 ? PNN_PASS_TRAIN_PAT : PNN_PASS_EVAL_DEVICE;
    for (int k = 0; k < s->n_blocks; k++) {
        int first = s->first[k], last = s->last[k];
        int local_theta = s->opt_theta[k] != NULL && s->train_physical == 1;
        if (s->opt_theta[k] && s->train_physical == 2) PNN_TRY(spsa_controls(tr, s, k, rows, b_global));
        int64_t d = s->d[k];
        double block_loss = 0;
        for (int64_t i = 0; i < s->inner; i++) {
            const pnn_tensor *z[2];
            for (int q = 0; q < 2; q++) {
                /* the first inner step runs the whole block (the device passes); the later ones
                 * only its z layer, from the kept output of the layers before it */
                if (i == 0) PNN_TRY(pnn_network_forward_block(net, q, first, last, &s->h[q], pre_pass, &z[q]));
                else PNN_TRY(pnn_network_forward_block(net, q, last, last, &net->acts[q][last], PNN_PASS_TRAIN_TWIN,
                                                       &z[q]));
                PNN_TRY(pnn_tensor_check2(z[q], rows, d, "phyll block output"));
                PNN_TRY(pnn_tensor_to_host(z[q], s->zbuf[q], rows * d));
                goodness(s->zbuf[q], rows, d, s->p[k], g[q], NULL, NULL);
            }
            /* L = (1/B) sum_r softplus(-t (g+ - g-)): dL/dg+ = -t sigma(-t delta) / B = -dL/dg- */
            for (int64_t r = 0; r < rows; r++) {
                double delta = g[0][r] - g[1][r];
                block_loss += softplus(-s->threshold * delta) / (double)b_global;
                w[0][r] = -s->threshold * sigmoid(-s->threshold * delta) / (double)b_global;
                w[1][r] = -w[0][r];
            }
            pnn_network_zero_grad(net);
            int whole = i == 0 && local_theta;
            for (int q = 0; q < 2; q++) {
                goodness(s->zbuf[q], rows, d, s->p[k], g[q], w[q], s->buf);
                PNN_TRY(pnn_tensor_reshape2(&s->dz[q], rows, d));
                PNN_TRY(pnn_tensor_from_host(&s->dz[q], s->buf, rows * d));
                PNN_TRY(pnn_network_backward_block(net, q, whole ? first : last, last, &s->dz[q]));
            }
            pnn_optimizer_set_step_count(s->opt_w[k], tr->global_step * s->inner + i);
            PNN_TRY(pnn_optimizer_step(s->opt_w[k]));
            if (whole) {
                pnn_optimizer_set_step_count(s->opt_theta[k], tr->global_step);
                PNN_TRY(pnn_optimizer_step(s->opt_theta[k]));
            }
        }
        /* the block's output with its updated z layer: the next block's input */
        for (int q = 0; q < 2; q++) {
            const pnn_tensor *z;
            PNN_TRY(pnn_network_forward_block(net, q, last, last, &net->acts[q][last], PNN_PASS_EVAL_TWIN, &z));
            PNN_TRY(pnn_tensor_to_host(z, s->zbuf[q], rows * d));
            goodness(s->zbuf[q], rows, d, s->p[k], g[q], NULL, NULL);
            for (int64_t r = 0; r < rows; r++) s->gsum[q][r] += g[q][r];
            PNN_TRY(pnn_tensor_reshape2(&s->h[q], rows, d));
            PNN_TRY(pnn_tensor_copy(&s->h[q], z));
        }
        loss_sum += block_loss / (double)s->inner;
    }
    double correct = 0;
    for (int64_t r = 0; r < rows; r++) correct += s->gsum[0][r] > s->gsum[1][r];
    tr->step_loss += loss_sum * (double)b_global;
    tr->step_correct += correct;
    stats->wall_s = pnn_now_s() - t0;
    stats->wait_s = 0;
    return pnn_backend_status(be);
}

/* Every label in turn through every block (C x L passes of the chunk); the largest summed goodness
 * is the prediction. */
static pnn_status phyll_evaluate(pnn_trainer *tr, pnn_pass pass, int64_t first, int64_t b, double sums[4]) {
    phyll_state *s = tr->method_state;
    pnn_network *net = tr->net;
    int C = s->classes;
    PNN_TRY(pnn_train_load_rows(tr, &tr->test, NULL, first, b, 0, 0));
    PNN_TRY(reserve(s, b, widest(net)));
    double *gl = s->gl, *g = s->gsum[0];
    for (int64_t i = 0; i < b * C; i++) gl[i] = 0;
    PNN_TRY(embed_source(tr, s, &tr->xb));
    for (int c = 0; c < C; c++) {
        for (int64_t r = 0; r < b; r++) s->neg[r] = c;
        PNN_TRY(embed_label(s, s->neg, &s->h[0]));
        for (int k = 0; k < s->n_blocks; k++) {
            const pnn_tensor *z;
            PNN_TRY(pnn_network_forward_block(net, 0, s->first[k], s->last[k], &s->h[0], pass, &z));
            PNN_TRY(pnn_tensor_to_host(z, s->zbuf[0], b * s->d[k]));
            goodness(s->zbuf[0], b, s->d[k], s->p[k], g, NULL, NULL);
            for (int64_t r = 0; r < b; r++) gl[r * C + c] += g[r];
            PNN_TRY(pnn_tensor_reshape2(&s->h[0], b, s->d[k]));
            PNN_TRY(pnn_tensor_copy(&s->h[0], z));
        }
    }
    int64_t bs = tr->opt.batch, batch_correct = 0, batch_rows = 0;
    for (int64_t r = 0; r < b; r++) {
        const double *row = gl + r * C;
        int best = 0;
        double mx = row[0];
        for (int c = 1; c < C; c++)
            if (row[c] > mx) mx = row[c], best = c;
        double z = 0;
        for (int c = 0; c < C; c++) z += exp(s->threshold * (row[c] - mx));
        int y = (int)tr->yb_host[r];
        sums[0] += log(z) - s->threshold * (row[y] - mx);
        sums[1] += best == y;
        batch_correct += best == y;
        if (++batch_rows == bs || r == b - 1) {
            sums[2] += (double)batch_correct / (double)batch_rows;
            sums[3] += 1;
            batch_correct = batch_rows = 0;
        }
    }
    return pnn_backend_status(tr->be);
}

static int phyll_states(pnn_trainer *tr, pnn_tensor **t, char (*names)[PNN_TWIN_STATE_NAME_MAX], int max) {
    phyll_state *s = tr->method_state;
    int n = 0;
    for (int k = 0; s && k < s->n_blocks; k++)
        for (int which = 0; which < 2; which++) {
            pnn_optimizer *o = which ? s->opt_theta[k] : s->opt_w[k];
            for (int i = 0; o && i < pnn_optimizer_state_count(o); i++, n++) {
                if (!t || n >= max) continue;
                const char *name;
                t[n] = pnn_optimizer_state(o, i, &name);
                snprintf(names[n], PNN_TWIN_STATE_NAME_MAX, "method.phyll.%s", name);
            }
        }
    return n;
}

/* only physical: twin runs the twins (device passes taped, the block loss backpropagated) */
static int phyll_needs_twin(const void *state) { return ((const phyll_state *)state)->train_physical == 1; }

const pnn_method_i pnn_method_phyll = {
    .name = "phyll",
    .summary = "physical local learning: greedy blocks, goodness of label-embedded data, no backward through devices",
    .create = phyll_create,
    .destroy = phyll_destroy,
    .gradient = phyll_gradient,
    .updates_params = 1,
    .prepare = phyll_prepare,
    .evaluate = phyll_evaluate,
    .states = phyll_states,
    .needs_twin = phyll_needs_twin,
};
