/* What a remote device costs per request: the same cheap oscillator (n = 16, one RK4 step, no
 * noise) called in process, through the C server (`pnn serve`'s code, in a thread of this
 * process) and through the Python example server (tools/pnn-device-server.py, a child process),
 * each over TCP loopback and over ipc://, at batch 32 and 1024, beside the transport's floor: a
 * bare ZeroMQ echo of the same frames (zmq-echo; MB/s counts both directions). Latency per request (median,
 * p10, p90), requests/s and payload MB/s (x + theta + y). Writes
 * benchmarks/results/remote-overhead-DATE.json. Run from the repository root:
 *     build/remote_overhead [--quick] [--out FILE] */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "pnn/floor.h"
#include "pnn/clock.h"
#include "pnn/pnn.h"
#include "pnn/remote.h"

#define DEVICE "sim:oscillator?n=16&nt=1&noise=0&mismatch=0"
#define PY_SCRIPT "tools/pnn-device-server.py"

typedef struct figure {
    char server[16], transport[8];
    int64_t batch;
    int requests;
    double median_us, p10_us, p90_us, req_per_s, mb_per_s;
} figure;

/* Times `requests` forwards of batch rows on dev (after a warm-up). */
static int measure(pnn_device *dev, int64_t batch, int requests, figure *f) {
    const pnn_backend *be = pnn_backend_cpu();
    const pnn_device_info *in = &dev->info;
    pnn_tensor x, y, th;
    pnn_tensor_init2(&x, be, batch, in->x_dim);
    pnn_tensor_init2(&y, be, batch, in->y_dim);
    pnn_tensor_init2(&th, be, 1, in->theta_dim);
    float *host = malloc((size_t)(batch * in->x_dim + in->theta_dim) * sizeof(float));
    pnn_rng_uniform(1, 2, 0, batch * in->x_dim + in->theta_dim, host);
    for (int64_t i = 0; i < batch * in->x_dim + in->theta_dim; i++) host[i] = 0.2f * (host[i] - 0.5f);
    pnn_tensor_from_host(&x, host, batch * in->x_dim);
    pnn_tensor_from_host(&th, host + batch * in->x_dim, in->theta_dim);
    double *lat = malloc((size_t)requests * sizeof(double));
    int rc = 0;
    for (int i = 0; i < 20 && !rc; i++) rc = pnn_device_forward(dev, &x, th.data, &y) != PNN_OK;
    double t_start = pnn_now_s();
    for (int i = 0; i < requests && !rc; i++) {
        double t0 = pnn_now_s();
        rc = pnn_device_forward(dev, &x, th.data, &y) != PNN_OK;
        lat[i] = (pnn_now_s() - t0) * 1e6;
    }
    double total = pnn_now_s() - t_start;
    if (rc) fprintf(stderr, "remote_overhead: %s\n", pnn_last_error());
    qsort(lat, (size_t)requests, sizeof *lat, pnn_cmp_double);
    f->batch = batch;
    f->requests = requests;
    f->median_us = lat[requests / 2];
    f->p10_us = lat[requests / 10];
    f->p90_us = lat[requests * 9 / 10];
    f->req_per_s = requests / total;
    f->mb_per_s = f->req_per_s * (double)((batch * (in->x_dim + in->y_dim) + in->theta_dim) * 4) / 1e6;
    free(lat), free(host);
    pnn_tensor_free(&x), pnn_tensor_free(&y), pnn_tensor_free(&th);
    return rc;
}

typedef struct c_server {
    pnn_device *dev;
    pnn_server *srv;
    pthread_t th;
    volatile int stop;
} c_server;

static void *serve_thread(void *arg) {
    c_server *s = arg;
    pnn_server_serve(s->srv, &s->stop);
    return NULL;
}

/* The transport floor: a ROUTER that echoes each message back (no JSON, no device), driven by a
 * raw DEALER sending the same frames a forward request carries. */
