/* remote: devices — the client side of pnn-device/1. A DEALER socket per device sends
 * [empty][header][x][theta] and waits for the reply to that request id until its deadline;
 * replies that come late or carry another id are dropped and counted, never delivered. The
 * ZeroMQ context is one per process, created on first use; all other state is per device, so a
 * device may be driven from a worker thread. */
#include "hwbridge/remote/protocol.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

#define DEFAULT_TIMEOUT_MS 10000
/* replies bigger than this are cut off by ZeroMQ (a broken or hostile server cannot flood us) */
#define MAX_REPLY_FRAME ((int64_t)1 << 31)

typedef struct remote_dev {
    void *sock;
    char endpoint[256];
    char token[256];
    int timeout_ms;
    uint64_t next_id;
    pnn_remote_stats stats;
    float *x_host, *theta_host;
    size_t x_cap;
    pthread_mutex_t lock;
} remote_dev;

static void *g_ctx;
static pthread_once_t g_ctx_once = PTHREAD_ONCE_INIT;
static void ctx_create(void) { g_ctx = zmq_ctx_new(); }

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}

/* ---- the URI ---- */

static const char *const known_keys = "token, token_file, timeout_ms, server_key, client_key";

typedef struct remote_uri {
    char endpoint[256], token[256], server_key[1024], client_key[1024];
    int64_t timeout_ms;
} remote_uri;

static int hexval(char c) {
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* Copies a %XX-escaped value of len bytes into dst (NUL-terminated); 0 when it does not fit or
 * an escape is broken. */
static int unescape(const char *v, size_t len, char *dst, size_t size) {
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        char c = v[i];
        if (c == '%') {
            if (i + 2 >= len) return 0;
            int hi = hexval(v[i + 1]), lo = hexval(v[i + 2]);
            if (hi < 0 || lo < 0) return 0;
            c = (char)(hi * 16 + lo);
            i += 2;
        }
        if (o + 1 >= size) return 0;
        dst[o++] = c;
    }
    dst[o] = '\0';
    return 1;
}

static pnn_status read_token_file(const char *uri, const char *path, char *token, size_t size) {
    FILE *f = fopen(path, "r");
    if (!f) return PNN_ERROR(PNN_ERR_NOT_FOUND, "%s: cannot open token_file '%s': %s", uri, path, strerror(errno));
    char *got = fgets(token, (int)size, f);
    fclose(f);
    if (!got) return PNN_ERROR(PNN_ERR_INVALID, "%s: token_file '%s' is empty", uri, path);
    token[strcspn(token, "\r\n")] = '\0';
    return PNN_OK;
}

