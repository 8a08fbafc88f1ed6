/* Training methods (host/methods/): the registry, and each method's gradient against the exact
 * one. On a purely digital network PAT is backpropagation, the exact gradient of the batch's
 * loss (its layers' backward passes are checked against finite differences in test_layers); the
 * spsa estimate, averaged over many perturbations, must point the same way with the same size;
 * it is a function of (seed, step) alone, and the estimates of a batch's parts add up to the
 * whole batch's, as the ranks' do. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "host/train_dp.h"
#include "pnn/pnn.h"
#include "tests/testutil.h"

static void measured(const char *name, double value, const char *must, double bound) {
    printf("measured %s: %.3g (must be %s %.3g)\n", name, value, must, bound);
}

START_TEST(registry_lists_and_finds_methods) {
    const char *names = pnn_method_names();
    ck_assert_ptr_nonnull(strstr(names, "pat"));
    ck_assert_ptr_nonnull(strstr(names, "insilico"));
    ck_assert_ptr_nonnull(strstr(names, "spsa"));
    ck_assert_ptr_nonnull(strstr(names, "dfa"));
    ck_assert_str_eq(pnn_method_find("pat")->name, "pat");
    ck_assert_str_eq(pnn_method_find("spsa")->name, "spsa");
    ck_assert_ptr_null(pnn_method_find("backprop"));
    ck_assert_ptr_null(pnn_method_find(NULL));
    const pnn_method_i *m;
    int i = 0;
    for (; (m = pnn_method_at(i)); i++) {
        ck_assert_msg(m->gradient && m->summary && *m->summary, "method '%s' incomplete", m->name);
        ck_assert_ptr_eq(pnn_method_find(m->name), m);
        ck_assert_ptr_nonnull(strstr(names, m->name));
    }
    ck_assert_int_ge(i, 4);
    ck_assert_ptr_null(pnn_method_at(-1));
}
END_TEST

/* A digital network on the vowels, with the batch's first b samples loaded. */
static pnn_trainer *digital_act(const char *method, int64_t b, const char *act) {
    char yaml[1024];
    snprintf(yaml, sizeof yaml,
             "data: {set: vowels, path: %s/data/vowels_hillenbrand_women.csv}\n"
             "network:\n"
             "  - {kind: linear, name: enc, out: 8}\n"
             "  - {kind: %s}\n"
             "  - {kind: linear, name: dec, out: 7}\n"
             "batch: %lld\nepochs: 1\nseed: 5\noptimizer: {kind: adam, lr: 0.01}\nmethod: %s\n",
             PNN_SOURCE_DIR, act, (long long)b, method);
    pnn_trainer *tr;
    ck_assert_msg(pnn_trainer_create(pnn_test_parse(yaml), ".", &tr) == PNN_OK, "%s", pnn_last_error());
    int64_t idx[64];
    for (int64_t i = 0; i < b; i++) idx[i] = i;
    ck_assert_msg(pnn_train_load_rows(tr, &tr->train, idx, 0, b, 0, 0) == PNN_OK, "%s", pnn_last_error());
    return tr;
}

static pnn_trainer *digital(const char *method, int64_t b) { return digital_act(method, b, "tanh"); }

static float *gradient(pnn_trainer *tr, int64_t row0, int64_t rows, int64_t b) {
    int64_t p = pnn_dp_param_floats(tr->net);
    float *g = malloc((size_t)p * sizeof(float));
    tr->step_loss = tr->step_correct = 0;
    ck_assert_msg(pnn_train_run_rows(tr, row0, rows, b) == PNN_OK, "%s", pnn_last_error());
    ck_assert_int_eq(pnn_dp_pack(tr->net, 1, g), PNN_OK);
    return g;
}

