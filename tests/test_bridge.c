/* The host bridge: the asynchronous device queue (order, max_batch splitting, waits with
 * timeouts, retries of faults and drops that leave the results unchanged, a device that stays
 * down), the pipelined micro-batch schedule giving the sequential one's gradients bit for bit,
 * and recording and replaying device calls (including a torn recording). */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pnn/pnn.h"
#include "pnn/clock.h"
#include "tests/testutil.h"

static const pnn_backend *be;

static pnn_tensor matrix(int64_t rows, int64_t cols, const float *host) {
    pnn_tensor t = {0};
    ck_assert_int_eq(pnn_tensor_init2(&t, be, rows, cols), PNN_OK);
    if (host) pnn_tensor_from_host(&t, host, rows * cols);
    return t;
}

static float *random_floats(int64_t n, float bound, uint64_t seed) {
    float *x = malloc((size_t)n * sizeof(float));
    pnn_test_uniform(x, n, -bound, bound, seed, 7);
    return x;
}

static pnn_device *open_dev(const char *uri) {
    pnn_device *dev;
    ck_assert_msg(pnn_device_open(uri, be, &dev) == PNN_OK, "%s: %s", uri, pnn_last_error());
    return dev;
}

/* y of n_req requests of `rows` rows each, run synchronously one after another */
static float *run_sync(const char *uri, const float *x, int64_t n_req, int64_t rows, int64_t n, const float *theta) {
    pnn_device *dev = open_dev(uri);
    float *y = malloc((size_t)(n_req * rows * n) * sizeof(float));
    pnn_tensor th = matrix(1, n * n + n, theta);
    for (int64_t k = 0; k < n_req; k++) {
        pnn_tensor tx = matrix(rows, n, x + k * rows * n), ty = matrix(rows, n, NULL);
        ck_assert_msg(pnn_device_forward(dev, &tx, th.data, &ty) == PNN_OK, "%s", pnn_last_error());
        pnn_tensor_to_host(&ty, y + k * rows * n, rows * n);
        pnn_tensor_free(&tx), pnn_tensor_free(&ty);
    }
    pnn_tensor_free(&th);
    pnn_device_close(dev);
    return y;
}

/* The same requests submitted all at once to the queue, waited for in reverse order. */
static float *run_async(pnn_device *dev, const float *x, int64_t n_req, int64_t rows, int64_t n, const float *theta) {
    float *y = malloc((size_t)(n_req * rows * n) * sizeof(float));
    pnn_tensor th = matrix(1, n * n + n, theta);
    pnn_tensor *tx = calloc((size_t)n_req, sizeof *tx), *ty = calloc((size_t)n_req, sizeof *ty);
    pnn_ticket *tickets = calloc((size_t)n_req, sizeof *tickets);
    for (int64_t k = 0; k < n_req; k++) {
        tx[k] = matrix(rows, n, x + k * rows * n);
        ty[k] = matrix(rows, n, NULL);
        pnn_request req = {&tx[k], th.data, &ty[k]};
        ck_assert_int_eq(pnn_device_submit(dev, &req, &tickets[k]), PNN_OK);
    }
    for (int64_t k = n_req - 1; k >= 0; k--) {
        ck_assert_msg(pnn_device_wait(dev, tickets[k], -1, NULL) == PNN_OK, "%s", pnn_last_error());
        pnn_tensor_to_host(&ty[k], y + k * rows * n, rows * n);
        pnn_tensor_free(&tx[k]), pnn_tensor_free(&ty[k]);
    }
    free(tx), free(ty), free(tickets);
    pnn_tensor_free(&th);
    return y;
}

/* Simulators on the CPU run their calls eagerly in the submitting thread (async=0, the default
 * there) or in a worker thread (async=1); every queue test runs both ways. */
static const char *const modes[2] = {"&async=0", "&async=1&threads=1"};

