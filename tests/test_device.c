/* The simulated oscillator device and its twin: URIs, determinism, the hidden mismatch, and
 * the physical layer's PAT semantics (device values forward, twin gradients backward). */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "pnn/pnn.h"
#include "pnn/system.h"
#include "tests/testutil.h"

static const pnn_backend *be;

static void setup(void) { be = pnn_backend_cpu(); }

static pnn_tensor matrix(int64_t r, int64_t c, const float *host) {
    pnn_tensor t;
    ck_assert_int_eq(pnn_tensor_init2(&t, be, r, c), PNN_OK);
    if (host) pnn_tensor_from_host(&t, host, r * c);
    return t;
}

/* Runs a device forward on x (host) and returns y on the host (malloc'd). */
static float *device_run(pnn_device *dev, const float *x, int64_t rows, const float *theta) {
    int64_t n = dev->info.x_dim;
    pnn_tensor tx = matrix(rows, n, x), ty = matrix(rows, dev->info.y_dim, NULL);
    ck_assert_msg(pnn_device_forward(dev, &tx, theta, &ty) == PNN_OK, "%s", pnn_last_error());
    float *y = malloc((size_t)(rows * dev->info.y_dim) * sizeof(float));
    pnn_tensor_to_host(&ty, y, rows * dev->info.y_dim);
    pnn_tensor_free(&tx);
    pnn_tensor_free(&ty);
    return y;
}

static float *random_theta(int64_t n, uint64_t seed) {
    float *t = malloc((size_t)(n * n + n) * sizeof(float));
    pnn_test_uniform(t, n * n + n, -1.0f / sqrtf((float)n), 1.0f / sqrtf((float)n), seed, 1);
    return t;
}

START_TEST(uri_errors_name_the_problem) {
    pnn_device *dev;
    ck_assert_int_eq(pnn_device_open("oscillator", be, &dev), PNN_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(pnn_last_error(), "no scheme"));
    ck_assert_int_eq(pnn_device_open("sim:pendulum", be, &dev), PNN_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(pnn_last_error(), "pendulum"));
    ck_assert_int_eq(pnn_device_open("sim:oscillator?n=10&colour=red", be, &dev), PNN_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(pnn_last_error(), "colour"));
    ck_assert_int_eq(pnn_device_open("sim:oscillator?n=-3", be, &dev), PNN_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(pnn_last_error(), "n=-3"));
    ck_assert_int_eq(pnn_device_open("sim:oscillator?n=10&n=11", be, &dev), PNN_ERR_INVALID);
    ck_assert_int_eq(pnn_device_open("laser:pulse", be, &dev), PNN_ERR_UNSUPPORTED);
    ck_assert_ptr_nonnull(strstr(pnn_last_error(), "sim:"));
    ck_assert_int_eq(pnn_device_open("sim:oscillator?fault_rate=0.7&drop_rate=0.5", be, &dev), PNN_ERR_INVALID);
    ck_assert_int_eq(pnn_device_open("sim:oscillator?latency_ms=-1", be, &dev), PNN_ERR_INVALID);
    ck_assert_int_eq(pnn_device_open("record:nowhere.pnnrec", be, &dev), PNN_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(pnn_last_error(), "record:FILE@"));
    ck_assert_int_eq(pnn_device_open("replay:/nonexistent/x.pnnrec", be, &dev), PNN_ERR_NOT_FOUND);
}
END_TEST

