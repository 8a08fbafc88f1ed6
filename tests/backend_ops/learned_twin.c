/* The learned twin's MLP (host/twins/mlp.c) on each backend, CPU against CUDA: a fitting
 * forward and backward on standardised rows (the parameters' gradients), one Adam fit step, and
 * the folded twin form with theta one vector per call (forward, dx, dtheta): every generic op a
 * learned twin uses (GEMM with offset leading dimensions, bias and its gradient, tanh and its
 * derivative, MSE, Adam, copy, fill), composed as the twin composes them. */
#include <stdlib.h>

#include "host/twins/mlp.h"
#include "pnn/optim.h"
#include "tests/backend_ops/harness.h"

/* rows, x_dim, theta_dim, hidden, y_dim */
static const int64_t mlp_shapes[][5] = {{37, 5, 3, 17, 4}, {300, 12, 40, 64, 9}, {1, 1, 1, 1, 1}};

static void case_learned(run_ctx *r, int v) {
    const int64_t *s = mlp_shapes[v];
    int64_t rows = s[0], xd = s[1], td = s[2], in = xd + td, yd = s[4], hidden[2] = {s[3], s[3] + 3};
    pnn_mlp *m, *f;
    ck_assert_int_eq(pnn_mlp_create(r->be, in, hidden, 2, yd, PNN_ACT_TANH, 5, &m), PNN_OK);
    for (int64_t j = 0; j < in; j++) m->in_mean[j] = 0.1f * (float)j, m->in_std[j] = 0.5f + 0.1f * (float)j;
    for (int64_t j = 0; j < yd; j++) m->out_mean[j] = -0.2f * (float)j, m->out_std[j] = 1.5f;
    pnn_tensor z, t, x, y = {.backend = r->be}, dy = {.backend = r->be}, loss = {.backend = r->be}, dxt;
    pnn_tensor work[2] = {{.backend = r->be}, {.backend = r->be}};
    pnn_tensor_view(&z, r->be, dev_random(r, rows * in, -2, 2, 160), 2, (int64_t[]){rows, in});
    pnn_tensor_view(&t, r->be, dev_random(r, rows * yd, -1, 1, 161), 2, (int64_t[]){rows, yd});
    pnn_tensor_view(&x, r->be, dev_random(r, rows * xd, -2, 2, 162), 2, (int64_t[]){rows, xd});
    pnn_tensor_view(&dxt, r->be, dev_filled(r, rows * xd, NAN), 2, (int64_t[]){rows, xd});
    float *theta = dev_random(r, td, -1, 1, 163), *dtheta = dev_random(r, td, -1, 1, 164);
    pnn_mlp_tape tape = {0};
    /* fitting: forward, the MSE's gradient, backward into the parameters */
    for (int i = 0; i < m->holder->n_params; i++) pnn_tensor_zero(&m->holder->params[i].grad);
    ck_assert_int_eq(pnn_mlp_forward(m, &z, NULL, 0, &tape, &y), PNN_OK);
    ck_assert_int_eq(pnn_mlp_shape(&dy, r->be, rows, yd), PNN_OK);
    ck_assert_int_eq(pnn_mlp_shape(&loss, r->be, rows, 1), PNN_OK);
    r->ops->mse(r->ctx, rows, yd, y.data, t.data, loss.data, dy.data, 1.0f / (float)rows);
    ck_assert_int_eq(pnn_mlp_backward(m, &z, 0, &tape, &dy, NULL, 0, NULL, work), PNN_OK);
    output(r, "fit y", y.data, rows * yd);
    output(r, "dW0", pnn_mlp_weight(m, 0)->grad.data, hidden[0] * in);
    output(r, "db1", pnn_mlp_bias(m, 1)->grad.data, hidden[1]);
    output(r, "dW2", pnn_mlp_weight(m, 2)->grad.data, yd * hidden[1]);
    /* one Adam step (copies: output() reads them before the next op changes them) */
    pnn_optim_config oc;
    pnn_optimizer *opt;
    pnn_param *plist[6];
    for (int i = 0; i < 6; i++) plist[i] = &m->holder->params[i];
    ck_assert_int_eq(pnn_optim_defaults("adam", &oc), PNN_OK);
    ck_assert_int_eq(pnn_optimizer_create(&oc, plist, 6, &opt), PNN_OK);
    ck_assert_int_eq(pnn_mlp_fit_step(m, opt, &z, &t, &tape, &y, &dy, &loss, work), PNN_OK);
    output(r, "W1 after a step", pnn_mlp_weight(m, 1)->value.data, hidden[1] * hidden[0]);
    /* the twin form: folded, theta shared by the rows */
    ck_assert_int_eq(pnn_mlp_fold(m, &f), PNN_OK);
    ck_assert_int_eq(pnn_mlp_forward(f, &x, theta, td, &tape, &y), PNN_OK);
    output(r, "twin y", y.data, rows * yd);
    float *dyv = dev_random(r, rows * yd, -1, 1, 165);
    pnn_tensor dyt;
    pnn_tensor_view(&dyt, r->be, dyv, 2, (int64_t[]){rows, yd});
    ck_assert_int_eq(pnn_mlp_backward(f, NULL, td, &tape, &dyt, &dxt, 0, dtheta, work), PNN_OK);
    output(r, "twin dx", dxt.data, rows * xd);
    output(r, "twin dtheta", dtheta, td);
    pnn_optimizer_free(opt);
    pnn_mlp_tape_free(&tape);
    pnn_tensor *ts[] = {&y, &dy, &loss, &work[0], &work[1]};
    for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++) pnn_tensor_free(ts[i]);
    pnn_mlp_free(m);
    pnn_mlp_free(f);
}

PNN_BACKEND_OPS_CASES(learned_twin, {"learned twin MLP B=37", case_learned, 0, 1e-4},
                      {"learned twin MLP B=300 theta 40", case_learned, 1, 1e-4},
                      {"learned twin MLP B=1", case_learned, 2, 1e-4})
