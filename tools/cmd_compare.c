/* `pnn compare`: training methods side by side, on the same data, seeds and devices, by what a
 * lab pays for them: device passes. */
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "cli.h"

static const char help[] =
    "usage: pnn compare CONFIG.yaml [--methods M1,M2,...] [--seeds N | --seeds S1,S2,...]\n"
    "                   [--method-set METHOD.key=value]... [--set key=value]...\n"
    "                   [--set-for METHOD:key=value]... [--out DIR]\n"
    "\n"
    "Trains CONFIG once per method and seed: the same data, the same initial parameters for a\n"
    "seed, and the same devices (their seeds are the config's, never the run's), and compares the\n"
    "methods by test accuracy on the device against what they cost: device passes (calls of the\n"
    "physical devices in training, every copy counted; a batch split by bridge.micro_batch or a\n"
    "device's max_batch is several) and twin passes (taped forwards of the twins).\n"
    "\n"
    "  --methods       comma-separated (default: every method; pnn train --help lists them)\n"
    "  --seeds         a count (1..N) or a list (default 3)\n"
    "  --method-set    a key of one method, e.g. --method-set spsa.perturbations=8\n"
    "  --set           override a config key for every run (e.g. --set epochs=5)\n"
    "  --set-for       override a config key for one method's runs, e.g. the batch and learning\n"
    "                  rate it trains best with: --set-for phyll:batch=512 (listed in compare.md)\n"
    "  --out DIR       where the tables go (default runs/compare-<config>-<date-time>):\n"
    "                  compare.md   mean +- std per method (device and twin accuracy, time, passes)\n"
    "                  compare.csv  one row per run\n"
    "                  curves.csv   device accuracy after every epoch against the device passes\n"
    "                  so far; python3 tools/plot_compare.py DIR draws compare.png from it\n"
    "\n"
    "Progress goes to stderr, one line per epoch. A method that cannot run the config (its error\n"
    "is printed) is left out of the tables, the others go on, and the exit code says it failed.\n";

#define MAX_METHODS 16
#define MAX_SEEDS 100
#define MAX_EPOCHS 100000

typedef struct run_result {
    const char *method;
    uint64_t seed;
    int ok;
    double acc_device, acc_twin, train_s;
    double device_passes, twin_passes;
} run_result;

typedef struct curve_point {
    const char *method;
    uint64_t seed;
    int64_t epoch;
    double device_passes, twin_passes, acc_device;
} curve_point;

typedef struct compare_state {
    pnn_trainer *tr;
    const char *method;
    uint64_t seed;
    int run, runs;
    curve_point *curve;
    int64_t n_curve, cap_curve;
    int grow_failed;
} compare_state;

static double device_passes(const pnn_trainer *tr) {
    double n = 0;
    for (int d = 0; d < tr->bridge_run.n_devices; d++) n += (double)tr->bridge_run.device_calls[d];
    return n;
}

static double twin_passes(const pnn_trainer *tr) { return (double)tr->bridge_run.twin_calls; }

static void on_progress(void *user, const pnn_progress *p) {
    compare_state *c = user;
    if (strcmp(p->phase, "epoch_done")) return;
    const pnn_trainer *tr = c->tr;
    if (c->n_curve == c->cap_curve) {
        int64_t cap = c->cap_curve ? 2 * c->cap_curve : 256;
        curve_point *grown = realloc(c->curve, (size_t)cap * sizeof *grown);
        if (!grown) {
            c->grow_failed = 1;
            return;
        }
        c->curve = grown, c->cap_curve = cap;
    }
    c->curve[c->n_curve++] = (curve_point){c->method, c->seed, p->epoch, device_passes(tr), twin_passes(tr),
                                           tr->last_device.acc};
    fprintf(stderr, "compare: run %d/%d, %s seed %llu, epoch %lld/%lld: device %.2f %%, twin %.2f %%, %.0f device "
                    "passes, %.0f s\n",
            c->run, c->runs, c->method, (unsigned long long)c->seed, (long long)p->epoch, (long long)p->epochs,
            100 * tr->last_device.acc, tr->last_twin.n ? 100 * tr->last_twin.acc : NAN, device_passes(tr), p->elapsed_s);
}

/* Whether a --set-for or --method-set entry (METHOD<sep>...) is for method. */
static int entry_for(const char *entry, const char *method, char sep) {
    size_t n = strlen(method);
    return !strncmp(entry, method, n) && entry[n] == sep;
}

