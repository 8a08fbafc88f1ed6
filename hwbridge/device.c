/* Opening devices by URI, and the checks every device call goes through, with the timing and
 * faults a simulated device adds. */
#include "pnn/callback.h"
#include "pnn/device.h"
#include "pnn/remote.h"

#include "pnn/clock.h"
#include "pnn/rng.h"
#include "pnn/system.h"
#include "pnn/twin.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

pnn_status pnn_uri_parse(const char *uri, pnn_uri *out) {
    memset(out, 0, sizeof *out);
    const char *colon = strchr(uri, ':');
    if (!colon || colon == uri || (size_t)(colon - uri) >= sizeof out->scheme)
        return PNN_ERROR(PNN_ERR_INVALID,
                         "device URI '%s' has no scheme: write it as scheme:system?key=value, e.g. "
                         "sim:oscillator?n=100",
                         uri);
    memcpy(out->scheme, uri, (size_t)(colon - uri));
    const char *rest = colon + 1;
    const char *q = strchr(rest, '?');
    size_t sys_len = q ? (size_t)(q - rest) : strlen(rest);
    if (sys_len == 0 || sys_len >= sizeof out->system)
        return PNN_ERROR(PNN_ERR_INVALID, "device URI '%s': missing or too long system name", uri);
    memcpy(out->system, rest, sys_len);
    if (!q) return PNN_OK;
    const char *p = q + 1;
    while (*p) {
        const char *amp = strchr(p, '&');
        size_t len = amp ? (size_t)(amp - p) : strlen(p);
        const char *eq = memchr(p, '=', len);
        if (!eq || eq == p)
            return PNN_ERROR(PNN_ERR_INVALID, "device URI '%s': parameter '%.*s' is not key=value", uri,
                             (int)len, p);
        size_t klen = (size_t)(eq - p), vlen = len - klen - 1;
        if (out->n >= 32 || klen >= sizeof out->keys[0] || vlen >= sizeof out->values[0])
            return PNN_ERROR(PNN_ERR_INVALID, "device URI '%s': too many or too long parameters", uri);
        for (int i = 0; i < out->n; i++)
            if (strlen(out->keys[i]) == klen && !strncmp(out->keys[i], p, klen))
                return PNN_ERROR(PNN_ERR_INVALID, "device URI '%s': parameter '%.*s' given twice", uri,
                                 (int)klen, p);
        memcpy(out->keys[out->n], p, klen);
        memcpy(out->values[out->n], eq + 1, vlen);
        out->n++;
        if (!amp) break;
        p = amp + 1;
    }
    return PNN_OK;
}

static const char *uri_find(pnn_uri *u, const char *key) {
    for (int i = 0; i < u->n; i++)
        if (!strcmp(u->keys[i], key)) {
            u->used[i] = 1;
            return u->values[i];
        }
    return NULL;
}

pnn_status pnn_uri_double(pnn_uri *u, const char *key, double def, double min, double max, double *out) {
    const char *v = uri_find(u, key);
    if (!v) {
        *out = def;
        return PNN_OK;
    }
    char *end;
    double d = strtod(v, &end);
    if (end == v || *end || !isfinite(d) || d < min || d > max)
        return PNN_ERROR(PNN_ERR_INVALID, "device parameter %s=%s: expected a number in [%g, %g]", key, v,
                         min, max);
    *out = d;
    return PNN_OK;
}

pnn_status pnn_uri_int(pnn_uri *u, const char *key, int64_t def, int64_t min, int64_t max, int64_t *out) {
    const char *v = uri_find(u, key);
    if (!v) {
        *out = def;
        return PNN_OK;
    }
    char *end;
    long long d = strtoll(v, &end, 10);
    if (end == v || *end || d < min || d > max)
        return PNN_ERROR(PNN_ERR_INVALID, "device parameter %s=%s: expected an integer in [%lld, %lld]",
                         key, v, (long long)min, (long long)max);
    *out = d;
    return PNN_OK;
}

