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
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    return pnn_test_run(methods_suite());
}