START_TEST(device_is_deterministic_per_seed_and_call) {
    int64_t n = 12, rows = 5;
    float x[60], *theta = random_theta(n, 3);
    pnn_test_uniform(x, rows * n, -1, 1, 9, 2);
    pnn_device *a, *b, *c;
    ck_assert_int_eq(pnn_device_open("sim:oscillator?n=12&seed=4", be, &a), PNN_OK);
    ck_assert_int_eq(pnn_device_open("sim:oscillator?n=12&seed=4", be, &b), PNN_OK);
    ck_assert_int_eq(pnn_device_open("sim:oscillator?n=12&seed=5", be, &c), PNN_OK);
    float *ya1 = device_run(a, x, rows, theta), *yb1 = device_run(b, x, rows, theta);
    float *ya2 = device_run(a, x, rows, theta), *yc1 = device_run(c, x, rows, theta);
    ck_assert_int_eq(memcmp(ya1, yb1, sizeof(float) * (size_t)(rows * n)), 0);  /* same seed, call */
    ck_assert_int_ne(memcmp(ya1, ya2, sizeof(float) * (size_t)(rows * n)), 0);  /* fresh noise */
    ck_assert_int_ne(memcmp(ya1, yc1, sizeof(float) * (size_t)(rows * n)), 0);  /* other hardware */
    /* restoring the call counter replays the noise (what resume relies on) */
    a->calls = 0;
    float *ya3 = device_run(a, x, rows, theta);
    ck_assert_int_eq(memcmp(ya1, ya3, sizeof(float) * (size_t)(rows * n)), 0);
    free(ya1), free(yb1), free(ya2), free(yc1), free(ya3), free(theta);
    pnn_device_close(a), pnn_device_close(b), pnn_device_close(c);
}
END_TEST

/* The hidden coupling's drift is a function of (seed, call index): two devices with the same seed
 * agree call by call, restoring the call counter replays it, drift=0 is the device without the
 * key, and over a drift period the outputs (noise off) move. */
START_TEST(drift_is_reproducible_from_its_seed) {
    int64_t n = 12, rows = 3, calls = 40;
    float x[36], *theta = random_theta(n, 4);
    pnn_test_uniform(x, rows * n, -1, 1, 5, 2);
    pnn_device *a, *b, *still, *plain;
    const char *uri = "sim:oscillator?n=12&noise=0&mismatch=2&drift=2&drift_period=20&seed=7";
    ck_assert_int_eq(pnn_device_open(uri, be, &a), PNN_OK);
    ck_assert_int_eq(pnn_device_open(uri, be, &b), PNN_OK);
    ck_assert_int_eq(pnn_device_open("sim:oscillator?n=12&noise=0&mismatch=2&drift=0&seed=7", be, &still), PNN_OK);
    ck_assert_int_eq(pnn_device_open("sim:oscillator?n=12&noise=0&mismatch=2&seed=7", be, &plain), PNN_OK);
    float *first = device_run(a, x, rows, theta), *first_still = device_run(still, x, rows, theta);
    float *first_plain = device_run(plain, x, rows, theta), *first_b = device_run(b, x, rows, theta);
    ck_assert_int_eq(memcmp(first, first_b, sizeof(float) * (size_t)(rows * n)), 0);
    ck_assert_int_eq(memcmp(first_still, first_plain, sizeof(float) * (size_t)(rows * n)), 0);
    double moved = 0;
    for (int64_t i = 1; i < calls; i++) {
        float *ya = device_run(a, x, rows, theta), *yb = device_run(b, x, rows, theta);
        float *ys = device_run(still, x, rows, theta);
        ck_assert_msg(memcmp(ya, yb, sizeof(float) * (size_t)(rows * n)) == 0, "same seed differs at call %lld",
                      (long long)i);
        ck_assert_msg(memcmp(ys, first_still, sizeof(float) * (size_t)(rows * n)) == 0, "drift=0 moved");
        for (int64_t k = 0; k < rows * n; k++) moved = fmax(moved, fabs((double)ya[k] - first[k]));
        free(ya), free(yb), free(ys);
    }
    ck_assert_msg(moved > 1e-3, "the drift did not move the outputs over %lld calls: %g", (long long)calls, moved);
    a->calls = 0;
    float *again = device_run(a, x, rows, theta);
    ck_assert_int_eq(memcmp(first, again, sizeof(float) * (size_t)(rows * n)), 0);
    free(first), free(first_still), free(first_plain), free(first_b), free(again), free(theta);
    pnn_device_close(a), pnn_device_close(b), pnn_device_close(still), pnn_device_close(plain);
}
END_TEST