pnn_status pnn_uri_choice(pnn_uri *u, const char *key, const char *const *choices, int def, int *out) {
    *out = def;
    const char *v = uri_find(u, key);
    if (!v) return PNN_OK;
    char list[256] = "";
    for (int c = 0; choices[c]; c++) {
        if (!strcmp(v, choices[c])) {
            *out = c;
            return PNN_OK;
        }
        size_t used = strlen(list);
        snprintf(list + used, sizeof list - used, "%s%s", c ? ", " : "", choices[c]);
    }
    char close[64];
    pnn_suggest(v, list, close, sizeof close);
    return PNN_ERROR(PNN_ERR_INVALID, "device parameter %s=%s: expected one of %s%s%s%s", key, v, list,
                     close[0] ? "; did you mean '" : "", close, close[0] ? "'?" : "");
}

pnn_status pnn_uri_check_all_used(const pnn_uri *u, const char *known_keys) {
    for (int i = 0; i < u->n; i++)
        if (!u->used[i]) {
            char close[64];
            pnn_suggest(u->keys[i], known_keys, close, sizeof close);
            return PNN_ERROR(PNN_ERR_INVALID, "unknown parameter '%s' for device %s:%s%s%s%s; known (with defaults): %s",
                             u->keys[i], u->scheme, u->system, close[0] ? "; did you mean '" : "", close,
                             close[0] ? "'?" : "", known_keys);
        }
    return PNN_OK;
}

static int terminated(const char *s, size_t cap) { return memchr(s, '\0', cap) != NULL; }

pnn_status pnn_device_info_check(const pnn_device_info *info, const char *who) {
    if (!terminated(info->system, sizeof info->system) || !terminated(info->uri, sizeof info->uri) ||
        !terminated(info->system_uri, sizeof info->system_uri) || !info->system[0])
        return PNN_ERROR(PNN_ERR_FORMAT, "%s: its system name or URI is missing or not a string", who);
    if (info->x_dim < 1 || info->x_dim > PNN_DEVICE_MAX_XY_DIM || info->y_dim < 1 ||
        info->y_dim > PNN_DEVICE_MAX_XY_DIM)
        return PNN_ERROR(PNN_ERR_FORMAT, "%s reports x_dim %lld and y_dim %lld; each must be in [1, %lld]", who,
                         (long long)info->x_dim, (long long)info->y_dim, (long long)PNN_DEVICE_MAX_XY_DIM);
    if (info->theta_dim < 1 || info->theta_dim > PNN_DEVICE_MAX_THETA_DIM)
        return PNN_ERROR(PNN_ERR_FORMAT, "%s reports theta_dim %lld; it must be in [1, %lld]", who,
                         (long long)info->theta_dim, (long long)PNN_DEVICE_MAX_THETA_DIM);
    if (info->max_batch < 1)
        return PNN_ERROR(PNN_ERR_FORMAT, "%s reports max_batch %lld; it must be at least 1", who,
                         (long long)info->max_batch);
    for (int r = 0; r < 2; r++) {
        const float *range = r ? info->theta_range : info->x_range;
        if (!isfinite(range[0]) || !isfinite(range[1]) || range[0] > range[1])
            return PNN_ERROR(PNN_ERR_FORMAT, "%s reports %s [%g, %g]; it must be finite with lo <= hi", who,
                             r ? "theta_range" : "x_range", range[0], range[1]);
    }
    if (info->n_theta_parts < 0 || info->n_theta_parts > PNN_DEVICE_MAX_THETA_PARTS)
        return PNN_ERROR(PNN_ERR_FORMAT, "%s reports %d theta parts; at most %d", who, info->n_theta_parts,
                         PNN_DEVICE_MAX_THETA_PARTS);
    int64_t sum = 0;
    for (int i = 0; i < info->n_theta_parts; i++) {
        const pnn_theta_part *p = &info->theta_parts[i];
        if (!terminated(p->name, sizeof p->name) || !p->name[0] || p->ndim < 1 || p->ndim > 2 || p->shape[0] < 1 ||
            p->shape[0] > PNN_DEVICE_MAX_THETA_DIM ||
            (p->ndim == 2 && (p->shape[1] < 1 || p->shape[1] > PNN_DEVICE_MAX_THETA_DIM / p->shape[0])))
            return PNN_ERROR(PNN_ERR_FORMAT, "%s: theta part %d has a bad name or shape", who, i);
        sum += p->ndim == 2 ? p->shape[0] * p->shape[1] : p->shape[0];
    }
    if (info->n_theta_parts && sum != info->theta_dim)
        return PNN_ERROR(PNN_ERR_FORMAT, "%s: its theta parts hold %lld values but theta_dim is %lld", who,
                         (long long)sum, (long long)info->theta_dim);
    return PNN_OK;
}

