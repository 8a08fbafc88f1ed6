/* Devices: running instances of physical systems. A device evaluates y = f_p(x, theta) on a
 * batch: a simulator in this process ("sim:oscillator?n=100&seed=7"), and later a server over
 * the network ("remote:") or a recording ("replay:"). Devices are noisy, imperfect and have no
 * gradient; twins (host/) provide the gradient. */
#ifndef PNN_DEVICE_H
#define PNN_DEVICE_H

#include <stdint.h>

#include "pnn/backend.h"
#include "pnn/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

#define PNN_DEVICE_MAX_THETA_PARTS 4

/* One named block of theta (the controls), e.g. the coupling matrix C [n, n]. theta is passed
 * to the device as the concatenation of its parts, in order. */
typedef struct pnn_theta_part {
    char name[16];
    int ndim;
    int64_t shape[2];
} pnn_theta_part;

typedef struct pnn_device_info {
    char system[32];       /* "oscillator" */
    char uri[256];         /* as opened */
    int64_t x_dim, y_dim, theta_dim;
    int64_t max_batch;
    float x_range[2], theta_range[2];
    int n_theta_parts;
    pnn_theta_part theta_parts[PNN_DEVICE_MAX_THETA_PARTS];
} pnn_device_info;

typedef struct pnn_device pnn_device;

typedef struct pnn_device_i {
    /* y [b, y_dim] = f_p(x [b, x_dim], theta [theta_dim]); all backend memory */
    pnn_status (*forward)(pnn_device *dev, const pnn_tensor *x, const float *theta, pnn_tensor *y);
    void (*close)(pnn_device *dev);
    /* May be NULL (hardware cannot offer it): a simulator's input perturbation of its last
     * call, n floats of backend memory — for oracle comparisons only (twin_noise: oracle). */
    pnn_status (*last_input_noise)(pnn_device *dev, int64_t n, float *out);
} pnn_device_i;

struct pnn_device {
    const pnn_device_i *iface;
    pnn_device_info info;
    const pnn_backend *be;
    /* calls so far: a simulator's noise is drawn from (seed, call index), so a run that
     * restores this counter on resume sees the same noise as one that never stopped */
    uint64_t calls;
    double busy_s;          /* wall time spent inside forward */
    char last_error[512];
    void *impl;
};

/* Opens a device from a URI "scheme:system?key=value&...". Unknown schemes, systems or keys are
 * errors that list what is known. The device allocates on backend be. */
pnn_status pnn_device_open(const char *uri, const pnn_backend *be, pnn_device **out);
void pnn_device_close(pnn_device *dev);
const pnn_device_info *pnn_device_info_get(const pnn_device *dev);
/* Checks shapes, runs forward, rejects NaN or Inf in y (PNN_ERR_DEVICE), counts the call. */
pnn_status pnn_device_forward(pnn_device *dev, const pnn_tensor *x, const float *theta, pnn_tensor *y);
/* The message of the last failure of this device ("" when none). */
const char *pnn_device_last_error(const pnn_device *dev);

/* URI query parameters, for device constructors: each get marks its key as used, and
 * pnn_uri_check_all_used names any key nobody asked for. */
typedef struct pnn_uri {
    char scheme[16];
    char system[32];
    int n;
    char keys[32][32];
    char values[32][96];
    int used[32];
} pnn_uri;

pnn_status pnn_uri_parse(const char *uri, pnn_uri *out);
pnn_status pnn_uri_double(pnn_uri *u, const char *key, double def, double min, double max, double *out);
pnn_status pnn_uri_int(pnn_uri *u, const char *key, int64_t def, int64_t min, int64_t max, int64_t *out);
pnn_status pnn_uri_check_all_used(const pnn_uri *u, const char *known_keys);

/* Simulators (hwbridge/sim). */
pnn_status pnn_sim_oscillator_open(pnn_uri *u, const char *uri, const pnn_backend *be, pnn_device **out);

#ifdef __cplusplus
}
#endif
#endif
