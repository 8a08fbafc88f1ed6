/* Devices whose forward is a function of the host program ("callback:NAME"), and the registry of
 * such functions, devices' and twins' (include/pnn/callback.h). The twin kind that uses the
 * registry is host/twins/callback.c. */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pnn/callback.h"
#include "pnn/system.h"
#include "pnn/twin.h"

#define MAX_CALLBACKS 64

typedef struct entry {
    char name[64];
    int is_twin;
    pnn_callback_device_spec dev;
    pnn_callback_twin_spec twin;
    int open; /* devices or twins made from it and not yet closed */
} entry;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static entry table[MAX_CALLBACKS];
static int n_entries;

static entry *find(const char *name) {
    for (int i = 0; i < n_entries; i++)
        if (!strcmp(table[i].name, name)) return &table[i];
    return NULL;
}

static pnn_status check_name(const char *name) {
    size_t n = name ? strlen(name) : 0;
    if (n == 0 || n > 63)
        return PNN_ERROR(PNN_ERR_INVALID, "callback name '%s': give 1 to 63 characters", name ? name : "(null)");
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-' ||
              c == '.'))
            return PNN_ERROR(PNN_ERR_INVALID, "callback name '%s': use letters, digits, '_', '-' and '.' only "
                             "(it goes into a device URI, callback:NAME)", name);
    }
    return PNN_OK;
}

/* Adds an entry under the lock; the caller filled e except name and open. */
static pnn_status add(const char *name, const entry *e) {
    PNN_TRY(check_name(name));
    pnn_status st = PNN_OK;
    pthread_mutex_lock(&lock);
    if (find(name))
        st = PNN_ERROR(PNN_ERR_INVALID, "a callback called '%s' is already registered; unregister it first or pick "
                       "another name", name);
    else if (n_entries == MAX_CALLBACKS)
        st = PNN_ERROR(PNN_ERR_INVALID, "%d callbacks are registered, the most there can be; unregister some",
                       MAX_CALLBACKS);
    else {
        table[n_entries] = *e;
        snprintf(table[n_entries].name, sizeof table[n_entries].name, "%s", name);
        table[n_entries].open = 0;
        n_entries++;
    }
    pthread_mutex_unlock(&lock);
    return st;
}

static pnn_status check_dims(const char *name, int64_t x_dim, int64_t y_dim, int64_t theta_dim) {
    if (x_dim < 1 || y_dim < 1 || theta_dim < 1 || x_dim > PNN_DEVICE_MAX_XY_DIM || y_dim > PNN_DEVICE_MAX_XY_DIM ||
        theta_dim > PNN_DEVICE_MAX_THETA_DIM)
        return PNN_ERROR(PNN_ERR_INVALID, "callback '%s': x_dim %lld, y_dim %lld, theta_dim %lld; x_dim and y_dim "
                         "must be in [1, 2^24] and theta_dim in [1, 2^28]", name, (long long)x_dim, (long long)y_dim,
                         (long long)theta_dim);
    return PNN_OK;
}

pnn_status pnn_callback_device_register(const char *name, const pnn_callback_device_spec *spec) {
    PNN_TRY(check_name(name));
    if (!spec || !spec->forward) return PNN_ERROR(PNN_ERR_INVALID, "callback device '%s': no forward function", name);
    PNN_TRY(check_dims(name, spec->x_dim, spec->y_dim, spec->theta_dim));
    if (spec->max_batch < 0)
        return PNN_ERROR(PNN_ERR_INVALID, "callback device '%s': max_batch %lld; give 0 (no limit) or more", name,
                         (long long)spec->max_batch);
    const float *r[2] = {spec->x_range, spec->theta_range};
    for (int i = 0; i < 2; i++)
        if (!isfinite(r[i][0]) || !isfinite(r[i][1]) || r[i][0] > r[i][1])
            return PNN_ERROR(PNN_ERR_INVALID, "callback device '%s': %s range [%g, %g]; give finite lo <= hi", name,
                             i ? "theta" : "x", r[i][0], r[i][1]);
    if (memchr(spec->system, 0, sizeof spec->system) == NULL ||
        memchr(spec->system_uri, 0, sizeof spec->system_uri) == NULL)
        return PNN_ERROR(PNN_ERR_INVALID, "callback device '%s': system or system_uri is not terminated", name);
    if (pnn_system_find(spec->system) && strncmp(spec->system_uri, "sim:", 4))
        return PNN_ERROR(PNN_ERR_INVALID, "callback device '%s' says it is a %s: give its system_uri too (e.g. "
                         "sim:%s?KEY=VALUE with the instrument's own settings), which the twin reads", name,
                         spec->system, spec->system);
    entry e = {0};
    e.dev = *spec;
    return add(name, &e);
}

pnn_status pnn_callback_twin_register(const char *name, const pnn_callback_twin_spec *spec) {
    PNN_TRY(check_name(name));
    if (!spec || !spec->forward || !spec->vjp)
        return PNN_ERROR(PNN_ERR_INVALID, "callback twin '%s': it needs a forward and a vjp function", name);
    PNN_TRY(check_dims(name, spec->x_dim, spec->y_dim, spec->theta_dim));
    entry e = {0};
    e.is_twin = 1;
    e.twin = *spec;
    return add(name, &e);
}