/* With mismatch and noise off, the device is the ideal model: bit-equal to its twin. */
START_TEST(ideal_device_equals_twin) {
    int64_t n = 20, rows = 7;
    float x[140], *theta = random_theta(n, 11);
    pnn_test_uniform(x, rows * n, -1, 1, 5, 2);
    pnn_device *dev;
    ck_assert_int_eq(pnn_device_open("sim:oscillator?n=20&mismatch=0&noise=0", be, &dev), PNN_OK);
    pnn_twin *tw;
    ck_assert_int_eq(pnn_twin_create("analytic", dev, -1, &tw), PNN_OK);
    float *yd = device_run(dev, x, rows, theta);
    pnn_tensor tx = matrix(rows, n, x), ty = matrix(rows, n, NULL), th = matrix(1, n * n + n, theta);
    ck_assert_int_eq(tw->iface->forward(tw, &tx, th.data, &ty, 0, NULL), PNN_OK);
    float yt[140];
    pnn_tensor_to_host(&ty, yt, rows * n);
    ck_assert_int_eq(memcmp(yd, yt, sizeof yt), 0);
    /* and the default device differs from the twin by more than its noise */
    pnn_device *real;
    ck_assert_int_eq(pnn_device_open("sim:oscillator?n=20&noise=0", be, &real), PNN_OK);
    float *yr = device_run(real, x, rows, theta);
    double diff = 0;
    for (int i = 0; i < rows * n; i++) diff = fmax(diff, fabs(yr[i] - yt[i]));
    ck_assert_msg(diff > 1e-2, "mismatched device too close to the twin: %g", diff);
    free(yd), free(yr), free(theta);
    pnn_tensor_free(&tx), pnn_tensor_free(&ty), pnn_tensor_free(&th);
    pnn_twin_free(tw);
    pnn_device_close(dev), pnn_device_close(real);
}
END_TEST

/* The input noise has the documented size: std of (noisy - clean) outputs at t ~ 0. */
START_TEST(input_noise_has_its_size) {
    int64_t n = 50, rows = 200;
    float *x = calloc((size_t)(rows * n), sizeof(float)), *theta = calloc((size_t)(n * n + n), sizeof(float));
    pnn_device *dev;
    /* one tiny step: q(T) ~ q(0), so y - x is the input noise */
    ck_assert_int_eq(pnn_device_open("sim:oscillator?n=50&mismatch=0&noise=0.05&nt=1&dt=1e-4", be, &dev), PNN_OK);
    float *y = device_run(dev, x, rows, theta);
    double s = 0, s2 = 0;
    for (int64_t i = 0; i < rows * n; i++) s += y[i], s2 += (double)y[i] * y[i];
    double mean = s / (rows * n), sd = sqrt(s2 / (rows * n) - mean * mean);
    ck_assert_msg(fabs(mean) < 0.005 && fabs(sd - 0.05) < 0.003, "noise mean %g sd %g", mean, sd);
    free(x), free(theta), free(y);
    pnn_device_close(dev);
}
END_TEST

/* The twin models the device's nominal input noise in taped (training) forwards only, with its
 * own draws; an explicit twin noise overrides the nominal one. */
