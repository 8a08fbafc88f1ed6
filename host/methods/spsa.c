/* spsa: simultaneous-perturbation stochastic approximation (Spall, IEEE TAC 37, 332 (1992)) from
 * forward passes alone: no twin, no backward pass, so it trains through any device, modelled or
 * not. Each step draws K sign vectors d_k in {-1, +1}^P over all P parameters (from the run's seed
 * and the step, the same on every rank), runs the network forward on the devices at theta + c d_k
 * and theta - c d_k, and takes
 *
 *     g = (1/K) sum_k (L(theta + c d_k) - L(theta - c d_k)) / (2 c) d_k
 *
 * whose expectation is the gradient of L up to O(c^2) (each d_k has E[d d^T] = I). L is the sum
 * of the part's losses over b_global, so the ranks' estimates add up to the batch's. The step's
 * reported loss and accuracy are the means over the 2K perturbed passes. Cost: 2K device passes a
 * step and no twin pass. Controls that a device bounds (theta_range) are projected onto the range
 * by the forward pass; the estimate then uses the perturbation the devices really got,
 * (theta+ - theta-) / (2c), not d_k (equal to it away from the bounds, smaller at them). The
 * forward passes are evaluation passes: they go to a layer's first device copy only. Keys
 * (method: {kind: spsa, perturbations: K, c: C}): perturbations (default 4), c (default 0.01, in
 * parameter units). */
#include <stdlib.h>
#include <string.h>

#include "host/methods/method_impl.h"
#include "pnn/clock.h"
#include "pnn/rng.h"

typedef struct spsa_state {
    int64_t k;
    double c;
    const pnn_backend *be;
    int64_t p;             /* parameters the buffers hold */
    float *theta0, *delta; /* backend: the parameters at the step's start; one sign vector */
    float *pert;           /* backend: the perturbation the devices got, (theta+ - theta-) / (2c) */
    float *delta_host;
} spsa_state;

static void spsa_destroy(void *state) {
    spsa_state *s = state;
    if (!s) return;
    if (s->theta0) s->be->iface->release(s->be->ctx, s->theta0);
    if (s->delta) s->be->iface->release(s->be->ctx, s->delta);
    if (s->pert) s->be->iface->release(s->be->ctx, s->pert);
    free(s->delta_host);
    free(s);
}

static pnn_status spsa_create(const pnn_cfg *spec, void **state) {
    spsa_state *s = calloc(1, sizeof *s);
    if (!s) return PNN_ERROR(PNN_ERR_NOMEM, "out of memory for the spsa method");
    s->k = 4;
    s->c = 0.01;
    if (spec) {
        static const char *const keys[] = {"kind", "perturbations", "c", NULL};
        pnn_status st = pnn_cfg_check_keys(spec, keys, "method spsa");
        if (st == PNN_OK) st = pnn_cfg_int(spec, "perturbations", 0, 4, 1, 1 << 20, &s->k);
        if (st == PNN_OK) st = pnn_cfg_float(spec, "c", 0, 0.01, 1e-8, 1e3, &s->c);
        if (st != PNN_OK) {
            free(s);
            return st;
        }
    }
    *state = s;
    return PNN_OK;
}

static pnn_status reserve(spsa_state *s, const pnn_backend *be, int64_t p) {
    if (s->p >= p) return PNN_OK;
    s->be = be;
    if (s->theta0) be->iface->release(be->ctx, s->theta0);
    if (s->delta) be->iface->release(be->ctx, s->delta);
    if (s->pert) be->iface->release(be->ctx, s->pert);
    free(s->delta_host);
    s->theta0 = be->iface->alloc(be->ctx, (size_t)p * sizeof(float));
    s->delta = be->iface->alloc(be->ctx, (size_t)p * sizeof(float));
    s->pert = be->iface->alloc(be->ctx, (size_t)p * sizeof(float));
    s->delta_host = malloc((size_t)p * sizeof(float));
    if (!s->theta0 || !s->delta || !s->pert || !s->delta_host) {
        s->p = 0;
        return PNN_ERROR(PNN_ERR_NOMEM, "spsa: out of memory for %lld parameters", (long long)p);
    }
    s->p = p;
    return PNN_OK;
}

/* The network's parameters set to theta0 + step * delta (step 0: theta0 itself, bit for bit). */
static void set_params(pnn_network *net, const spsa_state *s, float step) {
    const pnn_backend_i *bi = s->be->iface;
    int64_t off = 0;
    for (int i = 0; i < net->n_params; i++) {
        pnn_tensor *v = &net->params[i]->value;
        bi->copy(s->be->ctx, v->data, s->theta0 + off, (size_t)v->numel * sizeof(float));
        if (step != 0.0f) bi->axpby(s->be->ctx, v->numel, step, s->delta + off, 1.0f, v->data);
        off += v->numel;
    }
}

