/* The CPU oscillator kernels (kernels/cpu/oscillator_cpu.c) against plain double-precision
 * references written here: Q from C and its gradient, the RK4 forward on odd shapes, and the
 * VJP against central finite differences of the double reference. Shapes include ones large
 * enough to take the OpenMP paths; work and tape start as NaN so reads of unwritten scratch
 * show up. */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/systems/oscillator/oscillator.h"
#include "kernels/systems/oscillator/oscillator_ops.h"
#include "pnn/pnn.h"
#include "tests/testutil.h"

/* inputs of this file's cases: U(lo, hi) from (2024, stream) */
static float *random_floats(size_t n, float lo, float hi, uint64_t stream) {
    return pnn_test_random_floats(n, lo, hi, 2024, stream);
}

static double *to_doubles(const float *x, size_t n) {
    double *y = pnn_test_doubles(n);
    for (size_t i = 0; i < n; i++) y[i] = x[i];
    return y;
}

/* Q from C, literally as PHYSICS.md states it */
static void ref_build_q(int64_t n, const double *c, double *q) {
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < n; j++) q[i * n + j] = 0.5 * (c[i * n + j] + c[j * n + i]);
    for (int64_t i = 0; i < n; i++) {
        double sum = 0;
        for (int64_t k = 0; k < n; k++) sum += 0.5 * (c[k * n + i] + c[i * n + k]);
        q[i * n + i] = -sum;
    }
}

/* a = -s + s Q + e, s = sin((1 + eta) x), per row */
static void ref_accel(int64_t rows, int64_t n, double eta, const double *x, const double *q,
                      const double *e, double *a) {
    double *s = pnn_test_doubles((size_t)n);
    for (int64_t b = 0; b < rows; b++) {
        for (int64_t i = 0; i < n; i++) s[i] = sin((1 + eta) * x[b * n + i]);
        for (int64_t j = 0; j < n; j++) {
            double sum = -s[j] + e[j];
            for (int64_t i = 0; i < n; i++) sum += s[i] * q[i * n + j];
            a[b * n + j] = sum;
        }
    }
    free(s);
}

/* classic RK4, stage by stage as written in the brief, from (q0, 0) over nt steps */
static void ref_forward(int64_t rows, int64_t n, int nt, double h, double eta, const double *q0,
                        const double *q_mat, const double *e, double *qT) {
    size_t bn = (size_t)(rows * n);
    double *q = pnn_test_doubles(bn), *p = pnn_test_doubles(bn), *xs = pnn_test_doubles(bn), *vs = pnn_test_doubles(bn);
    double *kq[4], *kp[4];
    for (int k = 0; k < 4; k++) kq[k] = pnn_test_doubles(bn), kp[k] = pnn_test_doubles(bn);
    memcpy(q, q0, bn * sizeof *q);
    const double frac[4] = {0, 0.5, 0.5, 1};
    for (int t = 0; t < nt; t++) {
        for (int k = 0; k < 4; k++) {
            for (size_t i = 0; i < bn; i++) {
                xs[i] = k ? q[i] + frac[k] * h * kq[k - 1][i] : q[i];
                vs[i] = k ? p[i] + frac[k] * h * kp[k - 1][i] : p[i];
            }
            memcpy(kq[k], vs, bn * sizeof *vs);
            ref_accel(rows, n, eta, xs, q_mat, e, kp[k]);
        }
        for (size_t i = 0; i < bn; i++) {
            q[i] += h / 6 * (kq[0][i] + 2 * kq[1][i] + 2 * kq[2][i] + kq[3][i]);
            p[i] += h / 6 * (kp[0][i] + 2 * kp[1][i] + 2 * kp[2][i] + kp[3][i]);
        }
    }
    memcpy(qT, q, bn * sizeof *q);
    for (int k = 0; k < 4; k++) free(kq[k]), free(kp[k]);
    free(q), free(p), free(xs), free(vs);
}