START_TEST(twin_models_nominal_noise_in_training_only) {
    int64_t n = 30, rows = 100;
    float *x = calloc((size_t)(rows * n), sizeof(float)), *theta = calloc((size_t)(n * n + n), sizeof(float));
    pnn_device *dev;
    ck_assert_int_eq(pnn_device_open("sim:oscillator?n=30&mismatch=0&noise=0.05&nt=1&dt=1e-4", be, &dev), PNN_OK);
    double want[3] = {0.05, 0.01, 0.0};
    double noise_arg[3] = {-1, 0.01, 0};
    for (int k = 0; k < 3; k++) {
        pnn_twin *tw;
        ck_assert_int_eq(pnn_twin_create("analytic", dev, noise_arg[k], &tw), PNN_OK);
        pnn_tensor tx = matrix(rows, n, x), ty = matrix(rows, n, NULL), th = matrix(1, n * n + n, theta);
        float *y = malloc((size_t)(rows * n) * sizeof(float));
        ck_assert_int_eq(tw->iface->forward(tw, &tx, th.data, &ty, 0, NULL), PNN_OK);
        pnn_tensor_to_host(&ty, y, rows * n);
        double s2 = 0;
        for (int64_t i = 0; i < rows * n; i++) s2 += (double)y[i] * y[i];
        ck_assert_msg(fabs(sqrt(s2 / (rows * n)) - want[k]) < 0.1 * want[k] + 1e-6, "twin noise %g, want %g",
                      sqrt(s2 / (rows * n)), want[k]);
        ck_assert_int_eq(tw->iface->forward(tw, &tx, th.data, &ty, -1, NULL), PNN_OK);
        pnn_tensor_to_host(&ty, y, rows * n);
        for (int64_t i = 0; i < rows * n; i++) ck_assert(y[i] == 0.0f);  /* evaluation is noise-free */
        free(y);
        pnn_tensor_free(&tx), pnn_tensor_free(&ty), pnn_tensor_free(&th);
        pnn_twin_free(tw);
    }
    free(x), free(theta);
    pnn_device_close(dev);
}
END_TEST

/* The oracle replays the simulator's own noise: on an otherwise ideal device, the twin's taped
 * forward then equals the device's output bit for bit. */
START_TEST(oracle_twin_replays_device_noise) {
    int64_t n = 16, rows = 9;
    float x[144], *theta = random_theta(n, 21);
    pnn_test_uniform(x, rows * n, -1, 1, 8, 2);
    pnn_device *dev;
    ck_assert_int_eq(pnn_device_open("sim:oscillator?n=16&mismatch=0&noise=0.05", be, &dev), PNN_OK);
    pnn_twin *tw;
    ck_assert_int_eq(pnn_twin_create("analytic", dev, PNN_TWIN_NOISE_ORACLE, &tw), PNN_OK);
    float *yd = device_run(dev, x, rows, theta);
    pnn_tensor tx = matrix(rows, n, x), ty = matrix(rows, n, NULL), th = matrix(1, n * n + n, theta);
    pnn_tensor noise = matrix(rows, n, NULL);
    ck_assert_int_eq(dev->iface->input_noise(dev, 0, rows * n, noise.data), PNN_OK);
    ck_assert_int_eq(tw->iface->forward(tw, &tx, th.data, &ty, 0, noise.data), PNN_OK);
    pnn_tensor_free(&noise);
    float yt[144];
    pnn_tensor_to_host(&ty, yt, rows * n);
    ck_assert_int_eq(memcmp(yd, yt, sizeof yt), 0);
    free(yd), free(theta);
    pnn_tensor_free(&tx), pnn_tensor_free(&ty), pnn_tensor_free(&th);
    pnn_twin_free(tw);
    pnn_device_close(dev);
}
END_TEST

START_TEST(device_rejects_wrong_shapes_and_nan) {
    pnn_device *dev;
    ck_assert_int_eq(pnn_device_open("sim:oscillator?n=8&max_batch=4", be, &dev), PNN_OK);
    float theta[72] = {0};
    pnn_tensor x = matrix(5, 8, NULL), y = matrix(5, 8, NULL);
    ck_assert_int_eq(pnn_device_forward(dev, &x, theta, &y), PNN_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(pnn_last_error(), "max_batch"));
    pnn_tensor x2 = matrix(2, 7, NULL), y2 = matrix(2, 8, NULL);
    ck_assert_int_eq(pnn_device_forward(dev, &x2, theta, &y2), PNN_ERR_INVALID);
    /* a diverging system gives NaN/Inf: reported as a device fault, never passed on */
    pnn_tensor x3 = matrix(2, 8, NULL), y3 = matrix(2, 8, NULL);
    theta[64] = INFINITY;
    ck_assert_int_eq(pnn_device_forward(dev, &x3, theta, &y3), PNN_ERR_DEVICE);
    ck_assert_ptr_nonnull(strstr(pnn_device_last_error(dev), "NaN"));
    pnn_tensor_free(&x), pnn_tensor_free(&y), pnn_tensor_free(&x2), pnn_tensor_free(&y2);
    pnn_tensor_free(&x3), pnn_tensor_free(&y3);
    pnn_device_close(dev);
}
END_TEST

