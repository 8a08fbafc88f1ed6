/* The conv2d ops of the CPU backend (kernels/cpu/conv_cpu.c) against a plain double-precision
 * direct convolution on odd shapes (stride 1 to 3, padding, 1x1 kernels, chunks of several
 * samples), backward data and filter against the exact adjoint of that reference and against
 * central finite differences, and the conv2d layer (host/layer_conv2d.c): shapes, PyTorch-style
 * initialisation, bias gradient, errors. */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "pnn/pnn.h"
#include "tests/testutil.h"

static const pnn_backend_i *ops(void) { return pnn_backend_cpu()->iface; }

static float *random_floats(int64_t n, float lo, float hi, uint64_t stream) {
    float *x = malloc((size_t)(n ? n : 1) * sizeof *x);
    ck_assert_ptr_nonnull(x);
    pnn_test_uniform(x, n, lo, hi, 17, stream);
    return x;
}

static double *doubles(int64_t n) {
    double *x = calloc((size_t)(n ? n : 1), sizeof *x);
    ck_assert_ptr_nonnull(x);
    return x;
}

static float *nan_work(const pnn_conv2d_params *p) {
    size_t n = ops()->conv2d_work_floats(p);
    float *w = malloc((n ? n : 1) * sizeof *w);
    ck_assert_ptr_nonnull(w);
    for (size_t i = 0; i < n; i++) w[i] = NAN; /* the kernels must write before they read */
    return w;
}

static int64_t x_numel(const pnn_conv2d_params *p) { return p->batch * p->in_c * p->in_h * p->in_w; }
static int64_t w_numel(const pnn_conv2d_params *p) { return p->out_c * p->in_c * p->kh * p->kw; }
static int64_t y_numel(const pnn_conv2d_params *p) {
    return p->batch * p->out_c * pnn_conv2d_out_h(p) * pnn_conv2d_out_w(p);
}

/* The direct definition, in double: y[b,o,i,j] = bias[o] + sum_{c,u,v} x[b,c,i s-p+u, j s-p+v] w[o,c,u,v].
 * With adjoint set, the same loops scatter instead: dx += dy w (dx_ref), dw += dy x (dw_ref). */
static void ref_conv(const pnn_conv2d_params *p, const float *x, const float *w, const float *bias, double *y) {
    const int64_t oh = pnn_conv2d_out_h(p), ow = pnn_conv2d_out_w(p);
    for (int64_t b = 0; b < p->batch; b++)
        for (int64_t o = 0; o < p->out_c; o++)
            for (int64_t i = 0; i < oh; i++)
                for (int64_t j = 0; j < ow; j++) {
                    double acc = bias ? bias[o] : 0.0;
                    for (int64_t c = 0; c < p->in_c; c++)
                        for (int64_t u = 0; u < p->kh; u++)
                            for (int64_t v = 0; v < p->kw; v++) {
                                int64_t iy = i * p->stride - p->pad + u, ix = j * p->stride - p->pad + v;
                                if (iy < 0 || iy >= p->in_h || ix < 0 || ix >= p->in_w) continue;
                                acc += (double)x[((b * p->in_c + c) * p->in_h + iy) * p->in_w + ix] *
                                       w[((o * p->in_c + c) * p->kh + u) * p->kw + v];
                            }
                    y[((b * p->out_c + o) * oh + i) * ow + j] = acc;
                }
}

static void ref_adjoint(const pnn_conv2d_params *p, const float *x, const float *w, const float *dy, double *dx,
                        double *dw, double *db) {
    const int64_t oh = pnn_conv2d_out_h(p), ow = pnn_conv2d_out_w(p);
    for (int64_t b = 0; b < p->batch; b++)
        for (int64_t o = 0; o < p->out_c; o++)
            for (int64_t i = 0; i < oh; i++)
                for (int64_t j = 0; j < ow; j++) {
                    double g = dy[((b * p->out_c + o) * oh + i) * ow + j];
                    db[o] += g;
                    for (int64_t c = 0; c < p->in_c; c++)
                        for (int64_t u = 0; u < p->kh; u++)
                            for (int64_t v = 0; v < p->kw; v++) {
                                int64_t iy = i * p->stride - p->pad + u, ix = j * p->stride - p->pad + v;
                                if (iy < 0 || iy >= p->in_h || ix < 0 || ix >= p->in_w) continue;
                                int64_t xi = ((b * p->in_c + c) * p->in_h + iy) * p->in_w + ix;
                                int64_t wi = ((o * p->in_c + c) * p->kh + u) * p->kw + v;
                                dx[xi] += g * w[wi];
                                dw[wi] += g * x[xi];
                            }
                }
}

