/* sim:scatter — programmable linear scattering with intensity detection (PHYSICS.md, "scatter"):
 * y = |W2 diag(exp(i theta)) W1 x|^2 through fixed complex Gaussian media drawn from the device
 * seed, plus what a lab instrument adds and the twin never sees: hidden errors of both media
 * (relative w_error), a phase response theta + gamma sin theta of the modulator with a hidden
 * gamma drawn in [0.5, 1.5) x gamma, camera read noise (absolute, drawn fresh on every call)
 * and a hard clip at the camera's full well. `mismatch` scales the hidden errors and gamma
 * (0 = the ideal medium); noise and the full well are the camera's, known to a lab.
 * This file also holds what the twin shares with the device (scatter.h): the settings, the
 * nominal medium, and the two forms of the map. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "kernels/systems/scatter/scatter_ops.h"
#include "hwbridge/systems/scatter.h"
#include "pnn/rng.h"

typedef struct scatter_sim {
    const pnn_scatter_ops *ops; /* the backend's scattering kernels */
    pnn_scatter_settings set;
    uint64_t seed;
    float gamma;     /* the modulator's hidden gamma */
    float full_well; /* INFINITY when none */
    float *b1, *b2;  /* the device's media, hidden errors included */
    float *w;        /* diag(phi) b2 of the current call */
    float *t;        /* b1 w of the current call (the transfer form) */
    float *u, *z, *noise;
    int64_t u_cap, z_cap, noise_cap; /* the rows each holds */
} scatter_sim;

pnn_status pnn_scatter_read_settings(pnn_uri *u, pnn_scatter_settings *s) {
    PNN_TRY(pnn_uri_int(u, "x_dim", 64, 1, PNN_SCATTER_MAX_DIM, &s->x_dim));
    PNN_TRY(pnn_uri_int(u, "modes", 256, 1, PNN_SCATTER_MAX_MODES, &s->modes));
    PNN_TRY(pnn_uri_int(u, "y_dim", 16, 1, PNN_SCATTER_MAX_DIM, &s->y_dim));
    PNN_TRY(pnn_uri_double(u, "w_error", 0.05, 0, 10, &s->w_error));
    PNN_TRY(pnn_uri_double(u, "gamma", 0.1, 0, 10, &s->gamma));
    PNN_TRY(pnn_uri_double(u, "mismatch", 1.0, 0, 100, &s->mismatch));
    PNN_TRY(pnn_uri_double(u, "noise", 0.01, 0, 100, &s->noise));
    PNN_TRY(pnn_uri_double(u, "full_well", 4.0, 0, 1e30, &s->full_well));
    PNN_TRY(pnn_uri_int(u, "seed", 0, 0, INT64_MAX, &s->seed));
    if (s->x_dim * s->modes > PNN_SCATTER_MAX_MATRIX || s->modes * s->y_dim > PNN_SCATTER_MAX_MATRIX)
        return PNN_ERROR(PNN_ERR_INVALID, "scatter: x_dim x modes = %lld and modes x y_dim = %lld; each scattering "
                         "matrix holds at most %lld entries: use fewer modes", (long long)(s->x_dim * s->modes),
                         (long long)(s->modes * s->y_dim), (long long)PNN_SCATTER_MAX_MATRIX);
    return PNN_OK;
}

/* n complex Gaussian numbers of E|c|^2 = var from (seed, stream), times scale, added to dst
 * (host) */
static void add_gaussian(uint64_t seed, const char *stream, int64_t n, double var, double scale, float *tmp,
                         float *dst) {
    pnn_rng_normal(seed, pnn_rng_stream(stream, 0), 0, 2 * n, tmp);
    float sd = (float)(scale * sqrt(var / 2.0));
    for (int64_t i = 0; i < 2 * n; i++) dst[i] += sd * tmp[i];
}