/* Reads the generic keys of a simulated device: its timing and faults, and how it runs (async,
 * threads). The seed of its faults is the system's own `seed`, read after the system. */
static pnn_status read_sim_keys(pnn_uri *u, const pnn_backend *be, pnn_device_timing *t, int64_t *threads,
                                int64_t *async, int64_t *max_batch) {
    PNN_TRY(pnn_uri_int(u, "max_batch", 1 << 20, 1, INT64_MAX, max_batch));
    PNN_TRY(pnn_uri_int(u, "threads", 0, 0, 1024, threads));
    PNN_TRY(pnn_uri_int(u, "async", strcmp(be->iface->name, "cpu") ? 1 : 0, 0, 1, async));
    PNN_TRY(pnn_uri_double(u, "latency_ms", 0, 0, 3.6e6, &t->latency_ms));
    PNN_TRY(pnn_uri_double(u, "jitter_ms", 0, 0, 3.6e6, &t->jitter_ms));
    PNN_TRY(pnn_uri_double(u, "fault_rate", 0, 0, 1, &t->fault_rate));
    PNN_TRY(pnn_uri_double(u, "drop_rate", 0, 0, 1, &t->drop_rate));
    PNN_TRY(pnn_uri_double(u, "timeout_ms", 10000, 1, 3.6e6, &t->timeout_ms));
    if (t->fault_rate + t->drop_rate > 1)
        return PNN_ERROR(PNN_ERR_INVALID, "device parameters fault_rate + drop_rate = %g: must be at most 1",
                         t->fault_rate + t->drop_rate);
    return PNN_OK;
}

static pnn_status open_kind(const char *uri, const pnn_backend *be, pnn_device **out);

pnn_status pnn_device_uri_expand(const char *uri, char **list, int *n, int max) {
    const char *open = uri;
    while ((open = strchr(open, '{')) && !(open[1] >= '0' && open[1] <= '9')) open++;
    if (!open) {
        if (*n >= max)
            return PNN_ERROR(PNN_ERR_INVALID, "device '%.200s': more than %d device copies", uri, max);
        if (!(list[*n] = strdup(uri))) return PNN_ERROR(PNN_ERR_NOMEM, "out of memory listing device copies");
        (*n)++;
        return PNN_OK;
    }
    const char *close = strchr(open, '}');
    long long a, b;
    char tail;
    if (!close || sscanf(open, "{%lld..%lld%c", &a, &b, &tail) != 3 || tail != '}' || a < 0 || b < a || b - a >= max)
        return PNN_ERROR(PNN_ERR_INVALID, "device '%.200s': a range is {A..B} with 0 <= A <= B and at most %d "
                         "values (device copies), e.g. seed={2..11}", uri, max);
    for (long long v = a; v <= b; v++) {
        char buf[sizeof((pnn_device_info *)0)->uri + 32];
        if (snprintf(buf, sizeof buf, "%.*s%lld%s", (int)(open - uri), uri, v, close + 1) >= (int)sizeof buf)
            return PNN_ERROR(PNN_ERR_INVALID, "device '%.60s...' is too long", uri);
        PNN_TRY(pnn_device_uri_expand(buf, list, n, max));
    }
    return PNN_OK;
}

