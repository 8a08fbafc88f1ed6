/* Callback devices and twins (include/pnn/callback.h): functions of the host program behind the
 * device queue and the twin interface, as the Python package uses them; and the flat C API. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pnn/callback.h"
#include "pnn/capi.h"
#include "pnn/pnn.h"
#include "pnn/train.h"
#include "tests/testutil.h"

/* y = x[:, :2] * theta[0]; its user counts calls and fails as told */
typedef struct {
    int calls, fail_first, mode; /* mode 1: faults, 2: error, 3: NaN */
} scale_state;

static int scale_forward(void *user, int64_t rows, const float *x, const float *theta, float *y, char *err,
                         size_t cap) {
    scale_state *s = user;
    s->calls++;
    if (s->calls <= s->fail_first) {
        if (s->mode == 3) {
            for (int64_t i = 0; i < rows * 2; i++) y[i] = NAN;
            return PNN_CALLBACK_OK;
        }
        snprintf(err, cap, "glitch %d", s->calls);
        return s->mode == 2 ? PNN_CALLBACK_ERROR : PNN_CALLBACK_FAULT;
    }
    for (int64_t r = 0; r < rows; r++)
        for (int j = 0; j < 2; j++) y[r * 2 + j] = x[r * 3 + j] * theta[0];
    return PNN_CALLBACK_OK;
}

static pnn_callback_device_spec scale_spec(scale_state *s) {
    pnn_callback_device_spec spec = {0};
    spec.x_dim = 3, spec.y_dim = 2, spec.theta_dim = 1;
    spec.forward = scale_forward;
    spec.user = s;
    return spec;
}

START_TEST(callback_device_runs_behind_the_queue) {
    scale_state s = {0};
    pnn_callback_device_spec spec = scale_spec(&s);
    ck_assert_int_eq(pnn_callback_device_register("scale", &spec), PNN_OK);
    ck_assert_int_eq(pnn_callback_device_register("scale", &spec), PNN_ERR_INVALID); /* taken */
    ck_assert_int_eq(pnn_callback_device_register("bad name", &spec), PNN_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(pnn_last_error(), "letters, digits"));
    pnn_device *dev;
    ck_assert_int_eq(pnn_capi_device_open("callback:scale", &dev), PNN_OK);
    ck_assert_str_eq(dev->info.system, "callback");
    ck_assert_int_eq(pnn_callback_unregister("scale"), PNN_ERR_INVALID); /* in use */
    float x[6] = {1, 2, 3, 4, 5, 6}, theta = 2, y[4];
    ck_assert_int_eq(pnn_capi_device_forward(dev, 2, x, &theta, y), PNN_OK);
    ck_assert(y[0] == 2 && y[1] == 4 && y[2] == 8 && y[3] == 10);
    /* faults are retried, NaN is a fault, an error is not retried */
    ck_assert_int_eq(pnn_capi_device_set_retry(dev, 3, 0.1), PNN_OK);
    s.calls = 0, s.fail_first = 2, s.mode = 1;
    ck_assert_int_eq(pnn_capi_device_forward(dev, 2, x, &theta, y), PNN_OK);
    s.calls = 0, s.fail_first = 1, s.mode = 3;
    ck_assert_int_eq(pnn_capi_device_forward(dev, 2, x, &theta, y), PNN_OK);
    uint64_t c[4];
    double busy;
    pnn_capi_device_counters(dev, c, &busy);
    ck_assert_uint_eq(c[0], 3);
    ck_assert_uint_eq(c[2], 3);
    s.calls = 0, s.fail_first = 1, s.mode = 2;
    ck_assert_int_eq(pnn_capi_device_forward(dev, 2, x, &theta, y), PNN_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(pnn_last_error(), "glitch 1"));
    ck_assert_int_eq(s.calls, 1);
    s.calls = 0, s.fail_first = 10, s.mode = 1;
    ck_assert_int_eq(pnn_capi_device_forward(dev, 2, x, &theta, y), PNN_ERR_DEVICE);
    ck_assert_int_eq(s.calls, 4); /* one attempt and three retries */
    ck_assert_ptr_nonnull(strstr(pnn_last_error(), "glitch 4"));
    pnn_device_close(dev);
    ck_assert_int_eq(pnn_callback_unregister("scale"), PNN_OK);
    ck_assert_int_eq(pnn_capi_device_open("callback:scale", &dev), PNN_ERR_NOT_FOUND);
    ck_assert_ptr_nonnull(strstr(pnn_last_error(), "no callback device called 'scale'"));
}
END_TEST

