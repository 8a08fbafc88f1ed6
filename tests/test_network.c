/* Networks built from configs: shape checks with errors that name the layer and line, the
 * reference network's parameter count, the gradient of a whole hybrid network against finite
 * differences, and PAT on an ideal device matching in-silico training exactly. */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "pnn/pnn.h"
#include "tests/testutil.h"

static pnn_status build(const char *yaml, int64_t in_dim, pnn_network **net) {
    pnn_cfg *cfg = pnn_test_parse(yaml);
    pnn_status st = pnn_network_build(pnn_cfg_get(cfg, "network"), pnn_backend_cpu(), in_dim, 1, net);
    pnn_cfg_free(cfg);
    return st;
}

START_TEST(reference_network_has_the_reference_parameter_count) {
    pnn_network *net;
    pnn_status st = build("network:\n"
                          "  - {kind: patchify, image: [28, 28], patch: [7, 7]}\n"
                          "  - {kind: physical, name: osc1, device: 'sim:oscillator?n=100'}\n"
                          "  - {kind: concat_rows, group: 16}\n"
                          "  - {kind: pad, after: 10}\n"
                          "  - {kind: physical, name: osc2, device: 'sim:oscillator?n=1610', outputs: 'last:10'}\n"
                          "  - {kind: scale, init: 1}\n",
                          784, &net);
    ck_assert_msg(st == PNN_OK, "%s", pnn_last_error());
    ck_assert_int_eq(pnn_network_param_count(net), 2603811);
    ck_assert_int_eq(net->out_dim, 10);
    ck_assert_ptr_nonnull(pnn_network_param(net, "osc2.C"));
    pnn_network_free(net);
}
END_TEST

START_TEST(shape_errors_name_layer_and_line) {
    pnn_network *net;
    /* 20 features into a 10-oscillator device */
    ck_assert_int_eq(build("network:\n"
                           "  - {kind: linear, out: 20}\n"
                           "  - {kind: physical, name: small, device: 'sim:oscillator?n=10'}\n",
                           12, &net),
                     PNN_ERR_CONFIG);
    ck_assert_msg(strstr(pnn_last_error(), "test.yaml:3") && strstr(pnn_last_error(), "'small'"), "%s",
                  pnn_last_error());
    ck_assert_int_eq(build("network:\n  - {kind: linear, out: 4}\n  - {kind: convolution}\n", 12, &net),
                     PNN_ERR_CONFIG);
    ck_assert_msg(strstr(pnn_last_error(), "convolution") && strstr(pnn_last_error(), ":3"), "%s",
                  pnn_last_error());
    ck_assert_int_eq(build("network:\n  - {kind: linear, out: 4, widht: 3}\n", 12, &net), PNN_ERR_CONFIG);
    ck_assert_msg(strstr(pnn_last_error(), "widht"), "%s", pnn_last_error());
    /* patches never regrouped into samples */
    ck_assert_int_eq(build("network:\n  - {kind: patchify, image: [4, 4], patch: [2, 2]}\n", 16, &net),
                     PNN_ERR_CONFIG);
    ck_assert_msg(strstr(pnn_last_error(), "concat_rows"), "%s", pnn_last_error());
    ck_assert_int_eq(build("network:\n  - {kind: physical, device: 'sim:oscillator?n=8', outputs: 'last:9'}\n",
                           4, &net),
                     PNN_ERR_CONFIG);
    ck_assert_msg(strstr(pnn_last_error(), "last:9"), "%s", pnn_last_error());
}
END_TEST

/* Cross-entropy of the network on the twin for a fixed batch (double accumulate). */
static double net_loss(pnn_network *net, const pnn_tensor *x, const pnn_tensor *labels, pnn_tensor *dy,
                       pnn_tensor *scratch) {
    const pnn_tensor *y;
    double loss, correct;
    ck_assert_int_eq(pnn_network_forward(net, x, PNN_PASS_TRAIN_TWIN, &y), PNN_OK);
    ck_assert_int_eq(pnn_tensor_reshape2(dy, pnn_tensor_rows(y), net->out_dim), PNN_OK);
    ck_assert_msg(pnn_loss_compute(PNN_LOSS_XENT, y, labels, dy, scratch, &loss, &correct) == PNN_OK, "%s",
                  pnn_last_error());
    return loss / (double)pnn_tensor_rows(y);
}

