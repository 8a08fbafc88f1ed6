/* The CPU kernels of the digital ops, called through the backend table, against plain
 * double-precision references on odd sizes (1, 7, 33, 129) and on sizes large enough to take the
 * OpenMP path. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pnn/pnn.h"
#include "tests/testutil.h"

static const int64_t sizes[] = {1, 7, 33, 129, 40003};
#define N_SIZES ((int)(sizeof sizes / sizeof *sizes))

static const pnn_backend_i *ops(void) { return pnn_backend_cpu()->iface; }

static float *random_floats(int64_t n, float lo, float hi, uint64_t stream) {
    float *x = malloc((size_t)n * sizeof *x);
    ck_assert_ptr_nonnull(x);
    pnn_test_uniform(x, n, lo, hi, 11, stream);
    return x;
}

static double *doubles(int64_t n) {
    double *x = calloc((size_t)n, sizeof *x);
    ck_assert_ptr_nonnull(x);
    return x;
}

START_TEST(copy2d_copies_the_block_only) {
    for (int s = 0; s < 4; s++) {
        int64_t width = sizes[s], height = sizes[3 - s] + 1, src_pitch = width + 3, dst_pitch = width + 5;
        float *src = random_floats(src_pitch * height, -1, 1, 1);
        float *dst = malloc((size_t)(dst_pitch * height) * sizeof *dst);
        double *want = doubles(dst_pitch * height);
        for (int64_t i = 0; i < dst_pitch * height; i++) dst[i] = 42.0f, want[i] = 42.0;
        for (int64_t r = 0; r < height; r++)
            for (int64_t c = 0; c < width; c++) want[r * dst_pitch + c] = src[r * src_pitch + c];
        ops()->copy2d(NULL, dst, dst_pitch, src, src_pitch, width, height);
        ck_assert(pnn_test_allclose("copy2d", dst, want, dst_pitch * height, 0, 0));
        free(src), free(dst), free(want);
    }
}
END_TEST

START_TEST(axpby_scale_dot_match_double) {
    for (int s = 0; s < N_SIZES; s++) {
        int64_t n = sizes[s];
        float *x = random_floats(n, -2, 2, 2), *y = random_floats(n, -2, 2, 3), out;
        double *want = doubles(n), dot = 0;
        for (int64_t i = 0; i < n; i++) want[i] = 0.5 * x[i] - 1.5 * y[i], dot += (double)x[i] * y[i];
        ops()->dot(NULL, n, x, y, &out);
        ck_assert_msg(fabs(out - dot) <= 1e-6 * (1 + fabs(dot)) + 1e-5, "dot n=%lld: %g vs %g", (long long)n,
                      out, dot);
        ops()->axpby(NULL, n, 0.5f, x, -1.5f, y);
        ck_assert(pnn_test_allclose("axpby", y, want, n, 1e-6, 1e-6));
        for (int64_t i = 0; i < n; i++) y[i] = NAN, want[i] = -3.0 * x[i];
        ops()->axpby(NULL, n, -3.0f, x, 0.0f, y); /* beta 0 never reads y */
        ck_assert(pnn_test_allclose("axpby beta=0", y, want, n, 1e-6, 1e-6));
        for (int64_t i = 0; i < n; i++) want[i] = 0.25 * x[i];
        ops()->scale(NULL, n, 0.25f, x, y);
        ck_assert(pnn_test_allclose("scale", y, want, n, 0, 1e-7));
        free(x), free(y), free(want);
    }
}
END_TEST