static pnn_status parse_uri(const char *uri, remote_uri *u) {
    memset(u, 0, sizeof *u);
    u->timeout_ms = DEFAULT_TIMEOUT_MS;
    const char *ep = uri + strlen("remote:"), *q = strchr(ep, '?');
    size_t ep_len = q ? (size_t)(q - ep) : strlen(ep);
    if ((strncmp(ep, "tcp://", 6) && strncmp(ep, "ipc://", 6)) || ep_len <= 6 || ep_len > 240)
        return PNN_ERROR(PNN_ERR_INVALID,
                         "device URI '%s': expected remote:tcp://HOST:PORT or remote:ipc://PATH, e.g. "
                         "remote:tcp://127.0.0.1:5555?token=...",
                         uri);
    memcpy(u->endpoint, ep, ep_len);
    int have_token = 0;
    for (const char *p = q ? q + 1 : NULL; p && *p;) {
        const char *amp = strchr(p, '&');
        size_t len = amp ? (size_t)(amp - p) : strlen(p);
        const char *eq = memchr(p, '=', len);
        if (!eq || eq == p)
            return PNN_ERROR(PNN_ERR_INVALID, "device URI '%s': parameter '%.*s' is not key=value", uri, (int)len, p);
        size_t klen = (size_t)(eq - p), vlen = len - klen - 1;
        char key[32], val[1024];
        if (klen >= sizeof key || !unescape(eq + 1, vlen, val, sizeof val))
            return PNN_ERROR(PNN_ERR_INVALID, "device URI '%s': parameter '%.*s' is too long or badly %%-escaped",
                             uri, (int)klen, p);
        memcpy(key, p, klen);
        key[klen] = '\0';
        if (!strcmp(key, "token") || !strcmp(key, "token_file")) {
            if (have_token++)
                return PNN_ERROR(PNN_ERR_INVALID, "device URI '%s': give one of token= and token_file=", uri);
            if (key[5] == '_') PNN_TRY(read_token_file(uri, val, u->token, sizeof u->token));
            else if (strlen(val) >= sizeof u->token)
                return PNN_ERROR(PNN_ERR_INVALID, "device URI '%s': the token is over 255 characters", uri);
            else snprintf(u->token, sizeof u->token, "%.255s", val);
        } else if (!strcmp(key, "timeout_ms")) {
            char *end;
            long long t = strtoll(val, &end, 10);
            if (end == val || *end || t < 1 || t > 86400000)
                return PNN_ERROR(PNN_ERR_INVALID, "device URI '%s': timeout_ms=%s: expected milliseconds in [1, 86400000]",
                                 uri, val);
            u->timeout_ms = t;
        } else if (!strcmp(key, "server_key")) {
            snprintf(u->server_key, sizeof u->server_key, "%s", val);
        } else if (!strcmp(key, "client_key")) {
            snprintf(u->client_key, sizeof u->client_key, "%s", val);
        } else {
            return PNN_ERROR(PNN_ERR_INVALID, "unknown parameter '%s' for a remote device ('%s'); known: %s", key,
                             uri, known_keys);
        }
        if (!amp) break;
        p = amp + 1;
    }
    if (!u->server_key[0] != !u->client_key[0])
        return PNN_ERROR(PNN_ERR_INVALID,
                         "device URI '%s': CURVE needs both server_key= (the server's public key or .pub file) "
                         "and client_key= (this client's key pair file, from pnn keygen)",
                         uri);
    return PNN_OK;
}

/* ---- one request ---- */

/* Sends [empty][header][payloads...]. */
static pnn_status send_request(remote_dev *r, const char *header, const void *x, size_t xb, const void *t,
                               size_t tb) {
    pnn_status st = PNN_OK;
    /* blocks only while the send queue is full (server gone for long); SNDTIMEO bounds it */
    int rc = zmq_send(r->sock, "", 0, ZMQ_SNDMORE);
    if (rc == -1 && zmq_errno() == EAGAIN)
        return PNN_ERROR(PNN_ERR_TIMEOUT, "remote device %s: could not send a request within %d ms (send queue "
                         "full: is the server running?)", r->endpoint, r->timeout_ms);
    PNN_ZMQ_CHECK_RC(rc, "zmq_send(r->sock, \"\", 0, ZMQ_SNDMORE)");
    PNN_ZMQ_CHECK(zmq_send(r->sock, header, strlen(header), x ? ZMQ_SNDMORE : 0));
    if (x) {
        PNN_ZMQ_CHECK(zmq_send(r->sock, x, xb, ZMQ_SNDMORE));
        PNN_ZMQ_CHECK(zmq_send(r->sock, t, tb, 0));
    }
    r->stats.requests++;
fail:
    return st;
}

/* Waits for the reply to request id until the deadline. Other replies are dropped and counted.
 * On success the header is parsed into rep and the payload (if any, at most one frame of
 * payload_size bytes) copied into payload. */
