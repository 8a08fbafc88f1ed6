/* `pnn bench`: the engine's throughput benchmark — times training steps of a config's network. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pnn/clock.h"

#include "cli.h"

static const char help[] =
    "usage: pnn bench CONFIG.yaml [--steps N] [--warmup W] [--set key=value]... [--json PATH]\n"
    "       pnn bench --suite [--quick] [--out DIR]   (the standard grid and its report: --suite --help)\n"
    "\n"
    "Times N training steps (default 20) of the config's network and method after W warm-up steps\n"
    "(default 3), on consecutive training batches, and prints the median, min and max ms per step,\n"
    "steps per second, and where the time went: per step, the busiest device's busy time and duty\n"
    "cycle (busy / wall), the backend's busy time and its time waiting on devices. --json writes\n"
    "the figures. Use --set bridge.micro_batch=8 --set bridge.schedule=sequential|pipelined and a\n"
    "device with latency_ms=... to see the overlap.\n"
    "Under mpirun (or srun) the ranks train together as in pnn train (config key comm) and each\n"
    "step is one global batch; rank 0 prints and writes the JSON (with \"ranks\" and \"reduce\").\n";

int cmd_bench(int argc, char **argv) {
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--suite")) return cmd_bench_suite(argc, argv);
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
    char config_dir[PNN_PATH_MAX + 1];
    pnn_cfg *cfg = NULL;
    pnn_status st = pnn_path_dirname(config, config_dir, sizeof config_dir);
    if (st == PNN_OK) st = cli_load_config(config, sets, n_sets, &cfg);
    free(sets);
    if (st != PNN_OK) return cli_fail("bench", st);
    /* data-parallel under a launcher, as pnn train */
    const char *kind;
    pnn_comm *comm = NULL;
    st = pnn_train_comm_kind(cfg, &kind);
    if (st == PNN_OK) st = pnn_comm_init(kind, NULL, NULL, &comm);
    if (st != PNN_OK) {
        pnn_cfg_free(cfg);
        return cli_fail("bench", st);
    }
    int rank0 = comm->rank == 0;
    pnn_trainer *tr;
    st = pnn_trainer_create_comm(cfg, config_dir, comm, &tr);
    if (st != PNN_OK) {
        int rc = rank0 ? cli_fail("bench", st) : EX_SOFTWARE_;
        pnn_comm_free(comm);
        return rc;
    }
    int64_t b = tr->opt.batch, n = tr->train.n;
    double *ms = malloc((size_t)steps * sizeof(double));
    int64_t *idx = malloc((size_t)b * sizeof(int64_t));
    pnn_bridge_stats at_warmup = tr->bridge_run;
    if (!ms || !idx) st = PNN_ERROR(PNN_ERR_NOMEM, "out of memory");
    for (long s = 0; st == PNN_OK && s < warmup + steps; s++) {
        if (s == warmup) at_warmup = tr->bridge_run;
        for (int64_t i = 0; i < b; i++) idx[i] = (s * b + i) % n;
        double t0 = pnn_now_s();
        st = pnn_trainer_step(tr, idx, b, NULL, NULL);
        if (s >= warmup) ms[s - warmup] = 1e3 * (pnn_now_s() - t0);
    }
    if (st != PNN_OK) {
        free(ms);
        free(idx);
        pnn_trainer_free(tr);
        int rc = rank0 ? cli_fail("bench", st) : EX_SOFTWARE_;
        pnn_comm_free(comm);
        return rc;
    }
    const pnn_bridge_stats *now = &tr->bridge_run;
    double wall = now->wall_s - at_warmup.wall_s, wait = now->wait_s - at_warmup.wait_s, busiest = 0;
    for (int d = 0; d < now->n_devices; d++) {
        double busy = now->device_busy_s[d] - at_warmup.device_busy_s[d];
        if (busy > busiest) busiest = busy;
    }
    double dev_ms = 1e3 * busiest / steps, backend_ms = 1e3 * (wall - wait) / steps, wait_ms = 1e3 * wait / steps;
    double duty = wall > 0 ? busiest / wall : 0;
    double step_mean = 0; /* whole steps, communication included (mean= below is the passes only) */
    for (long s = 0; s < steps; s++) step_mean += ms[s] / (double)steps;
    qsort(ms, (size_t)steps, sizeof *ms, pnn_cmp_double);
    double median = steps % 2 ? ms[steps / 2] : 0.5 * (ms[steps / 2 - 1] + ms[steps / 2]);
    const char *reduce = tr->opt.reduce == PNN_REDUCE_EXACT ? "exact" : "fast";
    if (!rank0) {
        free(ms);
        free(idx);
        pnn_trainer_free(tr);
        pnn_comm_free(comm);
        return 0;
    }
    printf("bench: %s method=%s batch=%lld params=%lld steps=%ld micro_batch=%lld schedule=%s ranks=%d reduce=%s\n",
           config, tr->opt.method->name, (long long)b,
           (long long)pnn_network_param_count(tr->net), steps, (long long)tr->opt.bridge.micro_batch,
           tr->opt.bridge.pipelined ? "pipelined" : "sequential", comm->size, reduce);
    printf("ms_per_step: median=%.2f min=%.2f max=%.2f mean=%.2f steps_per_s=%.2f\n", median, ms[0], ms[steps - 1],
           1e3 * wall / steps, 1e3 / median);
    printf("per_step: device_busy_ms=%.2f device_duty=%.3f backend_busy_ms=%.2f backend_wait_ms=%.2f\n", dev_ms, duty,
           backend_ms, wait_ms);
    if (json) {
        FILE *f = fopen(json, "w");
        if (!f) {
            fprintf(stderr, "pnn bench: cannot write %s\n", json);
        } else {
            fprintf(f,
                    "{\"config\": \"%s\", \"method\": \"%s\", \"batch\": %lld, \"params\": %lld, \"steps\": %ld, "
                    "\"micro_batch\": %lld, \"schedule\": \"%s\", \"ms_median\": %.4f, \"ms_min\": %.4f, "
                    "\"ms_max\": %.4f, \"ms_mean\": %.4f, \"device_busy_ms\": %.4f, \"device_duty\": %.4f, "
                    "\"backend_busy_ms\": %.4f, \"backend_wait_ms\": %.4f, \"device_share\": %.4f, \"ranks\": %d, "
                    "\"reduce\": \"%s\", \"steps_per_s\": %.4f, \"ms_step_mean\": %.4f, "
                    "\"steps_per_s_mean\": %.4f}\n",
                    config, tr->opt.method->name, (long long)b,
                    (long long)pnn_network_param_count(tr->net), steps, (long long)tr->opt.bridge.micro_batch,
                    tr->opt.bridge.pipelined ? "pipelined" : "sequential", median, ms[0], ms[steps - 1],
                    1e3 * wall / steps, dev_ms, duty, backend_ms, wait_ms, duty, comm->size, reduce, 1e3 / median,
                    step_mean, 1e3 / step_mean);
            fclose(f);
        }
    }
    free(ms);
    free(idx);
    pnn_trainer_free(tr);
    pnn_comm_free(comm);
    return 0;
}
