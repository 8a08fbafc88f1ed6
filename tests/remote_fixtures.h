/* What the remote-device suites share (test_remote.c, test_remote_security.c): a C server in a
 * thread of the test, forward calls on a device, and a raw DEALER that sends what the client never
 * would. Header-only: each suite is one program (CMake links testutil.c only). */
#ifndef PNN_TESTS_REMOTE_FIXTURES_H
#define PNN_TESTS_REMOTE_FIXTURES_H

#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

#include "hwbridge/remote/protocol.h"
#include "pnn/pnn.h"
#include "pnn/remote.h"
#include "tests/testutil.h"

static const pnn_backend *be;
static inline void setup(void) { be = pnn_backend_cpu(); }

static inline void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* ---- a C server in a thread ---- */

typedef struct served {
    pnn_device *dev;
    pnn_server *srv;
    pthread_t th;
    volatile int stop;
    pnn_status st;
    char ep[256];
} served;

static inline void *serve_thread(void *arg) {
    served *s = arg;
    s->st = pnn_server_serve(s->srv, &s->stop);
    return NULL;
}

static inline void serve_start(served *s, const char *dev_uri, pnn_server_config cfg) {
    memset(s, 0, sizeof *s);
    ck_assert_msg(pnn_device_open(dev_uri, be, &s->dev) == PNN_OK, "%s", pnn_last_error());
    if (!cfg.bind) cfg.bind = "tcp://127.0.0.1:*";
    cfg.poll_ms = 20;
    ck_assert_msg(pnn_server_create(s->dev, &cfg, &s->srv) == PNN_OK, "%s", pnn_last_error());
    snprintf(s->ep, sizeof s->ep, "%s", pnn_server_endpoint(s->srv));
    ck_assert_int_eq(pthread_create(&s->th, NULL, serve_thread, s), 0);
}

static inline void serve_stop(served *s, pnn_server_stats *stats) {
    s->stop = 1;
    pthread_join(s->th, NULL);
    ck_assert_msg(s->st == PNN_OK, "server loop failed: %s", pnn_last_error());
    if (stats) pnn_server_get_stats(s->srv, stats);
    pnn_server_free(s->srv);
    pnn_device_close(s->dev);
}

/* ---- helpers ---- */

static inline float *uniform(int64_t n, uint64_t stream) {
    float *v = malloc((size_t)n * sizeof(float));
    pnn_test_uniform(v, n, -1, 1, 5, stream);
    return v;
}

/* y (host, malloc'd) = dev forward of x (host) */
static inline pnn_status run(pnn_device *dev, const float *x, int64_t rows, const float *theta_host, float **y_out) {
    const pnn_device_info *in = &dev->info;
    pnn_tensor tx, ty, tt;
    ck_assert_int_eq(pnn_tensor_init2(&tx, be, rows, in->x_dim), PNN_OK);
    ck_assert_int_eq(pnn_tensor_init2(&ty, be, rows, in->y_dim), PNN_OK);
    ck_assert_int_eq(pnn_tensor_init2(&tt, be, 1, in->theta_dim), PNN_OK);
    pnn_tensor_from_host(&tx, x, rows * in->x_dim);
    pnn_tensor_from_host(&tt, theta_host, in->theta_dim);
    pnn_status st = pnn_device_forward(dev, &tx, tt.data, &ty);
    *y_out = malloc((size_t)(rows * in->y_dim) * sizeof(float));
    pnn_tensor_to_host(&ty, *y_out, rows * in->y_dim);
    pnn_tensor_free(&tx), pnn_tensor_free(&ty), pnn_tensor_free(&tt);
    return st;
}

/* A raw DEALER of the test's own context; with a password, a ZMTP PLAIN client (user "test"). */
typedef struct raw {
    void *ctx, *sock;
} raw;

static inline raw raw_open_plain(const char *ep, const char *password) {
    raw r = {zmq_ctx_new(), NULL};
    r.sock = zmq_socket(r.ctx, ZMQ_DEALER);
    int zero = 0;
    zmq_setsockopt(r.sock, ZMQ_LINGER, &zero, sizeof zero);
    if (password) {
        ck_assert_int_eq(zmq_setsockopt(r.sock, ZMQ_PLAIN_USERNAME, "test", 4), 0);
        ck_assert_int_eq(zmq_setsockopt(r.sock, ZMQ_PLAIN_PASSWORD, password, strlen(password)), 0);
    }
    ck_assert_int_eq(zmq_connect(r.sock, ep), 0);
    return r;
}

static inline raw raw_open(const char *ep) { return raw_open_plain(ep, NULL); }

static inline void raw_close(raw *r) {
    zmq_close(r->sock);
    zmq_ctx_term(r->ctx);
}

/* Sends [empty][header][frames...] */
static inline void raw_send(raw *r, const char *header, int n, const void *const *data, const size_t *size) {
    ck_assert_int_ge(zmq_send(r->sock, "", 0, ZMQ_SNDMORE), 0);
    ck_assert_int_ge(zmq_send(r->sock, header, strlen(header), n ? ZMQ_SNDMORE : 0), 0);
    for (int i = 0; i < n; i++) ck_assert_int_ge(zmq_send(r->sock, data[i], size[i], i + 1 < n ? ZMQ_SNDMORE : 0), 0);
}

/* Receives one reply within 5 s: header parsed into rep, payload (if any) copied into a malloc'd *y. */
static inline void raw_recv(raw *r, pnn_proto_reply *rep, float **y, size_t *y_bytes) {
    zmq_pollitem_t it = {r->sock, 0, ZMQ_POLLIN, 0};
    ck_assert_msg(zmq_poll(&it, 1, 5000) == 1, "no reply within 5 s");
    zmq_msg_t m[4];
    int n = 0, more = 1;
    while (more) {
        zmq_msg_init(&m[n]);
        ck_assert_int_ge(zmq_msg_recv(&m[n], r->sock, 0), 0);
        more = zmq_msg_more(&m[n]);
        n++;
        ck_assert_int_le(n, 3);
    }
    ck_assert_int_eq(zmq_msg_size(&m[0]), 0); /* the delimiter */
    ck_assert_msg(pnn_proto_parse_reply(zmq_msg_data(&m[1]), zmq_msg_size(&m[1]), rep) == PNN_OK, "%s",
                  pnn_last_error());
    if (y) {
        *y = NULL;
        *y_bytes = n == 3 ? zmq_msg_size(&m[2]) : 0;
        if (n == 3) {
            *y = malloc(*y_bytes);
            memcpy(*y, zmq_msg_data(&m[2]), *y_bytes);
        }
    }
    if (!rep->ok) ck_assert_int_eq(n, 2);
    for (int i = 0; i < n; i++) zmq_msg_close(&m[i]);
}

/* The server still answers a ping after whatever came before. */
static inline void expect_ping(raw *r, uint64_t id) {
    char h[64];
    snprintf(h, sizeof h, "{\"op\":\"ping\",\"id\":%llu}", (unsigned long long)id);
    raw_send(r, h, 0, NULL, NULL);
    pnn_proto_reply rep;
    raw_recv(r, &rep, NULL, NULL);
    ck_assert_msg(rep.ok && rep.has_id && rep.id == id, "ping %llu not answered", (unsigned long long)id);
}

#endif
