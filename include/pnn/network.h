/* Networks: a sequence of digital and physical layers built from a config list, with the
 * activations and gradient buffers of a forward and backward pass. */
#ifndef PNN_NETWORK_H
#define PNN_NETWORK_H

#include "pnn/config.h"
#include "pnn/layer.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct pnn_network {
    const pnn_backend *be;
    pnn_layer **layers;
    int n_layers;
    int64_t in_dim, out_dim;  /* features of one input row and one output row (per sample) */
    pnn_tensor *acts;         /* n_layers + 1: acts[0] is the input, acts[i + 1] layer i's output */
    pnn_tensor *grads;        /* the same shapes: gradients of the loss w.r.t. acts */
    pnn_param **params;       /* every parameter, in layer order */
    int n_params;
} pnn_network;

/* Builds the layers listed in `list` (a config list of maps with a `kind` key) for inputs of
 * in_dim features, checking that each layer accepts what the one before gives. Errors name the
 * layer's index, kind, config file and line. Parameters are initialised from seed. */
pnn_status pnn_network_build(const pnn_cfg *list, const pnn_backend *be, int64_t in_dim, uint64_t seed,
                             pnn_network **out);
void pnn_network_free(pnn_network *net);

/* Runs x [b, in_dim] through every layer; *y points at the output [b, out_dim]. */
pnn_status pnn_network_forward(pnn_network *net, const pnn_tensor *x, pnn_pass pass, const pnn_tensor **y);
/* Backward from dy (the gradient of the output of the last forward): accumulates every
 * parameter's grad. */
pnn_status pnn_network_backward(pnn_network *net, const pnn_tensor *dy);
void pnn_network_zero_grad(pnn_network *net);
int64_t pnn_network_param_count(const pnn_network *net);
/* The devices of the physical layers, in order (n of them, up to max). */
int pnn_network_devices(const pnn_network *net, pnn_device **devs, int max);
/* Pointers to the random-stream counters of every physical layer (its device's and its twin's
 * call counts), in order: what a checkpoint must restore for an exact resume. */
int pnn_network_counters(const pnn_network *net, uint64_t **counters, int max);
/* The parameter called name, or NULL. */
pnn_param *pnn_network_param(const pnn_network *net, const char *name);

#ifdef __cplusplus
}
#endif
#endif
