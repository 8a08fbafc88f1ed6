/* The shg system (kernels/systems/shg/, hwbridge/systems/shg_*.c) against a plain double-precision
 * reference written here from PHYSICS.md: the autoconvolution as the literal double sum, the
 * layout by walking the bins, the blur as a literal convolution. Checked: the CPU kernels on odd
 * and even sizes in both forms (direct and FFT) and both layouts, the two forms against each
 * other (forward and VJP), the VJP against central finite differences (dx and dtheta) and at
 * closed and faint bins, known answers of the physics (the open pulse, one open bin, a linear
 * spectral phase, mirror symmetry, blur conserving light), the simulated device against the
 * reference model with its hidden parameters redrawn from the seed, the twin against the device at
 * mismatch=0&noise=0, the detector noise, and the twin's refusal of another system's dims. Work
 * and tape start as NaN so reads of unwritten scratch show up. */
#include <check.h>
#include <complex.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "hwbridge/systems/shg.h"
#include "kernels/systems/shg/shg.h"
#include "kernels/systems/shg/shg_ops.h"
#include "pnn/pnn.h"
#include "tests/testutil.h"

static const pnn_shg_ops *cpu = &pnn_shg_cpu_ops;

/* inputs of this file's cases: U(lo, hi) from (2026, stream) */
static float *random_floats(size_t n, float lo, float hi, uint64_t stream) {
    return pnn_test_random_floats(n, lo, hi, 2026, stream);
}

/* ---- the reference ---- */

/* the bins of u = [x, theta], by walking the spectrum: concat puts x first; interleave hands bins
 * out alternately (x first) while both have values left, then to whichever has */
static void ref_layout(int64_t k, int64_t x_dim, int layout, int32_t *bin_of) {
    if (!layout) {
        for (int64_t i = 0; i < k; i++) bin_of[i] = (int32_t)i;
        return;
    }
    int64_t next_x = 0, next_t = 0;
    for (int64_t bin = 0; bin < k; bin++) {
        int take_x = next_x < x_dim && (next_t >= k - x_dim || bin % 2 == 0);
        if (take_x) bin_of[next_x++] = (int32_t)bin;
        else bin_of[x_dim + next_t++] = (int32_t)bin;
    }
}

typedef struct {
    int64_t rows, k, x_dim, y_dim;
    int layout;
    const double *phase; /* [K] phi_k in radians, or NULL (flat) */
    const double *pm;    /* [M] phase-matching factors, or NULL (ones) */
    double sigma;        /* blur std in points; 0: none */
    const double *dark;  /* [y_dim] or NULL */
} ref_setup;

static int64_t ref_m(const ref_setup *s) { return 2 * s->k - 1; }

/* y from the amplitudes of every row ([rows, K], by bin) */
static void ref_from_amplitudes(const ref_setup *s, const double *amp, double *y) {
    int64_t k = s->k, m = ref_m(s);
    double c = (double)s->y_dim / ((double)k * (2.0 * k * k + 1.0) / 3.0);
    double complex *a = malloc((size_t)k * sizeof *a);
    double *inten = pnn_test_doubles((size_t)m), *blurred = pnn_test_doubles((size_t)m);
    int64_t r = s->sigma > 1e-6 ? (int64_t)ceil(4 * s->sigma) : 0;
    if (r > m) r = m;
    double taps = 0;
    for (int64_t d = -r; d <= r; d++) taps += r ? exp(-0.5 * d * d / (s->sigma * s->sigma)) : 1.0;
    for (int64_t row = 0; row < s->rows; row++) {
        for (int64_t i = 0; i < k; i++) a[i] = amp[row * k + i] * (s->phase ? cexp(I * s->phase[i]) : 1.0);
        for (int64_t mm = 0; mm < m; mm++) {
            double complex e = 0;
            for (int64_t i = 0; i < k; i++)
                for (int64_t l = 0; l < k; l++)
                    if (i + l == mm) e += a[i] * a[l];
            if (s->pm) e *= s->pm[mm];
            inten[mm] = creal(e) * creal(e) + cimag(e) * cimag(e);
        }
        for (int64_t to = 0; to < m; to++) {
            blurred[to] = 0;
            for (int64_t from = 0; from < m; from++)
                if (llabs(to - from) <= r)
                    blurred[to] += inten[from] * (r ? exp(-0.5 * (double)((to - from) * (to - from)) /
                                                          (s->sigma * s->sigma)) : 1.0) / taps;
        }
        for (int64_t j = 0; j < s->y_dim; j++) {
            double sum = 0;
            for (int64_t mm = j * m / s->y_dim; mm < (j + 1) * m / s->y_dim; mm++) sum += blurred[mm];
            y[row * s->y_dim + j] = c * sum + (s->dark ? s->dark[j] : 0);
        }
    }
    free(a), free(inten), free(blurred);
}

/* amplitudes of x + eps vx, theta + eps vt (v may be NULL) */
static void ref_amplitudes(const ref_setup *s, const float *x, const float *theta, double eps, const float *vx,
                           const float *vt, double *amp) {
    int32_t *bin_of = malloc((size_t)s->k * sizeof *bin_of);
    ref_layout(s->k, s->x_dim, s->layout, bin_of);
    for (int64_t row = 0; row < s->rows; row++)
        for (int64_t i = 0; i < s->k; i++) {
            double u = i < s->x_dim ? x[row * s->x_dim + i] + eps * (vx ? vx[row * s->x_dim + i] : 0)
                                    : theta[i - s->x_dim] + eps * (vt ? vt[i - s->x_dim] : 0);
            amp[row * s->k + bin_of[i]] = u > 0 ? sqrt(u < 1 ? u : 1) : 0; /* the shaper: u in [0, 1] */
        }
    free(bin_of);
}

static void ref_forward(const ref_setup *s, const float *x, const float *theta, double *y) {
    double *amp = pnn_test_doubles((size_t)(s->rows * s->k));
    ref_amplitudes(s, x, theta, 0, NULL, NULL, amp);
    ref_from_amplitudes(s, amp, y);
    free(amp);
}

