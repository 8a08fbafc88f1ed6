/* The digital layers: forward against double references, backward (dx and every parameter
 * gradient) against central finite differences, accumulation of parameter gradients, seeded
 * initialisation, and shape errors that name the layer. */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "pnn/pnn.h"
#include "tests/testutil.h"

static const pnn_backend *cpu(void) { return pnn_backend_cpu(); }

/* x for a layer: magnitudes in [0.1, 1] with random signs, so that no finite difference of
 * step <= 0.05 crosses the ReLU kink. */
static void layer_input(float *x, int64_t n, uint64_t stream) {
    float *sign = malloc((size_t)n * sizeof *sign);
    pnn_test_uniform(x, n, 0.1f, 1.0f, 5, stream);
    pnn_test_uniform(sign, n, -1, 1, 6, stream);
    for (int64_t i = 0; i < n; i++)
        if (sign[i] < 0) x[i] = -x[i];
    free(sign);
}

/* Runs l forward on x (rows x cols) into y, shaped by out_shape. */
static void run_forward(pnn_layer *l, const pnn_tensor *x, pnn_tensor *y) {
    int64_t r, c;
    ck_assert_msg(l->iface->out_shape(l, pnn_tensor_rows(x), pnn_tensor_cols(x), &r, &c) == PNN_OK, "%s",
                  pnn_last_error());
    ck_assert_int_eq(pnn_tensor_reshape2(y, r, c), PNN_OK);
    ck_assert_msg(l->iface->forward(l, x, y, PNN_PASS_TRAIN_TWIN, 0) == PNN_OK, "%s", pnn_last_error());
}

/* L = sum_i y_i w_i for fixed weights w, in double, at the current x and parameters. */
static double weighted_output(pnn_layer *l, const pnn_tensor *x, pnn_tensor *y, const float *w) {
    run_forward(l, x, y);
    double sum = 0;
    for (int64_t i = 0; i < y->numel; i++) sum += (double)y->data[i] * w[i];
    return sum;
}

/* Central difference of weighted_output in v[k] (an entry of x or of a parameter). */
static double central_difference(pnn_layer *l, const pnn_tensor *x, pnn_tensor *y, const float *w, float *v,
                                 float eps) {
    float orig = *v;
    *v = orig + eps;
    double up = weighted_output(l, x, y, w);
    *v = orig - eps;
    double down = weighted_output(l, x, y, w);
    *v = orig;
    return (up - down) / (2.0 * (double)eps);
}

/* Checks backward against finite differences of L = sum(y * w) for every entry of x and of every
 * parameter. dx starts as garbage (backward must overwrite it) and parameter gradients start at
 * 0.5 (backward must add to them). */
