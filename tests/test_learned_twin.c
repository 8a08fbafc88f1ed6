/* Learned twins (host/twins/): the MLP against a plain double-precision reference written here
 * (forward with its standardisation, parameter gradients and dx against central finite
 * differences of the reference), the folded form with theta as one vector per call against the
 * unfolded one on [x, theta] rows (forward, dx and dtheta), the twin file's round trip, the twin
 * kinds behind pnn_twin_create (learned = its MLP, residual = analytic + MLP, forward and VJP),
 * refused files (another system or dims, truncated, another kind), and fitting from a device and
 * from a recording of it. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "host/twins/mlp.h"
#include "pnn/pnn.h"
#include "pnn/twin_fit.h"
#include "tests/testutil.h"

static const pnn_backend *cpu(void) {
    const pnn_backend *be;
    ck_assert_int_eq(pnn_backend_get("cpu", &be), PNN_OK);
    return be;
}

/* host copies of an MLP's parameters, and the reference forward in double */
typedef struct ref_mlp {
    int n_lin;
    int64_t dims[PNN_MLP_MAX_LINEAR + 1];
    double *w[PNN_MLP_MAX_LINEAR], *b[PNN_MLP_MAX_LINEAR];
    double in_mean[64], in_std[64], out_mean[64], out_std[64];
} ref_mlp;

static void ref_from(const pnn_mlp *m, ref_mlp *r) {
    r->n_lin = m->n_lin;
    memcpy(r->dims, m->dims, sizeof r->dims);
    for (int i = 0; i < m->n_lin; i++) {
        int64_t nw = m->dims[i] * m->dims[i + 1], nb = m->dims[i + 1];
        float *h = malloc((size_t)nw * sizeof(float));
        r->w[i] = malloc((size_t)nw * sizeof(double));
        r->b[i] = malloc((size_t)nb * sizeof(double));
        ck_assert_int_eq(pnn_tensor_to_host(&pnn_mlp_weight(m, i)->value, h, nw), PNN_OK);
        for (int64_t k = 0; k < nw; k++) r->w[i][k] = h[k];
        ck_assert_int_eq(pnn_tensor_to_host(&pnn_mlp_bias(m, i)->value, h, nb), PNN_OK);
        for (int64_t k = 0; k < nb; k++) r->b[i][k] = h[k];
        free(h);
    }
    for (int64_t j = 0; j < m->dims[0]; j++) r->in_mean[j] = m->in_mean[j], r->in_std[j] = m->in_std[j];
    for (int64_t j = 0; j < m->dims[m->n_lin]; j++) r->out_mean[j] = m->out_mean[j], r->out_std[j] = m->out_std[j];
}

static void ref_free(ref_mlp *r) {
    for (int i = 0; i < r->n_lin; i++) free(r->w[i]), free(r->b[i]);
}

/* y = unstandardise(MLP(standardise(z))) for one row z (raw), tanh hidden */
static void ref_forward(const ref_mlp *r, const double *z, double *y) {
    double a[256], h[256];
    int64_t n = r->dims[0];
    for (int64_t j = 0; j < n; j++) h[j] = (z[j] - r->in_mean[j]) / r->in_std[j];
    for (int i = 0; i < r->n_lin; i++) {
        int64_t din = r->dims[i], dout = r->dims[i + 1];
        for (int64_t o = 0; o < dout; o++) {
            double s = r->b[i][o];
            for (int64_t k = 0; k < din; k++) s += r->w[i][o * din + k] * h[k];
            a[o] = s;
        }
        for (int64_t o = 0; o < dout; o++) h[o] = i < r->n_lin - 1 ? tanh(a[o]) : a[o];
    }
    for (int64_t o = 0; o < r->dims[r->n_lin]; o++) y[o] = h[o] * r->out_std[o] + r->out_mean[o];
}

