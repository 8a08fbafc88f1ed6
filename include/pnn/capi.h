/* A flat C API for foreign-function interfaces (the Python package's ctypes layer, python/pnn/_lib.py;
 * Julia, MATLAB, ...): opaque handles, plain numbers and row-major float32 host arrays only, no
 * structs to mirror. It calls the same functions as the command line: no second implementation.
 * Every call returns a pnn_status; on failure pnn_last_error() (thread-local) has the message.
 * Devices and twins made here live on the CPU backend; arrays are read and written in place
 * (zero-copy). Callback devices and twins: pnn/callback.h. */
#ifndef PNN_CAPI_H
#define PNN_CAPI_H

#include <stddef.h>
#include <stdint.h>

#include "pnn/device.h"
#include "pnn/status.h"
#include "pnn/twin.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Bumped when a signature below changes. */
#define PNN_CAPI_VERSION 2
int pnn_capi_version(void);

/* ---- devices ---- */
pnn_status pnn_capi_device_open(const char *uri, pnn_device **out);
/* dims: x_dim, y_dim, theta_dim, max_batch; ranges: x lo, x hi, theta lo, theta hi; the system's
 * name and the URI a twin reads (cap bytes each). */
pnn_status pnn_capi_device_info(const pnn_device *dev, int64_t dims[4], float ranges[4], char *system,
                                char *system_uri, size_t cap);
/* y [rows, y_dim] = the device at x [rows, x_dim], theta [theta_dim], through its queue (retries
 * by its retry policy; NaN or Inf in y is a device fault). */
pnn_status pnn_capi_device_forward(pnn_device *dev, int64_t rows, const float *x, const float *theta, float *y);
/* The same, asynchronously: *req is the request in flight; x, theta and y must stay valid and
 * unchanged until it completes. pnn_capi_device_wait returns its result and frees it, or, when
 * timeout_ms (>= 0) passed first or a stop was requested, sets *pending and leaves it in flight
 * (wait again). Every request is waited for until it completes. */
pnn_status pnn_capi_device_submit(pnn_device *dev, int64_t rows, const float *x, const float *theta, float *y,
                                  void **req);
pnn_status pnn_capi_device_wait(pnn_device *dev, void *req, int timeout_ms, int *pending);
int pnn_capi_device_ready(pnn_device *dev, void *req);
pnn_status pnn_capi_device_set_retry(pnn_device *dev, int retries, double backoff_ms);
/* counts: calls (successful), attempts, faults, retries; busy_s: time inside its calls. */
void pnn_capi_device_counters(const pnn_device *dev, uint64_t counts[4], double *busy_s);
/* Sets the call counter (a simulator draws its noise from it): to replay a run's calls. */
void pnn_capi_device_set_calls(pnn_device *dev, uint64_t calls);

/* ---- twins ---- */
/* kind: "analytic", "learned:FILE", "residual:FILE", "callback:NAME"; noise: the twin's modelled
 * noise (< 0: the device's nominal level). */
pnn_status pnn_capi_twin_create(pnn_device *dev, const char *kind, double noise, pnn_twin **out);
/* slot -1: evaluation forward; 0 .. PNN_TWIN_MAX_SLOTS-1: a training forward taped under slot. */
pnn_status pnn_capi_twin_forward(pnn_twin *tw, int64_t rows, const float *x, const float *theta, float *y, int slot);
/* dx (NULL: not wanted) = J_x^T dy; dtheta = J_theta^T dy (overwritten, not accumulated). */
pnn_status pnn_capi_twin_vjp(pnn_twin *tw, int64_t rows, const float *theta, const float *dy, float *dx,
                             float *dtheta, int slot);
/* theta's start as a network's layer called `name` would get it with this seed. */
pnn_status pnn_capi_twin_init_theta(pnn_twin *tw, uint64_t seed, const char *name, float *theta);

/* ---- training and evaluation ---- */
/* After each step (phase "train"), before each evaluation ("eval") and after it ("epoch_done",
 * with the test accuracies on the device and the twin; nan where not evaluated). */
typedef void (*pnn_capi_progress_fn)(void *user, const char *phase, int64_t epoch, int64_t epochs, int64_t step,
                                     int64_t steps, int64_t global_step, double loss, double acc, double elapsed_s,
                                     double test_acc_device, double test_acc_twin);
/* Trains as `pnn train` does: the config from a file (config_path) or from YAML/JSON text
 * (config_text, relative paths resolved against the working directory), sets "key=value"
 * overrides, into run_dir (resume: continue the run there). Stops after the current step when
 * pnn_capi_request_stop is called (*interrupted = 1, the state saved). On a failure after the run
 * started, the state after the last completed step is saved in run_dir for resume, as the command
 * line does. final: test_acc_device, test_acc_twin, test_loss_device, test_acc_device_batchmean,
 * test_loss_twin, train_s (the keys of the final line). */
pnn_status pnn_capi_train(const char *config_path, const char *config_text, const char *const *sets, int n_sets,
                          const char *run_dir, int resume, pnn_capi_progress_fn progress, void *user,
                          int *interrupted, double final[6]);
void pnn_capi_request_stop(void);
/* As `pnn eval` (pnn_evaluate_checkpoint); final as above, train_s 0. */
pnn_status pnn_capi_evaluate(const char *checkpoint, const char *const *sets, int n_sets, const char *const *devices,
                             int n_devices, int trust, double final[6]);

/* ---- safetensors (checkpoints) ---- */
typedef struct pnn_safetensors pnn_safetensors;
pnn_status pnn_capi_st_read(const char *path, pnn_safetensors **out);
int pnn_capi_st_count(const pnn_safetensors *st);
/* Entry i: its name, ndim and shape (up to 4) and data (host floats, valid until freed). */
pnn_status pnn_capi_st_entry(const pnn_safetensors *st, int i, const char **name, int *ndim, int64_t shape[4],
                             const float **data);
/* Metadata: the number of keys, and key i with its value. */
int pnn_capi_st_meta_count(const pnn_safetensors *st);
pnn_status pnn_capi_st_meta_at(const pnn_safetensors *st, int i, const char **key, const char **value);
void pnn_capi_st_free(pnn_safetensors *st);
/* Writes n tensors (names[i], ndims[i], shapes[4 i ..], datas[i]) and n_meta metadata pairs,
 * atomically. */
pnn_status pnn_capi_st_write(const char *path, int n, const char *const *names, const int *ndims,
                             const int64_t *shapes, const float *const *datas, int n_meta, const char *const *keys,
                             const char *const *values);

#ifdef __cplusplus
}
#endif
#endif