/* One random problem: inputs as the brief's distributions, in floats. */
typedef struct {
    pnn_osc_params p;
    float *q0, *q_mat, *e;
} problem;

static problem make_problem(int64_t rows, int64_t n, int nt, float eta, uint64_t stream) {
    problem pr = {{rows, n, nt, 0.1f, eta}, NULL, NULL, NULL};
    float r = 1.0f / sqrtf((float)n);
    pr.q0 = random_floats((size_t)(rows * n), -1, 1, 3 * stream);
    float *c = random_floats((size_t)(n * n), -r, r, 3 * stream + 1);
    pr.q_mat = pnn_test_floats((size_t)(n * n));
    pnn_cpu_osc_build_q(NULL, n, c, pr.q_mat);
    free(c);
    pr.e = random_floats((size_t)n, -r, r, 3 * stream + 2);
    return pr;
}

static void free_problem(problem *pr) { free(pr->q0), free(pr->q_mat), free(pr->e); }

/* L = <w, qT(q0 + eps vq0, Q + eps vQ, e + eps ve)> by the double reference */
static double ref_loss(const problem *pr, const double *w, double eps, const float *vq0,
                       const float *vq, const float *ve) {
    int64_t rows = pr->p.batch, n = pr->p.n;
    size_t bn = (size_t)(rows * n), nn = (size_t)(n * n);
    double *q0 = pnn_test_doubles(bn), *qm = pnn_test_doubles(nn), *e = pnn_test_doubles((size_t)n), *qT = pnn_test_doubles(bn);
    for (size_t i = 0; i < bn; i++) q0[i] = pr->q0[i] + eps * (vq0 ? vq0[i] : 0);
    for (size_t i = 0; i < nn; i++) qm[i] = pr->q_mat[i] + eps * (vq ? vq[i] : 0);
    for (int64_t i = 0; i < n; i++) e[i] = pr->e[i] + eps * (ve ? ve[i] : 0);
    ref_forward(rows, n, pr->p.nt, pr->p.dt, pr->p.eta, q0, qm, e, qT);
    double loss = 0;
    for (size_t i = 0; i < bn; i++) loss += w[i] * qT[i];
    free(q0), free(qm), free(e), free(qT);
    return loss;
}

static double norm(const float *a, size_t n) { return sqrt(pnn_test_dot(a, a, n)); }

/* forward with tape, then VJP into dq0, dQ += , de += */
static void run_vjp(const problem *pr, const float *dqT, float *dq0, float *dq_mat, float *de) {
    size_t bn = (size_t)(pr->p.batch * pr->p.n);
    float *tape = pnn_test_nan_floats(pnn_cpu_osc_tape_floats(&pr->p));
    float *work = pnn_test_nan_floats(pnn_cpu_osc_work_floats(&pr->p));
    float *qT = pnn_test_nan_floats(bn);
    pnn_cpu_osc_forward(NULL, &pr->p, pr->q0, pr->q_mat, pr->e, qT, tape, work);
    for (size_t i = 0; i < pnn_cpu_osc_work_floats(&pr->p); i++) work[i] = NAN;
    pnn_cpu_osc_vjp(NULL, &pr->p, tape, pr->q_mat, dqT, dq0, dq_mat, de, work);
    free(tape), free(work), free(qT);
}

START_TEST(sincos_matches_libm) {
    double worst = 0;
    for (int i = -400000; i <= 400000; i++) {
        float x = (float)i * 2.5e-4f * (1 + (float)(abs(i) % 7));
        float s, c;
        pnn_osc_sincos(x, &s, &c);
        double es = fabs(s - sin((double)x)), ec = fabs(c - cos((double)x));
        if (es > worst) worst = es;
        if (ec > worst) worst = ec;
    }
    ck_assert_msg(worst < 2.5e-7, "sincos max abs error %g", worst);
    float s, c;
    pnn_osc_sincos(0.0f, &s, &c);
    ck_assert(s == 0.0f && c == 1.0f);
    pnn_osc_sincos(NAN, &s, &c);
    ck_assert(isnan(s) && isnan(c));
    pnn_osc_sincos(INFINITY, &s, &c);
    ck_assert(isnan(s) && isnan(c));
}
END_TEST

