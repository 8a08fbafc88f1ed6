/* The pnn-device/1 server: serves any pnn_device on a ROUTER (or REP) socket. Every message goes
 * through pnn_server_handle_message, which checks the whole request (protocol.c) before it
 * allocates or touches the device, and always produces exactly one reply, so a bad request never
 * stops the server. CURVE clients are let in by a ZAP handler (RFC 27) that accepts only the
 * listed public keys; each server has its own ZeroMQ context, so its ZAP endpoint is its own. */
#include "hwbridge/remote/protocol.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zmq.h>

#define MAX_ALLOWED_KEYS 1024

struct pnn_server {
    pnn_device *dev;
    pnn_proto_limits lim;
    char token[256];
    int use_rep, poll_ms;
    void *ctx, *sock, *zap;
    char endpoint[256];
    uint8_t (*allowed)[32];      /* raw CURVE public keys let in */
    int n_allowed;
    float *theta;                /* backend memory, theta_dim floats */
    pnn_tensor x, y;             /* backend buffers, grown to the largest batch seen */
    void *y_host;
    size_t y_host_cap;
    pnn_server_stats stats;
    pthread_mutex_t lock;
};

/* ---- answering one message (no sockets) ---- */

static pnn_remote_error fault_from_status(pnn_status st) {
    return st == PNN_ERR_INVALID ? PNN_REMOTE_BAD_REQUEST : PNN_REMOTE_DEVICE_FAULT;
}

/* Runs a checked forward request on the device; y lands in s->y_host. */
static pnn_remote_error run_forward(pnn_server *s, const pnn_proto_request *req, char *msg, size_t ms) {
    pnn_device *dev = s->dev;
    const pnn_backend *be = dev->be;
    int64_t b = req->batch, xd = s->lim.x_dim, yd = s->lim.y_dim, td = s->lim.theta_dim;
    size_t y_bytes = (size_t)(b * yd) * sizeof(float);
    pnn_status st = pnn_tensor_reshape2(&s->x, b, xd);
    if (st == PNN_OK) st = pnn_tensor_reshape2(&s->y, b, yd);
    if (st == PNN_OK && y_bytes > s->y_host_cap) {
        void *p = realloc(s->y_host, y_bytes);
        if (p) s->y_host = p, s->y_host_cap = y_bytes;
        else st = PNN_ERROR(PNN_ERR_NOMEM, "out of memory for a reply of %zu bytes", y_bytes);
    }
    if (st != PNN_OK) {
        snprintf(msg, ms, "the server ran out of memory for a batch of %lld; try a smaller batch", (long long)b);
        return PNN_REMOTE_BUSY;
    }
    be->iface->from_host(be->ctx, s->x.data, req->x, (size_t)(b * xd) * sizeof(float));
    if (!req->theta_per_sample) {
        be->iface->from_host(be->ctx, s->theta, req->theta, (size_t)td * sizeof(float));
        st = pnn_device_forward(dev, &s->x, s->theta, &s->y);
    } else {
        /* one device call per sample: the device takes one theta per call */
        for (int64_t i = 0; i < b && st == PNN_OK; i++) {
            pnn_tensor xi, yi;
            int64_t xs[2] = {1, xd}, ys[2] = {1, yd};
            pnn_tensor_view(&xi, be, s->x.data + i * xd, 2, xs);
            pnn_tensor_view(&yi, be, s->y.data + i * yd, 2, ys);
            be->iface->from_host(be->ctx, s->theta, (const char *)req->theta + (size_t)(i * td) * sizeof(float),
                                 (size_t)td * sizeof(float));
            st = pnn_device_forward(dev, &xi, s->theta, &yi);
        }
    }
    if (st != PNN_OK) {
        snprintf(msg, ms, "%s", pnn_last_error());
        return fault_from_status(st);
    }
    be->iface->to_host(be->ctx, s->y_host, s->y.data, y_bytes);
    return PNN_REMOTE_OK;
}

