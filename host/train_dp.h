/* Internal to host/: the data-parallel part of the trainer (host/train_dp.c) and the pieces of
 * host/train.c it shares. Not installed; tests include it from the source tree. */
#ifndef PNN_HOST_TRAIN_DP_H
#define PNN_HOST_TRAIN_DP_H

#include "pnn/safetensors.h"
#include "pnn/train.h"

/* Device and twin call counters (their noise index) that do not depend on which rank ran what.
 * Exact mode sets them before every shard from its global position, and before every
 * evaluation chunk; a shard or chunk may use up to 2^16 calls. Fast mode gives rank r the
 * range starting at r * 2^40, so that ranks do not repeat one another's noise. */
#define PNN_DP_CALL_BITS 16
#define PNN_DP_EVAL_BASE (1ull << 62)
uint64_t pnn_dp_train_position(int64_t global_step, int64_t shards_per_step, int64_t shard);
uint64_t pnn_dp_eval_position(int64_t chunk);
uint64_t pnn_dp_rank_offset(int rank);
/* Sets the counters of every simulated device (sim: URIs, whose noise is a function of the
 * call index; recordings, replays and remote devices keep their own) and of every twin. */
void pnn_dp_set_counters(pnn_network *net, uint64_t value);

/* The shards of an exact-mode step: a batch of b rows in shards of mb rows (the last one
 * shorter); this rank computes shards [first, first + count), rows [row0, row0 + rows). */
typedef struct pnn_dp_plan {
    int64_t shards, first, count, row0, rows;
} pnn_dp_plan;
pnn_status pnn_dp_plan_exact(int64_t b, int64_t mb, int size, int rank, pnn_dp_plan *p);

/* Every parameter's gradient (grads = 1) or value (0), in parameter order, as one host buffer
 * of pnn_dp_param_floats floats. */
int64_t pnn_dp_param_floats(const pnn_network *net);
pnn_status pnn_dp_pack(const pnn_network *net, int grads, float *buf);
pnn_status pnn_dp_unpack(pnn_network *net, int grads, const float *buf);

int pnn_dp_size(const pnn_trainer *tr);
/* Several ranks, or exact mode: steps and evaluations go through this file. */
/* After the trainer's local setup (st): agrees on it, then allocates the buffers, moves fast
 * mode's counters to this rank's range and checks that every rank has the same config and
 * parameters. */
pnn_status pnn_dp_setup(pnn_trainer *tr, pnn_status st);
void pnn_dp_free(pnn_trainer *tr);
/* st agreed over the ranks (st itself with one); flag (may be NULL): in, this rank's stop
 * request; out, any rank's. */
pnn_status pnn_dp_agree(pnn_trainer *tr, pnn_status st, int *flag);
/* Fails on every rank unless every rank holds the same parameters. */
pnn_status pnn_dp_check_params(pnn_trainer *tr, const char *when);
/* all[r * n + i] = rank r's mine[i]. */
pnn_status pnn_dp_gather_counters(pnn_trainer *tr, const uint64_t *mine, int n, uint64_t *all);
/* Sets this rank's device and twin counters from a checkpoint ("counters" for rank 0,
 * "counters_rank<r>" for rank r; a rank the saved run did not have starts its own range) and
 * notes in tr->note when the checkpoint was written by another number of ranks. */
pnn_status pnn_dp_load_counters(pnn_trainer *tr, const pnn_safetensors *st, const char *path);
pnn_status pnn_dp_step(pnn_trainer *tr, const int64_t *idx, int64_t b, double *loss, double *acc);
pnn_status pnn_dp_evaluate(pnn_trainer *tr, pnn_pass pass, pnn_eval_result *res);

/* From host/train.c. Gathers samples idx[0..b) of d (or first.. when idx is NULL) into xb/yb;
 * training flips use positions pos0 + i of the step's batch. */
pnn_status pnn_train_load_rows(pnn_trainer *tr, const pnn_dataset *d, const int64_t *idx, int64_t first,
                               int64_t b, int augment, int64_t pos0);
/* Zeroes the gradients and runs forward and backward over xb's rows [row0, row0 + rows) in
 * micro-batches, the loss scaled by the global batch b_global; adds to step_loss/step_correct
 * and the bridge timing. */
pnn_status pnn_train_run_rows(pnn_trainer *tr, int64_t row0, int64_t rows, int64_t b_global);
/* Evaluates test rows [first, first + b) in one forward and adds to sums: loss, correct,
 * per-batch accuracy (batches of the training size), batch count. */
pnn_status pnn_train_eval_chunk(pnn_trainer *tr, pnn_pass pass, int64_t first, int64_t b, double sums[4]);

#endif
