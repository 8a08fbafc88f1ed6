/* `pnn bench --suite`: the standard throughput grid, one report (docs/architecture.md, "Performance").
 *
 * Sections: floor (the backend's GEMM rate and streaming bandwidth, measured in the same run),
 * twins (each system's twin at several sizes and batches: forward, VJP, PAT step; samples/s,
 * GFLOP/s by the nominal count of the algorithm run and the fraction of the GEMM floor; the
 * oscillator's scaling exponents), torch (PyTorch's implementation of each system at the same
 * points, benchmarks/reference/systems_torch.py, in rounds alternating with pnn's), bridge (duty cycle and step time against device latency, one
 * device and a chain of two), dp (steps/s against ranks under mpirun). Writes report.json,
 * report.md and, with matplotlib, PNGs (tools/plot_bench.py). */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "pnn/clock.h"
#include "pnn/fileio.h"
#include "pnn/floor.h"
#include "pnn/rng.h"

#include "pnn/system.h"

#include "cli.h"

static const char help[] =
    "usage: pnn bench --suite [--quick] [--sections LIST] [--sizes oscillator=N1,N2,...] [--batches B1,B2,...]\n"
    "                 [--rounds R] [--out DIR]\n"
    "\n"
    "Runs the standard throughput grid on this machine and writes one report: DIR/report.md,\n"
    "DIR/report.json and, where python3 has matplotlib, DIR/twins.png, DIR/systems.png and DIR/bridge.png\n"
    "(default DIR runs/bench-<date-time>). Sections (default all):\n"
    "  floor   the backend's GEMM rate (GFLOP/s) and streaming bandwidth (GB/s), the floor\n"
    "  twins   every system's twin at several sizes (oscillator N = 100, 400, 1610, 4096, 8192) and\n"
    "          batches (1, 32, 256): forward, VJP and a PAT step (device forward, twin forward and\n"
    "          backward, Adam), median ms over rounds with min and max, samples/s, GFLOP/s and the\n"
    "          fraction of the GEMM floor; the oscillator's scaling exponents\n"
    "  torch   PyTorch's implementation of each system at the same points, rounds alternating\n"
    "          with pnn's (benchmarks/reference/systems_torch.py)\n"
    "          (where python3 has torch; otherwise a note)\n"
    "  bridge  a training step's duty cycle against device latency, one device and a chain of two\n"
    "  dp      training steps/s against ranks under mpirun (where mpirun is on PATH)\n"
    "  remote  what a remote device costs per request, C and Python servers, TCP and ipc\n"
    "          (build/remote_overhead, beside this pnn)\n"
    "  reference  the reference experiment's PAT step against the PyTorch reference, alternating\n"
    "          rounds, with the fraction of the floor (benchmarks/pat_step.py; needs PyTorch and\n"
    "          Fashion-MNIST in /usr/share/datasets/fashion-mnist)\n"
    "Points that would not fit in memory or would take too long are skipped with the reason.\n"
    "--quick is the small grid (N = 100, 400; batches 1, 32; 2 rounds) in about 2 minutes;\n"
    "--sizes and --batches replace the grid's (a size beyond this machine's memory is refused).\n";

#define MAX_POINTS 128
#define MAX_ROUNDS 9
#define N_PASSES 3
static const char *const pass_names[N_PASSES] = {"forward", "vjp", "pat"};
static const char *const section_names[] = {"floor", "twins", "torch", "bridge", "dp", "remote", "reference", NULL};
#define N_SECTIONS 7

typedef struct {
    char system[16];
    char uri[256];
    int64_t size, batch;        /* size: N (oscillator), segments, modes or k */
    double flops[N_PASSES];     /* 0 when unknown */
    double ms[N_PASSES][MAX_ROUNDS], torch_ms[N_PASSES][MAX_ROUNDS];
    int rounds, torch_rounds;
    char skipped[256];          /* why, or "" */
} point;

typedef struct {
    int quick, rounds, sections[N_SECTIONS];
    int64_t osc_sizes[16], batches[8];
    int n_osc, n_batches, sizes_given;
    char out[PNN_PATH_MAX + 1], source[PNN_PATH_MAX + 1];
    double min_s, budget_s;
    double gemm_gflops, stream_gbs;
    point pts[MAX_POINTS];
    int n_pts;
    char torch_note[256], dp_note[256], bridge_note[256], remote_note[320], reference_note[320];
    char build[PNN_PATH_MAX + 1];   /* the directory of this pnn (remote_overhead, bench_floor live there) */
    json_t *bridge, *dp, *remote, *reference;
} suite;

/* ---- the machine ---- */

/* Bytes the kernel says could be allocated without swapping (MemAvailable), or 0. */
static double mem_available(void) {
    FILE *f = fopen("/proc/meminfo", "r");
    char line[256];
    double kb = 0;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "MemAvailable: %lf kB", &kb) == 1) break;
    if (f) fclose(f);
    return kb * 1024.0;
}

static void run_text(const char *cmd, char *buf, size_t cap) {
    buf[0] = 0;
    FILE *p = popen(cmd, "r");
    if (!p) return;
    if (!fgets(buf, (int)cap, p)) buf[0] = 0;
    buf[strcspn(buf, "\n")] = 0;
    pclose(p);
}

static json_t *machine(const suite *s) {
    char cpu[256], commit[128], cmd[PNN_PATH_MAX + 64];
    pnn_floor_cpu_model(cpu, sizeof cpu);
    snprintf(cmd, sizeof cmd, "git -C '%s' describe --always --dirty 2>/dev/null", s->source);
    run_text(cmd, commit, sizeof commit);
    const char *(*blas_config)(void) = (const char *(*)(void))dlsym(RTLD_DEFAULT, "openblas_get_config");
    int (*blas_threads)(void) = (int (*)(void))dlsym(RTLD_DEFAULT, "openblas_get_num_threads");
    const pnn_backend *cuda = NULL;
    int has_gpu = pnn_backend_get("cuda", &cuda) == PNN_OK;
    pnn_error_clear();
    return json_pack("{s:s, s:i, s:s, s:i, s:s, s:f, s:s}", "cpu", cpu, "cores", (int)sysconf(_SC_NPROCESSORS_ONLN),
                     "blas", blas_config ? blas_config() : "unknown", "blas_threads", blas_threads ? blas_threads() : 0,
                     "gpu", has_gpu ? "cuda backend available" : "none", "mem_available_gib",
                     mem_available() / (1 << 30), "commit", commit[0] ? commit : "unknown");
}

