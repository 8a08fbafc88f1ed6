/* Losses over a batch of rows: softmax cross-entropy against class labels, and MSE against
 * target vectors. */
#ifndef PNN_LOSS_H
#define PNN_LOSS_H

#include "pnn/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { PNN_LOSS_XENT, PNN_LOSS_MSE } pnn_loss_kind;

/* Parses "cross_entropy" / "xent" / "mse". */
pnn_status pnn_loss_kind_parse(const char *s, pnn_loss_kind *out);

/* y: rows x cols outputs. target: rows x 1 class indices (XENT) or rows x cols (MSE).
 * *loss_sum = sum over rows of the per-row loss; *correct = rows whose argmax equals the
 * label (XENT; 0 for MSE). dy (may be NULL) = d(mean loss over rows)/dy.
 * scratch is resized as needed and holds per-row values (reused across calls).
 * Fails if y holds NaN or Inf (naming how many) or a label is out of range. */
pnn_status pnn_loss_compute(pnn_loss_kind kind, const pnn_tensor *y, const pnn_tensor *target,
                            pnn_tensor *dy, pnn_tensor *scratch, double *loss_sum, double *correct);
/* The same for a micro-batch: y holds some of the batch_rows rows of a batch, and dy is the
 * gradient of the mean loss over the whole batch. */
pnn_status pnn_loss_compute_part(pnn_loss_kind kind, const pnn_tensor *y, const pnn_tensor *target,
                                 int64_t batch_rows, pnn_tensor *dy, pnn_tensor *scratch, double *loss_sum,
                                 double *correct);

#ifdef __cplusplus
}
#endif
#endif
