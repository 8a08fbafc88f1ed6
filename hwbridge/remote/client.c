/* remote: devices — the client side of pnn-device/1. A DEALER socket per device sends
 * [empty][header][x][theta] and waits for the reply to that request id until its deadline;
 * replies that come late or carry another id are dropped and counted, never delivered, and a
 * reply that cannot be read fails the request at once. The ZeroMQ context is one per process,
 * created on first use; all other state is per device, so a device may be driven from a worker
 * thread.
 *
 * Security: CURVE when given keys; else with a token, the ZMTP PLAIN handshake (user "pnn",
 * password the token), which a pnn server needs before it takes any message; else none. The token
 * also goes into every header (PROTOCOL.md). During open a socket monitor watches the handshake,
 * so that a refused one is an error at once, not a timeout, and a server that does not speak PLAIN
 * (a pnn-device/1 server checking headers only) is met again without it. */
#include "hwbridge/remote/protocol.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#define DEFAULT_TIMEOUT_MS 10000
/* a reply frame bigger than this ends the connection (ZeroMQ allocates a frame whole) */
#define MAX_REPLY_FRAME ((int64_t)1 << 31)

typedef enum { SEC_NULL, SEC_PLAIN, SEC_CURVE } security;
static const char *const security_names[] = {"NULL", "PLAIN", "CURVE"};

typedef struct remote_dev {
    void *sock;
    void *monitor;               /* the handshake's events, during open only */
    int handshake_event, handshake_value;   /* the first failure the monitor reported */
    int n_connected, n_handshakes, n_disconnected; /* what else it saw: said when nobody answers */
    int restarts;       /* sockets started over at open because their monitor said nothing (ask_info_open) */
    security sec;
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
    char endpoint[256], token[258], server_key[1024], client_key[1024];
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

/* The first line of path, which must fit in token (size >= 258: 255 characters, CR LF, NUL). */
static pnn_status read_token_file(const char *uri, const char *path, char *token, size_t size) {
    FILE *f = fopen(path, "r");
    if (!f) return PNN_ERROR(PNN_ERR_NOT_FOUND, "%s: cannot open token_file '%s': %s", uri, path, strerror(errno));
    char *got = fgets(token, (int)size, f);
    int cut = got && !strchr(token, '\n') && fgetc(f) != EOF;
    fclose(f);
    if (cut)
        return PNN_ERROR(PNN_ERR_INVALID, "%s: the first line of token_file '%s' is too long (a token is at most "
                         "255 characters)", uri, path);
    if (got) token[strcspn(token, "\r\n")] = '\0';
    if (!got || !token[0])
        return PNN_ERROR(PNN_ERR_INVALID, "%s: token_file '%s' is empty (or its first line is): put the token "
                         "on its first line", uri, path);
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
            else if (strlen(val) > 255)
                return PNN_ERROR(PNN_ERR_INVALID, "device URI '%s': the token is over 255 characters", uri);
            else snprintf(u->token, sizeof u->token, "%s", val);
            char who[1100];
            snprintf(who, sizeof who, "remote device URI, %s%s", key[5] == '_' ? "token_file=" : "token=",
                     key[5] == '_' ? val : "");
            pnn_status tst = pnn_proto_token_check(u->token, who);
            if (tst != PNN_OK) {
                memset(u->token, 0, sizeof u->token);
                return tst;
            }
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

/* Reads one event of the handshake monitor; a failure is kept in r (the first one only: ZeroMQ
 * keeps retrying and reports each). Returns 1 when the handshake failed. */
static int read_monitor_event(remote_dev *r) {
    zmq_msg_t m;
    int failed = 0, more = 1;
    for (int frame = 0; more; frame++) {
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, r->monitor, ZMQ_DONTWAIT) == -1) {
            zmq_msg_close(&m);
            return 0;
        }
        more = zmq_msg_more(&m);
        if (frame == 0 && zmq_msg_size(&m) == 6) {
            uint16_t event;
            uint32_t value;
            memcpy(&event, zmq_msg_data(&m), 2);
            memcpy(&value, (char *)zmq_msg_data(&m) + 2, 4);
            r->n_connected += event == ZMQ_EVENT_CONNECTED;
            r->n_handshakes += event == ZMQ_EVENT_HANDSHAKE_SUCCEEDED;
            r->n_disconnected += event == ZMQ_EVENT_DISCONNECTED;
            failed = (event & (ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
                               ZMQ_EVENT_HANDSHAKE_FAILED_AUTH)) != 0;
            if (failed && !r->handshake_event) r->handshake_event = event, r->handshake_value = (int)value;
        }
        zmq_msg_close(&m);
    }
    return failed;
}

