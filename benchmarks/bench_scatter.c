/* Throughput of the scatter twin as training uses it: per call, the phases change (W = diag(phi)
 * W2^T rebuilt), a taped forward of a batch and its VJP (dx and dtheta), through the public API on
 * a backend. Prints one JSON object: the median ms per forward + VJP over repeats and samples/s
 * in the form the twin picks by batch size, then in each form forced (fields, transfer matrix:
 * kernels/systems/scatter/scatter.h) with its FLOPs, and the median of each product and of the
 * elementwise kernels timed alone, so that one sees where the time goes.
 * Usage: bench_scatter X_DIM MODES Y_DIM BATCH [SECONDS=1] [BACKEND=cpu] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hwbridge/systems/scatter.h"
#include "kernels/systems/scatter/scatter_ops.h"
#include "pnn/clock.h"
#include "pnn/pnn.h"
#include "pnn/rng.h"

#define MAX_REPS 100000

typedef struct {
    pnn_twin *tw;
    const pnn_backend *be;
    int64_t d, m, k, b;
    pnn_tensor x, y, dy, dx;
    float *theta, *dtheta;
    float *u, *w, *z, *gz, *gu, *b1, *t, *g, *s, *dtheta2; /* scratch for the parts timed alone */
} bench;

enum {
    RUN_FWD_VJP, RUN_FIELDS, RUN_TRANSFER, RUN_GEMM_U, RUN_CGEMM_Z, RUN_CGEMM_GU, RUN_GEMM_DX, RUN_ELEMENTWISE,
    RUN_CGEMM_T, RUN_CGEMM_S, RUN_COUNT
};
static const char *const run_names[RUN_COUNT] = {"forward_vjp", "fields_forward_vjp", "transfer_forward_vjp",
                                                 "gemm_u", "cgemm_z", "cgemm_gu", "gemm_dx", "elementwise",
                                                 "cgemm_t", "cgemm_s"};