static void check_gradients(pnn_layer *l, int64_t rows, int64_t cols, float eps, uint64_t stream) {
    pnn_tensor x, y, dy, dx;
    ck_assert_int_eq(pnn_tensor_init2(&x, cpu(), rows, cols), PNN_OK);
    ck_assert_int_eq(pnn_tensor_init2(&y, cpu(), 1, 1), PNN_OK);
    ck_assert_int_eq(pnn_tensor_init2(&dx, cpu(), rows, cols), PNN_OK);
    layer_input(x.data, x.numel, stream);
    run_forward(l, &x, &y);
    ck_assert_int_eq(pnn_tensor_init2(&dy, cpu(), pnn_tensor_rows(&y), pnn_tensor_cols(&y)), PNN_OK);
    pnn_test_uniform(dy.data, dy.numel, -1, 1, 7, stream);
    for (int64_t i = 0; i < dx.numel; i++) dx.data[i] = 1234.5f;
    for (int p = 0; p < l->n_params; p++)
        for (int64_t i = 0; i < l->params[p].grad.numel; i++) l->params[p].grad.data[i] = 0.5f;
    ck_assert_msg(l->iface->backward(l, &x, &y, &dy, &dx, 0) == PNN_OK, "%s", pnn_last_error());

    double *want = calloc((size_t)x.numel, sizeof *want);
    for (int64_t k = 0; k < x.numel; k++) want[k] = central_difference(l, &x, &y, dy.data, &x.data[k], eps);
    ck_assert_msg(pnn_test_allclose("dx", dx.data, want, x.numel, 2e-3, 1e-2), "layer %s", l->name);
    free(want);
    for (int p = 0; p < l->n_params; p++) {
        pnn_param *prm = &l->params[p];
        int64_t n = prm->value.numel;
        float *got = malloc((size_t)n * sizeof *got);
        want = calloc((size_t)n, sizeof *want);
        for (int64_t k = 0; k < n; k++) {
            got[k] = prm->grad.data[k] - 0.5f;
            want[k] = central_difference(l, &x, &y, dy.data, &prm->value.data[k], eps);
        }
        ck_assert_msg(pnn_test_allclose(prm->name, got, want, n, 2e-3, 1e-2), "parameter %s", prm->name);
        free(got), free(want);
    }
    /* the first layer of a network gets no dx */
    ck_assert_int_eq(l->iface->backward(l, &x, &y, &dy, NULL, 0), PNN_OK);
    pnn_tensor_free(&x), pnn_tensor_free(&y), pnn_tensor_free(&dy), pnn_tensor_free(&dx);
}

/* Runs l forward on fresh input and compares with want(x) computed by ref. */
typedef void (*reference_fn)(const pnn_layer *l, const float *x, int64_t rows, int64_t cols, double *y);

static void check_forward(pnn_layer *l, int64_t rows, int64_t cols, reference_fn ref, uint64_t stream) {
    pnn_tensor x, y;
    ck_assert_int_eq(pnn_tensor_init2(&x, cpu(), rows, cols), PNN_OK);
    ck_assert_int_eq(pnn_tensor_init2(&y, cpu(), 1, 1), PNN_OK);
    pnn_test_uniform(x.data, x.numel, -3, 3, 8, stream);
    run_forward(l, &x, &y);
    double *want = calloc((size_t)y.numel, sizeof *want);
    ref(l, x.data, rows, cols, want);
    ck_assert_msg(pnn_test_allclose("forward", y.data, want, y.numel, 1e-5, 1e-5), "layer %s", l->name);
    free(want);
    pnn_tensor_free(&x), pnn_tensor_free(&y);
}

static void linear_ref(const pnn_layer *l, const float *x, int64_t rows, int64_t cols, double *y) {
    const float *w = l->params[0].value.data, *b = l->n_params > 1 ? l->params[1].value.data : NULL;
    int64_t out = l->params[0].value.shape[0];
    for (int64_t r = 0; r < rows; r++)
        for (int64_t o = 0; o < out; o++) {
            double s = b ? b[o] : 0.0;
            for (int64_t i = 0; i < cols; i++) s += (double)x[r * cols + i] * w[o * cols + i];
            y[r * out + o] = s;
        }
}

START_TEST(linear_matches_reference_and_finite_differences) {
    static const int64_t cases[][4] = {{3, 7, 5, 1}, {1, 1, 1, 1}, {4, 33, 1, 0}, {2, 5, 9, 1}};
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        pnn_layer *l;
        ck_assert_int_eq(pnn_layer_linear(&l, cpu(), "fc", cases[k][1], cases[k][2], (int)cases[k][3], 3),
                         PNN_OK);
        ck_assert_int_eq(l->n_params, cases[k][3] ? 2 : 1);
        ck_assert_str_eq(l->params[0].name, "fc.weight");
        ck_assert_int_eq(l->params[0].value.shape[0], cases[k][2]);
        ck_assert_int_eq(l->params[0].value.shape[1], cases[k][1]);
        if (cases[k][3]) ck_assert_str_eq(l->params[1].name, "fc.bias");
        check_forward(l, cases[k][0], cases[k][1], linear_ref, 10 + k);
        check_gradients(l, cases[k][0], cases[k][1], 1e-2f, 20 + k);
        pnn_layer_free(l);
    }
}
END_TEST