pnn_status pnn_server_handle_message(pnn_server *s, const pnn_proto_frame *frames, int n_frames,
                                     pnn_server_reply *reply) {
    memset(reply, 0, sizeof *reply);
    char msg[PNN_PROTO_MAX_MESSAGE];
    pnn_proto_request req;
    pnn_remote_error e = pnn_proto_parse_request(frames, n_frames, &s->lim, &req, msg, sizeof msg);
    if (e == PNN_REMOTE_OK) {
        if (req.op == PNN_OP_INFO) reply->header = pnn_proto_info_reply(req.id, &s->dev->info);
        else if (req.op == PNN_OP_PING) reply->header = pnn_proto_ping_reply(req.id);
        else if ((e = run_forward(s, &req, msg, sizeof msg)) == PNN_REMOTE_OK) {
            reply->header = pnn_proto_forward_reply(req.id, req.batch);
            reply->payload = s->y_host;
            reply->payload_size = (size_t)(req.batch * s->lim.y_dim) * sizeof(float);
        }
    }
    if (e != PNN_REMOTE_OK) reply->header = pnn_proto_error_reply(req.has_id, req.id, e, msg);
    pthread_mutex_lock(&s->lock);
    s->stats.requests++;
    if (e == PNN_REMOTE_OK) s->stats.ok++;
    else s->stats.errors[e]++;
    if (e == PNN_REMOTE_OK && req.op == PNN_OP_FORWARD) s->stats.forward_rows += (uint64_t)req.batch;
    for (int i = 0; i < n_frames; i++) s->stats.bytes_in += frames[i].size;
    pthread_mutex_unlock(&s->lock);
    if (!reply->header) {
        reply->payload = NULL;
        return PNN_ERROR(PNN_ERR_NOMEM, "pnn serve: out of memory building a reply");
    }
    return PNN_OK;
}

/* ---- setting up ---- */

/* 1 for loopback TCP hosts (127.x.x.x, localhost, ::1); ipc:// and inproc:// count as local */
static int endpoint_is_local(const char *ep) {
    if (strncmp(ep, "tcp://", 6)) return 1;
    const char *host = ep + 6, *colon = strrchr(host, ':');
    size_t len = colon ? (size_t)(colon - host) : strlen(host);
    char h[128];
    if (len >= sizeof h) return 0;
    memcpy(h, host, len);
    h[len] = '\0';
    if (h[0] == '[' && len > 2 && h[len - 1] == ']') {
        memmove(h, h + 1, len - 2);
        h[len - 2] = '\0';
    }
    return !strncmp(h, "127.", 4) || !strcmp(h, "localhost") || !strcmp(h, "::1");
}

static pnn_status add_allowed_key(pnn_server *s, const char *key_or_path) {
    char z85[41];
    PNN_TRY(pnn_remote_key_public(key_or_path, z85));
    if (s->n_allowed >= MAX_ALLOWED_KEYS)
        return PNN_ERROR(PNN_ERR_CONFIG, "more than %d allowed client keys", MAX_ALLOWED_KEYS);
    zmq_z85_decode(s->allowed[s->n_allowed++], z85);
    return PNN_OK;
}

/* An allowed client: a Z85 key, a key file, or a directory whose *.pub files are key files. */
static pnn_status add_allowed(pnn_server *s, const char *what) {
    struct stat sb;
    if (stat(what, &sb) != 0 || !S_ISDIR(sb.st_mode)) return add_allowed_key(s, what);
    DIR *d = opendir(what);
    if (!d) return PNN_ERROR(PNN_ERR_NOT_FOUND, "cannot read the key directory '%s': %s", what, strerror(errno));
    pnn_status st = PNN_OK;
    int found = 0;
    struct dirent *e;
    while (st == PNN_OK && (e = readdir(d))) {
        size_t len = strlen(e->d_name);
        if (len < 5 || strcmp(e->d_name + len - 4, ".pub")) continue;
        char path[4400];
        snprintf(path, sizeof path, "%s/%s", what, e->d_name);
        st = add_allowed_key(s, path);
        found++;
    }
    closedir(d);
    if (st == PNN_OK && !found)
        st = PNN_ERROR(PNN_ERR_CONFIG, "the key directory '%s' holds no *.pub client key files", what);
    return st;
}

/* What both a socket server and a detached one need: limits, buffers, stats. */
static pnn_status server_init(pnn_device *dev, const pnn_server_config *cfg, pnn_server **out) {
    *out = NULL;
    pnn_server *s = calloc(1, sizeof *s);
    if (!s) return PNN_ERROR(PNN_ERR_NOMEM, "out of memory creating a server");
    pthread_mutex_init(&s->lock, NULL);
    s->dev = dev;
    const pnn_device_info *info = &dev->info;
    if (cfg->token && strlen(cfg->token) >= sizeof s->token) {
        free(s);
        return PNN_ERROR(PNN_ERR_CONFIG, "the token is over %zu characters", sizeof s->token - 1);
    }
    snprintf(s->token, sizeof s->token, "%s", cfg->token ? cfg->token : "");
    s->lim = (pnn_proto_limits){.x_dim = info->x_dim, .theta_dim = info->theta_dim, .y_dim = info->y_dim,
                                .max_batch = info->max_batch,
                                .x_range = {info->x_range[0], info->x_range[1]},
                                .theta_range = {info->theta_range[0], info->theta_range[1]},
                                .max_message = cfg->max_message_bytes ? cfg->max_message_bytes
                                                                      : PNN_SERVER_DEFAULT_MAX_BYTES,
                                .token = s->token};
    s->use_rep = cfg->use_rep;
    s->poll_ms = cfg->poll_ms > 0 ? cfg->poll_ms : 100;
    s->x.backend = s->y.backend = dev->be;
    s->theta = dev->be->iface->alloc(dev->be->ctx, (size_t)info->theta_dim * sizeof(float));
    if (!s->theta) {
        free(s);
        return PNN_ERROR(PNN_ERR_NOMEM, "out of memory for the %lld controls of %s", (long long)info->theta_dim,
                         info->uri);
    }
    *out = s;
    return PNN_OK;
}

