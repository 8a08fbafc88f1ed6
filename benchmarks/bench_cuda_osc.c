/* The large-twin benchmark of the CUDA backend: forward (taped) + VJP of the oscillator ops
 * through the backend table at N = 1024, 4096, 8192 and batch 256, 1024 (Nt = 5), plus the
 * reference experiment's two layer shapes. For each it counts FLOPs (GEMM work: 2 B N^2 per
 * stage forward, twice that in the VJP) and the bytes the implementation moves (GEMM operands
 * and the elementwise passes), and reports the time as a fraction of the floor
 * max(FLOPs / GEMM rate, bytes / copy bandwidth), with both ceilings measured here first:
 * a large SGEMM (exact fp32 and TF32) and a device-to-device copy. Exact fp32 is the default;
 * each shape is also timed with TF32 GEMMs. Prints a summary, writes JSON (--json PATH).
 * Usage: bench_cuda_osc [--json PATH] [--commit ID] [--quick] [--gemm N] [--shape N B]...
 * (--quick: shorter timing, smaller ceiling GEMM, the first three shapes; --shape replaces the
 * list). Without a GPU it says so and exits 0. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pnn/clock.h"
#include "pnn/pnn.h"
#include "kernels/systems/oscillator/oscillator_ops.h"
#ifdef PNN_USE_CUDA
#include "kernels/cuda/cuda_backend.h"
#endif

typedef void (*bench_fn)(void *arg);

/* median seconds of fn over repeats (one untimed warm-up; at least 3, until ~min_s total) */
static double time_median(const pnn_backend *be, bench_fn fn, void *arg, double min_s) {
    double t[64];
    int reps = 0;
    fn(arg);
    be->iface->sync(be->ctx);
    double start = pnn_now_s();
    while (reps < 64 && (reps < 3 || pnn_now_s() - start < min_s)) {
        double t0 = pnn_now_s();
        fn(arg);
        be->iface->sync(be->ctx);
        t[reps++] = pnn_now_s() - t0;
    }
    qsort(t, (size_t)reps, sizeof *t, pnn_cmp_double);
    return t[reps / 2];
}

static float *dev_alloc(const pnn_backend *be, size_t floats, float value) {
    float *p = be->iface->alloc(be->ctx, floats * sizeof(float));
    if (!p) {
        fprintf(stderr, "bench_cuda_osc: out of GPU memory for %zu floats: %s\n", floats, pnn_last_error());
        exit(1);
    }
    be->iface->fill(be->ctx, p, value, (int64_t)floats);
    return p;
}

static float *dev_random(const pnn_backend *be, size_t floats, float scale, uint64_t stream) {
    float *p = dev_alloc(be, floats, 0.0f);
    be->iface->rng_normal(be->ctx, 1, stream, 0, (int64_t)floats, p);
    be->iface->scale(be->ctx, (int64_t)floats, scale, p, p);
    return p;
}

/* ---- ceilings ---- */

typedef struct {
    const pnn_backend *be;
    int64_t n;
    float *a, *b, *c;
} gemm_arg;

static void run_gemm(void *v) {
    gemm_arg *g = v;
    g->be->iface->gemm(g->be->ctx, false, false, g->n, g->n, g->n, 1.0f, g->a, g->n, g->b, g->n, 0.0f, g->c, g->n);
}

typedef struct {
    const pnn_backend *be;
    size_t bytes;
    float *src, *dst;
} copy_arg;


static void run_copy(void *v) {
    copy_arg *c = v;
    c->be->iface->copy(c->be->ctx, c->dst, c->src, c->bytes);
}

/* ---- the oscillator ops ---- */

typedef struct {
    const pnn_backend *be;
    pnn_osc_params p;
    float *q0, *q, *e, *qT, *tape, *work, *dq0, *dq, *de;
} osc_arg;

static void run_forward_vjp(void *v) {
    osc_arg *o = v;
    pnn_osc_ops_for(o->be)->forward(o->be->ctx, &o->p, o->q0, o->q, o->e, o->qT, o->tape, o->work);
    pnn_osc_ops_for(o->be)->vjp(o->be->ctx, &o->p, o->tape, o->q, o->qT, o->dq0, o->dq, o->de, o->work);
}

static void run_forward(void *v) {
    osc_arg *o = v;
    pnn_osc_ops_for(o->be)->forward(o->be->ctx, &o->p, o->q0, o->q, o->e, o->qT, NULL, o->work);
}

/* FLOPs of the GEMMs of forward + VJP: 4 nt stages of 2 B N^2 forward, g Q^T per stage and the
 * dQ = S^T G share in the VJP */
static double osc_flops(const pnn_osc_params *p) {
    return 3.0 * 4.0 * p->nt * 2.0 * (double)p->batch * (double)p->n * (double)p->n;
}

