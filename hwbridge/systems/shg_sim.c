/* sim:shg — the simulated optical system of a shaped broadband pulse, frequency doubled
 * (PHYSICS.md, "shg"): the ideal model (shg.h; the shaper clamps u to [0, 1]) plus what a lab
 * instrument adds, which the twin never sees. Drawn once from the device seed, all scaled by `mismatch` (0 = the ideal model):
 * a residual quadratic spectral phase phi_k = beta (k - K/2)^2 (|beta| (K/2)^2 = chirp x
 * U(0.75, 1.25) radians at the spectrum's edge, random sign), a finite phase-matching bandwidth
 * multiplying E(m) by sinc(x_m), x_m = pm x U(0.75, 1.25) (m - (K-1)) / (K-1), a Gaussian blur of
 * the spectrometer over the output points (std blur x U(0.75, 1.25) output bins) and a dark offset
 * per bin (dark x U(0.5, 1.5), in output units). Fresh on every call: relative detector noise
 * y (1 + noise n), n ~ N(0, 1) from (seed, call index). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hwbridge/systems/shg.h"
#include "kernels/systems/shg/shg.h"
#include "pnn/rng.h"

#define SHG_KEYS                                                                                          \
    "k=64, x_dim=k/2, y_dim=16, layout=concat, form=auto, mismatch=1, noise=0.01, dark=0.02, chirp=1, pm=1, " \
    "blur=0.5, seed=0"

static const char *const shg_layouts[] = {"concat", "interleave", NULL};
static const char *const shg_forms[] = {"direct", "fft", "auto", NULL};

pnn_status pnn_shg_read_settings(pnn_uri *u, pnn_shg_settings *s) {
    int form;
    PNN_TRY(pnn_uri_int(u, "k", 64, 2, PNN_SHG_MAX_K, &s->k));
    PNN_TRY(pnn_uri_int(u, "x_dim", s->k / 2, 1, s->k - 1, &s->x_dim));
    PNN_TRY(pnn_uri_int(u, "y_dim", 2 * s->k - 1 < 16 ? 2 * s->k - 1 : 16, 1, 2 * s->k - 1, &s->y_dim));
    PNN_TRY(pnn_uri_choice(u, "layout", shg_layouts, 0, &s->layout));
    PNN_TRY(pnn_uri_choice(u, "form", shg_forms, 2, &form));
    PNN_TRY(pnn_uri_double(u, "noise", 0.01, 0, 10, &s->noise));
    PNN_TRY(pnn_uri_int(u, "seed", 0, 0, INT64_MAX, &s->seed));
    s->form = form == 2 ? (s->k < PNN_SHG_FFT_MIN_K ? PNN_SHG_DIRECT : PNN_SHG_FFT) : (pnn_shg_form)form;
    return PNN_OK;
}

pnn_shg_params pnn_shg_params_of(const pnn_shg_settings *s, int64_t rows) {
    return (pnn_shg_params){.batch = rows, .k = s->k, .x_dim = s->x_dim, .y_dim = s->y_dim, .form = s->form,
                            .fft_len = pnn_shg_fft_len(s->k)};
}

/* Backend memory holding bytes from host (NULL when out of memory). */
static void *shg_upload(const pnn_backend *be, const void *host, size_t bytes) {
    void *d = be->iface->alloc(be->ctx, bytes ? bytes : 1);
    if (d && bytes) be->iface->from_host(be->ctx, d, host, bytes);
    return d;
}

pnn_status pnn_shg_upload_layout(const pnn_backend *be, const pnn_shg_settings *s, int32_t **bin_of) {
    int32_t *host = malloc((size_t)s->k * sizeof *host);
    *bin_of = NULL;
    if (host) {
        for (int64_t i = 0; i < s->k; i++) host[i] = (int32_t)pnn_shg_bin_of(i, s->k, s->x_dim, s->layout);
        *bin_of = shg_upload(be, host, (size_t)s->k * sizeof *host);
    }
    free(host);
    if (!*bin_of) return PNN_ERROR(PNN_ERR_NOMEM, "shg: out of memory for the layout of %lld bins", (long long)s->k);
    return PNN_OK;
}