static pnn_mlp *small_mlp(int64_t in, int64_t out, int standardise) {
    int64_t hidden[2] = {7, 6};
    pnn_mlp *m;
    ck_assert_int_eq(pnn_mlp_create(cpu(), in, hidden, 2, out, PNN_ACT_TANH, 11, &m), PNN_OK);
    if (standardise) {
        for (int64_t j = 0; j < in; j++) m->in_mean[j] = 0.3f * (float)j - 0.5f, m->in_std[j] = 0.5f + 0.25f * (float)j;
        for (int64_t j = 0; j < out; j++) m->out_mean[j] = 1.0f - 0.2f * (float)j, m->out_std[j] = 2.0f + (float)j;
    }
    return m;
}

static pnn_tensor tensor_of(const float *h, int64_t rows, int64_t cols) {
    pnn_tensor t;
    ck_assert_int_eq(pnn_tensor_init2(&t, cpu(), rows, cols), PNN_OK);
    ck_assert_int_eq(pnn_tensor_from_host(&t, h, rows * cols), PNN_OK);
    return t;
}

/* the unfolded MLP on standardised rows: forward matches the reference; parameter gradients and
 * dx of L = sum dy . y match central differences of the reference */
START_TEST(test_mlp_against_reference) {
    enum { IN = 5, OUT = 3, ROWS = 4 };
    pnn_mlp *m = small_mlp(IN, OUT, 0);
    ref_mlp r;
    ref_from(m, &r);
    float zh[ROWS * IN], dyh[ROWS * OUT], yh[ROWS * OUT];
    pnn_test_uniform(zh, ROWS * IN, -1.5f, 1.5f, 1, 1);
    pnn_test_uniform(dyh, ROWS * OUT, -1, 1, 1, 2);
    pnn_tensor z = tensor_of(zh, ROWS, IN), dy = tensor_of(dyh, ROWS, OUT), y = {.backend = cpu()}, dx = {0};
    pnn_tensor work[2] = {{.backend = cpu()}, {.backend = cpu()}};
    ck_assert_int_eq(pnn_tensor_init2(&dx, cpu(), ROWS, IN), PNN_OK);
    pnn_mlp_tape tape = {0};
    ck_assert_int_eq(pnn_mlp_forward(m, &z, NULL, 0, &tape, &y), PNN_OK);
    ck_assert_int_eq(pnn_tensor_to_host(&y, yh, ROWS * OUT), PNN_OK);
    for (int rr = 0; rr < ROWS; rr++) {
        double zd[IN], yd[OUT];
        for (int j = 0; j < IN; j++) zd[j] = zh[rr * IN + j];
        ref_forward(&r, zd, yd);
        for (int o = 0; o < OUT; o++) ck_assert_msg(fabs(yh[rr * OUT + o] - yd[o]) < 1e-5, "y[%d,%d]", rr, o);
    }
    for (int i = 0; i < m->holder->n_params; i++) pnn_tensor_zero(&m->holder->params[i].grad);
    ck_assert_int_eq(pnn_mlp_backward(m, &z, 0, &tape, &dy, &dx, 0, NULL, work), PNN_OK);
    /* L(params) by the reference, perturbing one parameter at a time */
    const double h = 1e-5;
    for (int li = 0; li < m->n_lin; li++)
        for (int which = 0; which < 2; which++) {
            pnn_param *p = which ? pnn_mlp_bias(m, li) : pnn_mlp_weight(m, li);
            int64_t n = p->value.numel;
            float *g = malloc((size_t)n * sizeof(float));
            ck_assert_int_eq(pnn_tensor_to_host(&p->grad, g, n), PNN_OK);
            double *v = which ? r.b[li] : r.w[li];
            for (int64_t k = 0; k < n; k++) {
                double save = v[k], l[2];
                for (int s = 0; s < 2; s++) {
                    v[k] = save + (s ? -h : h);
                    l[s] = 0;
                    for (int rr = 0; rr < ROWS; rr++) {
                        double zd[IN], yd[OUT];
                        for (int j = 0; j < IN; j++) zd[j] = zh[rr * IN + j];
                        ref_forward(&r, zd, yd);
                        for (int o = 0; o < OUT; o++) l[s] += dyh[rr * OUT + o] * yd[o];
                    }
                }
                v[k] = save;
                double fd = (l[0] - l[1]) / (2 * h);
                ck_assert_msg(fabs(g[k] - fd) < 1e-4 * (1 + fabs(fd)), "%s[%lld]: %g vs %g", p->name, (long long)k,
                              g[k], fd);
            }
            free(g);
        }
    float dxh[ROWS * IN];
    ck_assert_int_eq(pnn_tensor_to_host(&dx, dxh, ROWS * IN), PNN_OK);
    for (int rr = 0; rr < ROWS; rr++)
        for (int j = 0; j < IN; j++) {
            double zd[IN], yd[OUT], l[2];
            for (int s = 0; s < 2; s++) {
                for (int k = 0; k < IN; k++) zd[k] = zh[rr * IN + k];
                zd[j] += s ? -h : h;
                ref_forward(&r, zd, yd);
                l[s] = 0;
                for (int o = 0; o < OUT; o++) l[s] += dyh[rr * OUT + o] * yd[o];
            }
            double fd = (l[0] - l[1]) / (2 * h);
            ck_assert_msg(fabs(dxh[rr * IN + j] - fd) < 1e-4 * (1 + fabs(fd)), "dx[%d,%d]", rr, j);
        }
    pnn_mlp_tape_free(&tape);
    pnn_tensor_free(&z), pnn_tensor_free(&dy), pnn_tensor_free(&y), pnn_tensor_free(&dx);
    pnn_tensor_free(&work[0]), pnn_tensor_free(&work[1]);
    ref_free(&r);
    pnn_mlp_free(m);
}
END_TEST