START_TEST(bias_add_and_grad_match_double) {
    static const int64_t shapes[][2] = {{1, 1}, {7, 33}, {129, 7}, {33, 129}, {129, 300}, {2000, 3}};
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
        int64_t rows = shapes[s][0], cols = shapes[s][1], n = rows * cols;
        float *y = random_floats(n, -1, 1, 4), *bias = random_floats(cols, -1, 1, 5);
        float *dbias = random_floats(cols, -1, 1, 6);
        double *want = doubles(n), *want_db = doubles(cols);
        for (int64_t c = 0; c < cols; c++) want_db[c] = dbias[c];
        for (int64_t r = 0; r < rows; r++)
            for (int64_t c = 0; c < cols; c++) {
                want[r * cols + c] = (double)y[r * cols + c] + bias[c];
                want_db[c] += y[r * cols + c];
            }
        ops()->bias_grad(NULL, rows, cols, y, dbias); /* accumulates onto the old dbias */
        ck_assert(pnn_test_allclose("bias_grad", dbias, want_db, cols, 1e-5, 1e-5));
        ops()->add_bias(NULL, rows, cols, bias, y);
        ck_assert(pnn_test_allclose("add_bias", y, want, n, 1e-6, 1e-6));
        free(y), free(bias), free(dbias), free(want), free(want_db);
    }
}
END_TEST

static double act_ref(pnn_act act, double x) {
    switch (act) {
    case PNN_ACT_RELU: return x > 0 ? x : 0;
    case PNN_ACT_TANH: return tanh(x);
    case PNN_ACT_SIGMOID: return 1.0 / (1.0 + exp(-x));
    default: return x;
    }
}

static double act_deriv_ref(pnn_act act, double x) {
    switch (act) {
    case PNN_ACT_RELU: return x > 0 ? 1 : 0;
    case PNN_ACT_TANH: return 1 - tanh(x) * tanh(x);
    case PNN_ACT_SIGMOID: return act_ref(act, x) * (1 - act_ref(act, x));
    default: return 1;
    }
}

START_TEST(activations_and_derivatives_match_double) {
    static const pnn_act acts[] = {PNN_ACT_IDENTITY, PNN_ACT_RELU, PNN_ACT_TANH, PNN_ACT_SIGMOID};
    for (int a = 0; a < 4; a++)
        for (int s = 0; s < N_SIZES; s++) {
            int64_t n = sizes[s];
            float *x = random_floats(n, -6, 6, 7), *dy = random_floats(n, -1, 1, 8);
            float *y = malloc((size_t)n * sizeof *y), *dx = malloc((size_t)n * sizeof *dx);
            if (n > 3) x[0] = 0.0f, x[1] = 100.0f, x[2] = -100.0f; /* ReLU kink, saturation */
            double *want_y = doubles(n), *want_dx = doubles(n);
            for (int64_t i = 0; i < n; i++) {
                want_y[i] = act_ref(acts[a], x[i]);
                want_dx[i] = dy[i] * act_deriv_ref(acts[a], x[i]);
            }
            ops()->act_forward(NULL, acts[a], n, x, y);
            ck_assert(pnn_test_allclose("act_forward", y, want_y, n, 1e-6, 1e-6));
            ops()->act_backward(NULL, acts[a], n, x, y, dy, dx);
            ck_assert(pnn_test_allclose("act_backward", dx, want_dx, n, 1e-6, 1e-5));
            free(x), free(dy), free(y), free(dx), free(want_y), free(want_dx);
        }
}
END_TEST

START_TEST(patchify_is_patch_major_and_unpatchify_inverts_it) {
    static const int64_t cases[][5] = {{1, 1, 1, 1, 1}, {3, 6, 9, 2, 3}, {2, 28, 28, 7, 7},
                                       {7, 4, 33, 4, 11}, {129, 28, 28, 4, 7}};
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        int64_t b = cases[k][0], h = cases[k][1], w = cases[k][2], ph = cases[k][3], pw = cases[k][4];
        int64_t n = b * h * w, npw = w / pw, npatch = (h / ph) * npw;
        float *img = random_floats(n, -1, 1, 9), *patches = malloc((size_t)n * sizeof(float));
        float *back = malloc((size_t)n * sizeof(float));
        double *want = doubles(n), *want_back = doubles(n);
        for (int64_t i = 0; i < b; i++)
            for (int64_t p = 0; p < npatch; p++)
                for (int64_t a = 0; a < ph; a++)
                    for (int64_t c = 0; c < pw; c++) {
                        int64_t pr = p / npw, pc = p % npw;
                        want[(i * npatch + p) * ph * pw + a * pw + c] =
                            img[i * h * w + (pr * ph + a) * w + pc * pw + c];
                    }
        for (int64_t i = 0; i < n; i++) want_back[i] = img[i];
        ops()->patchify(NULL, b, h, w, ph, pw, img, patches);
        ck_assert(pnn_test_allclose("patchify", patches, want, n, 0, 0));
        ops()->unpatchify(NULL, b, h, w, ph, pw, patches, back);
        ck_assert(pnn_test_allclose("unpatchify", back, want_back, n, 0, 0));
        free(img), free(patches), free(back), free(want), free(want_back);
    }
}
END_TEST

