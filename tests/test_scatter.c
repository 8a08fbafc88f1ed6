/* The scattering system (PHYSICS.md, "scatter") against a plain double-precision reference
 * written here from the formula y = |W2 diag(exp(i theta_eff)) W1 x|^2: the CPU kernels on odd
 * shapes (some past the OpenMP thresholds), the device with its hidden errors, noise and full
 * well, the twin's VJP against central finite differences of the reference (dx and dtheta), the
 * twin equal to an ideal device, the physics' own equalities (a global phase changes nothing,
 * so the phase gradient sums to zero; y(c x) = c^2 y(x); E y = |x|^2 / x_dim), and a twin that
 * refuses dims of another system. The device and twin tests run in both forms of the map (the
 * fields of every row, or the transfer matrix: kernels/systems/scatter/scatter.h). */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hwbridge/systems/scatter.h"
#include "kernels/systems/scatter/scatter.h"
#include "kernels/systems/scatter/scatter_ops.h"
#include "pnn/pnn.h"
#include "pnn/rng.h"
#include "tests/testutil.h"

static const pnn_scatter_ops *ops(void) { return &pnn_scatter_cpu_ops; }

/* inputs of this file's cases: U(lo, hi) from (2024, stream) */
static float *random_floats(size_t n, float lo, float hi, uint64_t stream) {
    return pnn_test_random_floats(n, lo, hi, 2024, stream);
}

static double *to_doubles(const float *x, size_t n) {
    double *y = pnn_test_doubles(n);
    for (size_t i = 0; i < n; i++) y[i] = x[i];
    return y;
}

/* One problem: sizes, the medium (b1 = W1^T [d x m], b2 = W2^T [m x k], interleaved complex),
 * inputs and phases, all on the host (the CPU backend's memory). */
typedef struct {
    pnn_scatter_settings set;
    int64_t rows;
    float *b1, *b2, *x, *theta;
} problem;

static problem make_problem(int64_t rows, int64_t d, int64_t m, int64_t k, double error, uint64_t stream) {
    problem p = {.set = {.x_dim = d, .modes = m, .y_dim = k, .seed = (int64_t)stream}, .rows = rows};
    p.b1 = pnn_test_floats((size_t)(2 * d * m));
    p.b2 = pnn_test_floats((size_t)(2 * m * k));
    ck_assert_int_eq(pnn_scatter_draw_media(pnn_backend_cpu(), &p.set, error, p.b1, p.b2), PNN_OK);
    p.x = random_floats((size_t)(rows * d), -1, 1, 10 * stream + 1);
    p.theta = random_floats((size_t)m, -3.14159265f, 3.14159265f, 10 * stream + 2);
    return p;
}

static void free_problem(problem *p) { free(p->b1), free(p->b2), free(p->x), free(p->theta); }

/* y = |z|^2, z = sum_m W2_km exp(i(theta_m + gamma sin theta_m)) sum_d W1_md x_d, literally; with
 * perturbations ex (rows x d) and et (m) added eps times, when not NULL */
static void ref_forward(const problem *p, double gamma, double eps, const float *ex, const float *et, double *y) {
    int64_t d = p->set.x_dim, m = p->set.modes, k = p->set.y_dim;
    double *zr = pnn_test_doubles((size_t)k), *zi = pnn_test_doubles((size_t)k);
    for (int64_t b = 0; b < p->rows; b++) {
        memset(zr, 0, (size_t)k * sizeof *zr);
        memset(zi, 0, (size_t)k * sizeof *zi);
        for (int64_t j = 0; j < m; j++) {
            double ur = 0, ui = 0;
            for (int64_t i = 0; i < d; i++) {
                double xv = p->x[b * d + i] + (ex ? eps * ex[b * d + i] : 0);
                ur += p->b1[2 * (i * m + j)] * xv;
                ui += p->b1[2 * (i * m + j) + 1] * xv;
            }
            double th = p->theta[j] + (et ? eps * et[j] : 0), t = th + gamma * sin(th);
            double vr = ur * cos(t) - ui * sin(t), vi = ur * sin(t) + ui * cos(t);
            for (int64_t c = 0; c < k; c++) {
                double wr = p->b2[2 * (j * k + c)], wi = p->b2[2 * (j * k + c) + 1];
                zr[c] += wr * vr - wi * vi;
                zi[c] += wr * vi + wi * vr;
            }
        }
        for (int64_t c = 0; c < k; c++) y[b * k + c] = zr[c] * zr[c] + zi[c] * zi[c];
    }
    free(zr), free(zi);
}

static double max_abs(const double *x, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fmax(m, fabs(x[i]));
    return m;
}

