/* Remote devices over pnn-device/1: the C client against the C server (run in a thread of the
 * test), raw requests from a test DEALER for what the client never sends (bad headers, several
 * in flight), a fake server for late and stray replies, tokens, CURVE, and key files. */
#include <check.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "hwbridge/remote/protocol.h"
#include "pnn/pnn.h"
#include "pnn/remote.h"
#include "tests/remote_fixtures.h"
#include "tests/testutil.h"

/* ---- tests ---- */

START_TEST(forward_equals_inprocess_device) {
    const char *uri = "sim:oscillator?n=12&nt=4&seed=4";
    char dir[] = "/tmp/pnn-remote-XXXXXX", ipc[128];
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(ipc, sizeof ipc, "ipc://%s/dev.sock", dir);
    const char *binds[] = {NULL, ipc};
    for (int t = 0; t < 2; t++) {
        served s;
        serve_start(&s, uri, (pnn_server_config){.bind = binds[t]});
        char ruri[400];
        snprintf(ruri, sizeof ruri, "remote:%s", s.ep);
        pnn_device *rem, *loc;
        ck_assert_msg(pnn_device_open(ruri, be, &rem) == PNN_OK, "%s", pnn_last_error());
        ck_assert_int_eq(pnn_device_open(uri, be, &loc), PNN_OK);
        const pnn_device_info *ri = &rem->info;
        ck_assert_str_eq(ri->system, "oscillator");
        ck_assert_int_eq(ri->x_dim, 12); ck_assert_int_eq(ri->y_dim, 12); ck_assert_int_eq(ri->theta_dim, 156);
        ck_assert_int_eq(ri->max_batch, loc->info.max_batch);
        ck_assert_str_eq(ri->system_uri, uri);            /* what the twin reads */
        ck_assert_ptr_null(strstr(ri->uri, "sim:"));
        ck_assert_int_eq(ri->n_theta_parts, 2);
        ck_assert_str_eq(ri->theta_parts[0].name, "C"); ck_assert_str_eq(ri->theta_parts[1].name, "e");
        float *x = uniform(5 * 12, 1), *theta = uniform(156, 2);
        for (int call = 0; call < 3; call++) {  /* noise from (seed, call): same calls, same y */
            float *ya, *yb;
            ck_assert_msg(run(rem, x, 5, theta, &ya) == PNN_OK, "%s", pnn_last_error());
            ck_assert_int_eq(run(loc, x, 5, theta, &yb), PNN_OK);
            ck_assert_int_eq(memcmp(ya, yb, 60 * sizeof(float)), 0);
            free(ya), free(yb);
        }
        pnn_remote_stats rs;
        ck_assert_int_eq(pnn_remote_stats_get(rem, &rs), PNN_OK);
        ck_assert_int_eq(rs.requests, 4); ck_assert_int_eq(rs.replies, 4); ck_assert_int_eq(rs.late_or_unknown_replies, 0);
        ck_assert_int_eq(pnn_remote_stats_get(loc, &rs), PNN_ERR_INVALID);
        pnn_device_close(rem), pnn_device_close(loc), free(x), free(theta);
        pnn_server_stats ss;
        serve_stop(&s, &ss);
        ck_assert_int_eq(ss.requests, 4); ck_assert_int_eq(ss.ok, 4); ck_assert_int_eq(ss.forward_rows, 15);
    }
    rmdir(dir);
}
END_TEST

START_TEST(rep_socket_serves_too) {
    served s;
    serve_start(&s, "sim:oscillator?n=6&nt=2", (pnn_server_config){.use_rep = 1});
    char ruri[300];
    snprintf(ruri, sizeof ruri, "remote:%s", s.ep);
    pnn_device *rem, *loc;
    ck_assert_msg(pnn_device_open(ruri, be, &rem) == PNN_OK, "%s", pnn_last_error());
    ck_assert_int_eq(pnn_device_open("sim:oscillator?n=6&nt=2", be, &loc), PNN_OK);
    float *x = uniform(18, 3), *theta = uniform(42, 4), *ya, *yb;
    ck_assert_int_eq(run(rem, x, 3, theta, &ya), PNN_OK);
    ck_assert_int_eq(run(loc, x, 3, theta, &yb), PNN_OK);
    ck_assert_int_eq(memcmp(ya, yb, 18 * sizeof(float)), 0);
    free(ya), free(yb), free(x), free(theta);
    pnn_device_close(rem), pnn_device_close(loc);
    serve_stop(&s, NULL);
}
END_TEST