START_TEST(build_q_matches_reference) {
    const int64_t sizes[] = {1, 2, 7, 33, 200};
    for (int si = 0; si < 5; si++) {
        int64_t n = sizes[si];
        size_t nn = (size_t)(n * n);
        float *c = random_floats(nn, -1, 1, 100 + (uint64_t)si), *q = pnn_test_nan_floats(nn);
        double *cd = to_doubles(c, nn), *want = pnn_test_doubles(nn);
        pnn_cpu_osc_build_q(NULL, n, c, q);
        ref_build_q(n, cd, want);
        ck_assert_msg(pnn_test_allclose("build_q", q, want, (int64_t)nn, 1e-5, 1e-5), "n = %lld",
                      (long long)n);
        free(c), free(q), free(cd), free(want);
    }
}
END_TEST

START_TEST(build_q_backward_matches_finite_differences) {
    const int64_t sizes[] = {1, 2, 7, 33, 200};
    for (int si = 0; si < 5; si++) {
        int64_t n = sizes[si];
        size_t nn = (size_t)(n * n);
        float *c = random_floats(nn, -1, 1, 200 + (uint64_t)si);
        float *w = random_floats(nn, -1, 1, 300 + (uint64_t)si);
        float *dc = random_floats(nn, -1, 1, 400 + (uint64_t)si);
        double *want = to_doubles(dc, nn), *cd = to_doubles(c, nn), *q = pnn_test_doubles(nn);
        pnn_cpu_osc_build_q_backward(NULL, n, w, dc);
        /* L = sum W * Q(C) is linear in C, so central differences are exact up to rounding;
         * the biggest size checks a sample of entries only */
        const double eps = 1e-3;
        size_t stride = n > 40 ? 37 : 1;
        double *sel = pnn_test_doubles(nn);
        float *got = pnn_test_floats(nn);
        int64_t count = 0;
        for (size_t i = 0; i < nn; i += stride) {
            double loss[2];
            for (int side = 0; side < 2; side++) {
                double saved = cd[i];
                cd[i] += side ? -eps : eps;
                ref_build_q(n, cd, q);
                loss[side] = 0;
                for (size_t k = 0; k < nn; k++) loss[side] += w[k] * q[k];
                cd[i] = saved;
            }
            sel[count] = want[i] + (loss[0] - loss[1]) / (2 * eps);
            got[count++] = dc[i];
        }
        ck_assert_msg(pnn_test_allclose("build_q_backward", got, sel, count, 1e-5, 1e-5), "n = %lld",
                      (long long)n);
        free(c), free(w), free(dc), free(want), free(cd), free(q), free(sel), free(got);
    }
}
END_TEST

START_TEST(forward_matches_reference) {
    const int64_t rows_list[] = {1, 3, 17}, n_list[] = {1, 5, 33, 100};
    const int nt_list[] = {1, 5};
    const float eta_list[] = {0.0f, 0.1f};
    uint64_t stream = 1;
    for (int bi = 0; bi < 4; bi++)
        for (int ni = 0; ni < 4; ni++)
            for (int ti = 0; ti < 2; ti++)
                for (int ei = 0; ei < 2; ei++) {
                    /* the last "batch" is a shape past the OpenMP threshold */
                    int64_t rows = bi < 3 ? rows_list[bi] : 64, n = bi < 3 ? n_list[ni] : 520;
                    if (bi == 3 && (ni || ti == 0 || ei == 0)) continue;
                    problem pr = make_problem(rows, n, nt_list[ti], eta_list[ei], stream++);
                    size_t bn = (size_t)(rows * n), nn = (size_t)(n * n);
                    float *qT = pnn_test_nan_floats(bn);
                    float *tape = pnn_test_nan_floats(pnn_cpu_osc_tape_floats(&pr.p));
                    float *work = pnn_test_nan_floats(pnn_cpu_osc_work_floats(&pr.p));
                    pnn_cpu_osc_forward(NULL, &pr.p, pr.q0, pr.q_mat, pr.e, qT, tape, work);
                    double *q0 = to_doubles(pr.q0, bn), *qm = to_doubles(pr.q_mat, nn);
                    double *e = to_doubles(pr.e, (size_t)n), *want = pnn_test_doubles(bn);
                    ref_forward(rows, n, pr.p.nt, pr.p.dt, pr.p.eta, q0, qm, e, want);
                    ck_assert_msg(pnn_test_allclose("qT", qT, want, (int64_t)bn, 1e-5, 1e-4),
                                  "B %lld N %lld nt %d eta %g", (long long)rows, (long long)n,
                                  pr.p.nt, pr.p.eta);
                    free(qT), free(tape), free(work), free(q0), free(qm), free(e), free(want);
                    free_problem(&pr);
                }
}
END_TEST

