/* Devices: running instances of physical systems. A device evaluates y = f_p(x, theta) on a
 * batch: a simulator in this process ("sim:oscillator?n=100&seed=7"), a server over the network
 * ("remote:tcp://host:port"), a recording ("replay:FILE"), or any of them recorded
 * ("record:FILE@URI"). Devices are noisy, imperfect and have no gradient; twins (host/) provide
 * the gradient. Calls are synchronous (pnn_device_forward) or asynchronous through a worker
 * thread per device (pnn_device_submit / pnn_device_wait). */
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
    char uri[1024];        /* as opened (pnn_device_open refuses longer URIs) */
    /* the URI whose parameters describe the system (n, nt, dt, noise...), which a twin reads:
     * the URI itself for sim:, the wrapped device's for record:, the recorded one for replay: */
    char system_uri[1024];
    int64_t x_dim, y_dim, theta_dim;
    int64_t max_batch;
    float x_range[2], theta_range[2];
    int n_theta_parts;
    pnn_theta_part theta_parts[PNN_DEVICE_MAX_THETA_PARTS];
} pnn_device_info;

/* What any device may report, whatever it is: a server or a recording header is not trusted to
 * size buffers. x_dim and y_dim up to 2^24 floats per sample, theta up to 2^28 floats (1 GiB). */
#define PNN_DEVICE_MAX_XY_DIM ((int64_t)1 << 24)
#define PNN_DEVICE_MAX_THETA_DIM ((int64_t)1 << 28)

/* Checks info as reported by a device (who: "remote device tcp://...", "recording FILE"): dims
 * in range, theta parts that add up to theta_dim with NUL-terminated names, max_batch >= 1,
 * finite ranges with lo <= hi, NUL-terminated strings. PNN_ERR_FORMAT names the field. */
pnn_status pnn_device_info_check(const pnn_device_info *info, const char *who);

typedef struct pnn_device pnn_device;

typedef struct pnn_device_i {
    /* y [b, y_dim] = f_p(x [b, x_dim], theta [theta_dim]); all backend memory. dev->calls is
     * the index of this call (successful calls before it): a simulator draws its noise from it,
     * so a retried call sees the same noise. */
    pnn_status (*forward)(pnn_device *dev, const pnn_tensor *x, const float *theta, pnn_tensor *y);
    void (*close)(pnn_device *dev);
    /* May be NULL (hardware cannot offer it): the input perturbation a simulator added in its
     * call number `call`, n floats of backend memory — for oracle comparisons only
     * (twin_noise: oracle). */
    pnn_status (*input_noise)(pnn_device *dev, uint64_t call, int64_t n, float *out);
} pnn_device_i;

/* What a simulated device adds to look like a slow, fallible instrument (generic URI keys of
 * every sim: device: latency_ms, jitter_ms, fault_rate, drop_rate, timeout_ms; async and threads,
 * see `eager` below). A call takes
 * max(compute, latency + U(0, jitter)); a fault fails the call (retryable); a drop loses the
 * reply, so the call fails with a timeout after timeout_ms. Faults and jitter are drawn from
 * (seed, attempt index), so a run is reproducible. */
typedef struct pnn_device_timing {
    double latency_ms, jitter_ms, fault_rate, drop_rate, timeout_ms;
    uint64_t seed;
} pnn_device_timing;

typedef struct pnn_device_queue pnn_device_queue;

struct pnn_device {
    const pnn_device_i *iface;
    pnn_device_info info;
    const pnn_backend *be;
    /* successful calls so far: a simulator's noise is drawn from (seed, call index), so a run
     * that restores this counter on resume sees the same noise as one that never stopped */
    uint64_t calls;
    uint64_t attempts;      /* calls tried, failed ones included */
    uint64_t faults;        /* attempts that failed with a device fault or a timeout */
    uint64_t retries;       /* attempts repeated by the queue after a fault */
    double busy_s;          /* wall time spent inside forward, failed attempts included */
    int last_output_invalid; /* the last failed attempt answered, but with NaN or Inf in y */
    pnn_device_timing timing;
    /* OpenMP threads the worker runs the device with (a simulator computing on the CPU beside
     * the backend: its threads compete for the same cores); 0 = the process default */
    int worker_threads;
    /* A simulator that computes on the CPU backend runs its calls in the submitting thread,
     * which then goes on while the simulated time (latency, faults) elapses; in a worker its
     * threads would fight the backend's for the same cores. async=1 in its URI gives it a
     * worker like any other device. */
    int eager;
    pnn_device_queue *queue; /* the asynchronous worker (hwbridge/queue.c), started on first submit */
    char last_error[512];
    void *impl;
};

/* Opens a device from a URI "scheme:system?key=value&...". Unknown schemes, systems or keys are
 * errors that list what is known. The device allocates on backend be. */
