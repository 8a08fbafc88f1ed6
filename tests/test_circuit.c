/* The circuit system (PHYSICS.md, "circuit"): the CPU kernels against plain double-precision
 * references written here (the drive's layouts and rails, RK4 stage by stage, the sample
 * times) on odd sizes, the VJP against central finite differences of the double reference (at
 * the kernel and through the twin: dx and dtheta), the twin against the device, the device's
 * keys, mismatch, noise and drift (reproducible from (seed, call index), across a resume), and
 * equalities of the physics itself: the linear circuit's exact step response, superposition,
 * the DC operating point with the tanh element, and causality. Work and tapes start as NaN so
 * reads of unwritten memory show up. */
#include <check.h>
#include <math.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/systems/circuit/circuit.h"
#include "kernels/systems/circuit/circuit_ops.h"
#include "pnn/pnn.h"
#include "tests/testutil.h"

/* inputs of this file's cases: U(lo, hi) from (2026, stream) */
static float *random_floats(size_t n, float lo, float hi, uint64_t stream) {
    return pnn_test_random_floats(n, lo, hi, 2026, stream);
}

static double norm(const float *a, size_t n) { return sqrt(pnn_test_dot(a, a, n)); }

/* one measured figure per line, "measured NAME: VALUE (must be at most|at least BOUND)", which
 * benchmarks/circuit_equalities.sh collects into the results */
static void measured(const char *name, double value, const char *must, double bound) {
    printf("measured %s: %.3g (must be %s %.3g)\n", name, value, must, bound);
}

/* max |got - want| / max |want| */
static double norm_err(const float *got, const double *want, size_t n) {
    double num = 0, den = 1e-30;
    for (size_t i = 0; i < n; i++) num = fmax(num, fabs(got[i] - want[i])), den = fmax(den, fabs(want[i]));
    return num / den;
}

/* ---- the double-precision reference ---- */

/* the drive as the brief states it: concat puts x then theta; interleave puts x column j on
 * segment floor(j S / x_dim) and theta, in order, on the others; every value clipped to [-1, 1] */
static void ref_drive(const pnn_circuit_params *p, const double *x, const double *theta, double *u) {
    int64_t s = p->segments, xd = p->x_dim;
    int64_t *col = malloc((size_t)s * sizeof *col);
    for (int64_t i = 0; i < s; i++) col[i] = -1;
    for (int64_t j = 0; j < xd; j++) col[p->interleave ? j * s / xd : j] = j;
    for (int64_t b = 0; b < p->batch; b++)
        for (int64_t i = 0, k = 0; i < s; i++) {
            double v = col[i] >= 0 ? x[b * xd + col[i]] : theta[k++];
            u[b * s + i] = fmin(1.0, fmax(-1.0, v));
        }
    free(col);
}

/* classic RK4 on (v, v'), k1..k4 as in any textbook, from rest; y[j] = v at the last step time
 * not after the end of span j of y_dim equal spans, (j + 1) T / y_dim */
static void ref_forward(const pnn_circuit_params *p, const double *u, double *y) {
    const double a = (double)p->w0 * p->w0, c = (double)p->w0 / p->qf, h = p->dt;
    const int64_t n_steps = p->segments * p->steps;
    for (int64_t b = 0; b < p->batch; b++) {
        double v = 0, w = 0;
        int64_t j = 0;
        for (int64_t n = 0; n < n_steps; n++) {
            double uu = u[b * p->segments + n / p->steps], kv[4], kw[4];
            for (int st = 0; st < 4; st++) {
                double f = st == 0 ? 0 : st == 3 ? 1 : 0.5;
                double vs = st ? v + f * h * kv[st - 1] : v, ws = st ? w + f * h * kw[st - 1] : w;
                kv[st] = ws;
                kw[st] = a * (uu - vs) - c * ws - p->alpha * tanh((double)p->kappa * vs);
            }
            v += h / 6 * (kv[0] + 2 * kv[1] + 2 * kv[2] + kv[3]);
            w += h / 6 * (kw[0] + 2 * kw[1] + 2 * kw[2] + kw[3]);
            if (j < p->y_dim && (n + 2) * p->y_dim > (j + 1) * n_steps) y[b * p->y_dim + j++] = v;
        }
    }
}

static pnn_circuit_params params(int64_t batch, int64_t s, int64_t steps, int64_t xd, int64_t yd, int interleave) {
    return (pnn_circuit_params){.batch = batch, .segments = s, .steps = steps, .x_dim = xd, .y_dim = yd,
                                .interleave = interleave, .dt = 4.0f / (float)(s * steps), .w0 = 6.2831853f,
                                .qf = 4.0f, .alpha = 20.0f, .kappa = 2.0f};
}

/* L = <wt, y(u + eps du)> by the double reference */
static double ref_loss_u(const pnn_circuit_params *p, const float *u, const float *du, double eps, const float *wt) {
    size_t bs = (size_t)(p->batch * p->segments), by = (size_t)(p->batch * p->y_dim);
    double *ud = pnn_test_doubles(bs), *y = pnn_test_doubles(by), loss = 0;
    for (size_t i = 0; i < bs; i++) ud[i] = u[i] + eps * (du ? du[i] : 0);
    ref_forward(p, ud, y);
    for (size_t i = 0; i < by; i++) loss += wt[i] * y[i];
    free(ud), free(y);
    return loss;
}