pnn_status pnn_callback_unregister(const char *name) {
    pnn_status st = PNN_OK;
    pthread_mutex_lock(&lock);
    entry *e = name ? find(name) : NULL;
    if (!e) st = PNN_ERROR(PNN_ERR_NOT_FOUND, "no callback called '%s' is registered", name ? name : "(null)");
    else if (e->open)
        st = PNN_ERROR(PNN_ERR_INVALID, "callback '%s' is in use by %d open device(s) or twin(s); close them first",
                       name, e->open);
    else {
        *e = table[--n_entries];
        memset(&table[n_entries], 0, sizeof table[n_entries]);
    }
    pthread_mutex_unlock(&lock);
    return st;
}

/* Takes an entry of the kind asked for (counted open), copying what the caller needs. */
static pnn_status acquire(const char *name, int is_twin, entry *out) {
    pnn_status st = PNN_OK;
    PNN_TRY(check_name(name));
    pthread_mutex_lock(&lock);
    entry *e = find(name);
    if (!e) {
        char names[1024] = "";
        for (int i = 0; i < n_entries; i++)
            if (table[i].is_twin == is_twin) {
                size_t l = strlen(names), k = strlen(table[i].name);
                if (l + k + 3 >= sizeof names) break;
                if (l) memcpy(names + l, ", ", 2), l += 2;
                memcpy(names + l, table[i].name, k + 1);
            }
        st = PNN_ERROR(PNN_ERR_NOT_FOUND, "no callback %s called '%s' is registered in this process (registered: %s); "
                       "callback devices and twins exist only in the program that registered them (e.g. "
                       "pnn.register_device in Python)", is_twin ? "twin" : "device", name,
                       names[0] ? names : "none");
    } else if (e->is_twin != is_twin) {
        st = PNN_ERROR(PNN_ERR_INVALID, "callback '%s' is a %s, not a %s", name, e->is_twin ? "twin" : "device",
                       is_twin ? "twin" : "device");
    } else {
        e->open++;
        *out = *e;
    }
    pthread_mutex_unlock(&lock);
    return st;
}

void pnn_callback_release(const char *name) {
    if (!name) return;
    pthread_mutex_lock(&lock);
    entry *e = find(name);
    if (e && e->open > 0) e->open--;
    pthread_mutex_unlock(&lock);
}

pnn_status pnn_callback_twin_acquire(const char *name, pnn_callback_twin_spec *out) {
    entry e;
    PNN_TRY(acquire(name, 1, &e));
    *out = e.twin;
    return PNN_OK;
}

/* ---- the device ---- */

typedef struct callback_dev {
    char name[64];
    pnn_callback_device_spec spec;
    float *x_host, *y_host, *theta_host; /* for a backend that is not host memory */
    int64_t rows_cap;
} callback_dev;

static void cb_close(pnn_device *dev) {
    callback_dev *c = dev->impl;
    if (c) {
        pnn_callback_release(c->name);
        free(c->x_host), free(c->y_host), free(c->theta_host);
        free(c);
    }
    free(dev);
}

static pnn_status cb_forward(pnn_device *dev, const pnn_tensor *x, const float *theta, pnn_tensor *y) {
    callback_dev *c = dev->impl;
    const pnn_backend *be = dev->be;
    int64_t rows = pnn_tensor_rows(x), xd = dev->info.x_dim, yd = dev->info.y_dim, td = dev->info.theta_dim;
    int host = be == pnn_backend_cpu();
    const float *xh = x->data, *th = theta;
    float *yh = y->data;
    if (!host) {
        if (rows > c->rows_cap) {
            free(c->x_host), free(c->y_host);
            c->x_host = malloc((size_t)(rows * xd) * sizeof(float));
            c->y_host = malloc((size_t)(rows * yd) * sizeof(float));
            c->rows_cap = c->x_host && c->y_host ? rows : 0;
            if (!c->rows_cap)
                return PNN_ERROR(PNN_ERR_NOMEM, "callback device %s: out of memory for %lld rows", c->name,
                                 (long long)rows);
        }
        if (!c->theta_host && !(c->theta_host = malloc((size_t)(td ? td : 1) * sizeof(float))))
            return PNN_ERROR(PNN_ERR_NOMEM, "callback device %s: out of memory", c->name);
        be->iface->to_host(be->ctx, c->x_host, x->data, (size_t)(rows * xd) * sizeof(float));
        be->iface->to_host(be->ctx, c->theta_host, theta, (size_t)td * sizeof(float));
        xh = c->x_host, th = c->theta_host, yh = c->y_host;
    }
    char err[4096] = "";
    int rc = c->spec.forward(c->spec.user, rows, xh, th, yh, err, sizeof err);
    err[sizeof err - 1] = 0;
    if (rc == PNN_CALLBACK_FAULT)
        return PNN_ERROR(PNN_ERR_DEVICE, "callback device %s failed (call %llu): %s", c->name,
                         (unsigned long long)dev->calls, err[0] ? err : "(no message)");
    if (rc != PNN_CALLBACK_OK)
        return PNN_ERROR(PNN_ERR_FORMAT, "callback device %s: %s", c->name, err[0] ? err : "(no message)");
    if (!host) be->iface->from_host(be->ctx, y->data, c->y_host, (size_t)(rows * yd) * sizeof(float));
    return PNN_OK;
}