typedef struct echo {
    void *ctx, *sock;
    char ep[256];
    volatile int stop;
    pthread_t th;
} echo;

static void *echo_thread(void *arg) {
    echo *e = arg;
    zmq_pollitem_t it = {e->sock, 0, ZMQ_POLLIN, 0};
    while (!e->stop) {
        if (zmq_poll(&it, 1, 50) != 1) continue;
        int more = 1;
        while (more) {
            zmq_msg_t m;
            zmq_msg_init(&m);
            if (zmq_msg_recv(&m, e->sock, 0) < 0) return NULL;
            more = zmq_msg_more(&m);
            zmq_msg_send(&m, e->sock, more ? ZMQ_SNDMORE : 0);
        }
    }
    return NULL;
}

static int measure_echo(const char *bind, int64_t batch, int requests, figure *f) {
    echo e = {.ctx = zmq_ctx_new()};
    e.sock = zmq_socket(e.ctx, ZMQ_ROUTER);
    size_t len = sizeof e.ep;
    if (zmq_bind(e.sock, bind) != 0 || zmq_getsockopt(e.sock, ZMQ_LAST_ENDPOINT, e.ep, &len) != 0) return 1;
    pthread_create(&e.th, NULL, echo_thread, &e);
    void *ctx = zmq_ctx_new(), *d = zmq_socket(ctx, ZMQ_DEALER);
    zmq_connect(d, e.ep);
    size_t xb = (size_t)batch * 16 * 4, tb = 272 * 4;
    char *buf = calloc(1, xb + tb), header[128];
    double *lat = malloc((size_t)requests * sizeof(double)), t_start = 0;
    for (int i = -20; i < requests; i++) {
        if (i == 0) t_start = pnn_now_s();
        double t0 = pnn_now_s();
        int hl = snprintf(header, sizeof header, "{\"op\":\"forward\",\"id\":%d,\"batch\":%lld}", i, (long long)batch);
        zmq_send(d, "", 0, ZMQ_SNDMORE);
        zmq_send(d, header, (size_t)hl, ZMQ_SNDMORE);
        zmq_send(d, buf, xb, ZMQ_SNDMORE);
        zmq_send(d, buf + xb, tb, 0);
        for (int k = 0; k < 4; k++) zmq_recv(d, buf, xb + tb, 0);
        if (i >= 0) lat[i] = (pnn_now_s() - t0) * 1e6;
    }
    double total = pnn_now_s() - t_start;
    qsort(lat, (size_t)requests, sizeof *lat, pnn_cmp_double);
    f->batch = batch;
    f->requests = requests;
    f->median_us = lat[requests / 2];
    f->p10_us = lat[requests / 10];
    f->p90_us = lat[requests * 9 / 10];
    f->req_per_s = requests / total;
    f->mb_per_s = f->req_per_s * (double)(xb * 2 + tb * 2) / 1e6;
    e.stop = 1;
    pthread_join(e.th, NULL);
    int zero = 0;
    zmq_setsockopt(d, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(e.sock, ZMQ_LINGER, &zero, sizeof zero);
    zmq_close(d), zmq_close(e.sock);
    zmq_ctx_term(ctx), zmq_ctx_term(e.ctx);
    free(buf), free(lat);
    return 0;
}

/* Starts the Python server on bind; its endpoint goes to ep. Returns the child's pid or -1. */
static pid_t start_python(const char *bind, char *ep, size_t ep_size) {
    int fd[2];
    if (pipe(fd) != 0) return -1;
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fd[1], 1);
        close(fd[0]);
        execlp("python3", "python3", PY_SCRIPT, "--demo", "oscillator", "--n", "16", "--nt", "1", "--bind", bind,
               (char *)NULL);
        _exit(127);
    }
    close(fd[1]);
    FILE *f = fdopen(fd[0], "r");
    char line[512] = "";
    if (!f || !fgets(line, sizeof line, f) || strncmp(line, "listening on ", 13)) {
        fprintf(stderr, "remote_overhead: the Python server did not start (%s)\n", line);
        if (f) fclose(f);
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        return -1;
    }
    fclose(f);
    snprintf(ep, ep_size, "%.250s", line + 13);
    ep[strcspn(ep, "\n")] = '\0';
    return pid;
}