START_TEST(spsa_estimates_the_gradient) {
    int64_t b = 16;
    pnn_trainer *tr = digital("{kind: spsa, perturbations: 6000, c: 0.001}", b);
    int64_t p = pnn_dp_param_floats(tr->net);
    float *est = gradient(tr, 0, b, b);
    double est_loss = tr->step_loss;
    const pnn_method_i *spsa = tr->opt.method;
    tr->opt.method = pnn_method_find("pat");
    float *exact = gradient(tr, 0, b, b);
    tr->opt.method = spsa; /* which frees its state */
    double dot = pnn_test_dot(est, exact, p), ne = sqrt(pnn_test_dot(est, est, p)), nx = sqrt(pnn_test_dot(exact, exact, p));
    double cosine = dot / (ne * nx), ratio = ne / nx;
    measured("spsa_6000_cosine_to_exact_gradient", cosine, "at least", 0.9);
    measured("spsa_6000_norm_ratio", ratio, "within", 0.2);
    ck_assert_msg(cosine > 0.9, "spsa estimate vs the exact gradient: cosine %.3f", cosine);
    ck_assert_msg(fabs(ratio - 1) < 0.2, "spsa estimate's norm is %.3f of the exact one", ratio);
    /* the loss it reports is the batch's (perturbations of size 0.001 barely move it) */
    ck_assert_msg(fabs(est_loss - tr->step_loss) < 1e-2 * tr->step_loss, "spsa loss %g, exact %g", est_loss,
                  tr->step_loss);
    free(est), free(exact);
    pnn_trainer_free(tr);
}
END_TEST

START_TEST(spsa_is_a_function_of_seed_and_step_and_adds_over_parts) {
    int64_t b = 16;
    pnn_trainer *tr = digital("{kind: spsa, perturbations: 3, c: 0.01}", b);
    int64_t p = pnn_dp_param_floats(tr->net);
    float *a = gradient(tr, 0, b, b), *again = gradient(tr, 0, b, b);
    ck_assert_int_eq(memcmp(a, again, (size_t)p * sizeof(float)), 0);
    /* two parts of the batch (two ranks' shares) add up to the whole */
    float *first = gradient(tr, 0, 7, b), *second = gradient(tr, 7, b - 7, b);
    double err = 0, norm = 0;
    for (int64_t i = 0; i < p; i++) {
        err = fmax(err, fabs((double)first[i] + second[i] - a[i]));
        norm = fmax(norm, fabs((double)a[i]));
    }
    ck_assert_msg(err <= 1e-4 * norm, "parts add up to within %g of %g", err, norm);
    /* another step draws other perturbations */
    tr->global_step++;
    float *next = gradient(tr, 0, b, b);
    ck_assert_int_ne(memcmp(a, next, (size_t)p * sizeof(float)), 0);
    free(a), free(again), free(first), free(second), free(next);
    pnn_trainer_free(tr);
}
END_TEST

static float *host_copy(const pnn_tensor *t) {
    float *h = malloc((size_t)t->numel * sizeof(float));
    ck_assert_int_eq(pnn_tensor_to_host(t, h, t->numel), PNN_OK);
    return h;
}

/* DFA against a plain reference: the output layer's gradient is backpropagation's, bit for bit;
 * the hidden layer's is dW1 = ((e B^T) * relu'(a1))^T x, db1 = its column sums, with e the output
 * gradient and B the feedback matrix drawn from (seed, block 0) as the method says. */
START_TEST(dfa_matches_its_reference) {
    int64_t b = 16, in = 12, hid = 8, out = 7;
    pnn_trainer *tr = digital_act("dfa", b, "relu");
    float *dfa = gradient(tr, 0, b, b);
    pnn_network *net = tr->net;
    float *e = host_copy(&net->grads[net->n_layers]), *x = host_copy(&net->acts[0][0]);
    float *a1 = host_copy(&net->acts[0][1]);
    const pnn_method_i *dfa_method = tr->opt.method;
    tr->opt.method = pnn_method_find("pat");
    float *bp = gradient(tr, 0, b, b);
    tr->opt.method = dfa_method; /* which frees its state */
    int64_t n1 = hid * in + hid, p = pnn_dp_param_floats(net);
    ck_assert_int_eq(memcmp(dfa + n1, bp + n1, (size_t)(p - n1) * sizeof(float)), 0);
    float *bm = malloc((size_t)(hid * out) * sizeof(float));
    pnn_rng_normal(tr->opt.seed, pnn_rng_stream("method.dfa.feedback", 0), 0, hid * out, bm);
    double worst = 0, norm = 0;
    for (int64_t j = 0; j < hid; j++) {
        double db = 0, dw[12] = {0};
        for (int64_t r = 0; r < b; r++) {
            double g = 0;
            for (int64_t o = 0; o < out; o++) g += e[r * out + o] * bm[j * out + o] / sqrt((double)out);
            if (!(a1[r * hid + j] > 0)) g = 0;
            db += g;
            for (int64_t i = 0; i < in; i++) dw[i] += g * x[r * in + i];
        }
        for (int64_t i = 0; i < in; i++) {
            worst = fmax(worst, fabs(dfa[j * in + i] - dw[i]));
            norm = fmax(norm, fabs(dw[i]));
        }
        worst = fmax(worst, fabs(dfa[hid * in + j] - db));
    }
    measured("dfa_hidden_gradient_max_error_relative", worst / norm, "at most", 1e-5);
    ck_assert_msg(norm > 0 && worst <= 1e-5 * norm, "dfa hidden gradient off by %g (of %g)", worst, norm);
    /* and it is not backpropagation's */
    ck_assert_int_ne(memcmp(dfa, bp, (size_t)n1 * sizeof(float)), 0);
    free(dfa), free(bp), free(e), free(x), free(a1), free(bm);
    pnn_trainer_free(tr);
}
END_TEST