/* Every kind of device, then the check of what it reports, before anyone sizes a buffer from it. */
pnn_status pnn_device_open(const char *uri, const pnn_backend *be, pnn_device **out) {
    *out = NULL;
    /* the URI is kept in the device's info, and a twin reads the system's settings from it: a
     * cut one would silently drop settings */
    if (strlen(uri) >= sizeof((pnn_device_info *)0)->uri)
        return PNN_ERROR(PNN_ERR_INVALID, "device URI '%.60s...' is %zu characters long; at most %zu", uri,
                         strlen(uri), sizeof((pnn_device_info *)0)->uri - 1);
    PNN_TRY(open_kind(uri, be, out));
    pnn_status st = pnn_device_info_check(&(*out)->info, uri);
    if (st != PNN_OK) {
        pnn_device_close(*out);
        *out = NULL;
    }
    return st;
}

static pnn_status open_kind(const char *uri, const pnn_backend *be, pnn_device **out) {
    if (!strncmp(uri, "record:", 7)) return pnn_record_open(uri, be, out);
    if (!strncmp(uri, "replay:", 7)) return pnn_replay_open(uri, be, out);
    if (!strncmp(uri, "remote:", 7)) return pnn_remote_open(uri, be, out);
    if (!strncmp(uri, "callback:", 9)) return pnn_callback_device_open(uri, be, out);
    pnn_uri u;
    PNN_TRY(pnn_uri_parse(uri, &u));
    if (!strcmp(u.scheme, "sim")) {
        pnn_device_timing timing;
        int64_t threads, async, seed, max_batch;
        const pnn_system *sys;
        PNN_TRY(pnn_system_lookup(u.system, uri, &sys));
        PNN_TRY(read_sim_keys(&u, be, &timing, &threads, &async, &max_batch));
        PNN_TRY(sys->open_sim(&u, uri, be, out));
        pnn_uri_int(&u, "seed", 0, 0, INT64_MAX, &seed); /* checked by the system already */
        timing.seed = (uint64_t)seed;
        (*out)->timing = timing;
        (*out)->worker_threads = (int)threads;
        (*out)->eager = !async;
        (*out)->info.max_batch = max_batch;
        if (!(*out)->info.system_uri[0])
            snprintf((*out)->info.system_uri, sizeof (*out)->info.system_uri, "%s", uri);
        return PNN_OK;
    }
    return PNN_ERROR(PNN_ERR_UNSUPPORTED,
                     "device scheme '%s:' in '%s' is not supported by this build; known: sim:, remote:, "
                     "record:, replay:, callback:",
                     u.scheme, uri);
}

void pnn_device_close(pnn_device *dev) {
    if (!dev) return;
    pnn_device_queue_free(dev);
    dev->iface->close(dev);
}

const pnn_device_info *pnn_device_info_get(const pnn_device *dev) { return &dev->info; }

const char *pnn_device_last_error(const pnn_device *dev) { return dev->last_error; }

/* The simulated instrument's behaviour for this attempt: 0 = answer, 1 = fault, 2 = drop. */
static int simulated_outcome(const pnn_device *dev, double *latency_s) {
    const pnn_device_timing *t = &dev->timing;
    float u[2] = {1.0f, 0.0f};
    if (t->fault_rate > 0 || t->drop_rate > 0 || t->jitter_ms > 0)
        pnn_rng_uniform(t->seed, pnn_rng_stream("device.timing", 0), 2 * dev->attempts, 2, u);
    *latency_s = (t->latency_ms + t->jitter_ms * u[1]) * 1e-3;
    if (u[0] < t->fault_rate) return 1;
    if (u[0] < t->fault_rate + t->drop_rate) return 2;
    return 0;
}