/* batch, in_c, in_h, in_w, out_c, kh, kw, stride, pad: odd sizes, strides 1-3, padding, 1x1,
 * non-square kernels, and batches larger than one work chunk */
static const pnn_conv2d_params shapes[] = {
    {1, 1, 5, 5, 1, 3, 3, 1, 0},    {3, 2, 7, 9, 5, 3, 3, 1, 1},   {2, 3, 11, 8, 4, 5, 3, 2, 2},
    {4, 5, 9, 9, 3, 1, 1, 1, 0},    {5, 3, 6, 7, 2, 1, 1, 2, 0},   {2, 4, 13, 13, 7, 4, 4, 3, 1},
    {37, 2, 8, 6, 3, 3, 2, 2, 1},   {3, 1, 3, 3, 2, 3, 3, 1, 2},   {2, 6, 15, 10, 8, 2, 5, 1, 0},
};
#define N_SHAPES ((int)(sizeof shapes / sizeof *shapes))

START_TEST(forward_matches_direct_double_convolution) {
    for (int s = 0; s < N_SHAPES; s++) {
        const pnn_conv2d_params *p = &shapes[s];
        float *x = random_floats(x_numel(p), -1, 1, 1), *w = random_floats(w_numel(p), -1, 1, 2);
        float *bias = random_floats(p->out_c, -1, 1, 3), *y = random_floats(y_numel(p), 5, 6, 4);
        float *work = nan_work(p);
        double *want = doubles(y_numel(p));
        for (int with_bias = 0; with_bias < 2; with_bias++) {
            ref_conv(p, x, w, with_bias ? bias : NULL, want);
            ops()->conv2d_forward(NULL, p, x, w, with_bias ? bias : NULL, y, work);
            ck_assert_msg(pnn_test_allclose("conv2d forward", y, want, y_numel(p), 1e-5, 1e-5), "shape %d bias %d", s,
                          with_bias);
        }
        free(x), free(w), free(bias), free(y), free(work), free(want);
    }
}
END_TEST

/* backward data overwrites dx; backward filter accumulates into dw and dbias */
START_TEST(backward_matches_exact_adjoint) {
    for (int s = 0; s < N_SHAPES; s++) {
        const pnn_conv2d_params *p = &shapes[s];
        float *x = random_floats(x_numel(p), -1, 1, 5), *w = random_floats(w_numel(p), -1, 1, 6);
        float *dy = random_floats(y_numel(p), -1, 1, 7), *dx = random_floats(x_numel(p), 9, 10, 8);
        float *dw = random_floats(w_numel(p), -1, 1, 9), *db = random_floats(p->out_c, -1, 1, 10);
        float *work = nan_work(p);
        double *dx_ref = doubles(x_numel(p)), *dw_ref = doubles(w_numel(p)), *db_ref = doubles(p->out_c);
        for (int64_t i = 0; i < w_numel(p); i++) dw_ref[i] = dw[i];
        for (int64_t i = 0; i < p->out_c; i++) db_ref[i] = db[i];
        ref_adjoint(p, x, w, dy, dx_ref, dw_ref, db_ref);
        ops()->conv2d_backward_data(NULL, p, dy, w, dx, work);
        ck_assert_msg(pnn_test_allclose("conv2d backward data", dx, dx_ref, x_numel(p), 1e-5, 1e-5), "shape %d", s);
        ops()->conv2d_backward_filter(NULL, p, x, dy, dw, db, work);
        ck_assert_msg(pnn_test_allclose("conv2d backward filter", dw, dw_ref, w_numel(p), 1e-4, 1e-5), "shape %d", s);
        ck_assert_msg(pnn_test_allclose("conv2d bias grad", db, db_ref, p->out_c, 1e-4, 1e-5), "shape %d", s);
        free(x), free(w), free(dy), free(dx), free(dw), free(db), free(work);
        free(dx_ref), free(dw_ref), free(db_ref);
    }
}
END_TEST

/* L = sum r * conv(x, w, b) for a random r: dL/dx, dL/dw, dL/db by central differences of the
 * float kernels (in double accumulation), against the backward ops */
static double loss_of(const pnn_conv2d_params *p, const float *x, const float *w, const float *b, const float *r,
                      float *y, float *work) {
    ops()->conv2d_forward(NULL, p, x, w, b, y, work);
    double l = 0;
    for (int64_t i = 0; i < y_numel(p); i++) l += (double)r[i] * y[i];
    return l;
}