START_TEST(tanh_matches_libm) {
    double worst = 0, worst_rel = 0;
    for (int i = -300000; i <= 300000; i++) {
        float x = (float)i * 4e-5f * (1 + (float)(abs(i) % 5));
        double want = tanh((double)x), err = fabs(pnn_circuit_tanh(x) - want);
        worst = fmax(worst, err);
        if (x != 0) worst_rel = fmax(worst_rel, err / fabs(want));
    }
    measured("tanh_max_abs_error", worst, "at most", 1.5e-7);
    measured("tanh_max_rel_error", worst_rel, "at most", 3e-7);
    ck_assert_msg(worst < 1.5e-7 && worst_rel < 3e-7, "tanh error abs %g rel %g", worst, worst_rel);
    ck_assert(pnn_circuit_tanh(0.0f) == 0.0f && pnn_circuit_tanh(1e-30f) == 1e-30f);
    ck_assert(pnn_circuit_tanh(INFINITY) == 1.0f && pnn_circuit_tanh(-INFINITY) == -1.0f);
    ck_assert(isnan(pnn_circuit_tanh(NAN)));
}
END_TEST

START_TEST(drive_and_its_gradient_match_reference) {
    const int64_t shapes[][3] = {{1, 2, 1}, {3, 7, 3}, {5, 16, 8}, {4, 9, 8}, {257, 33, 5}};
    for (int si = 0; si < 5; si++)
        for (int il = 0; il < 2; il++) {
            pnn_circuit_params p = params(shapes[si][0], shapes[si][1], 1, shapes[si][2], 1, il);
            int64_t b = p.batch, s = p.segments, xd = p.x_dim, td = s - xd;
            size_t nx = (size_t)(b * xd), nu = (size_t)(b * s);
            /* values beyond the rails on both sides, to see the clip and its gradient */
            float *x = random_floats(nx, -1.5f, 1.5f, 10 + (uint64_t)si), *th = random_floats((size_t)td, -1.5f, 1.5f, 20);
            float *u = pnn_test_nan_floats(nu), *du = random_floats(nu, -1, 1, 30), *dx = pnn_test_nan_floats(nx);
            float *dth = random_floats((size_t)td, -1, 1, 40);
            double *xdd = pnn_test_doubles(nx), *tdd = pnn_test_doubles((size_t)td), *want = pnn_test_doubles(nu);
            for (size_t i = 0; i < nx; i++) /* none on a rail, where differences are one-sided */
                if (fabsf(fabsf(x[i]) - 1) < 0.01f) x[i] *= 0.97f;
            for (int64_t i = 0; i < td; i++)
                if (fabsf(fabsf(th[i]) - 1) < 0.01f) th[i] *= 0.97f;
            for (size_t i = 0; i < nx; i++) xdd[i] = x[i];
            for (int64_t i = 0; i < td; i++) tdd[i] = th[i];
            ref_drive(&p, xdd, tdd, want);
            pnn_cpu_circuit_drive(NULL, &p, x, th, u);
            ck_assert_msg(pnn_test_allclose("u", u, want, (int64_t)nu, 0, 0), "shape %d layout %d", si, il);
            /* the drive is linear inside the rails: its gradient is a scatter, checked against
             * the reference by perturbing one input at a time */
            double *gx = pnn_test_doubles(nx), *gt = pnn_test_doubles((size_t)td);
            for (int64_t i = 0; i < td; i++) gt[i] = dth[i];
            pnn_cpu_circuit_drive_backward(NULL, &p, x, th, du, dx, dth);
            double *up = pnn_test_doubles(nu);
            for (size_t k = 0; k < nx + (size_t)td; k++) {
                double *val = k < nx ? &xdd[k] : &tdd[k - nx], saved = *val;
                *val = saved + 1e-3;
                ref_drive(&p, xdd, tdd, up);
                *val = saved;
                double g = 0;
                for (size_t i = 0; i < nu; i++) g += du[i] * (up[i] - want[i]) / 1e-3;
                if (k < nx) gx[k] = g;
                else gt[k - nx] += g;
            }
            ck_assert(pnn_test_allclose("dx", dx, gx, (int64_t)nx, 1e-5, 1e-5));
            ck_assert(pnn_test_allclose("dtheta accumulated", dth, gt, td, 1e-5, 1e-5));
            free(x), free(th), free(u), free(du), free(dx), free(dth), free(xdd), free(tdd), free(want), free(gx);
            free(gt), free(up);
        }
}
END_TEST