/* folded, with theta one vector per call: y(x, theta) equals the reference with standardisation
 * on [x, theta]; dx and dtheta (accumulated over rows) match central differences */
START_TEST(test_folded_theta_split) {
    enum { XD = 3, TD = 2, IN = XD + TD, OUT = 2, ROWS = 5 };
    pnn_mlp *m = small_mlp(IN, OUT, 1), *f;
    ref_mlp r;
    ref_from(m, &r);
    ck_assert_int_eq(pnn_mlp_fold(m, &f), PNN_OK);
    float xh[ROWS * XD], th[TD], dyh[ROWS * OUT], yh[ROWS * OUT], dxh[ROWS * XD], dth[TD] = {0.5f, -0.25f};
    pnn_test_uniform(xh, ROWS * XD, -2, 2, 3, 1);
    pnn_test_uniform(th, TD, -1, 1, 3, 2);
    pnn_test_uniform(dyh, ROWS * OUT, -1, 1, 3, 3);
    pnn_tensor x = tensor_of(xh, ROWS, XD), dy = tensor_of(dyh, ROWS, OUT), t = tensor_of(th, 1, TD),
               dt = tensor_of(dth, 1, TD), y = {.backend = cpu()}, dx = tensor_of(xh, ROWS, XD);
    pnn_tensor work[2] = {{.backend = cpu()}, {.backend = cpu()}};
    pnn_mlp_tape tape = {0};
    ck_assert_int_eq(pnn_mlp_forward(f, &x, t.data, TD, &tape, &y), PNN_OK);
    ck_assert_int_eq(pnn_mlp_backward(f, NULL, TD, &tape, &dy, &dx, 0, dt.data, work), PNN_OK);
    ck_assert_int_eq(pnn_tensor_to_host(&y, yh, ROWS * OUT), PNN_OK);
    ck_assert_int_eq(pnn_tensor_to_host(&dx, dxh, ROWS * XD), PNN_OK);
    ck_assert_int_eq(pnn_tensor_to_host(&dt, dth, TD), PNN_OK);
    double zd[IN], yd[OUT];
    for (int rr = 0; rr < ROWS; rr++) {
        for (int j = 0; j < XD; j++) zd[j] = xh[rr * XD + j];
        for (int j = 0; j < TD; j++) zd[XD + j] = th[j];
        ref_forward(&r, zd, yd);
        for (int o = 0; o < OUT; o++)
            ck_assert_msg(fabs(yh[rr * OUT + o] - yd[o]) < 1e-4 * (1 + fabs(yd[o])), "y[%d,%d] %g vs %g", rr, o,
                          yh[rr * OUT + o], yd[o]);
    }
    const double h = 1e-5;
    /* L(x, theta) = sum_rows dy . y */
    for (int v = 0; v < ROWS * XD + TD; v++) {
        double l[2];
        for (int s = 0; s < 2; s++) {
            l[s] = 0;
            for (int rr = 0; rr < ROWS; rr++) {
                for (int j = 0; j < XD; j++) zd[j] = xh[rr * XD + j] + ((v == rr * XD + j) ? (s ? -h : h) : 0);
                for (int j = 0; j < TD; j++) zd[XD + j] = th[j] + ((v == ROWS * XD + j) ? (s ? -h : h) : 0);
                ref_forward(&r, zd, yd);
                for (int o = 0; o < OUT; o++) l[s] += dyh[rr * OUT + o] * yd[o];
            }
        }
        double fd = (l[0] - l[1]) / (2 * h);
        double got = v < ROWS * XD ? dxh[v] : dth[v - ROWS * XD] - (v - ROWS * XD ? -0.25 : 0.5);
        ck_assert_msg(fabs(got - fd) < 2e-4 * (1 + fabs(fd)), "d[%d]: %g vs %g", v, got, fd);
    }
    pnn_mlp_tape_free(&tape);
    pnn_tensor_free(&x), pnn_tensor_free(&dy), pnn_tensor_free(&t), pnn_tensor_free(&dt), pnn_tensor_free(&y);
    pnn_tensor_free(&dx), pnn_tensor_free(&work[0]), pnn_tensor_free(&work[1]);
    ref_free(&r);
    pnn_mlp_free(m);
    pnn_mlp_free(f);
}
END_TEST