static void check_fd(const char *what, const pnn_conv2d_params *p, float *v, int64_t n, const float *grad,
                     const float *x, const float *w, const float *b, const float *r, float *y, float *work) {
    for (int64_t k = 0; k < n; k += n > 12 ? n / 11 : 1) {
        float orig = v[k], eps = 1e-2f;
        v[k] = orig + eps;
        double lp = loss_of(p, x, w, b, r, y, work);
        v[k] = orig - eps;
        double lm = loss_of(p, x, w, b, r, y, work);
        v[k] = orig;
        double fd = (lp - lm) / (2.0 * (double)eps);
        ck_assert_msg(fabs(fd - grad[k]) <= 2e-3 + 2e-3 * fabs(fd), "%s[%lld]: backward %.7g, finite difference %.7g",
                      what, (long long)k, grad[k], fd);
    }
}

START_TEST(backward_matches_finite_differences) {
    for (int s = 1; s < N_SHAPES; s += 2) {
        const pnn_conv2d_params *p = &shapes[s];
        float *x = random_floats(x_numel(p), -1, 1, 11), *w = random_floats(w_numel(p), -1, 1, 12);
        float *b = random_floats(p->out_c, -1, 1, 13), *r = random_floats(y_numel(p), -1, 1, 14);
        float *y = random_floats(y_numel(p), 0, 1, 15), *dx = random_floats(x_numel(p), 0, 1, 16);
        float *dw = calloc((size_t)w_numel(p), sizeof *dw), *db = calloc((size_t)p->out_c, sizeof *db);
        float *work = nan_work(p);
        ops()->conv2d_backward_data(NULL, p, r, w, dx, work);
        ops()->conv2d_backward_filter(NULL, p, x, r, dw, db, work);
        check_fd("dx", p, x, x_numel(p), dx, x, w, b, r, y, work);
        check_fd("dw", p, w, w_numel(p), dw, x, w, b, r, y, work);
        check_fd("db", p, b, p->out_c, db, x, w, b, r, y, work);
        free(x), free(w), free(b), free(r), free(y), free(dx), free(dw), free(db), free(work);
    }
}
END_TEST