/* Bytes the forward + VJP move to and from GPU memory (float = 4). GEMM regime: per step two
 * GEMMs (Q and 2 B N in and out each) and two elementwise passes (12 B N each), forward and
 * VJP alike. Fused regime: the forward reads q0 and writes the tape (8 nt B N) and qT; the VJP
 * transposes Q, reads dqT and the tape's w cos half, writes every stage's adjoint and dq0.
 * Both then run the dQ GEMM (tape s and adjoints in, dQ in and out) and the de sums. */
static double osc_bytes(const pnn_osc_params *p, int fused) {
    double bn = (double)p->batch * (double)p->n, nn = (double)p->n * (double)p->n, nt = p->nt;
    double dq = 2 * 4 * nt * bn + 2 * nn, de = 4 * nt * bn;
    if (fused) return 4.0 * ((2 + 8 * nt) * bn + nn + 2 * nn + (2 + 8 * nt) * bn + dq + de);
    double per_step = 2 * nn + 8 * bn + 24 * bn;
    return 4.0 * (2 * nt * per_step + dq + de);
}

typedef struct {
    int64_t n, batch;
    const char *note;
} shape;

int main(int argc, char **argv) {
    const char *json = NULL, *commit = "unknown";
    int quick = 0, n_custom = 0;
    int64_t gemm_n = 8192;
    shape custom[16];
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--json") && i + 1 < argc) json = argv[++i];
        else if (!strcmp(argv[i], "--commit") && i + 1 < argc) commit = argv[++i];
        else if (!strcmp(argv[i], "--quick")) quick = 1, gemm_n = 4096;
        else if (!strcmp(argv[i], "--gemm") && i + 1 < argc) gemm_n = atoll(argv[++i]);
        else if (!strcmp(argv[i], "--shape") && i + 2 < argc && n_custom < 16) {
            custom[n_custom].n = atoll(argv[i + 1]), custom[n_custom].batch = atoll(argv[i + 2]);
            custom[n_custom++].note = "custom";
            i += 2;
        } else {
            fprintf(stderr, "usage: bench_cuda_osc [--json PATH] [--commit ID] [--quick] [--gemm N] [--shape N B]...\n");
            return 64;
        }
    }
    const pnn_backend *be;
    if (pnn_backend_get("cuda", &be) != PNN_OK) {
        printf("bench_cuda_osc: skipped: %s\n", pnn_last_error());
        return 0;
    }
#ifdef PNN_USE_CUDA
    const char *device = pnn_cuda_device_name();
#else
    const char *device = "?";
#endif
    const double min_s = quick ? 0.1 : 0.4;

    /* ceilings: an 8192^3 SGEMM (exact fp32, then TF32) and a 1 GiB device-to-device copy */
    gemm_arg g = {be, gemm_n, NULL, NULL, NULL};
    size_t gn = (size_t)(g.n * g.n);
    g.a = dev_random(be, gn, 1.0f, 1), g.b = dev_random(be, gn, 1.0f, 2), g.c = dev_alloc(be, gn, 0);
    double gemm_flops = 2.0 * (double)g.n * (double)g.n * (double)g.n;
    double fp32_tflops = gemm_flops / time_median(be, run_gemm, &g, min_s) / 1e12;
#ifdef PNN_USE_CUDA
    pnn_cuda_set_tf32(1);
#endif
    double tf32_tflops = gemm_flops / time_median(be, run_gemm, &g, min_s) / 1e12;
#ifdef PNN_USE_CUDA
    pnn_cuda_set_tf32(0);