/* L = <w, y(x + eps vx, theta + eps vt)> */
static double ref_loss(const ref_setup *s, const double *w, const float *x, const float *theta, double eps,
                       const float *vx, const float *vt) {
    double *amp = pnn_test_doubles((size_t)(s->rows * s->k)), *y = pnn_test_doubles((size_t)(s->rows * s->y_dim));
    ref_amplitudes(s, x, theta, eps, vx, vt, amp);
    ref_from_amplitudes(s, amp, y);
    double loss = 0;
    for (int64_t i = 0; i < s->rows * s->y_dim; i++) loss += w[i] * y[i];
    free(amp), free(y);
    return loss;
}

/* ---- the kernels ---- */

static pnn_shg_params params(const ref_setup *s, pnn_shg_form form) {
    return (pnn_shg_params){.batch = s->rows, .k = s->k, .x_dim = s->x_dim, .y_dim = s->y_dim, .form = form,
                            .fft_len = pnn_shg_fft_len(s->k)};
}

static int32_t *layout_of(const ref_setup *s) {
    int32_t *bin_of = malloc((size_t)s->k * sizeof *bin_of);
    ck_assert_ptr_nonnull(bin_of);
    for (int64_t i = 0; i < s->k; i++) bin_of[i] = (int32_t)pnn_shg_bin_of(i, s->k, s->x_dim, s->layout);
    return bin_of;
}

typedef struct {
    float *y, *tape, *dx, *dtheta;
} run_out;

/* forward (taped) and, when dy is given, the VJP into fresh dx and dtheta (dtheta from zero) */
static run_out run_kernels(const ref_setup *s, pnn_shg_form form, const float *x, const float *theta,
                           const float *gain, const float *dy) {
    pnn_shg_params p = params(s, form);
    int32_t *bin_of = layout_of(s);
    run_out o = {pnn_test_nan_floats((size_t)(s->rows * s->y_dim)), pnn_test_nan_floats(cpu->tape_floats(&p)), NULL, NULL};
    float *work = pnn_test_nan_floats(cpu->work_floats(&p));
    cpu->forward(NULL, &p, bin_of, x, theta, o.y, o.tape, work);
    if (dy) {
        o.dx = pnn_test_nan_floats((size_t)(s->rows * s->x_dim));
        o.dtheta = pnn_test_floats((size_t)(s->k - s->x_dim));
        memset(o.dtheta, 0, (size_t)(s->k - s->x_dim) * sizeof *o.dtheta);
        for (size_t i = 0; i < cpu->work_floats(&p); i++) work[i] = NAN;
        cpu->vjp(NULL, &p, bin_of, o.tape, gain, dy, o.dx, o.dtheta, work);
    }
    free(work), free(bin_of);
    return o;
}

static void free_out(run_out *o) { free(o->y), free(o->tape), free(o->dx), free(o->dtheta); }

static double norm_err(const float *a, const float *b, int64_t n) {
    double *bd = pnn_test_doubles((size_t)n);
    for (int64_t i = 0; i < n; i++) bd[i] = b[i];
    double e = pnn_test_norm_err(a, bd, n);
    free(bd);
    return e;
}

/* ---- the tests ---- */

START_TEST(layout_matches_reference) {
    for (int64_t k = 2; k <= 40; k += 3)
        for (int64_t xd = 1; xd < k; xd += 1 + k / 7)
            for (int layout = 0; layout < 2; layout++) {
                ref_setup s = {.k = k, .x_dim = xd, .layout = layout};
                int32_t *want = malloc((size_t)k * sizeof *want), *got = layout_of(&s);
                int *seen = calloc((size_t)k, sizeof *seen);
                ref_layout(k, xd, layout, want);
                for (int64_t i = 0; i < k; i++) {
                    ck_assert_msg(got[i] == want[i], "K %lld x_dim %lld layout %d: u_%lld on bin %d, want %d",
                                  (long long)k, (long long)xd, layout, (long long)i, got[i], want[i]);
                    seen[got[i]]++;
                }
                for (int64_t i = 0; i < k; i++) ck_assert_int_eq(seen[i], 1);
                free(want), free(got), free(seen);
            }
}
END_TEST

START_TEST(forward_matches_reference) {
    const int64_t ks[] = {2, 3, 5, 8, 17, 33, 64, 100}, rows_list[] = {1, 3, 8};
    uint64_t stream = 1;
    for (int ki = 0; ki < 8; ki++)
        for (int ri = 0; ri < 3; ri++)
            for (int layout = 0; layout < 2; layout++)
                for (int form = 0; form < 2; form++) {
                    int64_t k = ks[ki], m = 2 * k - 1;
                    ref_setup s = {.rows = rows_list[ri], .k = k, .x_dim = 1 + (k * 2) / 5,
                                   .y_dim = 1 + (m * 3) / 7, .layout = layout};
                    /* some values below zero and above one: closed and saturated bins */
                    float *x = random_floats((size_t)(s.rows * s.x_dim), -0.2f, 1.2f, stream++);
                    float *theta = random_floats((size_t)(k - s.x_dim), -0.2f, 1.2f, stream++);
                    run_out o = run_kernels(&s, (pnn_shg_form)form, x, theta, NULL, NULL);
                    double *want = pnn_test_doubles((size_t)(s.rows * s.y_dim));
                    ref_forward(&s, x, theta, want);
                    ck_assert_msg(pnn_test_allclose("y", o.y, want, s.rows * s.y_dim, 1e-6, 1e-4),
                                  "K %lld rows %lld layout %d form %d", (long long)k, (long long)s.rows, layout, form);
                    free(x), free(theta), free(want);
                    free_out(&o);
                }
}
END_TEST

/* u = 1 everywhere: the outputs average 1 (the unit); one open bin k: all light at point 2k */
START_TEST(open_pulse_and_single_bin_known_answers) {
    for (int form = 0; form < 2; form++) {
        ref_setup s = {.rows = 1, .k = 37, .x_dim = 20, .y_dim = 9};
        float x[20], theta[17];
        for (int i = 0; i < 20; i++) x[i] = 1;
        for (int i = 0; i < 17; i++) theta[i] = 1;
        run_out o = run_kernels(&s, (pnn_shg_form)form, x, theta, NULL, NULL);
        double sum = 0;
        for (int j = 0; j < 9; j++) sum += o.y[j];
        ck_assert_msg(fabs(sum / 9 - 1) < 1e-5, "form %d: open pulse mean bin %.8g", form, sum / 9);
        free_out(&o);
        memset(x, 0, sizeof x);
        memset(theta, 0, sizeof theta);
        theta[5] = 0.25f; /* u on bin 25: E(50) = A^2 = 0.25 */
        o = run_kernels(&s, (pnn_shg_form)form, x, theta, NULL, NULL);
        double c = 9.0 * 3.0 / (37.0 * (2.0 * 37 * 37 + 1));
        for (int j = 0; j < 9; j++) {
            double want = j == pnn_shg_bin_of_point(50, 73, 9) ? c * 0.0625 : 0;
            ck_assert_msg(fabs(o.y[j] - want) <= 1e-6 * c, "form %d: y[%d] = %.8g, want %.8g", form, j, o.y[j], want);
        }
        free_out(&o);
    }
}
END_TEST

