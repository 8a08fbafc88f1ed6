/* The flat C API for foreign-function interfaces (include/pnn/capi.h): thin wrappers over the
 * library's own calls, so that Python (python/pnn/_lib.py) runs exactly what the command line runs. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pnn/capi.h"
#include "pnn/rng.h"
#include "pnn/safetensors.h"
#include "pnn/train.h"

int pnn_capi_version(void) { return PNN_CAPI_VERSION; }

/* ---- devices ---- */

pnn_status pnn_capi_device_open(const char *uri, pnn_device **out) {
    if (!uri) return PNN_ERROR(PNN_ERR_INVALID, "no device URI given");
    return pnn_device_open(uri, pnn_backend_cpu(), out);
}

pnn_status pnn_capi_device_info(const pnn_device *dev, int64_t dims[4], float ranges[4], char *system,
                                char *system_uri, size_t cap) {
    const pnn_device_info *i = &dev->info;
    dims[0] = i->x_dim, dims[1] = i->y_dim, dims[2] = i->theta_dim, dims[3] = i->max_batch;
    ranges[0] = i->x_range[0], ranges[1] = i->x_range[1], ranges[2] = i->theta_range[0], ranges[3] = i->theta_range[1];
    if (cap) {
        snprintf(system, cap, "%s", i->system);
        snprintf(system_uri, cap, "%s", i->system_uri);
    }
    return PNN_OK;
}

/* A request in flight: the views of the caller's arrays that the queue reads until the wait. */
typedef struct capi_req {
    pnn_tensor x, y;
    pnn_request r;
    pnn_ticket ticket;
} capi_req;

/* rows in [1, what the widest side allows], and the arrays given */
static pnn_status args_ok(const char *who, int64_t rows, int64_t x_dim, int64_t y_dim, const void *a, const void *b,
                          const void *c) {
    int64_t wide = x_dim > y_dim ? x_dim : y_dim;
    if (rows < 1 || rows > ((int64_t)1 << 40) / (wide > 0 ? wide : 1))
        return PNN_ERROR(PNN_ERR_INVALID, "%s: %lld rows; give at least one and at most 2^40 floats per array", who,
                         (long long)rows);
    if (!a || !b || !c) return PNN_ERROR(PNN_ERR_INVALID, "%s: an array is missing (NULL)", who);
    return PNN_OK;
}

pnn_status pnn_capi_device_submit(pnn_device *dev, int64_t rows, const float *x, const float *theta, float *y,
                                  void **req) {
    *req = NULL;
    PNN_TRY(args_ok(dev->info.uri, rows, dev->info.x_dim, dev->info.y_dim, x, theta, y));
    capi_req *q = calloc(1, sizeof *q);
    if (!q) return PNN_ERROR(PNN_ERR_NOMEM, "out of memory for a request to %s", dev->info.uri);
    int64_t xs[2] = {rows, dev->info.x_dim}, ys[2] = {rows, dev->info.y_dim};
    pnn_status st = pnn_tensor_view(&q->x, dev->be, (float *)x, 2, xs);
    if (st == PNN_OK) st = pnn_tensor_view(&q->y, dev->be, y, 2, ys);
    q->r = (pnn_request){.x = &q->x, .theta = theta, .y = &q->y};
    if (st == PNN_OK) st = pnn_device_submit(dev, &q->r, &q->ticket);
    if (st != PNN_OK) {
        free(q);
        return st;
    }
    *req = q;
    return PNN_OK;
}

pnn_status pnn_capi_device_wait(pnn_device *dev, void *req, int timeout_ms, int *pending) {
    capi_req *q = req;
    if (!pending) return PNN_ERROR(PNN_ERR_INVALID, "wait: no place for the pending flag");
    *pending = 0;
    if (!q) return PNN_ERROR(PNN_ERR_INVALID, "no request to wait for");
    pnn_status st = pnn_device_wait(dev, q->ticket, timeout_ms, NULL);
    /* only this waiter completes the ticket: still in flight means the wait gave up, not the request */
    if (st != PNN_OK && pnn_device_in_flight(dev, q->ticket)) *pending = 1;
    else free(q);
    return st;
}

int pnn_capi_device_ready(pnn_device *dev, void *req) {
    capi_req *q = req;
    return q ? pnn_device_ready(dev, q->ticket) : 1;
}