pnn_status pnn_scatter_draw_media(const pnn_backend *be, const pnn_scatter_settings *s, double error, float *b1,
                                  float *b2) {
    int64_t n1 = s->x_dim * s->modes, n2 = s->modes * s->y_dim, big = n1 > n2 ? n1 : n2;
    float *host = calloc((size_t)(2 * big), sizeof(float)), *tmp = malloc((size_t)(2 * big) * sizeof(float));
    if (!host || !tmp) {
        free(host), free(tmp);
        return PNN_ERROR(PNN_ERR_NOMEM, "scatter: out of host memory drawing a %lld x %lld medium",
                         (long long)s->x_dim, (long long)s->modes);
    }
    uint64_t seed = (uint64_t)s->seed;
    add_gaussian(seed, "sim.scatter.w1", n1, 1.0 / (double)s->x_dim, 1.0, tmp, host);
    if (error > 0) add_gaussian(seed, "sim.scatter.w1_error", n1, 1.0 / (double)s->x_dim, error, tmp, host);
    be->iface->from_host(be->ctx, b1, host, (size_t)(2 * n1) * sizeof(float));
    for (int64_t i = 0; i < 2 * n2; i++) host[i] = 0.0f;
    add_gaussian(seed, "sim.scatter.w2", n2, 1.0 / (double)s->modes, 1.0, tmp, host);
    if (error > 0) add_gaussian(seed, "sim.scatter.w2_error", n2, 1.0 / (double)s->modes, error, tmp, host);
    be->iface->from_host(be->ctx, b2, host, (size_t)(2 * n2) * sizeof(float));
    free(host), free(tmp);
    return PNN_OK;
}

static volatile int g_regime; /* pnn_scatter_set_regime */

void pnn_scatter_set_regime(int regime) { g_regime = regime; }

int pnn_scatter_use_transfer(const pnn_scatter_settings *s, int64_t rows) {
    if (g_regime) return g_regime == 2;
    return (double)rows * (double)(s->x_dim + 2 * s->y_dim) >= 2.0 * (double)s->x_dim * (double)s->y_dim;
}

/* x is real, so u = x b1 is one real GEMM on b1's interleaved floats (x_dim x 2 modes): half the
 * work of a complex GEMM with a zero imaginary part. */
void pnn_scatter_fields(const pnn_backend *be, const pnn_scatter_settings *s, int64_t rows, const float *x,
                        const float *b1, const float *w, float *u, float *z) {
    static const float one[2] = {1.0f, 0.0f}, zero[2] = {0.0f, 0.0f};
    int64_t d = s->x_dim, m = s->modes, k = s->y_dim;
    be->iface->gemm(be->ctx, false, false, rows, 2 * m, d, 1.0f, x, d, b1, 2 * m, 0.0f, u, 2 * m);
    be->iface->cgemm(be->ctx, 'N', 'N', rows, k, m, one, u, m, w, k, zero, z, k);
}

void pnn_scatter_transfer(const pnn_backend *be, const pnn_scatter_settings *s, const float *b1, const float *w,
                          float *t) {
    static const float one[2] = {1.0f, 0.0f}, zero[2] = {0.0f, 0.0f};
    int64_t d = s->x_dim, m = s->modes, k = s->y_dim;
    be->iface->cgemm(be->ctx, 'N', 'N', d, k, m, one, b1, m, w, k, zero, t, k);
}

/* as u = x b1: one real GEMM on t's interleaved floats */
void pnn_scatter_through(const pnn_backend *be, const pnn_scatter_settings *s, int64_t rows, const float *x,
                         const float *t, float *z) {
    int64_t d = s->x_dim, k = s->y_dim;
    be->iface->gemm(be->ctx, false, false, rows, 2 * k, d, 1.0f, x, d, t, 2 * k, 0.0f, z, 2 * k);
}

static void sim_release(const pnn_backend *be, scatter_sim *s) {
    float *bufs[] = {s->b1, s->b2, s->w, s->t, s->u, s->z, s->noise};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        if (bufs[i]) be->iface->release(be->ctx, bufs[i]);
}