/* the kernels' forward, as the device runs it: modulate, fields or transfer matrix, detect */
static void kernel_forward(const problem *p, int transfer, float gamma, const float *noise, float sigma, float well,
                           float *y) {
    int64_t d = p->set.x_dim, m = p->set.modes, k = p->set.y_dim;
    float *w = pnn_test_nan_floats((size_t)(2 * m * k)), *u = pnn_test_nan_floats((size_t)(2 * p->rows * m));
    float *z = pnn_test_nan_floats((size_t)(2 * p->rows * k)), *t = pnn_test_nan_floats((size_t)(2 * d * k));
    ops()->modulate(NULL, m, k, gamma, p->theta, p->b2, w);
    if (transfer) {
        pnn_scatter_transfer(pnn_backend_cpu(), &p->set, p->b1, w, t);
        pnn_scatter_through(pnn_backend_cpu(), &p->set, p->rows, p->x, t, z);
    } else {
        pnn_scatter_fields(pnn_backend_cpu(), &p->set, p->rows, p->x, p->b1, w, u, z);
    }
    ops()->detect(NULL, p->rows * k, z, noise, sigma, well, y);
    free(w), free(u), free(z), free(t);
}

/* rows, x_dim, modes, y_dim: tiny, odd, and past the OpenMP thresholds of every kernel */
static const int64_t shapes[][4] = {{1, 1, 1, 1}, {3, 5, 7, 2}, {17, 13, 301, 11}, {40, 9, 1030, 37}};
#define N_SHAPES ((int)(sizeof shapes / sizeof shapes[0]))

START_TEST(forward_matches_reference) {
    for (int si = 0; si < N_SHAPES; si++)
        for (int gi = 0; gi < 4; gi++) {
            const int64_t *s = shapes[si];
            float gamma = gi & 1 ? 0.13f : 0.0f;
            problem p = make_problem(s[0], s[1], s[2], s[3], 0.0, 100 + (uint64_t)si);
            size_t n = (size_t)(s[0] * s[3]);
            float *y = pnn_test_nan_floats(n);
            double *want = pnn_test_doubles(n);
            kernel_forward(&p, gi >> 1, gamma, NULL, 0, INFINITY, y);
            ref_forward(&p, gamma, 0, NULL, NULL, want);
            ck_assert_msg(pnn_test_allclose("y", y, want, (int64_t)n, 1e-5 * max_abs(want, n), 1e-4),
                          "rows %lld x_dim %lld modes %lld y_dim %lld gamma %g %s form", (long long)s[0],
                          (long long)s[1], (long long)s[2], (long long)s[3], gamma, gi >> 1 ? "transfer" : "fields");
            free(y), free(want);
            free_problem(&p);
        }
}
END_TEST

START_TEST(modulate_matches_reference) {
    const int64_t sizes[][2] = {{1, 1}, {7, 3}, {301, 11}, {1030, 37}};
    for (int si = 0; si < 4; si++) {
        int64_t m = sizes[si][0], k = sizes[si][1];
        float *theta = random_floats((size_t)m, -20, 20, 200 + (uint64_t)si);
        float *b2 = random_floats((size_t)(2 * m * k), -1, 1, 210 + (uint64_t)si), *w = pnn_test_nan_floats((size_t)(2 * m * k));
        double *want = pnn_test_doubles((size_t)(2 * m * k));
        ops()->modulate(NULL, m, k, 0.3f, theta, b2, w);
        for (int64_t j = 0; j < m; j++) {
            double t = theta[j] + 0.3 * sin((double)theta[j]);
            for (int64_t c = 0; c < k; c++) {
                double br = b2[2 * (j * k + c)], bi = b2[2 * (j * k + c) + 1];
                want[2 * (j * k + c)] = cos(t) * br - sin(t) * bi;
                want[2 * (j * k + c) + 1] = cos(t) * bi + sin(t) * br;
            }
        }
        ck_assert(pnn_test_allclose("w", w, want, 2 * m * k, 2e-6, 1e-5));
        free(theta), free(b2), free(w), free(want);
    }
}
END_TEST