/* loss, correct flag and (softmax - onehot) * scale of one row, in double */
static void xent_ref(const float *z, int64_t classes, int64_t label, double scale, double *loss,
                     double *correct, double *dz) {
    double zmax = -INFINITY, sum = 0;
    int64_t argmax = 0;
    for (int64_t c = 0; c < classes; c++)
        if (z[c] > zmax) zmax = z[c], argmax = c;
    for (int64_t c = 0; c < classes; c++) sum += exp(z[c] - zmax);
    *loss = zmax + log(sum) - z[label];
    *correct = argmax == label;
    for (int64_t c = 0; c < classes; c++) dz[c] = (exp(z[c] - zmax) / sum - (c == label)) * scale;
}

static void check_xent(int64_t rows, int64_t classes, float spread, uint64_t stream) {
    int64_t n = rows * classes;
    float *z = random_floats(n, -spread, spread, stream), *labels = random_floats(rows, 0, 1, stream + 1);
    float *loss = malloc((size_t)rows * sizeof(float)), *correct = malloc((size_t)rows * sizeof(float));
    float *dz = malloc((size_t)n * sizeof(float));
    double *want_loss = doubles(rows), *want_correct = doubles(rows), *want_dz = doubles(n);
    double scale = 1.0 / (double)rows;
    for (int64_t r = 0; r < rows; r++) {
        labels[r] = floorf(labels[r] * (float)classes * 0.999f);
        if (r % 3 == 0) { /* make some rows right, so correct_rows is tested both ways */
            int64_t best = 0;
            for (int64_t c = 1; c < classes; c++)
                if (z[r * classes + c] > z[r * classes + best]) best = c;
            labels[r] = (float)best;
        }
        xent_ref(z + r * classes, classes, (int64_t)labels[r], scale, &want_loss[r], &want_correct[r],
                 want_dz + r * classes);
    }
    ops()->softmax_xent(NULL, rows, classes, z, labels, loss, correct, dz, (float)scale);
    /* float logits of size ~1000 carry an absolute rounding of ~6e-5 into the loss */
    double atol = spread > 100 ? 1e-4 : 1e-6;
    ck_assert(pnn_test_allclose("xent loss", loss, want_loss, rows, atol, 1e-5));
    ck_assert(pnn_test_allclose("xent correct", correct, want_correct, rows, 0, 0));
    ck_assert(pnn_test_allclose("xent dlogits", dz, want_dz, n, 1e-7, 1e-5));
    for (int64_t r = 0; r < rows; r++) loss[r] = -1;
    ops()->softmax_xent(NULL, rows, classes, z, labels, loss, correct, NULL, 1.0f);
    ck_assert(pnn_test_allclose("xent loss without dlogits", loss, want_loss, rows, atol, 1e-5));
    free(z), free(labels), free(loss), free(correct), free(dz), free(want_loss), free(want_correct),
        free(want_dz);
}

START_TEST(softmax_xent_matches_double) {
    for (int s = 0; s < 4; s++)
        for (int c = 0; c < 4; c++) check_xent(sizes[s], sizes[c], 5.0f, 20 + (uint64_t)(s * 4 + c));
    check_xent(3000, 17, 3.0f, 40); /* OpenMP path */
}
END_TEST