static void sim_close(pnn_device *dev) {
    scatter_sim *s = dev->impl;
    sim_release(dev->be, s);
    free(s);
    free(dev);
}

pnn_status pnn_scatter_grow(const pnn_backend *be, float **buf, int64_t *cap, int64_t rows, int64_t per_row) {
    if (rows <= *cap) return PNN_OK;
    /* refuse what no memory holds before multiplying it out */
    if ((double)rows * (double)per_row * sizeof(float) > 0x1p50)
        return PNN_ERROR(PNN_ERR_NOMEM, "scatter: a batch of %lld rows would need %.3g GiB of fields; use smaller "
                         "(micro-)batches", (long long)rows, (double)rows * (double)per_row * sizeof(float) / 0x1p30);
    if (*buf) be->iface->release(be->ctx, *buf);
    *buf = be->iface->alloc(be->ctx, (size_t)(rows * per_row) * sizeof(float));
    *cap = *buf ? rows : 0;
    if (!*buf)
        return PNN_ERROR(PNN_ERR_NOMEM, "scatter: out of memory for a batch of %lld rows (%lld floats each)",
                         (long long)rows, (long long)per_row);
    return PNN_OK;
}

static pnn_status sim_forward(pnn_device *dev, const pnn_tensor *x, const float *theta, pnn_tensor *y) {
    scatter_sim *s = dev->impl;
    const pnn_backend *be = dev->be;
    int64_t rows = pnn_tensor_rows(x), n = rows * s->set.y_dim;
    int transfer = pnn_scatter_use_transfer(&s->set, rows);
    float sigma = (float)s->set.noise;
    PNN_TRY(pnn_scatter_grow(be, &s->z, &s->z_cap, rows, 2 * s->set.y_dim));
    if (!transfer) PNN_TRY(pnn_scatter_grow(be, &s->u, &s->u_cap, rows, 2 * s->set.modes));
    if (sigma > 0) PNN_TRY(pnn_scatter_grow(be, &s->noise, &s->noise_cap, rows, s->set.y_dim));
    s->ops->modulate(be->ctx, s->set.modes, s->set.y_dim, s->gamma, theta, s->b2, s->w);
    if (transfer) {
        pnn_scatter_transfer(be, &s->set, s->b1, s->w, s->t);
        pnn_scatter_through(be, &s->set, rows, x->data, s->t, s->z);
    } else {
        pnn_scatter_fields(be, &s->set, rows, x->data, s->b1, s->w, s->u, s->z);
    }
    if (sigma > 0)
        be->iface->rng_normal(be->ctx, s->seed, pnn_rng_stream("sim.scatter.noise", dev->calls), 0, n, s->noise);
    s->ops->detect(be->ctx, n, s->z, sigma > 0 ? s->noise : NULL, sigma, s->full_well, y->data);
    return PNN_OK;
}

static const pnn_device_i sim_iface = {.forward = sim_forward, .close = sim_close};