START_TEST(detect_and_adjoints_match_reference) {
    const int64_t sizes[][2] = {{1, 1}, {3, 7}, {40, 1030}};
    for (int si = 0; si < 3; si++) {
        int64_t rows = sizes[si][0], m = sizes[si][1], n = rows * m;
        float *z = random_floats((size_t)(2 * n), -1, 1, 300 + (uint64_t)si);
        float *noise = random_floats((size_t)n, -3, 3, 310 + (uint64_t)si), *dy = random_floats((size_t)n, -1, 1, 320);
        float *y = pnn_test_nan_floats((size_t)n), *gz = pnn_test_nan_floats((size_t)(2 * n));
        double *want = pnn_test_doubles((size_t)(2 * n));
        /* with noise and a well that clips some, then neither */
        ops()->detect(NULL, n, z, noise, 0.05f, 1.0f, y);
        for (int64_t i = 0; i < n; i++)
            want[i] = fmin((double)z[2 * i] * z[2 * i] + (double)z[2 * i + 1] * z[2 * i + 1] + 0.05 * noise[i], 1.0);
        ck_assert(pnn_test_allclose("detect", y, want, n, 1e-6, 1e-6));
        ops()->detect(NULL, n, z, NULL, 0.05f, INFINITY, y);
        for (int64_t i = 0; i < n; i++) want[i] = (double)z[2 * i] * z[2 * i] + (double)z[2 * i + 1] * z[2 * i + 1];
        ck_assert(pnn_test_allclose("detect bare", y, want, n, 1e-6, 1e-6));
        ops()->detect_adjoint(NULL, n, dy, z, gz);
        for (int64_t i = 0; i < 2 * n; i++) want[i] = 2.0 * dy[i / 2] * z[i];
        ck_assert(pnn_test_allclose("detect_adjoint", gz, want, 2 * n, 1e-6, 1e-6));
        /* dtheta += sum_b Im(gu conj(u)), onto a starting value */
        float *u = random_floats((size_t)(2 * n), -1, 1, 330 + (uint64_t)si);
        float *dtheta = random_floats((size_t)m, -1, 1, 340 + (uint64_t)si);
        for (int64_t j = 0; j < m; j++) {
            want[j] = dtheta[j];
            for (int64_t b = 0; b < rows; b++) {
                int64_t i = 2 * (b * m + j);
                want[j] += (double)z[i + 1] * u[i] - (double)z[i] * u[i + 1];
            }
        }
        ops()->modulate_adjoint(NULL, rows, m, z, u, dtheta);
        ck_assert(pnn_test_allclose("modulate_adjoint", dtheta, want, m, 1e-5, 1e-5));
        /* and in the transfer form: dtheta[j] += sum_c Im(s[j, c] conj(w[j, c])), rows x m read as
         * m' = rows modes of m outputs each */
        for (int64_t j = 0; j < rows; j++) {
            want[j] = dtheta[j];
            for (int64_t c = 0; c < m; c++) {
                int64_t i = 2 * (j * m + c);
                want[j] += (double)z[i + 1] * u[i] - (double)z[i] * u[i + 1];
            }
        }
        ops()->modulate_adjoint_medium(NULL, rows, m, z, u, dtheta);
        ck_assert(pnn_test_allclose("modulate_adjoint_medium", dtheta, want, rows, 1e-5, 1e-5));
        free(z), free(noise), free(dy), free(y), free(gz), free(want), free(u), free(dtheta);
    }
}
END_TEST

/* ---- the device and the twin, through the public API on the CPU backend ---- */

static pnn_tensor host_tensor(float *data, int64_t rows, int64_t cols) {
    pnn_tensor t;
    int64_t shape[2] = {rows, cols};
    ck_assert_int_eq(pnn_tensor_view(&t, pnn_backend_cpu(), data, 2, shape), PNN_OK);
    return t;
}

static pnn_device *open_device(const char *uri) {
    pnn_device *dev;
    ck_assert_msg(pnn_device_open(uri, pnn_backend_cpu(), &dev) == PNN_OK, "%s: %s", uri, pnn_last_error());
    return dev;
}

static pnn_twin *make_twin(pnn_device *dev, double noise) {
    pnn_twin *tw;
    ck_assert_msg(pnn_twin_create("analytic", dev, noise, &tw) == PNN_OK, "%s", pnn_last_error());
    return tw;
}

static void device_forward(pnn_device *dev, const problem *p, float *y) {
    pnn_tensor xt = host_tensor(p->x, p->rows, p->set.x_dim), yt = host_tensor(y, p->rows, p->set.y_dim);
    ck_assert_msg(pnn_device_forward(dev, &xt, p->theta, &yt) == PNN_OK, "%s", pnn_last_error());
}

static void twin_forward(pnn_twin *tw, const problem *p, int slot, float *y) {
    pnn_tensor xt = host_tensor(p->x, p->rows, p->set.x_dim), yt = host_tensor(y, p->rows, p->set.y_dim);
    pnn_twin_theta_changed(tw);
    ck_assert_msg(tw->iface->forward(tw, &xt, p->theta, &yt, slot, NULL) == PNN_OK, "%s", pnn_last_error());
}

/* a problem whose medium is the one sim:scatter with these settings draws (error: the device's) */
static problem uri_problem(const char *uri, int64_t rows, double error, uint64_t stream) {
    pnn_uri u;
    ck_assert_int_eq(pnn_uri_parse(uri, &u), PNN_OK);
    problem p = {.rows = rows};
    ck_assert_int_eq(pnn_scatter_read_settings(&u, &p.set), PNN_OK);
    int64_t d = p.set.x_dim, m = p.set.modes, k = p.set.y_dim;
    p.b1 = pnn_test_floats((size_t)(2 * d * m));
    p.b2 = pnn_test_floats((size_t)(2 * m * k));
    ck_assert_int_eq(pnn_scatter_draw_media(pnn_backend_cpu(), &p.set, error, p.b1, p.b2), PNN_OK);
    p.x = random_floats((size_t)(rows * d), -1, 1, 10 * stream + 1);
    p.theta = random_floats((size_t)m, -3.14159265f, 3.14159265f, 10 * stream + 2);
    return p;
}

/* With mismatch=0 and noise=0 the device is the twin's ideal map: the same kernels on the same
 * medium, so equal to float rounding (in fact bit for bit); the full well is not reached. */
