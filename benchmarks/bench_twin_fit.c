/* Throughput of fitting a learned twin: Adam steps of MSE regression of an MLP (tanh hidden
 * layers, host/twins/mlp.c, the step `pnn twin fit` runs), on closed-form data so that
 * benchmarks/reference/mlp_fit_torch.py fits the same problem:
 *   x[r, j] = sin(0.37 (r * IN + j) + 0.1),  t[r, k] = cos(0.23 (r * OUT + k)),
 * for rows r of one batch (the same batch every step: the data's host copy and transfer are
 * counted, as in fitting), weights U(+-1/sqrt(fan_in)) from pnn's generator. Each step copies
 * the batch from host memory to the backend, as fit.c does.
 * Prints one JSON object: samples/s (rows through forward + backward + update), the FLOPs of a
 * sample (2 per multiply-add: forward, backward of the weights, backward of the activations
 * except into the input), the GFLOP/s that makes, and this machine's OpenBLAS sgemm rate at the
 * shape of the largest layer (the ceiling the step can approach), and the loss after the first
 * and the last step (for the driver to compare with PyTorch's first steps).
 * Usage: bench_twin_fit --in N --hidden W,W,... --out N --batch B [--seconds S] [--steps K]
 *        (--steps K: exactly K steps, then the loss, for the cross-check). */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "host/twins/mlp.h"
#include "pnn/clock.h"
#include "pnn/optim.h"
#include "pnn/pnn.h"

static double sgemm_gflops(int m, int n, int k) {
    float *a = calloc((size_t)m * k, sizeof(float)), *b = calloc((size_t)k * n, sizeof(float));
    float *c = calloc((size_t)m * n, sizeof(float));
    double best = 1e30, end = pnn_now_s() + 0.3;
    for (int rep = 0; rep < 3 || pnn_now_s() < end; rep++) {
        double t0 = pnn_now_s();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, k, 1.0f, a, k, b, k, 0.0f, c, n);
        double dt = pnn_now_s() - t0;
        best = dt < best ? dt : best;
    }
    free(a), free(b), free(c);
    return 2.0 * m * n * k / best / 1e9;
}

static int fail(const char *what) {
    fprintf(stderr, "bench_twin_fit: %s: %s\n", what, pnn_last_error());
    return 1;
}