START_TEST(queue_runs_requests_in_submission_order) {
    int64_t n = 10, rows = 6, n_req = 7;
    float *x = random_floats(n_req * rows * n, 1, 1), *theta = random_floats(n * n + n, 0.3f, 2);
    const char *uri = "sim:oscillator?n=10&seed=3&jitter_ms=2";
    char async_uri[256];
    snprintf(async_uri, sizeof async_uri, "%s%s", uri, modes[_i]);
    float *want = run_sync(uri, x, n_req, rows, n, theta);
    pnn_device *dev = open_dev(async_uri);
    float *got = run_async(dev, x, n_req, rows, n, theta);
    ck_assert_int_eq(memcmp(want, got, (size_t)(n_req * rows * n) * sizeof(float)), 0);
    ck_assert_int_eq(dev->calls, n_req);
    /* a ticket is waited for once */
    ck_assert_int_eq(pnn_device_wait(dev, 0, 0, NULL), PNN_ERR_INVALID);
    free(x), free(theta), free(want), free(got);
    pnn_device_close(dev);
}
END_TEST

START_TEST(queue_splits_requests_over_max_batch) {
    int64_t n = 8, rows = 10;
    float *x = random_floats(rows * n, 1, 3), *theta = random_floats(n * n + n, 0.3f, 4);
    /* 10 rows through max_batch 4: calls of 4, 4 and 2 rows, as three synchronous calls */
    float *want = malloc((size_t)(rows * n) * sizeof(float));
    int64_t parts[3] = {4, 4, 2};
    pnn_device *ref = open_dev("sim:oscillator?n=8&seed=5");
    pnn_tensor th = matrix(1, n * n + n, theta);
    for (int k = 0, r0 = 0; k < 3; r0 += (int)parts[k], k++) {
        pnn_tensor tx = matrix(parts[k], n, x + r0 * n), ty = matrix(parts[k], n, NULL);
        ck_assert_int_eq(pnn_device_forward(ref, &tx, th.data, &ty), PNN_OK);
        pnn_tensor_to_host(&ty, want + r0 * n, parts[k] * n);
        pnn_tensor_free(&tx), pnn_tensor_free(&ty);
    }
    char uri[128];
    snprintf(uri, sizeof uri, "sim:oscillator?n=8&seed=5&max_batch=4%s", modes[_i]);
    pnn_device *dev = open_dev(uri);
    float *got = run_async(dev, x, 1, rows, n, theta);
    ck_assert_int_eq(memcmp(want, got, (size_t)(rows * n) * sizeof(float)), 0);
    ck_assert_int_eq(dev->calls, 3);
    /* the synchronous call refuses what the device cannot take */
    pnn_tensor tx = matrix(rows, n, x), ty = matrix(rows, n, NULL);
    ck_assert_int_eq(pnn_device_forward(dev, &tx, th.data, &ty), PNN_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(pnn_last_error(), "max_batch"));
    free(x), free(theta), free(want), free(got);
    pnn_tensor_free(&th), pnn_tensor_free(&tx), pnn_tensor_free(&ty);
    pnn_device_close(ref), pnn_device_close(dev);
}
END_TEST