static int run(bench *bn, int what) {
    static const float one[2] = {1.0f, 0.0f}, zero[2] = {0.0f, 0.0f};
    const pnn_backend_i *ops = bn->be->iface;
    const pnn_scatter_ops *sc = pnn_scatter_ops_for(bn->be);
    void *ctx = bn->be->ctx;
    int64_t d = bn->d, m = bn->m, k = bn->k, b = bn->b;
    switch (what) {
    case RUN_FWD_VJP:
    case RUN_FIELDS:
    case RUN_TRANSFER:
        pnn_scatter_set_regime(what - RUN_FWD_VJP);
        pnn_twin_theta_changed(bn->tw);
        if (bn->tw->iface->forward(bn->tw, &bn->x, bn->theta, &bn->y, 0, NULL) != PNN_OK ||
            bn->tw->iface->vjp(bn->tw, bn->theta, &bn->dy, &bn->dx, bn->dtheta, 0) != PNN_OK)
            return 1;
        break;
    case RUN_GEMM_U: ops->gemm(ctx, false, false, b, 2 * m, d, 1.0f, bn->x.data, d, bn->b1, 2 * m, 0.0f, bn->u, 2 * m); break;
    case RUN_CGEMM_Z: ops->cgemm(ctx, 'N', 'N', b, k, m, one, bn->u, m, bn->w, k, zero, bn->z, k); break;
    case RUN_CGEMM_GU: ops->cgemm(ctx, 'N', 'C', b, m, k, one, bn->gz, k, bn->w, k, zero, bn->gu, m); break;
    case RUN_GEMM_DX:
        ops->gemm(ctx, false, true, b, d, 2 * m, 1.0f, bn->gu, 2 * m, bn->b1, 2 * m, 0.0f, bn->dx.data, d);
        break;
    case RUN_CGEMM_T: ops->cgemm(ctx, 'N', 'N', d, k, m, one, bn->b1, m, bn->w, k, zero, bn->t, k); break;
    case RUN_CGEMM_S: ops->cgemm(ctx, 'C', 'N', m, k, d, one, bn->b1, m, bn->g, k, zero, bn->s, k); break;
    case RUN_ELEMENTWISE:
        sc->modulate(ctx, m, k, 0.0f, bn->theta, bn->w, bn->w);
        sc->detect(ctx, b * k, bn->z, NULL, 0.0f, 1e30f, bn->y.data);
        sc->detect_adjoint(ctx, b * k, bn->dy.data, bn->z, bn->gz);
        sc->modulate_adjoint(ctx, b, m, bn->gu, bn->u, bn->dtheta2);
        break;
    }
    ops->sync(ctx);
    return 0;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* median seconds per call over repeats lasting `seconds` (at least 5), after 3 warm-up calls */
static double time_median(bench *bn, int what, double seconds, int *reps_out) {
    static double t[MAX_REPS];
    for (int i = 0; i < 3; i++)
        if (run(bn, what)) return -1;
    int reps = 0;
    double end = pnn_now_s() + seconds;
    while (reps < MAX_REPS && (reps < 5 || pnn_now_s() < end)) {
        double t0 = pnn_now_s();
        if (run(bn, what)) return -1;
        t[reps++] = pnn_now_s() - t0;
    }
    qsort(t, (size_t)reps, sizeof t[0], cmp_double);
    *reps_out = reps;
    return t[reps / 2];
}

#define MAX_ALLOCATED 24
static float *allocated[MAX_ALLOCATED];
static int n_allocated;

static float *dev_random(const pnn_backend *be, int64_t n, float lo, float hi, uint64_t stream) {
    float *h = malloc((size_t)n * sizeof *h), *d = be->iface->alloc(be->ctx, (size_t)n * sizeof(float));
    if (!h || !d || n_allocated == MAX_ALLOCATED) {
        fprintf(stderr, "bench_scatter: out of memory\n");
        exit(1);
    }
    pnn_rng_uniform(7, stream, 0, n, h);
    for (int64_t i = 0; i < n; i++) h[i] = lo + (hi - lo) * h[i];
    be->iface->from_host(be->ctx, d, h, (size_t)n * sizeof(float));
    free(h);
    return allocated[n_allocated++] = d;
}

static pnn_tensor view(const pnn_backend *be, float *data, int64_t rows, int64_t cols) {
    pnn_tensor t;
    int64_t shape[2] = {rows, cols};
    pnn_tensor_view(&t, be, data, 2, shape);
    return t;
}

int main(int argc, char **argv) {
    if (argc < 5) {
        fprintf(stderr, "usage: bench_scatter X_DIM MODES Y_DIM BATCH [SECONDS=1] [BACKEND=cpu]\n");
        return 64;
    }
    bench bn = {.d = atoll(argv[1]), .m = atoll(argv[2]), .k = atoll(argv[3]), .b = atoll(argv[4])};
    double seconds = argc > 5 ? atof(argv[5]) : 1.0;
    const char *backend = argc > 6 ? argv[6] : "cpu";
    char uri[256];
    snprintf(uri, sizeof uri, "sim:scatter?x_dim=%lld&modes=%lld&y_dim=%lld&seed=1", (long long)bn.d, (long long)bn.m,
             (long long)bn.k);
    pnn_device *dev;
    if (pnn_backend_get(backend, &bn.be) != PNN_OK || pnn_device_open(uri, bn.be, &dev) != PNN_OK ||
        pnn_twin_create("analytic", dev, -1, &bn.tw) != PNN_OK) {
        fprintf(stderr, "bench_scatter: %s\n", pnn_last_error());
        return 1;
    }
    int64_t d = bn.d, m = bn.m, k = bn.k, b = bn.b;
    bn.x = view(bn.be, dev_random(bn.be, b * d, -1, 1, 1), b, d);
    bn.y = view(bn.be, dev_random(bn.be, b * k, 0, 1, 2), b, k);
    bn.dy = view(bn.be, dev_random(bn.be, b * k, -1, 1, 3), b, k);
    bn.dx = view(bn.be, dev_random(bn.be, b * d, 0, 1, 4), b, d);
    bn.theta = dev_random(bn.be, m, -3.14159265f, 3.14159265f, 5);
    bn.dtheta = dev_random(bn.be, m, 0, 0, 6);
    bn.dtheta2 = dev_random(bn.be, m, 0, 0, 7);
    bn.b1 = dev_random(bn.be, 2 * d * m, -1, 1, 8);
    bn.u = dev_random(bn.be, 2 * b * m, -1, 1, 9);
    bn.w = dev_random(bn.be, 2 * m * k, -1, 1, 10);
    bn.z = dev_random(bn.be, 2 * b * k, -1, 1, 11);
    bn.gz = dev_random(bn.be, 2 * b * k, -1, 1, 12);
    bn.gu = dev_random(bn.be, 2 * b * m, -1, 1, 13);
    bn.t = dev_random(bn.be, 2 * d * k, -1, 1, 14);
    bn.g = dev_random(bn.be, 2 * d * k, -1, 1, 15);
    bn.s = dev_random(bn.be, 2 * m * k, -1, 1, 16);
    /* fields form: two real GEMMs of 2 b d (2m) and two complex ones of 8 b m k; transfer form: two
     * complex GEMMs of 8 d m k and three real ones of 2 b d (2k) */
    double flops_fields = 2.0 * (4.0 * b * d * m) + 2.0 * (8.0 * b * m * k);
    double flops_transfer = 2.0 * (8.0 * d * m * k) + 3.0 * (4.0 * b * d * k);
    int transfer = pnn_scatter_use_transfer(&(pnn_scatter_settings){.x_dim = d, .modes = m, .y_dim = k}, b);
    double flops = transfer ? flops_transfer : flops_fields;
    printf("{\"x_dim\": %lld, \"modes\": %lld, \"y_dim\": %lld, \"batch\": %lld, \"backend\": \"%s\", "
           "\"form\": \"%s\", \"flops_per_call\": %.0f, \"fields_flops\": %.0f, \"transfer_flops\": %.0f",
           (long long)d, (long long)m, (long long)k, (long long)b, backend, transfer ? "transfer" : "fields", flops,
           flops_fields, flops_transfer);
    for (int what = 0; what < RUN_COUNT; what++) {
        int reps = 0;
        double s = time_median(&bn, what, what <= RUN_TRANSFER ? seconds : seconds / 4, &reps);
        if (s < 0) {
            fprintf(stderr, "bench_scatter: %s\n", pnn_last_error());
            return 1;
        }
        printf(", \"%s_ms\": %.5f", run_names[what], 1e3 * s);
        if (what == RUN_FWD_VJP)
            printf(", \"reps\": %d, \"samples_per_s\": %.1f, \"gflops\": %.2f", reps, (double)b / s, flops / s * 1e-9);
    }
    printf("}\n");
    pnn_scatter_set_regime(0);
    for (int i = 0; i < n_allocated; i++) bn.be->iface->release(bn.be->ctx, allocated[i]);
    pnn_twin_free(bn.tw);
    pnn_device_close(dev);
    return 0;
}
