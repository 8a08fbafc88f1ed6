/* pat and insilico: backpropagation through the network, in micro-batches that the host bridge
 * pipelines. PAT runs each physical layer's forward on its device and its backward through the
 * twin at the same point; in silico runs the twin both ways (the device is used only to
 * evaluate). */
#include "host/methods/method_impl.h"

/* The loss of one micro-batch: its rows of the labels, the gradient of the batch's mean loss. */
static pnn_status micro_loss(void *user, int slot, const pnn_tensor *y, pnn_tensor *dy) {
    pnn_trainer *tr = user;
    int64_t rows = pnn_tensor_rows(y), first = tr->loss_row0 + (int64_t)slot * tr->micro_rows;
    pnn_tensor labels;
    int64_t shape[2] = {rows, 1};
    double loss_sum, correct;
    PNN_TRY(pnn_tensor_view(&labels, tr->be, tr->yb.data + first, 2, shape));
    pnn_status st = pnn_loss_compute_part(tr->opt.loss, y, &labels, tr->step_rows, dy, &tr->scratch, &loss_sum, &correct);
    if (st != PNN_OK)
        return pnn_error_prefix(st, "training step %lld (epoch %lld): ", (long long)tr->global_step + 1,
                                (long long)tr->epoch + 1);
    tr->step_loss += loss_sum;
    tr->step_correct += correct;
    return PNN_OK;
}

pnn_status pnn_method_backprop(pnn_trainer *tr, pnn_pass pass, int64_t row0, int64_t rows, int64_t b_global,
                               pnn_schedule_stats *stats) {
    int64_t mb = tr->opt.bridge.micro_batch > 0 && tr->opt.bridge.micro_batch < rows ? tr->opt.bridge.micro_batch : rows;
    int n_micro = (int)((rows + mb - 1) / mb);
    for (int k = 0; k < n_micro; k++) {
        int64_t r = rows - k * mb < mb ? rows - k * mb : mb, shape[2] = {r, tr->train.dim};
        PNN_TRY(pnn_tensor_view(&tr->micro_x[k], tr->be, tr->xb.data + (row0 + k * mb) * tr->train.dim, 2, shape));
    }
    tr->step_rows = b_global;
    tr->micro_rows = mb;
    tr->loss_row0 = row0;
    return pnn_network_train_micro(tr->net, n_micro, tr->micro_x, pass, tr->opt.bridge.pipelined, micro_loss, tr,
                                   stats);
}

static pnn_status pat_gradient(pnn_trainer *tr, int64_t row0, int64_t rows, int64_t b_global, pnn_schedule_stats *s) {
    return pnn_method_backprop(tr, PNN_PASS_TRAIN_PAT, row0, rows, b_global, s);
}

static pnn_status insilico_gradient(pnn_trainer *tr, int64_t row0, int64_t rows, int64_t b_global,
                                    pnn_schedule_stats *s) {
    return pnn_method_backprop(tr, PNN_PASS_TRAIN_TWIN, row0, rows, b_global, s);
}

const pnn_method_i pnn_method_pat = {
    .name = "pat",
    .summary = "physics-aware training: forward on the devices, backward through their twins",
    .gradient = pat_gradient,
};

const pnn_method_i pnn_method_insilico = {
    .name = "insilico",
    .summary = "backpropagation through the twins alone (the devices only evaluate)",
    .gradient = insilico_gradient,
};
