/* Optimizers: Adam and SGD against hand-written double references over several steps (weight
 * decay included), their state tensors and step count, config checks, and convergence on a small
 * least-squares problem through a linear layer and the MSE loss. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pnn/pnn.h"
#include "tests/testutil.h"

static const pnn_backend *cpu(void) { return pnn_backend_cpu(); }

START_TEST(defaults_are_pytorchs) {
    pnn_optim_config c;
    ck_assert_int_eq(pnn_optim_defaults("adam", &c), PNN_OK);
    ck_assert_str_eq(c.kind, "adam");
    ck_assert(c.lr == 1e-3f && c.beta1 == 0.9f && c.beta2 == 0.999f && c.eps == 1e-8f && c.weight_decay == 0);
    ck_assert_int_eq(pnn_optim_defaults("sgd", &c), PNN_OK);
    ck_assert_str_eq(c.kind, "sgd");
    ck_assert(c.lr == 1e-2f && c.momentum == 0.9f && c.weight_decay == 0);
    ck_assert_int_eq(pnn_optim_defaults("rmsprop", &c), PNN_ERR_INVALID);
    ck_assert_msg(strstr(pnn_last_error(), "rmsprop") && strstr(pnn_last_error(), "adam, sgd"), "%s",
                  pnn_last_error());
}
END_TEST

/* Two parameters of odd sizes on a layer named "net". */
static pnn_layer *two_params(pnn_param *ps[2]) {
    pnn_layer *l;
    ck_assert_int_eq(pnn_layer_pad(&l, cpu(), "net", 0, 0, 0.0f), PNN_OK);
    int64_t s1[1] = {7}, s2[2] = {33, 3};
    ck_assert_int_eq(pnn_layer_add_param(l, "a", 1, s1, NULL), PNN_OK);
    ck_assert_int_eq(pnn_layer_add_param(l, "b", 2, s2, NULL), PNN_OK);
    for (int i = 0; i < 2; i++) {
        ps[i] = &l->params[i];
        pnn_test_uniform(ps[i]->value.data, ps[i]->value.numel, -1, 1, 3, (uint64_t)i);
    }
    return l;
}

/* Steps an optimizer of config c and a double reference side by side for 6 steps with random
 * gradients; adam selects the update the reference applies. */
static void check_against_reference(const pnn_optim_config *c, int adam) {
    pnn_param *ps[2];
    pnn_layer *l = two_params(ps);
    pnn_optimizer *o;
    ck_assert_msg(pnn_optimizer_create(c, ps, 2, &o) == PNN_OK, "%s", pnn_last_error());
    ck_assert_int_eq(pnn_optimizer_state_count(o), adam ? 4 : 2);
    double *ref[2], *m[2], *v[2];
    for (int i = 0; i < 2; i++) {
        int64_t n = ps[i]->value.numel;
        ref[i] = calloc((size_t)n, sizeof(double));
        m[i] = calloc((size_t)n, sizeof(double));
        v[i] = calloc((size_t)n, sizeof(double));
        for (int64_t k = 0; k < n; k++) ref[i][k] = ps[i]->value.data[k];
    }
    for (int step = 1; step <= 6; step++) {
        for (int i = 0; i < 2; i++) {
            int64_t n = ps[i]->value.numel;
            pnn_test_uniform(ps[i]->grad.data, n, -1, 1, 4, (uint64_t)(step * 2 + i));
            for (int64_t k = 0; k < n; k++) {
                double g = ps[i]->grad.data[k] + (double)c->weight_decay * ref[i][k];
                if (adam) {
                    m[i][k] = c->beta1 * m[i][k] + (1 - (double)c->beta1) * g;
                    v[i][k] = c->beta2 * v[i][k] + (1 - (double)c->beta2) * g * g;
                    double mhat = m[i][k] / (1 - pow(c->beta1, step)), vhat = v[i][k] / (1 - pow(c->beta2, step));
                    ref[i][k] -= c->lr * mhat / (sqrt(vhat) + c->eps);
                } else {
                    m[i][k] = c->momentum * m[i][k] + g;
                    ref[i][k] -= c->lr * m[i][k];
                }
            }
        }
        ck_assert_int_eq(pnn_optimizer_step(o), PNN_OK);
        ck_assert_int_eq(pnn_optimizer_step_count(o), step);
        for (int i = 0; i < 2; i++)
            ck_assert_msg(pnn_test_allclose(ps[i]->name, ps[i]->value.data, ref[i], ps[i]->value.numel, 1e-6, 1e-5),
                          "step %d", step);
    }
    /* state tensors: named per parameter, holding the reference moments */
    const char *name;
    pnn_tensor *st = pnn_optimizer_state(o, adam ? 2 : 1, &name);
    ck_assert_str_eq(name, adam ? "optim.adam.m.net.b" : "optim.sgd.velocity.net.b");
    ck_assert(pnn_test_allclose(name, st->data, m[1], st->numel, 1e-6, 1e-5));
    ck_assert_int_eq(st->ndim, 2);
    if (adam) {
        st = pnn_optimizer_state(o, 1, &name);
        ck_assert_str_eq(name, "optim.adam.v.net.a");
        ck_assert(pnn_test_allclose(name, st->data, v[0], st->numel, 1e-7, 1e-5));
    }
    ck_assert_ptr_null(pnn_optimizer_state(o, pnn_optimizer_state_count(o), &name));
    for (int i = 0; i < 2; i++) free(ref[i]), free(m[i]), free(v[i]);
    pnn_optimizer_free(o);
    pnn_layer_free(l);
}