START_TEST(tape_free_forward_is_bit_identical) {
    const int64_t shapes[][2] = {{1, 1}, {3, 33}, {17, 100}, {64, 520}};
    for (int si = 0; si < 4; si++) {
        problem pr = make_problem(shapes[si][0], shapes[si][1], 5, 0.1f, 500 + (uint64_t)si);
        size_t bn = (size_t)(pr.p.batch * pr.p.n);
        float *taped = pnn_test_nan_floats(bn), *bare = pnn_test_nan_floats(bn);
        float *tape = pnn_test_nan_floats(pnn_cpu_osc_tape_floats(&pr.p));
        float *work = pnn_test_nan_floats(pnn_cpu_osc_work_floats(&pr.p));
        pnn_cpu_osc_forward(NULL, &pr.p, pr.q0, pr.q_mat, pr.e, taped, tape, work);
        for (size_t i = 0; i < pnn_cpu_osc_work_floats(&pr.p); i++) work[i] = NAN;
        pnn_cpu_osc_forward(NULL, &pr.p, pr.q0, pr.q_mat, pr.e, bare, NULL, work);
        ck_assert_msg(memcmp(taped, bare, bn * sizeof *bare) == 0, "B %lld N %lld",
                      (long long)pr.p.batch, (long long)pr.p.n);
        free(taped), free(bare), free(tape), free(work);
        free_problem(&pr);
    }
}
END_TEST

/* |got - want| within 1e-3 relative, with a floor scaled by the sizes of the gradient and the
 * direction for directional derivatives that happen to be near zero */
static void check_directional(const char *what, double got, double want, double scale) {
    ck_assert_msg(fabs(got - want) <= 1e-3 * fabs(want) + 1e-5 * scale,
                  "%s: vjp gives %.9g, finite differences %.9g", what, got, want);
}