START_TEST(forward_matches_reference) {
    /* batch, segments, steps, x_dim, y_dim: odd sizes, y_dim not dividing the run, one sample
     * per step, and a batch past the SIMD block and OpenMP thresholds */
    const int64_t shapes[][5] = {{1, 2, 1, 1, 1}, {3, 7, 9, 3, 5}, {17, 16, 20, 8, 16}, {5, 5, 3, 2, 15},
                                 {70, 33, 12, 20, 7}, {300, 16, 20, 8, 8}};
    for (int si = 0; si < 6; si++) {
        const int64_t *sh = shapes[si];
        pnn_circuit_params p = params(sh[0], sh[1], sh[2], sh[3], sh[4], si % 2);
        size_t nu = (size_t)(p.batch * p.segments), ny = (size_t)(p.batch * p.y_dim);
        float *u = random_floats(nu, -1, 1, 100 + (uint64_t)si), *y = pnn_test_nan_floats(ny), *y2 = pnn_test_nan_floats(ny);
        float *tape = pnn_test_nan_floats(pnn_cpu_circuit_tape_floats(&p));
        double *ud = pnn_test_doubles(nu), *want = pnn_test_doubles(ny);
        for (size_t i = 0; i < nu; i++) ud[i] = u[i];
        pnn_cpu_circuit_forward(NULL, &p, u, y, tape);
        ref_forward(&p, ud, want);
        char name[64];
        snprintf(name, sizeof name, "forward_vs_double_B%lld_S%lld_steps%lld", (long long)sh[0], (long long)sh[1],
                 (long long)sh[2]);
        measured(name, norm_err(y, want, ny), "at most", 1e-4);
        ck_assert_msg(pnn_test_allclose("y", y, want, (int64_t)ny, 2e-5, 1e-4), "shape %d", si);
        /* no tape: the same arithmetic, bit for bit */
        pnn_cpu_circuit_forward(NULL, &p, u, y2, NULL);
        ck_assert_msg(memcmp(y, y2, ny * sizeof *y) == 0, "tape-free forward differs, shape %d", si);
        free(u), free(y), free(y2), free(tape), free(ud), free(want);
    }
}
END_TEST

/* forward with tape, then the VJP into du */
static void run_vjp(const pnn_circuit_params *p, const float *u, const float *dy, float *du) {
    size_t ny = (size_t)(p->batch * p->y_dim);
    float *tape = pnn_test_nan_floats(pnn_cpu_circuit_tape_floats(p)), *y = pnn_test_nan_floats(ny);
    pnn_cpu_circuit_forward(NULL, p, u, y, tape);
    pnn_cpu_circuit_vjp(NULL, p, u, tape, dy, du);
    free(tape), free(y);
}

START_TEST(vjp_matches_finite_differences) {
    const int64_t shapes[][5] = {{1, 2, 1, 1, 1}, {3, 7, 9, 3, 5}, {17, 16, 20, 8, 16}, {5, 5, 3, 2, 15},
                                 {70, 33, 12, 20, 7}};
    for (int si = 0; si < 5; si++) {
        const int64_t *sh = shapes[si];
        pnn_circuit_params p = params(sh[0], sh[1], sh[2], sh[3], sh[4], 1);
        size_t nu = (size_t)(p.batch * p.segments), ny = (size_t)(p.batch * p.y_dim);
        float *u = random_floats(nu, -0.9f, 0.9f, 200 + (uint64_t)si), *dy = random_floats(ny, -1, 1, 300);
        float *du = pnn_test_nan_floats(nu), *dir = random_floats(nu, -1, 1, 400 + (uint64_t)si);
        run_vjp(&p, u, dy, du);
        const double eps = 1e-4;
        double fd = (ref_loss_u(&p, u, dir, eps, dy) - ref_loss_u(&p, u, dir, -eps, dy)) / (2 * eps);
        double got = pnn_test_dot(du, dir, nu);
        char name[64];
        snprintf(name, sizeof name, "vjp_du_vs_fd_B%lld_S%lld", (long long)sh[0], (long long)sh[1]);
        measured(name, fabs(got - fd) / fmax(1e-30, fabs(fd)), "at most", 1e-4);
        ck_assert_msg(fabs(got - fd) <= 1e-4 * fabs(fd) + 1e-6 * norm(du, nu) * norm(dir, nu),
                      "shape %d: vjp %.9g, finite differences %.9g", si, got, fd);
        free(u), free(dy), free(du), free(dir);
    }
    /* every element of du of a small problem */
    pnn_circuit_params p = params(2, 6, 7, 3, 4, 0);
    size_t nu = 12, ny = 8;
    float *u = random_floats(nu, -0.9f, 0.9f, 500), *dy = random_floats(ny, -1, 1, 501), *du = pnn_test_nan_floats(nu);
    float *unit = pnn_test_floats(nu);
    double *want = pnn_test_doubles(nu);
    run_vjp(&p, u, dy, du);
    for (size_t i = 0; i < nu; i++) {
        memset(unit, 0, nu * sizeof *unit);
        unit[i] = 1;
        want[i] = (ref_loss_u(&p, u, unit, 1e-4, dy) - ref_loss_u(&p, u, unit, -1e-4, dy)) / 2e-4;
    }
    ck_assert(pnn_test_allclose("du", du, want, (int64_t)nu, 1e-6, 1e-4));
    free(u), free(dy), free(du), free(unit), free(want);
}
END_TEST

/* Causality: output j is sampled after step n_j, so segments that start at or after n_j have
 * no effect on it, and the VJP of dy = e_j gives them exactly zero. */
