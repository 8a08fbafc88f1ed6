/* Throughput of the shg twin (benchmarks/shg_throughput.py runs it beside the PyTorch reference):
 * one training step's twin work, a taped forward and the VJP (dx and dtheta), through the public
 * twin API on the CPU backend, in samples per second. Prints one JSON object.
 *   bench_shg [--k K] [--batch B] [--y-dim Y] [--form auto|direct|fft] [--seconds S]
 * --crossover prints, instead, forward + VJP time per sample of both forms for K = 8 ... 512 at the
 * batch (the measurement behind PNN_SHG_FFT_MIN_K). --forms prints the largest normalized
 * difference between the two forms (y, dx, dtheta) for several K. --dump FILE writes one step at
 * the size (noise off: K, batch, x_dim, y_dim as int64, then x, theta, dy, y, dx, dtheta as
 * float32) for benchmarks/reference/shg_torch.py --check. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kernels/systems/shg/shg_ops.h"
#include "pnn/pnn.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

typedef struct {
    pnn_device *dev;
    pnn_twin *tw;
    pnn_tensor x, y, dy, dx;
    float *theta, *dtheta;
    int64_t k, batch;
} bench;

static int bench_open(bench *b, int64_t k, int64_t batch, int64_t y_dim, const char *form, double noise) {
    char uri[256];
    snprintf(uri, sizeof uri, "sim:shg?k=%lld&y_dim=%lld&form=%s&noise=%g", (long long)k, (long long)y_dim, form, noise);
    memset(b, 0, sizeof *b);
    b->k = k, b->batch = batch;
    const pnn_backend *be = pnn_backend_cpu();
    if (pnn_device_open(uri, be, &b->dev) != PNN_OK || pnn_twin_create("analytic", b->dev, -1, &b->tw) != PNN_OK) {
        fprintf(stderr, "bench_shg: %s\n", pnn_last_error());
        return 0;
    }
    int64_t xd = b->dev->info.x_dim, td = b->dev->info.theta_dim, yd = b->dev->info.y_dim;
    if (pnn_tensor_init2(&b->x, be, batch, xd) || pnn_tensor_init2(&b->dx, be, batch, xd) ||
        pnn_tensor_init2(&b->y, be, batch, yd) || pnn_tensor_init2(&b->dy, be, batch, yd)) {
        fprintf(stderr, "bench_shg: %s\n", pnn_last_error());
        return 0;
    }
    b->theta = malloc((size_t)td * sizeof *b->theta);
    b->dtheta = calloc((size_t)td, sizeof *b->dtheta);
    if (!b->theta || !b->dtheta) return 0;
    pnn_rng_uniform(1, 1, 0, batch * xd, b->x.data);
    pnn_rng_uniform(1, 2, 0, td, b->theta);
    pnn_rng_normal(1, 3, 0, batch * yd, b->dy.data);
    return 1;
}

static void bench_close(bench *b) {
    pnn_tensor_free(&b->x), pnn_tensor_free(&b->y), pnn_tensor_free(&b->dy), pnn_tensor_free(&b->dx);
    free(b->theta), free(b->dtheta);
    pnn_twin_free(b->tw);
    pnn_device_close(b->dev);
}

static int bench_step(bench *b) {
    if (b->tw->iface->forward(b->tw, &b->x, b->theta, &b->y, 0, NULL) != PNN_OK ||
        b->tw->iface->vjp(b->tw, b->theta, &b->dy, &b->dx, b->dtheta, 0) != PNN_OK) {
        fprintf(stderr, "bench_shg: %s\n", pnn_last_error());
        return 0;
    }
    return 1;
}

/* seconds per step, over at least `seconds` after two warm-up steps */
static double time_steps(bench *b, double seconds, int64_t *steps) {
    if (!bench_step(b) || !bench_step(b)) return -1;
    int64_t n = 0;
    double start = now(), elapsed;
    do {
        if (!bench_step(b)) return -1;
        n++;
        elapsed = now() - start;
    } while (elapsed < seconds);
    *steps = n;
    return elapsed / (double)n;
}

static int crossover(int64_t batch, double seconds) {
    printf("{\"benchmark\": \"shg_crossover\", \"batch\": %lld, \"us_per_sample\": [", (long long)batch);
    for (int64_t k = 8, first = 1; k <= 512; k *= 2, first = 0) {
        double t[2];
        for (int form = 0; form < 2; form++) {
            bench b;
            int64_t steps;
            if (!bench_open(&b, k, batch, k / 2, form ? "fft" : "direct", 0.01)) return 1;
            t[form] = time_steps(&b, seconds, &steps);
            bench_close(&b);
            if (t[form] < 0) return 1;
        }
        printf("%s{\"k\": %lld, \"direct\": %.4g, \"fft\": %.4g}", first ? "" : ", ", (long long)k,
               1e6 * t[0] / (double)batch, 1e6 * t[1] / (double)batch);
    }
    printf("]}\n");
    return 0;
}

static double max_diff(const float *a, const float *b, int64_t n) {
    double num = 0, den = 1e-30;
    for (int64_t i = 0; i < n; i++) {
        num = fmax(num, fabs((double)a[i] - b[i]));
        den = fmax(den, fabs((double)b[i]));
    }
    return num / den;
}

