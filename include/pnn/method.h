/* Training methods (host/methods/): what a training step does to put the gradient of the batch's
 * mean loss into the network's parameter gradients, for this process's rows of the batch. The
 * trainer around it is the same for every method: it loads the rows, sums the ranks' gradients
 * (one process is a sum of one), runs the optimizer, keeps the device statistics, checkpoints
 * and evaluates. Adding a method is its own file in host/methods/ and one line in
 * host/methods/registry.c; nothing else changes (docs/architecture.md, "Training methods"). */
#ifndef PNN_METHOD_H
#define PNN_METHOD_H

#include "pnn/config.h"
#include "pnn/network.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct pnn_trainer pnn_trainer;

typedef struct pnn_method_i {
    const char *name;
    const char *summary; /* one line, for --help and the list of known methods */
    /* Reads the method's own keys from spec, the config's `method` when it is a map {kind: NAME,
     * ...} (NULL for a bare name), into a state the trainer keeps (tr->method_state; may stay
     * NULL). May be NULL (no keys). Errors name the key and its line. */
    pnn_status (*create)(const pnn_cfg *spec, void **state);
    void (*destroy)(void *state);
    /* Rows [row0, row0 + rows) of tr->xb and tr->yb, this process's part of a batch of b_global
     * rows: adds to the zeroed gradients the gradient (or the method's estimate of it) of the sum
     * of this part's losses divided by b_global, and adds the part's loss sum and correct count
     * to tr->step_loss and tr->step_correct. *stats gets the wall time and the time blocked on
     * devices. Deterministic in (the run's seed, tr->global_step, the device counters), so
     * that a resumed run repeats it. */
    pnn_status (*gradient)(pnn_trainer *tr, int64_t row0, int64_t rows, int64_t b_global,
                           pnn_schedule_stats *stats);
    /* Optional parts (0 or NULL when absent): */
    /* The method updates the parameters itself inside gradient (with its own optimizers, e.g.
     * several local steps per batch): the trainer then neither sums gradients nor runs its own
     * optimizer, and restores the parameters and the states below if the step fails. Such a method
     * runs in one process, in comm.reduce fast. */
    int updates_params;
    /* Called once the trainer has its data, network and optimizer: checks that the method can run
     * this network on this data (an error here names what to change) and sets up what it keeps. */
    pnn_status (*prepare)(pnn_trainer *tr);
    /* The method's own prediction (when the network's output is not the class scores): test rows
     * [first, first + b) of tr->test, adding to sums the loss sum, the correct count, the sum of
     * the accuracies of batches of the training batch size, and the number of those batches. */
    pnn_status (*evaluate)(pnn_trainer *tr, pnn_pass pass, int64_t first, int64_t b, double sums[4]);
    /* What a checkpoint must keep for an exact resume beyond the parameters and the trainer's
     * optimizer (e.g. the method's own optimizers): up to max tensors, names[i] set to
     * "method.<method>.<...>". Returns how many there are. */
    int (*states)(pnn_trainer *tr, pnn_tensor **t, char (*names)[PNN_TWIN_STATE_NAME_MAX], int max);
    /* Whether the method, with these keys (state: what create made), runs the twins of the
     * physical layers; NULL: it does. A network with a layer without a twin (twin: none) is
     * refused at the start for a method that does. */
    int (*needs_twin)(const void *state);
} pnn_method_i;

/* The method called name, or NULL. */
const pnn_method_i *pnn_method_find(const char *name);
/* The i-th registered method (0 <= i), NULL past the last. */
const pnn_method_i *pnn_method_at(int i);
/* "pat, insilico, ..." (a static string). */
const char *pnn_method_names(void);

#ifdef __cplusplus
}
#endif
#endif