START_TEST(theta_per_sample_and_requests_in_flight) {
    const char *uri = "sim:oscillator?n=5&nt=3&seed=2";
    served s;
    serve_start(&s, uri, (pnn_server_config){0});
    pnn_device *loc;
    ck_assert_int_eq(pnn_device_open(uri, be, &loc), PNN_OK);
    raw r = raw_open(s.ep);
    /* theta per sample: row i with theta i; the server makes one device call per row */
    float *x = uniform(3 * 5, 5), *th = uniform(3 * 30, 6);
    const void *d[] = {x, th};
    size_t sz[] = {3 * 5 * 4, 3 * 30 * 4};
    raw_send(&r, "{\"op\":\"forward\",\"id\":1,\"batch\":3,\"theta_per_sample\":true}", 2, d, sz);
    pnn_proto_reply rep;
    float *y;
    size_t yb;
    raw_recv(&r, &rep, &y, &yb);
    ck_assert_msg(rep.ok, "%s", rep.message);
    ck_assert_int_eq(rep.batch, 3); ck_assert_int_eq(yb, 3 * 5 * 4);
    for (int i = 0; i < 3; i++) {
        float *yl;
        ck_assert_int_eq(run(loc, x + 5 * i, 1, th + 30 * i, &yl), PNN_OK);
        ck_assert_int_eq(memcmp(y + 5 * i, yl, 5 * sizeof(float)), 0);
        free(yl);
    }
    free(y);
    /* three requests in flight on one connection: each reply carries its id and its own y */
    float *xs[3];
    uint64_t ids[3] = {41, 7, 1000000007};
    for (int k = 0; k < 3; k++) {
        xs[k] = uniform((k + 1) * 5, 10 + k);
        char h[128];
        snprintf(h, sizeof h, "{\"op\":\"forward\",\"id\":%llu,\"batch\":%d}", (unsigned long long)ids[k], k + 1);
        const void *dk[] = {xs[k], th};
        size_t szk[] = {(size_t)(k + 1) * 20, 30 * 4};
        raw_send(&r, h, 2, dk, szk);
    }
    int seen[3] = {0};
    for (int k = 0; k < 3; k++) {
        raw_recv(&r, &rep, &y, &yb);
        ck_assert(rep.ok && rep.has_id);
        int which = rep.id == ids[0] ? 0 : rep.id == ids[1] ? 1 : rep.id == ids[2] ? 2 : -1;
        ck_assert_int_ge(which, 0);
        ck_assert_int_eq(seen[which]++, 0);
        ck_assert_int_eq(rep.batch, which + 1); ck_assert_int_eq(yb, (size_t)(which + 1) * 20);
        /* the server served them in order: the local device follows the same call indices */
        float *yl;
        ck_assert_int_eq(run(loc, xs[which], which + 1, th, &yl), PNN_OK);
        ck_assert_int_eq(memcmp(y, yl, yb), 0);
        free(y), free(yl);
    }
    for (int k = 0; k < 3; k++) free(xs[k]);
    free(x), free(th);
    raw_close(&r);
    pnn_device_close(loc);
    serve_stop(&s, NULL);
}
END_TEST

/* Every kind of bad request gets its error code (and its id when readable), and the server
 * answers a ping after each. */
