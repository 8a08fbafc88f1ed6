/* The scatter system's ops, CPU against CUDA (tests/test_scatter.c checks the CPU kernels against
 * double references): its op table (the phase modulation, the detection and their adjoints),
 * then its device and twin (forward, VJP) through the public API, at 301 and 4096 modes, in both
 * forms of the map (the fields of every row, the transfer matrix). */
#include <math.h>

#include "hwbridge/systems/scatter.h"
#include "kernels/systems/scatter/scatter_ops.h"
#include "tests/backend_ops/harness.h"

/* v: (modes, y_dim) small, or large enough for several CPU threads */
static void case_scatter_modulate(run_ctx *r, int v) {
    int64_t m = v ? 1030 : 7, k = v ? 37 : 3;
    float *theta = dev_random(r, m, -20, 20, 150), *b2 = dev_random(r, 2 * m * k, -1, 1, 151);
    float *w = dev_filled(r, 2 * m * k, NAN);
    pnn_scatter_ops_for(r->be)->modulate(r->ctx, m, k, 0.13f, theta, b2, w);
    output(r, "w", w, 2 * m * k);
}

/* v: (rows, modes) small, or over several row chunks of the CUDA reduction */
static void case_scatter_detect(run_ctx *r, int v) {
    int64_t rows = v ? 300 : 3, m = v ? 1030 : 7, n = rows * m;
    const pnn_scatter_ops *sc = pnn_scatter_ops_for(r->be);
    float *z = dev_random(r, 2 * n, -1, 1, 152), *noise = dev_random(r, n, -3, 3, 153);
    float *dy = dev_random(r, n, -1, 1, 154), *u = dev_random(r, 2 * n, -1, 1, 155);
    float *y = dev_filled(r, n, NAN), *y_bare = dev_filled(r, n, NAN), *gz = dev_filled(r, 2 * n, NAN);
    float *dtheta = dev_random(r, m, -1, 1, 156);
    sc->detect(r->ctx, n, z, noise, 0.05f, 1.0f, y);
    sc->detect(r->ctx, n, z, NULL, 0.0f, INFINITY, y_bare);
    sc->detect_adjoint(r->ctx, n, dy, z, gz);
    sc->modulate_adjoint(r->ctx, rows, m, gz, u, dtheta);
    sc->modulate_adjoint_medium(r->ctx, rows, m, gz, u, dtheta); /* gz, u read as rows modes x m outputs */
    output(r, "y", y, n);
    output(r, "y_bare", y_bare, n);
    output(r, "gz", gz, 2 * n);
    output(r, "dtheta", dtheta, m);
}

/* v & 1: the device and twin of a small system or of one of 4096 modes, with mismatch and noise;
 * v & 2: the fields form forced on both backends (else the transfer form, which these batches take) */
static void case_scatter_system(run_ctx *r, int v) {
    pnn_scatter_set_regime(v & 2 ? 1 : 0);
    const char *uri = v & 1 ? "sim:scatter?x_dim=128&modes=4096&y_dim=64&seed=3&noise=0.02&full_well=2"
                        : "sim:scatter?x_dim=13&modes=301&y_dim=11&seed=2&noise=0.02&full_well=1";
    int64_t rows = v & 1 ? 256 : 33;
    pnn_device *dev;
    pnn_twin *tw;
    ck_assert_msg(pnn_device_open(uri, r->be, &dev) == PNN_OK, "%s", pnn_last_error());
    ck_assert_msg(pnn_twin_create("analytic", dev, -1, &tw) == PNN_OK, "%s", pnn_last_error());
    int64_t d = dev->info.x_dim, m = dev->info.theta_dim, k = dev->info.y_dim;
    pnn_tensor x, y_dev, y_twin, dy, dx;
    int64_t sx[2] = {rows, d}, sy[2] = {rows, k};
    ck_assert_int_eq(pnn_tensor_view(&x, r->be, dev_random(r, rows * d, -1, 1, 160), 2, sx), PNN_OK);
    ck_assert_int_eq(pnn_tensor_view(&dy, r->be, dev_random(r, rows * k, -1, 1, 161), 2, sy), PNN_OK);
    ck_assert_int_eq(pnn_tensor_view(&y_dev, r->be, dev_filled(r, rows * k, NAN), 2, sy), PNN_OK);
    ck_assert_int_eq(pnn_tensor_view(&y_twin, r->be, dev_filled(r, rows * k, NAN), 2, sy), PNN_OK);
    ck_assert_int_eq(pnn_tensor_view(&dx, r->be, dev_filled(r, rows * d, NAN), 2, sx), PNN_OK);
    float *theta = dev_random(r, m, -3.14159265f, 3.14159265f, 162), *dtheta = dev_random(r, m, -1, 1, 163);
    ck_assert_msg(pnn_device_forward(dev, &x, theta, &y_dev) == PNN_OK, "%s", pnn_last_error());
    ck_assert_msg(tw->iface->forward(tw, &x, theta, &y_twin, 0, NULL) == PNN_OK, "%s", pnn_last_error());
    ck_assert_msg(tw->iface->vjp(tw, theta, &dy, &dx, dtheta, 0) == PNN_OK, "%s", pnn_last_error());
    output(r, "y_device", y_dev.data, rows * k);
    output(r, "y_twin_taped", y_twin.data, rows * k);
    output(r, "dx", dx.data, rows * d);
    output(r, "dtheta", dtheta, m);
    r->ops->sync(r->ctx);
    pnn_twin_free(tw);
    pnn_device_close(dev);
    pnn_scatter_set_regime(0);
}

PNN_BACKEND_OPS_CASES(scatter,
    {"scatter_modulate", case_scatter_modulate, 0, 1e-5}, {"scatter_modulate", case_scatter_modulate, 1, 1e-5},
    {"scatter_detect", case_scatter_detect, 0, 1e-5},     {"scatter_detect", case_scatter_detect, 1, 1e-5},
    {"scatter small", case_scatter_system, 0, 1e-4},      {"scatter modes=4096", case_scatter_system, 1, 1e-4},
    {"scatter small fields", case_scatter_system, 2, 1e-4}, {"scatter modes=4096 fields", case_scatter_system, 3, 1e-4})
