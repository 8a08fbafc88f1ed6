/* The pnn-device/1 server: serves any pnn_device on a ROUTER (or REP) socket. Every message goes
 * through pnn_server_handle_message, which checks the whole request (protocol.c) before it
 * allocates or touches the device, and always produces exactly one reply, so a bad request never
 * stops the server.
 *
 * Who gets in: a ZAP handler (RFC 27), in its own thread, answers ZeroMQ's handshakes. With CURVE
 * it accepts only the listed public keys; with a token (and no CURVE) the socket is a ZMTP PLAIN
 * server and the handler accepts only the password equal to the token. A peer that fails the
 * handshake never gets a message queued. What a peer can make the server hold is bounded by
 * ZMQ_MAXMSGSIZE per frame and, since ZeroMQ keeps unfinished multipart messages outside every
 * high-water mark, by a watchdog thread that looks at the heap and shuts down every connection
 * past a bound (see pnn_server_config). Each server has its own ZeroMQ context, so its ZAP
 * endpoint is its own. */
#include "hwbridge/remote/protocol.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <zmq.h>
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 33))
#include <malloc.h>
#define HAVE_MALLINFO2 1
#endif
/* under AddressSanitizer malloc is ASan's, which glibc's mallinfo2 does not see */
#if defined(__SANITIZE_ADDRESS__)
#define PNN_UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define PNN_UNDER_ASAN 1
#endif
#endif
#ifndef PNN_UNDER_ASAN
#define PNN_UNDER_ASAN 0
#endif
#if PNN_UNDER_ASAN
/* exported by the ASan runtime of GCC and clang (GCC ships no header declaring it) */
size_t __sanitizer_get_current_allocated_bytes(void);
#define HAVE_MALLINFO2 1 /* the watchdog has a measure */
#endif

#define MAX_ALLOWED_KEYS 1024
/* how often the watchdog looks at the heap: what a fast peer adds in between is the overshoot
 * past the bound (tens of MB at loopback speed) */
#define WATCHDOG_MS 10
#define PENDING_SLACK ((size_t)64 << 20)

typedef enum { SEC_NULL, SEC_PLAIN, SEC_CURVE } security;
static const char *const security_names[] = {"NULL", "PLAIN", "CURVE"};