/* ---- twins ---- */

static int64_t uri_int(const char *uri, const char *key, int64_t fallback) {
    char k[32];
    snprintf(k, sizeof k, "%s=", key);
    const char *p = strstr(uri, k);
    return p && (p[-1] == '?' || p[-1] == '&') ? strtoll(p + strlen(k), NULL, 10) : fallback;
}

/* Bytes a point needs, roughly: the oscillator's N x N coupling is held by the twin, the device,
 * the gradient and Adam's two moments (and built as Q by each); its tape is 4 nt stages of B x N. */
static double point_bytes(const point *p) {
    if (strcmp(p->system, "oscillator")) return 64.0 * (1 << 20);
    double n = (double)p->size, b = (double)p->batch, st = 4.0 * (double)uri_int(p->uri, "nt", 5);
    return 4.0 * (10.0 * n * n + 8.0 * b * n * (st + 4.0));
}

/* The nominal FLOPs of the three passes (forward; taped forward + VJP; PAT step = device forward
 * + the VJP pass) from the system's own count (pnn_system.flops: the form its kernels pick for
 * this batch); 0 where the system counts none or its reader refuses the URI (the twins section
 * then reports the error). */
static void point_flops(point *p) {
    pnn_uri u;
    const pnn_system *sys = pnn_system_find(p->system);
    double c[3];
    if (!sys || !sys->flops || pnn_uri_parse(p->uri, &u) != PNN_OK || sys->flops(&u, p->batch, c) != PNN_OK) return;
    p->flops[0] = c[0], p->flops[1] = c[0] + c[1], p->flops[2] = c[2] + c[0] + c[1];
}

static void add_point(suite *s, const char *system, int64_t size, int64_t batch, const char *fmt) {
    if (s->n_pts == MAX_POINTS) return;
    point *p = &s->pts[s->n_pts++];
    memset(p, 0, sizeof *p);
    snprintf(p->system, sizeof p->system, "%s", system);
    snprintf(p->uri, sizeof p->uri, fmt, (long long)size);
    p->size = size, p->batch = batch;
    point_flops(p);
}

static void build_grid(suite *s) {
    for (int i = 0; i < s->n_osc; i++)
        for (int j = 0; j < s->n_batches; j++)
            add_point(s, "oscillator", s->osc_sizes[i], s->batches[j], "sim:oscillator?n=%lld&nt=5&seed=1");
    if (s->sizes_given) return;
    static const int64_t circ[] = {16, 64}, scat[] = {256, 1024}, shg[] = {64, 256};
    int k = s->quick ? 1 : 2;
    for (int j = 0; j < s->n_batches; j++)
        for (int i = 0; i < k; i++) {
            add_point(s, "circuit", circ[i], s->batches[j], "sim:circuit?segments=%lld&seed=1");
            add_point(s, "scatter", scat[i], s->batches[j], "sim:scatter?x_dim=64&modes=%lld&seed=1");
            add_point(s, "shg", shg[i], s->batches[j], "sim:shg?k=%lld&seed=1");
        }
}

/* Median ms of fn over repetitions lasting min_s (at least 3, after one untimed). */
typedef pnn_status (*pass_fn)(void *ctx);
static pnn_status timed(pass_fn fn, void *ctx, double min_s, double *ms) {
    double v[4096];
    int n = 0;
    PNN_TRY(fn(ctx));
    double end = pnn_now_s() + min_s;
    while (n < 3 || (pnn_now_s() < end && n < 4096)) {
        double t0 = pnn_now_s();
        PNN_TRY(fn(ctx));
        v[n++] = 1e3 * (pnn_now_s() - t0);
    }
    qsort(v, (size_t)n, sizeof *v, pnn_cmp_double);
    *ms = n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
    return PNN_OK;
}

typedef struct {
    pnn_layer *l;
    pnn_tensor x, y, dy, dx;
    pnn_optimizer *opt;
} layer_run;

static void changed(layer_run *r) {
    if (r->l->iface->params_changed) r->l->iface->params_changed(r->l);
}

static pnn_status pass_forward(void *ctx) {
    layer_run *r = ctx;
    changed(r);
    return r->l->iface->forward(r->l, &r->x, &r->y, PNN_PASS_EVAL_TWIN, 0);
}

static pnn_status pass_vjp(void *ctx) {
    layer_run *r = ctx;
    changed(r);
    PNN_TRY(r->l->iface->forward(r->l, &r->x, &r->y, PNN_PASS_TRAIN_TWIN, 0));
    return r->l->iface->backward(r->l, &r->x, &r->y, &r->dy, &r->dx, 0);
}

static pnn_status pass_pat(void *ctx) {
    layer_run *r = ctx;
    changed(r);
    for (int i = 0; i < r->l->n_params; i++) PNN_TRY(pnn_tensor_zero(&r->l->params[i].grad));
    PNN_TRY(r->l->iface->forward(r->l, &r->x, &r->y, PNN_PASS_TRAIN_PAT, 0));
    PNN_TRY(r->l->iface->backward(r->l, &r->x, &r->y, &r->dy, &r->dx, 0));
    PNN_TRY(pnn_optimizer_step(r->opt));
    return pnn_backend_status(r->l->be);
}