START_TEST(softmax_xent_is_stable_for_huge_logits) {
    check_xent(33, 7, 1000.0f, 50);
    float z[3] = {1000.0f, -1000.0f, 999.0f}, label = 2.0f, loss, correct, dz[3];
    ops()->softmax_xent(NULL, 1, 3, z, &label, &loss, &correct, dz, 1.0f);
    double want = log(1.0 + exp(1.0)); /* -log(e^999 / (e^1000 + e^999)) */
    ck_assert_double_eq_tol(loss, want, 1e-5);
    ck_assert(correct == 0.0f);
    ck_assert(isfinite(dz[0]) && isfinite(dz[1]) && isfinite(dz[2]));
    ck_assert_double_eq_tol(dz[0] + dz[1] + dz[2], 0.0, 1e-6);
}
END_TEST

START_TEST(mse_matches_double) {
    static const int64_t shapes[][2] = {{1, 1}, {7, 1}, {1, 33}, {33, 7}, {129, 129}, {3000, 17}};
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
        int64_t rows = shapes[s][0], cols = shapes[s][1], n = rows * cols;
        float *y = random_floats(n, -2, 2, 60), *t = random_floats(n, -2, 2, 61);
        float *loss = malloc((size_t)rows * sizeof(float)), *dy = malloc((size_t)n * sizeof(float));
        double *want_loss = doubles(rows), *want_dy = doubles(n), scale = 0.125;
        for (int64_t r = 0; r < rows; r++)
            for (int64_t c = 0; c < cols; c++) {
                double d = (double)y[r * cols + c] - t[r * cols + c];
                want_loss[r] += d * d / (double)cols;
                want_dy[r * cols + c] = 2.0 * d / (double)cols * scale;
            }
        ops()->mse(NULL, rows, cols, y, t, loss, dy, (float)scale);
        ck_assert(pnn_test_allclose("mse loss", loss, want_loss, rows, 1e-6, 1e-5));
        ck_assert(pnn_test_allclose("mse dy", dy, want_dy, n, 1e-7, 1e-5));
        ops()->mse(NULL, rows, cols, y, t, loss, NULL, 1.0f);
        ck_assert(pnn_test_allclose("mse loss without dy", loss, want_loss, rows, 1e-6, 1e-5));
        free(y), free(t), free(loss), free(dy), free(want_loss), free(want_dy);
    }
}
END_TEST

/* Three steps of each update rule against the textbook formulas in double. */
START_TEST(optimizer_updates_match_double) {
    const double lr = 0.01, b1 = 0.8, b2 = 0.99, eps = 1e-6, wd = 0.1, mom = 0.9;
    for (int s = 0; s < N_SIZES; s++) {
        int64_t n = sizes[s];
        float *p = random_floats(n, -1, 1, 70), *m = calloc((size_t)n, 4), *v = calloc((size_t)n, 4);
        float *q = malloc((size_t)n * 4), *vel = calloc((size_t)n, 4);
        memcpy(q, p, (size_t)n * 4);
        double *rp = doubles(n), *rm = doubles(n), *rv = doubles(n), *rq = doubles(n), *rvel = doubles(n);
        for (int64_t i = 0; i < n; i++) rp[i] = rq[i] = p[i];
        for (int step = 1; step <= 3; step++) {
            float *g = random_floats(n, -1, 1, 71 + (uint64_t)step);
            for (int64_t i = 0; i < n; i++) {
                double ga = g[i] + wd * rp[i], gs = g[i] + wd * rq[i];
                rm[i] = b1 * rm[i] + (1 - b1) * ga;
                rv[i] = b2 * rv[i] + (1 - b2) * ga * ga;
                double mhat = rm[i] / (1 - pow(b1, step)), vhat = rv[i] / (1 - pow(b2, step));
                rp[i] -= lr * mhat / (sqrt(vhat) + eps);
                rvel[i] = mom * rvel[i] + gs;
                rq[i] -= lr * rvel[i];
            }
            ops()->adam_update(NULL, n, p, g, m, v, (float)lr, (float)b1, (float)b2, (float)eps, (float)wd, step);
            ops()->sgd_update(NULL, n, q, g, vel, (float)lr, (float)mom, (float)wd);
            free(g);
        }
        ck_assert(pnn_test_allclose("adam param", p, rp, n, 1e-6, 1e-5));
        ck_assert(pnn_test_allclose("adam m", m, rm, n, 1e-6, 1e-5));
        ck_assert(pnn_test_allclose("adam v", v, rv, n, 1e-7, 1e-5));
        ck_assert(pnn_test_allclose("sgd param", q, rq, n, 1e-6, 1e-5));
        ck_assert(pnn_test_allclose("sgd velocity", vel, rvel, n, 1e-6, 1e-5));
        free(p), free(m), free(v), free(q), free(vel), free(rp), free(rm), free(rv), free(rq), free(rvel);
    }
}
END_TEST