static int bad_request_table(const char *ep, uint64_t want_errors[PNN_REMOTE_N_ERRORS]) {
    raw r = raw_open(ep);
    float *x = uniform(400 * 64, 1), *th = uniform(2 * 4160, 2);
    float nan_x[64];
    memcpy(nan_x, x, sizeof nan_x);
    nan_x[3] = NAN;
    char big_header[5000];
    memset(big_header, ' ', sizeof big_header - 1);
    big_header[sizeof big_header - 1] = '\0';
    memcpy(big_header, "{\"op\":\"ping\",\"id\":5", 19);
    big_header[sizeof big_header - 2] = '}';
    const size_t X1 = 256, TH = 4160 * 4;
    struct {
        const char *header;
        int n;
        const void *d[3];
        size_t sz[3];
        pnn_remote_error want;
        int has_id;
    } cases[] = {
        {"{\"op\":\"ping\",\"id\":", 0, {0}, {0}, PNN_REMOTE_BAD_REQUEST, 0},       /* not JSON */
        {"[1,2]", 0, {0}, {0}, PNN_REMOTE_BAD_REQUEST, 0},                          /* not an object */
        {"{\"op\":\"ping\"}", 0, {0}, {0}, PNN_REMOTE_BAD_REQUEST, 0},              /* no id */
        {"{\"op\":\"ping\",\"id\":-1}", 0, {0}, {0}, PNN_REMOTE_BAD_REQUEST, 0},
        {"{\"op\":\"ping\",\"id\":1.5}", 0, {0}, {0}, PNN_REMOTE_BAD_REQUEST, 0},
        {"{\"op\":\"ping\",\"id\":\"7\"}", 0, {0}, {0}, PNN_REMOTE_BAD_REQUEST, 0},
        {"{\"op\":\"ping\",\"id\":99999999999999999999999}", 0, {0}, {0}, PNN_REMOTE_BAD_REQUEST, 0},
        {"{\"op\":\"ping\",\"id\":3,\"id\":4}", 0, {0}, {0}, PNN_REMOTE_BAD_REQUEST, 0}, /* duplicate key */
        {"{\"id\":8}", 0, {0}, {0}, PNN_REMOTE_BAD_REQUEST, 1},                     /* no op */
        {"{\"op\":\"reboot\",\"id\":9}", 0, {0}, {0}, PNN_REMOTE_UNKNOWN_OP, 1},
        {"{\"op\":\"info\",\"id\":10}", 1, {x}, {X1}, PNN_REMOTE_BAD_REQUEST, 1},   /* info with a payload */
        {"{\"op\":\"forward\",\"id\":11}", 2, {x, th}, {X1, TH}, PNN_REMOTE_BAD_REQUEST, 1}, /* no batch */
        {"{\"op\":\"forward\",\"id\":12,\"batch\":\"1\"}", 2, {x, th}, {X1, TH}, PNN_REMOTE_BAD_REQUEST, 1},
        {"{\"op\":\"forward\",\"id\":13,\"batch\":0}", 2, {x, th}, {0, TH}, PNN_REMOTE_BAD_REQUEST, 1},
        {"{\"op\":\"forward\",\"id\":14,\"batch\":1}", 1, {x}, {X1}, PNN_REMOTE_BAD_REQUEST, 1},   /* no theta */
        {"{\"op\":\"forward\",\"id\":15,\"batch\":1}", 3, {x, th, th}, {X1, TH, TH}, PNN_REMOTE_BAD_REQUEST, 1},
        {"{\"op\":\"forward\",\"id\":16,\"batch\":1}", 2, {x, th}, {X1 - 4, TH}, PNN_REMOTE_BAD_SHAPE, 1},
        {"{\"op\":\"forward\",\"id\":17,\"batch\":2}", 2, {x, th}, {X1, TH}, PNN_REMOTE_BAD_SHAPE, 1},
        {"{\"op\":\"forward\",\"id\":18,\"batch\":1}", 2, {x, th}, {X1, TH + 4}, PNN_REMOTE_BAD_SHAPE, 1},
        {"{\"op\":\"forward\",\"id\":19,\"batch\":2,\"theta_per_sample\":true}", 2, {x, th}, {2 * X1, TH},
         PNN_REMOTE_BAD_SHAPE, 1},
        {"{\"op\":\"forward\",\"id\":20,\"batch\":1,\"theta_per_sample\":1}", 2, {x, th}, {X1, TH},
         PNN_REMOTE_BAD_REQUEST, 1},
        {"{\"op\":\"forward\",\"id\":21,\"batch\":4611686018427387904}", 2, {x, th}, {X1, TH}, PNN_REMOTE_TOO_LARGE, 1},
        {"{\"op\":\"forward\",\"id\":22,\"batch\":1001}", 2, {x, th}, {X1, TH}, PNN_REMOTE_TOO_LARGE, 1},
        {"{\"op\":\"forward\",\"id\":23,\"batch\":400}", 2, {x, th}, {400 * X1, TH}, PNN_REMOTE_TOO_LARGE, 1},
        {"{\"op\":\"forward\",\"id\":24,\"batch\":1}", 2, {nan_x, th}, {X1, TH}, PNN_REMOTE_BAD_REQUEST, 1},
        {big_header, 0, {0}, {0}, PNN_REMOTE_TOO_LARGE, 0},
        {"", 0, {0}, {0}, PNN_REMOTE_BAD_REQUEST, 0},                                  /* empty header */
        /* not UTF-8, and an op cut in the middle of a character: once stopped the server (fuzzer) */
        {"{\"op\\\xc4\xba\xba", 0, {0}, {0}, PNN_REMOTE_BAD_REQUEST, 0},
        {"{\"id\":40,\"op\":\"x\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
         "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\"}", 0, {0}, {0},
         PNN_REMOTE_UNKNOWN_OP, 1},
    };
    int n_cases = (int)(sizeof cases / sizeof cases[0]);
    for (int i = 0; i < n_cases; i++) {
        raw_send(&r, cases[i].header, cases[i].n, cases[i].d, cases[i].sz);
        pnn_proto_reply rep;
        raw_recv(&r, &rep, NULL, NULL);
        ck_assert_msg(!rep.ok && rep.error == cases[i].want, "case %d (%.60s): got %s (%s), want %s", i,
                      cases[i].header, rep.ok ? "ok" : rep.error_name, rep.message,
                      pnn_remote_error_name(cases[i].want));
        ck_assert_msg(rep.has_id == cases[i].has_id, "case %d: has_id %d", i, rep.has_id);
        ck_assert_msg(rep.message[0], "case %d: an error reply says why", i);
        want_errors[cases[i].want]++;
        expect_ping(&r, 1000 + (uint64_t)i);
    }
    /* too many frames: refused from the header alone */
    const void *many[12];
    size_t many_sz[12];
    for (int i = 0; i < 12; i++) many[i] = x, many_sz[i] = 4;
    raw_send(&r, "{\"op\":\"forward\",\"id\":30,\"batch\":1}", 12, many, many_sz);
    pnn_proto_reply rep;
    raw_recv(&r, &rep, NULL, NULL);
    ck_assert(!rep.ok && rep.error == PNN_REMOTE_BAD_REQUEST && rep.id == 30);
    want_errors[PNN_REMOTE_BAD_REQUEST]++;
    expect_ping(&r, 2000);
    /* and a good forward at the end */
    const void *d[] = {x, th};
    size_t sz[] = {X1, TH};
    raw_send(&r, "{\"op\":\"forward\",\"id\":31,\"batch\":1}", 2, d, sz);
    float *y;
    size_t yb;
    raw_recv(&r, &rep, &y, &yb);
    ck_assert(rep.ok && rep.id == 31 && yb == X1);
    free(y);
    raw_close(&r);
    free(x), free(th);
    return n_cases + 2;   /* the pings and the forward that were answered ok */
}