START_TEST(twin_equals_ideal_device) {
    pnn_scatter_set_regime(_i); /* 1: the fields form, 2: the transfer form */
    const char *uris[] = {"sim:scatter?x_dim=13&modes=301&y_dim=11&seed=3&mismatch=0&noise=0",
                          "sim:scatter?x_dim=64&modes=1030&y_dim=37&seed=4&mismatch=0&noise=0"};
    for (int i = 0; i < 2; i++) {
        pnn_device *dev = open_device(uris[i]);
        pnn_twin *tw = make_twin(dev, -1);
        problem p = uri_problem(uris[i], 33, 0.0, 400 + (uint64_t)i);
        size_t n = (size_t)(p.rows * p.set.y_dim);
        float *yd = pnn_test_nan_floats(n), *yt = pnn_test_nan_floats(n), *yt_taped = pnn_test_nan_floats(n);
        double *want = pnn_test_doubles(n);
        device_forward(dev, &p, yd);
        twin_forward(tw, &p, -1, yt);
        twin_forward(tw, &p, 0, yt_taped); /* nominal noise 0: taped equals untaped */
        for (size_t j = 0; j < n; j++) want[j] = yt[j];
        ck_assert(pnn_test_allclose("device vs twin", yd, want, (int64_t)n, 0, 1e-6));
        ck_assert(memcmp(yt, yt_taped, n * sizeof *yt) == 0);
        double top = max_abs(want, n);
        ck_assert_msg(top < 4.0, "the test meant to stay below the full well, max y %g", top);
        free(yd), free(yt), free(yt_taped), free(want);
        free_problem(&p);
        pnn_twin_free(tw);
        pnn_device_close(dev);
    }
}
END_TEST

/* The device at mismatch > 0 is the reference with its hidden medium (nominal + w_error x
 * mismatch x an independent draw) and gamma (gamma x mismatch x (0.5 + u), u from the seed),
 * clipped at the full well; and it differs from the twin by about what those errors make. */
START_TEST(device_is_its_hidden_physics) {
    pnn_scatter_set_regime(_i); /* 1: the fields form, 2: the transfer form */
    const char *uri = "sim:scatter?x_dim=12&modes=200&y_dim=9&seed=5&mismatch=2&noise=0&full_well=0.6";
    pnn_device *dev = open_device(uri);
    pnn_twin *tw = make_twin(dev, -1);
    problem p = uri_problem(uri, 40, 0.05 * 2, 500);
    problem ideal = uri_problem(uri, 40, 0.0, 500);
    float draw;
    pnn_rng_uniform(5, pnn_rng_stream("sim.scatter.gamma", 0), 0, 1, &draw);
    double gamma = 0.1 * 2 * (0.5 + draw);
    size_t n = (size_t)(p.rows * p.set.y_dim);
    float *yd = pnn_test_nan_floats(n), *yt = pnn_test_nan_floats(n);
    double *want = pnn_test_doubles(n), *want_twin = pnn_test_doubles(n);
    device_forward(dev, &p, yd);
    twin_forward(tw, &p, -1, yt);
    ref_forward(&p, gamma, 0, NULL, NULL, want);
    int clipped = 0;
    for (size_t i = 0; i < n; i++) {
        clipped += want[i] > 0.6;
        want[i] = fmin(want[i], 0.6);
    }
    ck_assert_msg(clipped > 0 && clipped < (int)n / 2, "%d of %zu outputs at the full well", clipped, n);
    ck_assert(pnn_test_allclose("device", yd, want, (int64_t)n, 1e-5, 1e-4));
    /* the twin is the reference with the nominal medium and no gamma, unclipped */
    ref_forward(&ideal, 0.0, 0, NULL, NULL, want_twin);
    ck_assert(pnn_test_allclose("twin", yt, want_twin, (int64_t)n, 1e-5, 1e-4));
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++)
        if (want_twin[i] < 0.6) num += pow(yd[i] - want_twin[i], 2), den += pow(want_twin[i], 2);
    double rel = sqrt(num / den);
    ck_assert_msg(rel > 0.05 && rel < 1.0, "device vs twin: relative rms difference %g below the well", rel);
    free(yd), free(yt), free(want), free(want_twin);
    free_problem(&p), free_problem(&ideal);
    pnn_twin_free(tw);
    pnn_device_close(dev);
}
END_TEST

/* The camera's read noise is absolute, of std `noise`, drawn from (seed, call index): the same
 * call of two copies gives the same y, the next call other draws. Taped twin forwards add noise
 * of the nominal level from the twin's own stream; untaped ones are clean. */
