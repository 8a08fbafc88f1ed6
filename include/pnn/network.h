/* Networks: a sequence of digital and physical layers built from a config list, with the
 * activations and gradient buffers of a forward and backward pass. */
#ifndef PNN_NETWORK_H
#define PNN_NETWORK_H

#include "pnn/config.h"
#include "pnn/layer.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Where one micro-batch is in its forward pass. */
typedef struct pnn_slot_state {
    int layer;       /* the next layer to run */
    int begun;       /* that layer's forward_begin has run; its forward_end has not */
    int first;       /* the first layer of the slot's last forward (0 but for pnn_network_forward_block) */
} pnn_slot_state;

typedef struct pnn_network {
    const pnn_backend *be;
    pnn_layer **layers;
    int n_layers;
    int64_t in_dim, out_dim;  /* features of one input row and one output row (per sample) */
    /* per micro-batch slot, n_layers + 1 activations: acts[s][0] is the input, acts[s][i + 1]
     * layer i's output (allocated when the slot is first used) */
    pnn_tensor *acts[PNN_LAYER_MAX_SLOTS];
    pnn_tensor *grads;        /* n_layers + 1: gradients of the loss w.r.t. acts, one backward at a time */
    pnn_slot_state state[PNN_LAYER_MAX_SLOTS];
    pnn_param **params;       /* every parameter, in layer order */
    int n_params;
    /* May be set by a training method (NULL: backpropagation): what pnn_network_train_micro does
     * with a micro-batch's output gradient dy instead of backpropagating it (host/methods/dfa.c) */
    pnn_status (*backward_hook)(void *user, struct pnn_network *net, int slot, const pnn_tensor *dy);
    void *backward_user;
} pnn_network;

/* The forward pass of layers first..last of a slot only, from x (the input of layer first; it
 * may be another slot's activation); *y points at layer last's output. Layers outside the range
 * keep what they had. A backward_block within first..last may follow. */
pnn_status pnn_network_forward_block(pnn_network *net, int slot, int first, int last, const pnn_tensor *x,
                                     pnn_pass pass, const pnn_tensor **y);
/* The backward pass of layers first..last of a slot only, from the gradient dy at layer last's
 * output; parameter gradients accumulate, and no gradient leaves layer first (a block of a
 * method that trains layers locally). */
pnn_status pnn_network_backward_block(pnn_network *net, int slot, int first, int last, const pnn_tensor *dy);

/* Builds the layers listed in `list` (a config list of maps with a `kind` key) for inputs of
 * in_dim features, checking that each layer accepts what the one before gives. Errors name the
 * layer's index, kind, config file and line. Parameters are initialised from seed. */
pnn_status pnn_network_build(const pnn_cfg *list, const pnn_backend *be, int64_t in_dim, uint64_t seed,
                             pnn_network **out);
/* The same for one rank of a data-parallel run: a physical layer's `device` may be a template
 * with {rank} and {local_rank} (e.g. "remote:tcp://lab-{rank}:5555"), which this rank's values
 * replace (pnn_comm_expand); the config keeps the template. pnn_network_build is rank 0 of 1. */
pnn_status pnn_network_build_rank(const pnn_cfg *list, const pnn_backend *be, int64_t in_dim, uint64_t seed,
                                  int rank, int local_rank, pnn_network **out);
void pnn_network_free(pnn_network *net);

/* Runs x [b, in_dim] through every layer (slot 0); *y points at the output [b, out_dim]. */
pnn_status pnn_network_forward(pnn_network *net, const pnn_tensor *x, pnn_pass pass, const pnn_tensor **y);
/* Backward from dy (the gradient of the output of the last forward of slot 0): accumulates every
 * parameter's grad. */
pnn_status pnn_network_backward(pnn_network *net, const pnn_tensor *dy);

/* One training pass over micro-batches: xs[0..n) go forward (slot k = micro-batch k), `loss`
 * turns each output into its gradient, and the backward passes accumulate the parameters'
 * gradients in micro-batch order. Pipelined, a micro-batch's device requests are in flight
 * while the backend works on the others (devices see their calls in micro-batch order, and the
 * twins theirs); sequential, each micro-batch finishes before the next begins. Both give the
 * same gradients bit for bit. On failure, requests still in flight are waited for and dropped. */
typedef pnn_status (*pnn_loss_fn)(void *user, int slot, const pnn_tensor *y, pnn_tensor *dy);
typedef struct pnn_schedule_stats {
    double wall_s;   /* the whole pass */
    double wait_s;   /* the backend thread blocked on devices */
} pnn_schedule_stats;
pnn_status pnn_network_train_micro(pnn_network *net, int n, const pnn_tensor *xs, pnn_pass pass,
                                   int pipelined, pnn_loss_fn loss, void *user, pnn_schedule_stats *stats);
void pnn_network_zero_grad(pnn_network *net);
int64_t pnn_network_param_count(const pnn_network *net);
/* The devices of the physical layers, in order (n of them, up to max). */
int pnn_network_devices(const pnn_network *net, pnn_device **devs, int max);
/* Pointers to the random-stream counters of every physical layer (its device's and its twin's
 * call counts), in order, then those of device copies (pnn_layer_physical_copy_counters): what a
 * checkpoint must restore for an exact resume. */
#define PNN_NETWORK_MAX_COUNTERS 256 /* as many as a checkpoint keeps per rank */
int pnn_network_counters(const pnn_network *net, uint64_t **counters, int max);
/* Every device of the physical layers, each layer's copies in order (copy 0 first); n of them,
 * up to max. */
int pnn_network_all_devices(const pnn_network *net, pnn_device **devs, int max);
/* How many counters pnn_network_counters would list without a limit (a network needing more than
 * PNN_NETWORK_MAX_COUNTERS cannot be checkpointed exactly and is refused by the trainer). */
int pnn_network_counter_count(const pnn_network *net);
/* The most device copies of any physical layer (pnn_layer_physical_cfg): 0 without physical
 * layers, 1 without copies. */
int pnn_network_copies(const pnn_network *net);
/* What the twins of the physical layers learn during training (a learned twin's online
 * refinement: its MLP, optimizer and buffer), for checkpoints: up to max tensors, names[i] gets
 * "twin_state.<layer>.<name>". Returns how many there are (it may exceed max). After they were
 * written into, pnn_network_twin_states_loaded tells the twins. */
#define PNN_TWIN_STATE_NAME_MAX 192
int pnn_network_twin_states(const pnn_network *net, pnn_tensor **t, char (*names)[PNN_TWIN_STATE_NAME_MAX], int max);
pnn_status pnn_network_twin_states_loaded(pnn_network *net);
/* The parameter called name, or NULL. */
pnn_param *pnn_network_param(const pnn_network *net, const char *name);

#ifdef __cplusplus
}
#endif
#endif
