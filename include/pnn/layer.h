/* Layers: the pieces a network is made of. Every layer maps a matrix of rows (samples) by
 * columns (features) to another; some change the number of rows (patchify turns each image
 * into P patch rows, reshape groups rows back). A layer's forward saves what its backward
 * needs inside the layer; backward accumulates into its parameters' gradients. */
#ifndef PNN_LAYER_H
#define PNN_LAYER_H

#include "pnn/backend.h"
#include "pnn/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* How a forward pass runs: physical layers use the device or the twin accordingly; digital
 * layers only care whether a backward will follow (train) or not (eval). */
typedef enum {
    PNN_PASS_TRAIN_PAT,    /* device forward, twin tape for the backward */
    PNN_PASS_TRAIN_TWIN,   /* in-silico: twin forward with tape */
    PNN_PASS_EVAL_DEVICE,  /* device only */
    PNN_PASS_EVAL_TWIN     /* twin only */
} pnn_pass;

static inline int pnn_pass_is_train(pnn_pass p) {
    return p == PNN_PASS_TRAIN_PAT || p == PNN_PASS_TRAIN_TWIN;
}

/* Micro-batches a network keeps between forward and backward at once. */
#define PNN_LAYER_MAX_SLOTS 64

typedef struct pnn_param {
    char name[96];      /* "<layer name>.<param>", the checkpoint key */
    pnn_tensor value;
    pnn_tensor grad;    /* same shape; zeroed by the trainer before each step */
} pnn_param;

typedef struct pnn_layer pnn_layer;

typedef struct pnn_layer_i {
    const char *kind;
    /* Output shape for an input of rows x cols; fails (naming the layer) if the input does not
     * fit, e.g. a linear layer of in=12 given 13 columns. */
    pnn_status (*out_shape)(const pnn_layer *l, int64_t rows, int64_t cols, int64_t *out_rows,
                            int64_t *out_cols);
    /* y is allocated by the caller with the shape out_shape gave. slot (0 <= slot <
     * PNN_LAYER_MAX_SLOTS) names the micro-batch: what backward needs is kept per slot, so
     * several micro-batches can be between their forward and their backward. */
    pnn_status (*forward)(pnn_layer *l, const pnn_tensor *x, pnn_tensor *y, pnn_pass pass, int slot);
    /* dx may be NULL (first layer); x, y are the tensors of the slot's forward. */
    pnn_status (*backward)(pnn_layer *l, const pnn_tensor *x, const pnn_tensor *y,
                           const pnn_tensor *dy, pnn_tensor *dx, int slot);
    /* May be NULL (layers that never wait). A layer that waits on hardware splits its forward so
     * the network can overlap the wait with other work: forward_begin starts it (a device
     * request in flight; x must stay unchanged until the end) and does what it can meanwhile
     * (the twin's taped forward); forward_ready says whether forward_end would not block;
     * forward_end waits and writes y. forward is begin followed by end. forward_abandon waits
     * for anything in flight and discards it (after an error elsewhere). */
    pnn_status (*forward_begin)(pnn_layer *l, const pnn_tensor *x, pnn_pass pass, int slot);
    int (*forward_ready)(pnn_layer *l, int slot);
    pnn_status (*forward_end)(pnn_layer *l, const pnn_tensor *x, pnn_tensor *y, pnn_pass pass, int slot);
    void (*forward_abandon)(pnn_layer *l);
    /* May be NULL: the seconds the slot's last forward_end spent blocked on hardware (what the
     * network reports as waiting); without it the whole forward_end counts, though a layer may
     * compute there too (the noise estimate of a physical layer does). */
    double (*forward_waited)(pnn_layer *l, int slot);
    /* May be NULL: the parameters may have changed (an optimizer step, a checkpoint, a test's
     * poke): drop values derived from them. The network calls it at the start of every pass. */
    void (*params_changed)(pnn_layer *l);
    void (*destroy)(pnn_layer *l);  /* frees impl; the params are freed by pnn_layer_free */
} pnn_layer_i;

struct pnn_layer {
    const pnn_layer_i *iface;
    char name[64];
    const pnn_backend *be;
    pnn_param *params;
    int n_params;
    void *impl;
};

/* Adds a parameter of the given shape to l (value and grad zeroed). */
pnn_status pnn_layer_add_param(pnn_layer *l, const char *pname, int ndim, const int64_t *shape,
                               pnn_param **out);
void pnn_layer_free(pnn_layer *l);
/* Fills a parameter with U(-bound, bound) from the stream named after it, so a value depends
 * only on (seed, parameter name, index) and not on the order layers are built in. */
pnn_status pnn_param_init_uniform(pnn_param *prm, float bound, uint64_t seed);

/* Digital layers (host/layers_digital.c). `name` becomes the checkpoint prefix. Weights are
 * initialised like PyTorch's nn.Linear, U(+-1/sqrt(in)), from (seed, name). */
pnn_status pnn_layer_linear(pnn_layer **out, const pnn_backend *be, const char *name, int64_t in,
                            int64_t out_dim, int bias, uint64_t seed);
pnn_status pnn_layer_activation(pnn_layer **out, const pnn_backend *be, const char *name, pnn_act act);
/* y = a * x with one trainable scalar a (initial value given) */
pnn_status pnn_layer_scale(pnn_layer **out, const pnn_backend *be, const char *name, float init);
/* [b, h*w] -> [b*(h/ph)*(w/pw), ph*pw] */
pnn_status pnn_layer_patchify(pnn_layer **out, const pnn_backend *be, const char *name, int64_t h,
                              int64_t w, int64_t ph, int64_t pw);
/* [r, c] -> [r/group, c*group]: concatenates the outputs of `group` consecutive rows (the P
 * patches of one image) into one row */