START_TEST(linear_init_is_seeded_bounded_and_named) {
    pnn_layer *a, *b, *c, *d;
    ck_assert_int_eq(pnn_layer_linear(&a, cpu(), "fc1", 50, 40, 1, 7), PNN_OK);
    ck_assert_int_eq(pnn_layer_linear(&b, cpu(), "fc1", 50, 40, 1, 7), PNN_OK);
    ck_assert_int_eq(pnn_layer_linear(&c, cpu(), "fc1", 50, 40, 1, 8), PNN_OK);
    ck_assert_int_eq(pnn_layer_linear(&d, cpu(), "fc2", 50, 40, 1, 7), PNN_OK);
    int64_t n = 2000;
    ck_assert_int_eq(memcmp(a->params[0].value.data, b->params[0].value.data, (size_t)n * 4), 0);
    ck_assert_int_eq(memcmp(a->params[1].value.data, b->params[1].value.data, 40 * 4), 0);
    ck_assert_int_ne(memcmp(a->params[0].value.data, c->params[0].value.data, (size_t)n * 4), 0);
    ck_assert_int_ne(memcmp(a->params[0].value.data, d->params[0].value.data, (size_t)n * 4), 0);
    /* U(-1/sqrt(50), 1/sqrt(50)): bounded, centred, variance bound^2 / 3 */
    double bound = 1.0 / sqrt(50.0), mean = 0, var = 0;
    for (int64_t i = 0; i < n; i++) {
        double w = a->params[0].value.data[i];
        ck_assert(fabs(w) <= bound);
        mean += w / n, var += w * w / n;
    }
    ck_assert_double_eq_tol(mean, 0.0, 0.01);
    ck_assert_double_eq_tol(var, bound * bound / 3, 0.1 * bound * bound / 3);
    for (int i = 0; i < 40; i++) ck_assert(fabs(a->params[1].value.data[i]) <= bound);
    for (int64_t i = 0; i < n; i++) ck_assert(a->params[0].grad.data[i] == 0.0f);
    pnn_layer_free(a), pnn_layer_free(b), pnn_layer_free(c), pnn_layer_free(d);
}
END_TEST

static double act_ref(pnn_act act, double x) {
    switch (act) {
    case PNN_ACT_RELU: return x > 0 ? x : 0;
    case PNN_ACT_TANH: return tanh(x);
    case PNN_ACT_SIGMOID: return 1 / (1 + exp(-x));
    default: return x;
    }
}

static pnn_act current_act;
static void activation_ref(const pnn_layer *l, const float *x, int64_t rows, int64_t cols, double *y) {
    for (int64_t i = 0; i < rows * cols; i++) y[i] = act_ref(current_act, x[i]);
}

START_TEST(activations_match_reference_and_finite_differences) {
    static const pnn_act acts[] = {PNN_ACT_IDENTITY, PNN_ACT_RELU, PNN_ACT_TANH, PNN_ACT_SIGMOID};
    static const char *const kinds[] = {"identity", "relu", "tanh", "sigmoid"};
    for (int a = 0; a < 4; a++) {
        pnn_layer *l;
        ck_assert_int_eq(pnn_layer_activation(&l, cpu(), "act", acts[a]), PNN_OK);
        ck_assert_str_eq(l->iface->kind, kinds[a]);
        ck_assert_int_eq(l->n_params, 0);
        current_act = acts[a];
        check_forward(l, 7, 33, activation_ref, 30);
        check_gradients(l, 3, 7, 1e-2f, 31);
        pnn_layer_free(l);
    }
    pnn_layer *l;
    ck_assert_int_eq(pnn_layer_activation(&l, cpu(), "act", (pnn_act)17), PNN_ERR_INVALID);
}
END_TEST

static void scale_ref(const pnn_layer *l, const float *x, int64_t rows, int64_t cols, double *y) {
    for (int64_t i = 0; i < rows * cols; i++) y[i] = (double)l->params[0].value.data[0] * x[i];
}