static const pnn_device_i cb_iface = {.forward = cb_forward, .close = cb_close};

pnn_status pnn_callback_device_open(const char *uri, const pnn_backend *be, pnn_device **out) {
    *out = NULL;
    const char *colon = uri ? strchr(uri, ':') : NULL;
    if (!colon) return PNN_ERROR(PNN_ERR_INVALID, "device URI '%s': write callback:NAME", uri ? uri : "(null)");
    const char *name = colon + 1;
    if (strchr(name, '?'))
        return PNN_ERROR(PNN_ERR_INVALID, "device URI '%s': a callback device takes no keys; write callback:NAME", uri);
    entry e;
    PNN_TRY(acquire(name, 0, &e));
    pnn_device *dev = calloc(1, sizeof *dev);
    callback_dev *c = calloc(1, sizeof *c);
    if (!dev || !c) {
        free(dev), free(c);
        pnn_callback_release(name);
        return PNN_ERROR(PNN_ERR_NOMEM, "out of memory opening %s", uri);
    }
    snprintf(c->name, sizeof c->name, "%s", name);
    c->spec = e.dev;
    dev->iface = &cb_iface;
    dev->impl = c;
    dev->be = be;
    pnn_device_info *info = &dev->info;
    snprintf(info->system, sizeof info->system, "%s", e.dev.system[0] ? e.dev.system : "callback");
    snprintf(info->uri, sizeof info->uri, "%s", uri);
    snprintf(info->system_uri, sizeof info->system_uri, "%s", e.dev.system_uri[0] ? e.dev.system_uri : uri);
    info->x_dim = e.dev.x_dim, info->y_dim = e.dev.y_dim, info->theta_dim = e.dev.theta_dim;
    info->max_batch = e.dev.max_batch > 0 ? e.dev.max_batch : 1 << 20;
    int no_range = e.dev.x_range[0] == 0 && e.dev.x_range[1] == 0;
    info->x_range[0] = no_range ? -1.0f : e.dev.x_range[0], info->x_range[1] = no_range ? 1.0f : e.dev.x_range[1];
    no_range = e.dev.theta_range[0] == 0 && e.dev.theta_range[1] == 0;
    info->theta_range[0] = no_range ? -1.0f : e.dev.theta_range[0];
    info->theta_range[1] = no_range ? 1.0f : e.dev.theta_range[1];
    info->n_theta_parts = e.dev.theta_dim > 0;
    if (e.dev.theta_dim > 0) {
        snprintf(info->theta_parts[0].name, sizeof info->theta_parts[0].name, "theta");
        info->theta_parts[0].ndim = 1;
        info->theta_parts[0].shape[0] = e.dev.theta_dim;
    }
    /* standing for one of pnn's systems: its dims must be that system's, and its controls take the
     * system's parts (C and e of an oscillator) and, unless given, its ranges */
    if (!strncmp(e.dev.system_uri, "sim:", 4)) {
        pnn_device *sim;
        pnn_status st = pnn_device_open(e.dev.system_uri, be, &sim);
        if (st != PNN_OK) {
            cb_close(dev);
            return pnn_error_prefix(st, "callback device %s, its system_uri: ", name);
        }
        const pnn_device_info *si = &sim->info;
        if (si->x_dim != info->x_dim || si->y_dim != info->y_dim || si->theta_dim != info->theta_dim) {
            st = PNN_ERROR(PNN_ERR_INVALID, "callback device %s has x_dim %lld, y_dim %lld, theta_dim %lld, but its "
                           "system_uri %s has %lld, %lld, %lld; register it with the system's dims", name,
                           (long long)info->x_dim, (long long)info->y_dim, (long long)info->theta_dim,
                           e.dev.system_uri, (long long)si->x_dim, (long long)si->y_dim, (long long)si->theta_dim);
        } else {
            snprintf(info->system, sizeof info->system, "%s", si->system);
            info->n_theta_parts = si->n_theta_parts;
            memcpy(info->theta_parts, si->theta_parts, sizeof info->theta_parts);
            if (e.dev.x_range[0] == 0 && e.dev.x_range[1] == 0)
                memcpy(info->x_range, si->x_range, sizeof info->x_range);
            if (e.dev.theta_range[0] == 0 && e.dev.theta_range[1] == 0)
                memcpy(info->theta_range, si->theta_range, sizeof info->theta_range);
        }
        pnn_device_close(sim);
        if (st != PNN_OK) {
            cb_close(dev);
            return st;
        }
    }
    *out = dev;
    return PNN_OK;
}