static pnn_status time_point(const suite *s, point *p, int round) {
    const pnn_backend *be = pnn_backend_cpu();
    layer_run r = {0};
    pnn_status st = pnn_layer_physical(&r.l, be, "bench", p->uri, "analytic", -1.0, "all", 1);
    if (st != PNN_OK) return pnn_error_prefix(st, "twins, %s: ", p->uri);
    int64_t rows, xd = pnn_layer_physical_device(r.l)->info.x_dim, yd;
    st = r.l->iface->out_shape(r.l, p->batch, xd, &rows, &yd);
    float *h = malloc((size_t)(p->batch * (xd > yd ? xd : yd)) * sizeof(float));
    pnn_optim_config oc;
    if (st == PNN_OK) st = h ? pnn_optim_defaults("adam", &oc) : PNN_ERROR(PNN_ERR_NOMEM, "out of memory");
    if (st == PNN_OK) st = pnn_tensor_init2(&r.x, be, p->batch, xd);
    if (st == PNN_OK) st = pnn_tensor_init2(&r.dx, be, p->batch, xd);
    if (st == PNN_OK) st = pnn_tensor_init2(&r.y, be, rows, yd);
    if (st == PNN_OK) st = pnn_tensor_init2(&r.dy, be, rows, yd);
    if (st == PNN_OK) {
        pnn_rng_uniform(1, pnn_rng_stream("bench.x", 0), 0, p->batch * xd, h);
        st = pnn_tensor_from_host(&r.x, h, p->batch * xd);
    }
    if (st == PNN_OK) {
        pnn_rng_uniform(1, pnn_rng_stream("bench.dy", 0), 0, rows * yd, h);
        st = pnn_tensor_from_host(&r.dy, h, rows * yd);
    }
    pnn_param *prm[8];
    for (int i = 0; i < r.l->n_params && i < 8; i++) prm[i] = &r.l->params[i];
    if (st == PNN_OK) st = pnn_optimizer_create(&oc, prm, r.l->n_params < 8 ? r.l->n_params : 8, &r.opt);
    pass_fn fns[N_PASSES] = {pass_forward, pass_vjp, pass_pat};
    for (int k = 0; st == PNN_OK && k < N_PASSES; k++) st = timed(fns[k], &r, s->min_s, &p->ms[k][round]);
    if (st != PNN_OK) pnn_error_prefix(st, "twins, %s batch %lld: ", p->uri, (long long)p->batch);
    free(h);
    pnn_optimizer_free(r.opt);
    pnn_tensor_free(&r.x), pnn_tensor_free(&r.y), pnn_tensor_free(&r.dy), pnn_tensor_free(&r.dx);
    pnn_layer_free(r.l);
    return st;
}

/* Marks the points that would not fit or would take too long (the grid's; --sizes beyond memory
 * were refused before). */
static void plan_points(suite *s) {
    double avail = mem_available();
    for (int i = 0; i < s->n_pts; i++) {
        point *p = &s->pts[i];
        double bytes = point_bytes(p);
        if (avail > 0 && bytes > 0.6 * avail) {
            snprintf(p->skipped, sizeof p->skipped, "needs about %.1f GiB, %.1f GiB available", bytes / (1 << 30),
                     avail / (1 << 30));
            continue;
        }
        /* each pass repeats at least 4 times; the PAT step at half the GEMM floor */
        double est = p->flops[2] > 0 && s->gemm_gflops > 0 ? p->flops[2] / (0.5 * s->gemm_gflops * 1e9) : 0;
        if (est * 4 * 2.0 * s->rounds > s->budget_s)
            snprintf(p->skipped, sizeof p->skipped,
                     "about %.1f s per PAT step at half this machine's GEMM rate: beyond the suite's budget", est);
    }
}

/* ---- torch ---- */

static int python_has(const char *module) {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "python3 -c 'import %s' > /dev/null 2>&1", module);
    return system(cmd) == 0;
}

static pnn_status torch_round(suite *s, int round) {
    char points[8192] = "", script[PNN_PATH_MAX + 1], json_path[PNN_PATH_MAX + 1], cmd[3 * PNN_PATH_MAX + 8192 + 128];
    int any = 0;
    for (int i = 0; i < s->n_pts; i++) {
        const point *p = &s->pts[i];
        if (p->skipped[0]) continue;
        size_t len = strlen(points);
        snprintf(points + len, sizeof points - len, "%s%s:%lld:%lld", any ? "," : "", p->system, (long long)p->size,
                 (long long)p->batch);
        any = 1;
    }
    if (!any) return PNN_OK;
    PNN_TRY(pnn_path_format(script, sizeof script, "%s/benchmarks/reference/systems_torch.py", s->source));
    PNN_TRY(pnn_path_format(json_path, sizeof json_path, "%s/.torch-round.json", s->out));
    snprintf(cmd, sizeof cmd, "python3 '%s' --points %s --min-s %g --json '%s' > /dev/null", script, points, s->min_s,
             json_path);
    if (system(cmd) != 0) return PNN_ERROR(PNN_ERR_IO, "torch: %s failed", script);
    json_error_t err;
    json_t *j = json_load_file(json_path, 0, &err), *arr = j ? json_object_get(j, "points") : NULL;
    remove(json_path);
    if (!json_is_array(arr)) {
        json_decref(j);
        return PNN_ERROR(PNN_ERR_FORMAT, "torch: %s wrote no points", script);
    }
    size_t k;
    json_t *e;
    json_array_foreach(arr, k, e) {
        const char *sys = json_string_value(json_object_get(e, "system"));
        int64_t n = json_integer_value(json_object_get(e, "size")), b = json_integer_value(json_object_get(e, "batch"));
        for (int i = 0; sys && i < s->n_pts; i++) {
            point *p = &s->pts[i];
            if (strcmp(p->system, sys) || p->size != n || p->batch != b || p->skipped[0]) continue;
            for (int q = 0; q < N_PASSES; q++) {
                char key[32];
                snprintf(key, sizeof key, "%s_ms", pass_names[q]);
                p->torch_ms[q][round] = json_real_value(json_object_get(e, key));
            }
            p->torch_rounds = round + 1;
        }
    }
    json_decref(j);
    return PNN_OK;
}

/* ---- bridge ---- */