START_TEST(vjp_is_causal) {
    pnn_circuit_params p = params(3, 12, 5, 6, 5, 1);
    size_t nu = 36, ny = 15;
    float *u = random_floats(nu, -1, 1, 600), *dy = pnn_test_floats(ny), *du = pnn_test_nan_floats(nu);
    for (int64_t j = 0; j < p.y_dim; j++) {
        memset(dy, 0, ny * sizeof *dy);
        for (int64_t b = 0; b < p.batch; b++) dy[b * p.y_dim + j] = 1;
        run_vjp(&p, u, dy, du);
        int64_t n_j = pnn_circuit_sample_step(j, 60, p.y_dim);
        for (int64_t b = 0; b < p.batch; b++)
            for (int64_t seg = 0; seg < p.segments; seg++) {
                float g = du[b * p.segments + seg];
                if (seg * p.steps >= n_j) ck_assert_msg(g == 0.0f, "output %lld depends on segment %lld", (long long)j,
                                                        (long long)seg);
                else if (seg * p.steps + p.steps <= n_j) ck_assert_msg(g != 0.0f, "segment %lld lost", (long long)seg);
            }
    }
    free(u), free(dy), free(du);
}
END_TEST

/* ---- the device and the twin ---- */

static const pnn_backend *be;

static void setup(void) { be = pnn_backend_cpu(); }

static pnn_tensor matrix(int64_t r, int64_t c, const float *host) {
    pnn_tensor t;
    ck_assert_int_eq(pnn_tensor_init2(&t, be, r, c), PNN_OK);
    if (host) pnn_tensor_from_host(&t, host, r * c);
    return t;
}

static pnn_device *open_dev(const char *uri) {
    pnn_device *dev;
    ck_assert_msg(pnn_device_open(uri, be, &dev) == PNN_OK, "%s: %s", uri, pnn_last_error());
    return dev;
}

/* a device forward on host x and theta; y on the host (malloc'd) */
static float *device_run(pnn_device *dev, const float *x, int64_t rows, const float *theta) {
    const pnn_device_info *in = &dev->info;
    pnn_tensor tx = matrix(rows, in->x_dim, x), ty = matrix(rows, in->y_dim, NULL);
    pnn_tensor th = matrix(1, in->theta_dim, theta);
    ck_assert_msg(pnn_device_forward(dev, &tx, th.data, &ty) == PNN_OK, "%s", pnn_last_error());
    float *y = pnn_test_floats((size_t)(rows * in->y_dim));
    pnn_tensor_to_host(&ty, y, rows * in->y_dim);
    pnn_tensor_free(&tx), pnn_tensor_free(&ty), pnn_tensor_free(&th);
    return y;
}

/* the twin's forward (taped in slot when slot >= 0) on host x and theta */
static float *twin_run(pnn_twin *tw, const float *x, int64_t rows, const float *theta, int slot) {
    const pnn_device_info *in = &tw->info;
    pnn_tensor tx = matrix(rows, in->x_dim, x), ty = matrix(rows, in->y_dim, NULL);
    pnn_tensor th = matrix(1, in->theta_dim, theta);
    ck_assert_msg(tw->iface->forward(tw, &tx, th.data, &ty, slot, NULL) == PNN_OK, "%s", pnn_last_error());
    float *y = pnn_test_floats((size_t)(rows * in->y_dim));
    pnn_tensor_to_host(&ty, y, rows * in->y_dim);
    pnn_tensor_free(&tx), pnn_tensor_free(&ty), pnn_tensor_free(&th);
    return y;
}

static double max_diff(const float *a, const float *b, size_t n) {
    double d = 0;
    for (size_t i = 0; i < n; i++) d = fmax(d, fabs((double)a[i] - b[i]));
    return d;
}

START_TEST(ideal_device_equals_twin) {
    const char *uris[] = {"sim:circuit?mismatch=0&noise=0",
                          "sim:circuit?mismatch=0&noise=0&segments=9&x_dim=4&y_dim=13&layout=concat&steps=15&T=3"};
    for (int k = 0; k < 2; k++) {
        pnn_device *dev = open_dev(uris[k]);
        pnn_twin *tw;
        ck_assert_int_eq(pnn_twin_create("analytic", dev, -1, &tw), PNN_OK);
        int64_t rows = 19, xd = dev->info.x_dim, yd = dev->info.y_dim;
        float *x = random_floats((size_t)(rows * xd), -1, 1, 700), *th = random_floats((size_t)dev->info.theta_dim, -1, 1, 701);
        float *yd_ = device_run(dev, x, rows, th), *yt = twin_run(tw, x, rows, th, -1);
        measured(k ? "ideal_device_minus_twin_concat" : "ideal_device_minus_twin", max_diff(yd_, yt, (size_t)(rows * yd)),
                 "at most", 1e-6);
        ck_assert_msg(max_diff(yd_, yt, (size_t)(rows * yd)) <= 1e-6, "%s: device and twin differ by %g", uris[k],
                      max_diff(yd_, yt, (size_t)(rows * yd)));
        free(yd_), free(x), free(th), free(yt);
        pnn_twin_free(tw);
        pnn_device_close(dev);
    }
    /* the default device differs from its twin by far more than its noise */
    pnn_device *real = open_dev("sim:circuit?noise=0&seed=3");
    pnn_twin *tw;
    ck_assert_int_eq(pnn_twin_create("analytic", real, -1, &tw), PNN_OK);
    float *x = random_floats(8 * 8, -1, 1, 710), *th = random_floats(8, -1, 1, 711);
    float *yr = device_run(real, x, 8, th), *yt = twin_run(tw, x, 8, th, -1);
    measured("default_device_minus_twin_seed3", max_diff(yr, yt, 64), "at least", 0.05);
    ck_assert_msg(max_diff(yr, yt, 64) > 0.05, "mismatched device too close to the twin: %g", max_diff(yr, yt, 64));
    free(x), free(th), free(yr), free(yt);
    pnn_twin_free(tw);
    pnn_device_close(real);
}
END_TEST

