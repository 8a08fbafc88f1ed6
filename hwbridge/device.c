/* Opening devices by URI, and the checks every device call goes through. */
#include "pnn/device.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

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

pnn_status pnn_uri_check_all_used(const pnn_uri *u, const char *known_keys) {
    for (int i = 0; i < u->n; i++)
        if (!u->used[i])
            return PNN_ERROR(PNN_ERR_INVALID, "unknown parameter '%s' for device %s:%s; known: %s",
                             u->keys[i], u->scheme, u->system, known_keys);
    return PNN_OK;
}

pnn_status pnn_device_open(const char *uri, const pnn_backend *be, pnn_device **out) {
    *out = NULL;
    pnn_uri u;
    PNN_TRY(pnn_uri_parse(uri, &u));
    if (!strcmp(u.scheme, "sim")) {
        if (!strcmp(u.system, "oscillator")) return pnn_sim_oscillator_open(&u, uri, be, out);
        return PNN_ERROR(PNN_ERR_INVALID, "unknown simulated system '%s' in '%s'; known: oscillator",
                         u.system, uri);
    }
    return PNN_ERROR(PNN_ERR_UNSUPPORTED,
                     "device scheme '%s:' in '%s' is not supported by this build; known: sim:", u.scheme,
                     uri);
}

void pnn_device_close(pnn_device *dev) {
    if (dev) dev->iface->close(dev);
}

const pnn_device_info *pnn_device_info_get(const pnn_device *dev) { return &dev->info; }

const char *pnn_device_last_error(const pnn_device *dev) { return dev->last_error; }

pnn_status pnn_device_forward(pnn_device *dev, const pnn_tensor *x, const float *theta, pnn_tensor *y) {
    const pnn_device_info *info = &dev->info;
    int64_t b = pnn_tensor_rows(x);
    if (pnn_tensor_cols(x) != info->x_dim || pnn_tensor_rows(y) != b || pnn_tensor_cols(y) != info->y_dim)
        return PNN_ERROR(PNN_ERR_INVALID, "device %s: x is %lld x %lld and y %lld x %lld, expected b x %lld and b x %lld",
                         info->uri, (long long)b, (long long)pnn_tensor_cols(x), (long long)pnn_tensor_rows(y),
                         (long long)pnn_tensor_cols(y), (long long)info->x_dim, (long long)info->y_dim);
    if (b > info->max_batch)
        return PNN_ERROR(PNN_ERR_INVALID, "device %s: batch %lld over its max_batch %lld", info->uri,
                         (long long)b, (long long)info->max_batch);
    double t0 = now_s();
    pnn_status st = dev->iface->forward(dev, x, theta, y);
    dev->busy_s += now_s() - t0;
    dev->calls++;
    if (st == PNN_OK) {
        int64_t bad = dev->be->iface->count_nonfinite(dev->be->ctx, y->numel, y->data);
        if (bad)
            st = PNN_ERROR(PNN_ERR_DEVICE,
                           "device %s returned %lld NaN/Inf values in a batch of %lld (call %llu): "
                           "the physical system diverged or faulted; lower the learning rate or check "
                           "the device's input ranges",
                           info->uri, (long long)bad, (long long)b, (unsigned long long)dev->calls);
    }
    if (st != PNN_OK) snprintf(dev->last_error, sizeof dev->last_error, "%s", pnn_last_error());
    return st;
}