static char dir[64];

static void make_dir(void) {
    snprintf(dir, sizeof dir, "/tmp/pnn_learned_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
}

static void remove_dir(void) {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    ck_assert_int_eq(system(cmd), 0);
}

#define CIRCUIT "sim:circuit?segments=16&y_dim=16&seed=1"

/* a file for an MLP of the circuit's dims (x 8, theta 8, y 16) */
static pnn_mlp *save_circuit_twin(const char *path, const char *kind, const char *system) {
    pnn_mlp *m = small_mlp(16, 16, 1);
    pnn_twin_file_info fi = {.x_dim = 8, .theta_dim = 8, .y_dim = 16, .validation_nmse = 0.5, .device_calls = 3,
                             .samples = 48};
    snprintf(fi.kind, sizeof fi.kind, "%s", kind);
    snprintf(fi.system, sizeof fi.system, "%s", system);
    snprintf(fi.system_uri, sizeof fi.system_uri, CIRCUIT);
    float center[8];
    for (int i = 0; i < 8; i++) center[i] = 0.1f * (float)i - 0.3f;
    ck_assert_int_eq(pnn_mlp_save(m, path, &fi, center, NULL, 0), PNN_OK);
    return m;
}

/* save and load give the same network, standardisation, centre and metadata */
START_TEST(test_file_round_trip) {
    make_dir();
    char path[128];
    snprintf(path, sizeof path, "%s/t.safetensors", dir);
    pnn_mlp *m = save_circuit_twin(path, "learned", "circuit"), *l;
    pnn_twin_file_info fi;
    float *center;
    ck_assert_int_eq(pnn_mlp_load(cpu(), path, &l, &fi, &center), PNN_OK);
    ck_assert_str_eq(fi.kind, "learned");
    ck_assert_str_eq(fi.system, "circuit");
    ck_assert_str_eq(fi.system_uri, CIRCUIT);
    ck_assert_int_eq(fi.theta_dim, 8);
    ck_assert_int_eq(fi.device_calls, 3);
    ck_assert_int_eq(l->n_lin, m->n_lin);
    for (int i = 0; i <= m->n_lin; i++) ck_assert_int_eq(l->dims[i], m->dims[i]);
    for (int i = 0; i < m->holder->n_params; i++) {
        int64_t n = m->holder->params[i].value.numel;
        float *a = malloc((size_t)n * sizeof(float)), *b = malloc((size_t)n * sizeof(float));
        pnn_tensor_to_host(&m->holder->params[i].value, a, n);
        pnn_tensor_to_host(&l->holder->params[i].value, b, n);
        ck_assert_int_eq(memcmp(a, b, (size_t)n * sizeof(float)), 0);
        free(a), free(b);
    }
    ck_assert_int_eq(memcmp(m->in_std, l->in_std, 16 * sizeof(float)), 0);
    ck_assert_int_eq(memcmp(m->out_mean, l->out_mean, 16 * sizeof(float)), 0);
    ck_assert_float_eq(center[7], 0.1f * 7 - 0.3f);
    free(center);
    pnn_mlp_free(l);
    pnn_mlp_free(m);
    remove_dir();
}
END_TEST

/* the kinds behind pnn_twin_create: learned is its folded MLP; residual is analytic + MLP, and
 * its VJP the sum of both */
START_TEST(test_twin_kinds) {
    make_dir();
    char path[128], spec[160], rpath[128];
    snprintf(path, sizeof path, "%s/l.safetensors", dir);
    snprintf(rpath, sizeof rpath, "%s/r.safetensors", dir);
    pnn_mlp *m = save_circuit_twin(path, "learned", "circuit"), *f;
    pnn_mlp_free(save_circuit_twin(rpath, "residual", "circuit"));
    ck_assert_int_eq(pnn_mlp_fold(m, &f), PNN_OK);
    pnn_device *dev;
    ck_assert_int_eq(pnn_device_open(CIRCUIT, cpu(), &dev), PNN_OK);
    pnn_twin *lt, *rt, *at;
    snprintf(spec, sizeof spec, "learned:%s", path);
    ck_assert_msg(pnn_twin_create(spec, dev, -1, &lt) == PNN_OK, "%s", pnn_last_error());
    snprintf(spec, sizeof spec, "residual:%s", rpath);
    ck_assert_msg(pnn_twin_create(spec, dev, 0, &rt) == PNN_OK, "%s", pnn_last_error());
    ck_assert_int_eq(pnn_twin_create("analytic", dev, 0, &at), PNN_OK);
    enum { ROWS = 6 };
    float xh[ROWS * 8], dyh[ROWS * 16], a[ROWS * 16], b[ROWS * 16], c[ROWS * 16];
    pnn_test_uniform(xh, ROWS * 8, -1, 1, 5, 1);
    pnn_test_uniform(dyh, ROWS * 16, -1, 1, 5, 2);
    pnn_tensor x = tensor_of(xh, ROWS, 8), dy = tensor_of(dyh, ROWS, 16), y = tensor_of(dyh, ROWS, 16),
               theta = tensor_of(xh, 1, 8), dx = tensor_of(xh, ROWS, 8);
    pnn_mlp_tape tape = {0};
    pnn_tensor ym = {.backend = cpu()};
    /* initial theta: the file's centre */
    float t0[8];
    ck_assert_int_eq(lt->iface->init_theta(lt, 1, 2, theta.data), PNN_OK);
    pnn_tensor_to_host(&theta, t0, 8);
    ck_assert_float_eq(t0[3], 0.1f * 3 - 0.3f);
    ck_assert_int_eq(lt->iface->forward(lt, &x, theta.data, &y, 0, NULL), PNN_OK);
    pnn_tensor_to_host(&y, a, ROWS * 16);
    ck_assert_int_eq(pnn_mlp_forward(f, &x, theta.data, 8, &tape, &ym), PNN_OK);
    pnn_tensor_to_host(&ym, b, ROWS * 16);
    for (int i = 0; i < ROWS * 16; i++) ck_assert_float_eq(a[i], b[i]);
    /* residual = analytic + MLP */
    ck_assert_int_eq(rt->iface->forward(rt, &x, theta.data, &y, 3, NULL), PNN_OK);
    pnn_tensor_to_host(&y, a, ROWS * 16);
    pnn_tensor ya = tensor_of(dyh, ROWS, 16);
    ck_assert_int_eq(at->iface->forward(at, &x, theta.data, &ya, 3, NULL), PNN_OK);
    pnn_tensor_to_host(&ya, c, ROWS * 16);
    for (int i = 0; i < ROWS * 16; i++) ck_assert_msg(fabsf(a[i] - (b[i] + c[i])) < 1e-5f, "y[%d]", i);
    /* its VJP: the analytic one plus the MLP's */
    pnn_tensor dt1 = tensor_of((float[8]){0}, 1, 8), dt2 = tensor_of((float[8]){0}, 1, 8), dx2 = tensor_of(xh, ROWS, 8);
    pnn_tensor work[2] = {{.backend = cpu()}, {.backend = cpu()}};
    ck_assert_int_eq(rt->iface->vjp(rt, theta.data, &dy, &dx, dt1.data, 3), PNN_OK);
    ck_assert_int_eq(at->iface->vjp(at, theta.data, &dy, &dx2, dt2.data, 3), PNN_OK);
    ck_assert_int_eq(pnn_mlp_backward(f, NULL, 8, &tape, &dy, &dx2, 1, dt2.data, work), PNN_OK);
    float g1[ROWS * 8], g2[ROWS * 8];
    pnn_tensor_to_host(&dx, g1, ROWS * 8);
    pnn_tensor_to_host(&dx2, g2, ROWS * 8);
    for (int i = 0; i < ROWS * 8; i++) ck_assert_msg(fabsf(g1[i] - g2[i]) < 1e-4f * (1 + fabsf(g2[i])), "dx[%d]", i);
    pnn_tensor_to_host(&dt1, g1, 8);
    pnn_tensor_to_host(&dt2, g2, 8);
    for (int i = 0; i < 8; i++) ck_assert_msg(fabsf(g1[i] - g2[i]) < 1e-4f * (1 + fabsf(g2[i])), "dtheta[%d]", i);
    pnn_tensor *ts[] = {&x, &dy, &y, &theta, &dx, &ym, &ya, &dt1, &dt2, &dx2, &work[0], &work[1]};
    for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++) pnn_tensor_free(ts[i]);
    pnn_mlp_tape_free(&tape);
    pnn_twin_free(lt), pnn_twin_free(rt), pnn_twin_free(at);
    pnn_device_close(dev);
    pnn_mlp_free(m), pnn_mlp_free(f);
    remove_dir();
}
END_TEST