START_TEST(bad_requests_get_their_error_and_the_server_goes_on) {
    /* n = 64: x rows of 256 bytes, theta of 16640 bytes; the limit is 64 KiB */
    served s;
    serve_start(&s, "sim:oscillator?n=64&nt=1&max_batch=1000", (pnn_server_config){.max_message_bytes = 65536});
    uint64_t want_errors[PNN_REMOTE_N_ERRORS] = {0};
    int n_ok = bad_request_table(s.ep, want_errors);
    pnn_server_stats st;
    serve_stop(&s, &st);
    for (int e = 1; e < PNN_REMOTE_N_ERRORS; e++)
        ck_assert_msg(st.errors[e] == want_errors[e], "%s: %llu counted, %llu sent", pnn_remote_error_name(e),
                      (unsigned long long)st.errors[e], (unsigned long long)want_errors[e]);
    ck_assert_int_eq(st.ok, n_ok);
}
END_TEST

/* The Python example server (tools/pnn-device-server.py) keeps the same rules. */
START_TEST(python_server_gives_the_same_answers) {
    if (system("python3 -c 'import zmq, numpy' 2>/dev/null") != 0) {
        fprintf(stderr, "python_server_gives_the_same_answers: python3 lacks zmq or numpy, not run\n");
        return;
    }
    int fd[2];
    ck_assert_int_eq(pipe(fd), 0);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fd[1], 1);
        close(fd[0]);
        execlp("python3", "python3", PNN_SOURCE_DIR "/tools/pnn-device-server.py", "--demo", "oscillator", "--n",
               "64", "--nt", "1", "--max-batch", "1000", "--max-bytes", "65536", "--bind", "tcp://127.0.0.1:*",
               (char *)NULL);
        _exit(127);
    }
    close(fd[1]);
    FILE *f = fdopen(fd[0], "r");
    char line[300] = "";
    ck_assert_ptr_nonnull(fgets(line, sizeof line, f));
    fclose(f);
    ck_assert_msg(!strncmp(line, "listening on ", 13), "the Python server said '%s'", line);
    line[strcspn(line, "\n")] = '\0';
    uint64_t want_errors[PNN_REMOTE_N_ERRORS] = {0};
    bad_request_table(line + 13, want_errors);
    /* and the C client reads its info and runs a forward */
    char u[400];
    snprintf(u, sizeof u, "remote:%s", line + 13);
    pnn_device *dev;
    ck_assert_msg(pnn_device_open(u, be, &dev) == PNN_OK, "%s", pnn_last_error());
    ck_assert_str_eq(dev->info.system, "oscillator");
    ck_assert_int_eq(dev->info.theta_dim, 64 * 64 + 64);
    ck_assert_str_eq(dev->info.theta_parts[0].name, "C");
    ck_assert_ptr_nonnull(strstr(dev->info.system_uri, "nt=1"));
    float *x = uniform(3 * 64, 7), *th = uniform(4160, 8), *y;
    for (int i = 0; i < 4160; i++) th[i] *= 0.1f;
    ck_assert_msg(run(dev, x, 3, th, &y) == PNN_OK, "%s", pnn_last_error());
    /* one RK4 step of dt = 0.1 from rest moves q only a little */
    for (int i = 0; i < 3 * 64; i++) ck_assert(fabsf(y[i] - x[i]) < 0.05f);
    free(x), free(th), free(y);
    pnn_device_close(dev);
    /* SIGTERM stops it. It once did not within a minute: a signal that landed on one of
     * OpenBLAS's threads left the main thread blocked in recv (the server now polls, waking every
     * 200 ms to run the handler); the test still ends it for certain after 5 s rather than hang */
    kill(pid, SIGTERM);
    int exited = 0;
    for (int i = 0; i < 500 && !exited; i++) {
        exited = waitpid(pid, NULL, WNOHANG) == pid;
        if (!exited) nanosleep(&(struct timespec){0, 10000000}, NULL);
    }
    if (!exited) {
        fprintf(stderr, "python_server_gives_the_same_answers: the Python server ignored SIGTERM for 5 s\n");
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
    }
}
END_TEST

