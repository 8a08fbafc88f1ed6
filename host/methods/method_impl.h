/* What a training method's file includes (host/methods/): the trainer's fields, the network
 * and the losses. Not a public header. */
#ifndef PNN_HOST_METHOD_IMPL_H
#define PNN_HOST_METHOD_IMPL_H

#include "pnn/loss.h"
#include "pnn/method.h"
#include "pnn/train.h"

/* The micro-batched, pipelined forward and backward of rows [row0, row0 + rows) with the batch
 * loss's gradient at the output (host/methods/backprop.c): pat and insilico are this with their
 * pass; a method that replaces backpropagation sets net->backward_hook around it. */
pnn_status pnn_method_backprop(pnn_trainer *tr, pnn_pass pass, int64_t row0, int64_t rows, int64_t b_global,
                               pnn_schedule_stats *stats);

#endif