/* The layer: output shape, PyTorch's init bound, forward = the op, backward accumulates. */
START_TEST(layer_shapes_init_and_gradients) {
    const pnn_backend *be = pnn_backend_cpu();
    pnn_layer *l;
    ck_assert_msg(pnn_layer_conv2d(&l, be, "conv", 3, 9, 7, 4, 3, 3, 2, 1, 1, 5) == PNN_OK, "%s", pnn_last_error());
    int64_t rows, cols, c, h, w;
    ck_assert_int_eq(l->iface->out_shape(l, 6, 3 * 9 * 7, &rows, &cols), PNN_OK);
    ck_assert_int_eq(rows, 6);
    ck_assert_int_eq(cols, 4 * 5 * 4);
    ck_assert_int_eq(pnn_layer_conv2d_out_image(l, &c, &h, &w), PNN_OK);
    ck_assert(c == 4 && h == 5 && w == 4);
    ck_assert_int_eq(l->iface->out_shape(l, 6, 3 * 9 * 7 + 1, &rows, &cols), PNN_ERR_INVALID);
    ck_assert_msg(strstr(pnn_last_error(), "'conv'") && strstr(pnn_last_error(), "190"), "%s", pnn_last_error());
    ck_assert_int_eq(l->n_params, 2);
    ck_assert_str_eq(l->params[0].name, "conv.weight");
    ck_assert_str_eq(l->params[1].name, "conv.bias");
    ck_assert_int_eq(l->params[0].value.ndim, 4);
    ck_assert_int_eq(l->params[0].value.numel, 4 * 3 * 3 * 3);
    /* U(+-1/sqrt(27)): inside the bound and spread over it */
    float bound = 1.0f / sqrtf(27.0f), lo = 1, hi = -1;
    for (int i = 0; i < 2; i++)
        for (int64_t k = 0; k < l->params[i].value.numel; k++) {
            float v = l->params[i].value.data[k];
            ck_assert(fabsf(v) <= bound);
            lo = v < lo ? v : lo, hi = v > hi ? v : hi;
        }
    ck_assert(lo < -0.5f * bound && hi > 0.5f * bound);

    pnn_conv2d_params p = {6, 3, 9, 7, 4, 3, 3, 2, 1};
    pnn_tensor x, y, dy, dx;
    ck_assert_int_eq(pnn_tensor_init2(&x, be, 6, 3 * 9 * 7), PNN_OK);
    ck_assert_int_eq(pnn_tensor_init2(&y, be, 6, 80), PNN_OK);
    ck_assert_int_eq(pnn_tensor_init2(&dy, be, 6, 80), PNN_OK);
    ck_assert_int_eq(pnn_tensor_init2(&dx, be, 6, 3 * 9 * 7), PNN_OK);
    pnn_test_uniform(x.data, x.numel, -1, 1, 3, 1);
    pnn_test_uniform(dy.data, dy.numel, -1, 1, 3, 2);
    ck_assert_int_eq(l->iface->forward(l, &x, &y, PNN_PASS_TRAIN_TWIN, 0), PNN_OK);
    double *want = doubles(y.numel), *dx_ref = doubles(x.numel), *dw_ref = doubles(108), *db_ref = doubles(4);
    ref_conv(&p, x.data, l->params[0].value.data, l->params[1].value.data, want);
    ck_assert(pnn_test_allclose("layer forward", y.data, want, y.numel, 1e-5, 1e-5));
    /* two backwards accumulate twice the gradient; dx is overwritten each time */
    ck_assert_int_eq(l->iface->backward(l, &x, &y, &dy, &dx, 0), PNN_OK);
    ck_assert_int_eq(l->iface->backward(l, &x, &y, &dy, &dx, 1), PNN_OK);
    ref_adjoint(&p, x.data, l->params[0].value.data, dy.data, dx_ref, dw_ref, db_ref);
    for (int i = 0; i < 108; i++) dw_ref[i] *= 2;
    for (int i = 0; i < 4; i++) db_ref[i] *= 2;
    ck_assert(pnn_test_allclose("layer dx", dx.data, dx_ref, x.numel, 1e-5, 1e-5));
    ck_assert(pnn_test_allclose("layer dweight", l->params[0].grad.data, dw_ref, 108, 1e-4, 1e-5));
    ck_assert(pnn_test_allclose("layer dbias", l->params[1].grad.data, db_ref, 4, 1e-4, 1e-5));
    /* wrong output shape is refused before any op runs */
    pnn_tensor bad;
    ck_assert_int_eq(pnn_tensor_init2(&bad, be, 6, 81), PNN_OK);
    ck_assert_int_eq(l->iface->forward(l, &x, &bad, PNN_PASS_EVAL_TWIN, 0), PNN_ERR_INVALID);
    pnn_tensor_free(&bad);
    pnn_tensor_free(&x), pnn_tensor_free(&y), pnn_tensor_free(&dy), pnn_tensor_free(&dx);
    free(want), free(dx_ref), free(dw_ref), free(db_ref);
    pnn_layer_free(l);

    /* without bias: one parameter; bad shapes are refused with the layer's name */
    ck_assert_int_eq(pnn_layer_conv2d(&l, be, "nb", 1, 4, 4, 2, 1, 1, 1, 0, 0, 1), PNN_OK);
    ck_assert_int_eq(l->n_params, 1);
    pnn_layer_free(l);
    ck_assert_int_eq(pnn_layer_conv2d(&l, be, "big", 1, 4, 4, 2, 7, 7, 1, 1, 1, 1), PNN_ERR_INVALID);
    ck_assert_msg(strstr(pnn_last_error(), "'big'") && strstr(pnn_last_error(), "larger"), "%s", pnn_last_error());
    ck_assert_int_eq(pnn_layer_conv2d(&l, be, "s0", 1, 4, 4, 2, 3, 3, 0, 1, 1, 1), PNN_ERR_INVALID);
    ck_assert_int_eq(pnn_layer_conv2d(&l, be, "c0", 0, 4, 4, 2, 3, 3, 1, 1, 1, 1), PNN_ERR_INVALID);
}
END_TEST

/* The same (seed, name) gives the same weights, another name other weights. */
START_TEST(layer_init_depends_on_seed_and_name_only) {
    const pnn_backend *be = pnn_backend_cpu();
    pnn_layer *a, *b, *c;
    ck_assert_int_eq(pnn_layer_conv2d(&a, be, "k", 2, 5, 5, 3, 3, 3, 1, 1, 1, 9), PNN_OK);
    ck_assert_int_eq(pnn_layer_conv2d(&b, be, "k", 2, 5, 5, 3, 3, 3, 1, 1, 1, 9), PNN_OK);
    ck_assert_int_eq(pnn_layer_conv2d(&c, be, "q", 2, 5, 5, 3, 3, 3, 1, 1, 1, 9), PNN_OK);
    ck_assert(!memcmp(a->params[0].value.data, b->params[0].value.data, 54 * sizeof(float)));
    ck_assert(memcmp(a->params[0].value.data, c->params[0].value.data, 54 * sizeof(float)));
    pnn_layer_free(a), pnn_layer_free(b), pnn_layer_free(c);
}
END_TEST

int main(void) {
    Suite *s = suite_create("conv2d");
    TCase *tc = tcase_create("conv2d");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, forward_matches_direct_double_convolution);
    tcase_add_test(tc, backward_matches_exact_adjoint);
    tcase_add_test(tc, backward_matches_finite_differences);
    tcase_add_test(tc, layer_shapes_init_and_gradients);
    tcase_add_test(tc, layer_init_depends_on_seed_and_name_only);
    suite_add_tcase(s, tc);
    return pnn_test_run(s);
}