/* <wt, y(x, theta)> of the ideal circuit, by the double reference, at x + eps dx, theta + eps dth */
static double ref_loss_twin(const pnn_circuit_params *p0, int64_t rows, const float *x, const float *th,
                            const float *vx, const float *vth, double eps, const float *wt) {
    pnn_circuit_params p = *p0;
    p.batch = rows;
    size_t nx = (size_t)(rows * p.x_dim), nt = (size_t)(p.segments - p.x_dim), nu = (size_t)(rows * p.segments);
    double *xd = pnn_test_doubles(nx), *td = pnn_test_doubles(nt), *u = pnn_test_doubles(nu), *y = pnn_test_doubles((size_t)(rows * p.y_dim)), loss = 0;
    for (size_t i = 0; i < nx; i++) xd[i] = x[i] + eps * (vx ? vx[i] : 0);
    for (size_t i = 0; i < nt; i++) td[i] = th[i] + eps * (vth ? vth[i] : 0);
    ref_drive(&p, xd, td, u);
    ref_forward(&p, u, y);
    for (int64_t i = 0; i < rows * p.y_dim; i++) loss += wt[i] * y[i];
    free(xd), free(td), free(u), free(y);
    return loss;
}

/* Through the twin's public interface: dx and dtheta against central differences, both layouts,
 * with the taped forward's modelled noise on (it shifts y, not the Jacobian). */
START_TEST(twin_vjp_matches_finite_differences) {
    struct {
        const char *uri;
        int64_t s, steps, xd, yd;
        double T;
        int interleave;
    } cases[] = {{"sim:circuit?segments=7&x_dim=3&y_dim=5&steps=8&T=1&seed=2", 7, 8, 3, 5, 1, 1},
                 {"sim:circuit?segments=10&x_dim=6&y_dim=10&steps=9&layout=concat&T=2", 10, 9, 6, 10, 2, 0}};
    for (int k = 0; k < 2; k++) {
        pnn_device *dev = open_dev(cases[k].uri);
        pnn_twin *tw;
        ck_assert_int_eq(pnn_twin_create("analytic", dev, -1, &tw), PNN_OK);
        pnn_circuit_params p = params(0, cases[k].s, cases[k].steps, cases[k].xd, cases[k].yd, cases[k].interleave);
        p.dt = (float)(cases[k].T / (double)(cases[k].s * cases[k].steps));
        int64_t rows = 4, xd = p.x_dim, yd = p.y_dim, td = p.segments - xd;
        size_t nx = (size_t)(rows * xd), ny = (size_t)(rows * yd);
        float *x = random_floats(nx, -0.9f, 0.9f, 800), *th = random_floats((size_t)td, -0.9f, 0.9f, 801);
        float *wt = random_floats(ny, -1, 1, 802), *vx = random_floats(nx, -1, 1, 803);
        float *vth = random_floats((size_t)td, -1, 1, 804);
        free(twin_run(tw, x, rows, th, 3));
        pnn_tensor tdy = matrix(rows, yd, wt), tdx = matrix(rows, xd, NULL), th_d = matrix(1, td, th);
        pnn_tensor tdth = matrix(1, td, NULL);
        pnn_tensor_zero(&tdth);
        ck_assert_int_eq(tw->iface->vjp(tw, th_d.data, &tdy, &tdx, tdth.data, 3), PNN_OK);
        float *dx = pnn_test_floats(nx), *dth = pnn_test_floats((size_t)td);
        pnn_tensor_to_host(&tdx, dx, (int64_t)nx);
        pnn_tensor_to_host(&tdth, dth, td);
        const double eps = 1e-4;
        double fdx = (ref_loss_twin(&p, rows, x, th, vx, NULL, eps, wt) -
                      ref_loss_twin(&p, rows, x, th, vx, NULL, -eps, wt)) / (2 * eps);
        double fdt = (ref_loss_twin(&p, rows, x, th, NULL, vth, eps, wt) -
                      ref_loss_twin(&p, rows, x, th, NULL, vth, -eps, wt)) / (2 * eps);
        double gx = pnn_test_dot(dx, vx, nx), gt = pnn_test_dot(dth, vth, (size_t)td);
        measured(k ? "twin_dx_vs_fd_concat" : "twin_dx_vs_fd_interleave", fabs(gx - fdx) / fabs(fdx), "at most", 1e-4);
        measured(k ? "twin_dtheta_vs_fd_concat" : "twin_dtheta_vs_fd_interleave", fabs(gt - fdt) / fabs(fdt), "at most", 1e-4);
        ck_assert_msg(fabs(gx - fdx) <= 1e-4 * fabs(fdx) + 1e-7, "%s: dx.v %.9g, finite differences %.9g",
                      cases[k].uri, gx, fdx);
        ck_assert_msg(fabs(gt - fdt) <= 1e-4 * fabs(fdt) + 1e-7, "%s: dtheta.v %.9g, finite differences %.9g",
                      cases[k].uri, gt, fdt);
        /* a vjp without its taped forward is refused */
        ck_assert_int_eq(tw->iface->vjp(tw, th_d.data, &tdy, &tdx, tdth.data, 4), PNN_ERR_INVALID);
        free(x), free(th), free(wt), free(vx), free(vth), free(dx), free(dth);
        pnn_tensor_free(&tdy), pnn_tensor_free(&tdx), pnn_tensor_free(&th_d), pnn_tensor_free(&tdth);
        pnn_twin_free(tw);
        pnn_device_close(dev);
    }
}
END_TEST