/* Waits for the reply to request id until the deadline. Replies to other ids are dropped and
 * counted; a reply that cannot be read fails the request at once (PNN_ERR_FORMAT), and so does a
 * failed handshake while the monitor watches (PNN_ERR_DEVICE; r->handshake_event says which). On
 * success the header is parsed into rep and the payload (if any, at most one frame of payload_size
 * bytes) copied into payload. */
static pnn_status wait_reply(remote_dev *r, const char *what, uint64_t id, double deadline, pnn_proto_reply *rep,
                             void *payload, size_t payload_size) {
    pnn_status st = PNN_OK;
    zmq_msg_t f[4];
    int n = 0;
    for (;;) {
        int left = (int)ceil(deadline - now_ms());
        zmq_pollitem_t items[2] = {{r->sock, 0, ZMQ_POLLIN, 0}, {r->monitor, 0, ZMQ_POLLIN, 0}};
        int rc = left > 0 ? zmq_poll(items, r->monitor ? 2 : 1, left) : 0;
        if (rc == -1 && zmq_errno() == EINTR) continue;
        PNN_ZMQ_CHECK_RC(rc, "zmq_poll(items, n, left)");
        if (rc == 0) {
            r->stats.timeouts++;
            return PNN_ERROR(PNN_ERR_TIMEOUT,
                             "remote device %s did not answer %s (request %llu) within %d ms; it may still be "
                             "working on it (a late reply is dropped). Raise timeout_ms= in the device URI or "
                             "check the server",
                             r->endpoint, what, (unsigned long long)id, r->timeout_ms);
        }
        if (r->monitor && (items[1].revents & ZMQ_POLLIN) && read_monitor_event(r))
            return PNN_ERROR(PNN_ERR_DEVICE, "remote device %s: the ZeroMQ handshake failed (event 0x%x, value 0x%x)",
                             r->endpoint, (unsigned)r->handshake_event, (unsigned)r->handshake_value);
        if (!(items[0].revents & ZMQ_POLLIN)) continue;
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
        if (n <= env) {
            st = PNN_ERROR(PNN_ERR_FORMAT, "remote device %s: the reply to %s (request %llu) has no header: the "
                           "server does not follow pnn-device/1", r->endpoint, what, (unsigned long long)id);
            goto fail;
        }
        if (pnn_proto_parse_reply(zmq_msg_data(&f[env]), zmq_msg_size(&f[env]), &tmp) != PNN_OK) {
            /* one request is in flight, so an unreadable reply is most likely its own: waiting on would
             * only turn the server's fault into a timeout */
            st = pnn_error_prefix(PNN_ERR_FORMAT, "remote device %s: cannot read the reply to %s (request %llu): ",
                                  r->endpoint, what, (unsigned long long)id);
            goto fail;
        }
        if (tmp.has_id && tmp.id != id) {
            /* late (its request already timed out) or unknown: never delivered */
            r->stats.late_or_unknown_replies++;
            for (int i = 0; i < n; i++) zmq_msg_close(&f[i]);
            n = 0;
            continue;
        }
        if (!tmp.has_id && tmp.ok) {
            st = PNN_ERROR(PNN_ERR_FORMAT, "remote device %s: the reply to %s (request %llu) says ok with \"id\": "
                           "null: the server does not follow pnn-device/1", r->endpoint, what,
                           (unsigned long long)id);
            goto fail;
        }
        /* "id": null with ok false: the server could not read this request's id; it is the answer */
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

/* ---- the connection ---- */

/* The monitor stops before its reader closes: ZeroMQ sends a socket's events from the I/O thread,
 * and an event for a monitor whose reader is gone (the DEALER of a refused handshake keeps
 * reconnecting, and reports its teardown) could block that thread, which serves every device of
 * the process: later connections were then never made (seen as "no connection was made" in 2 of
 * 40 runs of test_remote_security under load). */
static void close_socket(remote_dev *r) {
    if (r->monitor && r->sock) zmq_socket_monitor(r->sock, NULL, 0);
    if (r->monitor) zmq_close(r->monitor);
    if (r->sock) zmq_close(r->sock);
    r->monitor = r->sock = NULL;
}

/* Creates the DEALER with security sec, a monitor on its handshake, and connects it. */
static pnn_status open_socket(remote_dev *r, const remote_uri *u, security sec) {
    static atomic_uint monitors;
    pnn_status st = PNN_OK;
    int zero = 0;
    int64_t max_frame = MAX_REPLY_FRAME;
    char monitor_ep[64];
    r->sec = sec;
    r->handshake_event = r->handshake_value = 0;
    r->n_connected = r->n_handshakes = r->n_disconnected = 0;
    r->sock = zmq_socket(g_ctx, ZMQ_DEALER);
    if (!r->sock) PNN_ZMQ_CHECK_RC(-1, "zmq_socket(g_ctx, ZMQ_DEALER)");
    PNN_ZMQ_CHECK(zmq_setsockopt(r->sock, ZMQ_LINGER, &zero, sizeof zero));
    PNN_ZMQ_CHECK(zmq_setsockopt(r->sock, ZMQ_MAXMSGSIZE, &max_frame, sizeof max_frame));
    PNN_ZMQ_CHECK(zmq_setsockopt(r->sock, ZMQ_SNDTIMEO, &r->timeout_ms, sizeof r->timeout_ms));
    if (sec == SEC_CURVE) {
        char server_pub[41], pub[41], sec_key[41];
        st = pnn_remote_key_public(u->server_key, server_pub);
        if (st == PNN_OK) st = pnn_remote_key_read(u->client_key, pub, sec_key);
        if (st != PNN_OK) {
            memset(sec_key, 0, sizeof sec_key);
            pnn_error_prefix(st, "remote device %s: ", u->endpoint);
            goto fail;
        }
        int rc = zmq_setsockopt(r->sock, ZMQ_CURVE_SECRETKEY, sec_key, 41);
        memset(sec_key, 0, sizeof sec_key);
        PNN_ZMQ_CHECK_RC(rc, "zmq_setsockopt(r->sock, ZMQ_CURVE_SECRETKEY, sec_key, 41)");
        PNN_ZMQ_CHECK(zmq_setsockopt(r->sock, ZMQ_CURVE_SERVERKEY, server_pub, 41));
        PNN_ZMQ_CHECK(zmq_setsockopt(r->sock, ZMQ_CURVE_PUBLICKEY, pub, 41));
    } else if (sec == SEC_PLAIN) {
        PNN_ZMQ_CHECK(zmq_setsockopt(r->sock, ZMQ_PLAIN_USERNAME, PNN_PROTO_PLAIN_USER, strlen(PNN_PROTO_PLAIN_USER)));
        PNN_ZMQ_CHECK(zmq_setsockopt(r->sock, ZMQ_PLAIN_PASSWORD, r->token, strlen(r->token)));
    }
    /* the monitor's peer connects before the DEALER does, so that no event is lost */
    snprintf(monitor_ep, sizeof monitor_ep, "inproc://pnn-remote-handshake-%u", atomic_fetch_add(&monitors, 1));
    PNN_ZMQ_CHECK(zmq_socket_monitor(r->sock, monitor_ep,
                                     ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
                                         ZMQ_EVENT_HANDSHAKE_FAILED_AUTH | ZMQ_EVENT_CONNECTED |
                                         ZMQ_EVENT_HANDSHAKE_SUCCEEDED | ZMQ_EVENT_DISCONNECTED));
    r->monitor = zmq_socket(g_ctx, ZMQ_PAIR);
    if (!r->monitor) PNN_ZMQ_CHECK_RC(-1, "zmq_socket(g_ctx, ZMQ_PAIR)");
    PNN_ZMQ_CHECK(zmq_setsockopt(r->monitor, ZMQ_LINGER, &zero, sizeof zero));
    PNN_ZMQ_CHECK(zmq_connect(r->monitor, monitor_ep));
    PNN_ZMQ_CHECK(zmq_connect(r->sock, u->endpoint));
fail:
    return st;
}

/* The handshake is done once a reply came: the monitor is not needed any more. */
static pnn_status stop_monitor(remote_dev *r) {
    pnn_status st = PNN_OK;
    PNN_ZMQ_CHECK(zmq_socket_monitor(r->sock, NULL, 0));
    zmq_close(r->monitor);
    r->monitor = NULL;
fail:
    return st;
}

/* 1 when the handshake failed on the security mechanism: ZeroMQ says so, or (more often: the side
 * that sees the mismatch first just closes) the server closed the connection during it. */
static int mechanism_refused(const remote_dev *r) {
    return (r->handshake_event == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL &&
            r->handshake_value == ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH) ||
           r->handshake_event == ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL;
}

/* The error for a handshake the server refused, saying what to change in the device URI. */
static pnn_status handshake_error(const remote_dev *r, const remote_uri *u) {
    int ev = r->handshake_event, v = r->handshake_value, mismatch = mechanism_refused(r);
    if (ev == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH && r->sec == SEC_PLAIN)
        return PNN_ERROR(PNN_ERR_INVALID,
                         "remote device %s: unauthorized: the server refused the token at the handshake (wrong "
                         "token, ZAP status %d); give token= or token_file= the token it was started with (pnn "
                         "serve --token)",
                         u->endpoint, v);
    if (ev == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH)
        return PNN_ERROR(PNN_ERR_INVALID,
                         "remote device %s refused this client's CURVE key %s (ZAP status %d): the server must list "
                         "its .pub file (pnn serve --allow-client), and server_key= must be that server's public key",
                         u->endpoint, u->client_key, v);
    if (mismatch && r->sec == SEC_NULL && !r->token[0])
        return PNN_ERROR(PNN_ERR_INVALID,
                         "remote device %s: unauthorized: the server ended the ZeroMQ handshake: it requires a "
                         "token (add token=SECRET or token_file=PATH to the device URI, the token of pnn serve "
                         "--token) or CURVE keys (server_key= and client_key=)",
                         u->endpoint);
    if (mismatch && r->sec == SEC_NULL)
        return PNN_ERROR(PNN_ERR_INVALID,
                         "remote device %s ended the ZeroMQ handshake both with the token (PLAIN) and without "
                         "security: it requires CURVE; add server_key= (its .pub file) and client_key= (this "
                         "client's key pair, pnn keygen)",
                         u->endpoint);
    if (mismatch)
        return PNN_ERROR(PNN_ERR_INVALID,
                         "remote device %s ended the ZeroMQ handshake: it does not speak CURVE; leave out "
                         "server_key= and client_key= (and give token= if it was started with one), or start the "
                         "server with --curve-key and --allow-client",
                         u->endpoint);
    return PNN_ERROR(PNN_ERR_DEVICE,
                     "remote device %s: the ZeroMQ handshake failed (event 0x%x, code 0x%x): is it a pnn-device/1 "
                     "server?",
                     u->endpoint, (unsigned)ev, (unsigned)v);
}

/* Sends info and waits for its reply (the first request, so that an absent server, or one that
 * refuses the handshake, shows at open). */
/* 1 when something accepts TCP connections at endpoint tcp://HOST:PORT (a plain connect within
 * 300 ms, closed at once); 0 otherwise, and for other transports. */
static int tcp_listening(const char *endpoint) {
    char host[256], port[16];
    if (strncmp(endpoint, "tcp://", 6)) return 0;
    const char *h = endpoint + 6, *colon = strrchr(h, ':');
    if (!colon || colon == h || (size_t)(colon - h) >= sizeof host || strlen(colon + 1) >= sizeof port) return 0;
    snprintf(host, sizeof host, "%.*s", (int)(colon - h), h);
    snprintf(port, sizeof port, "%s", colon + 1);
    if (host[0] == '[' && host[strlen(host) - 1] == ']') { /* [v6] */
        memmove(host, host + 1, strlen(host));
        host[strlen(host) - 1] = 0;
    }
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai = NULL;
    if (getaddrinfo(host, port, &hints, &ai) != 0 || !ai) return 0;
    int fd = socket(ai->ai_family, SOCK_STREAM, 0), ok = 0;
    if (fd >= 0) {
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
        int rc = connect(fd, ai->ai_addr, ai->ai_addrlen);
        if (rc == 0) {
            ok = 1;
        } else if (errno == EINPROGRESS) {
            struct pollfd pfd = {fd, POLLOUT, 0};
            int err = 0;
            socklen_t len = sizeof err;
            ok = poll(&pfd, 1, 300) == 1 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err == 0;
        }
        close(fd);
    }
    freeaddrinfo(ai);
    return ok;
}

/* The info request of an open, waited for until the URI's timeout. The handshake monitor is what
 * tells a refused token at once; in about 1 client process in 40 under ASan and load it reported
 * nothing at all (no connection, no handshake, no reply, while the server was up), and the open
 * waited out its timeout. So: after 1.5 s without a single event of the monitor, a plain TCP
 * connect asks whether anything listens there; if it does, the socket and its monitor start over
 * (at most 3 times; info is idempotent). Otherwise, or once events come, the rest of the time is
 * waited for as before. */
static pnn_status ask_info_open(remote_dev *r, const remote_uri *u, pnn_proto_reply *rep) {
    double end = now_ms() + r->timeout_ms;
    for (int restart = 0;; restart++) {
        uint64_t id = ++r->next_id;
        char *header = pnn_proto_request_header("info", id, r->token, 0, 0);
        if (!header) return PNN_ERROR(PNN_ERR_NOMEM, "remote device %s: out of memory building a request", r->endpoint);
        pnn_status st = send_request(r, header, NULL, 0, NULL, 0);
        free(header);
        if (st != PNN_OK) return st;
        double quiet = now_ms() + 1500;
        st = wait_reply(r, "info", id, quiet < end ? quiet : end, rep, NULL, 0);
        if (st != PNN_ERR_TIMEOUT || now_ms() >= end) return st;
        r->stats.timeouts--; /* not a timeout of the request: the wait goes on */
        pnn_error_clear();
        int events = r->n_connected || r->n_handshakes || r->n_disconnected || r->handshake_event;
        if (events || restart == 3 || !tcp_listening(r->endpoint)) return wait_reply(r, "info", id, end, rep, NULL, 0);
        close_socket(r);
        PNN_TRY(open_socket(r, u, r->sec));
        r->restarts++;
    }
}

/* ---- the device ---- */

static void remote_close(pnn_device *dev) {
    if (!dev) return;
    remote_dev *r = dev->impl;
    if (r) {
        close_socket(r);
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
    if (strcmp(rep->protocol, PNN_PROTO_VERSION))
        return PNN_ERROR(PNN_ERR_UNSUPPORTED, "remote device %s speaks protocol '%s'; this pnn speaks %s", r->endpoint,
                         rep->protocol[0] ? rep->protocol : "(none)", PNN_PROTO_VERSION);
    /* the upper bounds are pnn_device_info_check's, which the caller runs before sizing anything */
    if (rep->x_dim < 1 || rep->y_dim < 1 || rep->theta_dim < 1 || rep->max_batch < 1 || !rep->name[0] ||
        rep->malformed)
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
    /* shapes are each at most 2^31 (protocol.c): their products and sum fit in int64 once each
     * product is capped */
    int64_t sum = 0;
    for (int i = 0; i < rep->n_theta_parts; i++) {
        const pnn_theta_part *p = &rep->theta_parts[i];
        int64_t size = p->shape[0] * (p->ndim == 2 ? p->shape[1] : 1);
        sum += size < PNN_DEVICE_MAX_THETA_DIM ? size : PNN_DEVICE_MAX_THETA_DIM + 1;
    }
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
    st = parse_uri(uri, &u);
    if (st != PNN_OK) {
        memset(u.token, 0, sizeof u.token);
        return st;
    }
    pthread_once(&g_ctx_once, ctx_create);
    if (!g_ctx) {
        memset(u.token, 0, sizeof u.token);
        return PNN_ERROR(PNN_ERR_IO, "zmq_ctx_new failed: %s", zmq_strerror(zmq_errno()));
    }
    pnn_device *dev = calloc(1, sizeof *dev);
    remote_dev *r = calloc(1, sizeof *r);
    if (!dev || !r) {
        free(dev);
        free(r);
        memset(u.token, 0, sizeof u.token);
        return PNN_ERROR(PNN_ERR_NOMEM, "out of memory opening %s", uri);
    }
    pthread_mutex_init(&r->lock, NULL);
    dev->iface = &remote_iface;
    dev->be = be;
    dev->impl = r;
    snprintf(r->endpoint, sizeof r->endpoint, "%s", u.endpoint);
    snprintf(r->token, sizeof r->token, "%.255s", u.token);   /* at most 255 (parse_uri) */
    memset(u.token, 0, sizeof u.token);
    r->timeout_ms = (int)u.timeout_ms;
    snprintf(dev->info.uri, sizeof dev->info.uri, "remote:%.240s", u.endpoint);

    pnn_proto_reply rep;
    PNN_GOTO(open_socket(r, &u, u.server_key[0] ? SEC_CURVE : r->token[0] ? SEC_PLAIN : SEC_NULL));
    st = ask_info_open(r, &u, &rep);
    if (st == PNN_ERR_DEVICE && r->sec == SEC_PLAIN && mechanism_refused(r)) {
        /* a server that does not speak PLAIN: a pnn-device/1 server that checks the token in headers
         * only (or one that requires CURVE, which the next handshake tells) */
        pnn_error_clear();
        close_socket(r);
        PNN_GOTO(open_socket(r, &u, SEC_NULL));
        st = ask_info_open(r, &u, &rep);
    }
    if (st == PNN_ERR_DEVICE && r->handshake_event) {
        st = handshake_error(r, &u);
        goto fail;
    }
    if (st == PNN_ERR_TIMEOUT) {
        /* what the monitor saw tells a missing server from one that connects but never finishes
         * the handshake (stuck, or not ZeroMQ) or never answers (busy, or not pnn-device/1) */
        char seen[200];
        if (!r->n_connected && r->restarts)
            snprintf(seen, sizeof seen, "something accepts TCP connections there, but no ZeroMQ event reached this "
                     "client in %d tries", r->restarts + 1);
        else if (!r->n_connected)
            snprintf(seen, sizeof seen, "no connection was made");
        else if (!r->n_handshakes)
            snprintf(seen, sizeof seen, "connected %d time(s), dropped %d time(s), but no handshake finished",
                     r->n_connected, r->n_disconnected);
        else
            snprintf(seen, sizeof seen, "the handshake finished %d time(s) but no reply came", r->n_handshakes);
        st = PNN_ERROR(PNN_ERR_DEVICE,
                       "no remote device answered at %s within %d ms (%s): start a server there, e.g. pnn serve "
                       "'sim:oscillator?n=100' --bind %s (or tools/pnn-device-server.py)%s",
                       u.endpoint, r->timeout_ms, seen, u.endpoint,
                       u.server_key[0] ? ", and check that server_key= is that server's public key and that it "
                                         "lists this client's key (--allow-client)"
                                       : "; a server started with --curve-key needs server_key= and client_key=");
        goto fail;
    }
    if (st != PNN_OK) goto fail;
    PNN_GOTO(stop_monitor(r));
    if (!rep.ok) {
        st = reply_error(r, "info", &rep);
        goto fail;
    }
    PNN_GOTO(fill_info(dev, &rep));
    /* bounded before theta_host is sized from it (pnn_device_open checks again, for every kind) */
    char who[300];
    snprintf(who, sizeof who, "remote device %s", u.endpoint);
    PNN_GOTO(pnn_device_info_check(&dev->info, who));
    r->theta_host = malloc((size_t)dev->info.theta_dim * sizeof(float));
    if (!r->theta_host) {
        st = PNN_ERROR(PNN_ERR_NOMEM, "remote device %s: out of memory for %lld controls", u.endpoint,
                       (long long)dev->info.theta_dim);
        goto fail;
    }
    r->stats.mechanism = security_names[r->sec];
    *out = dev;
    return PNN_OK;
fail:
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