/* reversing the spectrum (u_k -> u_{K-1-k}) reverses the doubled one (m -> 2K-2-m); the bins are
 * symmetric when y_dim divides M */
START_TEST(mirror_symmetry) {
    ref_setup s = {.rows = 1, .k = 8, .x_dim = 5, .y_dim = 5};
    float u[8], v[8];
    pnn_test_uniform(u, 8, 0, 1, 1, 1);
    for (int i = 0; i < 8; i++) v[i] = u[7 - i];
    for (int form = 0; form < 2; form++) {
        run_out a = run_kernels(&s, (pnn_shg_form)form, u, u + 5, NULL, NULL); /* concat: u = [x, theta] */
        run_out b = run_kernels(&s, (pnn_shg_form)form, v, v + 5, NULL, NULL);
        for (int j = 0; j < 5; j++)
            ck_assert_msg(fabs(a.y[j] - b.y[4 - j]) <= 1e-6 * (fabs(a.y[j]) + 1e-3), "form %d bin %d: %.8g vs %.8g",
                          form, j, a.y[j], b.y[4 - j]);
        free_out(&a), free_out(&b);
    }
}
END_TEST

START_TEST(forms_agree_forward_and_vjp) {
    const int64_t ks[] = {2, 3, 4, 5, 16, 17, 63, 64, 65, 100, 255, 256, 1024};
    uint64_t stream = 100;
    for (int ki = 0; ki < 13; ki++)
        for (int64_t rows = 4; rows <= 5; rows++) {
            int64_t k = ks[ki], m = 2 * k - 1;
            ref_setup s = {.rows = rows, .k = k, .x_dim = (k + 1) / 2, .y_dim = m < 16 ? m : 16, .layout = ki % 2};
            float *x = random_floats((size_t)(rows * s.x_dim), -0.1f, 1.1f, stream++);
            float *theta = random_floats((size_t)(k - s.x_dim), -0.1f, 1.1f, stream++);
            float *dy = random_floats((size_t)(rows * s.y_dim), -1, 1, stream++);
            run_out d = run_kernels(&s, PNN_SHG_DIRECT, x, theta, NULL, dy);
            run_out f = run_kernels(&s, PNN_SHG_FFT, x, theta, NULL, dy);
            pnn_shg_params pp = params(&s, PNN_SHG_FFT);
            double ey = norm_err(f.y, d.y, rows * s.y_dim);
            double ee = norm_err(f.tape + pnn_shg_tape_e(&pp), d.tape + pnn_shg_tape_e(&pp), rows * m);
            double ex = norm_err(f.dx, d.dx, rows * s.x_dim), et = norm_err(f.dtheta, d.dtheta, k - s.x_dim);
            ck_assert_msg(ey < 2e-6 && ee < 2e-6 && ex < 1e-5 && et < 1e-5,
                          "K %lld rows %lld: FFT vs direct normalized errors y %.3g E %.3g dx %.3g dtheta %.3g",
                          (long long)k, (long long)rows, ey, ee, ex, et);
            ck_assert(memcmp(f.tape, d.tape, (size_t)(rows * k) * sizeof(float)) == 0); /* the same u */
            free(x), free(theta), free(dy);
            free_out(&d), free_out(&f);
        }
}
END_TEST

/* |got - want| within 1e-3 relative, with a floor scaled by the sizes of the gradient and the
 * direction for directional derivatives that happen to be near zero */
static void check_directional(const char *what, double got, double want, double scale) {
    ck_assert_msg(fabs(got - want) <= 1e-3 * fabs(want) + 1e-5 * scale, "%s: vjp gives %.9g, finite differences %.9g",
                  what, got, want);
}

/* every entry of dx and dtheta against central differences of the double reference, at points
 * clear of the floor of dA/du and of the clamp at 1 */
START_TEST(vjp_matches_elementwise_finite_differences) {
    for (int layout = 0; layout < 2; layout++)
        for (int form = 0; form < 2; form++) {
            ref_setup s = {.rows = 3, .k = 7, .x_dim = 3, .y_dim = 5, .layout = layout};
            int64_t nx = s.rows * s.x_dim, nt = s.k - s.x_dim, ny = s.rows * s.y_dim;
            float *x = random_floats((size_t)nx, 0.05f, 0.95f, 300 + (uint64_t)form);
            float *theta = random_floats((size_t)nt, 0.05f, 0.95f, 310 + (uint64_t)form);
            float *dy = random_floats((size_t)ny, -1, 1, 320 + (uint64_t)form);
            run_out o = run_kernels(&s, (pnn_shg_form)form, x, theta, NULL, dy);
            double *w = pnn_test_doubles((size_t)ny), *want_x = pnn_test_doubles((size_t)nx), *want_t = pnn_test_doubles((size_t)nt);
            for (int64_t i = 0; i < ny; i++) w[i] = dy[i];
            float *unit = pnn_test_floats((size_t)nx);
            const double eps = 1e-5;
            for (int64_t i = 0; i < nx; i++) {
                memset(unit, 0, (size_t)nx * sizeof *unit);
                unit[i] = 1;
                want_x[i] = (ref_loss(&s, w, x, theta, eps, unit, NULL) - ref_loss(&s, w, x, theta, -eps, unit, NULL)) /
                            (2 * eps);
            }
            for (int64_t i = 0; i < nt; i++) {
                memset(unit, 0, (size_t)nx * sizeof *unit);
                unit[i] = 1;
                want_t[i] = (ref_loss(&s, w, x, theta, eps, NULL, unit) - ref_loss(&s, w, x, theta, -eps, NULL, unit)) /
                            (2 * eps);
            }
            ck_assert_msg(pnn_test_allclose("dx", o.dx, want_x, nx, 1e-5, 1e-3), "layout %d form %d", layout, form);
            ck_assert_msg(pnn_test_allclose("dtheta", o.dtheta, want_t, nt, 1e-5, 1e-3), "layout %d form %d", layout,
                          form);
            free(x), free(theta), free(dy), free(w), free(want_x), free(want_t), free(unit);
            free_out(&o);
        }
}
END_TEST