struct pnn_server {
    pnn_device *dev;
    pnn_proto_limits lim;
    char token[256];
    int use_rep, poll_ms;
    security sec;
    char curve_secret[41];       /* until the socket has it */
    int64_t max_frame;
    void *ctx, *sock, *zap;      /* zap: served by zap_thread once it runs */
    pthread_t zap_thread;
    int zap_running;
    atomic_int closing;          /* pnn_server_free has begun: the ZAP thread's ETERM is expected */
    char endpoint[256];
    uint8_t (*allowed)[32];      /* raw CURVE public keys let in */
    int n_allowed;
    float *theta;                /* backend memory, theta_dim floats */
    pnn_tensor x, y;             /* backend buffers, grown to the largest batch seen */
    void *y_host;
    size_t y_host_cap;
    /* the watchdog (its own thread): heap in use beyond heap_baseline, less the growth of the
     * buffers above since then (own, kept under lock by the serving thread) */
    size_t max_pending, heap_baseline, own, own_baseline;
    uint16_t ep_port;            /* what the endpoint's connections look like: TCP port, */
    char ep_path[108];           /* or Unix socket path */
    atomic_int watch_stop;
    FILE *log;
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
    pthread_mutex_lock(&s->lock);   /* what the watchdog does not count as held for clients */
    s->own = (size_t)(s->x.capacity + s->y.capacity) * sizeof(float) + s->y_host_cap;
    pthread_mutex_unlock(&s->lock);
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

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

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

static size_t min_size(size_t a, size_t b) { return a < b ? a : b; }
static size_t add_size(size_t a, size_t b) { return a > SIZE_MAX - b ? SIZE_MAX : a + b; }

/* float32 bytes of rows x cols, SIZE_MAX when that overflows */
static size_t f32_size(int64_t rows, int64_t cols) {
    if (rows < 1 || cols < 1) return 0;
    if ((uint64_t)rows > SIZE_MAX / 4 / (uint64_t)cols) return SIZE_MAX;
    return (size_t)rows * (size_t)cols * 4;
}

/* What a legitimate peer needs, within the message limit: the largest frame of a request (the
 * header, x of max_batch rows, or θ per sample), and the largest request or reply. */
static void legitimate_sizes(const pnn_proto_limits *lim, size_t *frame, size_t *message) {
    size_t x = f32_size(lim->max_batch, lim->x_dim), t = f32_size(lim->max_batch, lim->theta_dim);
    size_t y = f32_size(lim->max_batch, lim->y_dim), biggest = x > t ? x : t;
    size_t request = add_size(add_size(x, t), PNN_PROTO_MAX_HEADER);
    *frame = min_size(lim->max_message, biggest > PNN_PROTO_MAX_HEADER ? biggest : PNN_PROTO_MAX_HEADER);
    *message = min_size(lim->max_message, request > y ? request : y);
}

/* What both a socket server and a detached one need: limits, buffers, stats. */
static pnn_status server_init(pnn_device *dev, const pnn_server_config *cfg, pnn_server **out) {
    *out = NULL;
    if (cfg->token && cfg->token[0]) PNN_TRY(pnn_proto_token_check(cfg->token, "--token"));
    pnn_server *s = calloc(1, sizeof *s);
    if (!s) return PNN_ERROR(PNN_ERR_NOMEM, "out of memory creating a server");
    pthread_mutex_init(&s->lock, NULL);
    s->dev = dev;
    const pnn_device_info *info = &dev->info;
    snprintf(s->token, sizeof s->token, "%s", cfg->token ? cfg->token : "");
    s->lim = (pnn_proto_limits){.x_dim = info->x_dim, .theta_dim = info->theta_dim, .y_dim = info->y_dim,
                                .max_batch = info->max_batch,
                                .x_range = {info->x_range[0], info->x_range[1]},
                                .theta_range = {info->theta_range[0], info->theta_range[1]},
                                .max_message = cfg->max_message_bytes ? cfg->max_message_bytes
                                                                      : PNN_SERVER_DEFAULT_MAX_BYTES,
                                .token = s->token};
    size_t frame, message;
    legitimate_sizes(&s->lim, &frame, &message);
    /* twice the largest frame, so that one a little over the limit still gets a too_large reply */
    s->max_frame = (int64_t)min_size(add_size(add_size(frame, frame), 65536), (size_t)INT64_MAX);
    if (cfg->max_pending_bytes == PNN_SERVER_NO_WATCHDOG) s->max_pending = 0;
    else if (cfg->max_pending_bytes) s->max_pending = cfg->max_pending_bytes;
    else s->max_pending = add_size(add_size(message, message), PENDING_SLACK);
#ifndef HAVE_MALLINFO2
    s->max_pending = 0;
#endif
    s->log = cfg->log;
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

/* The endpoint's TCP port or Unix socket path, by which the watchdog knows its connections. */
static void remember_endpoint(pnn_server *s) {
    if (!strncmp(s->endpoint, "tcp://", 6)) {
        const char *colon = strrchr(s->endpoint, ':');
        s->ep_port = colon ? (uint16_t)strtoul(colon + 1, NULL, 10) : 0;
    } else if (!strncmp(s->endpoint, "ipc://", 6)) {
        snprintf(s->ep_path, sizeof s->ep_path, "%s", s->endpoint + 6);
    }
}

/* Creates the main socket with its security and size limit and binds it. */
static pnn_status open_socket(pnn_server *s, const char *endpoint) {
    pnn_status st = PNN_OK;
    int zero = 0, one = 1;
    s->sock = zmq_socket(s->ctx, s->use_rep ? ZMQ_REP : ZMQ_ROUTER);
    if (!s->sock) PNN_ZMQ_CHECK_RC(-1, "zmq_socket(s->ctx, ZMQ_ROUTER or ZMQ_REP)");
    PNN_ZMQ_CHECK(zmq_setsockopt(s->sock, ZMQ_LINGER, &zero, sizeof zero));
    PNN_ZMQ_CHECK(zmq_setsockopt(s->sock, ZMQ_MAXMSGSIZE, &s->max_frame, sizeof s->max_frame));
    if (s->sec == SEC_CURVE) {
        PNN_ZMQ_CHECK(zmq_setsockopt(s->sock, ZMQ_CURVE_SERVER, &one, sizeof one));
        PNN_ZMQ_CHECK(zmq_setsockopt(s->sock, ZMQ_CURVE_SECRETKEY, s->curve_secret, 41));
    } else if (s->sec == SEC_PLAIN) {
        PNN_ZMQ_CHECK(zmq_setsockopt(s->sock, ZMQ_PLAIN_SERVER, &one, sizeof one));
    }
    if (s->sec != SEC_NULL) PNN_ZMQ_CHECK(zmq_setsockopt(s->sock, ZMQ_ZAP_DOMAIN, "pnn", 3));
    if (zmq_bind(s->sock, endpoint) != 0) {
        st = PNN_ERROR(PNN_ERR_DEVICE, "cannot bind %s: %s (ZeroMQ call zmq_bind at %s:%d); pick another --bind "
                       "endpoint (tcp://127.0.0.1:* takes a free port)", endpoint, zmq_strerror(zmq_errno()),
                       __FILE__, __LINE__);
        goto fail;
    }
    size_t len = sizeof s->endpoint;
    PNN_ZMQ_CHECK(zmq_getsockopt(s->sock, ZMQ_LAST_ENDPOINT, s->endpoint, &len));
    remember_endpoint(s);
fail:
    return st;
}

static void *zap_main(void *arg);

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
    s->sec = curve ? SEC_CURVE : s->token[0] && !cfg->token_in_header_only ? SEC_PLAIN : SEC_NULL;
    if (curve) {
        char pub[41];
        PNN_GOTO(pnn_remote_key_read(cfg->curve_key_file, pub, s->curve_secret));
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
    if (s->sec != SEC_NULL) {
        /* the ZAP handler is bound before any client can connect, and answers from its own thread,
         * so that handshakes go on while the serving thread is inside a long device call */
        int zero = 0;
        s->zap = zmq_socket(s->ctx, ZMQ_REP);
        if (!s->zap) PNN_ZMQ_CHECK_RC(-1, "zmq_socket(s->ctx, ZMQ_REP)");
        PNN_ZMQ_CHECK(zmq_setsockopt(s->zap, ZMQ_LINGER, &zero, sizeof zero));
        PNN_ZMQ_CHECK(zmq_bind(s->zap, "inproc://zeromq.zap.01"));
        if (pthread_create(&s->zap_thread, NULL, zap_main, s) != 0) {
            st = PNN_ERROR(PNN_ERR_NOMEM, "pnn serve: cannot start the thread that checks handshakes (ZAP)");
            goto fail;
        }
        s->zap_running = 1;
    }
    st = open_socket(s, bind);
    memset(s->curve_secret, 0, sizeof s->curve_secret);
    if (st != PNN_OK) goto fail;
    *out = s;
    return PNN_OK;
fail:
    pnn_server_free(s);
    return st;
}

const char *pnn_server_endpoint(const pnn_server *s) { return s->endpoint; }

void pnn_server_get_bounds(const pnn_server *s, pnn_server_bounds *out) {
    *out = (pnn_server_bounds){security_names[s->sec], (size_t)s->max_frame, s->max_pending};
}

void pnn_server_get_stats(pnn_server *s, pnn_server_stats *out) {
    pthread_mutex_lock(&s->lock);
    *out = s->stats;
    pthread_mutex_unlock(&s->lock);
}

void pnn_server_free(pnn_server *s) {
    if (!s) return;
    if (s->sock) zmq_close(s->sock);
    if (s->zap && !s->zap_running) zmq_close(s->zap);
    atomic_store(&s->closing, 1);
    /* ends the ZAP thread too: its recv fails with ETERM, it closes its socket, and term returns */
    if (s->ctx) zmq_ctx_term(s->ctx);
    if (s->zap_running) pthread_join(s->zap_thread, NULL);
    if (s->theta) s->dev->be->iface->release(s->dev->be->ctx, s->theta);
    pnn_tensor_free(&s->x);
    pnn_tensor_free(&s->y);
    free(s->y_host);
    free(s->allowed);
    memset(s->token, 0, sizeof s->token);
    memset(s->curve_secret, 0, sizeof s->curve_secret);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

/* ---- the memory watchdog ---- */

/* Heap bytes in use in this process. ZeroMQ keeps queued and unfinished messages in malloc'd
 * memory (a frame whole, as soon as its size has come), which shows here as it comes and goes;
 * RSS would not show it going (glibc keeps freed heap). */
static size_t heap_in_use(void) {
#if PNN_UNDER_ASAN
    return __sanitizer_get_current_allocated_bytes(); /* ASan's allocator: mallinfo2 says 0 */
#elif defined(HAVE_MALLINFO2)
    struct mallinfo2 mi = mallinfo2();
    return mi.uordblks + mi.hblkhd;
#else
    return 0;
#endif
}

/* 1 for a connected socket whose local end is the server's endpoint: one ZeroMQ accepted. */
static int is_connection(const pnn_server *s, int fd) {
    int listening = 1;
    struct sockaddr_storage local, peer;
    socklen_t len = sizeof listening, local_len = sizeof local, peer_len = sizeof peer;
    if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) != 0 || listening ||
        getsockname(fd, (struct sockaddr *)&local, &local_len) != 0 ||
        getpeername(fd, (struct sockaddr *)&peer, &peer_len) != 0)
        return 0;
    if (local.ss_family == AF_INET) return s->ep_port && ntohs(((struct sockaddr_in *)&local)->sin_port) == s->ep_port;
    if (local.ss_family == AF_INET6)
        return s->ep_port && ntohs(((struct sockaddr_in6 *)&local)->sin6_port) == s->ep_port;
    if (local.ss_family == AF_UNIX)
        return s->ep_path[0] && local_len > offsetof(struct sockaddr_un, sun_path) &&
               !strncmp(((struct sockaddr_un *)&local)->sun_path, s->ep_path, sizeof s->ep_path);
    return 0;
}

/* Shuts down every connection to the endpoint (found among the process's file descriptors).
 * ZeroMQ's I/O thread then sees each peer gone and frees what it held for it, the frames of an
 * unfinished message and a handshake's frame included. Only the kernel's sockets are touched,
 * never ZeroMQ's objects, so this may run while the serving thread is inside a device call; a
 * descriptor closed and reused meanwhile is checked again by is_connection. Returns how many. */
static int shut_down_connections(const pnn_server *s) {
    DIR *d = opendir("/proc/self/fd");
    if (!d) return 0;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        char *end;
        long fd = strtol(e->d_name, &end, 10);
        if (end == e->d_name || *end || fd == dirfd(d)) continue;
        if (!is_connection(s, (int)fd)) continue;
        /* when ZeroMQ then closes it: a reset, not a half-closed socket left waiting for data */
        struct linger reset = {1, 0};
        setsockopt((int)fd, SOL_SOCKET, SO_LINGER, &reset, sizeof reset);
        if (shutdown((int)fd, SHUT_RDWR) == 0) n++;
    }
    closedir(d);
    return n;
}