/* The sum of the losses and the correct count of rows [row0, row0 + rows) on the devices. */
static pnn_status device_loss(pnn_trainer *tr, const pnn_tensor *x, const pnn_tensor *labels, double *loss,
                              double *correct) {
    const pnn_tensor *y;
    PNN_TRY(pnn_network_forward(tr->net, x, PNN_PASS_EVAL_DEVICE, &y));
    pnn_status st = pnn_loss_compute(tr->opt.loss, y, labels, NULL, &tr->scratch, loss, correct);
    if (st != PNN_OK)
        return pnn_error_prefix(st, "spsa, training step %lld (epoch %lld): ", (long long)tr->global_step + 1,
                                (long long)tr->epoch + 1);
    return PNN_OK;
}

static pnn_status spsa_gradient(pnn_trainer *tr, int64_t row0, int64_t rows, int64_t b_global,
                                pnn_schedule_stats *stats) {
    spsa_state *s = tr->method_state;
    pnn_network *net = tr->net;
    const pnn_backend *be = tr->be;
    double t0 = pnn_now_s();
    int64_t p = pnn_network_param_count(net);
    PNN_TRY(reserve(s, be, p));
    int64_t off = 0;
    for (int i = 0; i < net->n_params; i++) {
        const pnn_tensor *v = &net->params[i]->value;
        be->iface->copy(be->ctx, s->theta0 + off, v->data, (size_t)v->numel * sizeof(float));
        off += v->numel;
    }
    pnn_tensor x, labels;
    int64_t xshape[2] = {rows, tr->train.dim}, lshape[2] = {rows, 1};
    PNN_TRY(pnn_tensor_view(&x, be, tr->xb.data + row0 * tr->train.dim, 2, xshape));
    PNN_TRY(pnn_tensor_view(&labels, be, tr->yb.data + row0, 2, lshape));
    pnn_status st = PNN_OK;
    double loss_sum = 0, correct_sum = 0;
    uint64_t stream = pnn_rng_stream("method.spsa", (uint64_t)tr->global_step);
    for (int64_t k = 0; st == PNN_OK && k < s->k; k++) {
        pnn_rng_uniform(tr->opt.seed, stream, (uint64_t)(k * p), p, s->delta_host);
        for (int64_t j = 0; j < p; j++) s->delta_host[j] = s->delta_host[j] < 0.5f ? -1.0f : 1.0f;
        be->iface->from_host(be->ctx, s->delta, s->delta_host, (size_t)p * sizeof(float));
        double lp = 0, lm = 0, cp = 0, cm = 0;
        set_params(net, s, (float)s->c);
        st = device_loss(tr, &x, &labels, &lp, &cp);
        /* theta+ as the devices got it (the forward projected it onto their ranges) */
        off = 0;
        for (int i = 0; st == PNN_OK && i < net->n_params; i++) {
            const pnn_tensor *v = &net->params[i]->value;
            be->iface->copy(be->ctx, s->pert + off, v->data, (size_t)v->numel * sizeof(float));
            off += v->numel;
        }
        if (st == PNN_OK) {
            set_params(net, s, (float)-s->c);
            st = device_loss(tr, &x, &labels, &lm, &cm);
        }
        if (st != PNN_OK) break;
        /* the parameters' own gradients (zeroed by the trainer) take the estimate:
         * grad += (L+ - L-) / (2c K b) * (theta+ - theta-) / (2c) */
        float coef = (float)((lp - lm) / (2.0 * s->c * (double)s->k * (double)b_global));
        float inv2c = (float)(1.0 / (2.0 * s->c));
        off = 0;
        for (int i = 0; i < net->n_params; i++) {
            pnn_tensor *g = &net->params[i]->grad;
            const pnn_tensor *v = &net->params[i]->value;
            be->iface->axpby(be->ctx, g->numel, -inv2c, v->data, inv2c, s->pert + off);
            be->iface->axpby(be->ctx, g->numel, coef, s->pert + off, 1.0f, g->data);
            off += g->numel;
        }
        loss_sum += (lp + lm) / 2;
        correct_sum += (cp + cm) / 2;
    }
    set_params(net, s, 0.0f);
    if (st != PNN_OK) return st;
    tr->step_loss += loss_sum / (double)s->k;
    tr->step_correct += correct_sum / (double)s->k;
    stats->wall_s = pnn_now_s() - t0;
    stats->wait_s = 0; /* plain forward passes: the time blocked on devices is not taken apart */
    return PNN_OK;
}

static int spsa_needs_twin(const void *state) {
    (void)state;
    return 0; /* forward passes on the devices alone */
}

const pnn_method_i pnn_method_spsa = {
    .name = "spsa",
    .summary = "simultaneous-perturbation gradient estimates from device passes alone (no twin)",
    .create = spsa_create,
    .destroy = spsa_destroy,
    .gradient = spsa_gradient,
    .needs_twin = spsa_needs_twin,
};