START_TEST(token_is_required) {
    served s;
    serve_start(&s, "sim:oscillator?n=4&nt=1", (pnn_server_config){.token = "s3cret"});
    char u[400];
    pnn_device *dev;
    snprintf(u, sizeof u, "remote:%s", s.ep);
    ck_assert_int_eq(pnn_device_open(u, be, &dev), PNN_ERR_INVALID);
    ck_assert_msg(strstr(pnn_last_error(), "unauthorized") && strstr(pnn_last_error(), "token="), "%s",
                  pnn_last_error());
    snprintf(u, sizeof u, "remote:%s?token=s3cre", s.ep);
    ck_assert_int_eq(pnn_device_open(u, be, &dev), PNN_ERR_INVALID);
    ck_assert_msg(strstr(pnn_last_error(), "wrong token"), "%s", pnn_last_error());
    snprintf(u, sizeof u, "remote:%s?token=s3%%63ret&timeout_ms=3000", s.ep);  /* %-escaped */
    ck_assert_msg(pnn_device_open(u, be, &dev) == PNN_OK, "%s", pnn_last_error());
    ck_assert_ptr_null(strstr(dev->info.uri, "s3cret"));   /* secrets stay out of the info */
    float x[4] = {0}, th[20] = {0}, *y;
    ck_assert_int_eq(run(dev, x, 1, th, &y), PNN_OK);
    free(y);
    pnn_device_close(dev);
    /* past the handshake, a raw forward with a wrong token in its header is unauthorized too, and
     * the server goes on */
    raw r = raw_open_plain(s.ep, "s3cret");
    const void *d[] = {x, th};
    size_t sz[] = {16, 80};
    raw_send(&r, "{\"op\":\"forward\",\"id\":3,\"batch\":1,\"token\":\"nope\"}", 2, d, sz);
    pnn_proto_reply rep;
    raw_recv(&r, &rep, NULL, NULL);
    ck_assert(!rep.ok && rep.error == PNN_REMOTE_UNAUTHORIZED && rep.id == 3);
    raw_send(&r, "{\"op\":\"ping\",\"id\":4,\"token\":\"s3cret\"}", 0, NULL, NULL);
    raw_recv(&r, &rep, NULL, NULL);
    ck_assert(rep.ok && rep.id == 4);
    raw_close(&r);
    serve_stop(&s, NULL);
}
END_TEST

/* ---- a fake server: replies with a wrong id, late, or with NaN ---- */

typedef struct fake {
    void *ctx, *sock;
    char ep[256];
    pthread_t th;
} fake;

static void fake_reply(void *sock, zmq_msg_t *env, int n_env, const char *header, const float *y, size_t yb) {
    for (int i = 0; i < n_env; i++) zmq_send(sock, zmq_msg_data(&env[i]), zmq_msg_size(&env[i]), ZMQ_SNDMORE);
    zmq_send(sock, header, strlen(header), y ? ZMQ_SNDMORE : 0);
    if (y) zmq_send(sock, y, yb, 0);
}

/* a device of x_dim 2, y_dim 2, theta_dim 1; forward k: 1 = a stray reply first, 2 = late,
 * 3 = prompt, 4 = NaN. y is filled with the request id. */
static void *fake_thread(void *arg) {
    fake *f = arg;
    pnn_device_info info = {.system = "fake", .x_dim = 2, .y_dim = 2, .theta_dim = 1, .max_batch = 16,
                            .x_range = {-10, 10}, .theta_range = {-10, 10}};
    pnn_proto_limits lim = {.x_dim = 2, .y_dim = 2, .theta_dim = 1, .max_batch = 16, .x_range = {-10, 10},
                            .theta_range = {-10, 10}, .max_message = 1 << 20};
    for (int k = 0; k < 5; k++) {
        zmq_msg_t m[6];
        int n = 0, more = 1;
        while (more && n < 6) {
            zmq_msg_init(&m[n]);
            if (zmq_msg_recv(&m[n], f->sock, 0) < 0) return NULL;
            more = zmq_msg_more(&m[n++]);
        }
        pnn_proto_frame fr[4];
        for (int i = 2; i < n; i++) fr[i - 2] = (pnn_proto_frame){zmq_msg_data(&m[i]), zmq_msg_size(&m[i])};
        pnn_proto_request req;
        char msg[200];
        pnn_remote_error e = pnn_proto_parse_request(fr, n - 2, &lim, &req, msg, sizeof msg);
        char *h = NULL;
        if (e == PNN_REMOTE_OK && req.op == PNN_OP_INFO) {
            h = pnn_proto_info_reply(req.id, &info);
            fake_reply(f->sock, m, 2, h, NULL, 0);
        } else if (e == PNN_REMOTE_OK && req.op == PNN_OP_FORWARD) {
            float y[32];
            for (int i = 0; i < 32; i++) y[i] = (float)req.id;
            size_t yb = (size_t)req.batch * 2 * sizeof(float);
            if (k == 1) { /* a reply to an id nobody asked for, then the real one */
                char *stray = pnn_proto_forward_reply(req.id + 1000, req.batch);
                fake_reply(f->sock, m, 2, stray, y, yb);
                free(stray);
            }
            if (k == 2) sleep_ms(400);  /* after the client's deadline */
            if (k == 4) y[1] = NAN;
            h = pnn_proto_forward_reply(req.id, req.batch);
            fake_reply(f->sock, m, 2, h, y, yb);
        }
        free(h);
        for (int i = 0; i < n; i++) zmq_msg_close(&m[i]);
    }
    return NULL;
}