START_TEST(vjp_matches_directional_finite_differences) {
    const int64_t shapes[][4] = {{1, 2, 1, 3}, {5, 16, 9, 7}, {4, 33, 16, 20}, {3, 64, 32, 16}, {2, 100, 49, 16}};
    uint64_t stream = 400;
    for (int si = 0; si < 5; si++)
        for (int form = 0; form < 2; form++) {
            ref_setup s = {.rows = shapes[si][0], .k = shapes[si][1], .x_dim = shapes[si][2], .y_dim = shapes[si][3],
                           .layout = si % 2};
            size_t nx = (size_t)(s.rows * s.x_dim), nt = (size_t)(s.k - s.x_dim), ny = (size_t)(s.rows * s.y_dim);
            float *x = random_floats(nx, 0.05f, 0.95f, stream++), *theta = random_floats(nt, 0.05f, 0.95f, stream++);
            float *dy = random_floats(ny, -1, 1, stream++);
            float *vx = random_floats(nx, -1, 1, stream++), *vt = random_floats(nt, -1, 1, stream++);
            run_out o = run_kernels(&s, (pnn_shg_form)form, x, theta, NULL, dy);
            double *w = pnn_test_doubles(ny);
            for (size_t i = 0; i < ny; i++) w[i] = dy[i];
            const double eps = 1e-4;
            double fd_x = (ref_loss(&s, w, x, theta, eps, vx, NULL) - ref_loss(&s, w, x, theta, -eps, vx, NULL)) / (2 * eps);
            double fd_t = (ref_loss(&s, w, x, theta, eps, NULL, vt) - ref_loss(&s, w, x, theta, -eps, NULL, vt)) / (2 * eps);
            check_directional("dx", pnn_test_dot(o.dx, vx, nx), fd_x, sqrt(pnn_test_dot(o.dx, o.dx, nx) * pnn_test_dot(vx, vx, nx)));
            check_directional("dtheta", pnn_test_dot(o.dtheta, vt, nt), fd_t, sqrt(pnn_test_dot(o.dtheta, o.dtheta, nt) * pnn_test_dot(vt, vt, nt)));
            free(x), free(theta), free(dy), free(vx), free(vt), free(w);
            free_out(&o);
        }
}
END_TEST

/* A closed bin (u <= 0) and a saturated one (u > 1) have gradient 0, exactly: the clamp is flat
 * there. A faint one (0 < u < PNN_SHG_U_FLOOR) gets dL/dA / (2 sqrt(floor)): the derivative of
 * sqrt at the floor, not infinity. */
START_TEST(vjp_at_closed_faint_and_saturated_bins) {
    for (int form = 0; form < 2; form++) {
        ref_setup s = {.rows = 1, .k = 6, .x_dim = 3, .y_dim = 4};
        float x[3] = {-0.3f, 0.0f, 2e-5f}, theta[3] = {0.5f, 1.3f, 0.2f}, dy[4] = {0.3f, -1.0f, 0.8f, 0.5f};
        run_out o = run_kernels(&s, (pnn_shg_form)form, x, theta, NULL, dy);
        ck_assert(o.dx[0] == 0.0f && o.dx[1] == 0.0f && o.dtheta[1] == 0.0f && o.dtheta[0] != 0.0f);
        /* dL/dA_2 by central differences of the reference in the amplitude itself */
        double amp[6], w[4], loss[2];
        for (int j = 0; j < 4; j++) w[j] = dy[j];
        const double eps = 1e-7;
        for (int side = 0; side < 2; side++) {
            double y[4];
            ref_amplitudes(&s, x, theta, 0, NULL, NULL, amp);
            amp[2] += side ? -eps : eps;
            ref_from_amplitudes(&s, amp, y);
            loss[side] = 0;
            for (int j = 0; j < 4; j++) loss[side] += w[j] * y[j];
        }
        double want = (loss[0] - loss[1]) / (2 * eps) * 0.5 / sqrt(PNN_SHG_U_FLOOR);
        ck_assert_msg(fabs(o.dx[2] - want) <= 1e-3 * fabs(want), "form %d: faint bin gradient %.8g, want %.8g", form,
                      o.dx[2], want);
        free_out(&o);
    }
}
END_TEST

/* gain multiplies dy; dtheta accumulates; dx may be NULL */
START_TEST(vjp_gain_accumulation_and_null_dx) {
    for (int form = 0; form < 2; form++) {
        ref_setup s = {.rows = 9, .k = 70, .x_dim = 30, .y_dim = 12, .layout = 1};
        size_t ny = (size_t)(s.rows * s.y_dim), nt = (size_t)(s.k - s.x_dim), nx = (size_t)(s.rows * s.x_dim);
        float *x = random_floats(nx, 0, 1, 500), *theta = random_floats(nt, 0, 1, 501);
        float *dy = random_floats(ny, -1, 1, 502), *gain = random_floats(ny, 0.9f, 1.1f, 503), *gdy = pnn_test_floats(ny);
        for (size_t i = 0; i < ny; i++) gdy[i] = gain[i] * dy[i];
        run_out a = run_kernels(&s, (pnn_shg_form)form, x, theta, gain, dy);
        run_out b = run_kernels(&s, (pnn_shg_form)form, x, theta, NULL, gdy);
        ck_assert(norm_err(a.dx, b.dx, (int64_t)nx) < 1e-6 && norm_err(a.dtheta, b.dtheta, (int64_t)nt) < 1e-6);
        pnn_shg_params p = params(&s, (pnn_shg_form)form);
        int32_t *bin_of = layout_of(&s);
        float *acc = random_floats(nt, -1, 1, 504), *work = pnn_test_nan_floats(cpu->work_floats(&p));
        double *want = pnn_test_doubles(nt);
        for (size_t i = 0; i < nt; i++) want[i] = acc[i] + 2.0 * b.dtheta[i];
        cpu->vjp(NULL, &p, bin_of, b.tape, NULL, gdy, NULL, acc, work);
        cpu->vjp(NULL, &p, bin_of, b.tape, NULL, gdy, NULL, acc, work);
        ck_assert(pnn_test_allclose("dtheta accumulated", acc, want, (int64_t)nt, 1e-5, 1e-5));
        free(x), free(theta), free(dy), free(gain), free(gdy), free(bin_of), free(acc), free(work), free(want);
        free_out(&a), free_out(&b);
    }
}
END_TEST