#endif
    be->iface->release(be->ctx, g.a), be->iface->release(be->ctx, g.b), be->iface->release(be->ctx, g.c);
    copy_arg c = {be, (size_t)1 << 30, NULL, NULL};
    c.src = dev_alloc(be, c.bytes / 4, 1.0f), c.dst = dev_alloc(be, c.bytes / 4, 0.0f);
    double copy_gbs = 2.0 * (double)c.bytes / time_median(be, run_copy, &c, min_s) / 1e9; /* read + write */
    be->iface->release(be->ctx, c.src), be->iface->release(be->ctx, c.dst);
    printf("device: %s\nceilings: sgemm %lld^3 fp32 %.1f TFLOP/s, tf32 %.1f TFLOP/s; d2d copy %.0f GB/s\n", device,
           (long long)g.n, fp32_tflops, tf32_tflops, copy_gbs);

    const shape shapes[] = {{1024, 256, "large twin"},  {1024, 1024, "large twin"}, {4096, 256, "large twin"},
                            {4096, 1024, "large twin"}, {8192, 256, "large twin"},  {8192, 1024, "large twin"},
                            {100, 512, "fmnist layer 1 (16 patches x batch 32)"},
                            {1610, 32, "fmnist layer 2 (batch 32)"}};
    const shape *list = n_custom ? custom : shapes;
    const int n_shapes = n_custom ? n_custom : quick ? 3 : (int)(sizeof shapes / sizeof *shapes);
    FILE *out = json ? fopen(json, "w") : NULL;
    if (json && !out) fprintf(stderr, "bench_cuda_osc: cannot write %s\n", json);
    if (out)
        fprintf(out,
                "{\"benchmark\": \"cuda_osc\", \"device\": \"%s\", \"commit\": \"%s\", \"nt\": 5,\n"
                " \"ceilings\": {\"sgemm_fp32_tflops\": %.3f, \"sgemm_tf32_tflops\": %.3f, \"d2d_copy_gbs\": %.1f, "
                "\"gemm_size\": %lld, \"copy_bytes\": %zu},\n \"shapes\": [\n",
                device, commit, fp32_tflops, tf32_tflops, copy_gbs, (long long)g.n, c.bytes);
    printf("%6s %6s %-10s %10s %10s %9s %9s %10s %10s %8s\n", "N", "B", "gemm", "fwd ms", "fwd+vjp ms", "TFLOP/s",
           "GB/s", "floor ms", "of floor", "regime");
    for (int s = 0; s < n_shapes; s++) {
        osc_arg o = {.be = be, .p = {.batch = list[s].batch, .n = list[s].n, .nt = 5, .dt = 0.1f, .eta = 0.0f}};
        size_t bn = (size_t)(o.p.batch * o.p.n), nn = (size_t)(o.p.n * o.p.n);
        float bound = 1.0f / sqrtf((float)o.p.n);
        float *cm = dev_random(be, nn, bound, 3);
        o.q = dev_alloc(be, nn, 0);
        pnn_osc_ops_for(be)->build_q(be->ctx, o.p.n, cm, o.q);
        be->iface->release(be->ctx, cm);
        o.q0 = dev_random(be, bn, 0.5f, 4), o.e = dev_random(be, (size_t)o.p.n, bound, 5);
        o.qT = dev_alloc(be, bn, 0), o.dq0 = dev_alloc(be, bn, 0), o.dq = dev_alloc(be, nn, 0);
        o.de = dev_alloc(be, (size_t)o.p.n, 0);
        o.tape = dev_alloc(be, pnn_osc_ops_for(be)->tape_floats(&o.p), 0);
        o.work = dev_alloc(be, pnn_osc_ops_for(be)->work_floats(&o.p), 0);
        double flops = osc_flops(&o.p), bytes = osc_bytes(&o.p, o.p.n <= 256);
        for (int tf32 = 0; tf32 < 2; tf32++) {
#ifdef PNN_USE_CUDA
            pnn_cuda_set_tf32(tf32);
#endif
            double t_fwd = time_median(be, run_forward, &o, min_s);
            double t_all = time_median(be, run_forward_vjp, &o, min_s);
            double rate = (tf32 ? tf32_tflops : fp32_tflops) * 1e12;
            double floor_s = fmax(flops / rate, bytes / (copy_gbs * 1e9));
            const char *regime = o.p.n <= 256 ? "fused" : "gemm";
            printf("%6lld %6lld %-10s %10.3f %10.3f %9.2f %9.0f %10.3f %9.1f%% %8s  %s\n", (long long)o.p.n,
                   (long long)o.p.batch, tf32 ? "tf32" : "fp32", 1e3 * t_fwd, 1e3 * t_all, flops / t_all / 1e12,
                   bytes / t_all / 1e9, 1e3 * floor_s, 100.0 * floor_s / t_all, regime, list[s].note);
            if (out)
                fprintf(out,
                        "  {\"n\": %lld, \"batch\": %lld, \"gemm\": \"%s\", \"regime\": \"%s\", \"note\": \"%s\", "
                        "\"forward_ms\": %.4f, \"forward_vjp_ms\": %.4f, \"flops\": %.6g, \"bytes\": %.6g, "
                        "\"tflops\": %.4f, \"gbs\": %.2f, \"floor_ms\": %.4f, \"fraction_of_floor\": %.4f}%s\n",
                        (long long)o.p.n, (long long)o.p.batch, tf32 ? "tf32" : "fp32", regime, list[s].note,
                        1e3 * t_fwd, 1e3 * t_all, flops, bytes, flops / t_all / 1e12, bytes / t_all / 1e9,
                        1e3 * floor_s, floor_s / t_all, s == n_shapes - 1 && tf32 ? "" : ",");
        }
#ifdef PNN_USE_CUDA
        pnn_cuda_set_tf32(0);
#endif
        float *bufs[] = {o.q, o.q0, o.e, o.qT, o.dq0, o.dq, o.de, o.tape, o.work};
        for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++) be->iface->release(be->ctx, bufs[i]);
    }
    pnn_status st = pnn_backend_status(be);
    if (out) {
        fprintf(out, " ],\n \"status\": \"%s\"}\n", st == PNN_OK ? "ok" : "error (see stderr)");
        fclose(out);
    }
    if (st != PNN_OK) {
        fprintf(stderr, "bench_cuda_osc: the backend reported an error: %s\n", pnn_last_error());
        return 1;
    }
    return 0;
}
