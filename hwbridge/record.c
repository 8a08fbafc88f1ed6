/* Recording and replay of device calls. "record:FILE@URI" wraps any device and appends every
 * successful call (x, theta, y) to FILE; "replay:FILE" serves a recording back, call by call,
 * checking that it is asked the same questions in the same order. Recordings feed learned twins
 * and make any run repeatable without the instrument. The file and its checks: record_file.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pnn/device.h"
#include "record_file.h"

/* The URI names the device in messages (info.uri): refused, not cut, when it does not fit, as
 * pnn_device_open does. */
static pnn_status check_uri_fits(const char *uri) {
    size_t n = strlen(uri), cap = sizeof((pnn_device_info *)0)->uri;
    if (n >= cap)
        return PNN_ERROR(PNN_ERR_INVALID, "device URI '%.60s...' is %zu characters long; at most %zu", uri, n, cap - 1);
    return PNN_OK;
}

/* Splits "scheme:FILE@INNER" (record:) or "scheme:FILE?QUERY" (replay:) into FILE's bytes and
 * the rest. */
static pnn_status split_uri(const char *uri, int want_inner, const char **path, size_t *len, const char **rest) {
    const char *p = strchr(uri, ':') + 1;
    const char *at = want_inner ? strchr(p, '@') : NULL;
    if (want_inner && !at)
        return PNN_ERROR(PNN_ERR_INVALID, "device URI '%s': write record:FILE@DEVICE_URI, e.g. "
                         "record:runs/osc.pnnrec@sim:oscillator?n=100", uri);
    *path = p;
    *len = want_inner ? (size_t)(at - p) : strcspn(p, "?");
    *rest = want_inner ? at + 1 : p + *len;
    return PNN_OK;
}

/* ---- record: ---- */

typedef struct record_dev {
    pnn_device *inner;
    pnn_rec_file file;
    float *x_host, *y_host;
    size_t host_rows;
    float *theta_last, *theta_now; /* the theta of the last theta record, and this call's */
    int have_theta;
} record_dev;

static void record_close(pnn_device *dev) {
    record_dev *r = dev->impl;
    if (r) {
        pnn_device_close(r->inner);
        pnn_rec_close(&r->file);
        free(r->x_host), free(r->y_host), free(r->theta_last), free(r->theta_now);
        free(r);
    }
    free(dev);
}

static pnn_status record_forward(pnn_device *dev, const pnn_tensor *x, const float *theta, pnn_tensor *y) {
    record_dev *r = dev->impl;
    const pnn_device_info *info = &dev->info;
    const pnn_backend *be = dev->be;
    r->inner->calls = dev->calls; /* the wrapper's counter is the one checkpoints restore */
    PNN_TRY(pnn_device_forward(r->inner, x, theta, y));
    size_t rows = (size_t)pnn_tensor_rows(x);
    size_t xb = rows * (size_t)info->x_dim * sizeof(float), yb = rows * (size_t)info->y_dim * sizeof(float);
    if (rows > r->host_rows) {
        float *xh = realloc(r->x_host, xb);
        if (xh) r->x_host = xh;
        float *yh = realloc(r->y_host, yb);
        if (yh) r->y_host = yh;
        if (!xh || !yh) return PNN_ERROR(PNN_ERR_NOMEM, "out of memory recording to %s", r->file.path);
        r->host_rows = rows;
    }
    size_t tbytes = (size_t)info->theta_dim * sizeof(float);
    be->iface->to_host(be->ctx, r->theta_now, theta, tbytes);
    if (!r->have_theta || memcmp(r->theta_now, r->theta_last, tbytes)) {
        PNN_TRY(pnn_rec_append_theta(&r->file, r->theta_now));
        float *t = r->theta_last;
        r->theta_last = r->theta_now, r->theta_now = t;
        r->have_theta = 1;
    }
    be->iface->to_host(be->ctx, r->x_host, x->data, xb);
    be->iface->to_host(be->ctx, r->y_host, y->data, yb);
    return pnn_rec_append_call(&r->file, dev->calls, rows, r->x_host, r->y_host);
}