/* the tape-free forward gives the same y as the taped one */
START_TEST(tape_free_forward_is_bit_identical) {
    for (int form = 0; form < 2; form++) {
        ref_setup s = {.rows = 7, .k = 129, .x_dim = 64, .y_dim = 16};
        pnn_shg_params p = params(&s, (pnn_shg_form)form);
        int32_t *bin_of = layout_of(&s);
        float *x = random_floats((size_t)(7 * 64), 0, 1, 600), *theta = random_floats(65, 0, 1, 601);
        float *a = pnn_test_nan_floats(7 * 16), *b = pnn_test_nan_floats(7 * 16), *tape = pnn_test_nan_floats(cpu->tape_floats(&p));
        float *work = pnn_test_nan_floats(cpu->work_floats(&p));
        cpu->forward(NULL, &p, bin_of, x, theta, a, tape, work);
        cpu->forward(NULL, &p, bin_of, x, theta, b, NULL, work);
        ck_assert(memcmp(a, b, 7 * 16 * sizeof *a) == 0);
        free(bin_of), free(x), free(theta), free(a), free(b), free(tape), free(work);
    }
}
END_TEST

/* the device op with its own phase, phase matching and plain bins, against the reference */
static void run_device_op(const ref_setup *s, pnn_shg_form form, const float *x, const float *theta, const double *phi,
                          const double *pm, float *y) {
    pnn_shg_params p = params(s, form);
    int64_t k = s->k, m = 2 * k - 1, yd = s->y_dim;
    int32_t *bin_of = layout_of(s), *index = malloc((size_t)(3 * yd) * sizeof *index);
    float *phase = pnn_test_floats((size_t)(2 * k)), *pmf = pnn_test_floats((size_t)m), *weight = pnn_test_floats((size_t)m);
    for (int64_t i = 0; i < k; i++) phase[2 * i] = (float)cos(phi[i]), phase[2 * i + 1] = (float)sin(phi[i]);
    for (int64_t i = 0; i < m; i++) pmf[i] = pm ? (float)pm[i] : 1.0f;
    double c = (double)yd / ((double)k * (2.0 * k * k + 1.0) / 3.0);
    for (int64_t i = 0; i < m; i++) weight[i] = (float)c;
    for (int64_t j = 0; j < yd; j++) {
        index[j] = index[2 * yd + j] = (int32_t)(j * m / yd);
        index[yd + j] = (int32_t)((j + 1) * m / yd - j * m / yd);
    }
    pnn_shg_bins bins = {index, index + yd, index + 2 * yd, weight};
    float *work = pnn_test_nan_floats(cpu->device_work_floats(&p));
    cpu->device_forward(NULL, &p, bin_of, x, theta, phase, pmf, &bins, y, work);
    free(bin_of), free(index), free(phase), free(pmf), free(weight), free(work);
}

START_TEST(device_op_matches_reference) {
    const int64_t ks[] = {2, 5, 16, 33, 64, 101};
    uint64_t stream = 700;
    for (int ki = 0; ki < 6; ki++)
        for (int form = 0; form < 2; form++) {
            int64_t k = ks[ki], m = 2 * k - 1;
            ref_setup s = {.rows = 3, .k = k, .x_dim = (k + 1) / 3 + 1 < k ? (k + 1) / 3 + 1 : 1,
                           .y_dim = m < 11 ? m : 11, .layout = ki % 2};
            float *x = random_floats((size_t)(3 * s.x_dim), -0.1f, 1, stream++);
            float *theta = random_floats((size_t)(k - s.x_dim), 0, 1, stream++);
            float *ph = random_floats((size_t)k, -3, 3, stream++), *pmr = random_floats((size_t)m, 0.3f, 1, stream++);
            double *phi = pnn_test_doubles((size_t)k), *pm = pnn_test_doubles((size_t)m), *want = pnn_test_doubles((size_t)(3 * s.y_dim));
            for (int64_t i = 0; i < k; i++) phi[i] = ph[i];
            for (int64_t i = 0; i < m; i++) pm[i] = pmr[i];
            float *y = pnn_test_nan_floats((size_t)(3 * s.y_dim));
            run_device_op(&s, (pnn_shg_form)form, x, theta, phi, pm, y);
            s.phase = phi, s.pm = pm;
            ref_forward(&s, x, theta, want);
            ck_assert_msg(pnn_test_allclose("device y", y, want, 3 * s.y_dim, 1e-6, 1e-4), "K %lld form %d",
                          (long long)k, form);
            free(x), free(theta), free(ph), free(pmr), free(phi), free(pm), free(want), free(y);
        }
}
END_TEST

/* a spectral phase linear in k delays the pulse: E(m) turns by a phase linear in m, and the
 * doubled spectrum does not change; a quadratic one (a chirp) does */
START_TEST(linear_phase_leaves_spectrum_unchanged) {
    for (int form = 0; form < 2; form++) {
        ref_setup s = {.rows = 4, .k = 40, .x_dim = 20, .y_dim = 10};
        float *x = random_floats(80, 0, 1, 800), *theta = random_floats(20, 0, 1, 801);
        double flat[40] = {0}, linear[40], chirp[40];
        for (int i = 0; i < 40; i++) linear[i] = 0.37 * i - 1.1, chirp[i] = 0.01 * (i - 20) * (i - 20);
        float a[40], b[40], c[40];
        run_device_op(&s, (pnn_shg_form)form, x, theta, flat, NULL, a);
        run_device_op(&s, (pnn_shg_form)form, x, theta, linear, NULL, b);
        run_device_op(&s, (pnn_shg_form)form, x, theta, chirp, NULL, c);
        ck_assert_msg(norm_err(b, a, 40) < 1e-5, "form %d: linear phase changed y by %.3g", form, norm_err(b, a, 40));
        ck_assert_msg(norm_err(c, a, 40) > 1e-2, "form %d: a chirp left y unchanged", form);
        free(x), free(theta);
    }
}
END_TEST

/* The simulated device against the reference model of PHYSICS.md, its hidden parameters redrawn
 * here from the seed as shg_sim.c documents them (chirp, phase matching, blur, dark). */