/* The config for one run: the file, --set, the method's --set-for keys, then the method (the
 * config's own map when it is this method's, with the --method-set keys) and the seed. */
static pnn_status run_config(const char *path, char **sets, int n_sets, char **fsets, int n_fsets, const char *method,
                             char **msets, int n_msets, uint64_t seed, pnn_cfg **cfg) {
    char spec[1024], assign[1200];
    int len = snprintf(spec, sizeof spec, "{kind: %s", method);
    size_t mlen = strlen(method);
    for (int i = 0; i < n_msets && len + 2 < (int)sizeof spec; i++) {
        if (strncmp(msets[i], method, mlen) || msets[i][mlen] != '.') continue;
        const char *kv = msets[i] + mlen + 1, *eq = strchr(kv, '=');
        len += snprintf(spec + len, sizeof spec - (size_t)len, ", %.*s: %s", (int)(eq - kv), kv, eq + 1);
    }
    if (len + 2 >= (int)sizeof spec) return PNN_ERROR(PNN_ERR_INVALID, "--method-set: the keys of %s are too long", method);
    snprintf(spec + len, sizeof spec - (size_t)len, "}");
    PNN_TRY(cli_load_config(path, sets, n_sets, cfg));
    pnn_status st = PNN_OK;
    for (int i = 0; st == PNN_OK && i < n_fsets; i++)
        if (entry_for(fsets[i], method, ':')) {
            st = pnn_cfg_set(*cfg, fsets[i] + strlen(method) + 1);
            if (st != PNN_OK) pnn_error_prefix(st, "--set-for %s: ", fsets[i]);
        }
    /* a config whose method map is this method keeps its keys (e.g. phyll's embed), and the
     * --method-set keys go over them */
    const pnn_cfg *mnode = pnn_cfg_get(*cfg, "method");
    const char *kind = pnn_cfg_type_of(mnode) == PNN_CFG_MAP ? pnn_cfg_scalar(pnn_cfg_get(mnode, "kind")) : NULL;
    if (kind && !strcmp(kind, method)) {
        for (int i = 0; st == PNN_OK && i < n_msets; i++)
            if (entry_for(msets[i], method, '.')) {
                snprintf(assign, sizeof assign, "method.%s", msets[i] + mlen + 1);
                st = pnn_cfg_set(*cfg, assign);
            }
    } else {
        snprintf(assign, sizeof assign, "method=%s", spec);
        if (st == PNN_OK) st = pnn_cfg_set(*cfg, assign);
    }
    if (st == PNN_OK) {
        snprintf(assign, sizeof assign, "seed=%llu", (unsigned long long)seed);
        st = pnn_cfg_set(*cfg, assign);
    }
    if (st != PNN_OK) {
        pnn_cfg_free(*cfg);
        *cfg = NULL;
    }
    return st;
}

/* path.tmp written by the caller, then renamed over path */
static FILE *open_tmp(const char *path, char *tmp, size_t cap) {
    if (pnn_path_format(tmp, cap, "%s.tmp", path) != PNN_OK) return NULL;
    return fopen(tmp, "w");
}

static pnn_status close_tmp(FILE *f, const char *tmp, const char *path) {
    int bad = ferror(f);
    if (fclose(f) != 0 || bad || rename(tmp, path) != 0) {
        remove(tmp);
        return PNN_ERROR(PNN_ERR_IO, "cannot write %s: %s", path, strerror(errno));
    }
    return PNN_OK;
}

static void mean_std(const run_result *r, int n, const char *method, size_t field, double *mean, double *sd, int *k) {
    double s = 0, s2 = 0;
    *k = 0;
    for (int i = 0; i < n; i++) {
        if (!r[i].ok || strcmp(r[i].method, method)) continue;
        double v = *(const double *)((const char *)&r[i] + field);
        s += v, s2 += v * v, (*k)++;
    }
    *mean = *k ? s / *k : NAN;
    *sd = *k > 1 ? sqrt(fmax(0, (s2 - s * s / *k) / (*k - 1))) : 0;
}

