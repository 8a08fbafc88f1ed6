/* Twins: differentiable models f_m(x, theta) of physical systems. forward can save a tape;
 * vjp takes the gradient of the output and returns the gradients of x and theta at the taped
 * point. In physics-aware training the forward runs at the same (x, theta) as the device, and
 * only the tape is used: the measured output is what goes on. */
#ifndef PNN_TWIN_H
#define PNN_TWIN_H

#include "pnn/device.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct pnn_twin pnn_twin;

/* Tapes a twin keeps at once: one per micro-batch in flight in a pipelined step. */
#define PNN_TWIN_MAX_SLOTS 64

typedef struct pnn_twin_i {
    /* y [b, y_dim] = f_m(x [b, x_dim], theta). tape_slot in [0, PNN_TWIN_MAX_SLOTS) makes a
     * training forward that keeps what vjp needs under that slot; -1 an evaluation forward.
     * input_noise (may be NULL; [b, x_dim]) is added to x instead of the twin's own modelled
     * noise draw (the oracle setting). */
    pnn_status (*forward)(pnn_twin *tw, const pnn_tensor *x, const float *theta, pnn_tensor *y,
                          int tape_slot, const float *input_noise);
    /* At the tape of slot: dx [b, x_dim] = J_x^T dy (may be NULL); dtheta [theta_dim] +=
     * J_theta^T dy. theta must not have changed since the taped forward. Forward uses values
     * derived from theta at the last forward unless theta_stale is set (see below). */
    pnn_status (*vjp)(pnn_twin *tw, const float *theta, const pnn_tensor *dy, pnn_tensor *dx,
                      float *dtheta, int tape_slot);
    /* Initial theta (theta_dim floats, backend memory), drawn from (seed, stream). */
    pnn_status (*init_theta)(pnn_twin *tw, uint64_t seed, uint64_t stream, float *theta);
    void (*free)(pnn_twin *tw);
    /* The rest may be NULL (a twin that learns nothing during training). observe: the device's
     * answer y [b, y_dim] at x [b, x_dim] and theta in a PAT training pass (a learned twin keeps
     * it to refine itself on). state: the i-th tensor of what the twin learned during training
     * (NULL past the last), named (stable, unique within the twin), for checkpoints; after they
     * were written into, state_loaded. */
    pnn_status (*observe)(pnn_twin *tw, const pnn_tensor *x, const float *theta, const pnn_tensor *y);
    pnn_tensor *(*state)(pnn_twin *tw, int i, const char **name);
    pnn_status (*state_loaded)(pnn_twin *tw);
} pnn_twin_i;

struct pnn_twin {
    const pnn_twin_i *iface;
    pnn_device_info info;  /* the dims of the system it models */
    const pnn_backend *be;
    /* taped forwards so far: a twin that models the device's known input noise draws it from
     * (seed, call index), so resume restores this counter like the device's */
    uint64_t calls;
    /* Values derived from theta (the oscillator's Q) are rebuilt at the next forward when set;
     * whoever changes theta sets it (pnn_twin_theta_changed), so the micro-batches of one step
     * build them once. */
    int theta_stale;
    void *impl;
};

static inline void pnn_twin_theta_changed(pnn_twin *tw) { tw->theta_stale = 1; }

/* For a twin kind's constructor: a twin of dev (its info and backend) with iface and impl_size
 * zeroed bytes of impl, theta marked stale; what names it in the out-of-memory message. */
pnn_status pnn_twin_new(pnn_device *dev, const pnn_twin_i *iface, size_t impl_size, const char *what, pnn_twin **out);

/* The twin of a device: kind "analytic" is the ideal physics of the device's system, with the
 * integration settings of the device URI (n, nt, dt) but none of its hidden differences.
 * noise < 0 takes the device's nominal input noise (its URI's `noise`, which a lab measures);
 * taped (training) forwards add input noise of that size from the twin's own random stream
 * (the device's actual draws stay unseen), so gradients account for the noise the device has;
 * untaped (evaluation) forwards are noise-free. noise == PNN_TWIN_NOISE_ORACLE models none: the
 * caller passes the simulator's own draw of the same call as input_noise (a simulation-only
 * oracle, to compare with reference code that feeds the same noise to both; no instrument
 * allows it). */
#define PNN_TWIN_NOISE_ORACLE (-2.0)
/* twin_noise: estimate (host/layer_physical.c): what a lab can do instead of the oracle. In PAT
 * the physical layer estimates the input noise the device had from its measured output
 * (steepest-descent steps on |f(x + n) - y_device|^2 through the twin, each with its exact
 * line-search length from a finite-difference JVP) and tapes the twin there, passing it as
 * input_noise. A kind created with this value models the nominal noise otherwise (in silico
 * passes), as for noise < 0, and refuses it when it cannot take input_noise. */
#define PNN_TWIN_NOISE_ESTIMATE (-3.0)
pnn_status pnn_twin_create(const char *kind, pnn_device *dev, double noise, pnn_twin **out);
/* The same from a config node: a kind ("analytic") or a map {kind: K, path: FILE, ...} whose other
 * keys the kind reads (learned: fit, refine; docs/architecture.md, "Learned twins"). */
typedef struct pnn_cfg pnn_cfg;
pnn_status pnn_twin_create_cfg(const pnn_cfg *spec, pnn_device *dev, double noise, pnn_twin **out);
/* The known kinds, "analytic, learned, ..." (a static string). */
const char *pnn_twin_kind_names(void);
void pnn_twin_free(pnn_twin *tw);
/* The controls' start for a device without a twin of its own (twin: none, a callback twin): where
 * its system's analytic twin would start them when pnn has one (the same values as with that
 * twin), else uniform in the device's theta_range cut to [-1, 1]; drawn from (seed, stream). */
pnn_status pnn_theta_default_init(pnn_device *dev, const pnn_backend *be, uint64_t seed, uint64_t stream,
                                  float *theta);

#ifdef __cplusplus
}
#endif
#endif