START_TEST(noise_is_absolute_and_reproducible) {
    pnn_scatter_set_regime(_i); /* 1: the fields form, 2: the transfer form */
    const char *uri = "sim:scatter?x_dim=8&modes=64&y_dim=50&seed=6&mismatch=0&noise=0.05&full_well=0";
    pnn_device *a = open_device(uri), *b = open_device(uri);
    pnn_twin *tw = make_twin(a, -1);
    problem p = uri_problem(uri, 200, 0.0, 600);
    size_t n = (size_t)(p.rows * p.set.y_dim);
    float *ya = pnn_test_nan_floats(n), *yb = pnn_test_nan_floats(n), *ya2 = pnn_test_nan_floats(n), *clean = pnn_test_nan_floats(n);
    float *taped = pnn_test_nan_floats(n);
    device_forward(a, &p, ya);
    device_forward(b, &p, yb);
    device_forward(a, &p, ya2);
    twin_forward(tw, &p, -1, clean);
    twin_forward(tw, &p, 0, taped);
    ck_assert(memcmp(ya, yb, n * sizeof *ya) == 0);
    ck_assert(memcmp(ya, ya2, n * sizeof *ya) != 0);
    const float *noisy[3] = {ya, ya2, taped};
    for (int w = 0; w < 3; w++) {
        double sum = 0, sq = 0;
        for (size_t i = 0; i < n; i++) {
            double e = noisy[w][i] - clean[i];
            sum += e, sq += e * e;
        }
        double mean = sum / (double)n, sd = sqrt(sq / (double)n - mean * mean);
        ck_assert_msg(fabs(mean) < 0.003 && fabs(sd - 0.05) < 0.003, "draw %d: noise mean %g std %g", w, mean, sd);
    }
    double corr = 0;
    for (size_t i = 0; i < n; i++) corr += (double)(ya[i] - clean[i]) * (taped[i] - clean[i]);
    ck_assert_msg(fabs(corr / (double)n) < 0.1 * 0.05 * 0.05, "the twin's draws follow the device's");
    free(ya), free(yb), free(ya2), free(clean), free(taped);
    free_problem(&p);
    pnn_twin_free(tw);
    pnn_device_close(a), pnn_device_close(b);
}
END_TEST

START_TEST(full_well_clips_hard) {
    pnn_scatter_set_regime(_i); /* 1: the fields form, 2: the transfer form */
    const char *uri = "sim:scatter?x_dim=10&modes=100&y_dim=20&seed=7&mismatch=0&noise=0&full_well=0.25";
    pnn_device *dev = open_device(uri);
    pnn_twin *tw = make_twin(dev, -1);
    problem p = uri_problem(uri, 30, 0.0, 700);
    size_t n = (size_t)(p.rows * p.set.y_dim);
    float *yd = pnn_test_nan_floats(n), *yt = pnn_test_nan_floats(n);
    device_forward(dev, &p, yd);
    twin_forward(tw, &p, -1, yt);
    int clipped = 0;
    for (size_t i = 0; i < n; i++) {
        clipped += yt[i] > 0.25f;
        ck_assert_msg(yd[i] == fminf(yt[i], 0.25f), "y[%zu]: device %g, twin %g", i, yd[i], yt[i]);
    }
    ck_assert(clipped > 0 && clipped < (int)n);
    free(yd), free(yt);
    free_problem(&p);
    pnn_twin_free(tw);
    pnn_device_close(dev);
}
END_TEST

/* L = <w, y(x + eps ex, theta + eps et)> by the double reference */
static double ref_loss(const problem *p, const double *w, double eps, const float *ex, const float *et) {
    size_t n = (size_t)(p->rows * p->set.y_dim);
    double *y = pnn_test_doubles(n), loss = 0;
    ref_forward(p, 0.0, eps, ex, et, y);
    for (size_t i = 0; i < n; i++) loss += w[i] * y[i];
    free(y);
    return loss;
}

static double dot(const float *a, const float *b, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)a[i] * b[i];
    return s;
}

/* the twin's taped forward, then its VJP into dx (may be NULL) and dtheta (added to) */
static void twin_vjp(pnn_twin *tw, const problem *p, const float *dy, float *dx, float *dtheta) {
    size_t n = (size_t)(p->rows * p->set.y_dim);
    float *y = pnn_test_nan_floats(n);
    twin_forward(tw, p, 3, y);
    float *dy_copy = pnn_test_floats(n);
    memcpy(dy_copy, dy, n * sizeof *dy);
    pnn_tensor dyt = host_tensor(dy_copy, p->rows, p->set.y_dim), dxt;
    if (dx) dxt = host_tensor(dx, p->rows, p->set.x_dim);
    ck_assert_msg(tw->iface->vjp(tw, p->theta, &dyt, dx ? &dxt : NULL, dtheta, 3) == PNN_OK, "%s", pnn_last_error());
    free(y), free(dy_copy);
}