/* Every parameter gradient of linear -> tanh -> patchify -> physical -> concat_rows -> pad ->
 * physical -> scale, against central differences of the loss. */
/* Backprop through net on random inputs of in_dim features (3 rows, 3 classes) against
 * central finite differences of the loss, for a spread of every parameter's entries. */
static void check_gradient_fd(pnn_network *net, int64_t in_dim) {
    const pnn_backend *be = pnn_backend_cpu();
    int64_t rows = 3;
    float *xh = malloc((size_t)(rows * in_dim) * sizeof(float)), lab[3] = {0, 2, 1};
    pnn_test_uniform(xh, rows * in_dim, -1, 1, 3, 3);
    pnn_tensor x, labels, dy, scratch;
    pnn_tensor_init2(&x, be, rows, in_dim);
    pnn_tensor_init2(&labels, be, rows, 1);
    pnn_tensor_init2(&dy, be, rows, 3);
    pnn_tensor_init2(&scratch, be, rows, 2);
    pnn_tensor_from_host(&x, xh, rows * in_dim);
    pnn_tensor_from_host(&labels, lab, 3);
    pnn_network_zero_grad(net);
    net_loss(net, &x, &labels, &dy, &scratch);
    ck_assert_int_eq(pnn_network_backward(net, &dy), PNN_OK);
    int checked = 0;
    for (int p = 0; p < net->n_params; p++) {
        pnn_param *prm = net->params[p];
        int64_t n = prm->value.numel;
        float *v = prm->value.data, *g = prm->grad.data;  /* CPU backend: host memory */
        float *gcopy = malloc((size_t)n * sizeof(float));
        memcpy(gcopy, g, (size_t)n * sizeof(float));
        for (int64_t k = 0; k < n; k += n > 8 ? n / 7 : 1) {
            float orig = v[k], eps = 1e-2f;
            v[k] = orig + eps;
            double lp = net_loss(net, &x, &labels, &dy, &scratch);
            v[k] = orig - eps;
            double lm = net_loss(net, &x, &labels, &dy, &scratch);
            v[k] = orig;
            double fd = (lp - lm) / (2.0 * eps);
            ck_assert_msg(fabs(fd - gcopy[k]) <= 2e-3 + 2e-2 * fabs(fd), "%s[%lld]: backprop %.6g, fd %.6g",
                          prm->name, (long long)k, gcopy[k], fd);
            checked++;
        }
        free(gcopy);
    }
    ck_assert_int_ge(checked, 30);
    free(xh);
    pnn_tensor_free(&x), pnn_tensor_free(&labels), pnn_tensor_free(&dy), pnn_tensor_free(&scratch);
}

START_TEST(hybrid_network_gradient_matches_finite_differences) {
    pnn_network *net;
    pnn_status st = build("network:\n"
                          "  - {kind: linear, name: fc, out: 16}\n"
                          "  - {kind: tanh}\n"
                          "  - {kind: patchify, image: [4, 4], patch: [2, 2]}\n"
                          "  - {kind: physical, name: o1, device: 'sim:oscillator?n=6&nt=3&noise=0'}\n"
                          "  - {kind: concat_rows, group: 4}\n"
                          "  - {kind: pad, after: 2}\n"
                          "  - {kind: physical, name: o2, device: 'sim:oscillator?n=26&nt=4&noise=0', outputs: 'last:3'}\n"
                          "  - {kind: scale, name: s, init: 2.0}\n",
                          5, &net);
    ck_assert_msg(st == PNN_OK, "%s", pnn_last_error());
    check_gradient_fd(net, 5);
    pnn_network_free(net);
}
END_TEST

/* A convolutional front end from the config: shapes, parameters, gradients through it and a
 * physical layer; config errors name the key. */