static pnn_status record_input_noise(pnn_device *dev, uint64_t call, int64_t n, float *out) {
    record_dev *r = dev->impl;
    return r->inner->iface->input_noise(r->inner, call, n, out);
}

static const pnn_device_i record_iface = {.forward = record_forward, .close = record_close};
static const pnn_device_i record_iface_noise = {
    .forward = record_forward, .close = record_close, .input_noise = record_input_noise};

/* Keys of a sim: URI that change when and whether a call succeeds, not what it returns: a
 * resumed run may point a recording at a device that no longer fails. */
static const char *const timing_keys[] = {"latency_ms", "jitter_ms", "fault_rate", "drop_rate",
                                          "timeout_ms", "async",     "threads"};

static int is_timing_key(const char *key) {
    for (size_t i = 0; i < sizeof timing_keys / sizeof *timing_keys; i++)
        if (!strcmp(key, timing_keys[i])) return 1;
    return 0;
}

/* 1 when every key of a but the timing keys has the same value in b. */
static int keys_within(const pnn_uri *a, const pnn_uri *b) {
    for (int i = 0; i < a->n; i++) {
        if (is_timing_key(a->keys[i])) continue;
        int same = 0;
        for (int k = 0; k < b->n && !same; k++)
            same = !strcmp(a->keys[i], b->keys[k]) && !strcmp(a->values[i], b->values[k]);
        if (!same) return 0;
    }
    return 1;
}

/* 1 when two system URIs describe the same system: equal, or equal but for the timing keys. */
static int same_system_uri(const char *a, const char *b) {
    pnn_uri ua, ub;
    if (!strcmp(a, b)) return 1;
    if (pnn_uri_parse(a, &ua) != PNN_OK || pnn_uri_parse(b, &ub) != PNN_OK) return 0;
    return !strcmp(ua.scheme, ub.scheme) && !strcmp(ua.system, ub.system) && keys_within(&ua, &ub) &&
           keys_within(&ub, &ua);
}

/* Calls appended to a recording must come from the system its header describes. */
static pnn_status check_same_system(const char *path, const pnn_device_info *rec, const pnn_device_info *dev) {
    if (rec->x_dim != dev->x_dim || rec->y_dim != dev->y_dim || rec->theta_dim != dev->theta_dim ||
        rec->max_batch != dev->max_batch || strcmp(rec->system, dev->system))
        return PNN_ERROR(PNN_ERR_INVALID, "recording %s holds another system (%s: x %lld, y %lld, theta %lld, "
                         "max_batch %lld; this device %s: %lld, %lld, %lld, %lld); record to a new file", path,
                         rec->system, (long long)rec->x_dim, (long long)rec->y_dim, (long long)rec->theta_dim,
                         (long long)rec->max_batch, dev->system, (long long)dev->x_dim, (long long)dev->y_dim,
                         (long long)dev->theta_dim, (long long)dev->max_batch);
    if (!same_system_uri(rec->system_uri, dev->system_uri))
        return PNN_ERROR(PNN_ERR_INVALID, "recording %s was made with %s, this device is %s: only timing keys "
                         "(fault_rate, latency_ms...) may differ; use the same device or record to a new file", path,
                         rec->system_uri, dev->system_uri);
    return PNN_OK;
}

/* Continues an existing recording of the same system: cuts a torn end (damage in the middle is
 * an error that changes nothing) and reloads the last theta, so that it is not written again. */
static pnn_status record_resume(record_dev *r, const pnn_device_info *info) {
    pnn_device_info rec_info;
    PNN_TRY(pnn_rec_read_header(&r->file, &rec_info));
    PNN_TRY(check_same_system(r->file.path, &rec_info, info));
    PNN_TRY(pnn_rec_scan(&r->file, 1));
    if (r->file.theta_offset) {
        PNN_TRY(pnn_rec_read_theta(&r->file, r->file.theta_offset, r->theta_last));
        r->have_theta = 1;
    }
    return PNN_OK;
}

