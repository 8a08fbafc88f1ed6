/* The CPU backend: host memory (64-byte aligned), OpenBLAS for GEMM, the kernels of
 * kernels/cpu for everything else; and pnn_backend_get, the one place that picks the CUDA
 * backend (kernels/cuda) in builds that have it. */
#include <cblas.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cpu/cpu_ops.h"
#include "pnn/backend.h"
#include "pnn/rng.h"
#include "pnn/tensor.h"

static void *cpu_alloc(void *ctx, size_t bytes) {
    (void)ctx;
    size_t rounded = (bytes + 63) / 64 * 64;
    return aligned_alloc(64, rounded ? rounded : 64);
}
static void cpu_release(void *ctx, void *ptr) { (void)ctx; free(ptr); }
static void cpu_copy(void *ctx, void *dst, const void *src, size_t bytes) {
    (void)ctx;
    if (bytes && dst != src) memmove(dst, src, bytes);
}
static void cpu_fill(void *ctx, float *dst, float value, int64_t n) {
    (void)ctx;
    for (int64_t i = 0; i < n; i++) dst[i] = value;
}
static void cpu_sync(void *ctx) { (void)ctx; }
static int64_t cpu_count_nonfinite(void *ctx, int64_t n, const float *x) {
    (void)ctx;
    return pnn_count_nonfinite(x, n);
}
static void cpu_rng_normal(void *ctx, uint64_t seed, uint64_t stream, uint64_t offset, int64_t n,
                           float *out) {
    (void)ctx;
    pnn_rng_normal(seed, stream, offset, n, out);
}

void pnn_cpu_gemm(void *ctx, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                  const float *a, int64_t lda, const float *b, int64_t ldb, float beta, float *c,
                  int64_t ldc) {
    (void)ctx;
    if (m == 0 || n == 0) return;
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans,
                (blasint)m, (blasint)n, (blasint)k, alpha, a, (blasint)lda, b, (blasint)ldb, beta, c,
                (blasint)ldc);
}

static const pnn_backend_i cpu_iface = {
    .name = "cpu",
    .alloc = cpu_alloc,
    .release = cpu_release,
    .to_host = cpu_copy,
    .from_host = cpu_copy,
    .copy = cpu_copy,
    .fill = cpu_fill,
    .sync = cpu_sync,
    .gemm = pnn_cpu_gemm,
    .cgemm = pnn_cpu_cgemm,
    .fft = pnn_cpu_fft,
    .count_nonfinite = cpu_count_nonfinite,
    .rng_normal = cpu_rng_normal,
    .copy2d = pnn_cpu_copy2d,
    .axpby = pnn_cpu_axpby,
    .scale = pnn_cpu_scale,
    .clamp = pnn_cpu_clamp,
    .dot = pnn_cpu_dot,
    .add_bias = pnn_cpu_add_bias,
    .bias_grad = pnn_cpu_bias_grad,
    .act_forward = pnn_cpu_act_forward,
    .act_backward = pnn_cpu_act_backward,
    .patchify = pnn_cpu_patchify,
    .unpatchify = pnn_cpu_unpatchify,
    .softmax_xent = pnn_cpu_softmax_xent,
    .mse = pnn_cpu_mse,
    .adam_update = pnn_cpu_adam_update,
    .sgd_update = pnn_cpu_sgd_update,
    .conv2d_work_floats = pnn_cpu_conv2d_work_floats,
    .conv2d_forward = pnn_cpu_conv2d_forward,
    .conv2d_backward_data = pnn_cpu_conv2d_backward_data,
    .conv2d_backward_filter = pnn_cpu_conv2d_backward_filter,
};

static const pnn_backend cpu_backend = {&cpu_iface, NULL};

const pnn_backend *pnn_backend_cpu(void) { return &cpu_backend; }

#ifdef PNN_USE_CUDA
/* The one place that knows of the CUDA backend (kernels/cuda): "cuda" fails without a GPU,
 * "auto" falls back to the CPU. */
#include "kernels/cuda/cuda_backend.h"

static pnn_status gpu_backend_get(const char *name, const pnn_backend **be) {
    if (!strcmp(name, "cuda")) return pnn_cuda_backend_get(be);
    if (pnn_cuda_device_count() > 0 && pnn_cuda_backend_get(be) == PNN_OK) return PNN_OK;
    pnn_error_clear();
    *be = &cpu_backend;
    return PNN_OK;
}
#else
static pnn_status gpu_backend_get(const char *name, const pnn_backend **be) {
    if (!strcmp(name, "auto")) {
        *be = &cpu_backend;
        return PNN_OK;
    }
    return PNN_ERROR(PNN_ERR_UNSUPPORTED,
                     "backend 'cuda' is not available: this build has no CUDA backend (configure with "
                     "-DPNN_CUDA=ON on a machine with the CUDA toolkit); use backend: cpu");
}
#endif

/* "faulty:OP:N", the test-only failing CPU backend */
static pnn_status faulty_get(const char *name, const pnn_backend **be) {
    const char *op = name + strlen("faulty:"), *colon = strrchr(op, ':');
    char buf[32], *end;
    long long after = colon ? strtoll(colon + 1, &end, 10) : -1;
    if (!colon || (size_t)(colon - op) >= sizeof buf || end == colon + 1 || *end || after < 0)
        return PNN_ERROR(PNN_ERR_INVALID, "backend '%s': the test-only faulty backend is faulty:OP:N (op OP fails "
                         "after N calls), e.g. faulty:gemm:40", name);
    snprintf(buf, sizeof buf, "%.*s", (int)(colon - op), op);
    return pnn_backend_faulty(buf, after, be);
}

pnn_status pnn_backend_get(const char *name, const pnn_backend **be) {
    if (!strcmp(name, "cpu")) {
        *be = &cpu_backend;
        return PNN_OK;
    }
    if (!strcmp(name, "cuda") || !strcmp(name, "auto")) return gpu_backend_get(name, be);
    if (!strncmp(name, "faulty:", 7)) return faulty_get(name, be);
    return PNN_ERROR(PNN_ERR_INVALID, "unknown backend '%s': use cpu, cuda or auto", name);
}

pnn_status pnn_backend_status(const pnn_backend *be) {
    return be->iface->status ? be->iface->status(be->ctx) : PNN_OK;
}
