/* Optimizers over a list of parameters: SGD with momentum, and Adam (PyTorch's definitions,
 * with L2 weight decay added to the gradient). */
#ifndef PNN_OPTIM_H
#define PNN_OPTIM_H

#include "pnn/layer.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct pnn_optim_config {
    char kind[16];        /* "adam" or "sgd" */
    float lr;
    float beta1, beta2, eps;  /* adam */
    float momentum;           /* sgd */
    float weight_decay;
} pnn_optim_config;

/* PyTorch's defaults for kind: adam lr 1e-3, betas (0.9, 0.999), eps 1e-8; sgd lr 1e-2, momentum 0.9. */
pnn_status pnn_optim_defaults(const char *kind, pnn_optim_config *cfg);

typedef struct pnn_optimizer pnn_optimizer;

/* The optimizer keeps pointers to params (which must outlive it) and owns its state. */
pnn_status pnn_optimizer_create(const pnn_optim_config *cfg, pnn_param *const *params, int n_params,
                                pnn_optimizer **out);
void pnn_optimizer_free(pnn_optimizer *o);
/* One update of every parameter from its grad. */
pnn_status pnn_optimizer_step(pnn_optimizer *o);
int64_t pnn_optimizer_step_count(const pnn_optimizer *o);
void pnn_optimizer_set_step_count(pnn_optimizer *o, int64_t steps);
void pnn_optimizer_set_lr(pnn_optimizer *o, float lr);
/* The state tensors (for checkpoints), named "optim.<kind>.<m|v|velocity>.<param name>". */
int pnn_optimizer_state_count(const pnn_optimizer *o);
pnn_tensor *pnn_optimizer_state(pnn_optimizer *o, int i, const char **name);

#ifdef __cplusplus
}
#endif
#endif