START_TEST(late_and_stray_replies_are_dropped_and_counted) {
    fake f = {.ctx = zmq_ctx_new()};
    f.sock = zmq_socket(f.ctx, ZMQ_ROUTER);
    int zero = 0;
    zmq_setsockopt(f.sock, ZMQ_LINGER, &zero, sizeof zero);
    ck_assert_int_eq(zmq_bind(f.sock, "tcp://127.0.0.1:*"), 0);
    size_t len = sizeof f.ep;
    zmq_getsockopt(f.sock, ZMQ_LAST_ENDPOINT, f.ep, &len);
    pthread_create(&f.th, NULL, fake_thread, &f);
    char u[400];
    snprintf(u, sizeof u, "remote:%s?timeout_ms=250", f.ep);
    pnn_device *dev;
    ck_assert_msg(pnn_device_open(u, be, &dev) == PNN_OK, "%s", pnn_last_error());
    ck_assert_str_eq(dev->info.system, "fake");
    ck_assert_int_eq(dev->info.n_theta_parts, 1);           /* no parts listed: one "theta" */
    ck_assert_str_eq(dev->info.theta_parts[0].name, "theta");
    ck_assert_str_eq(dev->info.system_uri, "remote:fake");
    float x[4] = {1, 2, 3, 4}, th[1] = {0.5f}, *y;
    pnn_remote_stats rs;
    /* request 2: a stray reply (id 1002) comes first and is dropped */
    ck_assert_msg(run(dev, x, 2, th, &y) == PNN_OK, "%s", pnn_last_error());
    ck_assert(y[0] == 2.0f && y[3] == 2.0f);
    free(y);
    pnn_remote_stats_get(dev, &rs);
    ck_assert_int_eq(rs.late_or_unknown_replies, 1);
    /* request 3 times out; its reply comes later */
    ck_assert_int_eq(run(dev, x, 2, th, &y), PNN_ERR_TIMEOUT);
    ck_assert_ptr_nonnull(strstr(pnn_last_error(), "timeout_ms="));
    free(y);
    sleep_ms(400);
    /* request 4 gets its own y, not the late reply of 3, which is dropped */
    ck_assert_msg(run(dev, x, 1, th, &y) == PNN_OK, "%s", pnn_last_error());
    ck_assert(y[0] == 4.0f && y[1] == 4.0f);
    free(y);
    pnn_remote_stats_get(dev, &rs);
    ck_assert_int_eq(rs.late_or_unknown_replies, 2);
    ck_assert_int_eq(rs.timeouts, 1);
    /* request 5: y holds a NaN: the generic device check makes it a device fault */
    ck_assert_int_eq(run(dev, x, 1, th, &y), PNN_ERR_DEVICE);
    ck_assert_ptr_nonnull(strstr(pnn_last_error(), "NaN"));
    free(y);
    /* x outside the device's x_range is refused before sending */
    float far[2] = {11, 0};
    ck_assert_int_eq(run(dev, far, 1, th, &y), PNN_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(pnn_last_error(), "x_range"));
    free(y);
    pnn_device_close(dev);
    pthread_join(f.th, NULL);
    zmq_close(f.sock);
    zmq_ctx_term(f.ctx);
}
END_TEST

START_TEST(device_faults_are_retryable_errors) {
    served s;
    serve_start(&s, "sim:oscillator?n=4&nt=1&fault_rate=1", (pnn_server_config){0});
    char u[400];
    snprintf(u, sizeof u, "remote:%s", s.ep);
    pnn_device *dev;
    ck_assert_msg(pnn_device_open(u, be, &dev) == PNN_OK, "%s", pnn_last_error());
    float x[4] = {0}, th[20] = {0}, *y;
    pnn_status st = run(dev, x, 1, th, &y);
    ck_assert_int_eq(st, PNN_ERR_DEVICE);
    ck_assert(pnn_status_retryable(st));
    ck_assert_msg(strstr(pnn_last_error(), "device_fault") && strstr(pnn_last_error(), "retried"), "%s",
                  pnn_last_error());
    free(y);
    pnn_device_close(dev);
    pnn_server_stats ss;
    serve_stop(&s, &ss);
    ck_assert_int_eq(ss.errors[PNN_REMOTE_DEVICE_FAULT], 1);
}
END_TEST