static size_t own_bytes(pnn_server *s) {
    pthread_mutex_lock(&s->lock);
    size_t own = s->own;
    pthread_mutex_unlock(&s->lock);
    return own;
}

/* Drops every connection when the heap beyond the baseline, less the server's own buffers'
 * growth, is over the bound; then waits until ZeroMQ has freed it (the heap stops shrinking) and
 * takes what is left as the new baseline. The baseline also follows the heap down, so that what a
 * drop left queued (complete messages the serving thread had not read yet) stops counting once
 * it is read. */
static void watchdog_check(pnn_server *s) {
    size_t heap = heap_in_use(), own = own_bytes(s);
    size_t growth = own > s->own_baseline ? own - s->own_baseline : 0, base = add_size(s->heap_baseline, growth);
    if (heap < base) {
        s->heap_baseline = heap > growth ? heap - growth : 0;
        return;
    }
    size_t held = heap - base;
    pthread_mutex_lock(&s->lock);
    if (held > s->stats.pending_peak) s->stats.pending_peak = held;
    pthread_mutex_unlock(&s->lock);
    if (held <= s->max_pending) return;
    int n = shut_down_connections(s);
    size_t last = heap;
    for (int quiet = 0, i = 0; quiet < 10 && i < 500; i++) {
        sleep_ms(2);
        size_t now = heap_in_use();
        quiet = now < last ? 0 : quiet + 1;
        last = now;
    }
    s->heap_baseline = last;
    s->own_baseline = own_bytes(s);
    pthread_mutex_lock(&s->lock);
    s->stats.drops++;
    pthread_mutex_unlock(&s->lock);
    if (s->log) {
        fprintf(s->log,
                "pnn serve: clients made the server hold %.1f MB (bound %.1f MB, --max-pending-bytes): shut down "
                "its %d connection(s), which freed %.1f MB; clients reconnect, their requests in flight time out\n",
                held / 1e6, s->max_pending / 1e6, n, (heap > last ? heap - last : 0) / 1e6);
        fflush(s->log);
    }
}