START_TEST(scale_matches_reference_and_finite_differences) {
    pnn_layer *l;
    ck_assert_int_eq(pnn_layer_scale(&l, cpu(), "s", -1.75f), PNN_OK);
    ck_assert_int_eq(l->n_params, 1);
    ck_assert_str_eq(l->params[0].name, "s.scale");
    ck_assert_int_eq(l->params[0].value.numel, 1);
    ck_assert(l->params[0].value.data[0] == -1.75f);
    check_forward(l, 7, 33, scale_ref, 40);
    check_gradients(l, 5, 7, 1e-2f, 41);
    pnn_layer_free(l);
    ck_assert_int_eq(pnn_layer_scale(&l, cpu(), "s", NAN), PNN_ERR_INVALID);
}
END_TEST

static int64_t patch_h, patch_w, patch_ph, patch_pw;
static void patchify_ref(const pnn_layer *l, const float *x, int64_t rows, int64_t cols, double *y) {
    int64_t npw = patch_w / patch_pw, npatch = (patch_h / patch_ph) * npw;
    for (int64_t b = 0; b < rows; b++)
        for (int64_t p = 0; p < npatch; p++)
            for (int64_t a = 0; a < patch_ph; a++)
                for (int64_t c = 0; c < patch_pw; c++)
                    y[((b * npatch + p) * patch_ph + a) * patch_pw + c] =
                        x[b * cols + ((p / npw) * patch_ph + a) * patch_w + (p % npw) * patch_pw + c];
}

START_TEST(patchify_matches_reference_and_finite_differences) {
    pnn_layer *l;
    patch_h = 4, patch_w = 6, patch_ph = 2, patch_pw = 3;
    ck_assert_int_eq(pnn_layer_patchify(&l, cpu(), "p", 4, 6, 2, 3), PNN_OK);
    int64_t r, c;
    ck_assert_int_eq(l->iface->out_shape(l, 5, 24, &r, &c), PNN_OK);
    ck_assert_int_eq(r, 20);
    ck_assert_int_eq(c, 6);
    check_forward(l, 3, 24, patchify_ref, 50);
    check_gradients(l, 2, 24, 1e-2f, 51);
    ck_assert_int_eq(l->iface->out_shape(l, 5, 25, &r, &c), PNN_ERR_INVALID);
    ck_assert_msg(strstr(pnn_last_error(), "'p' (patchify)") && strstr(pnn_last_error(), "24") &&
                      strstr(pnn_last_error(), "25"),
                  "%s", pnn_last_error());
    pnn_layer_free(l);
    ck_assert_int_eq(pnn_layer_patchify(&l, cpu(), "p", 28, 28, 5, 7), PNN_ERR_INVALID);
    ck_assert_msg(strstr(pnn_last_error(), "28x28") && strstr(pnn_last_error(), "5x7"), "%s", pnn_last_error());
}
END_TEST

static void identity_ref(const pnn_layer *l, const float *x, int64_t rows, int64_t cols, double *y) {
    for (int64_t i = 0; i < rows * cols; i++) y[i] = x[i];
}

START_TEST(concat_rows_reshapes_and_rejects_ragged_groups) {
    pnn_layer *l;
    ck_assert_int_eq(pnn_layer_concat_rows(&l, cpu(), "cat", 3), PNN_OK);
    int64_t r, c;
    ck_assert_int_eq(l->iface->out_shape(l, 6, 4, &r, &c), PNN_OK);
    ck_assert_int_eq(r, 2);
    ck_assert_int_eq(c, 12);
    check_forward(l, 6, 4, identity_ref, 60);
    check_gradients(l, 9, 2, 1e-2f, 61);
    ck_assert_int_eq(l->iface->out_shape(l, 7, 4, &r, &c), PNN_ERR_INVALID);
    ck_assert_msg(strstr(pnn_last_error(), "'cat' (concat_rows)") && strstr(pnn_last_error(), "3") &&
                      strstr(pnn_last_error(), "7"),
                  "%s", pnn_last_error());
    pnn_layer_free(l);
    ck_assert_int_eq(pnn_layer_concat_rows(&l, cpu(), "cat", 0), PNN_ERR_INVALID);
}
END_TEST