START_TEST(vjp_matches_finite_differences) {
    pnn_scatter_set_regime(_i); /* 1: the fields form, 2: the transfer form */
    const char *uris[] = {"sim:scatter?x_dim=1&modes=1&y_dim=1&seed=8&noise=0",
                          "sim:scatter?x_dim=5&modes=7&y_dim=3&seed=9&noise=0",
                          "sim:scatter?x_dim=13&modes=301&y_dim=11&seed=10&noise=0",
                          "sim:scatter?x_dim=9&modes=1030&y_dim=37&seed=11&noise=0"};
    const int64_t rows[] = {1, 3, 17, 40};
    for (int si = 0; si < 4; si++) {
        pnn_device *dev = open_device(uris[si]);
        pnn_twin *tw = make_twin(dev, -1);
        problem p = uri_problem(uris[si], rows[si], 0.0, 800 + (uint64_t)si);
        int64_t d = p.set.x_dim, m = p.set.modes;
        size_t n = (size_t)(p.rows * p.set.y_dim), nx = (size_t)(p.rows * d);
        float *dy = random_floats(n, -1, 1, 810 + (uint64_t)si), *dx = pnn_test_nan_floats(nx), *dtheta = pnn_test_floats((size_t)m);
        memset(dtheta, 0, (size_t)m * sizeof *dtheta);
        twin_vjp(tw, &p, dy, dx, dtheta);
        double *w = to_doubles(dy, n);
        /* directional derivatives along random directions, central differences in double */
        const double eps = 1e-6;
        for (int dir = 0; dir < 3; dir++) {
            float *ex = random_floats(nx, -1, 1, 820 + 10 * (uint64_t)si + (uint64_t)dir);
            float *et = random_floats((size_t)m, -1, 1, 830 + 10 * (uint64_t)si + (uint64_t)dir);
            double fd_x = (ref_loss(&p, w, eps, ex, NULL) - ref_loss(&p, w, -eps, ex, NULL)) / (2 * eps);
            double fd_t = (ref_loss(&p, w, eps, NULL, et) - ref_loss(&p, w, -eps, NULL, et)) / (2 * eps);
            double got_x = dot(dx, ex, nx), got_t = dot(dtheta, et, (size_t)m);
            double scale_x = sqrt(dot(dx, dx, nx) * dot(ex, ex, nx));
            double scale_t = sqrt(dot(dtheta, dtheta, (size_t)m) * dot(et, et, (size_t)m));
            /* the floor: gradient sizes of this loss (with one mode, dtheta is zero: a global phase) */
            ck_assert_msg(fabs(got_x - fd_x) <= 1e-4 * fabs(fd_x) + 1e-5 * (scale_x + scale_t),
                          "%s: dx . v = %.9g, finite differences %.9g", uris[si], got_x, fd_x);
            ck_assert_msg(fabs(got_t - fd_t) <= 1e-4 * fabs(fd_t) + 1e-5 * (scale_x + scale_t),
                          "%s: dtheta . v = %.9g, finite differences %.9g", uris[si], got_t, fd_t);
            free(ex), free(et);
        }
        /* the smaller problems element by element */
        if (si < 3) {
            double *want_x = pnn_test_doubles(nx), *want_t = pnn_test_doubles((size_t)m);
            float *unit_x = pnn_test_floats(nx), *unit_t = pnn_test_floats((size_t)m);
            memset(unit_x, 0, nx * sizeof *unit_x);
            memset(unit_t, 0, (size_t)m * sizeof *unit_t);
            for (size_t i = 0; i < nx; i++) {
                unit_x[i] = 1;
                want_x[i] = (ref_loss(&p, w, eps, unit_x, NULL) - ref_loss(&p, w, -eps, unit_x, NULL)) / (2 * eps);
                unit_x[i] = 0;
            }
            for (int64_t j = 0; j < m; j++) {
                unit_t[j] = 1;
                want_t[j] = (ref_loss(&p, w, eps, NULL, unit_t) - ref_loss(&p, w, -eps, NULL, unit_t)) / (2 * eps);
                unit_t[j] = 0;
            }
            ck_assert(pnn_test_allclose("dx", dx, want_x, (int64_t)nx, 1e-4 * max_abs(want_x, nx), 1e-3));
            ck_assert(pnn_test_allclose("dtheta", dtheta, want_t, m,
                                        1e-4 * fmax(max_abs(want_t, (size_t)m), max_abs(want_x, nx)), 1e-3));
            free(want_x), free(want_t), free(unit_x), free(unit_t);
        }
        free(dy), free(dx), free(dtheta), free(w);
        free_problem(&p);
        pnn_twin_free(tw);
        pnn_device_close(dev);
    }
}
END_TEST

/* dtheta is added to, dx may be NULL, and two VJPs at one tape give twice the gradient */
START_TEST(vjp_accumulates_and_takes_null_dx) {
    pnn_scatter_set_regime(_i); /* 1: the fields form, 2: the transfer form */
    const char *uri = "sim:scatter?x_dim=9&modes=1030&y_dim=37&seed=12&noise=0.1";
    pnn_device *dev = open_device(uri);
    pnn_twin *tw = make_twin(dev, -1);
    problem p = uri_problem(uri, 40, 0.0, 900);
    int64_t m = p.set.modes;
    size_t n = (size_t)(p.rows * p.set.y_dim);
    float *dy = random_floats(n, -1, 1, 901), *g = pnn_test_floats((size_t)m), *acc = random_floats((size_t)m, -1, 1, 902);
    memset(g, 0, (size_t)m * sizeof *g);
    twin_vjp(tw, &p, dy, NULL, g);
    double *want = pnn_test_doubles((size_t)m);
    for (int64_t j = 0; j < m; j++) want[j] = acc[j] + 2.0 * g[j];
    twin_vjp(tw, &p, dy, NULL, acc);
    pnn_tensor dyt = host_tensor(dy, p.rows, p.set.y_dim);
    ck_assert_int_eq(tw->iface->vjp(tw, p.theta, &dyt, NULL, acc, 3), PNN_OK);
    ck_assert(pnn_test_allclose("dtheta accumulated", acc, want, m, 1e-5, 1e-5));
    /* a VJP of a slot with no tape, or another batch size, is refused */
    ck_assert_int_eq(tw->iface->vjp(tw, p.theta, &dyt, NULL, acc, 4), PNN_ERR_INVALID);
    free(dy), free(g), free(acc), free(want);
    free_problem(&p);
    pnn_twin_free(tw);
    pnn_device_close(dev);
}
END_TEST