START_TEST(sim_device_matches_reference_model) {
    const char *forms[] = {"direct", "fft"};
    for (int form = 0; form < 2; form++)
        for (int layout = 0; layout < 2; layout++) {
            const int64_t k = 24, xd = 10, yd = 7, rows = 5, m = 2 * k - 1;
            const double mismatch = 1.5, dark = 0.03, chirp = 2.0, pm_edge = 1.2, blur = 0.8;
            const uint64_t seed = 11 + (uint64_t)layout;
            char uri[256];
            snprintf(uri, sizeof uri, "sim:shg?k=%lld&x_dim=%lld&y_dim=%lld&layout=%s&form=%s&mismatch=%g&dark=%g&"
                     "chirp=%g&pm=%g&blur=%g&noise=0&seed=%llu", (long long)k, (long long)xd, (long long)yd,
                     layout ? "interleave" : "concat", forms[form], mismatch, dark, chirp, pm_edge, blur,
                     (unsigned long long)seed);
            pnn_device *dev;
            ck_assert_msg(pnn_device_open(uri, pnn_backend_cpu(), &dev) == PNN_OK, "%s", pnn_last_error());
            float h[4 + 7];
            pnn_rng_uniform(seed, pnn_rng_stream("sim.shg.hidden", 0), 0, 4 + yd, h);
            double phi[24], pm[47], dk[7], beta = (h[1] < 0.5f ? -1 : 1) * chirp * mismatch * (0.75 + 0.5 * h[0]) / 144.0;
            for (int i = 0; i < k; i++) phi[i] = beta * (i - 12.0) * (i - 12.0);
            for (int i = 0; i < m; i++) {
                double arg = pm_edge * mismatch * (0.75 + 0.5 * h[2]) * (i - (k - 1)) / (double)(k - 1);
                pm[i] = arg == 0 ? 1 : sin(arg) / arg;
            }
            for (int j = 0; j < yd; j++) dk[j] = dark * mismatch * (0.5 + h[4 + j]);
            ref_setup s = {.rows = rows, .k = k, .x_dim = xd, .y_dim = yd, .layout = layout, .phase = phi, .pm = pm,
                           .sigma = blur * mismatch * (0.75 + 0.5 * h[3]) * (double)m / (double)yd, .dark = dk};
            pnn_tensor x = {0}, y = {0};
            int64_t xs[2] = {rows, xd}, ys[2] = {rows, yd};
            ck_assert_int_eq(pnn_tensor_init(&x, pnn_backend_cpu(), 2, xs), PNN_OK);
            ck_assert_int_eq(pnn_tensor_init(&y, pnn_backend_cpu(), 2, ys), PNN_OK);
            pnn_test_uniform(x.data, rows * xd, 0, 1, 5, 900);
            float theta[14];
            pnn_test_uniform(theta, k - xd, 0, 1, 5, 901);
            ck_assert_int_eq(pnn_device_forward(dev, &x, theta, &y), PNN_OK);
            double *want = pnn_test_doubles((size_t)(rows * yd));
            ref_forward(&s, x.data, theta, want);
            ck_assert_msg(pnn_test_allclose("device", y.data, want, rows * yd, 1e-6, 1e-4), "%s", uri);
            free(want);
            pnn_tensor_free(&x), pnn_tensor_free(&y);
            pnn_device_close(dev);
        }
}
END_TEST

/* y of a device and of its twin (untaped) at the same x and theta */
static void device_and_twin(const char *uri, int64_t rows, float **y_dev, float **y_twin, pnn_device **dev_out,
                            pnn_twin **tw_out) {
    pnn_device *dev;
    pnn_twin *tw;
    ck_assert_msg(pnn_device_open(uri, pnn_backend_cpu(), &dev) == PNN_OK, "%s", pnn_last_error());
    ck_assert_msg(pnn_twin_create("analytic", dev, -1, &tw) == PNN_OK, "%s", pnn_last_error());
    int64_t xd = dev->info.x_dim, yd = dev->info.y_dim, td = dev->info.theta_dim;
    pnn_tensor x = {0}, y = {0}, yt = {0};
    int64_t xs[2] = {rows, xd}, ys[2] = {rows, yd};
    ck_assert_int_eq(pnn_tensor_init(&x, pnn_backend_cpu(), 2, xs), PNN_OK);
    ck_assert_int_eq(pnn_tensor_init(&y, pnn_backend_cpu(), 2, ys), PNN_OK);
    ck_assert_int_eq(pnn_tensor_init(&yt, pnn_backend_cpu(), 2, ys), PNN_OK);
    pnn_test_uniform(x.data, rows * xd, 0, 1, 3, 1000);
    float *theta = random_floats((size_t)td, 0, 1, 1001);
    ck_assert_msg(pnn_device_forward(dev, &x, theta, &y) == PNN_OK, "%s", pnn_last_error());
    ck_assert_msg(tw->iface->forward(tw, &x, theta, &yt, -1, NULL) == PNN_OK, "%s", pnn_last_error());
    *y_dev = pnn_test_floats((size_t)(rows * yd));
    *y_twin = pnn_test_floats((size_t)(rows * yd));
    memcpy(*y_dev, y.data, (size_t)(rows * yd) * sizeof(float));
    memcpy(*y_twin, yt.data, (size_t)(rows * yd) * sizeof(float));
    free(theta);
    pnn_tensor_free(&x), pnn_tensor_free(&y), pnn_tensor_free(&yt);
    if (dev_out) *dev_out = dev, *tw_out = tw;
    else pnn_twin_free(tw), pnn_device_close(dev);
}

START_TEST(twin_equals_device_when_ideal) {
    const char *uris[] = {"sim:shg?mismatch=0&noise=0",
                          "sim:shg?k=17&x_dim=5&y_dim=33&layout=interleave&mismatch=0&noise=0&seed=3",
                          "sim:shg?k=64&form=direct&mismatch=0&noise=0", "sim:shg?k=63&form=fft&mismatch=0&noise=0",
                          "sim:shg?k=300&x_dim=200&y_dim=10&layout=interleave&mismatch=0&noise=0"};
    for (int i = 0; i < 5; i++) {
        float *a, *b;
        device_and_twin(uris[i], 7, &a, &b, NULL, NULL);
        pnn_device *dev;
        ck_assert_int_eq(pnn_device_open(uris[i], pnn_backend_cpu(), &dev), PNN_OK);
        int64_t n = 7 * dev->info.y_dim;
        pnn_device_close(dev);
        double err = norm_err(a, b, n);
        ck_assert_msg(err < 2e-6, "%s: device vs twin normalized error %.3g", uris[i], err);
        free(a), free(b);
    }
    /* and the default device differs from its twin: that is the point */
    float *a, *b;
    device_and_twin("sim:shg?noise=0", 7, &a, &b, NULL, NULL);
    ck_assert(norm_err(a, b, 7 * 16) > 0.05);
    free(a), free(b);
}
END_TEST