START_TEST(adam_matches_double_reference) {
    pnn_optim_config c;
    ck_assert_int_eq(pnn_optim_defaults("adam", &c), PNN_OK);
    c.lr = 0.01f, c.beta1 = 0.8f, c.beta2 = 0.99f, c.eps = 1e-6f, c.weight_decay = 0.1f;
    check_against_reference(&c, 1);
    c.weight_decay = 0;
    check_against_reference(&c, 1);
}
END_TEST

START_TEST(sgd_matches_double_reference) {
    pnn_optim_config c;
    ck_assert_int_eq(pnn_optim_defaults("sgd", &c), PNN_OK);
    c.lr = 0.05f, c.weight_decay = 0.05f;
    check_against_reference(&c, 0);
    c.momentum = 0, c.weight_decay = 0;
    check_against_reference(&c, 0);
}
END_TEST

/* Adam's bias correction depends on the step count, so a resumed count changes the update; a new
 * lr takes effect on the next step. */
START_TEST(step_count_and_lr_can_be_set) {
    pnn_param *ps[2];
    pnn_layer *l = two_params(ps);
    pnn_optim_config c;
    pnn_optimizer *o;
    ck_assert_int_eq(pnn_optim_defaults("adam", &c), PNN_OK);
    ck_assert_int_eq(pnn_optimizer_create(&c, ps, 1, &o), PNN_OK);
    for (int k = 0; k < 7; k++) ps[0]->grad.data[k] = 1.0f;
    float before = ps[0]->value.data[0];
    ck_assert_int_eq(pnn_optimizer_step(o), PNN_OK); /* step 1 of Adam moves by lr exactly */
    ck_assert_double_eq_tol(before - ps[0]->value.data[0], 1e-3, 1e-7);
    pnn_optimizer_set_step_count(o, 1000);
    pnn_optimizer_set_lr(o, 0.5f);
    before = ps[0]->value.data[0];
    ck_assert_int_eq(pnn_optimizer_step(o), PNN_OK);
    ck_assert_int_eq(pnn_optimizer_step_count(o), 1001);
    /* m = 0.19, v = 0.001999; corrected with step 1001 */
    double mh = 0.19 / (1 - pow(0.9, 1001)), vh = (1 - 0.999 * 0.999) / (1 - pow(0.999, 1001));
    ck_assert_double_eq_tol(before - ps[0]->value.data[0], 0.5 * mh / sqrt(vh), 1e-5);
    pnn_optimizer_free(o);
    pnn_layer_free(l);
}
END_TEST

START_TEST(bad_configs_are_rejected) {
    pnn_optim_config c;
    pnn_optimizer *o;
    pnn_param *ps[2];
    pnn_layer *l = two_params(ps);
    ck_assert_int_eq(pnn_optim_defaults("adam", &c), PNN_OK);
    c.beta1 = 1.0f;
    ck_assert_int_eq(pnn_optimizer_create(&c, ps, 2, &o), PNN_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(pnn_last_error(), "beta1"));
    ck_assert_int_eq(pnn_optim_defaults("sgd", &c), PNN_OK);
    c.lr = -1;
    ck_assert_int_eq(pnn_optimizer_create(&c, ps, 2, &o), PNN_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(pnn_last_error(), "lr"));
    snprintf(c.kind, sizeof c.kind, "lbfgs");
    ck_assert_int_eq(pnn_optimizer_create(&c, ps, 2, &o), PNN_ERR_INVALID);
    pnn_layer_free(l);
}
END_TEST