START_TEST(conv2d_front_end_from_config) {
    pnn_network *net;
    pnn_status st = build("network:\n"
                          "  - {kind: conv2d, name: c1, image: [2, 5, 5], out_channels: 3, kernel: [3, 3], pad: 1}\n"
                          "  - {kind: tanh}\n"
                          "  - {kind: conv2d, name: c2, image: [3, 5, 5], out_channels: 2, kernel: [2, 2], stride: 2, bias: false}\n"
                          "  - {kind: physical, name: o, device: 'sim:oscillator?n=10&nt=3&noise=0', outputs: 'last:3'}\n",
                          50, &net);
    ck_assert_msg(st == PNN_OK, "%s", pnn_last_error());
    ck_assert_int_eq(net->out_dim, 3);
    ck_assert_ptr_nonnull(pnn_network_param(net, "c1.weight"));
    ck_assert_ptr_nonnull(pnn_network_param(net, "c1.bias"));
    ck_assert_ptr_null(pnn_network_param(net, "c2.bias"));
    /* c1: 3*2*3*3 + 3, c2: 2*3*2*2, oscillators: 10*10 + 10 */
    ck_assert_int_eq(pnn_network_param_count(net), 57 + 24 + 110);
    check_gradient_fd(net, 50);
    pnn_network_free(net);
    ck_assert_int_eq(build("network:\n  - {kind: conv2d, image: [5, 5], out_channels: 2, kernel: [3, 3]}\n", 25, &net),
                     PNN_ERR_CONFIG);
    ck_assert_msg(strstr(pnn_last_error(), "image") && strstr(pnn_last_error(), "channels"), "%s", pnn_last_error());
    ck_assert_int_eq(build("network:\n  - {kind: conv2d, image: [1, 5, 5], out_channels: 2, kernel: [3, 3]}\n", 24, &net),
                     PNN_ERR_CONFIG);
}
END_TEST

static pnn_trainer *vowel_trainer(const char *method, const char *device) {
    char yaml[1024];
    snprintf(yaml, sizeof yaml,
             "data: {set: vowels, path: %s/data/vowels_hillenbrand_women.csv}\n"
             "network:\n"
             "  - {kind: linear, name: enc, out: 10}\n"
             "  - {kind: physical, name: osc, device: '%s', outputs: 'last:7'}\n"
             "  - {kind: scale, init: 5}\n"
             "method: %s\nbatch: 16\nepochs: 1\nseed: 3\noptimizer: {kind: adam, lr: 0.01}\n",
             PNN_SOURCE_DIR, device, method);
    pnn_trainer *tr;
    ck_assert_msg(pnn_trainer_create(pnn_test_parse(yaml), ".", &tr) == PNN_OK, "%s", pnn_last_error());
    return tr;
}

static void params_of(pnn_trainer *tr, float *out, int64_t cap) {
    int64_t k = 0;
    for (int p = 0; p < tr->net->n_params; p++) {
        const pnn_tensor *t = &tr->net->params[p]->value;
        ck_assert_int_le(k + t->numel, cap);
        pnn_tensor_to_host(t, out + k, t->numel);
        k += t->numel;
    }
}

/* On a device without mismatch or noise, PAT is in-silico training: same parameters, bit for
 * bit. On the default (mismatched) device they part. */
START_TEST(pat_on_ideal_device_equals_insilico) {
    pnn_trainer *pat = vowel_trainer("pat", "sim:oscillator?n=10&mismatch=0&noise=0");
    pnn_trainer *ins = vowel_trainer("insilico", "sim:oscillator?n=10&mismatch=0&noise=0");
    pnn_trainer *real = vowel_trainer("pat", "sim:oscillator?n=10");
    ck_assert_int_eq(pnn_trainer_run(pat), PNN_OK);
    ck_assert_int_eq(pnn_trainer_run(ins), PNN_OK);
    ck_assert_int_eq(pnn_trainer_run(real), PNN_OK);
    static float a[4096], b[4096], c[4096];
    params_of(pat, a, 4096);
    params_of(ins, b, 4096);
    params_of(real, c, 4096);
    int64_t n = pnn_network_param_count(pat->net);
    ck_assert_int_eq(memcmp(a, b, (size_t)n * sizeof(float)), 0);
    ck_assert_int_ne(memcmp(a, c, (size_t)n * sizeof(float)), 0);
    ck_assert_int_eq(pat->global_step, (209 + 15) / 16);
    pnn_trainer_free(pat), pnn_trainer_free(ins), pnn_trainer_free(real);
}
END_TEST

Suite *network_suite(void) {
    Suite *s = suite_create("network");
    TCase *tc = tcase_create("network");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, reference_network_has_the_reference_parameter_count);
    tcase_add_test(tc, shape_errors_name_layer_and_line);
    tcase_add_test(tc, hybrid_network_gradient_matches_finite_differences);
    tcase_add_test(tc, conv2d_front_end_from_config);
    tcase_add_test(tc, pat_on_ideal_device_equals_insilico);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    return pnn_test_run(network_suite());
}