static pnn_status bridge_section(suite *s) {
    static const double lat_full[] = {1, 5, 20, 60}, lat_quick[] = {1, 10};
    const double *lat = s->quick ? lat_quick : lat_full;
    int n_lat = s->quick ? 2 : 4, steps = s->quick ? 3 : 6;
    const char *vowels = pnn_train_data_default_path("vowels");
    s->bridge = json_array();
    for (int chain = 1; chain <= 2; chain++)
        for (int i = 0; i < n_lat; i++) {
            char yaml[2048], second[256] = "";
            if (chain == 2)
                snprintf(second, sizeof second,
                         "  - {kind: physical, name: osc2, device: 'sim:oscillator?n=40&nt=10&seed=2&latency_ms=%g', "
                         "outputs: 'last:7'}\n", lat[i]);
            snprintf(yaml, sizeof yaml,
                     "data: {set: vowels, path: '%s'}\nnetwork:\n  - {kind: linear, name: enc, out: 40}\n"
                     "  - {kind: physical, name: osc1, device: 'sim:oscillator?n=40&nt=10&seed=1&latency_ms=%g', "
                     "outputs: %s}\n%s  - {kind: scale, name: out, init: 5.0}\n"
                     "batch: 16\nbridge: {micro_batch: 4, schedule: pipelined}\nseed: 1\n",
                     vowels, lat[i], chain == 1 ? "'last:7'" : "all", second);
            pnn_cfg *cfg;
            PNN_TRY(pnn_cfg_parse(yaml, strlen(yaml), "bench-suite bridge", &cfg));
            pnn_trainer *tr;
            PNN_TRY(pnn_trainer_create(cfg, ".", &tr));
            int64_t idx[16];
            pnn_status st = PNN_OK;
            pnn_bridge_stats at = tr->bridge_run;
            double t_start = 0;
            for (int k = 0; st == PNN_OK && k < steps + 1; k++) {
                if (k == 1) at = tr->bridge_run, t_start = pnn_now_s();
                for (int r = 0; r < 16; r++) idx[r] = (k * 16 + r) % tr->train.n;
                st = pnn_trainer_step(tr, idx, 16, NULL, NULL);
            }
            double wall = pnn_now_s() - t_start, busiest = 0;
            for (int d = 0; st == PNN_OK && d < tr->bridge_run.n_devices; d++) {
                double b = tr->bridge_run.device_busy_s[d] - at.device_busy_s[d];
                if (b > busiest) busiest = b;
            }
            pnn_trainer_free(tr);
            PNN_TRY(st);
            json_array_append_new(s->bridge, json_pack("{s:i, s:f, s:f, s:f, s:f}", "devices", chain, "latency_ms",
                                                       lat[i], "step_ms", 1e3 * wall / steps, "duty",
                                                       wall > 0 ? busiest / wall : 0, "bound",
                                                       chain == 1 ? 1.0 : 4.0 / 5.0));
            fprintf(stderr, "bench suite: bridge, %d device(s), latency %g ms: %.1f ms per step, duty %.2f\n", chain,
                    lat[i], 1e3 * wall / steps, wall > 0 ? busiest / wall : 0);
        }
    return PNN_OK;
}

/* ---- dp ---- */

static pnn_status dp_section(suite *s, const char *self) {
    if (system("command -v mpirun > /dev/null 2>&1") != 0) {
        snprintf(s->dp_note, sizeof s->dp_note, "skipped: no mpirun on PATH");
        return PNN_OK;
    }
    char cfg[PNN_PATH_MAX + 1], cmd[4 * PNN_PATH_MAX], json_path[PNN_PATH_MAX + 1], flags[256] = "";
    PNN_TRY(pnn_path_format(cfg, sizeof cfg, "%s/examples/vowels-oscillator.yaml", s->source));
    if (access(cfg, R_OK) != 0) {
        snprintf(s->dp_note, sizeof s->dp_note, "skipped: examples/vowels-oscillator.yaml not found under --source");
        return PNN_OK;
    }
    char version[256];
    run_text("mpirun --version 2>&1", version, sizeof version);
    if (strstr(version, "Open MPI"))
        snprintf(flags, sizeof flags, "--allow-run-as-root --oversubscribe --mca btl self,vader");
    s->dp = json_array();
    for (int np = 1; np <= 2; np++) {
        PNN_TRY(pnn_path_format(json_path, sizeof json_path, "%s/.dp-%d.json", s->out, np));
        snprintf(cmd, sizeof cmd,
                 "OMP_NUM_THREADS=1 OMPI_MCA_btl_vader_single_copy_mechanism=none timeout 300 mpirun %s -np %d '%s' "
                 "bench '%s' --steps %d --json '%s' > /dev/null 2>&1",
                 flags, np, self, cfg, s->quick ? 10 : 40, json_path);
        if (system(cmd) != 0) {
            snprintf(s->dp_note, sizeof s->dp_note, "mpirun -np %d failed (see pnn bench under mpirun)", np);
            remove(json_path);
            return PNN_OK;
        }
        json_error_t err;
        json_t *j = json_load_file(json_path, 0, &err);
        remove(json_path);
        if (!j) return PNN_ERROR(PNN_ERR_FORMAT, "dp: pnn bench wrote no JSON under mpirun -np %d", np);
        json_array_append_new(s->dp, json_pack("{s:i, s:f, s:f}", "ranks", np, "steps_per_s",
                                               json_real_value(json_object_get(j, "steps_per_s_mean")), "ms_step",
                                               json_real_value(json_object_get(j, "ms_step_mean"))));
        json_decref(j);
    }
    return PNN_OK;
}

/* ---- remote and reference: the project's own benchmarks, run and read back ---- */

/* Runs cmd (in the source tree); its JSON output file `file` is read into *out. note gets why not. */
static void run_json(const suite *s, const char *cmd, const char *file, json_t **out, char *note, size_t cap) {
    char full[4 * PNN_PATH_MAX];
    snprintf(full, sizeof full, "cd '%s' && %s > '%s/.section.log' 2>&1", s->source, cmd, s->out);
    if (system(full) != 0) {
        snprintf(note, cap, "failed: %.120s (its output is in .section.log in the report's directory)", cmd);
        return;
    }
    json_error_t err;
    *out = json_load_file(file, 0, &err);
    if (!*out) snprintf(note, cap, "%s wrote no JSON", cmd);
    else {
        char log[PNN_PATH_MAX + 32];
        snprintf(log, sizeof log, "%s/.section.log", s->out);
        remove(log);
    }
}

static void remote_section(suite *s) {
    char cmd[3 * PNN_PATH_MAX], file[PNN_PATH_MAX + 32];
    snprintf(file, sizeof file, "%s/remote_overhead.json", s->out);
    snprintf(cmd, sizeof cmd, "'%s/remote_overhead' %s --out '%s'", s->build, s->quick ? "--quick" : "", file);
    char exe[PNN_PATH_MAX + 32];
    snprintf(exe, sizeof exe, "%s/remote_overhead", s->build);
    if (access(exe, X_OK) != 0) {
        snprintf(s->remote_note, sizeof s->remote_note, "skipped: no remote_overhead beside this pnn (build it: "
                 "cmake --build, the benchmarks are targets)");
        return;
    }
    run_json(s, cmd, file, &s->remote, s->remote_note, sizeof s->remote_note);
}

static void reference_section(suite *s) {
    char cmd[3 * PNN_PATH_MAX], file[PNN_PATH_MAX + 32];
    if (access("/usr/share/datasets/fashion-mnist", R_OK) != 0) {
        snprintf(s->reference_note, sizeof s->reference_note,
                 "skipped: no Fashion-MNIST in /usr/share/datasets/fashion-mnist (tools/setup.sh fetches it)");
        return;
    }
    if (!python_has("torch")) {
        snprintf(s->reference_note, sizeof s->reference_note, "skipped: PyTorch not installed (pip install torch)");
        return;
    }
    snprintf(file, sizeof file, "%s/pat_step.json", s->out);
    snprintf(cmd, sizeof cmd, "python3 benchmarks/pat_step.py --build '%s' --rounds %d --steps %d --out '%s'", s->build,
             s->quick ? 1 : s->rounds, s->quick ? 3 : 10, file);
    run_json(s, cmd, file, &s->reference, s->reference_note, sizeof s->reference_note);
}