/* Controls are kept inside the device's theta_range at every pass (a shaper's mask in [0, 1]),
 * and left alone where the range is unbounded (the oscillator). */
START_TEST(controls_stay_in_the_device_range) {
    pnn_layer *l;
    ck_assert_int_eq(pnn_layer_physical(&l, be, "s", "sim:shg?k=8&x_dim=4&y_dim=4&noise=0", "analytic", -1, "all", 7),
                     PNN_OK);
    pnn_param *mask = &l->params[0];
    float bad[4] = {-0.5f, 0.25f, 1.75f, 1.0f}, got[4];
    pnn_tensor_from_host(&mask->value, bad, 4);
    l->iface->params_changed(l);
    pnn_tensor_to_host(&mask->value, got, 4);
    ck_assert(got[0] == 0.0f && got[1] == 0.25f && got[2] == 1.0f && got[3] == 1.0f);
    pnn_layer_free(l);
    ck_assert_int_eq(pnn_layer_physical(&l, be, "o", "sim:oscillator?n=3&noise=0", "analytic", -1, "all", 7), PNN_OK);
    float big[3] = {1e6f, -1e6f, 3.0f};
    pnn_tensor_from_host(&l->params[1].value, big, 3);
    l->iface->params_changed(l);
    pnn_tensor_to_host(&l->params[1].value, got, 3);
    ck_assert(got[0] == 1e6f && got[1] == -1e6f && got[2] == 3.0f);
    pnn_layer_free(l);
}
END_TEST

/* twin_noise: estimate recovers the input noise a device drew from its output alone: on a device
 * without hidden mismatch (so that the twin is the device's physics), the estimate is close to
 * the simulator's own draw (which it never sees), much closer than no estimate (zero); on a
 * noise-free device it stays near zero. */
static double estimate_error(const char *uri, double *noise_norm) {
    enum { ROWS = 32, N = 12 };
    pnn_layer *l;
    ck_assert_msg(pnn_layer_physical(&l, be, "e", uri, "analytic", PNN_TWIN_NOISE_ESTIMATE, "all", 7) == PNN_OK, "%s",
                  pnn_last_error());
    float xh[ROWS * N], est[ROWS * N], truth[ROWS * N];
    pnn_test_uniform(xh, ROWS * N, -1, 1, 9, 9);
    pnn_tensor x = matrix(ROWS, N, xh), y = matrix(ROWS, N, NULL);
    ck_assert_int_eq(l->iface->forward(l, &x, &y, PNN_PASS_TRAIN_PAT, 0), PNN_OK);
    const pnn_tensor *n = pnn_layer_physical_noise_estimate(l);
    ck_assert_ptr_nonnull(n);
    pnn_tensor_to_host(n, est, ROWS * N);
    pnn_device *dev = pnn_layer_physical_device(l);
    float *tdev = be->iface->alloc(be->ctx, sizeof truth);
    ck_assert_int_eq(dev->iface->input_noise(dev, 0, ROWS * N, tdev), PNN_OK);
    be->iface->to_host(be->ctx, truth, tdev, sizeof truth);
    be->iface->release(be->ctx, tdev);
    double err = 0, nn = 0;
    for (int i = 0; i < ROWS * N; i++) {
        err += (double)(est[i] - truth[i]) * (est[i] - truth[i]);
        nn += (double)truth[i] * truth[i];
    }
    pnn_tensor_free(&x), pnn_tensor_free(&y);
    pnn_layer_free(l);
    *noise_norm = sqrt(nn);
    return sqrt(err);
}