pnn_status pnn_device_attempt(pnn_device *dev, const pnn_tensor *x, const float *theta, pnn_tensor *y,
                              double *deferred_s) {
    const pnn_device_info *info = &dev->info;
    int64_t b = pnn_tensor_rows(x);
    if (pnn_tensor_cols(x) != info->x_dim || pnn_tensor_rows(y) != b || pnn_tensor_cols(y) != info->y_dim)
        return PNN_ERROR(PNN_ERR_INVALID, "device %s: x is %lld x %lld and y %lld x %lld, expected b x %lld and b x %lld",
                         info->uri, (long long)b, (long long)pnn_tensor_cols(x), (long long)pnn_tensor_rows(y),
                         (long long)pnn_tensor_cols(y), (long long)info->x_dim, (long long)info->y_dim);
    if (b > info->max_batch)
        return PNN_ERROR(PNN_ERR_INVALID, "device %s: batch %lld over its max_batch %lld", info->uri,
                         (long long)b, (long long)info->max_batch);
    /* the simulated time is slept here, or handed to the caller (deferred_s) to wait out later */
    double latency_s, t0 = pnn_now_s(), pause_s = 0;
    int outcome = simulated_outcome(dev, &latency_s);
    dev->attempts++;
    pnn_status st;
    if (outcome == 1) {
        pause_s = latency_s;
        st = PNN_ERROR(PNN_ERR_DEVICE, "device %s: device_fault (simulated, attempt %llu)", info->uri,
                       (unsigned long long)dev->attempts);
    } else if (outcome == 2) {
        pause_s = dev->timing.timeout_ms * 1e-3;
        st = PNN_ERROR(PNN_ERR_TIMEOUT, "device %s: no reply within %g ms (simulated drop, attempt %llu)",
                       info->uri, dev->timing.timeout_ms, (unsigned long long)dev->attempts);
    } else {
        st = dev->iface->forward(dev, x, theta, y);
        if (latency_s > 0) {
            dev->be->iface->sync(dev->be->ctx);
            pause_s = latency_s - (pnn_now_s() - t0);
        }
    }
    dev->last_output_invalid = 0;
    if (st == PNN_OK) {
        int64_t bad = dev->be->iface->count_nonfinite(dev->be->ctx, y->numel, y->data);
        dev->last_output_invalid = bad != 0;
        /* a failed op of the device's own (a simulator on the GPU) or of the count: not a device
         * fault to retry, and its output cannot be trusted */
        pnn_status ops = pnn_backend_status(dev->be);
        if (ops != PNN_OK) st = pnn_error_prefix(ops, "device %s: ", info->uri);
        else if (bad)
            st = PNN_ERROR(PNN_ERR_DEVICE,
                           "device %s returned %lld NaN/Inf values in a batch of %lld (call %llu): "
                           "the physical system diverged or faulted; lower the learning rate or check "
                           "the device's input ranges",
                           info->uri, (long long)bad, (long long)b, (unsigned long long)dev->calls + 1);
    }
    if (deferred_s) {
        *deferred_s = pause_s > 0 ? pause_s : 0;
        dev->busy_s += pnn_now_s() - t0 + *deferred_s;
    } else {
        pnn_status slept = pnn_sleep_s(pause_s);
        if (slept != PNN_OK && st == PNN_OK) st = pnn_error_prefix(slept, "device %s: ", info->uri);
        dev->busy_s += pnn_now_s() - t0;
    }
    if (st == PNN_OK) dev->calls++;
    else {
        if (pnn_status_retryable(st)) dev->faults++;
        snprintf(dev->last_error, sizeof dev->last_error, "%s", pnn_last_error());
    }
    return st;
}

pnn_status pnn_device_forward(pnn_device *dev, const pnn_tensor *x, const float *theta, pnn_tensor *y) {
    return pnn_device_attempt(dev, x, theta, y, NULL);
}

pnn_status pnn_twin_new(pnn_device *dev, const pnn_twin_i *iface, size_t impl_size, const char *what, pnn_twin **out) {
    pnn_twin *tw = calloc(1, sizeof *tw);
    void *impl = calloc(1, impl_size ? impl_size : 1);
    *out = NULL;
    if (!tw || !impl) {
        free(tw);
        free(impl);
        return PNN_ERROR(PNN_ERR_NOMEM, "out of memory creating %s", what);
    }
    tw->iface = iface;
    tw->info = dev->info;
    tw->be = dev->be;
    tw->theta_stale = 1;
    tw->impl = impl;
    *out = tw;
    return PNN_OK;
}