/* The physics' own equalities, on the twin: a global phase changes no intensity, so the phase
 * gradient sums to zero; y is quadratic in x; and the media's scaling gives E y = |x|^2 / x_dim. */
START_TEST(global_phase_homogeneity_and_scale) {
    pnn_scatter_set_regime(_i); /* 1: the fields form, 2: the transfer form */
    const char *uri = "sim:scatter?x_dim=16&modes=512&y_dim=32&seed=13&noise=0";
    pnn_device *dev = open_device(uri);
    pnn_twin *tw = make_twin(dev, -1);
    problem p = uri_problem(uri, 64, 0.0, 1000);
    int64_t d = p.set.x_dim, m = p.set.modes;
    size_t n = (size_t)(p.rows * p.set.y_dim), nx = (size_t)(p.rows * d);
    float *y = pnn_test_nan_floats(n), *y2 = pnn_test_nan_floats(n);
    double *want = pnn_test_doubles(n);
    twin_forward(tw, &p, -1, y);
    for (int64_t j = 0; j < m; j++) p.theta[j] += 0.7f;
    twin_forward(tw, &p, -1, y2);
    for (size_t i = 0; i < n; i++) want[i] = y[i];
    ck_assert(pnn_test_allclose("global phase", y2, want, (int64_t)n, 1e-5 * max_abs(want, n), 1e-4));
    float *dy = random_floats(n, -1, 1, 1001), *dtheta = pnn_test_floats((size_t)m);
    memset(dtheta, 0, (size_t)m * sizeof *dtheta);
    twin_vjp(tw, &p, dy, NULL, dtheta);
    double sum = 0, l1 = 0;
    for (int64_t j = 0; j < m; j++) sum += dtheta[j], l1 += fabs(dtheta[j]);
    ck_assert_msg(fabs(sum) < 1e-5 * l1, "sum of dtheta %g, |dtheta|_1 %g", sum, l1);
    for (size_t i = 0; i < nx; i++) p.x[i] *= -0.5f;
    twin_forward(tw, &p, -1, y2);
    for (size_t i = 0; i < n; i++) want[i] = 0.25 * y[i];
    ck_assert(pnn_test_allclose("homogeneity", y2, want, (int64_t)n, 1e-5 * max_abs(want, n), 1e-4));
    free(y), free(y2), free(want), free(dy), free(dtheta);
    free_problem(&p);
    pnn_twin_free(tw);
    pnn_device_close(dev);
    /* x = 1, so |x|^2 / x_dim = 1: the mean over 64 random phase settings x 32 outputs. Its
     * spread: the medium's |u|^2 / modes (relative std 1/sqrt(4096)) and 2048 speckle
     * (exponential) draws (1/sqrt(2048)), 2.7% together; 10% is 3.7 of those. */
    uri = "sim:scatter?x_dim=16&modes=4096&y_dim=32&seed=14&noise=0";
    dev = open_device(uri);
    tw = make_twin(dev, -1);
    p = uri_problem(uri, 1, 0.0, 1003);
    y = pnn_test_nan_floats((size_t)p.set.y_dim);
    double mean = 0;
    for (int64_t i = 0; i < p.set.x_dim; i++) p.x[i] = 1.0f;
    for (int r = 0; r < 64; r++) {
        pnn_test_uniform(p.theta, p.set.modes, -3.14159265f, 3.14159265f, 1002, (uint64_t)r);
        twin_forward(tw, &p, -1, y);
        for (int64_t c = 0; c < p.set.y_dim; c++) mean += y[c] / (64.0 * (double)p.set.y_dim);
    }
    ck_assert_msg(fabs(mean - 1.0) < 0.1, "mean intensity %g for |x|^2 / x_dim = 1", mean);
    free(y);
    free_problem(&p);
    pnn_twin_free(tw);
    pnn_device_close(dev);
}
END_TEST

/* The two forms are the same map: outputs and gradients agree to float rounding; and each call
 * takes the one with fewer flops, the transfer form from 2 x_dim y_dim / (x_dim + 2 y_dim) rows. */