static pnn_status wait_reply(remote_dev *r, const char *what, uint64_t id, double deadline, pnn_proto_reply *rep,
                             void *payload, size_t payload_size) {
    pnn_status st = PNN_OK;
    zmq_msg_t f[4];
    int n = 0;
    for (;;) {
        int left = (int)ceil(deadline - now_ms());
        zmq_pollitem_t item = {r->sock, 0, ZMQ_POLLIN, 0};
        int rc = left > 0 ? zmq_poll(&item, 1, left) : 0;
        if (rc == -1 && zmq_errno() == EINTR) continue;
        PNN_ZMQ_CHECK_RC(rc, "zmq_poll(&item, 1, left)");
        if (rc == 0) {
            r->stats.timeouts++;
            return PNN_ERROR(PNN_ERR_TIMEOUT,
                             "remote device %s did not answer %s (request %llu) within %d ms; it may still be "
                             "working on it (a late reply is dropped). Raise timeout_ms= in the device URI or "
                             "check the server",
                             r->endpoint, what, (unsigned long long)id, r->timeout_ms);
        }
        /* one message: [empty][header][payload...], kept up to 4 frames */
        int more = 1, total = 0;
        n = 0;
        while (more) {
            zmq_msg_t m;
            zmq_msg_init(&m);
            while ((rc = zmq_msg_recv(&m, r->sock, 0)) == -1 && zmq_errno() == EINTR) {}
            if (rc == -1) zmq_msg_close(&m);
            PNN_ZMQ_CHECK_RC(rc, "zmq_msg_recv(&m, r->sock, 0)");
            more = zmq_msg_more(&m);
            total++;
            if (n < 4) f[n++] = m;
            else zmq_msg_close(&m);
        }
        int env = n > 0 && zmq_msg_size(&f[0]) == 0;   /* the empty delimiter */
        pnn_proto_reply tmp;
        pnn_status pst = n > env ? pnn_proto_parse_reply(zmq_msg_data(&f[env]), zmq_msg_size(&f[env]), &tmp)
                                 : PNN_ERROR(PNN_ERR_FORMAT, "an empty reply");
        if (pst != PNN_OK || !tmp.has_id || tmp.id != id) {
            /* late (its request already timed out), unknown, or unreadable: never delivered */
            r->stats.late_or_unknown_replies++;
            for (int i = 0; i < n; i++) zmq_msg_close(&f[i]);
            n = 0;
            continue;
        }
        *rep = tmp;
        r->stats.replies++;
        int n_payload = total - env - 1;
        if (!rep->ok) {
            r->stats.error_replies++;
        } else if (n_payload != (payload ? 1 : 0) || (payload && zmq_msg_size(&f[env + 1]) != payload_size)) {
            st = PNN_ERROR(PNN_ERR_FORMAT,
                           "remote device %s: the reply to %s (request %llu) has %d payload frame(s) of %zu bytes; "
                           "expected %d of %zu: the server does not follow pnn-device/1",
                           r->endpoint, what, (unsigned long long)id, n_payload,
                           n_payload > 0 && n > env + 1 ? zmq_msg_size(&f[env + 1]) : (size_t)0, payload ? 1 : 0,
                           payload_size);
        } else if (payload) {
            memcpy(payload, zmq_msg_data(&f[env + 1]), payload_size);
        }
        goto fail;
    }
fail:
    for (int i = 0; i < n; i++) zmq_msg_close(&f[i]);
    return st;
}

/* The status for an ok: false reply, with the server's message and what to do about it. */
static pnn_status reply_error(remote_dev *r, const char *what, const pnn_proto_reply *rep) {
    const char *hint = "";
    pnn_status s = PNN_ERR_INVALID;
    switch (rep->error) {
    case PNN_REMOTE_DEVICE_FAULT:
    case PNN_REMOTE_BUSY: hint = "; the request may be retried"; s = PNN_ERR_DEVICE; break;
    case PNN_REMOTE_UNAUTHORIZED:
        hint = "; pass token=SECRET (or token_file=PATH) in the device URI, the token the server was started "
               "with (pnn serve --token)";
        break;
    case PNN_REMOTE_TOO_LARGE: hint = "; use a smaller batch or raise the server's limit (pnn serve --max-bytes)"; break;
    case PNN_REMOTE_UNKNOWN_OP: hint = "; the server may speak another protocol version than pnn-device/1"; break;
    case PNN_REMOTE_BAD_REQUEST:
    case PNN_REMOTE_BAD_SHAPE:
        hint = "; client and server disagree on the request (both must speak pnn-device/1, with the dims of info)";
        break;
    default: s = PNN_ERR_DEVICE; hint = "; an error code this client does not know"; break;
    }
    return PNN_ERROR(s, "remote device %s refused %s: %s: %s%s", r->endpoint, what, rep->error_name,
                     rep->message[0] ? rep->message : "(no message)", hint);
}

/* ---- the device ---- */

