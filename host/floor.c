/* The machine's ceilings, measured through the backend that the twins use (pnn/floor.h). */
#include <stdio.h>
#include <string.h>

#include "pnn/floor.h"

#include "pnn/clock.h"

static float *filled(const pnn_backend *be, int64_t n, float value) {
    float *p = be->iface->alloc(be->ctx, (size_t)(n ? n : 1) * sizeof(float));
    if (p) be->iface->fill(be->ctx, p, value, n);
    return p;
}

double pnn_floor_gemm_gflops(const pnn_backend *be, int64_t m, int64_t n, int64_t k, int trans_b, double min_s) {
    const pnn_backend_i *bi = be->iface;
    float *a = filled(be, m * k, 0.1f), *b = filled(be, k * n, 0.2f), *c = filled(be, m * n, 0.0f);
    double best = 0;
    if (a && b && c) {
        bi->gemm(be->ctx, false, trans_b, m, n, k, 1.0f, a, k, b, trans_b ? k : n, 0.0f, c, n); /* warm */
        bi->sync(be->ctx);
        double end = pnn_now_s() + min_s, fastest = 1e30;
        for (int rep = 0; rep < 3 || pnn_now_s() < end; rep++) {
            double t0 = pnn_now_s();
            bi->gemm(be->ctx, false, trans_b, m, n, k, 1.0f, a, k, b, trans_b ? k : n, 0.0f, c, n);
            bi->sync(be->ctx);
            double dt = pnn_now_s() - t0;
            if (dt < fastest) fastest = dt;
        }
        best = 2.0 * (double)m * (double)n * (double)k / fastest / 1e9;
    }
    if (a) bi->release(be->ctx, a);
    if (b) bi->release(be->ctx, b);
    if (c) bi->release(be->ctx, c);
    return best;
}

double pnn_floor_stream_gbs(const pnn_backend *be, int64_t floats, double min_s) {
    const pnn_backend_i *bi = be->iface;
    float *x = filled(be, floats, 1.0f), *y = filled(be, floats, 2.0f);
    double best = 0;
    if (x && y) {
        bi->axpby(be->ctx, floats, 0.5f, x, 0.5f, y);
        bi->sync(be->ctx);
        double end = pnn_now_s() + min_s, fastest = 1e30;
        for (int rep = 0; rep < 3 || pnn_now_s() < end; rep++) {
            double t0 = pnn_now_s();
            bi->axpby(be->ctx, floats, 0.5f, x, 0.5f, y);
            bi->sync(be->ctx);
            double dt = pnn_now_s() - t0;
            if (dt < fastest) fastest = dt;
        }
        best = 3.0 * (double)floats * sizeof(float) / fastest / 1e9;
    }
    if (x) bi->release(be->ctx, x);
    if (y) bi->release(be->ctx, y);
    return best;
}

void pnn_floor_cpu_model(char *buf, size_t cap) {
    snprintf(buf, cap, "unknown");
    FILE *f = fopen("/proc/cpuinfo", "r");
    char line[512];
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "model name", 10) && strchr(line, ':')) {
            snprintf(buf, cap, "%s", strchr(line, ':') + 2);
            buf[strcspn(buf, "\n")] = 0;
            break;
        }
    if (f) fclose(f);
}