/* Element (i, j) of op(X) for a row-major complex X with leading dimension ld. */
static void cplx_at(const float *x, int64_t ld, char op, int64_t i, int64_t j, double *re, double *im) {
    int64_t r = op == 'N' ? i : j, c = op == 'N' ? j : i;
    *re = x[2 * (r * ld + c)];
    *im = op == 'C' ? -x[2 * (r * ld + c) + 1] : x[2 * (r * ld + c) + 1];
}

/* Complex GEMM for every op pair, odd sizes, padded leading dims, complex alpha and beta. */
START_TEST(cgemm_matches_double) {
    static const char opv[] = {'N', 'T', 'C'};
    static const int64_t shapes[][3] = {{1, 1, 1}, {3, 5, 7}, {17, 9, 33}, {64, 48, 40}};
    const float alpha[2] = {0.75f, -0.5f}, beta[2] = {-0.25f, 0.5f};
    for (size_t sh = 0; sh < sizeof shapes / sizeof shapes[0]; sh++)
        for (int oa = 0; oa < 3; oa++)
            for (int ob = 0; ob < 3; ob++) {
                int64_t m = shapes[sh][0], n = shapes[sh][1], k = shapes[sh][2];
                int64_t ar = opv[oa] == 'N' ? m : k, ac = opv[oa] == 'N' ? k : m;
                int64_t br = opv[ob] == 'N' ? k : n, bc = opv[ob] == 'N' ? n : k;
                int64_t lda = ac + 2, ldb = bc + 1, ldc = n + 3;
                float *a = random_floats(2 * ar * lda, -1, 1, 900), *b = random_floats(2 * br * ldb, -1, 1, 901);
                float *c = random_floats(2 * m * ldc, -1, 1, 902);
                double *want = doubles(2 * m * ldc);
                for (int64_t i = 0; i < 2 * m * ldc; i++) want[i] = c[i]; /* padding stays */
                for (int64_t i = 0; i < m; i++)
                    for (int64_t j = 0; j < n; j++) {
                        double sr = 0, si = 0;
                        for (int64_t l = 0; l < k; l++) {
                            double xr, xi, yr, yi;
                            cplx_at(a, lda, opv[oa], i, l, &xr, &xi);
                            cplx_at(b, ldb, opv[ob], l, j, &yr, &yi);
                            sr += xr * yr - xi * yi, si += xr * yi + xi * yr;
                        }
                        double cr = c[2 * (i * ldc + j)], ci = c[2 * (i * ldc + j) + 1];
                        want[2 * (i * ldc + j)] = alpha[0] * sr - alpha[1] * si + beta[0] * cr - beta[1] * ci;
                        want[2 * (i * ldc + j) + 1] = alpha[0] * si + alpha[1] * sr + beta[0] * ci + beta[1] * cr;
                    }
                ops()->cgemm(NULL, opv[oa], opv[ob], m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
                char what[64];
                snprintf(what, sizeof what, "cgemm %c%c %lldx%lldx%lld", opv[oa], opv[ob], (long long)m, (long long)n,
                         (long long)k);
                ck_assert(pnn_test_allclose(what, c, want, 2 * m * ldc, 1e-5, 1e-5));
                free(a), free(b), free(c), free(want);
            }
}
END_TEST

/* FFTs against the plain DFT in double, in place and not, forward and inverse, odd lengths. */
START_TEST(fft_matches_the_dft) {
    static const int64_t lengths[] = {1, 2, 7, 64, 100, 127, 1024};
    for (size_t li = 0; li < sizeof lengths / sizeof lengths[0]; li++)
        for (int inverse = 0; inverse < 2; inverse++)
            for (int in_place = 0; in_place < 2; in_place++) {
                int64_t n = lengths[li], batch = 3;
                float *x = random_floats(2 * n * batch, -1, 1, 910 + (uint64_t)li);
                double *want = doubles(2 * n * batch);
                double sign = inverse ? 1.0 : -1.0;
                for (int64_t b = 0; b < batch; b++)
                    for (int64_t kk = 0; kk < n; kk++) {
                        double sr = 0, si = 0;
                        for (int64_t j = 0; j < n; j++) {
                            double ang = sign * 2.0 * 3.14159265358979323846 * (double)((j * kk) % n) / (double)n;
                            double xr = x[2 * (b * n + j)], xi = x[2 * (b * n + j) + 1];
                            sr += xr * cos(ang) - xi * sin(ang), si += xr * sin(ang) + xi * cos(ang);
                        }
                        want[2 * (b * n + kk)] = sr, want[2 * (b * n + kk) + 1] = si;
                    }
                float *y = in_place ? x : random_floats(2 * n * batch, -1, 1, 920);
                ops()->fft(NULL, n, batch, inverse, x, y);
                char what[64];
                snprintf(what, sizeof what, "fft n=%lld %s%s", (long long)n, inverse ? "inverse" : "forward",
                         in_place ? " in place" : "");
                ck_assert(pnn_test_allclose(what, y, want, 2 * n * batch, 1e-4 * sqrt((double)n), 1e-4));
                if (!in_place) free(y);
                free(x), free(want);
            }
}
END_TEST

/* clamp keeps values in range, in place, and NaN stays NaN */
START_TEST(clamp_matches_reference) {
    for (int si = 0; si < N_SIZES; si++) {
        int64_t n = sizes[si];
        float *x = random_floats(n, -3, 3, 930);
        double *want = doubles(n);
        x[0] = __builtin_nanf("");
        for (int64_t i = 0; i < n; i++) want[i] = isnan(x[i]) ? x[i] : x[i] < -1 ? -1 : x[i] > 0.5 ? 0.5 : x[i];
        ops()->clamp(NULL, n, -1.0f, 0.5f, x);
        ck_assert(isnan(x[0]));
        x[0] = 0, want[0] = 0;
        ck_assert(pnn_test_allclose("clamp", x, want, n, 0, 0));
        free(x), free(want);
    }
}
END_TEST

int main(void) {
    Suite *s = suite_create("ops");
    TCase *tc = tcase_create("ops");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, copy2d_copies_the_block_only);
    tcase_add_test(tc, axpby_scale_dot_match_double);
    tcase_add_test(tc, bias_add_and_grad_match_double);
    tcase_add_test(tc, activations_and_derivatives_match_double);
    tcase_add_test(tc, patchify_is_patch_major_and_unpatchify_inverts_it);
    tcase_add_test(tc, softmax_xent_matches_double);
    tcase_add_test(tc, softmax_xent_is_stable_for_huge_logits);
    tcase_add_test(tc, mse_matches_double);
    tcase_add_test(tc, optimizer_updates_match_double);
    tcase_add_test(tc, cgemm_matches_double);
    tcase_add_test(tc, fft_matches_the_dft);
    tcase_add_test(tc, clamp_matches_reference);
    suite_add_tcase(s, tc);
    return pnn_test_run(s);
}