START_TEST(vjp_matches_directional_finite_differences) {
    const int64_t shapes[][2] = {{1, 1}, {3, 5}, {17, 33}, {4, 100}, {64, 520}};
    uint64_t stream = 600;
    for (int si = 0; si < 5; si++)
        for (int nt = 1; nt <= 5; nt += 4)
            for (int ei = 0; ei < 2; ei++) {
                if (si == 4 && (nt == 1 || ei == 0)) continue;
                int64_t rows = shapes[si][0], n = shapes[si][1];
                problem pr = make_problem(rows, n, nt, ei ? 0.1f : 0.0f, stream++);
                size_t bn = (size_t)(rows * n), nn = (size_t)(n * n);
                float *dqT = random_floats(bn, -1, 1, stream++ * 7);
                float *vq0 = random_floats(bn, -1, 1, stream++ * 7);
                float *vq = random_floats(nn, -1, 1, stream++ * 7);
                float *ve = random_floats((size_t)n, -1, 1, stream++ * 7);
                float *dq0 = pnn_test_nan_floats(bn), *dq_mat = pnn_test_floats(nn), *de = pnn_test_floats((size_t)n);
                memset(dq_mat, 0, nn * sizeof *dq_mat);
                memset(de, 0, (size_t)n * sizeof *de);
                run_vjp(&pr, dqT, dq0, dq_mat, de);
                double *w = to_doubles(dqT, bn);
                const double eps = 1e-5;
                double fd_q0 = (ref_loss(&pr, w, eps, vq0, NULL, NULL) -
                                ref_loss(&pr, w, -eps, vq0, NULL, NULL)) / (2 * eps);
                double fd_q = (ref_loss(&pr, w, eps, NULL, vq, NULL) -
                               ref_loss(&pr, w, -eps, NULL, vq, NULL)) / (2 * eps);
                double fd_e = (ref_loss(&pr, w, eps, NULL, NULL, ve) -
                               ref_loss(&pr, w, -eps, NULL, NULL, ve)) / (2 * eps);
                check_directional("dq0", pnn_test_dot(dq0, vq0, bn), fd_q0, norm(dq0, bn) * norm(vq0, bn));
                check_directional("dQ", pnn_test_dot(dq_mat, vq, nn), fd_q, norm(dq_mat, nn) * norm(vq, nn));
                check_directional("de", pnn_test_dot(de, ve, (size_t)n), fd_e,
                                  norm(de, (size_t)n) * norm(ve, (size_t)n));
                free(dqT), free(vq0), free(vq), free(ve), free(dq0), free(dq_mat), free(de), free(w);
                free_problem(&pr);
            }
}
END_TEST

START_TEST(vjp_matches_elementwise_finite_differences) {
    problem pr = make_problem(3, 5, 5, 0.1f, 900);
    const int64_t rows = 3, n = 5;
    size_t bn = (size_t)(rows * n), nn = (size_t)(n * n);
    float *dqT = random_floats(bn, -1, 1, 901);
    float *dq0 = pnn_test_nan_floats(bn), *dq_mat = pnn_test_floats(nn), *de = pnn_test_floats((size_t)n);
    memset(dq_mat, 0, nn * sizeof *dq_mat);
    memset(de, 0, (size_t)n * sizeof *de);
    run_vjp(&pr, dqT, dq0, dq_mat, de);
    double *w = to_doubles(dqT, bn);
    const double eps = 1e-5;
    float *unit = pnn_test_floats(nn);
    float *got[3] = {dq0, dq_mat, de};
    size_t sizes[3] = {bn, nn, (size_t)n};
    const char *names[3] = {"dq0", "dQ", "de"};
    for (int which = 0; which < 3; which++) {
        double *want = pnn_test_doubles(sizes[which]);
        for (size_t i = 0; i < sizes[which]; i++) {
            memset(unit, 0, nn * sizeof *unit);
            unit[i] = 1;
            const float *v[3] = {NULL, NULL, NULL};
            v[which] = unit;
            want[i] = (ref_loss(&pr, w, eps, v[0], v[1], v[2]) - ref_loss(&pr, w, -eps, v[0], v[1], v[2])) /
                      (2 * eps);
        }
        ck_assert(pnn_test_allclose(names[which], got[which], want, (int64_t)sizes[which], 1e-5, 1e-3));
        free(want);
    }
    free(dqT), free(dq0), free(dq_mat), free(de), free(w), free(unit);
    free_problem(&pr);
}
END_TEST