pnn_status pnn_server_create_detached(pnn_device *dev, const pnn_server_config *cfg, pnn_server **out) {
    return server_init(dev, cfg, out);
}

pnn_status pnn_server_create(pnn_device *dev, const pnn_server_config *cfg, pnn_server **out) {
    pnn_status st = PNN_OK;
    pnn_server *s = NULL;
    const char *bind = cfg->bind && cfg->bind[0] ? cfg->bind : PNN_SERVER_DEFAULT_BIND;
    int curve = cfg->curve_key_file != NULL;
    *out = NULL;
    if (!curve && !cfg->insecure && !endpoint_is_local(bind))
        return PNN_ERROR(PNN_ERR_CONFIG,
                         "refusing to serve on %s without CURVE: anyone who can reach that address could drive "
                         "the device and read its outputs, and a token would cross the network in clear. Use "
                         "--curve-key FILE --allow-client CLIENT.pub (make keys with pnn keygen), or bind "
                         "tcp://127.0.0.1:PORT and tunnel, or pass --insecure on a network you trust",
                         bind);
    if (curve && cfg->n_allow_clients < 1)
        return PNN_ERROR(PNN_ERR_CONFIG,
                         "CURVE without an allowed client key would serve anyone who knows the server's public "
                         "key: name the clients with --allow-client CLIENT.pub (or a directory of .pub files)");
    PNN_TRY(server_init(dev, cfg, &s));
    char pub[41], sec[41];
    if (curve) {
        PNN_GOTO(pnn_remote_key_read(cfg->curve_key_file, pub, sec));
        s->allowed = calloc(MAX_ALLOWED_KEYS, sizeof *s->allowed);
        if (!s->allowed) {
            st = PNN_ERROR(PNN_ERR_NOMEM, "out of memory for client keys");
            goto fail;
        }
        for (int i = 0; i < cfg->n_allow_clients; i++) PNN_GOTO(add_allowed(s, cfg->allow_clients[i]));
    }
    s->ctx = zmq_ctx_new();
    if (!s->ctx) {
        st = PNN_ERROR(PNN_ERR_IO, "zmq_ctx_new failed: %s", zmq_strerror(zmq_errno()));
        goto fail;
    }
    int zero = 0, one = 1;
    if (curve) {
        /* the ZAP handler must be bound before any client can connect */
        s->zap = zmq_socket(s->ctx, ZMQ_REP);
        if (!s->zap) PNN_ZMQ_CHECK_RC(-1, "zmq_socket(s->ctx, ZMQ_REP)");
        PNN_ZMQ_CHECK(zmq_setsockopt(s->zap, ZMQ_LINGER, &zero, sizeof zero));
        PNN_ZMQ_CHECK(zmq_bind(s->zap, "inproc://zeromq.zap.01"));
    }
    s->sock = zmq_socket(s->ctx, s->use_rep ? ZMQ_REP : ZMQ_ROUTER);
    if (!s->sock) PNN_ZMQ_CHECK_RC(-1, "zmq_socket(s->ctx, ZMQ_ROUTER or ZMQ_REP)");
    PNN_ZMQ_CHECK(zmq_setsockopt(s->sock, ZMQ_LINGER, &zero, sizeof zero));
    /* frames far over the message limit are cut off by ZeroMQ itself (the peer is disconnected),
     * so a hostile client cannot make the server hold more than this in memory */
    int64_t hard_cap = s->lim.max_message > ((size_t)1 << 40) ? -1 : (int64_t)s->lim.max_message * 2 + 65536;
    PNN_ZMQ_CHECK(zmq_setsockopt(s->sock, ZMQ_MAXMSGSIZE, &hard_cap, sizeof hard_cap));
    if (curve) {
        PNN_ZMQ_CHECK(zmq_setsockopt(s->sock, ZMQ_CURVE_SERVER, &one, sizeof one));
        PNN_ZMQ_CHECK(zmq_setsockopt(s->sock, ZMQ_CURVE_SECRETKEY, sec, 41));
        PNN_ZMQ_CHECK(zmq_setsockopt(s->sock, ZMQ_ZAP_DOMAIN, "pnn", 3));
    }
    memset(sec, 0, sizeof sec);
    if (zmq_bind(s->sock, bind) != 0) {
        st = PNN_ERROR(PNN_ERR_DEVICE, "cannot bind %s: %s (ZeroMQ call zmq_bind at %s:%d); pick another --bind "
                       "endpoint (tcp://127.0.0.1:* takes a free port)", bind, zmq_strerror(zmq_errno()),
                       __FILE__, __LINE__);
        goto fail;
    }
    size_t len = sizeof s->endpoint;
    PNN_ZMQ_CHECK(zmq_getsockopt(s->sock, ZMQ_LAST_ENDPOINT, s->endpoint, &len));
    *out = s;
    return PNN_OK;
fail:
    memset(sec, 0, sizeof sec);
    pnn_server_free(s);
    return st;
}