/* One PhyLL block on the vowels: pad 8 | skip h, normalize abs, physical osc (20 oscillators,
 * `physical` its URI's tail and any further keys), concat_skip h, linear z of `out`; then `rest`
 * (batch, optimizer, method...). The trainer's status; *tr is set on success. */
static pnn_status phyll_block(pnn_trainer **tr, const char *physical, int out, const char *rest) {
    char yaml[2048];
    snprintf(yaml, sizeof yaml,
             "data: {set: vowels, path: %s/data/vowels_hillenbrand_women.csv}\n"
             "network:\n"
             "  - {kind: pad, before: 8}\n"
             "  - {kind: skip, name: h}\n"
             "  - {kind: normalize, abs: true}\n"
             "  - {kind: physical, name: osc, device: 'sim:oscillator?n=20&nt=4&seed=3%s}\n"
             "  - {kind: concat_skip, from: h}\n"
             "  - {kind: linear, name: z, out: %d}\n"
             "epochs: 1\nseed: 4\n%s",
             PNN_SOURCE_DIR, physical, out, rest);
    *tr = NULL;
    return pnn_trainer_create(pnn_test_parse(yaml), ".", tr);
}

/* phyll's local loss on host, as the paper defines it: block 1 of a one-block network, its
 * positive and negative rows embedded as phyll embeds them (the label in the pad's first C
 * columns, value max|x|; the wrong label from the method's stream), z through the network's twins,
 * g = cos(|z|, p), L = mean softplus(-4 (g+ - g-)). */
static double phyll_reference_loss(pnn_trainer *tr, int64_t b, const int *neg) {
    pnn_network *net = tr->net;
    int64_t cols = net->in_dim + 8, d = net->out_dim;
    int C = tr->train.n_classes;
    float *h = calloc((size_t)(b * cols), sizeof(float)), *p = malloc((size_t)d * sizeof(float));
    pnn_rng_normal(tr->opt.seed, pnn_rng_stream("method.phyll.p", 0), 0, d, p);
    double pn = 0, loss = 0, *g = calloc((size_t)(2 * b), sizeof(double));
    for (int64_t j = 0; j < d; j++) pn += (double)p[j] * p[j];
    for (int q = 0; q < 2; q++) {
        double m = 0;
        for (int64_t i = 0; i < b * net->in_dim; i++) m = fmax(m, fabs((double)tr->xb_host[i]));
        for (int64_t r = 0; r < b; r++) {
            for (int64_t j = 0; j < cols; j++) h[r * cols + j] = j < 8 ? 0.0f : tr->xb_host[r * net->in_dim + j - 8];
            int label = q ? neg[r] : (int)tr->yb_host[r];
            ck_assert_int_lt(label, C);
            h[r * cols + label] = (float)m;
        }
        pnn_tensor ht;
        ck_assert_int_eq(pnn_tensor_init2(&ht, tr->be, b, cols), PNN_OK);
        ck_assert_int_eq(pnn_tensor_from_host(&ht, h, b * cols), PNN_OK);
        const pnn_tensor *z;
        ck_assert_msg(pnn_network_forward_block(net, 0, 1, net->n_layers - 1, &ht, PNN_PASS_EVAL_DEVICE, &z) == PNN_OK,
                      "%s", pnn_last_error());
        for (int64_t r = 0; r < b; r++) {
            double a2 = 0, dot = 0;
            for (int64_t j = 0; j < d; j++) {
                double a = fabs((double)z->data[r * d + j]);
                a2 += a * a, dot += a * p[j] / sqrt(pn);
            }
            g[q * b + r] = dot / fmax(sqrt(a2), 1e-6);
        }
        pnn_tensor_free(&ht);
    }
    for (int64_t r = 0; r < b; r++) loss += log1p(exp(-4.0 * (g[r] - g[b + r]))) / (double)b;
    free(h), free(p), free(g);
    return loss;
}

