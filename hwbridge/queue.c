/* The asynchronous device API: one worker thread per device runs submitted requests in order,
 * splitting those over max_batch into several calls and retrying retryable failures with
 * backoff, while the caller goes on with other work and collects results by ticket. */
#include <errno.h>
#include <omp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pnn/clock.h"
#include "pnn/device.h"

#define QUEUE_CAP 256 /* requests in flight per device */

typedef enum { ENTRY_FREE, ENTRY_QUEUED, ENTRY_DONE } entry_state;

typedef struct queue_entry {
    pnn_ticket ticket;
    entry_state state;
    double due;          /* eager devices: when the simulated call ends (monotonic seconds) */
    /* worker devices on a backend with streams (CUDA): x and theta are written when `inputs`
     * (recorded by the submitter) is reached, y when `outputs` (recorded by the worker) is */
    void *inputs, *outputs;
    pnn_request req;
    pnn_status status;
    uint64_t first_call;
    char message[512];
} queue_entry;

struct pnn_device_queue {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t work, done;
    int stop;
    pnn_ticket next_ticket;  /* the ticket the next submit gets */
    pnn_ticket next_run;     /* the ticket the worker runs next */
    queue_entry entries[QUEUE_CAP];
    pnn_retry_policy retry;
    double wait_s;
    int has_thread;
    double busy_until;   /* eager devices: when the last submitted call ends */
};

/* Backoff before retry k (0-based): base_ms doubled k times, but no more than
 * max(base_ms, PNN_BACKOFF_CAP_MS), so many retries never overflow or wait for hours. */
double pnn_retry_backoff_ms(double base_ms, int k) {
    double cap = base_ms > PNN_BACKOFF_CAP_MS ? base_ms : PNN_BACKOFF_CAP_MS, b = base_ms;
    for (int i = 0; i < k && b < cap; i++) b *= 2;
    return b < cap ? b : cap;
}

/* Runs rows [r0, r0 + rows) of a request as one device call, with retries. deferred (may be
 * NULL: slept) accumulates the simulated time and backoff an eager device leaves to the waiter. */
static pnn_status run_chunk(pnn_device *dev, const pnn_request *req, int64_t r0, int64_t rows,
                            const pnn_retry_policy *retry, double *deferred) {
    pnn_tensor xv, yv;
    int64_t xs[2] = {rows, dev->info.x_dim}, ys[2] = {rows, dev->info.y_dim};
    PNN_TRY(pnn_tensor_view(&xv, dev->be, req->x->data + r0 * dev->info.x_dim, 2, xs));
    PNN_TRY(pnn_tensor_view(&yv, dev->be, req->y->data + r0 * dev->info.y_dim, 2, ys));
    for (int attempt = 0;; attempt++) {
        double sim_s = 0;
        pnn_status st = pnn_device_attempt(dev, &xv, req->theta, &yv, deferred ? &sim_s : NULL);
        if (deferred) *deferred += sim_s;
        if (st == PNN_OK || !pnn_status_retryable(st)) return st;
        if (attempt >= retry->retries)
            return pnn_error_prefix(st, dev->last_output_invalid
                                            ? "device %s gave no valid output: %d attempts failed, the last with: "
                                            : "device %s is down: %d attempts failed, the last with: ",
                                    dev->info.uri, attempt + 1);
        dev->retries++;
        double backoff_ms = pnn_retry_backoff_ms(retry->backoff_ms, attempt);
        if (deferred) {
            *deferred += backoff_ms * 1e-3;
        } else {
            char failed[512];
            snprintf(failed, sizeof failed, "%s", pnn_last_error());
            pnn_status slept = pnn_sleep_s(backoff_ms * 1e-3);
            if (slept != PNN_OK)
                return PNN_ERROR(slept, "device %s: %s before retry %d (the attempt before failed with: %s)",
                                 dev->info.uri, pnn_last_error(), attempt + 1, failed);
        }
    }
}

static pnn_status run_request(pnn_device *dev, const pnn_request *req, const pnn_retry_policy *retry,
                              double *deferred) {
    int64_t b = pnn_tensor_rows(req->x), mb = dev->info.max_batch;
    if (pnn_tensor_cols(req->x) != dev->info.x_dim || pnn_tensor_rows(req->y) != b ||
        pnn_tensor_cols(req->y) != dev->info.y_dim)
        return PNN_ERROR(PNN_ERR_INVALID, "device %s: request of x %lld x %lld and y %lld x %lld, expected b x %lld "
                         "and b x %lld",
                         dev->info.uri, (long long)b, (long long)pnn_tensor_cols(req->x),
                         (long long)pnn_tensor_rows(req->y), (long long)pnn_tensor_cols(req->y),
                         (long long)dev->info.x_dim, (long long)dev->info.y_dim);
    for (int64_t r0 = 0; r0 < b; r0 += mb) PNN_TRY(run_chunk(dev, req, r0, b - r0 < mb ? b - r0 : mb, retry, deferred));
    return PNN_OK;
}

