/* Internal to host/: what the training loop (host/train.c) shares with the run directory
 * (host/run_dir.c: lock, config.yaml, metrics.csv, resume) and checkpoints (host/checkpoint.c).
 * Not installed. */
#ifndef PNN_HOST_TRAIN_FILES_H
#define PNN_HOST_TRAIN_FILES_H

#include "pnn/train.h"

/* path of a run directory's checkpoint into buf[cap]; PNN_ERR_INVALID when it does not fit */
pnn_status pnn_train_checkpoint_path(const char *run_dir, char *buf, size_t cap);
/* Appends one row to metrics.csv (nothing when the run keeps no files). acc_bm < 0 and ms < 0
 * leave their columns empty; since (may be NULL) gives training rows their timing columns, the
 * difference of tr->bridge_run and since. PNN_ERR_IO when the row could not be written. */
pnn_status pnn_train_metrics_row(pnn_trainer *tr, const char *kind, double loss, double acc, double acc_bm,
                                 double ms, double elapsed, const pnn_bridge_stats *since);
/* Starts sums at the trainer's current bridge timing. */
void pnn_train_sums_start(pnn_trainer *tr, pnn_train_sums *s);

#endif