/* ---- the report ---- */

static double median_of(const double *v, int n) {
    double t[MAX_ROUNDS];
    memcpy(t, v, (size_t)n * sizeof *t);
    qsort(t, (size_t)n, sizeof *t, pnn_cmp_double);
    return n % 2 ? t[n / 2] : 0.5 * (t[n / 2 - 1] + t[n / 2]);
}

static double min_of(const double *v, int n) {
    double m = v[0];
    for (int i = 1; i < n; i++) m = v[i] < m ? v[i] : m;
    return m;
}

static double max_of(const double *v, int n) {
    double m = v[0];
    for (int i = 1; i < n; i++) m = v[i] > m ? v[i] : m;
    return m;
}

/* Least-squares slope of log(ms) against log(x) over the oscillator's measured points of the
 * pass, at batch b (by N, sizes >= from) or at size n (by batch); 0 with fewer than 2 points. */
static double exponent(const suite *s, int pass, int64_t b, int64_t n, int64_t from) {
    double sx = 0, sy = 0, sxx = 0, sxy = 0;
    int k = 0;
    for (int i = 0; i < s->n_pts; i++) {
        const point *p = &s->pts[i];
        if (strcmp(p->system, "oscillator") || p->skipped[0] || !p->rounds) continue;
        if (b && (p->batch != b || p->size < from)) continue;
        if (n && p->size != n) continue;
        double x = log((double)(b ? p->size : p->batch)), y = log(median_of(p->ms[pass], p->rounds));
        sx += x, sy += y, sxx += x * x, sxy += x * y, k++;
    }
    double den = k * sxx - sx * sx;
    return k >= 2 && den > 0 ? (k * sxy - sx * sy) / den : 0;
}