static void machine(char *cpu, size_t size, char *commit, size_t csize) {
    pnn_floor_cpu_model(cpu, size);
    char line[512];
    snprintf(commit, csize, "unknown");
    FILE *f = popen("git rev-parse --short HEAD 2>/dev/null && git status --porcelain 2>/dev/null | head -1", "r");
    if (f && fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = '\0';
        snprintf(commit, csize, "%.40s", line);
        if (fgets(line, sizeof line, f)) strncat(commit, "+dirty", csize - strlen(commit) - 1);
    }
    if (f) pclose(f);
}

int main(int argc, char **argv) {
    int quick = 0;
    const char *out = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick")) quick = 1;
        else if (!strcmp(argv[i], "--out") && i + 1 < argc) out = argv[++i];
        else {
            fprintf(stderr, "usage: remote_overhead [--quick] [--out FILE] (run from the repository root)\n");
            return 64;
        }
    }
    if (access(PY_SCRIPT, R_OK) != 0) {
        fprintf(stderr, "remote_overhead: run me from the repository root (no %s here)\n", PY_SCRIPT);
        return 66;
    }
    const pnn_backend *be = pnn_backend_cpu();
    const int64_t batches[2] = {32, 1024};
    figure figs[32];
    int nf = 0, failed = 0;
    char dir[] = "/tmp/pnn-bench-XXXXXX";
    if (!mkdtemp(dir)) return 74;
    for (int b = 0; b < 2; b++) {
        int requests = (batches[b] == 32 ? 3000 : 600) / (quick ? 10 : 1);
        pnn_device *local;
        if (pnn_device_open(DEVICE, be, &local) != PNN_OK) return 69;
        figure *f = &figs[nf++];
        snprintf(f->server, sizeof f->server, "in-process");
        snprintf(f->transport, sizeof f->transport, "none");
        failed |= measure(local, batches[b], requests, f);
        for (int t = 0; t < 2; t++) {
            char bind[256], ep[256], uri[300];
            /* the C server */
            if (t == 0) snprintf(bind, sizeof bind, "tcp://127.0.0.1:*");
            else snprintf(bind, sizeof bind, "ipc://%s/c.sock", dir);
            f = &figs[nf++];
            snprintf(f->server, sizeof f->server, "zmq-echo");
            snprintf(f->transport, sizeof f->transport, t ? "ipc" : "tcp");
            if (t == 1) snprintf(bind, sizeof bind, "ipc://%s/echo.sock", dir);
            failed |= measure_echo(bind, batches[b], requests, f);
            if (t == 1) snprintf(bind, sizeof bind, "ipc://%s/c.sock", dir);
            c_server cs = {0};
            pnn_server_config cfg = {.bind = bind, .poll_ms = 50};
            if (pnn_device_open(DEVICE, be, &cs.dev) != PNN_OK || pnn_server_create(cs.dev, &cfg, &cs.srv) != PNN_OK) {
                fprintf(stderr, "remote_overhead: %s\n", pnn_last_error());
                return 69;
            }
            pthread_create(&cs.th, NULL, serve_thread, &cs);
            snprintf(uri, sizeof uri, "remote:%s", pnn_server_endpoint(cs.srv));
            pnn_device *rem;
            if (pnn_device_open(uri, be, &rem) != PNN_OK) return 69;
            f = &figs[nf++];
            snprintf(f->server, sizeof f->server, "c");
            snprintf(f->transport, sizeof f->transport, t ? "ipc" : "tcp");
            failed |= measure(rem, batches[b], requests, f);
            pnn_device_close(rem);
            cs.stop = 1;
            pthread_join(cs.th, NULL);
            pnn_server_free(cs.srv);
            pnn_device_close(cs.dev);
            /* the Python server */
            if (t == 1) snprintf(bind, sizeof bind, "ipc://%s/py.sock", dir);
            pid_t pid = start_python(bind, ep, sizeof ep);
            if (pid < 0) return 69;
            snprintf(uri, sizeof uri, "remote:%s", ep);
            if (pnn_device_open(uri, be, &rem) != PNN_OK) {
                fprintf(stderr, "remote_overhead: %s\n", pnn_last_error());
                kill(pid, SIGKILL);
                return 69;
            }
            f = &figs[nf++];
            snprintf(f->server, sizeof f->server, "python");
            snprintf(f->transport, sizeof f->transport, t ? "ipc" : "tcp");
            failed |= measure(rem, batches[b], requests / 2, f);
            pnn_device_close(rem);
            kill(pid, SIGTERM);
            waitpid(pid, NULL, 0);
        }
        pnn_device_close(local);
    }
    rmdir(dir);

    char cpu[256], commit[64], date[32], path[512];
    machine(cpu, sizeof cpu, commit, sizeof commit);
    time_t now = time(NULL);
    strftime(date, sizeof date, "%Y-%m-%d", gmtime(&now));
    if (!out) snprintf(path, sizeof path, "benchmarks/results/remote-overhead-%s.json", date);
    else snprintf(path, sizeof path, "%s", out);
    FILE *o = fopen(path, "w");
    if (!o) {
        perror(path);
        return 74;
    }
    fprintf(o, "{\n  \"benchmark\": \"remote_overhead\",\n  \"date\": \"%s\",\n  \"commit\": \"%s\",\n", date, commit);
    int zmaj, zmin, zpat;
    zmq_version(&zmaj, &zmin, &zpat);
    fprintf(o, "  \"machine\": {\"cpu\": \"%s\", \"cores\": %ld, \"zmq\": \"%d.%d.%d\"},\n", cpu,
            sysconf(_SC_NPROCESSORS_ONLN), zmaj, zmin, zpat);
    fprintf(o, "  \"config\": {\"device\": \"%s\", \"python_server\": \"%s --demo oscillator --n 16 --nt 1\",\n"
               "             \"x_dim\": 16, \"theta_dim\": 272, \"y_dim\": 16, \"c_server\": \"in a thread of the "
               "benchmark process\",\n             \"payload_bytes\": \"(batch * (x_dim + y_dim) + theta_dim) * 4\"},\n",
            DEVICE, PY_SCRIPT);
    fprintf(o, "  \"figures\": [\n");
    for (int i = 0; i < nf; i++) {
        figure *f = &figs[i];
        double base = 0;
        for (int j = 0; j < nf; j++)
            if (figs[j].batch == f->batch && !strcmp(figs[j].server, "in-process")) base = figs[j].median_us;
        fprintf(o,
                "    {\"server\": \"%s\", \"transport\": \"%s\", \"batch\": %lld, \"requests\": %d, \"median_us\": %.1f, "
                "\"p10_us\": %.1f, \"p90_us\": %.1f, \"overhead_median_us\": %.1f, \"req_per_s\": %.0f, \"mb_per_s\": %.2f}%s\n",
                f->server, f->transport, (long long)f->batch, f->requests, f->median_us, f->p10_us, f->p90_us,
                f->median_us - base, f->req_per_s, f->mb_per_s, i + 1 < nf ? "," : "");
        printf("%-10s %-4s batch %5lld: median %8.1f us (p10 %8.1f, p90 %8.1f), %7.0f req/s, %7.2f MB/s\n", f->server,
               f->transport, (long long)f->batch, f->median_us, f->p10_us, f->p90_us, f->req_per_s, f->mb_per_s);
    }
    fprintf(o, "  ]\n}\n");
    fclose(o);
    printf("wrote %s\n", path);
    return failed ? 70 : 0;
}