const char *pnn_server_endpoint(const pnn_server *s) { return s->endpoint; }

void pnn_server_get_stats(pnn_server *s, pnn_server_stats *out) {
    pthread_mutex_lock(&s->lock);
    *out = s->stats;
    pthread_mutex_unlock(&s->lock);
}

void pnn_server_free(pnn_server *s) {
    if (!s) return;
    if (s->sock) zmq_close(s->sock);
    if (s->zap) zmq_close(s->zap);
    if (s->ctx) zmq_ctx_term(s->ctx);
    if (s->theta) s->dev->be->iface->release(s->dev->be->ctx, s->theta);
    pnn_tensor_free(&s->x);
    pnn_tensor_free(&s->y);
    free(s->y_host);
    free(s->allowed);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

/* ---- the socket loop ---- */

/* Receives every frame of one message: the first `cap` are kept (opened in msgs), the rest are
 * closed at once and only counted. */
static pnn_status recv_message(void *sock, zmq_msg_t *msgs, int cap, int *n_kept, int *n_total) {
    pnn_status st = PNN_OK;
    int more = 1;
    *n_kept = *n_total = 0;
    while (more) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        int rc;
        while ((rc = zmq_msg_recv(&m, sock, 0)) == -1 && zmq_errno() == EINTR) {}
        if (rc == -1) {
            zmq_msg_close(&m);
            PNN_ZMQ_CHECK_RC(rc, "zmq_msg_recv(&m, sock, 0)");
        }
        more = zmq_msg_more(&m);
        (*n_total)++;
        if (*n_kept < cap) msgs[(*n_kept)++] = m;
        else zmq_msg_close(&m);
    }
    return PNN_OK;
fail:
    for (int i = 0; i < *n_kept; i++) zmq_msg_close(&msgs[i]);
    *n_kept = 0;
    return st;
}

static pnn_status send_frame(void *sock, const void *data, size_t size, int more) {
    pnn_status st = PNN_OK;
    int rc;
    while ((rc = zmq_send(sock, data, size, more ? ZMQ_SNDMORE : 0)) == -1 && zmq_errno() == EINTR) {}
    if (rc == -1 && zmq_errno() == EHOSTUNREACH) return PNN_OK; /* the client left: nothing to answer */
    PNN_ZMQ_CHECK_RC(rc, "zmq_send(sock, data, size, flags)");
fail:
    return st;
}

/* One ZAP request (RFC 27): version, request id, domain, address, identity, mechanism,
 * credentials. CURVE clients whose public key is listed get 200, everyone else 400. */