static void *worker_main(void *arg) {
    pnn_device *dev = arg;
    pnn_device_queue *q = dev->queue;
    if (dev->worker_threads > 0) omp_set_num_threads(dev->worker_threads); /* this thread's own setting */
    pthread_mutex_lock(&q->mu);
    for (;;) {
        while (!q->stop && q->next_run == q->next_ticket) pthread_cond_wait(&q->work, &q->mu);
        if (q->next_run == q->next_ticket) break; /* stopping with nothing left */
        queue_entry *e = &q->entries[q->next_run % QUEUE_CAP];
        pnn_request req = e->req;
        pnn_retry_policy retry = q->retry;
        void *inputs = e->inputs;
        pthread_mutex_unlock(&q->mu);

        const pnn_backend_i *bi = dev->be->iface;
        if (inputs) {
            bi->event_wait(dev->be->ctx, inputs);
            bi->event_free(dev->be->ctx, inputs);
        }
        uint64_t first_call = dev->calls;
        pnn_status st = run_request(dev, &req, &retry, NULL);
        void *outputs = st == PNN_OK && bi->event_record ? bi->event_record(dev->be->ctx) : NULL;

        pthread_mutex_lock(&q->mu);
        e->inputs = NULL;
        e->outputs = outputs;
        e->status = st;
        e->first_call = first_call;
        snprintf(e->message, sizeof e->message, "%s", st == PNN_OK ? "" : pnn_last_error());
        e->state = ENTRY_DONE;
        q->next_run++;
        pthread_cond_broadcast(&q->done);
    }
    pthread_mutex_unlock(&q->mu);
    return NULL;
}

static pnn_status queue_start(pnn_device *dev) {
    pnn_device_queue *q = calloc(1, sizeof *q);
    if (!q) return PNN_ERROR(PNN_ERR_NOMEM, "out of memory starting the worker of device %s", dev->info.uri);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&q->mu, NULL);
    pthread_cond_init(&q->work, NULL);
    pthread_cond_init(&q->done, &ca);
    pthread_condattr_destroy(&ca);
    q->retry = (pnn_retry_policy){3, 10.0};
    dev->queue = q;
    if (dev->eager) return PNN_OK; /* calls run in the submitting thread */
    int err = pthread_create(&q->thread, NULL, worker_main, dev);
    if (err) {
        dev->queue = NULL;
        pthread_mutex_destroy(&q->mu);
        pthread_cond_destroy(&q->work);
        pthread_cond_destroy(&q->done);
        free(q);
        return PNN_ERROR(PNN_ERR_NOMEM, "cannot start the worker thread of device %s: %s", dev->info.uri,
                         strerror(err));
    }
    q->has_thread = 1;
    return PNN_OK;
}

void pnn_device_queue_free(pnn_device *dev) {
    if (!dev->queue) return;
    pnn_device_queue *q = dev->queue;
    pthread_mutex_lock(&q->mu);
    q->stop = 1;
    pthread_cond_broadcast(&q->work);
    pthread_mutex_unlock(&q->mu);
    if (q->has_thread) pthread_join(q->thread, NULL);
    /* events of requests nobody waited for */
    for (int i = 0; i < QUEUE_CAP; i++) {
        void *events[2] = {q->entries[i].inputs, q->entries[i].outputs};
        for (int k = 0; k < 2; k++)
            if (events[k]) dev->be->iface->event_free(dev->be->ctx, events[k]);
    }
    pthread_mutex_destroy(&q->mu);
    pthread_cond_destroy(&q->work);
    pthread_cond_destroy(&q->done);
    free(q);
    dev->queue = NULL;
}

pnn_status pnn_device_set_retry(pnn_device *dev, const pnn_retry_policy *policy) {
    if (policy->retries < 0 || policy->backoff_ms < 0)
        return PNN_ERROR(PNN_ERR_INVALID, "device %s: retries and backoff must not be negative", dev->info.uri);
    if (!dev->queue) PNN_TRY(queue_start(dev));
    pthread_mutex_lock(&dev->queue->mu);
    dev->queue->retry = *policy;
    pthread_mutex_unlock(&dev->queue->mu);
    return PNN_OK;
}

pnn_status pnn_device_submit(pnn_device *dev, const pnn_request *req, pnn_ticket *ticket) {
    if (!dev->queue) PNN_TRY(queue_start(dev));
    /* x and theta were written by this thread's backend ops: on a GPU, in this thread's stream,
     * which the worker's stream waits for through an event (no full sync) */
    const pnn_backend_i *bi = dev->be->iface;
    void *inputs = !dev->eager && bi->event_record ? bi->event_record(dev->be->ctx) : NULL;
    pnn_device_queue *q = dev->queue;
    pthread_mutex_lock(&q->mu);
    queue_entry *e = &q->entries[q->next_ticket % QUEUE_CAP];
    if (e->state != ENTRY_FREE) {
        pthread_mutex_unlock(&q->mu);
        if (inputs) bi->event_free(dev->be->ctx, inputs);
        return PNN_ERROR(PNN_ERR_INVALID, "device %s: more than %d requests in flight; wait for some first",
                         dev->info.uri, QUEUE_CAP);
    }
    memset(e, 0, sizeof *e);
    e->ticket = q->next_ticket;
    e->inputs = inputs;
    e->req = *req;
    *ticket = q->next_ticket++;
    if (!dev->eager) {
        e->state = ENTRY_QUEUED;
        pthread_cond_signal(&q->work);
        pthread_mutex_unlock(&q->mu);
        return PNN_OK;
    }
    /* eager: compute now; the call ends when the device, busy with the calls before it, would
     * have finished it: max(compute, simulated time) after it could start */
    pthread_mutex_unlock(&q->mu);
    double t0 = pnn_now_s(), deferred = 0;
    e->first_call = dev->calls;
    e->status = run_request(dev, req, &q->retry, &deferred);
    snprintf(e->message, sizeof e->message, "%s", e->status == PNN_OK ? "" : pnn_last_error());
    double start = q->busy_until > t0 ? q->busy_until : t0;
    e->due = start + (pnn_now_s() - t0) + deferred;
    q->busy_until = e->due;
    e->state = ENTRY_DONE;
    q->next_run++;
    return PNN_OK;
}

