/* Losses over a batch: input checks, the backend's loss op, and the per-row sums brought back to
 * the host. */
#include "pnn/loss.h"

#include <math.h>
#include <string.h>

#include "pnn/backend.h"

/* floats read back to the host at a time: a stack buffer, whatever the batch size */
#define PNN_LOSS_CHUNK 1024

pnn_status pnn_loss_kind_parse(const char *s, pnn_loss_kind *out) {
    if (!strcmp(s, "cross_entropy") || !strcmp(s, "xent")) *out = PNN_LOSS_XENT;
    else if (!strcmp(s, "mse")) *out = PNN_LOSS_MSE;
    else return PNN_ERROR(PNN_ERR_INVALID, "unknown loss '%s'; known: cross_entropy (or xent), mse", s);
    return PNN_OK;
}

/* Copies n floats of backend memory from src into host, one chunk at most; a failed copy is an
 * error, never garbage read as labels or losses. */
static pnn_status read_chunk(const pnn_backend *be, const float *src, int64_t n, float *host) {
    be->iface->to_host(be->ctx, host, src, (size_t)n * sizeof(float));
    return pnn_backend_status(be);
}

/* Every label must name a class: an integer in [0, classes). */
static pnn_status check_labels(const pnn_tensor *target, int64_t classes) {
    float buf[PNN_LOSS_CHUNK];
    for (int64_t first = 0; first < target->numel; first += PNN_LOSS_CHUNK) {
        int64_t n = target->numel - first < PNN_LOSS_CHUNK ? target->numel - first : PNN_LOSS_CHUNK;
        PNN_TRY(read_chunk(target->backend, target->data + first, n, buf));
        for (int64_t i = 0; i < n; i++)
            if (!(buf[i] >= 0.0f && buf[i] < (float)classes && buf[i] == floorf(buf[i])))
                return PNN_ERROR(PNN_ERR_FORMAT,
                                 "label %g of row %lld is not a class index (an integer in [0, %lld))",
                                 (double)buf[i], (long long)(first + i), (long long)classes);
    }
    return PNN_OK;
}

static pnn_status check_finite(const pnn_tensor *t, const char *what) {
    const pnn_backend *be = t->backend;
    int64_t bad = be->iface->count_nonfinite(be->ctx, t->numel, t->data);
    PNN_TRY(pnn_backend_status(be)); /* a failed count says 0 */
    if (bad)
        return PNN_ERROR(PNN_ERR_FORMAT, "%s holds %lld NaN or Inf values (of %lld); training has diverged "
                                         "or the data is corrupt (try a lower learning rate)",
                         what, (long long)bad, (long long)t->numel);
    return PNN_OK;
}

/* Sum of n floats of backend memory, accumulated in double on the host. */
static pnn_status sum_floats(const pnn_backend *be, const float *src, int64_t n, double *sum) {
    float buf[PNN_LOSS_CHUNK];
    *sum = 0.0;
    for (int64_t first = 0; first < n; first += PNN_LOSS_CHUNK) {
        int64_t k = n - first < PNN_LOSS_CHUNK ? n - first : PNN_LOSS_CHUNK;
        PNN_TRY(read_chunk(be, src + first, k, buf));
        for (int64_t i = 0; i < k; i++) *sum += buf[i];
    }
    return PNN_OK;
}

pnn_status pnn_loss_compute(pnn_loss_kind kind, const pnn_tensor *y, const pnn_tensor *target,
                            pnn_tensor *dy, pnn_tensor *scratch, double *loss_sum, double *correct) {
    return pnn_loss_compute_part(kind, y, target, pnn_tensor_rows(y), dy, scratch, loss_sum, correct);
}

/* scratch becomes 2 x rows: row 0 the per-row losses, row 1 the per-row correct flags. */
pnn_status pnn_loss_compute_part(pnn_loss_kind kind, const pnn_tensor *y, const pnn_tensor *target,
                                 int64_t batch_rows, pnn_tensor *dy, pnn_tensor *scratch, double *loss_sum,
                                 double *correct) {
    PNN_TRY(pnn_tensor_check2(y, -1, -1, "loss input"));
    const pnn_backend *be = y->backend;
    /* the ops that made y, then the loss's own: a failed op leaves garbage that must not be read
     * as a loss (its count of NaN would be 0 too) */
    PNN_TRY(pnn_backend_status(be));
    int64_t rows = pnn_tensor_rows(y), cols = pnn_tensor_cols(y);
    PNN_TRY(pnn_tensor_check2(target, rows, kind == PNN_LOSS_XENT ? 1 : cols,
                              kind == PNN_LOSS_XENT ? "loss labels" : "loss targets"));
    if (dy) PNN_TRY(pnn_tensor_check2(dy, rows, cols, "loss gradient"));
    PNN_TRY(check_finite(y, "the network output"));
    if (kind == PNN_LOSS_XENT) PNN_TRY(check_labels(target, cols));
    else PNN_TRY(check_finite(target, "the regression target"));
    if (!scratch->backend) PNN_TRY(pnn_tensor_init2(scratch, be, 2, rows));
    else if (scratch->backend != be)
        return PNN_ERROR(PNN_ERR_INVALID, "loss scratch lives on backend %s but the outputs on %s",
                         scratch->backend->iface->name, be->iface->name);
    else PNN_TRY(pnn_tensor_reshape2(scratch, 2, rows));

    float *loss_rows = scratch->data, *correct_rows = scratch->data + rows;
    float grad_scale = batch_rows > 0 ? 1.0f / (float)batch_rows : 0.0f;
    if (kind == PNN_LOSS_XENT)
        be->iface->softmax_xent(be->ctx, rows, cols, y->data, target->data, loss_rows, correct_rows,
                                dy ? dy->data : NULL, grad_scale);
    else
        be->iface->mse(be->ctx, rows, cols, y->data, target->data, loss_rows, dy ? dy->data : NULL,
                       grad_scale);
    PNN_TRY(sum_floats(be, loss_rows, rows, loss_sum));
    *correct = 0.0;
    if (kind == PNN_LOSS_XENT) PNN_TRY(sum_floats(be, correct_rows, rows, correct));
    return PNN_OK;
}