/* the largest normalized difference of y, dx and dtheta between the two forms (noise off) */
static int forms(int64_t batch) {
    static const int64_t ks[] = {2, 3, 16, 17, 63, 64, 100, 257, 1024, 4095};
    printf("{\"benchmark\": \"shg_forms\", \"batch\": %lld, \"normalized_difference_fft_vs_direct\": [", (long long)batch);
    for (int i = 0; i < 10; i++) {
        bench b[2];
        for (int form = 0; form < 2; form++) {
            if (!bench_open(&b[form], ks[i], batch, 2 * ks[i] - 1 < 64 ? 2 * ks[i] - 1 : 64, form ? "fft" : "direct", 0))
                return 1;
            if (!bench_step(&b[form])) return 1;
        }
        int64_t xd = b[0].dev->info.x_dim, td = b[0].dev->info.theta_dim, yd = b[0].dev->info.y_dim;
        printf("%s{\"k\": %lld, \"y\": %.3g, \"dx\": %.3g, \"dtheta\": %.3g}", i ? ", " : "", (long long)ks[i],
               max_diff(b[1].y.data, b[0].y.data, batch * yd), max_diff(b[1].dx.data, b[0].dx.data, batch * xd),
               max_diff(b[1].dtheta, b[0].dtheta, td));
        bench_close(&b[0]), bench_close(&b[1]);
    }
    printf("]}\n");
    return 0;
}

/* one noise-free step, its inputs, outputs and gradients to path (see the top) */
static int dump(int64_t k, int64_t batch, int64_t y_dim, const char *form, const char *path) {
    bench b;
    if (!bench_open(&b, k, batch, y_dim, form, 0) || !bench_step(&b)) return 1;
    int64_t xd = b.dev->info.x_dim, td = b.dev->info.theta_dim, head[4] = {k, batch, xd, y_dim};
    FILE *f = fopen(path, "wb");
    int ok = f && fwrite(head, sizeof head, 1, f) == 1 &&
             fwrite(b.x.data, sizeof(float), (size_t)(batch * xd), f) == (size_t)(batch * xd) &&
             fwrite(b.theta, sizeof(float), (size_t)td, f) == (size_t)td &&
             fwrite(b.dy.data, sizeof(float), (size_t)(batch * y_dim), f) == (size_t)(batch * y_dim) &&
             fwrite(b.y.data, sizeof(float), (size_t)(batch * y_dim), f) == (size_t)(batch * y_dim) &&
             fwrite(b.dx.data, sizeof(float), (size_t)(batch * xd), f) == (size_t)(batch * xd) &&
             fwrite(b.dtheta, sizeof(float), (size_t)td, f) == (size_t)td;
    if (f && fclose(f)) ok = 0;
    bench_close(&b);
    if (!ok) fprintf(stderr, "bench_shg: cannot write %s\n", path);
    return ok ? 0 : 1;
}

int main(int argc, char **argv) {
    int64_t k = 64, batch = 32, y_dim = -1;
    double seconds = 1.0;
    const char *form = "auto", *mode = "throughput", *dump_path = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--crossover") || !strcmp(a, "--forms")) mode = a + 2;
        else if (v && !strcmp(a, "--k")) k = atoll(v), i++;
        else if (v && !strcmp(a, "--batch")) batch = atoll(v), i++;
        else if (v && !strcmp(a, "--y-dim")) y_dim = atoll(v), i++;
        else if (v && !strcmp(a, "--form")) form = v, i++;
        else if (v && !strcmp(a, "--seconds")) seconds = atof(v), i++;
        else if (v && !strcmp(a, "--dump")) dump_path = v, i++;
        else {
            fprintf(stderr, "usage: bench_shg [--k K] [--batch B] [--y-dim Y] [--form auto|direct|fft] [--seconds S] "
                            "[--crossover | --forms | --dump FILE]\n");
            return 64;
        }
    }
    if (batch < 1 || k < 2) {
        fprintf(stderr, "bench_shg: need --batch >= 1 and --k >= 2\n");
        return 64;
    }
    if (!strcmp(mode, "crossover")) return crossover(batch, seconds);
    if (!strcmp(mode, "forms")) return forms(batch);
    if (y_dim < 0) y_dim = 2 * k - 1 < 16 ? 2 * k - 1 : 16;
    if (dump_path) return dump(k, batch, y_dim, form, dump_path);
    bench b;
    int64_t steps;
    if (!bench_open(&b, k, batch, y_dim, form, 0.01)) return 1;
    double t = time_steps(&b, seconds, &steps);
    bench_close(&b);
    if (t < 0) return 1;
    const char *ran = strcmp(form, "auto") ? form : k < PNN_SHG_FFT_MIN_K ? "direct" : "fft";
    printf("{\"impl\": \"pnn\", \"k\": %lld, \"batch\": %lld, \"y_dim\": %lld, \"form\": \"%s\", \"steps\": %lld, "
           "\"s_per_step\": %.6g, \"samples_per_s\": %.6g}\n",
           (long long)k, (long long)batch, (long long)y_dim, ran, (long long)steps, t, (double)batch / t);
    return 0;
}