/* One phyll step with one inner step of plain SGD moves every parameter by -lr times the
 * gradient of the block's local loss: with physical: twin, the controls through the twin's local
 * derivative (the device is ideal, so the twin is exact). Checked against central differences of
 * the reference loss above. The step also costs what phyll promises: 2 device passes (positive,
 * negative), 2 taped twin passes. */
START_TEST(phyll_step_follows_the_local_loss_gradient) {
    char rest[256];
    int64_t b = 24;
    float lr = 1.0f;
    snprintf(rest, sizeof rest,
             "batch: %lld\noptimizer: {kind: sgd, lr: %g, momentum: 0}\n"
             "method: {kind: phyll, physical: twin, inner_steps: 1}\n",
             (long long)b, (double)lr);
    pnn_trainer *tr;
    ck_assert_msg(phyll_block(&tr, "&noise=0&mismatch=0'", 6, rest) == PNN_OK, "%s", pnn_last_error());
    int64_t idx[64];
    for (int64_t i = 0; i < b; i++) idx[i] = i;
    int C = tr->train.n_classes, neg[64];
    float u[64];
    pnn_rng_uniform(tr->opt.seed, pnn_rng_stream("method.phyll.negative", 0), 0, b, u);
    ck_assert_int_eq(pnn_train_load_rows(tr, &tr->train, idx, 0, b, 0, 0), PNN_OK);
    for (int64_t r = 0; r < b; r++) {
        int shift = 1 + (int)(u[r] * (float)(C - 1));
        neg[r] = ((int)tr->yb_host[r] + (shift > C - 1 ? C - 1 : shift)) % C;
    }
    int64_t np = pnn_dp_param_floats(tr->net);
    float *before = malloc((size_t)np * sizeof(float)), *after = malloc((size_t)np * sizeof(float));
    ck_assert_int_eq(pnn_dp_pack(tr->net, 0, before), PNN_OK);
    double loss0 = phyll_reference_loss(tr, b, neg);
    uint64_t calls0 = tr->devices[0]->calls, twin0 = tr->bridge_run.twin_calls;
    double loss, acc;
    ck_assert_msg(pnn_trainer_step(tr, idx, b, &loss, &acc) == PNN_OK, "%s", pnn_last_error());
    ck_assert_int_eq(tr->devices[0]->calls - calls0, 2);
    ck_assert_int_eq(tr->bridge_run.twin_calls - twin0, 2);
    ck_assert_msg(fabs(loss - loss0) < 1e-4, "step loss %g, reference %g", loss, loss0);
    ck_assert_int_eq(pnn_dp_pack(tr->net, 0, after), PNN_OK);
    /* central differences at the parameters before the step, every 7th entry */
    ck_assert_int_eq(pnn_dp_unpack(tr->net, 0, before), PNN_OK);
    int checked = 0, kinks = 0;
    double *got = calloc((size_t)np, sizeof(double)), *want = calloc((size_t)np, sizeof(double));
    double *left = calloc((size_t)np, sizeof(double)), *right = calloc((size_t)np, sizeof(double));
    for (int64_t k = 0; k < np; k += 7, checked++) {
        float *v = NULL;
        int64_t off = k;
        for (int i = 0; i < tr->net->n_params && !v; i++) {
            if (off < tr->net->params[i]->value.numel) v = tr->net->params[i]->value.data + off;
            else off -= tr->net->params[i]->value.numel;
        }
        float eps = 2e-3f, orig = *v;
        double mid = phyll_reference_loss(tr, b, neg);
        *v = orig + eps;
        double up = phyll_reference_loss(tr, b, neg);
        *v = orig - eps;
        double down = phyll_reference_loss(tr, b, neg);
        *v = orig;
        want[k] = (up - down) / (2.0 * eps);
        right[k] = (up - mid) / eps;
        left[k] = (mid - down) / eps;
        got[k] = ((double)before[k] - after[k]) / lr;
    }
    /* each parameter tensor against its own scale (the controls' gradients are ~100 times smaller
     * than the readout's). |z| has a kink at 0 (a z of 1e-5 sits among these rows): where the
     * central difference straddles it, a gradient between the one-sided differences is a
     * subgradient, and passes. */
    double worst = 0;
    int64_t start = 0;
    for (int i = 0; i < tr->net->n_params; start += tr->net->params[i]->value.numel, i++) {
        int64_t end = start + tr->net->params[i]->value.numel, k0 = (start + 6) / 7 * 7;
        double scale = 0;
        for (int64_t k = k0; k < end; k += 7) scale = fmax(scale, fabs(want[k]));
        ck_assert_msg(k0 >= end || scale > 1e-6, "no gradient reaches %s", tr->net->params[i]->name);
        for (int64_t k = k0; k < end; k += 7) {
            double err = fabs(got[k] - want[k]), tol = 1e-2 * scale;
            if (err > tol && got[k] >= fmin(left[k], right[k]) - tol && got[k] <= fmax(left[k], right[k]) + tol) {
                kinks++;
                continue;
            }
            worst = fmax(worst, err / scale);
        }
    }
    free(got), free(want), free(left), free(right);
    measured("phyll_local_gradient_entries_at_a_kink", kinks, "at most", checked / 10);
    ck_assert_int_le(kinks, checked / 10);
    measured("phyll_local_gradient_max_error_relative", worst, "at most", 1e-2);
    ck_assert_msg(checked > 20 && worst <= 1e-2, "phyll gradient off by %g of its tensor's largest", worst);
    free(before), free(after);
    pnn_trainer_free(tr);
}
END_TEST