START_TEST(noise_estimate_recovers_the_draw) {
    double nn, err = estimate_error("sim:oscillator?n=12&nt=5&mismatch=0&noise=0.05&seed=3", &nn);
    printf("measured noise estimate: |n_est - n| / |n| = %.3f\n", err / nn);
    ck_assert_msg(err < 0.5 * nn, "estimate error %g against a noise of norm %g", err, nn);
    err = estimate_error("sim:oscillator?n=12&nt=5&mismatch=0&noise=0&seed=3", &nn);
    ck_assert_msg(nn == 0 && err < 1e-3, "estimate %g on a noise-free device", err);
    /* the plain twin keeps no estimate */
    pnn_layer *l;
    ck_assert_int_eq(pnn_layer_physical(&l, be, "p", "sim:oscillator?n=3", "analytic", -1, "all", 7), PNN_OK);
    ck_assert_ptr_null(pnn_layer_physical_noise_estimate(l));
    pnn_layer_free(l);
}
END_TEST

/* PAT: the physical layer's output is the device's, its gradient the twin's VJP at the same
 * inputs; in-silico: both from the twin. */
/* Every system counts its FLOPs for the benchmark suite; the counts follow the form the kernels
 * pick (scatter's transfer matrix makes a large batch cheaper per row) and refuse bad keys. */
START_TEST(systems_count_their_flops) {
    for (int i = 0; i < pnn_system_count(); i++) {
        const pnn_system *sys = pnn_system_at(i);
        ck_assert_msg(sys->flops != NULL, "system %s counts no FLOPs", sys->name);
        char uri[64];
        snprintf(uri, sizeof uri, "sim:%s", sys->name);
        pnn_uri u;
        double one[3], many[3];
        ck_assert_int_eq(pnn_uri_parse(uri, &u), PNN_OK);
        ck_assert_int_eq(sys->flops(&u, 1, one), PNN_OK);
        ck_assert_int_eq(sys->flops(&u, 1024, many), PNN_OK);
        for (int k = 0; k < 3; k++) {
            ck_assert_msg(one[k] > 0 && many[k] > one[k], "%s count %d: %g for 1 row, %g for 1024", sys->name, k,
                          one[k], many[k]);
            ck_assert_msg(many[k] <= 1024 * one[k] * (1 + 1e-12), "%s count %d grows faster than the rows",
                          sys->name, k);
        }
    }
    pnn_uri u;
    double c[3];
    ck_assert_int_eq(pnn_uri_parse("sim:oscillator?n=50&nt=3", &u), PNN_OK);
    ck_assert_int_eq(pnn_system_find("oscillator")->flops(&u, 4, c), PNN_OK);
    ck_assert_double_eq(c[0], 2.0 * 4 * 50 * 50 * 4 * 3); /* 2 B N^2 per stage, 4 nt stages */
    ck_assert_double_eq(c[1], 2 * c[0]);
    ck_assert_double_eq(c[2], c[0]);
    ck_assert_int_eq(pnn_uri_parse("sim:scatter", &u), PNN_OK);
    double few[3], lots[3];
    pnn_system_find("scatter")->flops(&u, 2, few);
    pnn_system_find("scatter")->flops(&u, 4096, lots);
    ck_assert_msg(lots[0] / 4096 < few[0] / 2, "scatter's transfer form is not counted at a large batch");
    ck_assert_int_eq(pnn_uri_parse("sim:circuit?segments=1", &u), PNN_OK);
    ck_assert_int_eq(pnn_system_find("circuit")->flops(&u, 1, c), PNN_ERR_INVALID);
}
END_TEST

