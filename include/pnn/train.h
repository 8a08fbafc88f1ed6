/* Training runs: the data, the network, the method (pat or insilico), the optimizer, and the
 * loop over epochs with evaluation on the device and on the twin, metrics and checkpoints;
 * with a comm of several ranks, data-parallel (host/train_dp.c, docs/cluster.md). */
#ifndef PNN_TRAIN_H
#define PNN_TRAIN_H

#include <stdio.h>

#include "pnn/comm.h"
#include "pnn/config.h"
#include "pnn/data.h"
#include "pnn/device.h"
#include "pnn/fileio.h"
#include "pnn/loss.h"
#include "pnn/network.h"
#include "pnn/optim.h"

#ifdef __cplusplus
extern "C" {
#endif

struct pnn_method_i;

/* How PAT steps use the devices (config key `bridge`). */
typedef struct pnn_bridge_options {
    int64_t micro_batch;    /* rows per micro-batch; 0 = the whole batch in one */
    int pipelined;          /* 1: micro-batches overlap device and backend work; 0: one after another */
    pnn_retry_policy retry; /* per device request */
} pnn_bridge_options;

/* Where the time of training steps went (sums over steps). */
#define PNN_TRAIN_MAX_DEVICES 256 /* every copy of every physical layer's device */
typedef struct pnn_bridge_stats {
    double wall_s;          /* training steps */
    double wait_s;          /* the backend thread blocked on devices */
    int n_devices;
    double device_busy_s[PNN_TRAIN_MAX_DEVICES];  /* inside each device's calls */
    uint64_t device_calls[PNN_TRAIN_MAX_DEVICES]; /* successful calls of each device */
    uint64_t twin_calls;    /* taped twin forwards, all layers (not kept in checkpoints) */
} pnn_bridge_stats;

typedef struct pnn_train_options {
    char data_set[32];      /* "fashion-mnist" or "vowels" */
    char data_path[PNN_PATH_MAX + 1]; /* directory (fashion-mnist) or CSV (vowels), resolved */
    int hflip;              /* random horizontal flips of training images */
    int64_t limit_train, limit_test;
    double test_frac;
    const struct pnn_method_i *method; /* pat, insilico, ... (pnn/method.h) */
    pnn_loss_kind loss;
    pnn_optim_config optim;
    int64_t batch, eval_batch, epochs, log_every, checkpoint_every;
    uint64_t seed;
    char backend[64];
    pnn_bridge_options bridge;
    char comm_kind[8];      /* comm.kind: auto, none or mpi (read by the program that starts the comm) */
    pnn_reduce_mode reduce; /* comm.reduce: fast (MPI_Allreduce) or exact (shards of bridge.micro_batch
                             * rows, summed in shard order: the same bits on any number of ranks) */
} pnn_train_options;

typedef struct pnn_eval_result {
    double loss;           /* mean over samples */
    double acc;            /* plain accuracy over samples */
    double acc_batchmean;  /* mean of per-batch accuracies (batches of the training batch size) */
    int64_t n;
} pnn_eval_result;

/* Running sums of an epoch, or of a metrics window (log_every steps), in progress. They are kept
 * in checkpoints, so that a run resumed mid-epoch writes the metrics rows of one that never
 * stopped. */
typedef struct pnn_train_sums {
    double loss, acc;          /* sums of the steps' batch means */
    double step_s;             /* wall time of the steps */
    int64_t steps;
    pnn_bridge_stats at_start; /* the trainer's bridge_run when the epoch or window began */
} pnn_train_sums;

/* What a progress display needs, after every training step. */
typedef struct pnn_progress {
    int64_t epoch, epochs, step_in_epoch, steps_per_epoch, global_step;
    double loss, acc;       /* running means over the epoch so far */
    double elapsed_s;
    const char *phase;      /* "train"; "eval" while evaluating; "epoch_done" after (results in
                             * the trainer's last_device and last_twin) */
} pnn_progress;
typedef void (*pnn_progress_fn)(void *user, const pnn_progress *p);

typedef struct pnn_trainer {
    pnn_cfg *cfg;              /* owned: the config as run */
    pnn_train_options opt;
    const pnn_backend *be;
    pnn_dataset train, test;
    pnn_network *net;
    pnn_optimizer *optim;
    int64_t epoch, step_in_epoch, global_step;
    double train_s;            /* training wall time so far (excluding evaluation) */
    char run_dir[PNN_PATH_MAX + 1]; /* "" when the run keeps no files */
    int run_lock;              /* the run directory's lock file (rank 0), or -1 */
    FILE *metrics;
    pnn_progress_fn progress;
    void *progress_user;
    pnn_tensor xb, yb, dy, scratch;
    float *xb_host, *yb_host;
    int64_t *perm;
    pnn_eval_result last_device, last_twin;
    int evaluated;             /* last_device and last_twin hold the test at the current position */
    int64_t eval_step;         /* global_step of that test; -1 before any */
    pnn_train_sums epoch_sums, window_sums;
    pnn_device *devices[PNN_TRAIN_MAX_DEVICES];  /* of the physical layers, in order, with their copies */
    pnn_bridge_stats bridge_run;  /* this process's training steps so far */
    pnn_tensor *micro_x;          /* PNN_LAYER_MAX_SLOTS views into xb */
    int64_t step_rows;            /* rows of the current global batch (the loss of every part is scaled by it) */
    double step_loss, step_correct;
    /* When set (e.g. by a SIGINT handler), the run stops after the current step, writes its
     * checkpoint and returns with `interrupted` set. May be NULL. With several ranks the flags
     * are exchanged once per step, so every rank stops after the same step. */
    volatile int *stop;
    int interrupted;
    /* an optimizer update failed part way (a backend op failed): the parameters in memory are no
     * longer a state of the run, and must not be saved over the last checkpoint */
    int state_lost;
    /* Data parallelism. comm: the ranks that train together (borrowed; NULL = one process, or
     * own_comm when exact mode needs one). Only rank 0 writes files and reports progress. */
    pnn_comm *comm, *own_comm;
    struct pnn_train_dp *dp;      /* host/train_dp.h; NULL unless several ranks or exact mode */
    int stop_agreed;              /* some rank asked to stop in the last step */
    int64_t micro_rows, loss_row0; /* rows per micro-batch and the first row of slot 0 in yb */
    char note[512];               /* for rank 0 to print (e.g. a resume on another rank count), or "" */
    void *method_state;           /* what opt.method's create made of its keys, or NULL */
} pnn_trainer;

/* Reads options from cfg, loads the data and builds the network and optimizer. Takes
 * ownership of cfg (also on failure). config_dir resolves relative data paths. */
pnn_status pnn_trainer_create(pnn_cfg *cfg, const char *config_dir, pnn_trainer **out);
/* The same for one rank of several (comm: borrowed, must outlive the trainer; NULL = one
 * process). Devices are opened from their templates for this rank. With several ranks this and
 * the functions below are collective: every rank calls them in the same order, with the same
 * batch indices for pnn_trainer_step (each rank takes its part), and a failure on any rank
 * fails them on every rank with "rank R failed: ...". Only rank 0 writes files. */
pnn_status pnn_trainer_create_comm(pnn_cfg *cfg, const char *config_dir, pnn_comm *comm, pnn_trainer **out);
/* The config's comm.kind ("auto" when absent), checked, for pnn_comm_init before the trainer. */
pnn_status pnn_train_comm_kind(const pnn_cfg *cfg, const char **kind);
/* This process's rank (0 without a comm). */
int pnn_trainer_rank(const pnn_trainer *tr);
void pnn_trainer_free(pnn_trainer *tr);

/* Starts a run directory: writes config.yaml, opens metrics.csv (atomically created). */
pnn_status pnn_trainer_open_run(pnn_trainer *tr, const char *run_dir);
/* Continues a run directory from its checkpoint: parameters, optimizer state, position in the
 * data, device call counters, the running sums of the metrics and, when the checkpoint was
 * written after the test at its position, that test's figures (evaluated is then set: a
 * finished run is not evaluated again); metrics after the checkpoint are dropped. A run that
 * stopped before its first checkpoint starts from its beginning (tr->note says so). Both this
 * and pnn_trainer_open_run lock the directory for this process. */
pnn_status pnn_trainer_resume(pnn_trainer *tr, const char *run_dir);
/* Trains until opt.epochs are done, evaluating on the test set after each epoch and writing
 * checkpoints. */
pnn_status pnn_trainer_run(pnn_trainer *tr);
/* One training step on the samples idx[0..b) of the training set (with several ranks, every
 * rank passes the whole batch and computes its part; loss and acc are the batch's). loss/acc
 * may be NULL. A step that fails (on any rank) leaves the parameters and the devices' and
 * twins' random-stream counters as they were before it, so a checkpoint written then resumes
 * exactly. */
pnn_status pnn_trainer_step(pnn_trainer *tr, const int64_t *idx, int64_t b, double *loss, double *acc);
/* Test-set evaluation with the device (PNN_PASS_EVAL_DEVICE) or the twin (EVAL_TWIN; a network
 * with a physical layer without a twin gives res->n = 0 there: not evaluated). */
pnn_status pnn_trainer_evaluate(pnn_trainer *tr, pnn_pass pass, pnn_eval_result *res);
/* Writes the checkpoint (parameters, optimizer state, counters, config) atomically. */
pnn_status pnn_trainer_save_checkpoint(pnn_trainer *tr, const char *path);
/* Writes the checkpoint in the run directory (run_dir/checkpoint.safetensors): after a stop or a
 * failure, the state after the last completed step, for resume. Refused when an update failed
 * part way (state_lost: the parameters in memory are no state of the run). */
pnn_status pnn_trainer_save_state(pnn_trainer *tr);
/* Loads parameters (and, when full, optimizer state, counters, position and run state) from a
 * checkpoint. */
pnn_status pnn_trainer_load_checkpoint(pnn_trainer *tr, const char *path, int full);

/* Tests the network of a checkpoint on its test set, on the device and on the twin (what `pnn
 * eval` prints; twin->n = 0 where a layer has no twin). sets: "key=value" overrides; devices:
 * "URI" (for the only physical layer) or "LAYER=URI". Unless trust, a checkpoint whose config
 * names servers, recordings or files that the caller did not give is refused (docs/security.md). */
pnn_status pnn_evaluate_checkpoint(const char *ckpt, const char *const *sets, int n_sets, const char *const *devices,
                                   int n_devices, int trust, pnn_eval_result *device, pnn_eval_result *twin);
/* Loads a checkpoint's config from its metadata (for `pnn eval`). */
pnn_status pnn_checkpoint_config(const char *path, pnn_cfg **cfg);
/* A checkpoint is data that anyone may have made: what in its config would make pnn open a file,
 * a server or a recording (device URIs other than sim:, a data.path other than the data set's
 * default, any other key named path or *_file). Keys the caller set itself (given[0..n_given),
 * as "network.1.device" or "data.path") are not counted. Lists the others in buf ("network.1.device
 * = 'remote:...'; ...") and returns how many there are. */
int pnn_checkpoint_untrusted(const pnn_cfg *cfg, const char *const *given, int n_given, char *buf, size_t cap);
/* The default path of a data set ("fashion-mnist", "vowels"), or NULL for an unknown one. */
const char *pnn_train_data_default_path(const char *set);

#ifdef __cplusplus
}
#endif
#endif
