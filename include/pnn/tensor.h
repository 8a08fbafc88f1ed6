/* Tensors: float32, contiguous row-major, up to 4 dimensions, living in the memory of one
 * backend. Layers treat a tensor as a matrix of rows (samples) by columns (features). */
#ifndef PNN_TENSOR_H
#define PNN_TENSOR_H

#include <stddef.h>
#include <stdint.h>

#include "pnn/status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define PNN_MAX_DIMS 4

typedef struct pnn_backend pnn_backend;

typedef struct pnn_tensor {
    float *data;                 /* backend memory; NULL when empty */
    int ndim;
    int64_t shape[PNN_MAX_DIMS];
    int64_t numel;
    int64_t capacity;            /* floats allocated; resizing within it does not reallocate */
    const pnn_backend *backend;
    int is_view;                 /* data belongs to another buffer: never freed through this tensor */
} pnn_tensor;

/* Allocates a zero-filled tensor. Shapes must be positive and the total below 2^40 floats. */
pnn_status pnn_tensor_init(pnn_tensor *t, const pnn_backend *be, int ndim, const int64_t *shape);
pnn_status pnn_tensor_init2(pnn_tensor *t, const pnn_backend *be, int64_t rows, int64_t cols);
/* Changes the shape; reallocates (losing the contents) only when the capacity is too small. */
pnn_status pnn_tensor_reshape2(pnn_tensor *t, int64_t rows, int64_t cols);
void pnn_tensor_free(pnn_tensor *t);
/* A view of n floats of someone else's backend memory with the given shape (no ownership). */
pnn_status pnn_tensor_view(pnn_tensor *t, const pnn_backend *be, float *data, int ndim,
                           const int64_t *shape);
pnn_status pnn_tensor_zero(pnn_tensor *t);

static inline int64_t pnn_tensor_rows(const pnn_tensor *t) { return t->ndim > 0 ? t->shape[0] : 1; }
static inline int64_t pnn_tensor_cols(const pnn_tensor *t) {
    int64_t r = pnn_tensor_rows(t);
    return r > 0 ? t->numel / r : 0;
}

/* Fails with a message naming `what` unless t is a rows x cols matrix (-1 = any). */
pnn_status pnn_tensor_check2(const pnn_tensor *t, int64_t rows, int64_t cols, const char *what);

/* Copies between host memory and the tensor (n floats from the start). */
pnn_status pnn_tensor_from_host(pnn_tensor *t, const float *host, int64_t n);
pnn_status pnn_tensor_to_host(const pnn_tensor *t, float *host, int64_t n);
pnn_status pnn_tensor_copy(pnn_tensor *dst, const pnn_tensor *src);

/* Counts NaN and Inf values (on the host). */
int64_t pnn_count_nonfinite(const float *x, int64_t n);

#ifdef __cplusplus
}
#endif
#endif