START_TEST(uri_and_open_errors_say_what_to_do) {
    pnn_device *dev;
    ck_assert_int_eq(pnn_device_open("remote:http://example.org", be, &dev), PNN_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(pnn_last_error(), "remote:tcp://"));
    ck_assert_int_eq(pnn_device_open("remote:tcp://127.0.0.1:1?colour=red", be, &dev), PNN_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(pnn_last_error(), "colour"));
    ck_assert_int_eq(pnn_device_open("remote:tcp://127.0.0.1:1?timeout_ms=0", be, &dev), PNN_ERR_INVALID);
    ck_assert_int_eq(pnn_device_open("remote:tcp://127.0.0.1:1?server_key=x", be, &dev), PNN_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(pnn_last_error(), "client_key"));
    ck_assert_int_eq(pnn_device_open("remote:tcp://127.0.0.1:1?token=a&token_file=b", be, &dev), PNN_ERR_INVALID);
    /* nobody listening: a port just released */
    void *ctx = zmq_ctx_new(), *s = zmq_socket(ctx, ZMQ_ROUTER);
    char ep[256], u[400];
    size_t len = sizeof ep;
    zmq_bind(s, "tcp://127.0.0.1:*");
    zmq_getsockopt(s, ZMQ_LAST_ENDPOINT, ep, &len);
    zmq_close(s);
    zmq_ctx_term(ctx);
    snprintf(u, sizeof u, "remote:%s?timeout_ms=200", ep);
    ck_assert_int_eq(pnn_device_open(u, be, &dev), PNN_ERR_DEVICE);
    ck_assert_msg(strstr(pnn_last_error(), ep) && strstr(pnn_last_error(), "pnn serve"), "%s", pnn_last_error());
}
END_TEST

START_TEST(server_refuses_open_network_without_curve) {
    pnn_device *dev;
    pnn_server *srv;
    ck_assert_int_eq(pnn_device_open("sim:oscillator?n=4&nt=1", be, &dev), PNN_OK);
    pnn_server_config cfg = {.bind = "tcp://0.0.0.0:*"};
    ck_assert_int_eq(pnn_server_create(dev, &cfg, &srv), PNN_ERR_CONFIG);
    ck_assert_msg(strstr(pnn_last_error(), "CURVE") && strstr(pnn_last_error(), "--insecure"), "%s",
                  pnn_last_error());
    cfg.insecure = 1;
    ck_assert_msg(pnn_server_create(dev, &cfg, &srv) == PNN_OK, "%s", pnn_last_error());
    pnn_server_free(srv);
    cfg = (pnn_server_config){.bind = "tcp://127.0.0.1:*", .curve_key_file = "/nonexistent.key"};
    ck_assert_int_eq(pnn_server_create(dev, &cfg, &srv), PNN_ERR_CONFIG);   /* no allowed clients */
    pnn_device_close(dev);
}
END_TEST

START_TEST(keygen_writes_private_key_files) {
    char dir[] = "/tmp/pnn-keys-XXXXXX", path[256], pub_path[300];
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/a.key", dir);
    snprintf(pub_path, sizeof pub_path, "%s/a.key.pub", dir);
    ck_assert_msg(pnn_remote_keygen(path, 0) == PNN_OK, "%s", pnn_last_error());
    struct stat sb;
    ck_assert_int_eq(stat(path, &sb), 0);
    ck_assert_int_eq(sb.st_mode & 0777, 0600);
    ck_assert_int_eq(stat(pub_path, &sb), 0);
    ck_assert_int_eq(sb.st_mode & 0777, 0644);
    char pub[41], sec[41], pub2[41];
    ck_assert_int_eq(pnn_remote_key_read(path, pub, sec), PNN_OK);
    ck_assert_int_eq(pnn_remote_key_public(pub_path, pub2), PNN_OK);
    ck_assert_str_eq(pub, pub2);
    ck_assert_int_eq(pnn_remote_key_public(pub, pub2), PNN_OK);    /* a Z85 key as is */
    ck_assert_int_eq(pnn_remote_key_read(pub_path, pub2, sec), PNN_ERR_CONFIG); /* no secret in .pub */
    ck_assert_int_eq(pnn_remote_keygen(path, 0), PNN_ERR_INVALID); /* never replaced silently */
    ck_assert_int_eq(pnn_remote_keygen(path, 1), PNN_OK);
    ck_assert_int_eq(pnn_remote_key_read(path, pub2, sec), PNN_OK);
    ck_assert_str_ne(pub, pub2);
    unlink(path), unlink(pub_path), rmdir(dir);
}
END_TEST