typedef struct shg_sim {
    const pnn_shg_ops *ops; /* the backend's shg kernels */
    pnn_shg_settings set;
    float noise;
    int32_t *bin_of;
    float *phase; /* [2K]: cos, sin of phi_k */
    float *pm;    /* [M]: the phase-matching factors */
    int32_t *bin_index; /* [3 y_dim]: start, count, offset of each output bin */
    float *weight;      /* blur, binning and normalisation */
    pnn_shg_bins bins;  /* views into bin_index and weight */
    float *dark;        /* [y_dim], NULL without an offset */
    float *normals;     /* [rows_cap, y_dim] */
    float *work;
    int64_t rows_cap;
} shg_sim;

static void shg_close(pnn_device *dev) {
    shg_sim *s = dev->impl;
    if (s) {
        void *bufs[] = {s->bin_of, s->phase, s->pm, s->bin_index, s->weight, s->dark, s->normals, s->work};
        for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
            if (bufs[i]) dev->be->iface->release(dev->be->ctx, bufs[i]);
        free(s);
    }
    free(dev);
}

/* Grows the per-call buffers to hold `rows` rows. */
static pnn_status shg_reserve(pnn_device *dev, int64_t rows) {
    shg_sim *s = dev->impl;
    if (rows <= s->rows_cap) return PNN_OK;
    const pnn_backend_i *be = dev->be->iface;
    if (s->normals) be->release(dev->be->ctx, s->normals);
    if (s->work) be->release(dev->be->ctx, s->work);
    pnn_shg_params p = pnn_shg_params_of(&s->set, rows);
    s->normals = be->alloc(dev->be->ctx, (size_t)(rows * s->set.y_dim) * sizeof(float));
    s->work = be->alloc(dev->be->ctx, s->ops->device_work_floats(&p) * sizeof(float) + 64);
    if (!s->normals || !s->work) {
        s->rows_cap = 0;
        return PNN_ERROR(PNN_ERR_NOMEM, "sim:shg: out of memory for a batch of %lld", (long long)rows);
    }
    s->rows_cap = rows;
    return PNN_OK;
}

static pnn_status shg_forward(pnn_device *dev, const pnn_tensor *x, const float *theta, pnn_tensor *y) {
    shg_sim *s = dev->impl;
    const pnn_backend *be = dev->be;
    int64_t rows = pnn_tensor_rows(x), n = rows * s->set.y_dim;
    PNN_TRY(shg_reserve(dev, rows));
    pnn_shg_params p = pnn_shg_params_of(&s->set, rows);
    s->ops->device_forward(be->ctx, &p, s->bin_of, x->data, theta, s->phase, s->pm, &s->bins, y->data, s->work);
    if (s->noise > 0)
        be->iface->rng_normal(be->ctx, (uint64_t)s->set.seed, pnn_rng_stream("sim.shg.noise", dev->calls), 0, n,
                              s->normals);
    if (s->noise > 0 || s->dark)
        s->ops->detect(be->ctx, n, s->set.y_dim, s->noise > 0 ? s->normals : NULL, s->noise, s->dark, y->data, NULL);
    return PNN_OK;
}

static const pnn_device_i shg_iface = {.forward = shg_forward, .close = shg_close};

/* The spectrometer: output bin j integrates the blurred intensity over its points, in units of
 * the open pulse's mean bin. With a Gaussian blur of std sigma points (truncated at 4 sigma and
 * normalised over the taps; light blurred past either end of the M points is lost), the weight of
 * point i in bin j is c times the taps' mass that carries i into the bin; without blur it is c on
 * the bin's own points. r is the blur's reach in points (shg_blur_reach). Returns the weights'
 * count, or -1 when out of memory. */
static int64_t shg_build_bins(const pnn_shg_settings *set, double sigma, int64_t r, int32_t *index, float **weight) {
    int64_t m = 2 * set->k - 1, yd = set->y_dim;
    double kk = (double)set->k, c = (double)yd * 3.0 / (kk * (2.0 * kk * kk + 1.0));
    double *cum = malloc((size_t)(2 * r + 2) * sizeof *cum); /* cum[d + r + 1] = mass of taps -r..d */
    *weight = malloc((size_t)(m + 2 * r * yd) * sizeof **weight);
    if (!cum || !*weight) {
        free(cum);
        free(*weight);
        return -1;
    }
    cum[0] = 0;
    for (int64_t d = -r; d <= r; d++)
        cum[d + r + 1] = cum[d + r] + (r ? exp(-0.5 * (double)(d * d) / (sigma * sigma)) : 1.0);
    double total = cum[2 * r + 1];
    int64_t used = 0;
    for (int64_t j = 0; j < yd; j++) {
        int64_t lo = pnn_shg_bin_start(j, m, yd), hi = pnn_shg_bin_start(j + 1, m, yd);
        int64_t first = lo - r > 0 ? lo - r : 0, last = hi + r < m ? hi + r : m;
        index[j] = (int32_t)first;
        index[yd + j] = (int32_t)(last - first);
        index[2 * yd + j] = (int32_t)used;
        for (int64_t i = first; i < last; i++) {
            /* taps d = i' - i that land in [lo, hi) */
            int64_t d0 = lo - i > -r ? lo - i : -r, d1 = hi - 1 - i < r ? hi - 1 - i : r;
            double mass = d1 >= d0 ? cum[d1 + r + 1] - cum[d0 + r] : 0.0;
            (*weight)[used++] = (float)(c * mass / total);
        }
    }
    free(cum);
    return used;
}