START_TEST(physical_layer_pat_semantics) {
    int64_t rows = 6, in = 5;
    pnn_layer *l;
    ck_assert_int_eq(pnn_layer_physical(&l, be, "p", "sim:oscillator?n=9&seed=2&noise=0", "analytic", -1, "last:3", 7), PNN_OK);
    ck_assert_int_eq(l->n_params, 2);
    ck_assert_str_eq(l->params[0].name, "p.C");
    ck_assert_str_eq(l->params[1].name, "p.e");
    int64_t orows, ocols;
    ck_assert_int_eq(l->iface->out_shape(l, rows, in, &orows, &ocols), PNN_OK);
    ck_assert_int_eq(ocols, 3);
    ck_assert_int_eq(l->iface->out_shape(l, rows, 10, &orows, &ocols), PNN_ERR_INVALID);
    float xh[30];
    pnn_test_uniform(xh, rows * in, -1, 1, 4, 4);
    pnn_tensor x = matrix(rows, in, xh), y_pat = matrix(rows, 3, NULL), y_twin = matrix(rows, 3, NULL);
    pnn_tensor dy = matrix(rows, 3, NULL), dx_pat = matrix(rows, in, NULL), dx_twin = matrix(rows, in, NULL);
    float dyh[18];
    pnn_test_uniform(dyh, 18, -1, 1, 4, 5);
    pnn_tensor_from_host(&dy, dyh, 18);

    pnn_device *dev = pnn_layer_physical_device(l);
    ck_assert_ptr_nonnull(dev);
    ck_assert_int_eq(l->iface->forward(l, &x, &y_pat, PNN_PASS_TRAIN_PAT, 0), PNN_OK);
    ck_assert_int_eq(l->iface->backward(l, &x, &y_pat, &dy, &dx_pat, 0), PNN_OK);
    float g_pat[90];
    pnn_tensor_to_host(&l->params[0].grad, g_pat, 81);

    /* the same device call again (rewind its counter) reproduces the PAT output */
    dev->calls = 0;
    pnn_tensor y_eval = matrix(rows, 3, NULL);
    ck_assert_int_eq(l->iface->forward(l, &x, &y_eval, PNN_PASS_EVAL_DEVICE, 0), PNN_OK);
    float a[18], b[18];
    pnn_tensor_to_host(&y_pat, a, 18);
    pnn_tensor_to_host(&y_eval, b, 18);
    ck_assert_int_eq(memcmp(a, b, sizeof a), 0);

    pnn_tensor_zero(&l->params[0].grad);
    pnn_tensor_zero(&l->params[1].grad);
    ck_assert_int_eq(l->iface->forward(l, &x, &y_twin, PNN_PASS_TRAIN_TWIN, 0), PNN_OK);
    ck_assert_int_eq(l->iface->backward(l, &x, &y_twin, &dy, &dx_twin, 0), PNN_OK);
    float g_twin[90], dxa[30], dxb[30];
    pnn_tensor_to_host(&l->params[0].grad, g_twin, 81);
    /* same twin point (x, theta): identical gradients, whatever the device measured */
    ck_assert_int_eq(memcmp(g_pat, g_twin, 81 * sizeof(float)), 0);
    pnn_tensor_to_host(&dx_pat, dxa, 30);
    pnn_tensor_to_host(&dx_twin, dxb, 30);
    ck_assert_int_eq(memcmp(dxa, dxb, sizeof dxa), 0);
    /* but the outputs differ: PAT passes on the device's measurement */
    pnn_tensor_to_host(&y_twin, b, 18);
    ck_assert_int_ne(memcmp(a, b, sizeof a), 0);
    pnn_tensor *ts[] = {&x, &y_pat, &y_twin, &dy, &dx_pat, &dx_twin, &y_eval};
    for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++) pnn_tensor_free(ts[i]);
    pnn_layer_free(l);
}
END_TEST

Suite *device_suite(void) {
    Suite *s = suite_create("device");
    TCase *tc = tcase_create("oscillator");
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_add_test(tc, uri_errors_name_the_problem);
    tcase_add_test(tc, device_is_deterministic_per_seed_and_call);
    tcase_add_test(tc, drift_is_reproducible_from_its_seed);
    tcase_add_test(tc, ideal_device_equals_twin);
    tcase_add_test(tc, input_noise_has_its_size);
    tcase_add_test(tc, twin_models_nominal_noise_in_training_only);
    tcase_add_test(tc, oracle_twin_replays_device_noise);
    tcase_add_test(tc, device_rejects_wrong_shapes_and_nan);
    tcase_add_test(tc, physical_layer_pat_semantics);
    tcase_add_test(tc, systems_count_their_flops);
    tcase_add_test(tc, controls_stay_in_the_device_range);
    tcase_add_test(tc, noise_estimate_recovers_the_draw);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    return pnn_test_run(device_suite());
}