START_TEST(wait_times_out_and_can_wait_again) {
    int64_t n = 6, rows = 2;
    float *x = random_floats(rows * n, 1, 5), *theta = random_floats(n * n + n, 0.3f, 6);
    char uri[128];
    snprintf(uri, sizeof uri, "sim:oscillator?n=6&latency_ms=150%s", modes[_i]);
    pnn_device *dev = open_dev(uri);
    pnn_tensor th = matrix(1, n * n + n, theta), tx = matrix(rows, n, x), ty = matrix(rows, n, NULL);
    pnn_request req = {&tx, th.data, &ty};
    pnn_ticket t;
    ck_assert_int_eq(pnn_device_submit(dev, &req, &t), PNN_OK);
    ck_assert_int_eq(pnn_device_ready(dev, t), 0);
    ck_assert_int_eq(pnn_device_wait(dev, t, 10, NULL), PNN_ERR_TIMEOUT);
    uint64_t first_call = 99;
    ck_assert_int_eq(pnn_device_wait(dev, t, 5000, &first_call), PNN_OK);
    ck_assert_int_eq(first_call, 0);
    ck_assert_msg(dev->busy_s >= 0.14, "a 150 ms device was busy %g s", dev->busy_s);
    ck_assert_msg(pnn_device_wait_s(dev) >= 0.1, "waited %g s", pnn_device_wait_s(dev));
    free(x), free(theta);
    pnn_tensor_free(&th), pnn_tensor_free(&tx), pnn_tensor_free(&ty);
    pnn_device_close(dev);
}
END_TEST

/* Faults and lost replies are retried; the answers are the clean device's, bit for bit, since
 * a failed attempt draws no noise. */
START_TEST(retries_hide_faults_and_drops) {
    int64_t n = 10, rows = 4, n_req = 30;
    float *x = random_floats(n_req * rows * n, 1, 7), *theta = random_floats(n * n + n, 0.3f, 8);
    float *want = run_sync("sim:oscillator?n=10&seed=9", x, n_req, rows, n, theta);
    char uri[128];
    snprintf(uri, sizeof uri, "sim:oscillator?n=10&seed=9&fault_rate=0.2&drop_rate=0.1&timeout_ms=3%s", modes[_i]);
    pnn_device *dev = open_dev(uri);
    pnn_retry_policy retry = {20, 0.1};
    ck_assert_int_eq(pnn_device_set_retry(dev, &retry), PNN_OK);
    float *got = run_async(dev, x, n_req, rows, n, theta);
    ck_assert_int_eq(memcmp(want, got, (size_t)(n_req * rows * n) * sizeof(float)), 0);
    ck_assert_int_eq(dev->calls, n_req);
    ck_assert_msg(dev->faults >= 3 && dev->retries == dev->faults && dev->attempts == dev->calls + dev->faults,
                  "calls %llu attempts %llu faults %llu retries %llu", (unsigned long long)dev->calls,
                  (unsigned long long)dev->attempts, (unsigned long long)dev->faults, (unsigned long long)dev->retries);
    free(x), free(theta), free(want), free(got);
    pnn_device_close(dev);
}
END_TEST

START_TEST(a_device_that_stays_down_fails_the_request) {
    int64_t n = 5, rows = 3;
    float *x = random_floats(rows * n, 1, 9), *theta = random_floats(n * n + n, 0.3f, 10);
    char uri[128];
    snprintf(uri, sizeof uri, "sim:oscillator?n=5&fault_rate=1%s", modes[_i]);
    pnn_device *dev = open_dev(uri);
    pnn_retry_policy retry = {2, 0.5};
    ck_assert_int_eq(pnn_device_set_retry(dev, &retry), PNN_OK);
    pnn_tensor th = matrix(1, n * n + n, theta), tx = matrix(rows, n, x), ty = matrix(rows, n, NULL);
    pnn_request req = {&tx, th.data, &ty};
    pnn_ticket t;
    ck_assert_int_eq(pnn_device_submit(dev, &req, &t), PNN_OK);
    ck_assert_int_eq(pnn_device_wait(dev, t, -1, NULL), PNN_ERR_DEVICE);
    ck_assert_msg(strstr(pnn_last_error(), "is down") && strstr(pnn_last_error(), "3 attempts"), "%s",
                  pnn_last_error());
    ck_assert_int_eq(dev->attempts, 3);
    ck_assert_int_eq(dev->calls, 0);
    ck_assert_ptr_nonnull(strstr(pnn_device_last_error(dev), "device_fault"));
    pnn_retry_policy bad = {-1, 0};
    ck_assert_int_eq(pnn_device_set_retry(dev, &bad), PNN_ERR_INVALID);
    free(x), free(theta);
    pnn_tensor_free(&th), pnn_tensor_free(&tx), pnn_tensor_free(&ty);
    pnn_device_close(dev);
}
END_TEST

