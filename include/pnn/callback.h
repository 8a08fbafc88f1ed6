/* Devices and twins whose work is a function of the host program: a lab's instrument driver or
 * digital model in Python (the pnn package registers them through this interface; docs/python.md),
 * or any other language that can hand C a function pointer.
 *
 * A function registered under NAME is opened as the device "callback:NAME" (anywhere a device URI
 * goes: a config's `device:`, pnn_device_open) and used as the twin `twin: callback:NAME`. It
 * runs behind the same queue as every device (submit/wait, retries, timing, the NaN check), on
 * host memory: with another backend the bridge copies. A function returns 0 on success; 1 for a
 * device fault (the queue retries it: a glitch of the instrument) and 2 for an error (the call
 * fails at once), with a message in err (cap bytes). It may be called from a worker thread, and,
 * when one name is opened as several devices (copies: callback:NAME twice), from several at once
 * with the same user pointer.
 *
 * The registry is process-wide; a name stays registered until unregistered, which is refused
 * while a device or twin opened from it is open. */
#ifndef PNN_CALLBACK_H
#define PNN_CALLBACK_H

#include <stddef.h>
#include <stdint.h>

#include "pnn/device.h"

#ifdef __cplusplus
extern "C" {
#endif

#define PNN_CALLBACK_OK 0
#define PNN_CALLBACK_FAULT 1
#define PNN_CALLBACK_ERROR 2

/* y [rows, y_dim] = f(x [rows, x_dim], theta [theta_dim]), all row-major float32. */
typedef int (*pnn_callback_forward_fn)(void *user, int64_t rows, const float *x, const float *theta, float *y,
                                       char *err, size_t cap);

typedef struct pnn_callback_device_spec {
    /* what the device reports: its system's name ("callback" when empty) and, when it stands for
     * one of pnn's systems, that system's URI (e.g. "sim:oscillator?n=100"), which lets `twin:
     * analytic` model it */
    char system[32];
    char system_uri[1024];
    int64_t x_dim, y_dim, theta_dim, max_batch; /* max_batch 0: no limit of its own */
    float x_range[2], theta_range[2];           /* both 0: [-1, 1] */
    pnn_callback_forward_fn forward;
    void *user;
} pnn_callback_device_spec;

/* y [rows, y_dim] = f_m(x, theta). slot >= 0: a training forward that keeps what vjp needs
 * under that slot (0 <= slot < PNN_TWIN_MAX_SLOTS); -1: an evaluation forward. */
typedef int (*pnn_callback_twin_forward_fn)(void *user, int64_t rows, const float *x, const float *theta, float *y,
                                            int slot, char *err, size_t cap);
/* At the slot's taped forward: dx [rows, x_dim] = J_x^T dy (dx NULL: not wanted), dtheta
 * [theta_dim] += J_theta^T dy. */
typedef int (*pnn_callback_twin_vjp_fn)(void *user, int64_t rows, const float *theta, const float *dy, float *dx,
                                        float *dtheta, int slot, char *err, size_t cap);

typedef struct pnn_callback_twin_spec {
    int64_t x_dim, y_dim, theta_dim; /* checked against the device the twin is made for */
    pnn_callback_twin_forward_fn forward;
    pnn_callback_twin_vjp_fn vjp;
    void *user;
} pnn_callback_twin_spec;

/* Registers under name (letters, digits, '_', '-', '.'; at most 63 bytes); PNN_ERR_INVALID when
 * the name is taken or malformed, or the spec's dims or ranges are not those of a device. */
pnn_status pnn_callback_device_register(const char *name, const pnn_callback_device_spec *spec);
pnn_status pnn_callback_twin_register(const char *name, const pnn_callback_twin_spec *spec);
/* PNN_ERR_INVALID while devices or twins opened from it are open; PNN_ERR_NOT_FOUND if unknown. */
pnn_status pnn_callback_unregister(const char *name);

/* For hwbridge/device.c ("callback:NAME") and the twin kind callback (host/twins/callback.c):
 * open the device; take a registered twin's spec (counted as open until released). */
pnn_status pnn_callback_device_open(const char *uri, const pnn_backend *be, pnn_device **out);
pnn_status pnn_callback_twin_acquire(const char *name, pnn_callback_twin_spec *out);
void pnn_callback_release(const char *name);

#ifdef __cplusplus
}
#endif
#endif