pnn_status pnn_capi_device_forward(pnn_device *dev, int64_t rows, const float *x, const float *theta, float *y) {
    void *req;
    int pending, stopped = 0;
    PNN_TRY(pnn_capi_device_submit(dev, rows, x, theta, y, &req));
    pnn_status st = pnn_capi_device_wait(dev, req, -1, &pending);
    while (pending && st == PNN_ERR_INTERRUPTED) { /* the caller's arrays must outlive the request */
        stopped = 1;
        pnn_interrupt_clear();
        st = pnn_capi_device_wait(dev, req, -1, &pending);
    }
    if (stopped) { /* the stop request stays for whoever else looks at it */
        pnn_interrupt_request();
        if (st == PNN_OK) st = PNN_ERROR(PNN_ERR_INTERRUPTED, "device %s: stopped on request", dev->info.uri);
    }
    return st;
}

pnn_status pnn_capi_device_set_retry(pnn_device *dev, int retries, double backoff_ms) {
    pnn_retry_policy p = {.retries = retries, .backoff_ms = backoff_ms};
    return pnn_device_set_retry(dev, &p);
}

void pnn_capi_device_counters(const pnn_device *dev, uint64_t counts[4], double *busy_s) {
    counts[0] = dev->calls, counts[1] = dev->attempts, counts[2] = dev->faults, counts[3] = dev->retries;
    *busy_s = dev->busy_s;
}

void pnn_capi_device_set_calls(pnn_device *dev, uint64_t calls) { dev->calls = calls; }

/* ---- twins ---- */

pnn_status pnn_capi_twin_create(pnn_device *dev, const char *kind, double noise, pnn_twin **out) {
    return pnn_twin_create(kind && *kind ? kind : "analytic", dev, noise < 0 ? -1.0 : noise, out);
}

pnn_status pnn_capi_twin_forward(pnn_twin *tw, int64_t rows, const float *x, const float *theta, float *y, int slot) {
    PNN_TRY(args_ok("twin forward", rows, tw->info.x_dim, tw->info.y_dim, x, theta, y));
    pnn_tensor xt, yt;
    int64_t xs[2] = {rows, tw->info.x_dim}, ys[2] = {rows, tw->info.y_dim};
    PNN_TRY(pnn_tensor_view(&xt, tw->be, (float *)x, 2, xs));
    PNN_TRY(pnn_tensor_view(&yt, tw->be, y, 2, ys));
    pnn_twin_theta_changed(tw); /* the caller's theta may have changed since the last call */
    PNN_TRY(tw->iface->forward(tw, &xt, theta, &yt, slot, NULL));
    return pnn_backend_status(tw->be);
}

pnn_status pnn_capi_twin_vjp(pnn_twin *tw, int64_t rows, const float *theta, const float *dy, float *dx,
                             float *dtheta, int slot) {
    PNN_TRY(args_ok("twin vjp", rows, tw->info.x_dim, tw->info.y_dim, theta, dy, dtheta));
    pnn_tensor dyt, dxt;
    int64_t xs[2] = {rows, tw->info.x_dim}, ys[2] = {rows, tw->info.y_dim};
    PNN_TRY(pnn_tensor_view(&dyt, tw->be, (float *)dy, 2, ys));
    if (dx) PNN_TRY(pnn_tensor_view(&dxt, tw->be, dx, 2, xs));
    memset(dtheta, 0, (size_t)tw->info.theta_dim * sizeof(float));
    PNN_TRY(tw->iface->vjp(tw, theta, &dyt, dx ? &dxt : NULL, dtheta, slot));
    return pnn_backend_status(tw->be);
}

pnn_status pnn_capi_twin_init_theta(pnn_twin *tw, uint64_t seed, const char *name, float *theta) {
    return tw->iface->init_theta(tw, seed, pnn_rng_stream(name ? name : "", 0), theta);
}

/* ---- training and evaluation ---- */

/* the trainer's stop flag, and whether a run is going on: a stop asked for outside a run must not
 * linger and cut short the next device wait */
static volatile int stop_flag;
static _Atomic int training;

void pnn_capi_request_stop(void) {
    if (!training) return;
    stop_flag = 1;
    pnn_interrupt_request();
}

typedef struct progress_ctx {
    pnn_trainer *tr;
    pnn_capi_progress_fn fn;
    void *user;
} progress_ctx;