static pnn_status serve_zap(pnn_server *s) {
    zmq_msg_t f[8];
    int n, total;
    PNN_TRY(recv_message(s->zap, f, 8, &n, &total));
    int ok = n == 7 && total == 7 && zmq_msg_size(&f[0]) == 3 && !memcmp(zmq_msg_data(&f[0]), "1.0", 3) &&
             zmq_msg_size(&f[5]) == 5 && !memcmp(zmq_msg_data(&f[5]), "CURVE", 5) && zmq_msg_size(&f[6]) == 32;
    int allowed = 0;
    for (int i = 0; ok && i < s->n_allowed && !allowed; i++) allowed = !memcmp(s->allowed[i], zmq_msg_data(&f[6]), 32);
    const char *code = allowed ? "200" : "400";
    const char *text = allowed ? "OK" : "client public key not allowed";
    pnn_status st = send_frame(s->zap, "1.0", 3, 1);
    if (st == PNN_OK) st = send_frame(s->zap, n > 1 ? zmq_msg_data(&f[1]) : "", n > 1 ? zmq_msg_size(&f[1]) : 0, 1);
    if (st == PNN_OK) st = send_frame(s->zap, code, 3, 1);
    if (st == PNN_OK) st = send_frame(s->zap, text, strlen(text), 1);
    if (st == PNN_OK) st = send_frame(s->zap, "", 0, 1);
    if (st == PNN_OK) st = send_frame(s->zap, "", 0, 0);
    for (int i = 0; i < n; i++) zmq_msg_close(&f[i]);
    pthread_mutex_lock(&s->lock);
    if (allowed) s->stats.curve_accepted++;
    else s->stats.curve_denied++;
    pthread_mutex_unlock(&s->lock);
    return st;
}

/* Receives one message from the main socket and answers it. */
static pnn_status serve_one(pnn_server *s) {
    enum { CAP = 2 + PNN_PROTO_MAX_FRAMES + 1 };
    zmq_msg_t m[CAP];
    pnn_proto_frame frames[CAP];
    int n, total;
    PNN_TRY(recv_message(s->sock, m, CAP, &n, &total));
    /* ROUTER: [identity][empty delimiter, when the client sent one][header][payload...] */
    int env = 0;
    if (!s->use_rep) env = n > 1 && zmq_msg_size(&m[1]) == 0 ? 2 : 1;
    if (env > n) env = n;
    int body = n - env;
    for (int i = 0; i < body; i++) frames[i] = (pnn_proto_frame){zmq_msg_data(&m[env + i]), zmq_msg_size(&m[env + i])};
    /* with frames dropped (total > n) there are still more kept than any op takes: refused */
    pnn_server_reply reply;
    pnn_status st = pnn_server_handle_message(s, frames, body, &reply);
    static char no_memory[] = "{\"id\":null,\"ok\":false,\"error\":\"busy\",\"message\":\"the server is out of memory\"}";
    if (st != PNN_OK) {
        /* no memory for the reply: answer with a fixed one (a REP socket must answer), go on */
        reply = (pnn_server_reply){.header = no_memory};
        pnn_error_clear();
        st = PNN_OK;
    }
    for (int i = 0; st == PNN_OK && i < env; i++) st = send_frame(s->sock, zmq_msg_data(&m[i]), zmq_msg_size(&m[i]), 1);
    if (st == PNN_OK) st = send_frame(s->sock, reply.header, strlen(reply.header), reply.payload != NULL);
    if (st == PNN_OK && reply.payload) st = send_frame(s->sock, reply.payload, reply.payload_size, 0);
    if (st == PNN_OK) {
        pthread_mutex_lock(&s->lock);
        s->stats.bytes_out += strlen(reply.header) + reply.payload_size;
        pthread_mutex_unlock(&s->lock);
    }
    if (reply.header != no_memory) free(reply.header);
    for (int i = 0; i < n; i++) zmq_msg_close(&m[i]);
    return st;
}

pnn_status pnn_server_serve(pnn_server *s, volatile int *stop) {
    pnn_status st = PNN_OK;
    if (!s->sock) return PNN_ERROR(PNN_ERR_INVALID, "pnn_server_serve: this server has no socket (detached)");
    zmq_pollitem_t items[2] = {{s->sock, 0, ZMQ_POLLIN, 0}, {s->zap, 0, ZMQ_POLLIN, 0}};
    while (!stop || !*stop) {
        int rc = zmq_poll(items, s->zap ? 2 : 1, s->poll_ms);
        if (rc == -1 && zmq_errno() == EINTR) continue;
        PNN_ZMQ_CHECK_RC(rc, "zmq_poll(items, n, s->poll_ms)");
        if (s->zap && (items[1].revents & ZMQ_POLLIN)) PNN_GOTO(serve_zap(s));
        if (items[0].revents & ZMQ_POLLIN) PNN_GOTO(serve_one(s));
    }
fail:
    return st;
}

pnn_status pnn_server_run(pnn_device *dev, const pnn_server_config *cfg, volatile int *stop,
                          pnn_server_stats *stats) {
    pnn_server *s;
    PNN_TRY(pnn_server_create(dev, cfg, &s));
    pnn_status st = pnn_server_serve(s, stop);
    if (stats) pnn_server_get_stats(s, stats);
    pnn_server_free(s);
    return st;
}
