/* `pnn bench`: the engine's throughput benchmark — times training steps of a config's network. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"

static const char help[] =
    "usage: pnn bench CONFIG.yaml [--steps N] [--warmup W] [--set key=value]... [--json PATH]\n"
    "\n"
    "Times N training steps (default 20) of the config's network and method after W warm-up steps\n"
    "(default 3), on consecutive training batches, and prints the median, min and max ms per step,\n"
    "steps per second, and the share of each step spent in device calls. --json writes the figures.\n";

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int cmd_bench(int argc, char **argv) {
    const char *config = NULL, *json = NULL;
    long steps = 20, warmup = 3;
    char **sets = calloc((size_t)argc, sizeof *sets);
    int n_sets = 0;
    if (!sets) return EX_SOFTWARE_;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(help, stdout);
            free(sets);
            return 0;
        }
        int has_value = i + 1 < argc;
        char *end = NULL;
        if (!strcmp(a, "--steps") && has_value) steps = strtol(argv[++i], &end, 10);
        else if (!strcmp(a, "--warmup") && has_value) warmup = strtol(argv[++i], &end, 10);
        else if (!strcmp(a, "--set") && has_value) sets[n_sets++] = argv[++i];
        else if (!strcmp(a, "--json") && has_value) json = argv[++i];
        else if (a[0] != '-' && !config) config = a;
        else {
            free(sets);
            return cli_usage_error("bench", "unexpected or incomplete argument '%s'", a);
        }
        if (end && (*end || steps < 1 || steps > 1000000 || warmup < 0)) {
            free(sets);
            return cli_usage_error("bench", "--steps and --warmup take counts (steps >= 1)");
        }
    }
    if (!config) {
        free(sets);
        return cli_usage_error("bench", "give the CONFIG.yaml to benchmark");
    }
    char config_dir[1024];
    cli_dirname(config, config_dir, sizeof config_dir);
    pnn_cfg *cfg;
    pnn_status st = cli_load_config(config, sets, n_sets, &cfg);
    free(sets);
    if (st != PNN_OK) return cli_fail("bench", st);
    pnn_trainer *tr;
    st = pnn_trainer_create(cfg, config_dir, &tr);
    if (st != PNN_OK) return cli_fail("bench", st);
    int64_t b = tr->opt.batch, n = tr->train.n;
    double *ms = malloc((size_t)steps * sizeof(double));
    int64_t *idx = malloc((size_t)b * sizeof(int64_t));
    pnn_device *devs[64];
    int nd = pnn_network_devices(tr->net, devs, 64);
    double dev_busy0 = 0;
    if (!ms || !idx) st = PNN_ERROR(PNN_ERR_NOMEM, "out of memory");
    for (long s = 0; st == PNN_OK && s < warmup + steps; s++) {
        if (s == warmup)
            for (int d = 0; d < nd; d++) dev_busy0 += devs[d]->busy_s;
        for (int64_t i = 0; i < b; i++) idx[i] = (s * b + i) % n;
        double t0 = now_s();
        st = pnn_trainer_step(tr, idx, b, NULL, NULL);
        if (s >= warmup) ms[s - warmup] = 1e3 * (now_s() - t0);
    }
    if (st != PNN_OK) {
        free(ms);
        free(idx);
        pnn_trainer_free(tr);
        return cli_fail("bench", st);
    }
    double dev_busy = -dev_busy0, total = 0;
    for (int d = 0; d < nd; d++) dev_busy += devs[d]->busy_s;
    for (long s = 0; s < steps; s++) total += ms[s];
    qsort(ms, (size_t)steps, sizeof *ms, cmp_double);
    double median = steps % 2 ? ms[steps / 2] : 0.5 * (ms[steps / 2 - 1] + ms[steps / 2]);
    printf("bench: %s method=%s batch=%lld params=%lld steps=%ld\n", config,
           tr->opt.method == PNN_METHOD_PAT ? "pat" : "insilico", (long long)b,
           (long long)pnn_network_param_count(tr->net), steps);
    printf("ms_per_step: median=%.2f min=%.2f max=%.2f steps_per_s=%.2f device_share=%.3f\n", median, ms[0],
           ms[steps - 1], 1e3 / median, total > 0 ? 1e3 * dev_busy / total : 0);
    if (json) {
        FILE *f = fopen(json, "w");
        if (!f) {
            fprintf(stderr, "pnn bench: cannot write %s\n", json);
        } else {
            fprintf(f,
                    "{\"config\": \"%s\", \"method\": \"%s\", \"batch\": %lld, \"params\": %lld, \"steps\": %ld, "
                    "\"ms_median\": %.4f, \"ms_min\": %.4f, \"ms_max\": %.4f, \"device_share\": %.4f}\n",
                    config, tr->opt.method == PNN_METHOD_PAT ? "pat" : "insilico", (long long)b,
                    (long long)pnn_network_param_count(tr->net), steps, median, ms[0], ms[steps - 1],
                    total > 0 ? 1e3 * dev_busy / total : 0);
            fclose(f);
        }
    }
    free(ms);
    free(idx);
    pnn_trainer_free(tr);
    return 0;
}