pnn_status pnn_device_open(const char *uri, const pnn_backend *be, pnn_device **out);
/* Stops the device's worker (waiting for a request in progress) and closes it. */
void pnn_device_close(pnn_device *dev);
const pnn_device_info *pnn_device_info_get(const pnn_device *dev);
/* One attempt, synchronously: checks shapes, applies the simulated timing and faults, runs
 * forward, rejects NaN or Inf in y (PNN_ERR_DEVICE), counts the call. Retryable failures are
 * PNN_ERR_DEVICE and PNN_ERR_TIMEOUT. Not to be mixed with submitted requests in flight. */
pnn_status pnn_device_forward(pnn_device *dev, const pnn_tensor *x, const float *theta, pnn_tensor *y);
/* The same attempt, except that the simulated time is not slept but returned in *deferred_s
 * (NULL: slept, as pnn_device_forward does); for the queue of an eager device. */
pnn_status pnn_device_attempt(pnn_device *dev, const pnn_tensor *x, const float *theta, pnn_tensor *y,
                              double *deferred_s);
/* The message of the last failure of this device ("" when none). */
const char *pnn_device_last_error(const pnn_device *dev);
static inline int pnn_status_retryable(pnn_status st) {
    return st == PNN_ERR_DEVICE || st == PNN_ERR_TIMEOUT;
}

/* The asynchronous API (hwbridge/queue.c). A request is submitted to the device's worker
 * thread and waited for by its ticket; several may be in flight, and they run in submission
 * order (so a simulator's call indices, hence its noise, do not depend on timing). A request
 * larger than max_batch runs as several device calls. x, theta and y must stay valid and
 * unchanged until the wait returns. */
typedef struct pnn_request {
    const pnn_tensor *x;    /* [b, x_dim] */
    const float *theta;     /* [theta_dim] */
    pnn_tensor *y;          /* [b, y_dim], written */
} pnn_request;

typedef uint64_t pnn_ticket;

typedef struct pnn_retry_policy {
    int retries;            /* further attempts after a retryable failure */
    double backoff_ms;      /* wait before the first retry; doubles each time, up to the cap */
} pnn_retry_policy;

/* The doubling backoff stops at max(backoff_ms, this). */
#define PNN_BACKOFF_CAP_MS 30000.0
/* The wait before retry k (0-based) under that rule. */
double pnn_retry_backoff_ms(double base_ms, int k);

/* Sets how the worker retries failed attempts (default: 3 retries from 10 ms). */
pnn_status pnn_device_set_retry(pnn_device *dev, const pnn_retry_policy *policy);
pnn_status pnn_device_submit(pnn_device *dev, const pnn_request *req, pnn_ticket *ticket);
/* Waits for a ticket: PNN_OK, the request's failure (after its retries), or PNN_ERR_TIMEOUT
 * when timeout_ms (< 0: no limit) passes first, in which case the request stays in flight and
 * may be waited for again. On return the first call index the request used is in *first_call
 * (may be NULL). Each ticket is waited for until it completes, once. */
pnn_status pnn_device_wait(pnn_device *dev, pnn_ticket ticket, int timeout_ms, uint64_t *first_call);
/* 1 when the request is done (its wait would not block). */
int pnn_device_ready(pnn_device *dev, pnn_ticket ticket);
/* 1 while the ticket is submitted and not yet waited for to completion (after a wait that returned
 * PNN_ERR_TIMEOUT, it tells the wait's own deadline, 1, from a request that failed by timing out, 0). */
int pnn_device_in_flight(pnn_device *dev, pnn_ticket ticket);
/* Seconds the caller spent blocked in pnn_device_wait. */
double pnn_device_wait_s(const pnn_device *dev);

/* Device copies: uri with its first {A..B} range expanded (e.g. "sim:oscillator?n=40&seed={2..11}",
 * seeds 2 to 11), recursively, so several ranges multiply; a URI without one is itself. Each
 * result is malloc'ed and appended to list[*n]; at most max in all (PNN_ERR_INVALID past it, or
 * for a malformed range: A and B digits, A <= B). Other braces ({rank}) are left as they are. */
pnn_status pnn_device_uri_expand(const char *uri, char **list, int *n, int max);

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
/* A key whose value is one of choices (a NULL-terminated list): its index, or def when absent;
 * any other value is refused with the list and a "did you mean". */
pnn_status pnn_uri_choice(pnn_uri *u, const char *key, const char *const *choices, int def, int *out);
pnn_status pnn_uri_check_all_used(const pnn_uri *u, const char *known_keys);

/* Recording and replay (hwbridge/record.c): "record:FILE@INNER_URI" and "replay:FILE". */
pnn_status pnn_record_open(const char *uri, const pnn_backend *be, pnn_device **out);
pnn_status pnn_replay_open(const char *uri, const pnn_backend *be, pnn_device **out);
/* Internal to hwbridge: stops and frees a device's queue (pnn_device_close calls it). */
void pnn_device_queue_free(pnn_device *dev);

#ifdef __cplusplus
}
#endif
#endif