START_TEST(vjp_accumulates_and_takes_null_dq0) {
    const int64_t shapes[][2] = {{3, 33}, {64, 520}};
    for (int si = 0; si < 2; si++) {
        problem pr = make_problem(shapes[si][0], shapes[si][1], 5, 0.1f, 950 + (uint64_t)si);
        int64_t n = pr.p.n;
        size_t bn = (size_t)(pr.p.batch * n), nn = (size_t)(n * n);
        float *dqT = random_floats(bn, -1, 1, 960 + (uint64_t)si);
        /* once from zero for the reference gradient, then twice onto random starting values */
        float *g_q = pnn_test_floats(nn), *g_e = pnn_test_floats((size_t)n), *dq0 = pnn_test_nan_floats(bn);
        memset(g_q, 0, nn * sizeof *g_q);
        memset(g_e, 0, (size_t)n * sizeof *g_e);
        run_vjp(&pr, dqT, dq0, g_q, g_e);
        float *acc_q = random_floats(nn, -1, 1, 970 + (uint64_t)si);
        float *acc_e = random_floats((size_t)n, -1, 1, 980 + (uint64_t)si);
        double *want_q = pnn_test_doubles(nn), *want_e = pnn_test_doubles((size_t)n);
        for (size_t i = 0; i < nn; i++) want_q[i] = acc_q[i] + 2.0 * g_q[i];
        for (int64_t i = 0; i < n; i++) want_e[i] = acc_e[i] + 2.0 * g_e[i];
        run_vjp(&pr, dqT, NULL, acc_q, acc_e);
        run_vjp(&pr, dqT, NULL, acc_q, acc_e);
        ck_assert(pnn_test_allclose("dQ accumulated", acc_q, want_q, (int64_t)nn, 1e-5, 1e-5));
        ck_assert(pnn_test_allclose("de accumulated", acc_e, want_e, n, 1e-5, 1e-5));
        free(dqT), free(g_q), free(g_e), free(dq0), free(acc_q), free(acc_e), free(want_q), free(want_e);
        free_problem(&pr);
    }
}
END_TEST

/* A device whose reported dims are not an oscillator system's (a crafted server or recording
 * header: x_dim 40 with theta_dim 56 overflowed the twin's buffers) gets no twin. */
START_TEST(twin_refuses_device_dims_of_another_system) {
    pnn_device *dev;
    ck_assert_int_eq(pnn_device_open("sim:oscillator?n=40&nt=2", pnn_backend_cpu(), &dev), PNN_OK);
    pnn_device_info good = dev->info;
    const int64_t bad[][3] = {{40, 40, 56}, {40, 39, 1640}, {41, 41, 1640}, {0, 0, 0}, {20000, 20000, 20000}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        dev->info.x_dim = bad[i][0], dev->info.y_dim = bad[i][1], dev->info.theta_dim = bad[i][2];
        pnn_twin *tw = (pnn_twin *)1;
        ck_assert_int_eq(pnn_twin_create("analytic", dev, -1, &tw), PNN_ERR_FORMAT);
        ck_assert_ptr_null(tw);
        ck_assert_ptr_nonnull(strstr(pnn_last_error(), "not an oscillator system"));
    }
    /* the system URI's n must agree with the dims too */
    dev->info = good;
    snprintf(dev->info.system_uri, sizeof dev->info.system_uri, "sim:oscillator?n=41");
    pnn_twin *tw;
    ck_assert_int_eq(pnn_twin_create("analytic", dev, -1, &tw), PNN_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(pnn_last_error(), "n=41"));
    dev->info = good;
    ck_assert_int_eq(pnn_twin_create("analytic", dev, -1, &tw), PNN_OK);
    pnn_twin_free(tw);
    pnn_device_close(dev);
}
END_TEST

static Suite *oscillator_suite(void) {
    Suite *s = suite_create("oscillator");
    TCase *tc = tcase_create("cpu");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, sincos_matches_libm);
    tcase_add_test(tc, build_q_matches_reference);
    tcase_add_test(tc, build_q_backward_matches_finite_differences);
    tcase_add_test(tc, forward_matches_reference);
    tcase_add_test(tc, tape_free_forward_is_bit_identical);
    tcase_add_test(tc, vjp_matches_directional_finite_differences);
    tcase_add_test(tc, vjp_matches_elementwise_finite_differences);
    tcase_add_test(tc, vjp_accumulates_and_takes_null_dq0);
    tcase_add_test(tc, twin_refuses_device_dims_of_another_system);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    return pnn_test_run(oscillator_suite());
}