/* refused: another system, a truncated file, another kind, an unknown kind, no file */
START_TEST(test_bad_files) {
    make_dir();
    char path[128], spec[160];
    pnn_device *dev;
    pnn_twin *tw;
    ck_assert_int_eq(pnn_device_open(CIRCUIT, cpu(), &dev), PNN_OK);
    snprintf(path, sizeof path, "%s/osc.safetensors", dir);
    pnn_mlp_free(save_circuit_twin(path, "learned", "oscillator"));
    snprintf(spec, sizeof spec, "learned:%s", path);
    ck_assert_int_eq(pnn_twin_create(spec, dev, -1, &tw), PNN_ERR_CONFIG);
    ck_assert_ptr_nonnull(strstr(pnn_last_error(), "'oscillator'"));
    ck_assert_ptr_nonnull(strstr(pnn_last_error(), "'circuit'"));
    snprintf(spec, sizeof spec, "residual:%s", path);
    ck_assert_int_eq(pnn_twin_create(spec, dev, -1, &tw), PNN_ERR_CONFIG);
    ck_assert_ptr_nonnull(strstr(pnn_last_error(), "kind: learned"));
    char cmd[300];
    snprintf(cmd, sizeof cmd, "head -c 300 %s > %s/cut.safetensors", path, dir);
    ck_assert_int_eq(system(cmd), 0);
    snprintf(spec, sizeof spec, "learned:%s/cut.safetensors", dir);
    ck_assert_int_eq(pnn_twin_create(spec, dev, -1, &tw), PNN_ERR_FORMAT);
    snprintf(spec, sizeof spec, "learned:%s/none.safetensors", dir);
    ck_assert_int_eq(pnn_twin_create(spec, dev, -1, &tw), PNN_ERR_NOT_FOUND);
    ck_assert_int_eq(pnn_twin_create("learnd:x", dev, -1, &tw), PNN_ERR_CONFIG);
    ck_assert_ptr_nonnull(strstr(pnn_last_error(), "did you mean 'learned'"));
    ck_assert_int_eq(pnn_twin_create("learned", dev, -1, &tw), PNN_ERR_CONFIG);
    pnn_device_close(dev);
    remove_dir();
}
END_TEST