int main(int argc, char **argv) {
    int64_t in = 64, out = 64, batch = 256, hidden[PNN_MLP_MAX_LINEAR] = {1024, 1024}, steps = 0;
    int n_hidden = 2;
    double seconds = 2.0;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--in")) in = atoll(argv[i + 1]);
        else if (!strcmp(argv[i], "--out")) out = atoll(argv[i + 1]);
        else if (!strcmp(argv[i], "--batch")) batch = atoll(argv[i + 1]);
        else if (!strcmp(argv[i], "--seconds")) seconds = atof(argv[i + 1]);
        else if (!strcmp(argv[i], "--steps")) steps = atoll(argv[i + 1]);
        else if (!strcmp(argv[i], "--hidden")) {
            n_hidden = 0;
            for (char *p = argv[i + 1]; *p && n_hidden < PNN_MLP_MAX_LINEAR - 1;) {
                hidden[n_hidden++] = strtoll(p, &p, 10);
                if (*p == ',') p++;
            }
        } else {
            fprintf(stderr, "bench_twin_fit: unknown option %s\n", argv[i]);
            return 64;
        }
    }
    const pnn_backend *be;
    if (pnn_backend_get("cpu", &be) != PNN_OK) return fail("backend");
    pnn_mlp *m;
    if (pnn_mlp_create(be, in, hidden, n_hidden, out, PNN_ACT_TANH, 0, &m) != PNN_OK) return fail("mlp");
    float *xh = malloc((size_t)(batch * in) * sizeof(float)), *th = malloc((size_t)(batch * out) * sizeof(float));
    for (int64_t i = 0; i < batch * in; i++) xh[i] = sinf(0.37f * (float)i + 0.1f);
    for (int64_t i = 0; i < batch * out; i++) th[i] = cosf(0.23f * (float)i);
    pnn_tensor x = {.backend = be}, t = {.backend = be}, y = {.backend = be}, dy = {.backend = be},
               loss = {.backend = be}, work[2] = {{.backend = be}, {.backend = be}};
    pnn_mlp_tape tape = {0};
    pnn_optim_config oc;
    pnn_optimizer *opt;
    pnn_param *plist[2 * PNN_MLP_MAX_LINEAR];
    for (int i = 0; i < m->holder->n_params; i++) plist[i] = &m->holder->params[i];
    if (pnn_optim_defaults("adam", &oc) != PNN_OK || pnn_optimizer_create(&oc, plist, m->holder->n_params, &opt))
        return fail("optimizer");
    if (pnn_mlp_shape(&x, be, batch, in) || pnn_mlp_shape(&t, be, batch, out)) return fail("tensors");
    double first = NAN, last = NAN, t0 = 0;
    int64_t done = 0, warm = steps ? 0 : 2;
    for (int64_t s = 0;; s++) {
        if (s == warm) t0 = pnn_now_s();
        if (pnn_tensor_from_host(&x, xh, batch * in) || pnn_tensor_from_host(&t, th, batch * out) ||
            pnn_mlp_fit_step(m, opt, &x, &t, &tape, &y, &dy, &loss, work))
            return fail("step");
        if (s >= warm) done++;
        if (s == 0 || (steps && s == steps - 1)) {
            /* the mean loss over the batch, of the step's forward */
            float *l = malloc((size_t)batch * sizeof(float));
            pnn_tensor_to_host(&loss, l, batch);
            double sum = 0;
            for (int64_t r = 0; r < batch; r++) sum += l[r];
            free(l);
            if (s == 0) first = sum / (double)batch;
            if (steps && s == steps - 1) last = sum / (double)batch;
        }
        if (steps ? s + 1 >= steps : (s >= warm && pnn_now_s() - t0 >= seconds && done >= 3)) break;
    }
    double dt = pnn_now_s() - t0;
    /* FLOPs per sample: forward 2 W, weight gradients 2 W, activation gradients 2 W except the first layer's */
    double params = 0, first_w = (double)in * hidden[0];
    int64_t widest = 0, dims[PNN_MLP_MAX_LINEAR + 1];
    memcpy(dims, m->dims, sizeof dims);
    for (int i = 0; i < m->n_lin; i++) {
        params += (double)dims[i] * dims[i + 1];
        if (dims[i] * dims[i + 1] > dims[widest] * dims[widest + 1]) widest = i;
    }
    if (n_hidden == 0) first_w = (double)in * out;
    double flops = 6 * params - 2 * first_w, rate = (double)done * batch / dt;
    char last_s[32] = "null"; /* measured with --steps only */
    if (!isnan(last)) snprintf(last_s, sizeof last_s, "%.6g", last);
    double peak = sgemm_gflops((int)batch, (int)dims[widest + 1], (int)dims[widest]);
    printf("{\"in\": %lld, \"hidden\": [", (long long)in);
    for (int i = 0; i < n_hidden; i++) printf("%s%lld", i ? ", " : "", (long long)hidden[i]);
    printf("], \"out\": %lld, \"batch\": %lld, \"params\": %lld, \"steps\": %lld, \"seconds\": %.4f, "
           "\"samples_per_s\": %.2f, \"flops_per_sample\": %.0f, \"gflops\": %.3f, \"sgemm_gflops_widest_layer\": %.3f, "
           "\"fraction_of_sgemm\": %.3f, \"loss_first\": %.6g, \"loss_last\": %s}\n",
           (long long)out, (long long)batch, (long long)pnn_mlp_param_count(m), (long long)done, dt, rate, flops,
           flops * rate / 1e9, peak, flops * rate / 1e9 / peak, first, last_s);
    pnn_optimizer_free(opt);
    pnn_mlp_tape_free(&tape);
    pnn_tensor *ts[] = {&x, &t, &y, &dy, &loss, &work[0], &work[1]};
    for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++) pnn_tensor_free(ts[i]);
    pnn_mlp_free(m);
    free(xh), free(th);
    return 0;
}