static void remote_close(pnn_device *dev) {
    if (!dev) return;
    remote_dev *r = dev->impl;
    if (r) {
        if (r->sock) zmq_close(r->sock);
        free(r->x_host);
        free(r->theta_host);
        pthread_mutex_destroy(&r->lock);
        memset(r->token, 0, sizeof r->token);
        free(r);
    }
    free(dev);
}

/* 0 when every value is inside [lo, hi]; else index + 1 of the first one that is not */
static int64_t outside(const float *v, int64_t n, const float range[2]) {
    for (int64_t i = 0; i < n; i++)
        if (!(v[i] >= range[0] && v[i] <= range[1])) return i + 1;
    return 0;
}

static pnn_status remote_forward(pnn_device *dev, const pnn_tensor *x, const float *theta, pnn_tensor *y) {
    remote_dev *r = dev->impl;
    const pnn_device_info *info = &dev->info;
    const pnn_backend *be = dev->be;
    int64_t b = pnn_tensor_rows(x);
    size_t xb = (size_t)(b * info->x_dim) * sizeof(float), tb = (size_t)info->theta_dim * sizeof(float);
    size_t yb = (size_t)(b * info->y_dim) * sizeof(float);
    pnn_status st = PNN_OK;
    char *header = NULL;
    float *y_host = NULL;
    pthread_mutex_lock(&r->lock);
    size_t need = xb > yb ? xb : yb;
    if (need > r->x_cap) {
        float *p = realloc(r->x_host, need);
        if (!p) {
            st = PNN_ERROR(PNN_ERR_NOMEM, "remote device %s: out of memory for a batch of %lld", r->endpoint, (long long)b);
            goto fail;
        }
        r->x_host = p;
        r->x_cap = need;
    }
    be->iface->to_host(be->ctx, r->x_host, x->data, xb);
    be->iface->to_host(be->ctx, r->theta_host, theta, tb);
    int64_t at = outside(r->x_host, b * info->x_dim, info->x_range);
    if (at) {
        st = PNN_ERROR(PNN_ERR_INVALID, "remote device %s: x[%lld] = %g is outside the device's x_range [%g, %g]",
                       r->endpoint, (long long)(at - 1), r->x_host[at - 1], info->x_range[0], info->x_range[1]);
        goto fail;
    }
    if ((at = outside(r->theta_host, info->theta_dim, info->theta_range))) {
        st = PNN_ERROR(PNN_ERR_INVALID,
                       "remote device %s: theta[%lld] = %g is outside the device's theta_range [%g, %g]; clip the "
                       "controls or lower the learning rate",
                       r->endpoint, (long long)(at - 1), r->theta_host[at - 1], info->theta_range[0],
                       info->theta_range[1]);
        goto fail;
    }
    uint64_t id = ++r->next_id;
    header = pnn_proto_request_header("forward", id, r->token, b, 0);
    if (!header) {
        st = PNN_ERROR(PNN_ERR_NOMEM, "remote device %s: out of memory building a request", r->endpoint);
        goto fail;
    }
    double deadline = now_ms() + r->timeout_ms;
    PNN_GOTO(send_request(r, header, r->x_host, xb, r->theta_host, tb));
    pnn_proto_reply rep;
    /* x is sent: its host buffer now takes y */
    y_host = r->x_host;
    PNN_GOTO(wait_reply(r, "forward", id, deadline, &rep, y_host, yb));
    if (!rep.ok) {
        st = reply_error(r, "forward", &rep);
        goto fail;
    }
    if (rep.batch != b) {
        st = PNN_ERROR(PNN_ERR_FORMAT, "remote device %s: the forward reply says batch %lld for a batch of %lld",
                       r->endpoint, (long long)rep.batch, (long long)b);
        goto fail;
    }
    be->iface->from_host(be->ctx, y->data, y_host, yb);
fail:
    free(header);
    pthread_mutex_unlock(&r->lock);
    return st;
}

static const pnn_device_i remote_iface = {.forward = remote_forward, .close = remote_close, .input_noise = NULL};