static void pad_ref(const pnn_layer *l, const float *x, int64_t rows, int64_t cols, double *y) {
    int64_t out = cols + 5;
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < out; c++) y[r * out + c] = c >= 2 && c < cols + 2 ? x[r * cols + c - 2] : 0.5;
}

START_TEST(pad_matches_reference_and_finite_differences) {
    pnn_layer *l;
    ck_assert_int_eq(pnn_layer_pad(&l, cpu(), "pad", 2, 3, 0.5f), PNN_OK);
    check_forward(l, 7, 33, pad_ref, 70);
    check_forward(l, 1, 1, pad_ref, 71);
    check_gradients(l, 3, 4, 1e-2f, 72);
    pnn_layer_free(l);
    ck_assert_int_eq(pnn_layer_pad(&l, cpu(), "pad", -1, 0, 0.0f), PNN_ERR_INVALID);
}
END_TEST

static void slice_ref(const pnn_layer *l, const float *x, int64_t rows, int64_t cols, double *y) {
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < 3; c++) y[r * 3 + c] = x[r * cols + 1 + c];
}

START_TEST(slice_matches_reference_and_finite_differences) {
    pnn_layer *l;
    ck_assert_int_eq(pnn_layer_slice(&l, cpu(), "sl", 1, 3), PNN_OK);
    check_forward(l, 7, 33, slice_ref, 80);
    check_forward(l, 2, 4, slice_ref, 81);
    check_gradients(l, 3, 7, 1e-2f, 82);
    int64_t r, c;
    ck_assert_int_eq(l->iface->out_shape(l, 2, 3, &r, &c), PNN_ERR_INVALID);
    ck_assert_msg(strstr(pnn_last_error(), "'sl' (slice)") && strstr(pnn_last_error(), "at least 4") &&
                      strstr(pnn_last_error(), "got 3"),
                  "%s", pnn_last_error());
    pnn_layer_free(l);
    ck_assert_int_eq(pnn_layer_slice(&l, cpu(), "sl", 0, 0), PNN_ERR_INVALID);
}
END_TEST

static int normalize_abs;
static void normalize_ref(const pnn_layer *l, const float *x, int64_t rows, int64_t cols, double *y) {
    for (int64_t r = 0; r < rows; r++) {
        double n2 = 0;
        for (int64_t j = 0; j < cols; j++) n2 += (double)x[r * cols + j] * x[r * cols + j];
        for (int64_t j = 0; j < cols; j++)
            y[r * cols + j] = (normalize_abs ? fabs((double)x[r * cols + j]) : x[r * cols + j]) / (sqrt(n2) + 1e-6);
    }
}

START_TEST(normalize_matches_reference_and_finite_differences) {
    for (normalize_abs = 0; normalize_abs < 2; normalize_abs++) {
        pnn_layer *l;
        ck_assert_int_eq(pnn_layer_normalize(&l, cpu(), "norm", normalize_abs), PNN_OK);
        check_forward(l, 6, 11, normalize_ref, 90);
        check_forward(l, 1, 1, normalize_ref, 91);
        check_gradients(l, 5, 9, 1e-3f, 92);
        /* a zero row stays zero, and finite */
        pnn_tensor x, y;
        ck_assert_int_eq(pnn_tensor_init2(&x, cpu(), 2, 3), PNN_OK);
        ck_assert_int_eq(pnn_tensor_init2(&y, cpu(), 2, 3), PNN_OK);
        run_forward(l, &x, &y);
        for (int i = 0; i < 6; i++) ck_assert(y.data[i] == 0.0f);
        pnn_tensor_free(&x), pnn_tensor_free(&y);
        pnn_layer_free(l);
    }
}
END_TEST