/* relative noise of the configured size, the same for the same (seed, call), new on every call */
START_TEST(device_noise_is_relative_and_reproducible) {
    float *ideal, *noisy, *again, *twin;
    pnn_device *dev;
    pnn_twin *tw;
    device_and_twin("sim:shg?k=64&y_dim=64&mismatch=0&noise=0", 50, &ideal, &twin, NULL, NULL);
    free(twin);
    device_and_twin("sim:shg?k=64&y_dim=64&mismatch=0&noise=0.01&seed=4", 50, &noisy, &twin, &dev, &tw);
    free(twin);
    device_and_twin("sim:shg?k=64&y_dim=64&mismatch=0&noise=0.01&seed=4", 50, &again, &twin, NULL, NULL);
    ck_assert(memcmp(noisy, again, 50 * 64 * sizeof(float)) == 0);
    double sum = 0, sum2 = 0;
    int n = 0;
    for (int i = 0; i < 50 * 64; i++)
        if (ideal[i] > 1e-3) {
            double r = noisy[i] / ideal[i] - 1;
            sum += r, sum2 += r * r, n++;
        }
    double mean = sum / n, sd = sqrt(sum2 / n - mean * mean);
    ck_assert_msg(n > 1000 && fabs(mean) < 2e-3 && fabs(sd - 0.01) < 1e-3, "relative noise mean %.3g sd %.3g (n %d)",
                  mean, sd, n);
    /* the next call draws new noise */
    pnn_tensor x = {0}, y = {0};
    int64_t xs[2] = {50, 32}, ys[2] = {50, 64};
    ck_assert_int_eq(pnn_tensor_init(&x, pnn_backend_cpu(), 2, xs), PNN_OK);
    ck_assert_int_eq(pnn_tensor_init(&y, pnn_backend_cpu(), 2, ys), PNN_OK);
    pnn_test_uniform(x.data, 50 * 32, 0, 1, 3, 1000);
    float *theta = random_floats(32, 0, 1, 1001);
    ck_assert_int_eq(pnn_device_forward(dev, &x, theta, &y), PNN_OK);
    ck_assert(memcmp(noisy, y.data, 50 * 64 * sizeof(float)) != 0);
    free(ideal), free(noisy), free(again), free(twin), free(theta);
    pnn_tensor_free(&x), pnn_tensor_free(&y);
    pnn_twin_free(tw), pnn_device_close(dev);
}
END_TEST

/* the spectrometer's blur moves light between bins but loses none away from the ends */
START_TEST(blur_conserves_light) {
    const char *sharp = "sim:shg?k=64&x_dim=60&y_dim=20&mismatch=0&noise=0";
    const char *blurred = "sim:shg?k=64&x_dim=60&y_dim=20&chirp=0&pm=0&dark=0&blur=1.5&noise=0";
    pnn_device *devs[2];
    ck_assert_int_eq(pnn_device_open(sharp, pnn_backend_cpu(), &devs[0]), PNN_OK);
    ck_assert_int_eq(pnn_device_open(blurred, pnn_backend_cpu(), &devs[1]), PNN_OK);
    pnn_tensor x = {0}, y[2] = {{0}, {0}};
    int64_t xs[2] = {3, 60}, ys[2] = {3, 20};
    ck_assert_int_eq(pnn_tensor_init(&x, pnn_backend_cpu(), 2, xs), PNN_OK);
    pnn_tensor_zero(&x);
    for (int r = 0; r < 3; r++) /* light on bins 20..39 only: the doubled spectrum lies in 40..78 of 127 */
        pnn_test_uniform(x.data + r * 60 + 20, 20, 0, 1, 7, 1100 + (uint64_t)r);
    float theta[4] = {0, 0, 0, 0};
    for (int d = 0; d < 2; d++) {
        ck_assert_int_eq(pnn_tensor_init(&y[d], pnn_backend_cpu(), 2, ys), PNN_OK);
        ck_assert_int_eq(pnn_device_forward(devs[d], &x, theta, &y[d]), PNN_OK);
    }
    for (int r = 0; r < 3; r++) {
        double total[2] = {0, 0};
        for (int d = 0; d < 2; d++)
            for (int j = 0; j < 20; j++) total[d] += y[d].data[r * 20 + j];
        ck_assert_msg(fabs(total[1] - total[0]) < 1e-5 * total[0], "row %d: %.8g sharp, %.8g blurred", r, total[0],
                      total[1]);
        ck_assert(norm_err(y[1].data + r * 20, y[0].data + r * 20, 20) > 0.05);
    }
    pnn_tensor_free(&x), pnn_tensor_free(&y[0]), pnn_tensor_free(&y[1]);
    pnn_device_close(devs[0]), pnn_device_close(devs[1]);
}
END_TEST

/* Taped forwards of the twin scale y by 1 + noise n (its own draws), and the VJP goes through the
 * same factor; evaluation forwards stay clean. */
