/* Tensor allocation, shape checks and host transfers. */
#include "pnn/tensor.h"

#include <math.h>
#include <string.h>

#include "pnn/backend.h"

#define PNN_MAX_NUMEL (INT64_C(1) << 40)

static pnn_status alloc_floats(pnn_tensor *t, int64_t n) {
    const pnn_backend_i *be = t->backend->iface;
    size_t bytes = (size_t)(n > 0 ? n : 1) * sizeof(float);
    t->data = be->alloc(t->backend->ctx, bytes);
    if (!t->data)
        return PNN_ERROR(PNN_ERR_NOMEM, "out of memory allocating %lld floats (%.1f MiB) on %s",
                         (long long)n, bytes / 1048576.0, be->name);
    t->capacity = n;
    be->fill(t->backend->ctx, t->data, 0.0f, n);
    return PNN_OK;
}

pnn_status pnn_tensor_init(pnn_tensor *t, const pnn_backend *be, int ndim, const int64_t *shape) {
    memset(t, 0, sizeof *t);
    if (ndim < 1 || ndim > PNN_MAX_DIMS)
        return PNN_ERROR(PNN_ERR_INVALID, "tensor rank %d outside 1..%d", ndim, PNN_MAX_DIMS);
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0 || (shape[i] > 0 && n > PNN_MAX_NUMEL / shape[i]))
            return PNN_ERROR(PNN_ERR_INVALID, "tensor dimension %d has bad size %lld", i,
                             (long long)shape[i]);
        n *= shape[i];
        t->shape[i] = shape[i];
    }
    t->ndim = ndim;
    t->numel = n;
    t->backend = be;
    return alloc_floats(t, n);
}

pnn_status pnn_tensor_init2(pnn_tensor *t, const pnn_backend *be, int64_t rows, int64_t cols) {
    int64_t shape[2] = {rows, cols};
    return pnn_tensor_init(t, be, 2, shape);
}

pnn_status pnn_tensor_reshape2(pnn_tensor *t, int64_t rows, int64_t cols) {
    if (rows < 0 || cols < 0 || (cols > 0 && rows > PNN_MAX_NUMEL / cols))
        return PNN_ERROR(PNN_ERR_INVALID, "bad matrix shape %lld x %lld", (long long)rows,
                         (long long)cols);
    int64_t n = rows * cols;
    if (!t->backend) return PNN_ERROR(PNN_ERR_INVALID, "reshaping a tensor that has no backend");
    if (n > t->capacity) {
        if (t->is_view)
            return PNN_ERROR(PNN_ERR_INVALID, "cannot grow a view tensor to %lld floats", (long long)n);
        if (t->data) t->backend->iface->release(t->backend->ctx, t->data);
        t->data = NULL;
        PNN_TRY(alloc_floats(t, n));
    }
    t->ndim = 2;
    t->shape[0] = rows;
    t->shape[1] = cols;
    t->shape[2] = t->shape[3] = 0;
    t->numel = n;
    return PNN_OK;
}

pnn_status pnn_tensor_view(pnn_tensor *t, const pnn_backend *be, float *data, int ndim,
                           const int64_t *shape) {
    memset(t, 0, sizeof *t);
    if (ndim < 1 || ndim > PNN_MAX_DIMS)
        return PNN_ERROR(PNN_ERR_INVALID, "tensor rank %d outside 1..%d", ndim, PNN_MAX_DIMS);
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0) return PNN_ERROR(PNN_ERR_INVALID, "negative tensor dimension");
        n *= shape[i];
        t->shape[i] = shape[i];
    }
    t->data = data;
    t->ndim = ndim;
    t->numel = n;
    t->capacity = n;
    t->backend = be;
    t->is_view = 1;
    return PNN_OK;
}

void pnn_tensor_free(pnn_tensor *t) {
    if (t->data && t->backend && !t->is_view) t->backend->iface->release(t->backend->ctx, t->data);
    memset(t, 0, sizeof *t);
}

pnn_status pnn_tensor_zero(pnn_tensor *t) {
    if (t->numel) t->backend->iface->fill(t->backend->ctx, t->data, 0.0f, t->numel);
    return PNN_OK;
}

pnn_status pnn_tensor_check2(const pnn_tensor *t, int64_t rows, int64_t cols, const char *what) {
    int64_t r = pnn_tensor_rows(t), c = pnn_tensor_cols(t);
    if (!t->data || (rows >= 0 && r != rows) || (cols >= 0 && c != cols))
        return PNN_ERROR(PNN_ERR_INVALID, "%s: expected a %lld x %lld matrix, got %lld x %lld", what,
                         (long long)rows, (long long)cols, (long long)r, (long long)c);
    return PNN_OK;
}

pnn_status pnn_tensor_from_host(pnn_tensor *t, const float *host, int64_t n) {
    if (n > t->numel)
        return PNN_ERROR(PNN_ERR_INVALID, "copying %lld floats into a tensor of %lld", (long long)n,
                         (long long)t->numel);
    t->backend->iface->from_host(t->backend->ctx, t->data, host, (size_t)n * sizeof(float));
    return PNN_OK;
}

pnn_status pnn_tensor_to_host(const pnn_tensor *t, float *host, int64_t n) {
    if (n > t->numel)
        return PNN_ERROR(PNN_ERR_INVALID, "copying %lld floats out of a tensor of %lld", (long long)n,
                         (long long)t->numel);
    t->backend->iface->to_host(t->backend->ctx, host, t->data, (size_t)n * sizeof(float));
    return PNN_OK;
}

pnn_status pnn_tensor_copy(pnn_tensor *dst, const pnn_tensor *src) {
    if (dst->numel != src->numel)
        return PNN_ERROR(PNN_ERR_INVALID, "copying a tensor of %lld floats into one of %lld",
                         (long long)src->numel, (long long)dst->numel);
    dst->backend->iface->copy(dst->backend->ctx, dst->data, src->data,
                              (size_t)src->numel * sizeof(float));
    return PNN_OK;
}

int64_t pnn_count_nonfinite(const float *x, int64_t n) {
    int64_t bad = 0;
    for (int64_t i = 0; i < n; i++) bad += !isfinite(x[i]);
    return bad;
}