/* skip ... concat_skip: y = [f(h); h] through a network, its gradients (the two paths into h
 * summed) against central differences of L = sum(y * w), after two backward passes (the kept
 * gradient is used once each) */
START_TEST(skip_concat_matches_finite_differences) {
    pnn_network *net;
    pnn_cfg *cfg = pnn_test_parse("network:\n"
                                  "  - {kind: linear, name: pre, out: 5}\n"
                                  "  - {kind: skip, name: h}\n"
                                  "  - {kind: linear, name: f, out: 4}\n"
                                  "  - {kind: tanh}\n"
                                  "  - {kind: concat_skip, from: h}\n"
                                  "  - {kind: linear, name: out, out: 3}\n");
    ck_assert_msg(pnn_network_build(pnn_cfg_get(cfg, "network"), cpu(), 5, 7, &net) == PNN_OK, "%s", pnn_last_error());
    ck_assert_int_eq(net->out_dim, 3);
    ck_assert_int_eq(net->layers[5]->params[0].value.shape[1], 9);
    int64_t rows = 4;
    pnn_tensor x, dy;
    ck_assert_int_eq(pnn_tensor_init2(&x, cpu(), rows, 5), PNN_OK);
    ck_assert_int_eq(pnn_tensor_init2(&dy, cpu(), rows, 3), PNN_OK);
    layer_input(x.data, x.numel, 93);
    pnn_test_uniform(dy.data, dy.numel, -1, 1, 7, 94);
    const pnn_tensor *y;
    for (int round = 0; round < 2; round++) {
        pnn_network_zero_grad(net);
        ck_assert_int_eq(pnn_network_forward(net, &x, PNN_PASS_TRAIN_TWIN, &y), PNN_OK);
        ck_assert_msg(pnn_network_backward(net, &dy) == PNN_OK, "%s", pnn_last_error());
    }
    /* every parameter: pre's gradient is the skip's input gradient (both paths summed), f's comes
     * through the concatenation, out's reads both parts */
    for (int p = 0; p < net->n_params; p++) {
        pnn_param *prm = net->params[p];
        int64_t n = prm->value.numel;
        float *got = malloc((size_t)n * sizeof *got);
        double *want = calloc((size_t)n, sizeof *want);
        memcpy(got, prm->grad.data, (size_t)n * sizeof *got);
        for (int64_t k = 0; k < n; k++) {
            float orig = prm->value.data[k];
            double l[2];
            for (int sgn = 0; sgn < 2; sgn++) {
                prm->value.data[k] = orig + (sgn ? -1e-3f : 1e-3f);
                ck_assert_int_eq(pnn_network_forward(net, &x, PNN_PASS_EVAL_TWIN, &y), PNN_OK);
                l[sgn] = 0;
                for (int64_t i = 0; i < y->numel; i++) l[sgn] += (double)y->data[i] * dy.data[i];
            }
            prm->value.data[k] = orig;
            want[k] = (l[0] - l[1]) / 2e-3;
        }
        ck_assert_msg(pnn_test_allclose(prm->name, got, want, n, 2e-3, 1e-2), "parameter %s", prm->name);
        free(got), free(want);
    }
    pnn_tensor_free(&x), pnn_tensor_free(&dy);
    pnn_network_free(net);
    pnn_cfg_free(cfg);
}
END_TEST