/* The published variant (physical: fixed) leaves the controls alone and runs no twin; its loss
 * falls on the vowels within a few full-batch steps, and its test accuracy is above chance. */
START_TEST(phyll_fixed_trains_the_blocks_only) {
    char yaml[2048];
    snprintf(yaml, sizeof yaml,
             "data: {set: vowels, path: %s/data/vowels_hillenbrand_women.csv}\n"
             "network:\n"
             "  - {kind: pad, before: 8}\n"
             "  - {kind: skip, name: h1}\n"
             "  - {kind: normalize, abs: true}\n"
             "  - {kind: physical, name: osc, device: 'sim:oscillator?n=20&nt=4&seed=3'}\n"
             "  - {kind: concat_skip, from: h1}\n"
             "  - {kind: linear, name: z1, out: 12}\n"
             "  - {kind: linear, name: z2, out: 12}\n"
             "batch: 512\nepochs: 30\nseed: 2\noptimizer: {kind: adam, lr: 0.002}\nmethod: phyll\n",
             PNN_SOURCE_DIR);
    pnn_trainer *tr;
    ck_assert_msg(pnn_trainer_create(pnn_test_parse(yaml), ".", &tr) == PNN_OK, "%s", pnn_last_error());
    const pnn_param *theta = pnn_network_param(tr->net, "osc.C");
    ck_assert_ptr_nonnull(theta);
    float c0 = theta->value.data[3];
    int64_t n = tr->train.n, *idx = malloc((size_t)n * sizeof(int64_t));
    for (int64_t i = 0; i < n; i++) idx[i] = i;
    double first = 0, loss, acc;
    for (int step = 0; step < 30; step++) {
        ck_assert_msg(pnn_trainer_step(tr, idx, n, &loss, &acc) == PNN_OK, "%s", pnn_last_error());
        tr->global_step++;
        if (step == 0) first = loss;
    }
    measured("phyll_vowels_loss_ratio_30_steps", loss / first, "below", 0.8);
    ck_assert_msg(loss < 0.8 * first, "loss %g after 30 steps, %g after the first", loss, first);
    ck_assert(theta->value.data[3] == c0);
    ck_assert_int_eq(tr->bridge_run.twin_calls, 0);
    ck_assert_int_eq(tr->devices[0]->calls, 60);
    pnn_eval_result res;
    ck_assert_msg(pnn_trainer_evaluate(tr, PNN_PASS_EVAL_DEVICE, &res) == PNN_OK, "%s", pnn_last_error());
    ck_assert_int_eq(tr->devices[0]->calls, 60 + 7); /* 7 labels x 1 physical block, one chunk */
    measured("phyll_vowels_test_acc_30_steps", res.acc, "above", 0.5);
    ck_assert_msg(res.acc > 0.5, "test accuracy %g", res.acc);
    free(idx);
    pnn_trainer_free(tr);
}
END_TEST