/* Many retries never overflow the doubling backoff (70 retries from 10 ms once turned into an
 * endless busy loop), and a stop request cuts a backoff short. */
START_TEST(backoff_is_capped_and_interruptible) {
    ck_assert_double_eq(pnn_retry_backoff_ms(10, 0), 10);
    ck_assert_double_eq(pnn_retry_backoff_ms(10, 3), 80);
    ck_assert_double_eq(pnn_retry_backoff_ms(10, 70), PNN_BACKOFF_CAP_MS);
    ck_assert_double_eq(pnn_retry_backoff_ms(10, 1000000), PNN_BACKOFF_CAP_MS);
    ck_assert_double_eq(pnn_retry_backoff_ms(60000, 5), 60000);
    ck_assert_double_eq(pnn_retry_backoff_ms(0, 70), 0);
    int64_t n = 5, rows = 2;
    float *x = random_floats(rows * n, 1, 9), *theta = random_floats(n * n + n, 0.3f, 10);
    char uri[128];
    snprintf(uri, sizeof uri, "sim:oscillator?n=5&fault_rate=1%s", modes[_i]);
    pnn_device *dev = open_dev(uri);
    pnn_retry_policy retry = {70, 1000};
    ck_assert_int_eq(pnn_device_set_retry(dev, &retry), PNN_OK);
    pnn_tensor th = matrix(1, n * n + n, theta), tx = matrix(rows, n, x), ty = matrix(rows, n, NULL);
    pnn_request req = {&tx, th.data, &ty};
    pnn_ticket t;
    pnn_interrupt_request();
    double t0 = pnn_now_s();
    ck_assert_int_eq(pnn_device_submit(dev, &req, &t), PNN_OK);
    ck_assert_int_eq(pnn_device_wait(dev, t, -1, NULL), PNN_ERR_INTERRUPTED);
    ck_assert_double_lt(pnn_now_s() - t0, 1.0);
    pnn_interrupt_clear();
    free(x), free(theta);
    pnn_tensor_free(&th), pnn_tensor_free(&tx), pnn_tensor_free(&ty);
    pnn_device_close(dev);
}
END_TEST

/* A hybrid network with two physical layers (noisy, mismatched, jittery devices) and digital
 * layers between them. */
static const char *hybrid_yaml =
    "network:\n"
    "  - {kind: linear, name: enc, out: 9}\n"
    "  - {kind: physical, name: p1, device: 'sim:oscillator?n=12&seed=3&jitter_ms=1%s', outputs: 'first:8'}\n"
    "  - {kind: tanh}\n"
    "  - {kind: physical, name: p2, device: 'sim:oscillator?n=8&seed=4&jitter_ms=1&max_batch=3%s', %s}\n"
    "  - {kind: scale, name: out, init: 2}\n";

static int net_mode; /* index into modes of the devices of build_net */

static pnn_network *build_net(const char *twin_noise_key) {
    char yaml[1024];
    snprintf(yaml, sizeof yaml, hybrid_yaml, modes[net_mode], modes[net_mode], twin_noise_key);
    pnn_cfg *cfg;
    ck_assert_int_eq(pnn_cfg_parse(yaml, strlen(yaml), "bridge.yaml", &cfg), PNN_OK);
    pnn_network *net;
    ck_assert_msg(pnn_network_build(pnn_cfg_get(cfg, "network"), be, 5, 11, &net) == PNN_OK, "%s", pnn_last_error());
    pnn_cfg_free(cfg);
    return net;
}

/* MSE against a fixed target, for the micro-batch loss */
typedef struct loss_ctx {
    int64_t batch, micro;
    pnn_tensor target, scratch;
} loss_ctx;