static queue_entry *find_entry(pnn_device_queue *q, pnn_ticket ticket) {
    queue_entry *e = &q->entries[ticket % QUEUE_CAP];
    return e->state != ENTRY_FREE && e->ticket == ticket ? e : NULL;
}

int pnn_device_ready(pnn_device *dev, pnn_ticket ticket) {
    pnn_device_queue *q = dev->queue;
    if (!q) return 0;
    pthread_mutex_lock(&q->mu);
    queue_entry *e = find_entry(q, ticket);
    int ready = e && e->state == ENTRY_DONE && (!dev->eager || pnn_now_s() >= e->due);
    pthread_mutex_unlock(&q->mu);
    return ready;
}

int pnn_device_in_flight(pnn_device *dev, pnn_ticket ticket) {
    pnn_device_queue *q = dev->queue;
    if (!q) return 0;
    pthread_mutex_lock(&q->mu);
    int in = find_entry(q, ticket) != NULL;
    pthread_mutex_unlock(&q->mu);
    return in;
}

pnn_status pnn_device_wait(pnn_device *dev, pnn_ticket ticket, int timeout_ms, uint64_t *first_call) {
    pnn_device_queue *q = dev->queue;
    queue_entry *e = NULL;
    if (q) {
        pthread_mutex_lock(&q->mu);
        e = find_entry(q, ticket);
        pthread_mutex_unlock(&q->mu);
    }
    if (!e)
        return PNN_ERROR(PNN_ERR_INVALID, "device %s: ticket %llu is not in flight (never submitted, or "
                         "already waited for)", dev->info.uri, (unsigned long long)ticket);
    double t0 = pnn_now_s();
    struct timespec deadline;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    if (timeout_ms >= 0) {
        deadline.tv_sec += timeout_ms / 1000;
        deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
        if (deadline.tv_nsec >= 1000000000L) {
            deadline.tv_sec++;
            deadline.tv_nsec -= 1000000000L;
        }
    }
    pthread_mutex_lock(&q->mu);
    int timed_out = 0;
    while (e->state != ENTRY_DONE && !timed_out) {
        if (timeout_ms < 0) pthread_cond_wait(&q->done, &q->mu);
        else timed_out = pthread_cond_timedwait(&q->done, &q->mu, &deadline) == ETIMEDOUT;
    }
    pnn_status slept = PNN_OK;
    if (dev->eager) { /* let the simulated time pass */
        double left = e->due - pnn_now_s();
        if (timeout_ms >= 0 && left > timeout_ms * 1e-3 - (pnn_now_s() - t0)) {
            slept = pnn_sleep_s(timeout_ms * 1e-3 - (pnn_now_s() - t0));
            timed_out = 1;
        } else {
            slept = pnn_sleep_s(left);
        }
    }
    q->wait_s += pnn_now_s() - t0;
    if (slept != PNN_OK) { /* the request stays in flight and may be waited for again */
        pthread_mutex_unlock(&q->mu);
        return pnn_error_prefix(slept, "device %s, request %llu: ", dev->info.uri, (unsigned long long)ticket);
    }
    if (e->state != ENTRY_DONE || timed_out) {
        pthread_mutex_unlock(&q->mu);
        return PNN_ERROR(PNN_ERR_TIMEOUT, "device %s: request %llu not done within %d ms", dev->info.uri,
                         (unsigned long long)ticket, timeout_ms);
    }
    pnn_status st = e->status;
    char message[512];
    snprintf(message, sizeof message, "%s", e->message);
    if (first_call) *first_call = e->first_call;
    void *outputs = e->outputs;
    e->outputs = NULL;
    e->state = ENTRY_FREE;
    pthread_mutex_unlock(&q->mu);
    if (outputs) { /* this thread's later ops read y only once the worker's stream wrote it */
        dev->be->iface->event_wait(dev->be->ctx, outputs);
        dev->be->iface->event_free(dev->be->ctx, outputs);
    }
    if (st != PNN_OK) return PNN_ERROR(st, "%s", message);
    return PNN_OK;
}

double pnn_device_wait_s(const pnn_device *dev) { return dev->queue ? dev->queue->wait_s : 0.0; }