/* fitting the circuit device beats the mean by far; the same calls recorded and fitted again
 * give the same data; too few samples for the split is refused; a recording of another device
 * is refused */
START_TEST(test_fit) {
    make_dir();
    char uri[256], out[128], rec[128];
    snprintf(rec, sizeof rec, "%s/calls.rec", dir);
    snprintf(uri, sizeof uri, "record:%s@" CIRCUIT, rec);
    snprintf(out, sizeof out, "%s/fit.safetensors", dir);
    pnn_device *dev;
    ck_assert_int_eq(pnn_device_open(uri, cpu(), &dev), PNN_OK);
    pnn_twin_fit_options o;
    pnn_twin_fit_defaults(&o);
    o.samples = 1024;
    o.max_epochs = 60;
    o.hidden[0] = o.hidden[1] = 32;
    o.lr = 3e-3;
    pnn_twin_fit_report r;
    ck_assert_msg(pnn_twin_fit_device(dev, &o, out, &r) == PNN_OK, "%s", pnn_last_error());
    printf("measured fit of %s: validation NMSE %.4g (analytic twin %.4g), %lld calls\n", CIRCUIT, r.val_nmse,
           r.analytic_val_nmse, (long long)r.device_calls);
    ck_assert_int_eq(r.device_calls, 64);
    ck_assert_msg(r.val_nmse < 0.1, "validation NMSE %g", r.val_nmse);
    ck_assert(r.analytic_val_nmse > 0 && r.analytic_val_nmse < 1);
    pnn_device_close(dev);
    /* the recording holds the same pairs: the same fit */
    pnn_twin_fit_report r2;
    ck_assert_int_eq(pnn_device_open(CIRCUIT, cpu(), &dev), PNN_OK);
    ck_assert_msg(pnn_twin_fit_recording(rec, dev, cpu(), &o, out, &r2) == PNN_OK, "%s", pnn_last_error());
    ck_assert_int_eq(r2.samples, 1024);
    ck_assert_msg(fabs(r2.val_nmse - r.val_nmse) < 1e-6, "%g vs %g", r2.val_nmse, r.val_nmse);
    pnn_device_close(dev);
    ck_assert_int_eq(pnn_device_open("sim:circuit?segments=16&y_dim=16&seed=2", cpu(), &dev), PNN_OK);
    ck_assert_int_eq(pnn_twin_fit_recording(rec, dev, cpu(), &o, out, &r2), PNN_ERR_CONFIG);
    ck_assert_ptr_nonnull(strstr(pnn_last_error(), "seed=2"));
    o.samples = 40;
    ck_assert_int_eq(pnn_twin_fit_device(dev, &o, out, &r2), PNN_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(pnn_last_error(), "too few"));
    pnn_device_close(dev);
    remove_dir();
}
END_TEST

int main(void) {
    Suite *s = suite_create("learned_twin");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_mlp_against_reference);
    tcase_add_test(tc, test_folded_theta_split);
    tcase_add_test(tc, test_file_round_trip);
    tcase_add_test(tc, test_twin_kinds);
    tcase_add_test(tc, test_bad_files);
    tcase_add_test(tc, test_fit);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