static pnn_status sim_open(pnn_uri *u, const char *uri, const pnn_backend *be, pnn_device **out) {
    pnn_scatter_settings set;
    PNN_TRY(pnn_scatter_read_settings(u, &set));
    PNN_TRY(pnn_uri_check_all_used(u, PNN_SCATTER_KEYS ", " PNN_SIM_KEYS));

    pnn_device *dev = calloc(1, sizeof *dev);
    scatter_sim *s = calloc(1, sizeof *s);
    if (!dev || !s) {
        free(dev);
        free(s);
        return PNN_ERROR(PNN_ERR_NOMEM, "out of memory opening %s", uri);
    }
    dev->iface = &sim_iface;
    dev->be = be;
    dev->impl = s;
    s->ops = pnn_scatter_ops_for(be);
    s->set = set;
    s->seed = (uint64_t)set.seed;
    float draw;
    pnn_rng_uniform(s->seed, pnn_rng_stream("sim.scatter.gamma", 0), 0, 1, &draw);
    s->gamma = (float)(set.gamma * set.mismatch * (0.5 + (double)draw));
    s->full_well = set.full_well > 0 ? (float)set.full_well : INFINITY;

    pnn_device_info *info = &dev->info;
    snprintf(info->system, sizeof info->system, "scatter");
    snprintf(info->uri, sizeof info->uri, "%s", uri);
    info->x_dim = set.x_dim;
    info->y_dim = set.y_dim;
    info->theta_dim = set.modes;
    /* real amplitudes; phases are taken modulo 2 pi, and a float keeps them to 1.2e-4 rad up to
     * |theta| = 1024 */
    info->x_range[0] = -1.0f;
    info->x_range[1] = 1.0f;
    info->theta_range[0] = -1024.0f;
    info->theta_range[1] = 1024.0f;
    info->n_theta_parts = 1;
    info->theta_parts[0] = (pnn_theta_part){"phase", 1, {set.modes, 0}};

    const pnn_backend_i *bi = be->iface;
    s->b1 = bi->alloc(be->ctx, (size_t)(2 * set.x_dim * set.modes) * sizeof(float));
    s->b2 = bi->alloc(be->ctx, (size_t)(2 * set.modes * set.y_dim) * sizeof(float));
    s->w = bi->alloc(be->ctx, (size_t)(2 * set.modes * set.y_dim) * sizeof(float));
    s->t = bi->alloc(be->ctx, (size_t)(2 * set.x_dim * set.y_dim) * sizeof(float));
    pnn_status st = PNN_OK;
    if (!s->b1 || !s->b2 || !s->w || !s->t)
        st = PNN_ERROR(PNN_ERR_NOMEM, "out of memory opening %s (%lld modes)", uri, (long long)set.modes);
    else
        st = pnn_scatter_draw_media(be, &set, set.w_error * set.mismatch, s->b1, s->b2);
    if (st != PNN_OK) {
        sim_close(dev);
        return st;
    }
    *out = dev;
    return PNN_OK;
}

/* Counted from the two forms (scatter.h; a complex multiply-add is 8): W = diag(phi) B2 is
 * rebuilt for new controls (6 M K); the fields form computes u = x B1 (real x complex, 4 B D M),
 * z = u W (8 B M K), and back gu = gz W^H (8 B M K), dx = Re(gu B1^H) (4 B D M), dtheta (3 B M);
 * the transfer form T = B1 W (8 D M K), z = x T (4 B D K), and back dx = Re(gz T^H) and
 * G = x^T gz (4 B D K each), S = B1^H G (8 D M K), dtheta (6 M K). |z|^2: 3 B K. */
static pnn_status scatter_flops(pnn_uri *u, int64_t rows, double out[3]) {
    pnn_scatter_settings s;
    PNN_TRY(pnn_scatter_read_settings(u, &s));
    double b = (double)rows, d = (double)s.x_dim, m = (double)s.modes, k = (double)s.y_dim;
    if (pnn_scatter_use_transfer(&s, rows)) {
        out[0] = 6 * m * k + 8 * d * m * k + 4 * b * d * k + 3 * b * k;
        out[1] = 8 * b * d * k + 8 * d * m * k + 6 * m * k;
    } else {
        out[0] = 6 * m * k + 4 * b * d * m + 8 * b * m * k + 3 * b * k;
        out[1] = 8 * b * m * k + 4 * b * d * m + 3 * b * m;
    }
    out[2] = out[0];
    return PNN_OK;
}

const pnn_system pnn_system_scatter = {
    .name = "scatter",
    .summary = "linear scattering, intensity detection (waves): theta = phase (modes), y = |W2 diag(e^i theta) W1 x|^2",
    .keys = PNN_SCATTER_KEYS,
    .open_sim = sim_open,
    .analytic_twin = pnn_scatter_twin_create,
    .flops = scatter_flops,
};