static pnn_status write_report(suite *s, json_t *mach, double wall_s) {
    json_t *pts = json_array(), *skipped = json_array();
    for (int i = 0; i < s->n_pts; i++) {
        const point *p = &s->pts[i];
        if (p->skipped[0]) {
            json_array_append_new(skipped, json_pack("{s:s, s:I, s:I, s:s}", "system", p->system, "size",
                                                     (json_int_t)p->size, "batch", (json_int_t)p->batch, "why",
                                                     p->skipped));
            continue;
        }
        if (!p->rounds) continue;
        for (int q = 0; q < N_PASSES; q++) {
            double med = median_of(p->ms[q], p->rounds);
            json_t *o = json_pack("{s:s, s:s, s:I, s:I, s:s, s:f, s:f, s:f, s:i, s:f}", "system", p->system, "uri",
                                  p->uri, "size", (json_int_t)p->size, "batch", (json_int_t)p->batch, "pass",
                                  pass_names[q], "ms_median", med, "ms_min", min_of(p->ms[q], p->rounds), "ms_max",
                                  max_of(p->ms[q], p->rounds), "rounds", p->rounds, "samples_per_s",
                                  1e3 * (double)p->batch / med);
            if (p->flops[q] > 0) {
                double gf = p->flops[q] / med / 1e6;
                json_object_set_new(o, "gflops", json_real(gf));
                if (s->gemm_gflops > 0) json_object_set_new(o, "floor_fraction", json_real(gf / s->gemm_gflops));
            }
            if (p->torch_rounds) {
                double tm = median_of(p->torch_ms[q], p->torch_rounds);
                json_object_set_new(o, "torch_ms_median", json_real(tm));
                json_object_set_new(o, "speedup_vs_torch", json_real(tm / med));
            }
            json_array_append_new(pts, o);
        }
    }
    json_t *scaling = json_array();
    for (int j = 0; j < s->n_batches; j++)
        for (int q = 0; q < N_PASSES; q++) {
            double e = exponent(s, q, s->batches[j], 0, 400);
            if (e != 0)
                json_array_append_new(scaling, json_pack("{s:s, s:s, s:I, s:f}", "pass", pass_names[q], "against",
                                                         "N (N >= 400)", "batch", (json_int_t)s->batches[j],
                                                         "exponent", e));
        }
    for (int i = 0; i < s->n_osc; i++) {
        double e = exponent(s, 0, 0, s->osc_sizes[i], 0);
        if (e != 0)
            json_array_append_new(scaling, json_pack("{s:s, s:s, s:I, s:f}", "pass", "forward", "against", "batch",
                                                     "n", (json_int_t)s->osc_sizes[i], "exponent", e));
    }
    json_t *root = json_pack("{s:s, s:o, s:f, s:i, s:i, s:{s:f, s:f}, s:o, s:o, s:o, s:s, s:o, s:s, s:o, s:s}",
                             "benchmark", "pnn bench --suite", "machine", mach, "wall_s", wall_s, "quick", s->quick,
                             "rounds", s->rounds, "floor", "gemm_gflops", s->gemm_gflops, "stream_gbs",
                             s->stream_gbs, "twins", pts, "skipped", skipped, "scaling", scaling, "torch_note",
                             s->torch_note, "bridge", s->bridge ? json_incref(s->bridge) : json_array(),
                             "bridge_note", s->bridge_note, "dp", s->dp ? json_incref(s->dp) : json_array(),
                             "dp_note", s->dp_note);
    if (root) {
        json_object_set_new(root, "remote", s->remote ? json_incref(s->remote) : json_null());
        json_object_set_new(root, "remote_note", json_string(s->remote_note));
        json_object_set_new(root, "reference", s->reference ? json_incref(s->reference) : json_null());
        json_object_set_new(root, "reference_note", json_string(s->reference_note));
    }
    if (!root) return PNN_ERROR(PNN_ERR_NOMEM, "out of memory for the report");
    char path[PNN_PATH_MAX + 1], tmp[PNN_PATH_MAX + 8];
    PNN_TRY(pnn_path_format(path, sizeof path, "%s/report.json", s->out));
    PNN_TRY(pnn_path_format(tmp, sizeof tmp, "%s.tmp", path));
    if (json_dump_file(root, tmp, JSON_INDENT(1) | JSON_REAL_PRECISION(6)) != 0 || rename(tmp, path) != 0) {
        json_decref(root);
        return PNN_ERROR(PNN_ERR_IO, "cannot write %s: %s", path, strerror(errno));
    }

    PNN_TRY(pnn_path_format(path, sizeof path, "%s/report.md", s->out));
    PNN_TRY(pnn_path_format(tmp, sizeof tmp, "%s.tmp", path));
    FILE *f = fopen(tmp, "w");
    if (!f) {
        json_decref(root);
        return PNN_ERROR(PNN_ERR_IO, "cannot write %s: %s", tmp, strerror(errno));
    }
    json_t *m = json_object_get(root, "machine");
    fprintf(f, "# pnn bench --suite%s\n\n", s->quick ? " --quick" : "");
    fprintf(f, "Machine: %s, %lld cores, %.1f GiB available; BLAS %s (%lld threads); GPU: %s; commit %s. "
               "%d rounds, %.0f s in all.\n\n",
            json_string_value(json_object_get(m, "cpu")), (long long)json_integer_value(json_object_get(m, "cores")),
            json_real_value(json_object_get(m, "mem_available_gib")), json_string_value(json_object_get(m, "blas")),
            (long long)json_integer_value(json_object_get(m, "blas_threads")),
            json_string_value(json_object_get(m, "gpu")), json_string_value(json_object_get(m, "commit")), s->rounds,
            wall_s);
    if (s->gemm_gflops > 0)
        fprintf(f, "Floor: the backend's sgemm at %.1f GFLOP/s (square, measured in this run), streaming at %.1f GB/s.\n\n",
                s->gemm_gflops, s->stream_gbs);
    if (s->sections[1]) {
        fprintf(f, "## Twins\n\nMedian ms over rounds (min–max); samples/s; GFLOP/s and the "
                   "fraction of the sgemm floor by the nominal FLOPs of the algorithm pnn runs there (circuit: elementwise "
                   "RK4, no GEMM; scatter: the fields or the transfer-matrix form, by batch; shg: direct or FFT), "
                   "and PyTorch's median ms at the same point (%s; benchmarks/reference/systems_torch.py).\n\n",
                s->torch_note[0] ? s->torch_note : "rounds alternating with pnn's");
        fprintf(f, "| system | size | batch | pass | ms | samples/s | GFLOP/s | of floor | PyTorch ms | pnn speed-up |\n"
                   "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n");
        size_t k;
        json_t *e;
        json_array_foreach(pts, k, e) {
            json_t *g = json_object_get(e, "gflops"), *fr = json_object_get(e, "floor_fraction"),
                   *tm = json_object_get(e, "torch_ms_median"), *sp = json_object_get(e, "speedup_vs_torch");
            char gs[32] = "–", frs[32] = "–", tms[32] = "–", sps[32] = "–";
            if (g) snprintf(gs, sizeof gs, "%.1f", json_real_value(g));
            if (fr) snprintf(frs, sizeof frs, "%.0f %%", 100 * json_real_value(fr));
            if (tm) snprintf(tms, sizeof tms, "%.3f", json_real_value(tm));
            if (sp) snprintf(sps, sizeof sps, "%.2fx", json_real_value(sp));
            fprintf(f, "| %s | %lld | %lld | %s | %.3f (%.3f–%.3f) | %.0f | %s | %s | %s | %s |\n",
                    json_string_value(json_object_get(e, "system")),
                    (long long)json_integer_value(json_object_get(e, "size")),
                    (long long)json_integer_value(json_object_get(e, "batch")),
                    json_string_value(json_object_get(e, "pass")), json_real_value(json_object_get(e, "ms_median")),
                    json_real_value(json_object_get(e, "ms_min")), json_real_value(json_object_get(e, "ms_max")),
                    json_real_value(json_object_get(e, "samples_per_s")), gs, frs, tms, sps);
        }
        if (json_array_size(skipped)) {
            fprintf(f, "\nSkipped:\n\n");
            json_array_foreach(skipped, k, e)
                fprintf(f, "- %s size %lld batch %lld: %s\n", json_string_value(json_object_get(e, "system")),
                        (long long)json_integer_value(json_object_get(e, "size")),
                        (long long)json_integer_value(json_object_get(e, "batch")),
                        json_string_value(json_object_get(e, "why")));
        }
        if (json_array_size(scaling)) {
            fprintf(f, "\nScaling of the oscillator (fitted exponent of ms; B N^2 per stage predicts 2 in N and 1 in "
                       "the batch once the products dominate):\n\n| pass | against | at | exponent |\n"
                       "| --- | --- | --- | --- |\n");
            json_array_foreach(scaling, k, e) {
                json_t *bt = json_object_get(e, "batch"), *nn = json_object_get(e, "n");
                fprintf(f, "| %s | %s | %s %lld | %.2f |\n", json_string_value(json_object_get(e, "pass")),
                        json_string_value(json_object_get(e, "against")), bt ? "batch" : "N",
                        (long long)json_integer_value(bt ? bt : nn), json_real_value(json_object_get(e, "exponent")));
            }
        }
    }
    if (s->bridge && json_array_size(s->bridge)) {
        fprintf(f, "\n## Host bridge\n\nA vowels training step (batch 16, micro-batches of 4, pipelined) against "
                   "the devices' latency per call; the duty cycle is the busiest device's busy time over the step's "
                   "(a chain of M devices is bound by M/(M+1)).\n\n| devices | latency ms | ms per step | duty | "
                   "bound |\n| --- | --- | --- | --- | --- |\n");
        size_t k;
        json_t *e;
        json_array_foreach(s->bridge, k, e)
            fprintf(f, "| %lld | %g | %.1f | %.2f | %.2f |\n", (long long)json_integer_value(json_object_get(e, "devices")),
                    json_real_value(json_object_get(e, "latency_ms")), json_real_value(json_object_get(e, "step_ms")),
                    json_real_value(json_object_get(e, "duty")), json_real_value(json_object_get(e, "bound")));
    } else if (s->bridge_note[0]) {
        fprintf(f, "\n## Host bridge\n\n%s\n", s->bridge_note);
    }
    if (s->sections[4]) {
        fprintf(f, "\n## Data parallel\n\n");
        if (s->dp && json_array_size(s->dp)) {
            fprintf(f, "pnn bench examples/vowels-oscillator.yaml under mpirun (OMP_NUM_THREADS=1):\n\n| ranks | "
                       "steps/s | ms per step |\n| --- | --- | --- |\n");
            size_t k;
            json_t *e;
            json_array_foreach(s->dp, k, e)
                fprintf(f, "| %lld | %.1f | %.2f |\n", (long long)json_integer_value(json_object_get(e, "ranks")),
                        json_real_value(json_object_get(e, "steps_per_s")), json_real_value(json_object_get(e, "ms_step")));
        }
        if (s->dp_note[0]) fprintf(f, "%s\n", s->dp_note);
    }
    if (s->sections[5]) {
        fprintf(f, "\n## Remote devices\n\n");
        json_t *figs = s->remote ? json_object_get(s->remote, "figures") : NULL;
        if (json_is_array(figs)) {
            fprintf(f, "Per request, the same small oscillator (benchmarks/remote_overhead.c): median µs, the overhead "
                       "over the in-process call, requests/s.\n\n| server | transport | batch | median µs | overhead µs "
                       "| req/s |\n| --- | --- | --- | --- | --- | --- |\n");
            size_t k;
            json_t *e;
            json_array_foreach(figs, k, e)
                fprintf(f, "| %s | %s | %lld | %.1f | %.1f | %.0f |\n", json_string_value(json_object_get(e, "server")),
                        json_string_value(json_object_get(e, "transport")),
                        (long long)json_integer_value(json_object_get(e, "batch")),
                        json_number_value(json_object_get(e, "median_us")),
                        json_number_value(json_object_get(e, "overhead_median_us")),
                        json_number_value(json_object_get(e, "req_per_s")));
        }
        if (s->remote_note[0]) fprintf(f, "%s\n", s->remote_note);
    }
    if (s->sections[6]) {
        fprintf(f, "\n## The reference PAT step\n\n");
        json_t *r = s->reference;
        if (r) {
            json_t *med = json_object_get(r, "ms_per_step_median"), *ratio = json_object_get(r, "ratio_torch_over_pnn");
            fprintf(f, "examples/fmnist-oscillator.yaml, batch 32, plain PAT (benchmarks/pat_step.py, %lld rounds "
                       "alternating with the PyTorch reference): pnn %.1f ms per step, PyTorch %.1f ms, **%.2fx**; "
                       "in silico %.1f vs %.1f ms (%.2fx). %.1f GFLOP of GEMM per step: the floor is %.1f ms at this "
                       "machine's peak sgemm rate (pnn at **%.0f %%** of it) and %.1f ms at the rate of the step's own "
                       "shapes (%.0f %%).\n",
                    (long long)json_array_size(json_object_get(json_object_get(r, "ms_per_step_rounds"), "pnn_pat")),
                    json_number_value(json_object_get(med, "pnn_pat")), json_number_value(json_object_get(med, "torch_pat")),
                    json_number_value(json_object_get(ratio, "pat")), json_number_value(json_object_get(med, "pnn_insilico")),
                    json_number_value(json_object_get(med, "torch_insilico")),
                    json_number_value(json_object_get(ratio, "insilico")),
                    json_number_value(json_object_get(json_object_get(r, "flops"), "total")) / 1e9,
                    json_number_value(json_object_get(r, "floor_ms_at_peak_gemm_rate")),
                    100 * json_number_value(json_object_get(r, "floor_ms_at_peak_gemm_rate")) /
                        json_number_value(json_object_get(med, "pnn_pat")),
                    json_number_value(json_object_get(r, "floor_ms_at_step_gemm_rate")),
                    100 * json_number_value(json_object_get(r, "pnn_pat_fraction_of_floor")));
        }
        if (s->reference_note[0]) fprintf(f, "%s\n", s->reference_note);
    }
    json_decref(root);
    int bad = ferror(f);
    if (fclose(f) != 0 || bad || rename(tmp, path) != 0) return PNN_ERROR(PNN_ERR_IO, "cannot write %s", path);
    return PNN_OK;
}