/* Fills dev->info from an info reply, checking everything the server claims. */
static pnn_status fill_info(pnn_device *dev, const pnn_proto_reply *rep) {
    remote_dev *r = dev->impl;
    pnn_device_info *info = &dev->info;
    const int64_t lim = (int64_t)1 << 31;
    if (strcmp(rep->protocol, PNN_PROTO_VERSION))
        return PNN_ERROR(PNN_ERR_UNSUPPORTED, "remote device %s speaks protocol '%s'; this pnn speaks %s", r->endpoint,
                         rep->protocol[0] ? rep->protocol : "(none)", PNN_PROTO_VERSION);
    if (rep->x_dim < 1 || rep->x_dim > lim || rep->y_dim < 1 || rep->y_dim > lim || rep->theta_dim < 1 ||
        rep->theta_dim > lim || rep->max_batch < 1 || !rep->name[0] || rep->malformed)
        return PNN_ERROR(PNN_ERR_FORMAT,
                         "remote device %s: its info reply lacks or garbles %s (x_dim %lld, y_dim %lld, theta_dim "
                         "%lld, max_batch %lld, name '%s'): the server does not follow pnn-device/1",
                         r->endpoint, rep->malformed ? rep->malformed : "a field", (long long)rep->x_dim,
                         (long long)rep->y_dim, (long long)rep->theta_dim, (long long)rep->max_batch, rep->name);
    snprintf(info->system, sizeof info->system, "%s", rep->name);
    info->x_dim = rep->x_dim;
    info->y_dim = rep->y_dim;
    info->theta_dim = rep->theta_dim;
    info->max_batch = rep->max_batch;
    memcpy(info->x_range, rep->x_range, sizeof info->x_range);
    memcpy(info->theta_range, rep->theta_range, sizeof info->theta_range);
    int64_t sum = 0;
    for (int i = 0; i < rep->n_theta_parts; i++)
        sum += rep->theta_parts[i].shape[0] * (rep->theta_parts[i].ndim == 2 ? rep->theta_parts[i].shape[1] : 1);
    if (rep->n_theta_parts > 0 && sum == rep->theta_dim) {
        info->n_theta_parts = rep->n_theta_parts;
        memcpy(info->theta_parts, rep->theta_parts, sizeof info->theta_parts);
    } else {
        info->n_theta_parts = 1;
        info->theta_parts[0] = (pnn_theta_part){"theta", 1, {rep->theta_dim, 0}};
    }
    /* a twin reads the system's settings (n, nt, dt, noise...) from system_uri: the server's,
     * or, when it names none, just the system with default settings */
    pnn_uri parsed;
    if (rep->system_uri[0] && pnn_uri_parse(rep->system_uri, &parsed) == PNN_OK)
        snprintf(info->system_uri, sizeof info->system_uri, "%s", rep->system_uri);
    else
        snprintf(info->system_uri, sizeof info->system_uri, "remote:%s", info->system);
    pnn_error_clear();
    return PNN_OK;
}