/* physical: spsa estimates the same control gradient from device passes alone: on an ideal
 * device, its step of the controls (plain SGD) points along the twin variant's, with the same size,
 * and costs 4 device passes per perturbation beyond the 2 of the block. */
static float *phyll_controls_step(const char *physical, int64_t b, uint64_t *calls) {
    char rest[256];
    snprintf(rest, sizeof rest,
             "batch: %lld\noptimizer: {kind: sgd, lr: 1, momentum: 0}\nmethod: {kind: phyll, inner_steps: 1, %s}\n",
             (long long)b, physical);
    pnn_trainer *tr;
    ck_assert_msg(phyll_block(&tr, "&noise=0&mismatch=0'", 6, rest) == PNN_OK, "%s", pnn_last_error());
    int64_t idx[64], n = pnn_network_param(tr->net, "osc.C")->value.numel + pnn_network_param(tr->net, "osc.e")->value.numel;
    for (int64_t i = 0; i < b; i++) idx[i] = i;
    int64_t np = pnn_dp_param_floats(tr->net);
    float *before = malloc((size_t)np * sizeof(float)), *after = malloc((size_t)n * sizeof(float));
    ck_assert_int_eq(pnn_dp_pack(tr->net, 0, before), PNN_OK); /* the controls come first */
    double loss, acc;
    ck_assert_msg(pnn_trainer_step(tr, idx, b, &loss, &acc) == PNN_OK, "%s", pnn_last_error());
    float *all = malloc((size_t)np * sizeof(float));
    ck_assert_int_eq(pnn_dp_pack(tr->net, 0, all), PNN_OK);
    for (int64_t i = 0; i < n; i++) after[i] = before[i] - all[i];
    *calls = tr->devices[0]->calls;
    free(before), free(all);
    pnn_trainer_free(tr);
    return after; /* the step, lr 1: the gradient */
}

START_TEST(phyll_spsa_controls_follow_the_twin_gradient) {
    uint64_t calls_twin, calls_spsa;
    int64_t n = 420;
    float *g = phyll_controls_step("physical: twin", 24, &calls_twin);
    float *e = phyll_controls_step("physical: spsa, perturbations: 3000, c: 0.001", 24, &calls_spsa);
    ck_assert_int_eq(calls_twin, 2);
    ck_assert_int_eq(calls_spsa, 2 + 4 * 3000);
    double dot = 0, gg = 0, ee = 0;
    for (int64_t i = 0; i < n; i++) dot += (double)g[i] * e[i], gg += (double)g[i] * g[i], ee += (double)e[i] * e[i];
    double cosine = dot / sqrt(gg * ee), ratio = sqrt(ee / gg);
    measured("phyll_spsa_3000_cosine_to_twin_gradient", cosine, "at least", 0.9);
    measured("phyll_spsa_3000_norm_ratio", ratio, "within 0.25 of", 1.0);
    ck_assert_msg(cosine >= 0.9 && fabs(ratio - 1) <= 0.25, "cosine %g, norm ratio %g", cosine, ratio);
    free(g), free(e);
}
END_TEST

/* twin: none (a device pnn has no model of): the methods that need no twin run it (spsa, phyll
 * fixed and spsa), the others are refused at the start naming the layer and the way out, and the
 * twin evaluation reports nothing (n = 0) instead of failing. */