static pnn_status write_tables(const char *dir, const char *config, const run_result *r, int n, const char **methods,
                               int n_methods, const curve_point *curve, int64_t n_curve, char **fsets, int n_fsets) {
    char path[PNN_PATH_MAX + 1], tmp[PNN_PATH_MAX + 8];
    PNN_TRY(pnn_path_format(path, sizeof path, "%s/compare.csv", dir));
    FILE *f = open_tmp(path, tmp, sizeof tmp);
    if (!f) return PNN_ERROR(PNN_ERR_IO, "cannot write %s: %s", path, strerror(errno));
    fprintf(f, "method,seed,test_acc_device,test_acc_twin,train_s,device_passes,twin_passes\n");
    for (int i = 0; i < n; i++)
        if (r[i].ok)
            fprintf(f, "%s,%llu,%.6f,%.6f,%.3f,%.0f,%.0f\n", r[i].method, (unsigned long long)r[i].seed, r[i].acc_device,
                    r[i].acc_twin, r[i].train_s, r[i].device_passes, r[i].twin_passes);
    PNN_TRY(close_tmp(f, tmp, path));

    PNN_TRY(pnn_path_format(path, sizeof path, "%s/curves.csv", dir));
    if (!(f = open_tmp(path, tmp, sizeof tmp))) return PNN_ERROR(PNN_ERR_IO, "cannot write %s: %s", path, strerror(errno));
    fprintf(f, "method,seed,epoch,device_passes,twin_passes,test_acc_device\n");
    for (int64_t i = 0; i < n_curve; i++)
        fprintf(f, "%s,%llu,%lld,%.0f,%.0f,%.6f\n", curve[i].method, (unsigned long long)curve[i].seed,
                (long long)curve[i].epoch, curve[i].device_passes, curve[i].twin_passes, curve[i].acc_device);
    PNN_TRY(close_tmp(f, tmp, path));

    PNN_TRY(pnn_path_format(path, sizeof path, "%s/compare.md", dir));
    if (!(f = open_tmp(path, tmp, sizeof tmp))) return PNN_ERROR(PNN_ERR_IO, "cannot write %s: %s", path, strerror(errno));
    fprintf(f, "# pnn compare %s\n\n", config);
    for (int i = 0; i < n_fsets; i++)
        fprintf(f, "%s%s%s", i ? ", " : "Settings of one method (--set-for): ", fsets[i], i == n_fsets - 1 ? "\n\n" : "");
    fprintf(f, "| method | runs | test accuracy on the device (%%) | on the twin (%%) | training time (s) | device "
               "passes | twin passes |\n| --- | --- | --- | --- | --- | --- | --- |\n");
    for (int m = 0; m < n_methods; m++) {
        double md, sd, mt, st, ms, ss, mp, sp, mw, sw;
        int k;
        mean_std(r, n, methods[m], offsetof(run_result, acc_device), &md, &sd, &k);
        if (!k) {
            fprintf(f, "| %s | 0 | failed | | | | |\n", methods[m]);
            continue;
        }
        mean_std(r, n, methods[m], offsetof(run_result, acc_twin), &mt, &st, &k);
        mean_std(r, n, methods[m], offsetof(run_result, train_s), &ms, &ss, &k);
        mean_std(r, n, methods[m], offsetof(run_result, device_passes), &mp, &sp, &k);
        mean_std(r, n, methods[m], offsetof(run_result, twin_passes), &mw, &sw, &k);
        char twin[48] = "– (no twin)";
        if (!isnan(mt)) snprintf(twin, sizeof twin, "%.1f ± %.1f", 100 * mt, 100 * st);
        fprintf(f, "| %s | %d | %.1f ± %.1f | %s | %.1f | %.0f | %.0f |\n", methods[m], k, 100 * md, 100 * sd, twin, ms,
                mp, mw);
    }
    return close_tmp(f, tmp, path);
}