pnn_status pnn_remote_open(const char *uri, const pnn_backend *be, pnn_device **out) {
    pnn_status st = PNN_OK;
    *out = NULL;
    remote_uri u;
    PNN_TRY(parse_uri(uri, &u));
    pthread_once(&g_ctx_once, ctx_create);
    if (!g_ctx) return PNN_ERROR(PNN_ERR_IO, "zmq_ctx_new failed: %s", zmq_strerror(zmq_errno()));
    pnn_device *dev = calloc(1, sizeof *dev);
    remote_dev *r = calloc(1, sizeof *r);
    char *header = NULL;
    if (!dev || !r) {
        free(dev);
        free(r);
        return PNN_ERROR(PNN_ERR_NOMEM, "out of memory opening %s", uri);
    }
    pthread_mutex_init(&r->lock, NULL);
    dev->iface = &remote_iface;
    dev->be = be;
    dev->impl = r;
    snprintf(r->endpoint, sizeof r->endpoint, "%s", u.endpoint);
    snprintf(r->token, sizeof r->token, "%s", u.token);
    memset(u.token, 0, sizeof u.token);
    r->timeout_ms = (int)u.timeout_ms;
    snprintf(dev->info.uri, sizeof dev->info.uri, "remote:%.240s", u.endpoint);

    r->sock = zmq_socket(g_ctx, ZMQ_DEALER);
    if (!r->sock) PNN_ZMQ_CHECK_RC(-1, "zmq_socket(g_ctx, ZMQ_DEALER)");
    int zero = 0;
    int64_t max_frame = MAX_REPLY_FRAME;
    PNN_ZMQ_CHECK(zmq_setsockopt(r->sock, ZMQ_LINGER, &zero, sizeof zero));
    PNN_ZMQ_CHECK(zmq_setsockopt(r->sock, ZMQ_MAXMSGSIZE, &max_frame, sizeof max_frame));
    PNN_ZMQ_CHECK(zmq_setsockopt(r->sock, ZMQ_SNDTIMEO, &r->timeout_ms, sizeof r->timeout_ms));
    if (u.server_key[0]) {
        char server_pub[41], pub[41], sec[41];
        st = pnn_remote_key_public(u.server_key, server_pub);
        if (st == PNN_OK) st = pnn_remote_key_read(u.client_key, pub, sec);
        if (st != PNN_OK) {
            pnn_error_prefix(st, "remote device %s: ", u.endpoint);
            goto fail;
        }
        PNN_ZMQ_CHECK(zmq_setsockopt(r->sock, ZMQ_CURVE_SERVERKEY, server_pub, 41));
        PNN_ZMQ_CHECK(zmq_setsockopt(r->sock, ZMQ_CURVE_PUBLICKEY, pub, 41));
        PNN_ZMQ_CHECK(zmq_setsockopt(r->sock, ZMQ_CURVE_SECRETKEY, sec, 41));
        memset(sec, 0, sizeof sec);
    }
    PNN_ZMQ_CHECK(zmq_connect(r->sock, u.endpoint));

    /* ask what the device is: the first request, so an absent server shows at open */
    uint64_t id = ++r->next_id;
    header = pnn_proto_request_header("info", id, r->token, 0, 0);
    if (!header) {
        st = PNN_ERROR(PNN_ERR_NOMEM, "out of memory opening %s", uri);
        goto fail;
    }
    double deadline = now_ms() + r->timeout_ms;
    pnn_proto_reply rep;
    st = send_request(r, header, NULL, 0, NULL, 0);
    if (st == PNN_OK) st = wait_reply(r, "info", id, deadline, &rep, NULL, 0);
    if (st == PNN_ERR_TIMEOUT) {
        st = PNN_ERROR(PNN_ERR_DEVICE,
                       "no remote device answered at %s within %d ms: start a server there, e.g. pnn serve "
                       "'sim:oscillator?n=100' --bind %s (or tools/pnn-device-server.py)%s",
                       u.endpoint, r->timeout_ms, u.endpoint,
                       u.server_key[0] ? ", and check that server_key= is that server's public key and that it "
                                         "lists this client's key (--allow-client)"
                                       : "; a server started with --curve-key needs server_key= and client_key=");
        goto fail;
    }
    if (st != PNN_OK) goto fail;
    if (!rep.ok) {
        st = reply_error(r, "info", &rep);
        goto fail;
    }
    PNN_GOTO(fill_info(dev, &rep));
    r->theta_host = malloc((size_t)dev->info.theta_dim * sizeof(float));
    if (!r->theta_host) {
        st = PNN_ERROR(PNN_ERR_NOMEM, "remote device %s: out of memory for %lld controls", u.endpoint,
                       (long long)dev->info.theta_dim);
        goto fail;
    }
    free(header);
    *out = dev;
    return PNN_OK;
fail:
    free(header);
    remote_close(dev);
    return st;
}

pnn_status pnn_remote_stats_get(const pnn_device *dev, pnn_remote_stats *out) {
    memset(out, 0, sizeof *out);
    if (!dev || dev->iface != &remote_iface)
        return PNN_ERROR(PNN_ERR_INVALID, "pnn_remote_stats_get: %s is not a remote device",
                         dev ? dev->info.uri : "(null)");
    remote_dev *r = dev->impl;
    pthread_mutex_lock(&r->lock);
    *out = r->stats;
    pthread_mutex_unlock(&r->lock);
    return PNN_OK;
}
