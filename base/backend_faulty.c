/* Test-only: the CPU backend with one op that fails. A GPU op that fails does so asynchronously:
 * it records an error and leaves its output unwritten, and only pnn_backend_status tells. This
 * backend behaves the same on the CPU, so the tests prove without a GPU that the training path
 * reads the status after every step, evaluation chunk and device request. */
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pnn/backend.h"

typedef struct faulty {
    pnn_backend_i iface;        /* the CPU's, with the chosen op wrapped */
    pnn_backend backend;
    const pnn_backend_i *cpu;
    char op[32];
    int64_t after;
    atomic_llong calls;
    pthread_mutex_t mu;
    pnn_status failed;          /* the first failure not yet read by status */
    char message[256];
    struct faulty *next;
} faulty;

/* 1 when this call of the op is to fail (and the failure is recorded). */
static int trip(void *ctx) {
    faulty *f = ctx;
    long long call = atomic_fetch_add(&f->calls, 1) + 1;
    if (call <= f->after) return 0;
    pthread_mutex_lock(&f->mu);
    if (f->failed == PNN_OK) {
        f->failed = PNN_ERR_CUDA;
        snprintf(f->message, sizeof f->message, "injected failure of backend op %s (call %lld; test-only faulty "
                 "backend)", f->op, call);
    }
    pthread_mutex_unlock(&f->mu);
    return 1;
}

static pnn_status faulty_status(void *ctx) {
    faulty *f = ctx;
    pthread_mutex_lock(&f->mu);
    pnn_status st = f->failed;
    char message[sizeof f->message];
    memcpy(message, f->message, sizeof message);
    f->failed = PNN_OK;
    pthread_mutex_unlock(&f->mu);
    return st == PNN_OK ? PNN_OK : PNN_ERROR(st, "%s", message);
}

#define CPU(ctx) (((faulty *)(ctx))->cpu)