/* a device that says it is an oscillator: dims checked, the system's controls' names taken */
START_TEST(callback_device_standing_for_a_system) {
    scale_state s = {0};
    pnn_callback_device_spec spec = scale_spec(&s);
    snprintf(spec.system, sizeof spec.system, "oscillator"); /* says so, but not which one */
    ck_assert_int_eq(pnn_callback_device_register("osc3", &spec), PNN_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(pnn_last_error(), "give its system_uri too"));
    spec.x_range[0] = -INFINITY, spec.x_range[1] = -INFINITY;
    snprintf(spec.system_uri, sizeof spec.system_uri, "sim:oscillator?n=3");
    ck_assert_int_eq(pnn_callback_device_register("osc3", &spec), PNN_ERR_INVALID); /* no finite range */
    spec.x_range[0] = spec.x_range[1] = 0;
    ck_assert_int_eq(pnn_callback_device_register("osc3", &spec), PNN_OK);
    pnn_device *dev;
    ck_assert_int_eq(pnn_capi_device_open("callback:osc3", &dev), PNN_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(pnn_last_error(), "has 3, 3, 12"));
    ck_assert_int_eq(pnn_callback_unregister("osc3"), PNN_OK);
    spec.y_dim = 3, spec.theta_dim = 12;
    ck_assert_int_eq(pnn_callback_device_register("osc3", &spec), PNN_OK);
    ck_assert_int_eq(pnn_capi_device_open("callback:osc3", &dev), PNN_OK);
    ck_assert_str_eq(dev->info.system, "oscillator");
    ck_assert_int_eq(dev->info.n_theta_parts, 2);
    ck_assert_str_eq(dev->info.theta_parts[0].name, "C");
    pnn_twin *tw;
    ck_assert_int_eq(pnn_capi_twin_create(dev, "analytic", -1, &tw), PNN_OK); /* pnn knows its physics */
    pnn_twin_free(tw);
    pnn_device_close(dev);
    ck_assert_int_eq(pnn_callback_unregister("osc3"), PNN_OK);
}
END_TEST

/* twin y = x W (W = theta, 3 x 2), its tape the x of each slot */
static float tape_x[PNN_TWIN_MAX_SLOTS][64];

static int lin_forward(void *user, int64_t rows, const float *x, const float *theta, float *y, int slot, char *err,
                       size_t cap) {
    (void)user, (void)err, (void)cap;
    for (int64_t r = 0; r < rows; r++)
        for (int j = 0; j < 2; j++) {
            float acc = 0;
            for (int k = 0; k < 3; k++) acc += x[r * 3 + k] * theta[k * 2 + j];
            y[r * 2 + j] = acc;
        }
    if (slot >= 0) memcpy(tape_x[slot], x, (size_t)(rows * 3) * sizeof(float));
    return PNN_CALLBACK_OK;
}

static int lin_vjp(void *user, int64_t rows, const float *theta, const float *dy, float *dx, float *dtheta, int slot,
                   char *err, size_t cap) {
    (void)user;
    if (slot == 7) {
        snprintf(err, cap, "no tape at 7");
        return PNN_CALLBACK_ERROR;
    }
    for (int64_t r = 0; r < rows; r++)
        for (int k = 0; k < 3; k++) {
            if (dx) dx[r * 3 + k] = dy[r * 2] * theta[k * 2] + dy[r * 2 + 1] * theta[k * 2 + 1];
            for (int j = 0; j < 2; j++) dtheta[k * 2 + j] += tape_x[slot][r * 3 + k] * dy[r * 2 + j];
        }
    return PNN_CALLBACK_OK;
}