/* A device whose reported dims are not its circuit's (a crafted server or recording header)
 * gets no twin; nor does one whose system URI is another system's. */
START_TEST(twin_refuses_device_dims_of_another_system) {
    pnn_device *dev = open_dev("sim:circuit?segments=16");
    pnn_device_info good = dev->info;
    const int64_t bad[][3] = {{40, 40, 1640}, {8, 8, 9}, {9, 8, 7}, {8, 7, 8}, {0, 0, 0}, {16, 8, 0}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        dev->info.x_dim = bad[i][0], dev->info.y_dim = bad[i][1], dev->info.theta_dim = bad[i][2];
        pnn_twin *tw = (pnn_twin *)1;
        ck_assert_int_eq(pnn_twin_create("analytic", dev, -1, &tw), PNN_ERR_FORMAT);
        ck_assert_ptr_null(tw);
        ck_assert_ptr_nonnull(strstr(pnn_last_error(), "not a circuit system"));
    }
    pnn_twin *tw;
    dev->info = good;
    snprintf(dev->info.system_uri, sizeof dev->info.system_uri, "sim:circuit?segments=20");
    ck_assert_int_eq(pnn_twin_create("analytic", dev, -1, &tw), PNN_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(pnn_last_error(), "segments=20"));
    snprintf(dev->info.system_uri, sizeof dev->info.system_uri, "sim:oscillator?n=8");
    ck_assert_int_eq(pnn_twin_create("analytic", dev, -1, &tw), PNN_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(pnn_last_error(), "oscillator"));
    /* settings that break the step bound are refused by the twin too (a crafted system URI) */
    snprintf(dev->info.system_uri, sizeof dev->info.system_uri, "sim:circuit?segments=16&steps=2");
    ck_assert_int_eq(pnn_twin_create("analytic", dev, -1, &tw), PNN_ERR_INVALID);
    dev->info = good;
    ck_assert_int_eq(pnn_twin_create("analytic", dev, -1, &tw), PNN_OK);
    pnn_twin_free(tw);
    pnn_device_close(dev);
}
END_TEST