START_TEST(twin_none_runs_methods_without_a_twin) {
    const char *ok[] = {"{kind: spsa, perturbations: 2}", "phyll", "{kind: phyll, physical: spsa}"};
    const char *refused[] = {"pat", "insilico", "dfa", "{kind: phyll, physical: twin}"};
    char yaml[2048], rest[256];
    for (int i = 0; i < 7; i++) {
        const char *m = i < 3 ? ok[i] : refused[i - 3];
        snprintf(rest, sizeof rest, "batch: 32\nmethod: %s\n", m);
        pnn_trainer *tr = NULL;
        pnn_status st = phyll_block(&tr, "', twin: none", 7, rest);
        if (i >= 3) {
            ck_assert_msg(st == PNN_ERR_CONFIG && strstr(pnn_last_error(), "needs a twin on layer 'osc'") &&
                              strstr(pnn_last_error(), "spsa, phyll"),
                          "%s: %s", m, pnn_last_error());
            continue;
        }
        ck_assert_msg(st == PNN_OK, "%s: %s", m, pnn_last_error());
        ck_assert_ptr_null(pnn_layer_physical_twin(tr->net->layers[3]));
        int64_t idx[32];
        for (int64_t r = 0; r < 32; r++) idx[r] = r;
        double loss, acc;
        ck_assert_msg(pnn_trainer_step(tr, idx, 32, &loss, &acc) == PNN_OK, "%s: %s", m, pnn_last_error());
        ck_assert(isfinite(loss));
        pnn_eval_result dev, twin;
        ck_assert_msg(pnn_trainer_evaluate(tr, PNN_PASS_EVAL_DEVICE, &dev) == PNN_OK, "%s", pnn_last_error());
        ck_assert_int_gt(dev.n, 0);
        ck_assert_int_eq(pnn_trainer_evaluate(tr, PNN_PASS_EVAL_TWIN, &twin), PNN_OK);
        ck_assert_int_eq(twin.n, 0);
        ck_assert_int_eq(tr->bridge_run.twin_calls, 0);
        pnn_trainer_free(tr);
    }
    /* twin_noise is the twin's: refused without one */
    snprintf(yaml, sizeof yaml,
             "data: {set: vowels, path: %s/data/vowels_hillenbrand_women.csv}\n"
             "network:\n  - {kind: physical, device: 'sim:oscillator?n=12&nt=4', twin: none, twin_noise: estimate}\n"
             "  - {kind: linear, out: 7}\nmethod: spsa\n",
             PNN_SOURCE_DIR);
    pnn_trainer *tr = NULL;
    ck_assert_int_eq(pnn_trainer_create(pnn_test_parse(yaml), ".", &tr), PNN_ERR_CONFIG);
    ck_assert_msg(strstr(pnn_last_error(), "drop twin_noise"), "%s", pnn_last_error());
}
END_TEST

