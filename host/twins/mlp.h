/* The network inside a learned twin (host/twins/): a multilayer perceptron on the backend, with the
 * standardisation of its inputs and outputs, its training pass, and its file.
 *
 * In fitting, the input is the matrix z = [x, theta] of many calls (each row its own theta),
 * standardised on the host: ẑ = (z - in_mean) / in_std, and the target ŷ = (y - out_mean) /
 * out_std. In a twin, theta is one vector for the whole batch: pnn_mlp_fold makes a copy whose first
 * layer takes raw [x, theta] and whose last layer gives raw y, and pnn_mlp_forward with a theta
 * computes the first layer as x W_x^T + (W_theta theta + b), the theta term once per call. */
#ifndef PNN_HOST_TWINS_MLP_H
#define PNN_HOST_TWINS_MLP_H

#include "pnn/device.h"
#include "pnn/layer.h"
#include "pnn/safetensors.h"

#define PNN_MLP_MAX_LINEAR 16

typedef struct pnn_mlp {
    const pnn_backend *be;
    int n_lin;                                /* linear maps; the activation follows all but the last */
    int64_t dims[PNN_MLP_MAX_LINEAR + 1];     /* dims[0] inputs, dims[n_lin] outputs */
    pnn_act act;
    pnn_layer *holder;                        /* owns the parameters: weight i, bias i at 2i, 2i + 1 */
    float *in_mean, *in_std, *out_mean, *out_std; /* host, dims[0] and dims[n_lin] floats */
} pnn_mlp;

/* What a forward keeps for the backward: the pre-activations and the activations of each layer. */
typedef struct pnn_mlp_tape {
    pnn_tensor pre[PNN_MLP_MAX_LINEAR], post[PNN_MLP_MAX_LINEAR];
} pnn_mlp_tape;

/* A new network in -> hidden[0] -> ... -> out, weights U(+-1/sqrt(fan_in)) from (seed, name),
 * identity standardisation. */
pnn_status pnn_mlp_create(const pnn_backend *be, int64_t in, const int64_t *hidden, int n_hidden, int64_t out,
                          pnn_act act, uint64_t seed, pnn_mlp **out_mlp);
void pnn_mlp_free(pnn_mlp *m);
int64_t pnn_mlp_param_count(const pnn_mlp *m);
static inline pnn_param *pnn_mlp_weight(const pnn_mlp *m, int i) { return &m->holder->params[2 * i]; }
static inline pnn_param *pnn_mlp_bias(const pnn_mlp *m, int i) { return &m->holder->params[2 * i + 1]; }

/* The copy with the standardisation folded into the first and last layers (see above). */
pnn_status pnn_mlp_fold(const pnn_mlp *m, pnn_mlp **out);

/* y [rows, out] from x [rows, dims[0] - theta_dim] and, when theta_dim > 0, theta [theta_dim]
 * (backend memory) shared by every row; the tape keeps what the backward needs. No
 * standardisation is applied (fold first, or pass standardised data). */
pnn_status pnn_mlp_forward(pnn_mlp *m, const pnn_tensor *x, const float *theta, int64_t theta_dim,
                           pnn_mlp_tape *tape, pnn_tensor *y);
/* From dy at the tape of a forward: dx (may be NULL; accumulate: += instead of =) [rows,
 * dims[0] - theta_dim], dtheta += (may be NULL), and with x given (the forward's input) the
 * parameters' gradients +=. work: two scratch tensors. */
pnn_status pnn_mlp_backward(pnn_mlp *m, const pnn_tensor *x, int64_t theta_dim, pnn_mlp_tape *tape,
                            const pnn_tensor *dy, pnn_tensor *dx, int accumulate, float *dtheta,
                            pnn_tensor work[2]);
void pnn_mlp_tape_free(pnn_mlp_tape *t);

/* One regression step: zero the gradients, forward x [rows, in] (standardised), the MSE against
 * target [rows, out] (mean over rows), backward, one update of opt (an optimizer over the MLP's
 * parameters). loss gets the first row's loss (backend memory, [rows, 1]), dy and work scratch. */
typedef struct pnn_optimizer pnn_optimizer;
pnn_status pnn_mlp_fit_step(pnn_mlp *m, pnn_optimizer *opt, const pnn_tensor *x, const pnn_tensor *target,
                            pnn_mlp_tape *tape, pnn_tensor *y, pnn_tensor *dy, pnn_tensor *loss, pnn_tensor work[2]);
/* pnn_tensor_reshape2 of a tensor that may still be empty ({0}): it gets backend be first. */
static inline pnn_status pnn_mlp_shape(pnn_tensor *t, const pnn_backend *be, int64_t rows, int64_t cols) {
    if (!t->backend) t->backend = be;
    return pnn_tensor_reshape2(t, rows, cols);
}

/* The twin file (docs/architecture.md, "Learned twins"): tensors layers.I.weight, layers.I.bias,
 * norm.in_mean, norm.in_std, norm.out_mean, norm.out_std, theta.center; metadata format
 * "pnn-twin/1", kind, system, system_uri, x_dim, theta_dim, y_dim, hidden, activation, and what the
 * caller adds (validation_nmse, device_calls, samples, source). */
typedef struct pnn_twin_file_info {
    char kind[16];         /* learned, residual */
    char system[32];
    char system_uri[1024];
    int64_t x_dim, theta_dim, y_dim;
    double validation_nmse;
    int64_t device_calls, samples;
} pnn_twin_file_info;

pnn_status pnn_mlp_save(const pnn_mlp *m, const char *path, const pnn_twin_file_info *info,
                        const float *theta_center, const pnn_st_meta *extra, int n_extra);
/* Loads and checks the file (PNN_ERR_FORMAT names what is wrong); *theta_center gets theta_dim
 * host floats (free them). */
pnn_status pnn_mlp_load(const pnn_backend *be, const char *path, pnn_mlp **out, pnn_twin_file_info *info,
                        float **theta_center);
/* PNN_ERR_CONFIG unless the file's system and dims are those of the device (names both). */
pnn_status pnn_twin_file_check_device(const pnn_twin_file_info *fi, const char *path, const pnn_device_info *dev);

#endif