static void w_gemm(void *ctx, bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float *a,
                   int64_t lda, const float *b, int64_t ldb, float beta, float *c, int64_t ldc) {
    if (!trip(ctx)) CPU(ctx)->gemm(NULL, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}
static void w_to_host(void *ctx, void *host, const void *src, size_t bytes) {
    if (!trip(ctx)) CPU(ctx)->to_host(NULL, host, src, bytes);
}
static void w_from_host(void *ctx, void *dst, const void *host, size_t bytes) {
    if (!trip(ctx)) CPU(ctx)->from_host(NULL, dst, host, bytes);
}
static void w_copy(void *ctx, void *dst, const void *src, size_t bytes) {
    if (!trip(ctx)) CPU(ctx)->copy(NULL, dst, src, bytes);
}
static void w_fill(void *ctx, float *dst, float value, int64_t n) {
    if (!trip(ctx)) CPU(ctx)->fill(NULL, dst, value, n);
}
static void w_axpby(void *ctx, int64_t n, float alpha, const float *x, float beta, float *y) {
    if (!trip(ctx)) CPU(ctx)->axpby(NULL, n, alpha, x, beta, y);
}
static void w_scale(void *ctx, int64_t n, float alpha, const float *x, float *y) {
    if (!trip(ctx)) CPU(ctx)->scale(NULL, n, alpha, x, y);
}
static void w_add_bias(void *ctx, int64_t rows, int64_t cols, const float *bias, float *y) {
    if (!trip(ctx)) CPU(ctx)->add_bias(NULL, rows, cols, bias, y);
}
static void w_act_forward(void *ctx, pnn_act act, int64_t n, const float *x, float *y) {
    if (!trip(ctx)) CPU(ctx)->act_forward(NULL, act, n, x, y);
}
static void w_act_backward(void *ctx, pnn_act act, int64_t n, const float *x, const float *y, const float *dy,
                           float *dx) {
    if (!trip(ctx)) CPU(ctx)->act_backward(NULL, act, n, x, y, dy, dx);
}
static void w_softmax_xent(void *ctx, int64_t rows, int64_t classes, const float *logits, const float *labels,
                           float *loss_rows, float *correct_rows, float *dlogits, float grad_scale) {
    if (!trip(ctx))
        CPU(ctx)->softmax_xent(NULL, rows, classes, logits, labels, loss_rows, correct_rows, dlogits, grad_scale);
}
static void w_adam_update(void *ctx, int64_t n, float *param, const float *grad, float *m, float *v, float lr,
                          float beta1, float beta2, float eps, float weight_decay, int64_t step) {
    if (!trip(ctx)) CPU(ctx)->adam_update(NULL, n, param, grad, m, v, lr, beta1, beta2, eps, weight_decay, step);
}
static void w_rng_normal(void *ctx, uint64_t seed, uint64_t stream, uint64_t offset, int64_t n, float *out) {
    if (!trip(ctx)) CPU(ctx)->rng_normal(NULL, seed, stream, offset, n, out);
}
static int64_t w_count_nonfinite(void *ctx, int64_t n, const float *x) {
    return trip(ctx) ? 0 : CPU(ctx)->count_nonfinite(NULL, n, x);
}

/* Plain CPU ops, given this backend's context instead of the CPU's (none): every CPU op ignores
 * its context, so the table's other entries are the CPU's own. */
static pnn_status wrap(faulty *f) {
    static const struct {
        const char *name;
        size_t offset;
        void *fn;
    } ops[] = {
#define OP(name) {#name, offsetof(pnn_backend_i, name), (void *)w_##name}
        OP(gemm),   OP(to_host),     OP(from_host),    OP(copy),         OP(fill),
        OP(axpby),  OP(scale),       OP(add_bias),     OP(act_forward),  OP(act_backward),
        OP(softmax_xent), OP(adam_update), OP(rng_normal), OP(count_nonfinite),
#undef OP
    };
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++)
        if (!strcmp(ops[i].name, f->op)) {
            memcpy((char *)&f->iface + ops[i].offset, &ops[i].fn, sizeof(void *));
            return PNN_OK;
        }
    return PNN_ERROR(PNN_ERR_INVALID, "faulty backend: op '%s' cannot be made to fail; use gemm, to_host, from_host, "
                     "copy, fill, axpby, scale, add_bias, act_forward, act_backward, softmax_xent, adam_update, "
                     "rng_normal or count_nonfinite", f->op);
}

static pthread_mutex_t made_mu = PTHREAD_MUTEX_INITIALIZER;
static faulty *made; /* kept for the process's life: backends are never freed */

pnn_status pnn_backend_faulty(const char *op, int64_t after, const pnn_backend **be) {
    if (strlen(op) >= sizeof((faulty *)0)->op || after < 0)
        return PNN_ERROR(PNN_ERR_INVALID, "faulty backend: bad op '%s' or count %lld", op, (long long)after);
    faulty *f = calloc(1, sizeof *f);
    if (!f) return PNN_ERROR(PNN_ERR_NOMEM, "out of memory for a faulty backend");
    f->cpu = pnn_backend_cpu()->iface;
    f->iface = *f->cpu;
    f->iface.name = "faulty";
    f->iface.status = faulty_status;
    snprintf(f->op, sizeof f->op, "%s", op);
    f->after = after;
    pthread_mutex_init(&f->mu, NULL);
    pnn_status st = wrap(f);
    if (st != PNN_OK) {
        pthread_mutex_destroy(&f->mu);
        free(f);
        return st;
    }
    f->backend = (pnn_backend){&f->iface, f};
    pthread_mutex_lock(&made_mu);
    f->next = made;
    made = f;
    pthread_mutex_unlock(&made_mu);
    *be = &f->backend;
    return PNN_OK;
}

int64_t pnn_backend_faulty_calls(const pnn_backend *be) {
    if (!be || be->iface->status != faulty_status) return -1;
    return (int64_t)atomic_load(&((faulty *)be->ctx)->calls);
}