/* How far (in points) the blur of std sigma reaches: 4 sigma, at most the whole spectrum. */
static int64_t shg_blur_reach(double sigma, int64_t m) {
    if (sigma <= 1e-6) return 0;
    return 4.0 * sigma < (double)m ? (int64_t)ceil(4.0 * sigma) : m;
}

/* Draws the hidden physics from the seed and puts it in backend memory. */
static pnn_status shg_draw_hidden(const pnn_backend *be, shg_sim *s, double mismatch, double dark, double chirp,
                                  double pm_edge, double blur) {
    const pnn_shg_settings *set = &s->set;
    int64_t k = set->k, m = 2 * k - 1, yd = set->y_dim;
    float *h = malloc((size_t)(4 + yd) * sizeof *h), *phase = malloc((size_t)(2 * k) * sizeof *phase);
    float *pm = malloc((size_t)m * sizeof *pm), *weight = NULL;
    int32_t *index = malloc((size_t)(3 * yd) * sizeof *index);
    pnn_status st = PNN_ERR_NOMEM; /* until everything is in place */
    if (!h || !phase || !pm || !index) goto done;
    pnn_rng_uniform((uint64_t)set->seed, pnn_rng_stream("sim.shg.hidden", 0), 0, 4 + yd, h);
    double half = 0.5 * (double)k;
    double beta = (h[1] < 0.5f ? -1 : 1) * chirp * mismatch * (0.75 + 0.5 * h[0]) / (half * half);
    for (int64_t i = 0; i < k; i++) {
        double phi = beta * ((double)i - half) * ((double)i - half);
        phase[2 * i] = (float)cos(phi);
        phase[2 * i + 1] = (float)sin(phi);
    }
    double edge = pm_edge * mismatch * (0.75 + 0.5 * h[2]);
    for (int64_t i = 0; i < m; i++) {
        double arg = edge * (double)(i - (k - 1)) / (double)(k - 1);
        pm[i] = (float)(arg == 0 ? 1.0 : sin(arg) / arg);
    }
    double sigma = blur * mismatch * (0.75 + 0.5 * h[3]) * (double)m / (double)yd;
    int64_t reach = shg_blur_reach(sigma, m);
    if ((double)m + 2.0 * (double)reach * (double)yd > (double)(1 << 26)) {
        st = PNN_ERROR(PNN_ERR_INVALID, "sim:shg: a blur of %.3g points over %lld output bins of K = %lld needs a table "
                       "of %.3g weights (at most 2^26); lower blur or mismatch, or use fewer output bins",
                       sigma, (long long)yd, (long long)k, (double)m + 2.0 * (double)reach * (double)yd);
        goto done;
    }
    int64_t n_weights = shg_build_bins(set, sigma, reach, index, &weight);
    if (n_weights < 0) goto done;
    s->bin_index = shg_upload(be, index, (size_t)(3 * yd) * sizeof *index);
    s->weight = shg_upload(be, weight, (size_t)n_weights * sizeof *weight);
    s->phase = shg_upload(be, phase, (size_t)(2 * k) * sizeof *phase);
    s->pm = shg_upload(be, pm, (size_t)m * sizeof *pm);
    if (!s->bin_index || !s->weight || !s->phase || !s->pm) goto done;
    s->bins = (pnn_shg_bins){s->bin_index, s->bin_index + yd, s->bin_index + 2 * yd, s->weight};
    if (dark * mismatch > 0) {
        for (int64_t j = 0; j < yd; j++) h[4 + j] = (float)(dark * mismatch * (0.5 + h[4 + j]));
        if (!(s->dark = shg_upload(be, h + 4, (size_t)yd * sizeof *h))) goto done;
    }
    st = PNN_OK;
done:
    free(h), free(phase), free(pm), free(weight), free(index);
    if (st == PNN_ERR_NOMEM)
        return PNN_ERROR(PNN_ERR_NOMEM, "sim:shg: out of memory for the hidden physics of K = %lld", (long long)k);
    return st;
}