static pnn_status mse_loss(void *user, int slot, const pnn_tensor *y, pnn_tensor *dy) {
    loss_ctx *c = user;
    int64_t rows = pnn_tensor_rows(y), cols = pnn_tensor_cols(y), shape[2] = {rows, cols};
    pnn_tensor t;
    double loss, correct;
    PNN_TRY(pnn_tensor_view(&t, be, c->target.data + slot * c->micro * cols, 2, shape));
    return pnn_loss_compute_part(PNN_LOSS_MSE, y, &t, c->batch, dy, &c->scratch, &loss, &correct);
}

/* Gradients of every parameter after one pass of `steps` batches (host copies, concatenated). */
static float *train_grads(int pipelined, int64_t micro, const char *twin_noise_key, int64_t *total) {
    pnn_network *net = build_net(twin_noise_key);
    int64_t b = 13, n_micro = (b + micro - 1) / micro;
    float *x = random_floats(b * 5, 1, 12), *target = random_floats(b * 8, 0.5f, 13);
    pnn_tensor xt = matrix(b, 5, x);
    loss_ctx c = {b, micro, matrix(b, 8, target), {0}};
    pnn_tensor xs[PNN_LAYER_MAX_SLOTS];
    for (int64_t k = 0; k < n_micro; k++) {
        int64_t rows = b - k * micro < micro ? b - k * micro : micro, shape[2] = {rows, 5};
        pnn_tensor_view(&xs[k], be, xt.data + k * micro * 5, 2, shape);
    }
    *total = pnn_network_param_count(net);
    float *g = malloc((size_t)(*total * 2) * sizeof(float));
    int64_t off = 0;
    for (int step = 0; step < 2; step++) { /* twice: the second pass sees advanced device counters */
        pnn_network_zero_grad(net);
        pnn_schedule_stats stats;
        ck_assert_msg(pnn_network_train_micro(net, (int)n_micro, xs, PNN_PASS_TRAIN_PAT, pipelined, mse_loss, &c,
                                              &stats) == PNN_OK,
                      "%s", pnn_last_error());
        ck_assert(stats.wall_s > 0 && stats.wait_s >= 0 && stats.wait_s <= stats.wall_s);
        for (int i = 0; i < net->n_params; i++) {
            pnn_tensor_to_host(&net->params[i]->grad, g + off, net->params[i]->grad.numel);
            off += net->params[i]->grad.numel;
        }
    }
    *total = off;
    free(x), free(target);
    pnn_tensor_free(&xt), pnn_tensor_free(&c.target), pnn_tensor_free(&c.scratch);
    pnn_network_free(net);
    return g;
}

static void pipelined_matches_sequential(const char *twin_noise_key) {
    int64_t n1, n2, n3;
    float *seq = train_grads(0, 4, twin_noise_key, &n1), *pipe = train_grads(1, 4, twin_noise_key, &n2);
    ck_assert_int_eq(n1, n2);
    ck_assert_msg(memcmp(seq, pipe, (size_t)n1 * sizeof(float)) == 0, "pipelined gradients differ");
    /* and they are gradients: close to the one-micro-batch ones, not equal bit for bit */
    float *whole = train_grads(1, 13, twin_noise_key, &n3);
    double num = 0, den = 0;
    for (int64_t i = 0; i < n1; i++) num += fabs(seq[i] - whole[i]), den += fabs(whole[i]);
    ck_assert_msg(den > 0 && num / den > 0, "micro-batches differ from one batch only by rounding: %g", num / den);
    free(seq), free(pipe), free(whole);
}

START_TEST(pipelined_schedule_equals_sequential_bit_for_bit) {
    net_mode = _i;
    pipelined_matches_sequential("outputs: all");
}
END_TEST

START_TEST(pipelined_schedule_equals_sequential_with_oracle_twin) {
    net_mode = _i;
    pipelined_matches_sequential("twin_noise: oracle");
}
END_TEST