START_TEST(twin_models_detector_noise) {
    pnn_device *dev;
    pnn_twin *tw;
    ck_assert_int_eq(pnn_device_open("sim:shg?k=40&noise=0.05&seed=2", pnn_backend_cpu(), &dev), PNN_OK);
    ck_assert_int_eq(pnn_twin_create("analytic", dev, -1, &tw), PNN_OK);
    const int64_t rows = 6, xd = 20, yd = 16;
    pnn_tensor x = {0}, clean = {0}, noisy = {0}, dy = {0}, dx = {0};
    int64_t xs[2] = {rows, xd}, ys[2] = {rows, yd};
    ck_assert_int_eq(pnn_tensor_init(&x, pnn_backend_cpu(), 2, xs), PNN_OK);
    ck_assert_int_eq(pnn_tensor_init(&dx, pnn_backend_cpu(), 2, xs), PNN_OK);
    ck_assert_int_eq(pnn_tensor_init(&clean, pnn_backend_cpu(), 2, ys), PNN_OK);
    ck_assert_int_eq(pnn_tensor_init(&noisy, pnn_backend_cpu(), 2, ys), PNN_OK);
    ck_assert_int_eq(pnn_tensor_init(&dy, pnn_backend_cpu(), 2, ys), PNN_OK);
    pnn_test_uniform(x.data, rows * xd, 0.05f, 1, 1, 1200);
    pnn_test_uniform(dy.data, rows * yd, -1, 1, 1, 1201);
    float *theta = random_floats(20, 0.05f, 1, 1202), dtheta[20] = {0};
    ck_assert_int_eq(tw->iface->forward(tw, &x, theta, &clean, -1, NULL), PNN_OK);
    ck_assert_int_eq(tw->iface->forward(tw, &x, theta, &noisy, 3, NULL), PNN_OK);
    ck_assert_int_eq(tw->calls, 1);
    ck_assert(tw->iface->forward(tw, &x, theta, &noisy, 3, theta) == PNN_ERR_UNSUPPORTED);
    ck_assert_int_eq(tw->iface->forward(tw, &x, theta, &noisy, 3, NULL), PNN_OK);
    ck_assert_int_eq(tw->iface->vjp(tw, theta, &dy, &dx, dtheta, 3), PNN_OK);
    /* the same VJP by the kernels, from a clean tape, with dy scaled by the factors */
    ref_setup s = {.rows = rows, .k = 40, .x_dim = xd, .y_dim = yd};
    float *gdy = pnn_test_floats((size_t)(rows * yd));
    double sd = 0;
    for (int64_t i = 0; i < rows * yd; i++) {
        double g = noisy.data[i] / clean.data[i];
        gdy[i] = (float)(g * dy.data[i]);
        sd += (g - 1) * (g - 1);
    }
    sd = sqrt(sd / (double)(rows * yd));
    ck_assert_msg(sd > 0.03 && sd < 0.07, "twin noise sd %.3g, want about 0.05", sd);
    run_out o = run_kernels(&s, PNN_SHG_FFT, x.data, theta, NULL, gdy);
    ck_assert(norm_err(dx.data, o.dx, rows * xd) < 1e-5 && norm_err(dtheta, o.dtheta, 20) < 1e-5);
    free_out(&o);
    free(theta), free(gdy);
    pnn_tensor_free(&x), pnn_tensor_free(&dx), pnn_tensor_free(&clean), pnn_tensor_free(&noisy), pnn_tensor_free(&dy);
    pnn_twin_free(tw), pnn_device_close(dev);
}
END_TEST

/* A device whose reported dims are not an shg system's (a crafted server or recording header)
 * gets no twin; nor does one whose system URI disagrees with its dims. */
START_TEST(twin_refuses_device_dims_of_another_system) {
    pnn_device *dev;
    ck_assert_int_eq(pnn_device_open("sim:shg?k=40&x_dim=12&y_dim=9", pnn_backend_cpu(), &dev), PNN_OK);
    pnn_device_info good = dev->info;
    /* x, y, theta: an oscillator's dims, zero dims, y past 2K - 1, K past the largest */
    const int64_t bad[][3] = {{0, 9, 28}, {12, 9, 0}, {12, 80, 28}, {40000, 9, 40000}, {12, 0, 28}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        dev->info.x_dim = bad[i][0], dev->info.y_dim = bad[i][1], dev->info.theta_dim = bad[i][2];
        pnn_twin *tw = (pnn_twin *)1;
        ck_assert_int_eq(pnn_twin_create("analytic", dev, -1, &tw), PNN_ERR_FORMAT);
        ck_assert_ptr_null(tw);
        ck_assert_ptr_nonnull(strstr(pnn_last_error(), "not an shg system"));
    }
    /* dims that could be an shg system's, but not this URI's */
    const int64_t other[][3] = {{40, 40, 1640}, {13, 9, 27}, {12, 10, 28}};
    for (size_t i = 0; i < sizeof other / sizeof other[0]; i++) {
        dev->info.x_dim = other[i][0], dev->info.y_dim = other[i][1], dev->info.theta_dim = other[i][2];
        pnn_twin *tw;
        ck_assert_int_eq(pnn_twin_create("analytic", dev, -1, &tw), PNN_ERR_FORMAT);
        ck_assert_ptr_nonnull(strstr(pnn_last_error(), "system URI"));
    }
    dev->info = good;
    snprintf(dev->info.system_uri, sizeof dev->info.system_uri, "sim:shg?k=40&x_dim=12&y_dim=9&layout=diagonal");
    pnn_twin *tw;
    ck_assert_int_eq(pnn_twin_create("analytic", dev, -1, &tw), PNN_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(pnn_last_error(), "layout=diagonal"));
    dev->info = good;
    ck_assert_int_eq(pnn_twin_create("analytic", dev, -1, &tw), PNN_OK);
    pnn_twin_free(tw);
    pnn_device_close(dev);
}
END_TEST

static Suite *shg_suite(void) {
    Suite *s = suite_create("shg");
    TCase *tc = tcase_create("cpu");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, layout_matches_reference);
    tcase_add_test(tc, forward_matches_reference);
    tcase_add_test(tc, open_pulse_and_single_bin_known_answers);
    tcase_add_test(tc, mirror_symmetry);
    tcase_add_test(tc, forms_agree_forward_and_vjp);
    tcase_add_test(tc, vjp_matches_elementwise_finite_differences);
    tcase_add_test(tc, vjp_matches_directional_finite_differences);
    tcase_add_test(tc, vjp_at_closed_faint_and_saturated_bins);
    tcase_add_test(tc, vjp_gain_accumulation_and_null_dx);
    tcase_add_test(tc, tape_free_forward_is_bit_identical);
    tcase_add_test(tc, device_op_matches_reference);
    tcase_add_test(tc, linear_phase_leaves_spectrum_unchanged);
    tcase_add_test(tc, sim_device_matches_reference_model);
    tcase_add_test(tc, twin_equals_device_when_ideal);
    tcase_add_test(tc, device_noise_is_relative_and_reproducible);
    tcase_add_test(tc, blur_conserves_light);
    tcase_add_test(tc, twin_models_detector_noise);
    tcase_add_test(tc, twin_refuses_device_dims_of_another_system);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return pnn_test_run(shg_suite()); }