static void *watchdog_main(void *arg) {
    pnn_server *s = arg;
    while (!atomic_load(&s->watch_stop)) {
        sleep_ms(WATCHDOG_MS);
        watchdog_check(s);
    }
    return NULL;
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

static int frame_is(zmq_msg_t *m, const char *text) {
    return zmq_msg_size(m) == strlen(text) && !memcmp(zmq_msg_data(m), text, strlen(text));
}

/* One ZAP request (RFC 27): version, request id, domain, address, identity, mechanism, then the
 * credentials: CURVE a 32-byte public key, PLAIN a user name and a password. A CURVE client whose
 * key is listed, or a PLAIN client whose password is the token (any user name), gets 200;
 * everyone else 400, and ZeroMQ closes the connection. */
static pnn_status serve_zap(pnn_server *s) {
    zmq_msg_t f[9];
    int n, total;
    PNN_TRY(recv_message(s->zap, f, 9, &n, &total));
    int ok = n == total && n >= 7 && frame_is(&f[0], "1.0");
    int curve = ok && s->sec == SEC_CURVE && n == 7 && frame_is(&f[5], "CURVE") && zmq_msg_size(&f[6]) == 32;
    int plain = ok && s->sec == SEC_PLAIN && n == 8 && frame_is(&f[5], "PLAIN");
    int allowed = 0;
    for (int i = 0; curve && i < s->n_allowed && !allowed; i++)
        allowed = !memcmp(s->allowed[i], zmq_msg_data(&f[6]), 32);
    if (plain)
        allowed = pnn_proto_same_secret(s->token, strlen(s->token), zmq_msg_data(&f[7]), zmq_msg_size(&f[7]));
    const char *code = allowed ? "200" : "400";
    const char *text = allowed ? "OK" : s->sec == SEC_PLAIN ? "wrong token" : "client public key not allowed";
    pnn_status st = send_frame(s->zap, "1.0", 3, 1);
    if (st == PNN_OK) st = send_frame(s->zap, n > 1 ? zmq_msg_data(&f[1]) : "", n > 1 ? zmq_msg_size(&f[1]) : 0, 1);
    if (st == PNN_OK) st = send_frame(s->zap, code, 3, 1);
    if (st == PNN_OK) st = send_frame(s->zap, text, strlen(text), 1);
    if (st == PNN_OK) st = send_frame(s->zap, "", 0, 1);
    if (st == PNN_OK) st = send_frame(s->zap, "", 0, 0);
    for (int i = 0; i < n; i++) zmq_msg_close(&f[i]);
    pthread_mutex_lock(&s->lock);
    uint64_t *counter = s->sec == SEC_PLAIN ? (allowed ? &s->stats.plain_accepted : &s->stats.plain_denied)
                                            : (allowed ? &s->stats.curve_accepted : &s->stats.curve_denied);
    (*counter)++;
    pthread_mutex_unlock(&s->lock);
    return st;
}

/* The ZAP thread: answers handshakes until the context ends (pnn_server_free). */
static void *zap_main(void *arg) {
    pnn_server *s = arg;
    while (serve_zap(s) == PNN_OK) {}
    if (!atomic_load(&s->closing) && s->log) {
        fprintf(s->log, "pnn serve: the handshake checks stopped (%s): no new client can get in\n", pnn_last_error());
        fflush(s->log);
    }
    zmq_close(s->zap);
    return NULL;
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
    /* the watchdog runs beside the loop, so that a long device call does not blind it */
    pthread_t watchdog;
    int watching = 0;
    if (s->max_pending) {
        s->heap_baseline = heap_in_use();
        s->own_baseline = own_bytes(s);
        atomic_store(&s->watch_stop, 0);
        watching = pthread_create(&watchdog, NULL, watchdog_main, s) == 0;
        if (!watching) return PNN_ERROR(PNN_ERR_NOMEM, "pnn serve: cannot start the memory watchdog's thread");
    }
    zmq_pollitem_t item = {s->sock, 0, ZMQ_POLLIN, 0};
    while (!stop || !*stop) {
        int rc = zmq_poll(&item, 1, s->poll_ms);
        if (rc == -1 && zmq_errno() == EINTR) continue;
        PNN_ZMQ_CHECK_RC(rc, "zmq_poll(&item, 1, s->poll_ms)");
        if (item.revents & ZMQ_POLLIN) PNN_GOTO(serve_one(s));
    }
fail:
    if (watching) {
        atomic_store(&s->watch_stop, 1);
        pthread_join(watchdog, NULL);
    }
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
