/* Throughput of the circuit twin (PHYSICS.md, "circuit"): one taped forward and its VJP (dx and
 * dtheta) through the twin's interface, as a PAT step runs them, in samples per second. The
 * inputs are closed-form (x = tanh(1.5 sin(1.7 i + 0.3)), theta = 0.8 cos(2.1 k),
 * dy = sin(0.37 i)) so that benchmarks/reference/circuit_torch.py computes the same problem, and
 * the sums of y, dx and dtheta are printed for the driver to compare. One JSON object per size.
 * Usage: bench_circuit [SEGMENTS STEPS BATCH]...  (default: 16 20 32, 16 20 256, 256 20 32,
 * 256 20 256); T = SEGMENTS / 4 (a segment lasts a quarter of a natural period), y_dim =
 * SEGMENTS / 2, x_dim = SEGMENTS / 2, interleaved, no noise. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "pnn/pnn.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int check(pnn_status st, const char *what) {
    if (st == PNN_OK) return 0;
    fprintf(stderr, "bench_circuit: %s: %s\n", what, pnn_last_error());
    return 1;
}

static double sum(const pnn_tensor *t, int64_t n) {
    float *h = malloc((size_t)n * sizeof *h);
    double s = 0;
    if (!h) return NAN;
    pnn_tensor_to_host(t, h, n);
    for (int64_t i = 0; i < n; i++) s += h[i];
    free(h);
    return s;
}

/* flops of one RK4 step of one row as circuit.h writes it, tanh counted as 40 (its polynomial,
 * exp and division): forward 54 + 4 tanh, VJP (stages recomputed, then the adjoint) 111 + 4 tanh */
#define STEP_FLOPS_FWD_VJP (54.0 + 111.0 + 8 * 40.0)

static int bench_size(const pnn_backend *be, int64_t s, int64_t steps, int64_t batch) {
    char uri[256];
    snprintf(uri, sizeof uri, "sim:circuit?segments=%lld&steps=%lld&T=%g&noise=0&mismatch=0", (long long)s,
             (long long)steps, (double)s / 4);
    pnn_device *dev = NULL;
    pnn_twin *tw = NULL;
    pnn_tensor x = {0}, y = {0}, dy = {0}, dx = {0}, th = {0}, dth = {0};
    int bad = check(pnn_device_open(uri, be, &dev), uri) || check(pnn_twin_create("analytic", dev, -1, &tw), "twin");
    int64_t xd = bad ? 0 : dev->info.x_dim, yd = bad ? 0 : dev->info.y_dim, td = bad ? 0 : dev->info.theta_dim;
    bad = bad || check(pnn_tensor_init2(&x, be, batch, xd), "x") || check(pnn_tensor_init2(&y, be, batch, yd), "y") ||
          check(pnn_tensor_init2(&dy, be, batch, yd), "dy") || check(pnn_tensor_init2(&dx, be, batch, xd), "dx") ||
          check(pnn_tensor_init2(&th, be, 1, td), "theta") || check(pnn_tensor_init2(&dth, be, 1, td), "dtheta");
    if (!bad) {
        for (int64_t i = 0; i < batch * xd; i++) x.data[i] = tanhf(1.5f * sinf(1.7f * (float)i + 0.3f));
        for (int64_t k = 0; k < td; k++) th.data[k] = 0.8f * cosf(2.1f * (float)k);
        for (int64_t i = 0; i < batch * yd; i++) dy.data[i] = sinf(0.37f * (float)i);
        pnn_tensor_zero(&dth);
        bad = check(tw->iface->forward(tw, &x, th.data, &y, 0, NULL), "forward") ||
              check(tw->iface->vjp(tw, th.data, &dy, &dx, dth.data, 0), "vjp");
    }
    if (!bad) {
        double y_sum = sum(&y, batch * yd), dx_sum = sum(&dx, batch * xd), dth_sum = sum(&dth, td);
        int reps = 0;
        double start = now(), elapsed;
        do {
            tw->iface->forward(tw, &x, th.data, &y, 0, NULL);
            tw->iface->vjp(tw, th.data, &dy, &dx, dth.data, 0);
            reps++;
            elapsed = now() - start;
        } while (elapsed < 0.5 || reps < 3);
        double per_call = elapsed / reps, n_steps = (double)(s * steps);
        printf("{\"impl\": \"pnn\", \"segments\": %lld, \"steps\": %lld, \"batch\": %lld, \"x_dim\": %lld, "
               "\"y_dim\": %lld, \"reps\": %d, \"seconds_per_call\": %.6g, \"samples_per_s\": %.6g, "
               "\"flops_per_call\": %.6g, \"gflops\": %.4g, \"sum_y\": %.9g, \"sum_dx\": %.9g, \"sum_dtheta\": %.9g}\n",
               (long long)s, (long long)steps, (long long)batch, (long long)xd, (long long)yd, reps, per_call,
               (double)batch / per_call, STEP_FLOPS_FWD_VJP * n_steps * (double)batch,
               STEP_FLOPS_FWD_VJP * n_steps * (double)batch / per_call * 1e-9, y_sum, dx_sum, dth_sum);
    }
    pnn_tensor *ts[] = {&x, &y, &dy, &dx, &th, &dth};
    for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++) pnn_tensor_free(ts[i]);
    if (tw) pnn_twin_free(tw);
    if (dev) pnn_device_close(dev);
    return bad;
}

int main(int argc, char **argv) {
    const int64_t defaults[][3] = {{16, 20, 32}, {16, 20, 256}, {256, 20, 32}, {256, 20, 256}};
    const pnn_backend *be = pnn_backend_cpu();
    if (argc > 1 && (argc - 1) % 3) {
        fprintf(stderr, "usage: bench_circuit [SEGMENTS STEPS BATCH]...\n");
        return 64;
    }
    int n = argc > 1 ? (argc - 1) / 3 : 4, bad = 0;
    for (int i = 0; i < n; i++) {
        int64_t s = argc > 1 ? atoll(argv[1 + 3 * i]) : defaults[i][0];
        int64_t steps = argc > 1 ? atoll(argv[2 + 3 * i]) : defaults[i][1];
        int64_t batch = argc > 1 ? atoll(argv[3 + 3 * i]) : defaults[i][2];
        if (batch < 1 || batch > 1 << 20) {
            fprintf(stderr, "bench_circuit: batch %lld out of [1, 2^20]\n", (long long)batch);
            return 64;
        }
        bad |= bench_size(be, s, steps, batch);
    }
    return bad ? 1 : 0;
}