/* The networks phyll cannot run, each refused at the start with what to change. */
START_TEST(phyll_network_errors) {
    char yaml[2048];
    const char *bad[][3] = {
        {"  - {kind: linear, out: 7}\n", "phyll", "needs the label-embedding input: start the network with {kind: pad, before: 7}"},
        {"  - {kind: pad, before: 3}\n  - {kind: linear, out: 7}\n", "phyll", "layer 0 is pad with too few columns"},
        {"  - {kind: pad, before: 8}\n  - {kind: linear, out: 7}\n  - {kind: tanh}\n", "phyll", "come after the last block"},
        {"  - {kind: pad, before: 8}\n  - {kind: tanh}\n", "phyll", "no digital layer with parameters"},
        {"  - {kind: linear, out: 7}\n", "{kind: phyll, embed: replace, inner_steps: 2}", "!"},
        {"  - {kind: pad, before: 8}\n  - {kind: linear, out: 7}\n", "{kind: phyll, physical: some}", "physical is 'some'"},
        {"  - {kind: pad, before: 8}\n  - {kind: linear, out: 7}\n", "{kind: phyll, c: 0.1}", "are for physical: spsa"},
        {"  - {kind: pad, before: 8}\n  - {kind: linear, out: 7}\n", "{kind: phyll, embed: over}", "embed is 'over'"},
        {"  - {kind: pad, before: 8}\n  - {kind: linear, out: 7}\n", "{kind: phyll, inner_steps: 0}", "inner_steps"},
        {"  - {kind: skip, name: a}\n  - {kind: concat_skip, from: b}\n  - {kind: linear, out: 7}\n", "pat",
         "from 'b' names no earlier layer; put {kind: skip, name: b}"},
        {"  - {kind: tanh, name: a}\n  - {kind: concat_skip, from: a}\n  - {kind: linear, out: 7}\n", "pat",
         "a tanh layer; it must name a skip layer"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(yaml, sizeof yaml,
                 "data: {set: vowels, path: %s/data/vowels_hillenbrand_women.csv}\nnetwork:\n%smethod: %s\n",
                 PNN_SOURCE_DIR, bad[i][0], bad[i][1]);
        pnn_trainer *tr = NULL;
        pnn_status st = pnn_trainer_create(pnn_test_parse(yaml), ".", &tr);
        if (!strcmp(bad[i][2], "!")) { /* embed: replace runs on the raw input */
            ck_assert_msg(st == PNN_OK, "%s", pnn_last_error());
            pnn_trainer_free(tr);
            continue;
        }
        ck_assert_int_eq(st, PNN_ERR_CONFIG);
        ck_assert_msg(strstr(pnn_last_error(), bad[i][2]), "case %zu: %s", i, pnn_last_error());
        ck_assert_ptr_null(tr);
    }
    /* it updates the parameters itself, so not under the exact reduction's shards */
    snprintf(yaml, sizeof yaml,
             "data: {set: vowels, path: %s/data/vowels_hillenbrand_women.csv}\n"
             "network:\n  - {kind: pad, before: 8}\n  - {kind: linear, out: 7}\nmethod: phyll\ncomm: {reduce: exact}\nbridge: {micro_batch: 4}\n",
             PNN_SOURCE_DIR);
    pnn_trainer *tr = NULL;
    pnn_status st = pnn_trainer_create(pnn_test_parse(yaml), ".", &tr);
    ck_assert_msg(st == PNN_ERR_UNSUPPORTED, "%s", pnn_last_error());
    ck_assert_msg(strstr(pnn_last_error(), "runs in one process with comm.reduce fast"), "%s", pnn_last_error());
}
END_TEST

START_TEST(method_config_errors) {
    char yaml[1024];
    const char *bad[][2] = {{"backprop", "unknown method 'backprop'; known: pat, insilico"},
                            {"{kind: spsa, perturbation: 3}", "perturbation"},
                            {"{kind: spsa, perturbations: 0}", "perturbations"},
                            {"{kind: spsa, c: -1}", "'c'"},
                            {"{perturbations: 3}", "kind"},
                            {"{kind: dfa, physical: some}", "physical is 'some'"},
                            {"{kind: dfa, feedback: 2}", "feedback"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(yaml, sizeof yaml,
                 "data: {set: vowels, path: %s/data/vowels_hillenbrand_women.csv}\n"
                 "network:\n  - {kind: linear, out: 7}\nmethod: %s\n",
                 PNN_SOURCE_DIR, bad[i][0]);
        pnn_trainer *tr = NULL;
        ck_assert_int_eq(pnn_trainer_create(pnn_test_parse(yaml), ".", &tr), PNN_ERR_CONFIG);
        ck_assert_msg(strstr(pnn_last_error(), bad[i][1]), "method %s: %s", bad[i][0], pnn_last_error());
        ck_assert_ptr_null(tr);
    }
}
END_TEST

Suite *methods_suite(void) {
    Suite *s = suite_create("methods");
    TCase *tc = tcase_create("methods");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, registry_lists_and_finds_methods);
    tcase_add_test(tc, spsa_estimates_the_gradient);
    tcase_add_test(tc, spsa_is_a_function_of_seed_and_step_and_adds_over_parts);
    tcase_add_test(tc, dfa_matches_its_reference);
    tcase_add_test(tc, method_config_errors);
    tcase_add_test(tc, phyll_step_follows_the_local_loss_gradient);
    tcase_add_test(tc, phyll_fixed_trains_the_blocks_only);
    tcase_add_test(tc, phyll_spsa_controls_follow_the_twin_gradient);
    tcase_add_test(tc, phyll_network_errors);
    tcase_add_test(tc, twin_none_runs_methods_without_a_twin);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    return pnn_test_run(methods_suite());
}