START_TEST(one_micro_batch_is_the_plain_step) {
    net_mode = _i;
    pnn_network *net = build_net("outputs: all");
    int64_t b = 13, total = pnn_network_param_count(net);
    float *x = random_floats(b * 5, 1, 12), *target = random_floats(b * 8, 0.5f, 13);
    pnn_tensor xt = matrix(b, 5, x), dy = matrix(b, 8, NULL), scratch = {0};
    loss_ctx c = {b, b, matrix(b, 8, target), {0}};
    const pnn_tensor *y;
    ck_assert_int_eq(pnn_network_forward(net, &xt, PNN_PASS_TRAIN_PAT, &y), PNN_OK);
    double loss, correct;
    ck_assert_int_eq(pnn_loss_compute(PNN_LOSS_MSE, y, &c.target, &dy, &scratch, &loss, &correct), PNN_OK);
    ck_assert_int_eq(pnn_network_backward(net, &dy), PNN_OK);
    float *want = malloc((size_t)total * sizeof(float));
    for (int i = 0, off = 0; i < net->n_params; off += (int)net->params[i]->grad.numel, i++)
        pnn_tensor_to_host(&net->params[i]->grad, want + off, net->params[i]->grad.numel);
    pnn_network_free(net);
    int64_t n;
    float *got = train_grads(1, 13, "outputs: all", &n);
    ck_assert_int_eq(memcmp(want, got, (size_t)total * sizeof(float)), 0);
    free(x), free(target), free(want), free(got);
    pnn_tensor_free(&xt), pnn_tensor_free(&dy), pnn_tensor_free(&scratch), pnn_tensor_free(&c.target);
}
END_TEST

/* A failing device mid-pass: the pass fails with its message and nothing stays in flight. */
START_TEST(failed_pass_drains_requests) {
    pnn_cfg *cfg;
    const char *yaml = "network:\n  - {kind: physical, name: p, device: 'sim:oscillator?n=6&fault_rate=0.5&seed=2'}\n";
    ck_assert_int_eq(pnn_cfg_parse(yaml, strlen(yaml), "t.yaml", &cfg), PNN_OK);
    pnn_network *net;
    ck_assert_int_eq(pnn_network_build(pnn_cfg_get(cfg, "network"), be, 6, 1, &net), PNN_OK);
    pnn_device *dev = pnn_layer_physical_device(net->layers[0]);
    pnn_retry_policy none = {0, 0};
    pnn_device_set_retry(dev, &none);
    float *x = random_floats(16 * 6, 1, 3), *target = random_floats(16 * 6, 1, 4);
    pnn_tensor xt = matrix(16, 6, x), xs[4];
    for (int k = 0; k < 4; k++) {
        int64_t shape[2] = {4, 6};
        pnn_tensor_view(&xs[k], be, xt.data + k * 24, 2, shape);
    }
    loss_ctx c = {16, 4, matrix(16, 6, target), {0}};
    pnn_status st = PNN_OK;
    for (int attempt = 0; attempt < 20 && st == PNN_OK; attempt++)
        st = pnn_network_train_micro(net, 4, xs, PNN_PASS_TRAIN_PAT, 1, mse_loss, &c, NULL);
    ck_assert_int_eq(st, PNN_ERR_DEVICE);
    ck_assert_msg(strstr(pnn_last_error(), "layer 'p'") && strstr(pnn_last_error(), "is down"), "%s", pnn_last_error());
    /* the queue is empty again: a new pass can start on any slot */
    st = PNN_ERR_DEVICE;
    for (int attempt = 0; attempt < 50 && st != PNN_OK; attempt++)
        st = pnn_network_train_micro(net, 1, xs, PNN_PASS_TRAIN_PAT, 1, mse_loss, &c, NULL);
    ck_assert_int_eq(st, PNN_OK);
    free(x), free(target);
    pnn_tensor_free(&xt), pnn_tensor_free(&c.target), pnn_tensor_free(&c.scratch);
    pnn_network_free(net);
    pnn_cfg_free(cfg);
}
END_TEST