pnn_status pnn_record_open(const char *uri, const pnn_backend *be, pnn_device **out) {
    pnn_status st = PNN_OK;
    *out = NULL;
    const char *path = NULL, *inner_uri = NULL;
    size_t len = 0;
    PNN_TRY(check_uri_fits(uri));
    PNN_TRY(split_uri(uri, 1, &path, &len, &inner_uri));
    pnn_device *dev = calloc(1, sizeof *dev);
    record_dev *r = calloc(1, sizeof *r);
    if (!dev || !r) {
        free(dev);
        free(r);
        return PNN_ERROR(PNN_ERR_NOMEM, "out of memory opening %s", uri);
    }
    r->file.fd = r->file.idx_fd = -1;
    dev->impl = r;
    dev->be = be;
    dev->iface = &record_iface;
    PNN_GOTO(pnn_device_open(inner_uri, be, &r->inner));
    if (r->inner->iface->input_noise) dev->iface = &record_iface_noise;
    dev->info = r->inner->info;
    snprintf(dev->info.uri, sizeof dev->info.uri, "%s", uri);
    size_t tbytes = (size_t)dev->info.theta_dim * sizeof(float);
    r->theta_last = malloc(tbytes);
    r->theta_now = malloc(tbytes);
    if (!r->theta_last || !r->theta_now) {
        st = PNN_ERROR(PNN_ERR_NOMEM, "out of memory opening %s", uri);
        goto fail;
    }
    uint64_t bytes = 0;
    PNN_GOTO(pnn_rec_open(&r->file, path, len, 1, &bytes));
    if (bytes == 0) PNN_GOTO(pnn_rec_write_header(&r->file, &dev->info));
    else PNN_GOTO(record_resume(r, &dev->info));
    PNN_GOTO(pnn_rec_start_appending(&r->file));
    *out = dev;
    return PNN_OK;
fail:
    record_close(dev);
    return st;
}

/* ---- replay: ---- */

typedef struct replay_dev {
    pnn_rec_file file;
    int check;             /* compare x and theta with the recording */
    uint64_t theta_loaded; /* offset of the theta record in theta_rec (0: none) */
    float *x_rec, *y_rec, *x_now, *theta_rec, *theta_now;
} replay_dev;

static void replay_close(pnn_device *dev) {
    replay_dev *r = dev->impl;
    if (r) {
        pnn_rec_close(&r->file);
        free(r->x_rec), free(r->y_rec), free(r->x_now), free(r->theta_rec), free(r->theta_now);
        free(r);
    }
    free(dev);
}

static double max_abs_diff(const float *a, const float *b, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double d = a[i] > b[i] ? (double)a[i] - b[i] : (double)b[i] - a[i];
        if (d > m || d != d) m = d;
    }
    return m;
}