static void on_progress(void *user, const pnn_progress *p) {
    progress_ctx *c = user;
    int done = !strcmp(p->phase, "epoch_done");
    double dev = done ? c->tr->last_device.acc : NAN, twin = done && c->tr->last_twin.n ? c->tr->last_twin.acc : NAN;
    c->fn(c->user, p->phase, p->epoch, p->epochs, p->step_in_epoch, p->steps_per_epoch, p->global_step, p->loss, p->acc,
          p->elapsed_s, dev, twin);
}

static void final_of(const pnn_eval_result *dev, const pnn_eval_result *twin, double train_s, double final[6]) {
    final[0] = dev->acc, final[1] = twin->n ? twin->acc : NAN, final[2] = dev->loss;
    final[3] = dev->acc_batchmean, final[4] = twin->n ? twin->loss : NAN, final[5] = train_s;
}

pnn_status pnn_capi_train(const char *config_path, const char *config_text, const char *const *sets, int n_sets,
                          const char *run_dir, int resume, pnn_capi_progress_fn progress, void *user,
                          int *interrupted, double final[6]) {
    *interrupted = 0;
    for (int i = 0; i < 6; i++) final[i] = NAN;
    if (!run_dir || !run_dir[0]) return PNN_ERROR(PNN_ERR_INVALID, "train: give the run directory");
    if (!config_path == !config_text)
        return PNN_ERROR(PNN_ERR_INVALID, "train: give either a config file or the config's text");
    if (n_sets < 0 || (n_sets && !sets)) return PNN_ERROR(PNN_ERR_INVALID, "train: bad overrides (count %d)", n_sets);
    for (int i = 0; i < n_sets; i++)
        if (!sets[i]) return PNN_ERROR(PNN_ERR_INVALID, "train: override %d is missing (NULL)", i);
    pnn_cfg *cfg = NULL;
    char dir[PNN_PATH_MAX + 1] = ".";
    if (config_path) {
        PNN_TRY(pnn_path_dirname(config_path, dir, sizeof dir));
        PNN_TRY(pnn_cfg_load(config_path, &cfg));
    } else {
        PNN_TRY(pnn_cfg_parse(config_text, strlen(config_text), "config", &cfg));
    }
    for (int i = 0; i < n_sets; i++) {
        pnn_status st = pnn_cfg_set(cfg, sets[i]);
        if (st != PNN_OK) {
            pnn_cfg_free(cfg);
            return st;
        }
    }
    pnn_trainer *tr;
    stop_flag = 0;
    pnn_interrupt_clear();
    training = 1; /* from here a stop request counts, also while the data load */
    pnn_status st = pnn_trainer_create(cfg, dir, &tr);
    if (st != PNN_OK) {
        training = 0;
        return st;
    }
    st = resume ? pnn_trainer_resume(tr, run_dir) : pnn_trainer_open_run(tr, run_dir);
    if (st != PNN_OK) {
        training = 0;
        pnn_trainer_free(tr);
        return st;
    }
    progress_ctx ctx = {tr, progress, user};
    if (progress) tr->progress = on_progress, tr->progress_user = &ctx;
    tr->stop = &stop_flag;
    st = pnn_trainer_run(tr);
    if (st == PNN_ERR_INTERRUPTED) { /* a wait gave up on the stop: the failed step was undone */
        st = pnn_trainer_save_state(tr);
        tr->interrupted = st == PNN_OK;
    }
    if (st != PNN_OK) {
        /* keep what was learned up to the last completed step, and the first failure's message */
        char msg[4096];
        snprintf(msg, sizeof msg, "%s", pnn_last_error());
        pnn_status saved = pnn_trainer_save_state(tr);
        pnn_error_at(st, __FILE__, __LINE__, "%s%s", msg,
                     saved == PNN_OK ? " (the state after the last completed step is saved: resume the run)" : "");
    } else if (tr->interrupted) {
        *interrupted = 1;
    } else {
        if (!tr->evaluated) st = pnn_trainer_evaluate(tr, PNN_PASS_EVAL_DEVICE, &tr->last_device);
        if (st == PNN_OK && !tr->evaluated) st = pnn_trainer_evaluate(tr, PNN_PASS_EVAL_TWIN, &tr->last_twin);
        if (st == PNN_OK) final_of(&tr->last_device, &tr->last_twin, tr->train_s, final);
    }
    training = 0;
    stop_flag = 0;
    pnn_interrupt_clear();
    pnn_trainer_free(tr);
    return st;
}