static void tmp_path(char *buf, size_t cap, const char *name) {
    snprintf(buf, cap, "%s/pnn-bridge-%ld-%s", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp", (long)getpid(), name);
}

/* Runs n_req calls (theta changing every other call) through uri; returns the outputs. */
static float *drive(const char *uri, int64_t n_req, int64_t rows, int64_t n, pnn_status *fail_st) {
    pnn_device *dev;
    pnn_status st = pnn_device_open(uri, be, &dev);
    ck_assert_msg(st == PNN_OK, "%s: %s", uri, pnn_last_error());
    float *y = calloc((size_t)(n_req * rows * n), sizeof(float));
    *fail_st = PNN_OK;
    for (int64_t k = 0; k < n_req && *fail_st == PNN_OK; k++) {
        float *x = random_floats(rows * n, 1, 100 + (uint64_t)k), *theta = random_floats(n * n + n, 0.3f, 200 + (uint64_t)k / 2);
        pnn_tensor tx = matrix(rows, n, x), ty = matrix(rows, n, NULL), th = matrix(1, n * n + n, theta);
        *fail_st = pnn_device_forward(dev, &tx, th.data, &ty);
        if (*fail_st == PNN_OK) pnn_tensor_to_host(&ty, y + k * rows * n, rows * n);
        pnn_tensor_free(&tx), pnn_tensor_free(&ty), pnn_tensor_free(&th);
        free(x), free(theta);
    }
    pnn_device_close(dev);
    return y;
}

START_TEST(record_then_replay_gives_the_same_outputs) {
    char file[512], uri[700], idx[600];
    tmp_path(file, sizeof file, "rec.pnnrec");
    snprintf(idx, sizeof idx, "%s.idx", file);
    unlink(file), unlink(idx);
    int64_t n = 7, rows = 3, n_req = 6;
    pnn_status st;
    float *clean = drive("sim:oscillator?n=7&seed=5", n_req, rows, n, &st);
    snprintf(uri, sizeof uri, "record:%s@sim:oscillator?n=7&seed=5", file);
    float *recorded = drive(uri, n_req, rows, n, &st);
    ck_assert_int_eq(st, PNN_OK);
    ck_assert_int_eq(memcmp(clean, recorded, (size_t)(n_req * rows * n) * sizeof(float)), 0);
    snprintf(uri, sizeof uri, "replay:%s", file);
    float *replayed = drive(uri, n_req, rows, n, &st);
    ck_assert_int_eq(st, PNN_OK);
    ck_assert_int_eq(memcmp(clean, replayed, (size_t)(n_req * rows * n) * sizeof(float)), 0);
    /* the replay knows the system: a twin can be made for it */
    pnn_device *dev = open_dev(uri);
    ck_assert_str_eq(dev->info.system, "oscillator");
    ck_assert_int_eq(dev->info.theta_dim, 56);
    ck_assert_str_eq(dev->info.system_uri, "sim:oscillator?n=7&seed=5");
    pnn_twin *tw;
    ck_assert_int_eq(pnn_twin_create("analytic", dev, -1, &tw), PNN_OK);
    pnn_twin_free(tw);
    pnn_device_close(dev);
    /* one call too many */
    float *more = drive(uri, n_req + 1, rows, n, &st);
    ck_assert_int_eq(st, PNN_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(pnn_last_error(), "holds 6 calls"));
    /* other questions than recorded */
    char uri2[700];
    snprintf(uri2, sizeof uri2, "replay:%s", file);
    pnn_device *d2 = open_dev(uri2);
    float *x = random_floats(rows * n, 1, 999), *theta = random_floats(n * n + n, 0.3f, 200);
    pnn_tensor tx = matrix(rows, n, x), ty = matrix(rows, n, NULL), th = matrix(1, n * n + n, theta);
    ck_assert_int_eq(pnn_device_forward(d2, &tx, th.data, &ty), PNN_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(pnn_last_error(), "another x"));
    pnn_device_close(d2);
    snprintf(uri2, sizeof uri2, "replay:%s?check=0", file);
    d2 = open_dev(uri2);
    ck_assert_int_eq(pnn_device_forward(d2, &tx, th.data, &ty), PNN_OK);
    pnn_device_close(d2);
    free(x), free(theta), free(more);
    pnn_tensor_free(&tx), pnn_tensor_free(&ty), pnn_tensor_free(&th);
    free(clean), free(recorded), free(replayed);
    unlink(file), unlink(idx);
}
END_TEST

/* A crash mid-write leaves a torn last record: reopening cuts it and rebuilds the index, and a
 * lost index is rebuilt by scanning. */
START_TEST(torn_recording_is_repaired) {
    char file[512], uri[700], idx[600];
    tmp_path(file, sizeof file, "torn.pnnrec");
    snprintf(idx, sizeof idx, "%s.idx", file);
    unlink(file), unlink(idx);
    int64_t n = 5, rows = 2;
    pnn_status st;
    snprintf(uri, sizeof uri, "record:%s@sim:oscillator?n=5", file);
    float *y4 = drive(uri, 4, rows, n, &st);
    FILE *f = fopen(file, "rb");
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fclose(f);
    ck_assert_int_eq(truncate(file, size - 10), 0); /* the 4th call record is torn */
    pnn_device *dev = open_dev(uri);                /* reopening for recording repairs it */
    pnn_device_close(dev);
    unlink(idx);                                    /* and the index is lost too */
    snprintf(uri, sizeof uri, "replay:%s", file);
    float *y3 = drive(uri, 3, rows, n, &st);
    ck_assert_int_eq(st, PNN_OK);
    ck_assert_int_eq(memcmp(y3, y4, (size_t)(3 * rows * n) * sizeof(float)), 0);
    float *y_more = drive(uri, 4, rows, n, &st);
    ck_assert_int_eq(st, PNN_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(pnn_last_error(), "holds 3 calls"));
    /* not a recording at all */
    f = fopen(file, "wb");
    fputs("hello", f);
    fclose(f);
    ck_assert_int_eq(pnn_device_open(uri, be, &dev), PNN_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(pnn_last_error(), "not a pnn recording"));
    free(y4), free(y3), free(y_more);
    unlink(file), unlink(idx);
}
END_TEST

int main(void) {
    be = pnn_backend_cpu();
    Suite *s = suite_create("bridge");
    TCase *tc = tcase_create("bridge");
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, queue_runs_requests_in_submission_order, 0, 2);
    tcase_add_loop_test(tc, queue_splits_requests_over_max_batch, 0, 2);
    tcase_add_loop_test(tc, wait_times_out_and_can_wait_again, 0, 2);
    tcase_add_loop_test(tc, retries_hide_faults_and_drops, 0, 2);
    tcase_add_loop_test(tc, a_device_that_stays_down_fails_the_request, 0, 2);
    tcase_add_loop_test(tc, backoff_is_capped_and_interruptible, 0, 2);
    tcase_add_loop_test(tc, pipelined_schedule_equals_sequential_bit_for_bit, 0, 2);
    tcase_add_loop_test(tc, pipelined_schedule_equals_sequential_with_oracle_twin, 0, 2);
    tcase_add_loop_test(tc, one_micro_batch_is_the_plain_step, 0, 2);
    tcase_add_test(tc, failed_pass_drains_requests);
    tcase_add_test(tc, record_then_replay_gives_the_same_outputs);
    tcase_add_test(tc, torn_recording_is_repaired);
    suite_add_tcase(s, tc);
    return pnn_test_run(s);
}