/* Fits y = x w* + b* (4 features) with a linear layer, the MSE loss and the optimizer; returns
 * the final mean loss. */
static double fit_least_squares(const pnn_optim_config *c, int steps) {
    const int64_t n = 64, d = 4;
    const float w_true[4] = {1.5f, -2.0f, 0.25f, 0.75f}, b_true = -0.5f;
    pnn_layer *l;
    pnn_tensor x, y, t, dy, scratch;
    ck_assert_int_eq(pnn_layer_linear(&l, cpu(), "ls", d, 1, 1, 9), PNN_OK);
    ck_assert_int_eq(pnn_tensor_init2(&x, cpu(), n, d), PNN_OK);
    ck_assert_int_eq(pnn_tensor_init2(&y, cpu(), n, 1), PNN_OK);
    ck_assert_int_eq(pnn_tensor_init2(&t, cpu(), n, 1), PNN_OK);
    ck_assert_int_eq(pnn_tensor_init2(&dy, cpu(), n, 1), PNN_OK);
    ck_assert_int_eq(pnn_tensor_init2(&scratch, cpu(), 1, 1), PNN_OK);
    pnn_test_uniform(x.data, x.numel, -1, 1, 10, 0);
    for (int64_t r = 0; r < n; r++) {
        t.data[r] = b_true;
        for (int64_t k = 0; k < d; k++) t.data[r] += w_true[k] * x.data[r * d + k];
    }
    pnn_param *ps[2] = {&l->params[0], &l->params[1]};
    pnn_optimizer *o;
    ck_assert_int_eq(pnn_optimizer_create(c, ps, 2, &o), PNN_OK);
    double sum = 0, correct, first = -1;
    for (int s = 0; s < steps; s++) {
        ck_assert_int_eq(l->iface->forward(l, &x, &y, PNN_PASS_TRAIN_TWIN, 0), PNN_OK);
        ck_assert_int_eq(pnn_loss_compute(PNN_LOSS_MSE, &y, &t, &dy, &scratch, &sum, &correct), PNN_OK);
        if (first < 0) first = sum / n;
        pnn_tensor_zero(&ps[0]->grad), pnn_tensor_zero(&ps[1]->grad);
        ck_assert_int_eq(l->iface->backward(l, &x, &y, &dy, NULL, 0), PNN_OK);
        ck_assert_int_eq(pnn_optimizer_step(o), PNN_OK);
    }
    ck_assert(first > 0.1); /* the problem started far from solved */
    for (int k = 0; k < d; k++) ck_assert_double_eq_tol(ps[0]->value.data[k], w_true[k], 1e-2);
    ck_assert_double_eq_tol(ps[1]->value.data[0], b_true, 1e-2);
    pnn_optimizer_free(o);
    pnn_layer_free(l);
    pnn_tensor_free(&x), pnn_tensor_free(&y), pnn_tensor_free(&t), pnn_tensor_free(&dy), pnn_tensor_free(&scratch);
    return sum / n;
}

START_TEST(optimizers_solve_least_squares) {
    pnn_optim_config c;
    ck_assert_int_eq(pnn_optim_defaults("adam", &c), PNN_OK);
    c.lr = 0.05f;
    ck_assert_double_lt(fit_least_squares(&c, 600), 1e-5);
    ck_assert_int_eq(pnn_optim_defaults("sgd", &c), PNN_OK);
    c.lr = 0.1f;
    ck_assert_double_lt(fit_least_squares(&c, 400), 1e-6);
}
END_TEST

int main(void) {
    Suite *s = suite_create("optim");
    TCase *tc = tcase_create("optim");
    tcase_add_test(tc, defaults_are_pytorchs);
    tcase_add_test(tc, adam_matches_double_reference);
    tcase_add_test(tc, sgd_matches_double_reference);
    tcase_add_test(tc, step_count_and_lr_can_be_set);
    tcase_add_test(tc, bad_configs_are_rejected);
    tcase_add_test(tc, optimizers_solve_least_squares);
    suite_add_tcase(s, tc);
    return pnn_test_run(s);
}