static pnn_status shg_open(pnn_uri *u, const char *uri, const pnn_backend *be, pnn_device **out) {
    pnn_shg_settings set;
    double mismatch, dark, chirp, pm_edge, blur;
    PNN_TRY(pnn_shg_read_settings(u, &set));
    PNN_TRY(pnn_uri_double(u, "mismatch", 1.0, 0, 100, &mismatch));
    PNN_TRY(pnn_uri_double(u, "dark", 0.02, 0, 100, &dark));
    PNN_TRY(pnn_uri_double(u, "chirp", 1.0, 0, 100, &chirp));
    PNN_TRY(pnn_uri_double(u, "pm", 1.0, 0, 100, &pm_edge));
    PNN_TRY(pnn_uri_double(u, "blur", 0.5, 0, 10, &blur));
    PNN_TRY(pnn_uri_check_all_used(u, SHG_KEYS ", " PNN_SIM_KEYS));

    pnn_device *dev = calloc(1, sizeof *dev);
    shg_sim *s = calloc(1, sizeof *s);
    if (!dev || !s) {
        free(dev);
        free(s);
        return PNN_ERROR(PNN_ERR_NOMEM, "out of memory opening %s", uri);
    }
    dev->iface = &shg_iface;
    dev->be = be;
    dev->impl = s;
    s->ops = pnn_shg_ops_for(be);
    s->set = set;
    s->noise = (float)set.noise;

    pnn_device_info *info = &dev->info;
    snprintf(info->system, sizeof info->system, "shg");
    snprintf(info->uri, sizeof info->uri, "%s", uri);
    info->x_dim = set.x_dim;
    info->y_dim = set.y_dim;
    info->theta_dim = set.k - set.x_dim;
    /* a pulse shaper transmits between nothing and everything */
    info->x_range[0] = info->theta_range[0] = 0.0f;
    info->x_range[1] = info->theta_range[1] = 1.0f;
    info->n_theta_parts = 1;
    info->theta_parts[0] = (pnn_theta_part){"mask", 1, {info->theta_dim, 0}};

    pnn_status st = pnn_shg_upload_layout(be, &set, &s->bin_of);
    if (st == PNN_OK) st = shg_draw_hidden(be, s, mismatch, dark, chirp, pm_edge, blur);
    if (st != PNN_OK) {
        shg_close(dev);
        return pnn_error_prefix(st, "opening %s: ", uri);
    }
    *out = dev;
    return PNN_OK;
}

/* Counted from shg_cpu.c (a complex FFT of length L is 5 L log2 L): the twin's real
 * autoconvolution takes each pair once (K^2 per row), or, two rows packed in one complex
 * sequence, one transform and one inverse per pair (5 L log2 L + 3 L per row); its VJP's
 * correlations cost the same again. The device's field is complex (its spectral phase): 4 K^2
 * per row directly, or a transform and an inverse per row. Squares and bins: about 3 M per row
 * (M = 2 K - 1 points). */
static pnn_status shg_flops(pnn_uri *u, int64_t rows, double out[3]) {
    pnn_shg_settings s;
    PNN_TRY(pnn_shg_read_settings(u, &s));
    pnn_shg_params p = pnn_shg_params_of(&s, rows);
    double b = (double)rows, k = (double)p.k, m = 2 * k - 1, l = (double)p.fft_len, fft = 5 * l * log2(l);
    int direct = p.form == PNN_SHG_DIRECT;
    out[0] = b * ((direct ? k * k : fft + 3 * l) + 3 * m);
    out[1] = out[0];
    out[2] = b * ((direct ? 4 * k * k : 2 * fft + 6 * l) + 4 * m);
    return PNN_OK;
}

const pnn_system pnn_system_shg = {
    .name = "shg",
    .summary = "shaped broadband pulse, frequency doubled (optics): u = [x, mask] on K spectral bins, "
               "y = the doubled spectrum in y_dim bins",
    .keys = SHG_KEYS,
    .open_sim = shg_open,
    .analytic_twin = pnn_shg_twin_create,
    .flops = shg_flops,
};
