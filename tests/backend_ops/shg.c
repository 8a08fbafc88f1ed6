/* The shg system's ops, CPU against CUDA (tests/test_shg.c checks the CPU kernels against double
 * references): the twin's forward (taped and not) and VJP in both forms, the device map with
 * phase, phase matching and weighted bins, and the detector. */
#include <math.h>
#include <stdlib.h>

#include "kernels/systems/shg/shg.h"
#include "kernels/systems/shg/shg_ops.h"
#include "tests/backend_ops/harness.h"

/* K, x_dim, y_dim, batch, form (0 direct, 1 FFT), layout: odd and even K, an odd batch for the
 * FFT's row pairs, K past the direct kernel's shared memory (8192 floats) */
static const int64_t shg_shapes[][6] = {{5, 2, 9, 3, 0, 0},      {5, 2, 9, 3, 1, 1},      {64, 32, 16, 37, 0, 1},
                                        {64, 32, 16, 37, 1, 0},  {301, 100, 40, 8, 1, 1}, {1024, 512, 64, 9, 1, 0},
                                        {1024, 512, 64, 4, 0, 1}, {9000, 4000, 100, 3, 0, 0}};

static pnn_shg_params shg_case_params(int v) {
    const int64_t *s = shg_shapes[v];
    return (pnn_shg_params){.batch = s[3], .k = s[0], .x_dim = s[1], .y_dim = s[2], .form = (pnn_shg_form)s[4],
                            .fft_len = pnn_shg_fft_len(s[0])};
}

/* the layout as backend int32 */
static int32_t *shg_case_layout(run_ctx *r, const pnn_shg_params *p, int layout) {
    int32_t *host = malloc((size_t)p->k * sizeof *host), *d = (int32_t *)dev_buffer(r, p->k);
    for (int64_t i = 0; i < p->k; i++) host[i] = (int32_t)pnn_shg_bin_of(i, p->k, p->x_dim, layout);
    r->ops->from_host(r->ctx, d, host, (size_t)p->k * sizeof *host);
    free(host);
    return d;
}

static void case_shg_twin(run_ctx *r, int v) {
    pnn_shg_params p = shg_case_params(v);
    const pnn_shg_ops *shg = pnn_shg_ops_for(r->be);
    int64_t nx = p.batch * p.x_dim, nt = p.k - p.x_dim, ny = p.batch * p.y_dim;
    int32_t *bin_of = shg_case_layout(r, &p, (int)shg_shapes[v][5]);
    float *x = dev_random(r, nx, -0.1f, 1.1f, 150), *theta = dev_random(r, nt, -0.1f, 1.1f, 151);
    float *y = dev_buffer(r, ny), *y2 = dev_buffer(r, ny), *tape = dev_buffer(r, (int64_t)shg->tape_floats(&p));
    float *work = dev_filled(r, (int64_t)shg->work_floats(&p), NAN);
    shg->forward(r->ctx, &p, bin_of, x, theta, y, tape, work);
    shg->forward(r->ctx, &p, bin_of, x, theta, y2, NULL, work);
    float *dy = dev_random(r, ny, -1, 1, 152), *gain = dev_random(r, ny, 0.9f, 1.1f, 153);
    float *dx = dev_filled(r, nx, NAN), *dtheta = dev_random(r, nt, -1, 1, 154);
    shg->vjp(r->ctx, &p, bin_of, tape, gain, dy, dx, dtheta, work);
    output(r, "y", y, ny);
    output(r, "y_without_tape", y2, ny);
    output(r, "tape_u", tape, p.batch * p.k); /* u and E; the FFT spectra after them differ by rounding */
    output(r, "tape_E", tape + pnn_shg_tape_e(&p), p.batch * (2 * p.k - 1));
    output(r, "dx", dx, nx);
    output(r, "dtheta", dtheta, nt);
}

/* the device's map: random phase and phase matching, bins of random weights that overlap their
 * neighbours (as a blur's do), then the detector with noise, offsets and its factors */
static void case_shg_device(run_ctx *r, int v) {
    pnn_shg_params p = shg_case_params(v);
    const pnn_shg_ops *shg = pnn_shg_ops_for(r->be);
    int64_t m = 2 * p.k - 1, yd = p.y_dim, ny = p.batch * yd;
    int32_t *bin_of = shg_case_layout(r, &p, (int)shg_shapes[v][5]);
    int32_t *index = malloc((size_t)(3 * yd) * sizeof *index), *index_d = (int32_t *)dev_buffer(r, 3 * yd);
    int64_t n_weights = 0;
    for (int64_t j = 0; j < yd; j++) {
        int64_t lo = pnn_shg_bin_start(j, m, yd) - 3, hi = pnn_shg_bin_start(j + 1, m, yd) + 3;
        lo = lo < 0 ? 0 : lo, hi = hi > m ? m : hi;
        index[j] = (int32_t)lo, index[yd + j] = (int32_t)(hi - lo), index[2 * yd + j] = (int32_t)n_weights;
        n_weights += hi - lo;
    }
    r->ops->from_host(r->ctx, index_d, index, (size_t)(3 * yd) * sizeof *index);
    free(index);
    pnn_shg_bins bins = {index_d, index_d + yd, index_d + 2 * yd, dev_random(r, n_weights, 0, 1e-3f, 160)};
    float *phase = dev_random(r, 2 * p.k, -1, 1, 161), *pm = dev_random(r, m, 0.2f, 1, 162);
    float *x = dev_random(r, p.batch * p.x_dim, -0.1f, 1.1f, 163), *theta = dev_random(r, p.k - p.x_dim, 0, 1, 164);
    float *y = dev_buffer(r, ny), *work = dev_filled(r, (int64_t)shg->device_work_floats(&p), NAN);
    shg->device_forward(r->ctx, &p, bin_of, x, theta, phase, pm, &bins, y, work);
    output(r, "y_device", y, ny);
    float *normals = dev_random(r, ny, -2, 2, 165), *offset = dev_random(r, yd, 0, 0.1f, 166), *g = dev_buffer(r, ny);
    shg->detect(r->ctx, ny, yd, normals, 0.01f, offset, y, g);
    output(r, "y_detected", y, ny);
    output(r, "gain", g, ny);
}

PNN_BACKEND_OPS_CASES(shg,
    {"shg twin K=5 direct", case_shg_twin, 0, 1e-5}, {"shg twin K=5 fft", case_shg_twin, 1, 1e-5},
    {"shg twin K=64 direct", case_shg_twin, 2, 1e-5}, {"shg twin K=64 fft", case_shg_twin, 3, 1e-5},
    {"shg twin K=301 fft", case_shg_twin, 4, 1e-5}, {"shg twin K=1024 fft", case_shg_twin, 5, 1e-5},
    {"shg twin K=1024 direct", case_shg_twin, 6, 1e-5}, {"shg twin K=9000 direct", case_shg_twin, 7, 1e-5},
    {"shg device K=5 direct", case_shg_device, 0, 1e-5}, {"shg device K=5 fft", case_shg_device, 1, 1e-5},
    {"shg device K=64 fft", case_shg_device, 3, 1e-5}, {"shg device K=301 fft", case_shg_device, 4, 1e-5},
    {"shg device K=1024 direct", case_shg_device, 6, 1e-5})