int cmd_compare(int argc, char **argv) {
    const char *config = NULL, *out = NULL, *methods[MAX_METHODS];
    char methods_buf[512] = "", methods_list[512] = "", **sets = calloc((size_t)argc, sizeof *sets), **msets = calloc((size_t)argc, sizeof *msets),
         **fsets = calloc((size_t)argc, sizeof *fsets);
    uint64_t seeds[MAX_SEEDS] = {1, 2, 3};
    int n_sets = 0, n_msets = 0, n_fsets = 0, n_methods = 0, n_seeds = 3, rc = 0;
    run_result *res = NULL;
    compare_state c = {0};
    if (!sets || !msets || !fsets) {
        free(sets), free(msets), free(fsets);
        return EX_SOFTWARE_;
    }
    for (int i = 1; i < argc; i++) {
        const char *s = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(s, "--help") || !strcmp(s, "-h")) {
            fputs(help, stdout);
            goto done;
        }
        if (s[0] != '-') {
            if (config) {
                rc = cli_usage_error("compare", "unexpected argument '%s' (one CONFIG)", s);
                goto done;
            }
            config = s;
            continue;
        }
        if (!v) {
            rc = cli_usage_error("compare", "%s needs a value", s);
            goto done;
        }
        i++;
        if (!strcmp(s, "--set")) sets[n_sets++] = (char *)v;
        else if (!strcmp(s, "--set-for")) {
            const char *colon = strchr(v, ':'), *eq = strchr(v, '=');
            if (!colon || !eq || eq < colon || colon == v || eq == colon + 1) {
                rc = cli_usage_error("compare", "--set-for '%s': give METHOD:key=value, e.g. phyll:batch=512", v);
                goto done;
            }
            fsets[n_fsets++] = (char *)v;
        }
        else if (!strcmp(s, "--out")) out = v;
        else if (!strcmp(s, "--method-set")) {
            const char *dot = strchr(v, '.'), *eq = strchr(v, '=');
            if (!dot || !eq || eq < dot || eq == dot + 1) {
                rc = cli_usage_error("compare", "--method-set '%s': give METHOD.key=value, e.g. spsa.perturbations=8", v);
                goto done;
            }
            msets[n_msets++] = (char *)v;
        } else if (!strcmp(s, "--methods")) {
            snprintf(methods_buf, sizeof methods_buf, "%s", v);
        } else if (!strcmp(s, "--seeds")) {
            char *end;
            const char *p = v;
            n_seeds = 0;
            errno = 0;
            if (!strchr(p, ',')) { /* a count: seeds 1..N */
                long long count = strtoll(p, &end, 10);
                if (*end || end == p || errno || count < 1 || count > MAX_SEEDS) {
                    rc = cli_usage_error("compare", "--seeds '%s': a count from 1 to %d, or a list of seeds such as "
                                         "1,2,7", v, MAX_SEEDS);
                    goto done;
                }
                for (int k = 0; k < count; k++) seeds[n_seeds++] = (uint64_t)k + 1;
                continue;
            }
            while (*p) {
                errno = 0;
                long long x = strtoll(p, &end, 10);
                if (end == p || errno || x < 0 || (*end && *end != ',') || n_seeds == MAX_SEEDS) {
                    rc = cli_usage_error("compare", "--seeds '%s': a count from 1 to %d, or a list of seeds such as 1,2,7",
                                         v, MAX_SEEDS);
                    goto done;
                }
                seeds[n_seeds++] = (uint64_t)x;
                p = *end ? end + 1 : end;
            }
            if (!n_seeds) {
                rc = cli_usage_error("compare", "--seeds is empty");
                goto done;
            }
        } else {
            rc = cli_usage_error("compare", "unknown option %s", s);
            goto done;
        }
    }
    if (!config) {
        rc = cli_usage_error("compare", "give the CONFIG to train (pnn compare --help)");
        goto done;
    }
    if (!methods_buf[0]) snprintf(methods_buf, sizeof methods_buf, "%s", pnn_method_names());
    snprintf(methods_list, sizeof methods_list, "%s", methods_buf); /* strtok cuts methods_buf */
    for (char *tok = strtok(methods_buf, ", "); tok; tok = strtok(NULL, ", ")) {
        if (!pnn_method_find(tok)) {
            rc = cli_usage_error("compare", "unknown method '%s' in --methods; known: %s", tok, pnn_method_names());
            goto done;
        }
        if (n_methods == MAX_METHODS) {
            rc = cli_usage_error("compare", "more than %d methods", MAX_METHODS);
            goto done;
        }
        methods[n_methods++] = tok;
    }
    for (int i = 0; i < n_msets; i++) {
        int known = 0;
        for (int m = 0; m < n_methods; m++)
            known |= !strncmp(msets[i], methods[m], strlen(methods[m])) && msets[i][strlen(methods[m])] == '.';
        if (!known) {
            rc = cli_usage_error("compare", "--method-set %s: not a key of the methods compared (%s)", msets[i],
                                 methods_list);
            goto done;
        }
    }
    for (int i = 0; i < n_fsets; i++) {
        int known = 0;
        for (int m = 0; m < n_methods; m++) known |= entry_for(fsets[i], methods[m], ':');
        if (!known) {
            rc = cli_usage_error("compare", "--set-for %s: not one of the methods compared (%s)", fsets[i], methods_list);
            goto done;
        }
    }
    char dir[PNN_PATH_MAX + 1], config_dir[PNN_PATH_MAX + 1];
    pnn_status st = pnn_path_dirname(config, config_dir, sizeof config_dir);
    if (st == PNN_OK && out) st = pnn_path_format(dir, sizeof dir, "%s", out);
    else if (st == PNN_OK) {
        const char *base = strrchr(config, '/') ? strrchr(config, '/') + 1 : config;
        char stamp[32];
        time_t now = time(NULL);
        strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", localtime(&now));
        st = pnn_path_format(dir, sizeof dir, "runs/compare-%.*s-%s", (int)strcspn(base, "."), base, stamp);
    }
    /* the config must load before anything is trained or created */
    pnn_cfg *probe = NULL;
    if (st == PNN_OK) st = cli_load_config(config, sets, n_sets, &probe);
    pnn_cfg_free(probe);
    if (st == PNN_OK && pnn_mkdir_p(dir) != PNN_OK) st = pnn_error_prefix(PNN_ERR_IO, "--out %s: ", dir);
    if (st != PNN_OK) {
        rc = cli_fail("compare", st);
        goto done;
    }
    int runs = n_methods * n_seeds, n = 0;
    res = calloc((size_t)runs, sizeof *res);
    if (!res) {
        rc = EX_SOFTWARE_;
        goto done;
    }
    c.runs = runs;
    for (int m = 0; m < n_methods; m++)
        for (int k = 0; k < n_seeds; k++) {
            run_result *r = &res[n++];
            r->method = methods[m];
            r->seed = seeds[k];
            pnn_cfg *cfg = NULL;
            pnn_trainer *tr = NULL;
            st = run_config(config, sets, n_sets, fsets, n_fsets, methods[m], msets, n_msets, seeds[k], &cfg);
            if (st == PNN_OK) st = pnn_trainer_create(cfg, config_dir, &tr);
            if (st == PNN_OK) {
                c.tr = tr, c.method = methods[m], c.seed = seeds[k], c.run = n;
                tr->progress = on_progress;
                tr->progress_user = &c;
                st = pnn_trainer_run(tr);
            }
            if (st == PNN_OK && !tr->evaluated) {
                st = pnn_trainer_evaluate(tr, PNN_PASS_EVAL_DEVICE, &tr->last_device);
                if (st == PNN_OK) st = pnn_trainer_evaluate(tr, PNN_PASS_EVAL_TWIN, &tr->last_twin);
            }
            if (st == PNN_OK) {
                *r = (run_result){methods[m], seeds[k], 1, tr->last_device.acc, tr->last_twin.n ? tr->last_twin.acc : NAN, tr->train_s,
                                  device_passes(tr), twin_passes(tr)};
            } else {
                int code = cli_fail("compare", st);
                if (!rc) rc = code;
                fprintf(stderr, "compare: %s seed %llu failed; the other runs go on\n", methods[m],
                        (unsigned long long)seeds[k]);
            }
            pnn_trainer_free(tr);
        }
    if (c.grow_failed) fprintf(stderr, "compare: out of memory for the curves; curves.csv is incomplete\n");
    st = write_tables(dir, config, res, n, methods, n_methods, c.curve, c.n_curve, fsets, n_fsets);
    if (st != PNN_OK) {
        rc = cli_fail("compare", st);
        goto done;
    }
    char md[PNN_PATH_MAX + 16];
    if (pnn_path_format(md, sizeof md, "%s/compare.md", dir) == PNN_OK) {
        FILE *f = fopen(md, "r");
        char line[512];
        while (f && fgets(line, sizeof line, f)) fputs(line, stdout);
        if (f) fclose(f);
    }
    fprintf(stderr, "compare: wrote %s/compare.md, compare.csv, curves.csv (python3 tools/plot_compare.py %s draws "
                    "compare.png)\n", dir, dir);
done:
    free(c.curve);
    free(res);
    free(sets);
    free(msets);
    free(fsets);
    return rc;
}