pnn_status pnn_capi_evaluate(const char *checkpoint, const char *const *sets, int n_sets, const char *const *devices,
                             int n_devices, int trust, double final[6]) {
    pnn_eval_result dev, twin;
    for (int i = 0; i < 6; i++) final[i] = NAN;
    if (!checkpoint) return PNN_ERROR(PNN_ERR_INVALID, "evaluate: give the checkpoint");
    if (n_sets < 0 || n_devices < 0 || (n_sets && !sets) || (n_devices && !devices))
        return PNN_ERROR(PNN_ERR_INVALID, "evaluate: bad overrides or devices (counts %d, %d)", n_sets, n_devices);
    for (int i = 0; i < n_sets; i++)
        if (!sets[i]) return PNN_ERROR(PNN_ERR_INVALID, "evaluate: override %d is missing (NULL)", i);
    for (int i = 0; i < n_devices; i++)
        if (!devices[i]) return PNN_ERROR(PNN_ERR_INVALID, "evaluate: device %d is missing (NULL)", i);
    PNN_TRY(pnn_evaluate_checkpoint(checkpoint, sets, n_sets, devices, n_devices, trust, &dev, &twin));
    final_of(&dev, &twin, 0.0, final);
    return PNN_OK;
}

/* ---- safetensors ---- */

pnn_status pnn_capi_st_read(const char *path, pnn_safetensors **out) { return pnn_safetensors_read(path, out); }

int pnn_capi_st_count(const pnn_safetensors *st) { return pnn_safetensors_count(st); }

pnn_status pnn_capi_st_entry(const pnn_safetensors *st, int i, const char **name, int *ndim, int64_t shape[4],
                             const float **data) {
    const pnn_st_entry *e = i >= 0 && i < pnn_safetensors_count(st) ? pnn_safetensors_entry(st, i) : NULL;
    if (!e) return PNN_ERROR(PNN_ERR_INVALID, "no tensor %d", i);
    *name = e->name, *ndim = e->ndim, *data = e->data;
    for (int k = 0; k < 4; k++) shape[k] = k < e->ndim ? e->shape[k] : 0;
    return PNN_OK;
}

int pnn_capi_st_meta_count(const pnn_safetensors *st) { return pnn_safetensors_meta_count(st); }

pnn_status pnn_capi_st_meta_at(const pnn_safetensors *st, int i, const char **key, const char **value) {
    const pnn_st_meta *m = pnn_safetensors_meta_at(st, i);
    if (!m) return PNN_ERROR(PNN_ERR_INVALID, "no metadata entry %d", i);
    *key = m->key, *value = m->value;
    return PNN_OK;
}

void pnn_capi_st_free(pnn_safetensors *st) { pnn_safetensors_free(st); }

pnn_status pnn_capi_st_write(const char *path, int n, const char *const *names, const int *ndims,
                             const int64_t *shapes, const float *const *datas, int n_meta, const char *const *keys,
                             const char *const *values) {
    if (n < 0 || n_meta < 0) return PNN_ERROR(PNN_ERR_INVALID, "safetensors write: negative counts");
    pnn_st_entry *e = calloc((size_t)(n ? n : 1), sizeof *e);
    pnn_st_meta *m = calloc((size_t)(n_meta ? n_meta : 1), sizeof *m);
    pnn_status st = e && m ? PNN_OK : PNN_ERROR(PNN_ERR_NOMEM, "out of memory writing %s", path);
    for (int i = 0; st == PNN_OK && i < n; i++) {
        if (ndims[i] < 0 || ndims[i] > 4) {
            st = PNN_ERROR(PNN_ERR_INVALID, "tensor '%s' has %d dimensions; pnn's checkpoints hold 0 to 4", names[i],
                           ndims[i]);
            break;
        }
        e[i].name = names[i], e[i].ndim = ndims[i], e[i].data = datas[i];
        for (int k = 0; k < ndims[i]; k++) e[i].shape[k] = shapes[4 * i + k];
    }
    for (int i = 0; st == PNN_OK && i < n_meta; i++) m[i].key = keys[i], m[i].value = values[i];
    if (st == PNN_OK) st = pnn_safetensors_write(path, e, n, m, n_meta);
    free(e), free(m);
    return st;
}