START_TEST(keys_are_checked) {
    pnn_device *dev;
    const char *bad[][2] = {{"sim:circuit?segments=1", "segments=1"},
                            {"sim:circuit?segments=8&x_dim=8", "x_dim=8"},
                            {"sim:circuit?x_dim=0", "x_dim=0"},
                            {"sim:circuit?y_dim=0", "y_dim=0"},
                            {"sim:circuit?segments=4&steps=1&T=0.1&y_dim=5", "y_dim=5"},
                            {"sim:circuit?layout=zigzag", "layout=zigzag: expected one of concat, interleave"},
                            {"sim:circuit?layout=interleaved", "did you mean 'interleave'"},
                            {"sim:circuit?steps=0", "steps=0"},
                            {"sim:circuit?steps=11", "largest allowed dt is 0.0224.*steps >= 12"},
                            {"sim:circuit?Qf=0", "Qf=0"},
                            {"sim:circuit?w0=-1", "w0=-1"},
                            {"sim:circuit?alpha=-1", "alpha=-1"},
                            {"sim:circuit?mismatch=6", "mismatch=6"},
                            {"sim:circuit?mismatch=5&drift=0.2", "mismatch \\* drift"},
                            {"sim:circuit?noise=-0.1", "noise=-0.1"},
                            {"sim:circuit?nt=5", "unknown parameter 'nt'"},
                            {"sim:circuit?segmets=5", "did you mean 'segments'"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ck_assert_msg(pnn_device_open(bad[i][0], be, &dev) == PNN_ERR_INVALID, "%s was accepted", bad[i][0]);
        regex_t re;
        ck_assert_int_eq(regcomp(&re, bad[i][1], REG_EXTENDED | REG_NOSUB), 0);
        ck_assert_msg(regexec(&re, pnn_last_error(), 0, NULL, 0) == 0, "%s: message '%s' lacks /%s/", bad[i][0],
                      pnn_last_error(), bad[i][1]);
        regfree(&re);
    }
    /* the smallest step count the bound allows is accepted, one less is not */
    dev = open_dev("sim:circuit?steps=12");
    ck_assert_int_eq(dev->info.x_dim, 8);
    ck_assert_int_eq(dev->info.theta_dim, 8);
    ck_assert_int_eq(dev->info.y_dim, 8);
    ck_assert_str_eq(dev->info.theta_parts[0].name, "drive");
    ck_assert(dev->info.x_range[0] == -1.0f && dev->info.x_range[1] == 1.0f);
    pnn_device_close(dev);
}
END_TEST

START_TEST(noise_has_its_size_and_is_reproducible) {
    pnn_device *ideal = open_dev("sim:circuit?mismatch=0&noise=0"), *noisy = open_dev("sim:circuit?mismatch=0&noise=0.05");
    int64_t rows = 400;
    float *x = random_floats((size_t)(rows * 8), -1, 1, 900), *th = random_floats(8, -1, 1, 901);
    float *y0 = device_run(ideal, x, rows, th), *y1 = device_run(noisy, x, rows, th);
    double s = 0, s2 = 0;
    for (int64_t i = 0; i < rows * 8; i++) s += y1[i] - y0[i], s2 += (y1[i] - y0[i]) * (y1[i] - y0[i]);
    double mean = s / (double)(rows * 8), sd = sqrt(s2 / (double)(rows * 8) - mean * mean);
    measured("noise_sd_minus_0.05", fabs(sd - 0.05), "at most", 0.003);
    ck_assert_msg(fabs(mean) < 0.005 && fabs(sd - 0.05) < 0.003, "noise mean %g sd %g", mean, sd);
    noisy->calls = 0;
    float *y2 = device_run(noisy, x, rows, th);
    ck_assert_int_eq(memcmp(y1, y2, (size_t)(rows * 8) * sizeof *y1), 0);
    free(x), free(th), free(y0), free(y1), free(y2);
    pnn_device_close(ideal), pnn_device_close(noisy);
}
END_TEST

/* The drift is a function of (seed, call index): two devices with the same seed give the same
 * outputs at the same call, and a device resumed at call k (its counter restored, as a
 * checkpoint does) gives what the uninterrupted one gave at call k. */
START_TEST(drift_is_reproducible_from_its_seed) {
    const char *uri = "sim:circuit?noise=0&drift=0.1&drift_period=50&seed=7";
    pnn_device *a = open_dev(uri), *b = open_dev(uri), *c = open_dev("sim:circuit?noise=0&drift=0.1&drift_period=50&seed=8");
    pnn_device *still = open_dev("sim:circuit?noise=0&drift=0&seed=7");
    int64_t rows = 5, ny = rows * 8, calls = 40, k = 23;
    float *x = random_floats((size_t)(rows * 8), -1, 1, 1000), *th = random_floats(8, -1, 1, 1001);
    float **ya = malloc((size_t)calls * sizeof *ya);
    double moved = 0;
    float *first_still = device_run(still, x, rows, th);
    for (int64_t i = 0; i < calls; i++) {
        ya[i] = device_run(a, x, rows, th);
        float *yb = device_run(b, x, rows, th), *yc = device_run(c, x, rows, th), *ys = device_run(still, x, rows, th);
        ck_assert_msg(memcmp(ya[i], yb, (size_t)ny * sizeof *yb) == 0, "same seed differs at call %lld", (long long)i);
        ck_assert_msg(memcmp(ya[i], yc, (size_t)ny * sizeof *yc) != 0, "other seed equal at call %lld", (long long)i);
        ck_assert_msg(memcmp(first_still, ys, (size_t)ny * sizeof *ys) == 0, "drift=0 moved at call %lld", (long long)i);
        moved = fmax(moved, max_diff(ya[0], ya[i], (size_t)ny));
        free(yb), free(yc), free(ys);
    }
    measured("drift_max_output_change_over_40_calls", moved, "at least", 1e-3);
    ck_assert_msg(moved > 1e-3, "the drift did not move the outputs over %lld calls: %g", (long long)calls, moved);
    /* resume: a fresh device with the counter at k, and the first device rewound to k */
    pnn_device *resumed = open_dev(uri);
    resumed->calls = (uint64_t)k;
    a->calls = (uint64_t)k;
    for (int64_t i = k; i < calls; i++) {
        float *yr = device_run(resumed, x, rows, th), *yw = device_run(a, x, rows, th);
        ck_assert_msg(memcmp(ya[i], yr, (size_t)ny * sizeof *yr) == 0, "resumed device differs at call %lld", (long long)i);
        ck_assert_msg(memcmp(ya[i], yw, (size_t)ny * sizeof *yw) == 0, "rewound device differs at call %lld", (long long)i);
        free(yr), free(yw);
    }
    for (int64_t i = 0; i < calls; i++) free(ya[i]);
    free(ya), free(x), free(th), free(first_still);
    pnn_device_close(a), pnn_device_close(b), pnn_device_close(c), pnn_device_close(still), pnn_device_close(resumed);
}
END_TEST

/* ---- equalities of the physics ---- */

/* Without the tanh element the circuit is a linear oscillator: its response to a constant drive
 * u0 from rest is v(t) = u0 (1 - e^{-z w0 t} (cos wd t + z/sqrt(1 - z^2) sin wd t)), z = 1/(2 Qf),
 * wd = w0 sqrt(1 - z^2). RK4 at w0 dt = 0.05 is within 1e-5 of it at every sample. */
START_TEST(linear_step_response_is_exact) {
    pnn_circuit_params p = params(2, 4, 200, 2, 40, 0);
    p.alpha = 0, p.dt = 8.0f / 800; /* T = 8: four segments of two natural periods */
    float u[8] = {0.7f, 0.7f, 0.7f, 0.7f, -0.3f, -0.3f, -0.3f, -0.3f}, y[80];
    pnn_cpu_circuit_forward(NULL, &p, u, y, NULL);
    double z = 1 / (2.0 * p.qf), w0 = p.w0, wd = w0 * sqrt(1 - z * z), worst = 0;
    for (int b = 0; b < 2; b++)
        for (int j = 0; j < 40; j++) {
            double t = (double)pnn_circuit_sample_step(j, 800, 40) * p.dt;
            double want = u[4 * b] * (1 - exp(-z * w0 * t) * (cos(wd * t) + z / sqrt(1 - z * z) * sin(wd * t)));
            worst = fmax(worst, fabs(y[b * 40 + j] - want));
        }
    measured("linear_step_response_vs_exact", worst, "at most", 1e-5);
    ck_assert_msg(worst < 1e-5, "step response off by %g", worst);
}
END_TEST

/* Linear circuit: superposition, y(a u1 + b u2) = a y(u1) + b y(u2); with the tanh element it
 * fails by far more than rounding (the nonlinearity is really there). */
START_TEST(superposition_holds_only_without_tanh) {
    for (int nonlinear = 0; nonlinear < 2; nonlinear++) {
        pnn_circuit_params p = params(3, 16, 20, 8, 16, 1);
        if (!nonlinear) p.alpha = 0;
        float *u1 = random_floats(48, -0.5f, 0.5f, 1100), *u2 = random_floats(48, -0.5f, 0.5f, 1101);
        float mix[48], y1[48], y2[48], ym[48];
        for (int i = 0; i < 48; i++) mix[i] = 0.6f * u1[i] - 0.8f * u2[i];
        pnn_cpu_circuit_forward(NULL, &p, u1, y1, NULL);
        pnn_cpu_circuit_forward(NULL, &p, u2, y2, NULL);
        pnn_cpu_circuit_forward(NULL, &p, mix, ym, NULL);
        double worst = 0;
        for (int i = 0; i < 48; i++) worst = fmax(worst, fabs(ym[i] - (0.6 * y1[i] - 0.8 * y2[i])));
        measured(nonlinear ? "superposition_defect_with_tanh" : "superposition_defect_linear", worst,
                 nonlinear ? "at least" : "at most", nonlinear ? 1e-2 : 1e-5);
        if (nonlinear) ck_assert_msg(worst > 1e-2, "tanh term had no effect: %g", worst);
        else ck_assert_msg(worst < 1e-5, "superposition off by %g", worst);
        free(u1), free(u2);
    }
}
END_TEST

/* The DC operating point: under a constant drive the damped circuit settles where
 * w0^2 v + alpha tanh(kappa v) = w0^2 u0 (found here by bisection). */
START_TEST(settles_at_the_dc_operating_point) {
    pnn_circuit_params p = params(3, 2, 1500, 1, 1, 0);
    p.dt = 60.0f / 3000; /* 60 natural periods, many decay times at Qf = 4 */
    float u[6] = {0.8f, 0.8f, -0.35f, -0.35f, 0.05f, 0.05f}, y[3];
    pnn_cpu_circuit_forward(NULL, &p, u, y, NULL);
    for (int b = 0; b < 3; b++) {
        double a = (double)p.w0 * p.w0, lo = -2, hi = 2;
        for (int it = 0; it < 100; it++) {
            double mid = 0.5 * (lo + hi);
            if (a * mid + p.alpha * tanh(p.kappa * mid) > a * u[2 * b]) hi = mid;
            else lo = mid;
        }
        measured("dc_operating_point_error", fabs(y[b] - lo), "at most", 1e-5);
        ck_assert_msg(fabs(y[b] - lo) < 1e-5, "u0 %g: settled at %.7g, operating point %.7g", u[2 * b], y[b], lo);
        ck_assert_msg(fabs(y[b] - u[2 * b]) > 0.01 * fabs(u[2 * b]), "the saturating element did not shift v");
    }
}
END_TEST

static Suite *circuit_suite(void) {
    Suite *s = suite_create("circuit");
    TCase *tc = tcase_create("cpu");
    tcase_set_timeout(tc, 300);
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_add_test(tc, tanh_matches_libm);
    tcase_add_test(tc, drive_and_its_gradient_match_reference);
    tcase_add_test(tc, forward_matches_reference);
    tcase_add_test(tc, vjp_matches_finite_differences);
    tcase_add_test(tc, vjp_is_causal);
    tcase_add_test(tc, ideal_device_equals_twin);
    tcase_add_test(tc, twin_vjp_matches_finite_differences);
    tcase_add_test(tc, twin_refuses_device_dims_of_another_system);
    tcase_add_test(tc, keys_are_checked);
    tcase_add_test(tc, noise_has_its_size_and_is_reproducible);
    tcase_add_test(tc, drift_is_reproducible_from_its_seed);
    tcase_add_test(tc, linear_step_response_is_exact);
    tcase_add_test(tc, superposition_holds_only_without_tanh);
    tcase_add_test(tc, settles_at_the_dc_operating_point);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return pnn_test_run(circuit_suite()); }