START_TEST(forms_agree_and_switch_at_equal_flops) {
    const char *uri = "sim:scatter?x_dim=64&modes=1024&y_dim=10&seed=15&noise=0";
    pnn_device *dev = open_device(uri);
    pnn_twin *tw = make_twin(dev, -1);
    problem p = uri_problem(uri, 37, 0.0, 1100);
    int64_t d = p.set.x_dim, m = p.set.modes;
    size_t n = (size_t)(p.rows * p.set.y_dim), nx = (size_t)(p.rows * d);
    float *y[2], *dx[2], *dtheta[2], *dy = random_floats(n, -1, 1, 1101);
    for (int f = 0; f < 2; f++) {
        pnn_scatter_set_regime(f + 1);
        y[f] = pnn_test_nan_floats(n), dx[f] = pnn_test_nan_floats(nx), dtheta[f] = pnn_test_floats((size_t)m);
        memset(dtheta[f], 0, (size_t)m * sizeof *dtheta[f]);
        twin_forward(tw, &p, -1, y[f]);
        twin_vjp(tw, &p, dy, dx[f], dtheta[f]);
    }
    double *want_y = to_doubles(y[0], n), *want_x = to_doubles(dx[0], nx), *want_t = to_doubles(dtheta[0], (size_t)m);
    ck_assert(pnn_test_allclose("y", y[1], want_y, (int64_t)n, 1e-5 * max_abs(want_y, n), 1e-4));
    ck_assert(pnn_test_allclose("dx", dx[1], want_x, (int64_t)nx, 1e-5 * max_abs(want_x, nx), 1e-4));
    ck_assert(pnn_test_allclose("dtheta", dtheta[1], want_t, m, 1e-5 * max_abs(want_t, (size_t)m), 1e-4));
    pnn_scatter_set_regime(0);
    ck_assert(!pnn_scatter_use_transfer(&p.set, 15) && pnn_scatter_use_transfer(&p.set, 16)); /* 15.2 */
    for (int f = 0; f < 2; f++) free(y[f]), free(dx[f]), free(dtheta[f]);
    free(dy), free(want_y), free(want_x), free(want_t);
    free_problem(&p);
    pnn_twin_free(tw);
    pnn_device_close(dev);
}
END_TEST

/* A device whose reported dims are not its URI's scatter system (a crafted server or recording
 * header) gets no twin; neither does the oracle noise setting. */
START_TEST(twin_refuses_device_dims_of_another_system) {
    pnn_device *dev = open_device("sim:scatter?x_dim=12&modes=40&y_dim=7");
    pnn_device_info good = dev->info;
    const int64_t bad[][3] = {{12, 7, 56}, {40, 40, 1640}, {13, 7, 40}, {12, 8, 40}, {0, 0, 0}, {12, 7, 1 << 20}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        dev->info.x_dim = bad[i][0], dev->info.y_dim = bad[i][1], dev->info.theta_dim = bad[i][2];
        pnn_twin *tw = (pnn_twin *)1;
        ck_assert_int_eq(pnn_twin_create("analytic", dev, -1, &tw), PNN_ERR_FORMAT);
        ck_assert_ptr_null(tw);
        ck_assert_ptr_nonnull(strstr(pnn_last_error(), "not a scatter system"));
    }
    /* the system URI must agree with the dims too, and be a valid one */
    dev->info = good;
    snprintf(dev->info.system_uri, sizeof dev->info.system_uri, "sim:scatter?x_dim=12&modes=41&y_dim=7");
    pnn_twin *tw;
    ck_assert_int_eq(pnn_twin_create("analytic", dev, -1, &tw), PNN_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(pnn_last_error(), "modes=41"));
    snprintf(dev->info.system_uri, sizeof dev->info.system_uri, "sim:scatter?x_dim=12&modes=40&y_dim=7&noise=-1");
    ck_assert_int_eq(pnn_twin_create("analytic", dev, -1, &tw), PNN_ERR_INVALID);
    dev->info = good;
    ck_assert_int_eq(pnn_twin_create("analytic", dev, PNN_TWIN_NOISE_ORACLE, &tw), PNN_ERR_CONFIG);
    ck_assert_ptr_nonnull(strstr(pnn_last_error(), "oracle"));
    ck_assert_int_eq(pnn_twin_create("analytic", dev, -1, &tw), PNN_OK);
    pnn_twin_free(tw);
    pnn_device_close(dev);
    /* an oscillator device's dims dressed up as a scatter system */
    dev = open_device("sim:oscillator?n=12&nt=2");
    snprintf(dev->info.system, sizeof dev->info.system, "scatter");
    snprintf(dev->info.system_uri, sizeof dev->info.system_uri, "sim:scatter?x_dim=12&modes=12&y_dim=12");
    ck_assert_int_eq(pnn_twin_create("analytic", dev, -1, &tw), PNN_ERR_FORMAT);
    pnn_device_close(dev);
}
END_TEST

static Suite *scatter_suite(void) {
    Suite *s = suite_create("scatter");
    TCase *tc = tcase_create("cpu");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, forward_matches_reference);
    tcase_add_test(tc, modulate_matches_reference);
    tcase_add_test(tc, detect_and_adjoints_match_reference);
    tcase_add_loop_test(tc, twin_equals_ideal_device, 1, 3);
    tcase_add_loop_test(tc, device_is_its_hidden_physics, 1, 3);
    tcase_add_loop_test(tc, noise_is_absolute_and_reproducible, 1, 3);
    tcase_add_loop_test(tc, full_well_clips_hard, 1, 3);
    tcase_add_loop_test(tc, vjp_matches_finite_differences, 1, 3);
    tcase_add_loop_test(tc, vjp_accumulates_and_takes_null_dx, 1, 3);
    tcase_add_loop_test(tc, global_phase_homogeneity_and_scale, 1, 3);
    tcase_add_test(tc, forms_agree_and_switch_at_equal_flops);
    tcase_add_test(tc, twin_refuses_device_dims_of_another_system);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return pnn_test_run(scatter_suite()); }