static pnn_status replay_forward(pnn_device *dev, const pnn_tensor *x, const float *theta, pnn_tensor *y) {
    replay_dev *r = dev->impl;
    pnn_rec_file *f = &r->file;
    const pnn_device_info *info = &dev->info;
    const pnn_backend *be = dev->be;
    uint64_t k = dev->calls;
    if (k >= f->n_calls)
        return PNN_ERROR(PNN_ERR_INVALID, "replay %s: asked for call %llu but the recording holds %llu calls",
                         f->path, (unsigned long long)k + 1, (unsigned long long)f->n_calls);
    pnn_rec_entry e = f->index[k];
    size_t rows = (size_t)pnn_tensor_rows(x);
    if (e.batch != rows) /* before anything is sized: rows is the caller's, e.batch the file's */
        return PNN_ERROR(PNN_ERR_INVALID, "replay %s: call %llu was recorded with a batch of %llu, asked with %zu "
                         "(replay needs the same micro-batches as the recording)",
                         f->path, (unsigned long long)k + 1, (unsigned long long)e.batch, rows);
    size_t xn = rows * (size_t)info->x_dim, yn = rows * (size_t)info->y_dim;
    float *xr = realloc(r->x_rec, xn * sizeof(float)), *yr = xr ? realloc(r->y_rec, yn * sizeof(float)) : NULL;
    if (xr) r->x_rec = xr;
    if (yr) r->y_rec = yr;
    float *xw = yr ? realloc(r->x_now, xn * sizeof(float)) : NULL;
    if (xw) r->x_now = xw;
    if (!xr || !yr || !xw) return PNN_ERROR(PNN_ERR_NOMEM, "out of memory replaying %s", f->path);
    PNN_TRY(pnn_rec_read_call(f, k, r->x_rec, r->y_rec));
    if (r->check) {
        be->iface->to_host(be->ctx, r->x_now, x->data, xn * sizeof(float));
        if (memcmp(r->x_now, r->x_rec, xn * sizeof(float)))
            return PNN_ERROR(PNN_ERR_INVALID, "replay %s: call %llu was asked with another x than recorded (max |diff| "
                             "%g); add ?check=0 to serve the recording regardless",
                             f->path, (unsigned long long)k + 1, max_abs_diff(r->x_now, r->x_rec, xn));
        size_t tn = (size_t)info->theta_dim;
        if (r->theta_loaded != e.theta_offset) {
            r->theta_loaded = 0; /* until it is read whole */
            PNN_TRY(pnn_rec_read_theta(f, e.theta_offset, r->theta_rec));
            r->theta_loaded = e.theta_offset;
        }
        be->iface->to_host(be->ctx, r->theta_now, theta, tn * sizeof(float));
        if (memcmp(r->theta_now, r->theta_rec, tn * sizeof(float)))
            return PNN_ERROR(PNN_ERR_INVALID, "replay %s: call %llu was asked with other controls than recorded (max "
                             "|diff| %g); add ?check=0 to serve the recording regardless",
                             f->path, (unsigned long long)k + 1, max_abs_diff(r->theta_now, r->theta_rec, tn));
    }
    be->iface->from_host(be->ctx, y->data, r->y_rec, yn * sizeof(float));
    return PNN_OK;
}

static const pnn_device_i replay_iface = {.forward = replay_forward, .close = replay_close};

pnn_status pnn_replay_open(const char *uri, const pnn_backend *be, pnn_device **out) {
    pnn_status st = PNN_OK;
    *out = NULL;
    const char *path = NULL, *query = NULL;
    size_t len = 0;
    PNN_TRY(check_uri_fits(uri));
    PNN_TRY(split_uri(uri, 0, &path, &len, &query));
    if (*query && strcmp(query, "?check=1") && strcmp(query, "?check=0"))
        return PNN_ERROR(PNN_ERR_INVALID, "device URI '%s': replay takes only ?check=0 or ?check=1", uri);
    pnn_device *dev = calloc(1, sizeof *dev);
    replay_dev *r = calloc(1, sizeof *r);
    if (!dev || !r) {
        free(dev);
        free(r);
        return PNN_ERROR(PNN_ERR_NOMEM, "out of memory opening %s", uri);
    }
    r->file.fd = r->file.idx_fd = -1;
    r->check = strcmp(query, "?check=0") != 0;
    dev->impl = r;
    dev->be = be;
    dev->iface = &replay_iface;
    pnn_rec_file *f = &r->file;
    uint64_t bytes = 0;
    PNN_GOTO(pnn_rec_open(f, path, len, 0, &bytes));
    PNN_GOTO(pnn_rec_read_header(f, &dev->info));
    snprintf(dev->info.uri, sizeof dev->info.uri, "%s", uri);
    PNN_GOTO(pnn_rec_scan(f, 0));
    r->theta_rec = malloc((size_t)dev->info.theta_dim * sizeof(float));
    r->theta_now = malloc((size_t)dev->info.theta_dim * sizeof(float));
    if (!r->theta_rec || !r->theta_now) {
        st = PNN_ERROR(PNN_ERR_NOMEM, "out of memory opening %s", uri);
        goto fail;
    }
    *out = dev;
    return PNN_OK;
fail:
    replay_close(dev);
    return st;
}