pnn_status pnn_layer_concat_rows(pnn_layer **out, const pnn_backend *be, const char *name,
                                 int64_t group);
/* [r, c] -> [r, c + before + after] with constant `value` in the new columns */
pnn_status pnn_layer_pad(pnn_layer **out, const pnn_backend *be, const char *name, int64_t before,
                         int64_t after, float value);
/* The columns a pad layer puts before its input, or -1 for another layer. */
int64_t pnn_layer_pad_before(const pnn_layer *l);
/* [r, c] -> [r, count], columns start..start+count-1 */
pnn_status pnn_layer_slice(pnn_layer **out, const pnn_backend *be, const char *name, int64_t start,
                           int64_t count);
/* Skip connections (a block y = [f(x); x], as physical local learning builds its blocks): skip is
 * the identity that keeps its input; a later concat_skip given that skip layer appends the kept
 * columns to its own input ([r, c] -> [r, c + skip's columns]); gradients flow both ways. The
 * layers between them must keep the rows. */
pnn_status pnn_layer_skip(pnn_layer **out, const pnn_backend *be, const char *name);
int pnn_layer_is_skip(const pnn_layer *l);
pnn_status pnn_layer_concat_skip(pnn_layer **out, const pnn_backend *be, const char *name, pnn_layer *skip);
/* Each row to unit L2 norm: y = x / (|x| + 1e-6), or |x| / (|x| + 1e-6) elementwise with abs_first
 * (an amplitude encoding, as PhyLL's acoustic system takes its input). */
pnn_status pnn_layer_normalize(pnn_layer **out, const pnn_backend *be, const char *name, int abs_first);
/* 2-D convolution (host/layer_conv2d.c), like PyTorch's Conv2d: rows are samples, columns an
 * image [in_c, in_h, in_w] flattened NCHW; the output is [out_c, oh, ow] flattened, with
 * oh = (in_h + 2 pad - kh) / stride + 1 (ow alike). Parameters "<name>.weight"
 * [out_c, in_c, kh, kw] and, when bias, "<name>.bias" [out_c], both U(+-1/sqrt(in_c kh kw)) from
 * (seed, name). */
pnn_status pnn_layer_conv2d(pnn_layer **out, const pnn_backend *be, const char *name, int64_t in_c,
                            int64_t in_h, int64_t in_w, int64_t out_c, int64_t kh, int64_t kw,
                            int64_t stride, int64_t pad, int bias, uint64_t seed);
/* The output image [c, h, w] of a conv2d layer (what a following conv2d takes as its input). */
pnn_status pnn_layer_conv2d_out_image(const pnn_layer *l, int64_t *c, int64_t *h, int64_t *w);

/* A physical layer (host/layer_physical.c): the device opened from device_uri, its twin of kind
 * twin_kind, the controls theta (one parameter per theta part of the device, e.g. "C" and "e"),
 * and the encoding: an input of c <= x_dim columns fills the first c inputs of the device (the
 * rest are 0); the layer's output is `outputs` of the device's y: "all", "last:K" or "first:K".
 * A batch of rows (e.g. B images x P patches) goes through the device in one call, with theta
 * shared. theta is initialised by the twin from (seed, name). twin_noise is the input noise the
 * twin models in training (< 0: the device's nominal noise; see pnn_twin_create). */
typedef struct pnn_device pnn_device;
typedef struct pnn_twin pnn_twin;
pnn_status pnn_layer_physical(pnn_layer **out, const pnn_backend *be, const char *name,
                              const char *device_uri, const char *twin_kind, double twin_noise,
                              const char *outputs, uint64_t seed);
/* The same with the twin given by a config node (pnn_twin_create_cfg): a kind, or a map
 * {kind: learned, path: FILE, refine: {...}}; and with n_uris >= 1 copies of the device
 * (variation-aware training): the same system and interface, each with its own hidden
 * differences. PAT forwards go to the copies in turn (round-robin, one per forward); evaluation
 * and everything that asks for "the device" use the first. */
typedef struct pnn_cfg pnn_cfg;
#define PNN_LAYER_MAX_COPIES 64
pnn_status pnn_layer_physical_cfg(pnn_layer **out, const pnn_backend *be, const char *name, const char *const *uris,
                                  int n_uris, const pnn_cfg *twin, double twin_noise, const char *outputs,
                                  uint64_t seed);
/* Device copies: how many (1 without copies, 0 for another layer), and the counters a
 * checkpoint keeps for them beyond the first copy's: the round-robin position, then each further
 * copy's call count (none without copies). */
int pnn_layer_physical_n_copies(const pnn_layer *l);
/* Copy i (0 <= i < n_copies; copy 0 is pnn_layer_physical_device), or NULL. */
pnn_device *pnn_layer_physical_copy(const pnn_layer *l, int i);
int pnn_layer_physical_copy_counters(pnn_layer *l, uint64_t **counters, int max);
/* twin_noise: estimate: the input noise estimated at the last PAT forward (its last slot), NULL
 * for any other layer or setting. */
const pnn_tensor *pnn_layer_physical_noise_estimate(const pnn_layer *l);
/* The twin's call counter (a random-stream counter a checkpoint keeps), or, for a layer without a
 * twin (twin: none), a counter of its own that stays 0; NULL for any other layer. */
uint64_t *pnn_layer_physical_twin_calls(pnn_layer *l);
/* The device and the twin of a physical layer; NULL for any other layer (the twin also NULL with
 * twin: none). */
pnn_device *pnn_layer_physical_device(const pnn_layer *l);
pnn_twin *pnn_layer_physical_twin(const pnn_layer *l);

#ifdef __cplusplus
}
#endif
#endif