START_TEST(shape_errors_name_layer_kind_and_sizes) {
    pnn_layer *l;
    ck_assert_int_eq(pnn_layer_linear(&l, cpu(), "fc1", 12, 4, 1, 1), PNN_OK);
    int64_t r, c;
    ck_assert_int_eq(l->iface->out_shape(l, 2, 13, &r, &c), PNN_ERR_INVALID);
    ck_assert_str_eq(pnn_last_error(), "layer 'fc1' (linear): expects 12 input features, got 13");
    /* forward checks the tensors it is given, too */
    pnn_tensor x, y;
    ck_assert_int_eq(pnn_tensor_init2(&x, cpu(), 2, 13), PNN_OK);
    ck_assert_int_eq(pnn_tensor_init2(&y, cpu(), 2, 4), PNN_OK);
    ck_assert_int_eq(l->iface->forward(l, &x, &y, PNN_PASS_EVAL_TWIN, 0), PNN_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(pnn_last_error(), "fc1"));
    ck_assert_int_eq(pnn_tensor_reshape2(&x, 2, 12), PNN_OK);
    ck_assert_int_eq(pnn_tensor_reshape2(&y, 3, 4), PNN_OK);
    ck_assert_int_eq(l->iface->forward(l, &x, &y, PNN_PASS_EVAL_TWIN, 0), PNN_ERR_INVALID);
    ck_assert_msg(strstr(pnn_last_error(), "'fc1' (linear) output") && strstr(pnn_last_error(), "2 x 4"), "%s",
                  pnn_last_error());
    pnn_tensor_free(&x), pnn_tensor_free(&y);
    pnn_layer_free(l);
    ck_assert_int_eq(pnn_layer_linear(&l, cpu(), "fc1", 0, 4, 1, 1), PNN_ERR_INVALID);
    ck_assert_int_eq(pnn_layer_linear(&l, cpu(), "", 3, 4, 1, 1), PNN_ERR_INVALID);
    char long_name[80];
    memset(long_name, 'a', sizeof long_name - 1);
    long_name[sizeof long_name - 1] = 0;
    ck_assert_int_eq(pnn_layer_scale(&l, cpu(), long_name, 1.0f), PNN_ERR_INVALID);
}
END_TEST

START_TEST(add_param_names_and_grows) {
    pnn_layer *l;
    ck_assert_int_eq(pnn_layer_pad(&l, cpu(), "host", 0, 0, 0.0f), PNN_OK);
    int64_t shape[3] = {2, 3, 4};
    pnn_param *p;
    for (int i = 0; i < 5; i++) {
        char name[16] = "p0";
        name[1] = (char)('0' + i);
        ck_assert_int_eq(pnn_layer_add_param(l, name, 3, shape, &p), PNN_OK);
        ck_assert_ptr_eq(p, &l->params[i]);
        ck_assert_int_eq(p->value.numel, 24);
        ck_assert_int_eq(p->grad.numel, 24);
        ck_assert_int_eq(p->value.ndim, 3);
    }
    ck_assert_int_eq(l->n_params, 5);
    ck_assert_str_eq(l->params[3].name, "host.p3");
    char long_name[100];
    memset(long_name, 'x', sizeof long_name - 1);
    long_name[sizeof long_name - 1] = 0;
    ck_assert_int_eq(pnn_layer_add_param(l, long_name, 3, shape, NULL), PNN_ERR_INVALID);
    ck_assert_int_eq(l->n_params, 5);
    pnn_layer_free(l);
    pnn_layer_free(NULL);
}
END_TEST

int main(void) {
    Suite *s = suite_create("layers");
    TCase *tc = tcase_create("layers");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, linear_matches_reference_and_finite_differences);
    tcase_add_test(tc, linear_init_is_seeded_bounded_and_named);
    tcase_add_test(tc, activations_match_reference_and_finite_differences);
    tcase_add_test(tc, scale_matches_reference_and_finite_differences);
    tcase_add_test(tc, patchify_matches_reference_and_finite_differences);
    tcase_add_test(tc, concat_rows_reshapes_and_rejects_ragged_groups);
    tcase_add_test(tc, pad_matches_reference_and_finite_differences);
    tcase_add_test(tc, slice_matches_reference_and_finite_differences);
    tcase_add_test(tc, normalize_matches_reference_and_finite_differences);
    tcase_add_test(tc, skip_concat_matches_finite_differences);
    tcase_add_test(tc, shape_errors_name_layer_kind_and_sizes);
    tcase_add_test(tc, add_param_names_and_grows);
    suite_add_tcase(s, tc);
    return pnn_test_run(s);
}