/* ---- options ---- */

static int parse_list(const char *v, int64_t *out, int max, int64_t lo, int64_t hi) {
    int n = 0;
    char buf[256];
    snprintf(buf, sizeof buf, "%s", v);
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char *end;
        long long x = strtoll(tok, &end, 10);
        if (*end || x < lo || x > hi || n == max) return -1;
        out[n++] = x;
    }
    return n;
}

int cmd_bench_suite(int argc, char **argv) {
    suite *s = calloc(1, sizeof *s);
    if (!s) return EX_SOFTWARE_;
    int rc = 0;
    for (int k = 0; k < N_SECTIONS; k++) s->sections[k] = 1;
    s->rounds = -1;
#ifdef PNN_SOURCE_DIR
    snprintf(s->source, sizeof s->source, "%s", PNN_SOURCE_DIR);
#else
    snprintf(s->source, sizeof s->source, ".");
#endif
    const char *sizes = NULL, *batches = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(help, stdout);
            free(s);
            return 0;
        }
        if (!strcmp(a, "--suite")) continue;
        if (!strcmp(a, "--quick")) {
            s->quick = 1;
            continue;
        }
        if (!v) {
            rc = cli_usage_error("bench", "%s needs a value (pnn bench --suite --help)", a);
            goto done;
        }
        i++;
        if (!strcmp(a, "--out")) {
            snprintf(s->out, sizeof s->out, "%s", v);
        } else if (!strcmp(a, "--source")) {
            snprintf(s->source, sizeof s->source, "%s", v);
        } else if (!strcmp(a, "--rounds")) {
            char *end;
            s->rounds = (int)strtol(v, &end, 10);
            if (*end || s->rounds < 1 || s->rounds > MAX_ROUNDS) {
                rc = cli_usage_error("bench", "--rounds '%s': a count from 1 to %d", v, MAX_ROUNDS);
                goto done;
            }
        } else if (!strcmp(a, "--sizes")) {
            sizes = v;
        } else if (!strcmp(a, "--batches")) {
            batches = v;
        } else if (!strcmp(a, "--sections")) {
            for (int k = 0; k < N_SECTIONS; k++) s->sections[k] = 0;
            char buf[256];
            snprintf(buf, sizeof buf, "%s", v);
            for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
                int found = -1;
                for (int k = 0; section_names[k]; k++)
                    if (!strcmp(tok, section_names[k])) found = k;
                if (found < 0) {
                    rc = cli_usage_error("bench", "unknown suite section '%s'; known: floor, twins, torch, bridge, "
                                         "dp, remote, reference", tok);
                    goto done;
                }
                s->sections[found] = 1;
            }
        } else {
            rc = cli_usage_error("bench", "unknown option %s for --suite (pnn bench --suite --help)", a);
            goto done;
        }
    }
    if (s->rounds < 0) s->rounds = s->quick ? 2 : 3;
    s->min_s = s->quick ? 0.05 : 0.2;
    s->budget_s = s->quick ? 4 : 40;
    static const int64_t osc_full[] = {100, 400, 1610, 4096, 8192}, osc_quick[] = {100, 400};
    static const int64_t b_full[] = {1, 32, 256}, b_quick[] = {1, 32};
    if (sizes) {
        if (strncmp(sizes, "oscillator=", 11) ||
            (s->n_osc = parse_list(sizes + 11, s->osc_sizes, 16, 2, (int64_t)1 << 20)) <= 0) {
            rc = cli_usage_error("bench", "--sizes '%s': give oscillator=N1,N2,... (2 <= N), e.g. oscillator=100,400",
                                 sizes);
            goto done;
        }
        s->sizes_given = 1;
    } else {
        s->n_osc = s->quick ? 2 : 5;
        memcpy(s->osc_sizes, s->quick ? osc_quick : osc_full, (size_t)s->n_osc * sizeof(int64_t));
    }
    if (batches) {
        if ((s->n_batches = parse_list(batches, s->batches, 8, 1, 65536)) <= 0) {
            rc = cli_usage_error("bench", "--batches '%s': give B1,B2,... (1 to 65536), e.g. 1,32", batches);
            goto done;
        }
    } else {
        s->n_batches = s->quick ? 2 : 3;
        memcpy(s->batches, s->quick ? b_quick : b_full, (size_t)s->n_batches * sizeof(int64_t));
    }
    if (s->sections[1]) build_grid(s);
    /* a size the user asked for that this machine cannot hold is refused before anything runs */
    double avail = mem_available();
    for (int i = 0; s->sizes_given && i < s->n_pts; i++) {
        double need = point_bytes(&s->pts[i]);
        if (avail > 0 && need > 0.6 * avail) {
            fprintf(stderr, "pnn bench: error: --sizes: the oscillator at N=%lld, batch %lld needs about %.1f GiB and "
                            "this machine has %.1f GiB available; choose a smaller N\n",
                    (long long)s->pts[i].size, (long long)s->pts[i].batch, need / (1 << 30), avail / (1 << 30));
            rc = EX_CONFIG_;
            goto done;
        }
    }
    if (!s->out[0]) {
        char stamp[32];
        time_t now = time(NULL);
        strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", localtime(&now));
        snprintf(s->out, sizeof s->out, "runs/bench-%s", stamp);
    }
    pnn_status st = pnn_mkdir_p(s->out);
    if (st != PNN_OK) {
        rc = cli_fail("bench", st);
        goto done;
    }
    double t0 = pnn_now_s();
    const pnn_backend *cpu = pnn_backend_cpu();
    if (s->sections[0] || s->sections[1]) {
        s->gemm_gflops = pnn_floor_gemm_gflops(cpu, s->quick ? 512 : 1024, s->quick ? 512 : 1024,
                                               s->quick ? 512 : 1024, 0, s->quick ? 0.2 : 0.5);
        s->stream_gbs = pnn_floor_stream_gbs(cpu, (int64_t)(s->quick ? 4 : 16) << 20, s->quick ? 0.2 : 0.5);
        fprintf(stderr, "bench suite: floor: sgemm %.1f GFLOP/s, streaming %.1f GB/s\n", s->gemm_gflops, s->stream_gbs);
    }
    int torch = s->sections[1] && s->sections[2];
    if (torch && !python_has("torch")) {
        torch = 0;
        snprintf(s->torch_note, sizeof s->torch_note, "PyTorch not installed: no side-by-side column");
    } else if (!s->sections[2]) {
        snprintf(s->torch_note, sizeof s->torch_note, "section torch not run");
    }
    if (s->sections[1]) {
        plan_points(s);
        for (int r = 0; st == PNN_OK && r < s->rounds; r++) {
            for (int i = 0; st == PNN_OK && i < s->n_pts; i++) {
                point *p = &s->pts[i];
                if (p->skipped[0]) continue;
                st = time_point(s, p, r);
                if (st == PNN_OK) p->rounds = r + 1;
                if (st == PNN_OK)
                    fprintf(stderr, "bench suite: round %d/%d, %s size %lld batch %lld: forward %.3f, vjp %.3f, pat %.3f ms\n",
                            r + 1, s->rounds, p->system, (long long)p->size, (long long)p->batch, p->ms[0][r],
                            p->ms[1][r], p->ms[2][r]);
            }
            if (st == PNN_OK && torch) {
                pnn_status ts = torch_round(s, r);
                if (ts != PNN_OK) {
                    snprintf(s->torch_note, sizeof s->torch_note, "PyTorch failed: %s", pnn_last_error());
                    torch = 0;
                } else {
                    fprintf(stderr, "bench suite: round %d/%d, PyTorch done\n", r + 1, s->rounds);
                }
            }
        }
    }
    if (st == PNN_OK && s->sections[3]) st = bridge_section(s);
    char self[PNN_PATH_MAX + 1];
    ssize_t self_len = readlink("/proc/self/exe", self, sizeof self - 1);
    self[self_len > 0 ? self_len : 0] = 0;
    snprintf(s->build, sizeof s->build, "%s", self);
    if (strrchr(s->build, '/')) *strrchr(s->build, '/') = 0;
    if (st == PNN_OK && s->sections[4]) st = dp_section(s, self);
    if (st == PNN_OK && s->sections[5]) {
        remote_section(s);
        fprintf(stderr, "bench suite: remote %s\n", s->remote_note[0] ? s->remote_note : "done");
    }
    if (st == PNN_OK && s->sections[6]) {
        reference_section(s);
        fprintf(stderr, "bench suite: reference %s\n", s->reference_note[0] ? s->reference_note : "done");
    }
    if (st == PNN_OK) st = write_report(s, machine(s), pnn_now_s() - t0);
    if (st != PNN_OK) {
        rc = cli_fail("bench", st);
        goto done;
    }
    char cmd[2 * PNN_PATH_MAX + 64];
    if (python_has("matplotlib")) {
        snprintf(cmd, sizeof cmd, "python3 '%s/tools/plot_bench.py' '%s' > /dev/null", s->source, s->out);
        if (system(cmd) != 0) fprintf(stderr, "pnn bench: tools/plot_bench.py could not draw the plots\n");
    }
    printf("bench suite: wrote %s/report.md and report.json (%.0f s)\n", s->out, pnn_now_s() - t0);
done:
    json_decref(s->bridge);
    json_decref(s->dp);
    json_decref(s->remote);
    json_decref(s->reference);
    free(s);
    return rc;
}