START_TEST(curve_lets_in_only_listed_clients) {
    char dir[] = "/tmp/pnn-curve-XXXXXX", sk[256], ok_k[256], bad_k[256], ok_pub[300], srv_pub[300];
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(sk, sizeof sk, "%s/server.key", dir);
    snprintf(ok_k, sizeof ok_k, "%s/alice.key", dir);
    snprintf(bad_k, sizeof bad_k, "%s/mallory.key", dir);
    snprintf(ok_pub, sizeof ok_pub, "%s.pub", ok_k);
    snprintf(srv_pub, sizeof srv_pub, "%s.pub", sk);
    ck_assert_int_eq(pnn_remote_keygen(sk, 0), PNN_OK);
    ck_assert_int_eq(pnn_remote_keygen(ok_k, 0), PNN_OK);
    ck_assert_int_eq(pnn_remote_keygen(bad_k, 0), PNN_OK);
    const char *allow[] = {ok_pub};
    served s;
    serve_start(&s, "sim:oscillator?n=4&nt=1",
                (pnn_server_config){.curve_key_file = sk, .allow_clients = allow, .n_allow_clients = 1});
    char u[1200], z85[41];
    pnn_device *dev;
    float x[4] = {0.1f}, th[20] = {0}, *y;
    /* the listed client, with the server key as a file and as Z85 */
    snprintf(u, sizeof u, "remote:%s?server_key=%s&client_key=%s&timeout_ms=3000", s.ep, srv_pub, ok_k);
    ck_assert_msg(pnn_device_open(u, be, &dev) == PNN_OK, "%s", pnn_last_error());
    ck_assert_int_eq(run(dev, x, 1, th, &y), PNN_OK);
    free(y);
    pnn_device_close(dev);
    ck_assert_int_eq(pnn_remote_key_public(srv_pub, z85), PNN_OK);
    char esc[130] = "";  /* Z85 uses & ? = %: %-escape it all in a URI */
    for (int i = 0; i < 40; i++) snprintf(esc + 3 * i, 4, "%%%02X", (unsigned char)z85[i]);
    snprintf(u, sizeof u, "remote:%s?server_key=%s&client_key=%s&timeout_ms=3000", s.ep, esc, ok_k);
    ck_assert_msg(pnn_device_open(u, be, &dev) == PNN_OK, "%s", pnn_last_error());
    pnn_device_close(dev);
    /* an unknown client key: no service */
    snprintf(u, sizeof u, "remote:%s?server_key=%s&client_key=%s&timeout_ms=500", s.ep, srv_pub, bad_k);
    ck_assert_int_eq(pnn_device_open(u, be, &dev), PNN_ERR_INVALID);
    ck_assert_msg(strstr(pnn_last_error(), "--allow-client"), "%s", pnn_last_error());
    /* no CURVE at all: no service, and the client says so at once */
    snprintf(u, sizeof u, "remote:%s?timeout_ms=500", s.ep);
    ck_assert_int_eq(pnn_device_open(u, be, &dev), PNN_ERR_INVALID);
    ck_assert_msg(strstr(pnn_last_error(), "server_key="), "%s", pnn_last_error());
    /* a raw plain-text DEALER gets nothing either */
    raw r = raw_open(s.ep);
    raw_send(&r, "{\"op\":\"ping\",\"id\":1}", 0, NULL, NULL);
    zmq_pollitem_t it = {r.sock, 0, ZMQ_POLLIN, 0};
    ck_assert_int_eq(zmq_poll(&it, 1, 300), 0);
    raw_close(&r);
    pnn_server_stats ss;
    serve_stop(&s, &ss);
    ck_assert_int_ge(ss.curve_accepted, 2);
    ck_assert_int_ge(ss.curve_denied, 1);
    ck_assert_int_eq(ss.requests, 3);   /* two infos and a forward: nothing from the others */
    const char *names[] = {"server.key", "alice.key", "mallory.key"};
    for (int i = 0; i < 3; i++) {
        char p[300];
        snprintf(p, sizeof p, "%s/%s", dir, names[i]);
        unlink(p);
        strcat(p, ".pub");
        unlink(p);
    }
    rmdir(dir);
}
END_TEST

Suite *remote_suite(void) {
    Suite *s = suite_create("remote");
    TCase *tc = tcase_create("remote");
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, forward_equals_inprocess_device);
    tcase_add_test(tc, rep_socket_serves_too);
    tcase_add_test(tc, theta_per_sample_and_requests_in_flight);
    tcase_add_test(tc, bad_requests_get_their_error_and_the_server_goes_on);
    tcase_add_test(tc, python_server_gives_the_same_answers);
    tcase_add_test(tc, token_is_required);
    tcase_add_test(tc, late_and_stray_replies_are_dropped_and_counted);
    tcase_add_test(tc, device_faults_are_retryable_errors);
    tcase_add_test(tc, uri_and_open_errors_say_what_to_do);
    tcase_add_test(tc, server_refuses_open_network_without_curve);
    tcase_add_test(tc, keygen_writes_private_key_files);
    tcase_add_test(tc, curve_lets_in_only_listed_clients);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    return pnn_test_run(remote_suite());
}