START_TEST(callback_twin_forward_and_vjp) {
    scale_state s = {0};
    pnn_callback_device_spec dspec = scale_spec(&s);
    dspec.theta_dim = 6;
    ck_assert_int_eq(pnn_callback_device_register("lin-dev", &dspec), PNN_OK);
    pnn_callback_twin_spec spec = {.x_dim = 3, .y_dim = 2, .theta_dim = 6, .forward = lin_forward, .vjp = lin_vjp};
    ck_assert_int_eq(pnn_callback_twin_register("lin", &spec), PNN_OK);
    pnn_device *dev;
    ck_assert_int_eq(pnn_capi_device_open("callback:lin-dev", &dev), PNN_OK);
    pnn_twin *tw;
    ck_assert_int_eq(pnn_capi_twin_create(dev, "callback:lin-dev", -1, &tw), PNN_ERR_INVALID); /* a device */
    ck_assert_int_eq(pnn_capi_twin_create(dev, "callback:lin", 0.5, &tw), PNN_ERR_CONFIG);     /* twin_noise */
    ck_assert_int_eq(pnn_capi_twin_create(dev, "callback", -1, &tw), PNN_ERR_CONFIG);         /* no name */
    ck_assert_int_eq(pnn_capi_twin_create(dev, "callback:lin", -1, &tw), PNN_OK);
    float x[6] = {1, 0, 2, 0, 1, 1}, theta[6] = {1, 2, 3, 4, 5, 6}, y[4], dy[4] = {1, 0, 0, 1}, dx[6], dth[6];
    ck_assert_int_eq(pnn_capi_twin_forward(tw, 2, x, theta, y, 3), PNN_OK);
    ck_assert(y[0] == 11 && y[1] == 14 && y[2] == 8 && y[3] == 10);
    ck_assert_int_eq(pnn_capi_twin_vjp(tw, 2, theta, dy, dx, dth, 3), PNN_OK);
    ck_assert(dx[0] == 1 && dx[1] == 3 && dx[2] == 5 && dx[3] == 2 && dx[4] == 4 && dx[5] == 6);
    ck_assert(dth[0] == 1 && dth[1] == 0 && dth[2] == 0 && dth[3] == 1 && dth[4] == 2 && dth[5] == 1);
    ck_assert_int_eq(pnn_capi_twin_forward(tw, 2, x, theta, y, 7), PNN_OK);
    ck_assert_int_eq(pnn_capi_twin_vjp(tw, 2, theta, dy, dx, dth, 7), PNN_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(pnn_last_error(), "callback twin lin, vjp: no tape at 7"));
    ck_assert_int_eq(pnn_callback_unregister("lin"), PNN_ERR_INVALID);
    pnn_twin_free(tw);
    pnn_device_close(dev);
    ck_assert_int_eq(pnn_callback_unregister("lin"), PNN_OK);
    ck_assert_int_eq(pnn_callback_unregister("lin-dev"), PNN_OK);
}
END_TEST

/* The C API trains as pnn train does: the same final figures as the trainer run by hand, and a
 * stop request leaves a resumable state. */
static int64_t stop_at;
static void stop_progress(void *user, const char *phase, int64_t epoch, int64_t epochs, int64_t step, int64_t steps,
                          int64_t global_step, double loss, double acc, double elapsed_s, double tdev, double ttwin) {
    (void)user, (void)epoch, (void)epochs, (void)step, (void)steps, (void)loss, (void)acc, (void)elapsed_s;
    (void)tdev, (void)ttwin;
    if (!strcmp(phase, "train") && global_step == stop_at) pnn_capi_request_stop();
}

START_TEST(capi_train_stops_and_resumes_exactly) {
    char yaml[4096], whole[] = "/tmp/pnn-capi-XXXXXX", part[] = "/tmp/pnn-capi-XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(whole));
    ck_assert_ptr_nonnull(mkdtemp(part));
    pnn_test_vowels_yaml(yaml, sizeof yaml, "");
    double a[6], b[6];
    int interrupted;
    const char *sets[] = {"seed=4", "epochs=3"};
    ck_assert_int_eq(pnn_capi_train(NULL, yaml, sets, 2, whole, 0, NULL, NULL, &interrupted, a), PNN_OK);
    ck_assert_int_eq(interrupted, 0);
    stop_at = 9;
    ck_assert_int_eq(pnn_capi_train(NULL, yaml, sets, 2, part, 0, stop_progress, NULL, &interrupted, b), PNN_OK);
    ck_assert_int_eq(interrupted, 1);
    ck_assert_int_eq(pnn_capi_train(NULL, yaml, sets, 2, part, 1, NULL, NULL, &interrupted, b), PNN_OK);
    ck_assert_int_eq(interrupted, 0);
    for (int i = 0; i < 5; i++) ck_assert_msg(a[i] == b[i] || (isnan(a[i]) && isnan(b[i])), "final %d", i);
    const char *bad[] = {"epochs=-1"};
    ck_assert_int_eq(pnn_capi_train(NULL, yaml, bad, 1, part, 0, NULL, NULL, &interrupted, b), PNN_ERR_CONFIG);
    ck_assert_int_eq(pnn_capi_train(NULL, NULL, NULL, 0, part, 0, NULL, NULL, &interrupted, b), PNN_ERR_INVALID);
    ck_assert(isnan(b[0])); /* no figures from a failed run */
    ck_assert_int_eq(pnn_capi_evaluate("x.safetensors", sets, -1, sets, 2, 0, b), PNN_ERR_INVALID);
    pnn_capi_request_stop(); /* outside a run: ignored, so the next device wait is not cut short */
    ck_assert_int_eq(pnn_interrupt_requested(), 0);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s %s", whole, part);
    ck_assert_int_eq(system(cmd), 0);
}
END_TEST

int main(void) {
    Suite *s = suite_create("callback");
    TCase *tc = tcase_create("callback");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, callback_device_runs_behind_the_queue);
    tcase_add_test(tc, callback_device_standing_for_a_system);
    tcase_add_test(tc, callback_twin_forward_and_vjp);
    tcase_add_test(tc, capi_train_stops_and_resumes_exactly);
    suite_add_tcase(s, tc);
    return pnn_test_run(s);
}
