/* `pnn twin`: fit a learned twin to a device or a recording, and show a twin file. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "pnn/clock.h"
#include "pnn/safetensors.h"
#include "pnn/train.h"
#include "pnn/twin_fit.h"

static const char help[] =
    "usage: pnn twin fit DEVICE_URI --out TWIN.safetensors [options]\n"
    "       pnn twin fit --from RECORDING [DEVICE_URI] --out TWIN.safetensors [options]\n"
    "       pnn twin fit --config CONFIG.yaml [--layer NAME] [--checkpoint CKPT] --out TWIN.safetensors [options]\n"
    "       pnn twin show TWIN.safetensors\n"
    "\n"
    "Fits a learned twin: an MLP from [x, theta] to y, trained on the device's own measurements\n"
    "(the PAT paper's practice for every real instrument). From a device, each of the calls\n"
    "measures --rows-per-call inputs x at one control vector theta drawn around the centre (the\n"
    "analytic twin's initial theta where pnn knows the system, else the middle of theta_range);\n"
    "from a recording (record:FILE@URI of a run or of an earlier fit), its calls. Whole calls are\n"
    "held out for validation; Adam with early stopping keeps the best epoch. With --config, the\n"
    "device is the config's physical layer (--layer, or the first), x its inputs in training: the\n"
    "task's training data through the layers before it, and theta is drawn around its initial\n"
    "value (or the checkpoint's, with --checkpoint CKPT: the encoder's too). Prints the\n"
    "validation NMSE (squared error over the variance of y; 0 is perfect, 1 is as good as the mean),\n"
    "the analytic twin's on the same calls where there is one, and the device calls spent; the last\n"
    "line is machine-readable. Use the file in a config: twin: {kind: learned, path: FILE}.\n"
    "\n"
    "options:\n"
    "  --out FILE            the twin file to write (safetensors; atomically)\n"
    "  --kind K              learned (default) or residual: the analytic twin plus an MLP fitted to\n"
    "                        what it misses (twin: {kind: residual, path: FILE})\n"
    "  --samples N           rows to measure, or at most to read from a recording (default 4096)\n"
    "  --rows-per-call R     rows per device call, each call its own theta (default 16)\n"
    "  --record FILE         keep the measurements: the device runs as record:FILE@DEVICE_URI\n"
    "  --set KEY=VALUE       with --config: override a config key (as pnn train)\n"
    "  --x-dist D            uniform (in the device's x_range where finite; default) or normal\n"
    "  --x-scale S           deviation of normal x (default 1)\n"
    "  --theta-spread S      theta = centre + S * rms(centre) * N(0, 1), clipped (default 0.5)\n"
    "  --hidden W,W,...      hidden layer widths (default 128,128; 'none' for a linear model)\n"
    "  --activation A        tanh (default), relu, sigmoid\n"
    "  --lr X  --batch B  --epochs E  --patience P  --val-frac F  --seed S\n"
    "                        Adam's rate (1e-3), rows per step (256), most epochs (300), epochs\n"
    "                        without improvement before stopping (30), calls held out (0.2), seed (0)\n"
    "  --curve FILE.csv      the validation NMSE after each epoch\n"
    "  --backend B           cpu (default), cuda or auto\n"
    "\n"
    "Exit codes: 64 bad option, 65 bad recording or file, 66 missing file, 69 device unavailable,\n"
    "78 recording of another device.\n";

static int parse_int(const char *s, int64_t min, int64_t *out) {
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < min) return 0;
    *out = v;
    return 1;
}

static int parse_double(const char *s, double *out) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v)) return 0;
    *out = v;
    return 1;
}

static int parse_hidden(const char *s, pnn_twin_fit_options *o) {
    o->n_hidden = 0;
    if (!strcmp(s, "none")) return 1;
    while (*s) {
        char *end;
        errno = 0;
        long long w = strtoll(s, &end, 10);
        if (errno || end == s || w < 1 || w > (1 << 20) || (*end && *end != ',') || o->n_hidden >= PNN_FIT_MAX_HIDDEN)
            return 0;
        o->hidden[o->n_hidden++] = w;
        s = *end ? end + 1 : end;
    }
    return o->n_hidden > 0;
}

typedef struct progress_state {
    int tty;
    double last;
} progress_state;

static void fit_progress(void *user, const char *phase, int64_t done, int64_t total, double value) {
    progress_state *ps = user;
    double now = pnn_now_s();
    int end = done == total;
    if (ps->tty) {
        if (!end && now - ps->last < 0.1) return;
        ps->last = now;
        int width = 30, filled = (int)(width * (double)done / (double)total);
        char bar[64];
        for (int i = 0; i < width; i++) bar[i] = i < filled ? '#' : '.';
        bar[width] = 0;
        if (!strcmp(phase, "measure"))
            fprintf(stderr, "\r\033[Kmeasuring [%s] %lld/%lld calls", bar, (long long)done, (long long)total);
        else
            fprintf(stderr, "\r\033[Kfitting   [%s] epoch %lld/%lld validation NMSE %.4g", bar, (long long)done,
                    (long long)total, value);
        if (end && !strcmp(phase, "measure")) fputc('\n', stderr);
    } else if (!strcmp(phase, "measure") ? (end || done % 100 == 0) : (done % 10 == 0)) {
        if (!strcmp(phase, "measure"))
            fprintf(stderr, "measuring: %lld/%lld calls\n", (long long)done, (long long)total);
        else
            fprintf(stderr, "fitting: epoch %lld validation NMSE %.4g\n", (long long)done, value);
    }
}

static int twin_show(int argc, char **argv) {
    if (argc != 2) return cli_usage_error("twin", "twin show takes one file");
    pnn_safetensors *f;
    pnn_status st = pnn_safetensors_read(argv[1], &f);
    if (st != PNN_OK) return cli_fail("twin", st);
    const char *fmt = pnn_safetensors_meta(f, "format");
    if (!fmt || strcmp(fmt, "pnn-twin/1")) {
        pnn_safetensors_free(f);
        return cli_fail("twin", PNN_ERROR(PNN_ERR_FORMAT, "%s is not a twin file (make one with pnn twin fit)", argv[1]));
    }
    static const char *const keys[] = {"kind", "system", "system_uri", "x_dim", "theta_dim", "y_dim", "hidden",
                                       "activation", "validation_nmse", "analytic_validation_nmse", "train_nmse",
                                       "device_calls", "samples", "epochs", "source", NULL};
    for (int i = 0; keys[i]; i++) {
        const char *v = pnn_safetensors_meta(f, keys[i]);
        if (v) printf("%-25s %s\n", keys[i], v);
    }
    pnn_safetensors_free(f);
    return 0;
}

/* The rows the physical layer at index k gets in training: the training set through the layers
 * before it (evaluation passes), padded with zeros to the device's x_dim; *pool host [rows, x_dim]. */
static pnn_status data_pool(pnn_trainer *tr, int k, float **pool, int64_t *pool_rows) {
    pnn_network *net = tr->net;
    const pnn_backend *be = tr->be;
    pnn_device *dev = pnn_layer_physical_device(net->layers[k]);
    int64_t xd = dev->info.x_dim, n = tr->train.n, dim = tr->train.dim, chunk = 256, rows_total = 0;
    pnn_tensor a[2] = {{.backend = be}, {.backend = be}};
    float *out = NULL, *h = NULL;
    pnn_status st = PNN_OK;
    for (int64_t i0 = 0; i0 < n && st == PNN_OK; i0 += chunk) {
        int64_t b = n - i0 < chunk ? n - i0 : chunk, rows = b, cols = dim;
        int cur = 0;
        st = pnn_tensor_reshape2(&a[0], b, dim);
        if (st == PNN_OK) st = pnn_tensor_from_host(&a[0], tr->train.x + i0 * dim, b * dim);
        for (int i = 0; i < k && st == PNN_OK; i++) {
            pnn_layer *l = net->layers[i];
            int64_t orows, ocols;
            st = l->iface->out_shape(l, rows, cols, &orows, &ocols);
            if (st == PNN_OK) st = pnn_tensor_reshape2(&a[cur ^ 1], orows, ocols);
            if (st == PNN_OK) st = l->iface->forward(l, &a[cur], &a[cur ^ 1], PNN_PASS_EVAL_TWIN, 0);
            cur ^= 1;
            rows = orows;
            cols = ocols;
        }
        if (st != PNN_OK) break;
        float *grown = realloc(out, (size_t)(rows_total + rows) * (size_t)xd * sizeof(float));
        float *hh = realloc(h, (size_t)(rows * cols) * sizeof(float));
        if (grown) out = grown;
        if (hh) h = hh;
        if (!grown || !hh) {
            st = PNN_ERROR(PNN_ERR_NOMEM, "out of memory for the layer's inputs");
            break;
        }
        st = pnn_tensor_to_host(&a[cur], h, rows * cols);
        for (int64_t r = 0; r < rows && st == PNN_OK; r++) {
            float *dst = out + (rows_total + r) * xd;
            memset(dst, 0, (size_t)xd * sizeof(float));
            memcpy(dst, h + r * cols, (size_t)(cols < xd ? cols : xd) * sizeof(float));
        }
        rows_total += rows;
    }
    pnn_tensor_free(&a[0]);
    pnn_tensor_free(&a[1]);
    free(h);
    if (st != PNN_OK) {
        free(out);
        return st;
    }
    *pool = out;
    *pool_rows = rows_total;
    return PNN_OK;
}

int cmd_twin(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        fputs(help, argc < 2 ? stderr : stdout);
        return argc < 2 ? EX_USAGE_ : 0;
    }
    if (!strcmp(argv[1], "show")) return twin_show(argc - 1, argv + 1);
    if (strcmp(argv[1], "fit"))
        return cli_usage_error("twin", "unknown twin command '%s'; known: fit, show", argv[1]);
    pnn_twin_fit_options o;
    pnn_twin_fit_defaults(&o);
    const char *uri = NULL, *out = NULL, *from = NULL, *record = NULL, *curve = NULL, *backend = "cpu";
    const char *config = NULL, *layer = NULL, *checkpoint = NULL;
    char *sets[64];
    int n_sets = 0;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(help, stdout);
            return 0;
        }
        if (a[0] != '-') {
            if (uri) return cli_usage_error("twin", "one device URI, not '%s' too", a);
            uri = a;
            continue;
        }
        if (!v) return cli_usage_error("twin", "option %s needs a value", a);
        int ok = 1;
        i++;
        if (!strcmp(a, "--out")) out = v;
        else if (!strcmp(a, "--from")) from = v;
        else if (!strcmp(a, "--record")) record = v;
        else if (!strcmp(a, "--curve")) curve = v;
        else if (!strcmp(a, "--backend")) backend = v;
        else if (!strcmp(a, "--config")) config = v;
        else if (!strcmp(a, "--layer")) layer = v;
        else if (!strcmp(a, "--checkpoint")) checkpoint = v;
        else if (!strcmp(a, "--set")) {
            if (n_sets == (int)(sizeof sets / sizeof sets[0])) return cli_usage_error("twin", "at most 64 --set");
            sets[n_sets++] = (char *)v;
        }
        else if (!strcmp(a, "--kind")) ok = snprintf(o.kind, sizeof o.kind, "%s", v) < (int)sizeof o.kind;
        else if (!strcmp(a, "--x-dist")) ok = snprintf(o.x_dist, sizeof o.x_dist, "%s", v) < (int)sizeof o.x_dist;
        else if (!strcmp(a, "--activation"))
            ok = snprintf(o.activation, sizeof o.activation, "%s", v) < (int)sizeof o.activation;
        else if (!strcmp(a, "--samples")) ok = parse_int(v, 1, &o.samples);
        else if (!strcmp(a, "--rows-per-call")) ok = parse_int(v, 1, &o.rows_per_call);
        else if (!strcmp(a, "--batch")) ok = parse_int(v, 1, &o.batch);
        else if (!strcmp(a, "--epochs")) ok = parse_int(v, 1, &o.max_epochs);
        else if (!strcmp(a, "--patience")) ok = parse_int(v, 1, &o.patience);
        else if (!strcmp(a, "--seed")) ok = parse_int(v, 0, (int64_t *)&o.seed);
        else if (!strcmp(a, "--lr")) ok = parse_double(v, &o.lr) && o.lr > 0;
        else if (!strcmp(a, "--val-frac")) ok = parse_double(v, &o.val_frac) && o.val_frac > 0 && o.val_frac < 1;
        else if (!strcmp(a, "--x-scale")) ok = parse_double(v, &o.x_scale) && o.x_scale > 0;
        else if (!strcmp(a, "--theta-spread")) ok = parse_double(v, &o.theta_spread) && o.theta_spread >= 0;
        else if (!strcmp(a, "--hidden")) ok = parse_hidden(v, &o);
        else return cli_usage_error("twin", "unknown option %s", a);
        if (!ok) return cli_usage_error("twin", "bad value '%s' for %s", v, a);
    }
    if (!out) return cli_usage_error("twin", "say where to write the twin: --out FILE");
    if (!uri && !from && !config)
        return cli_usage_error("twin", "give a device URI to measure, --config CONFIG (its physical layer), or --from "
                               "RECORDING");
    if (config && (uri || from || record))
        return cli_usage_error("twin", "--config measures the config's device with the task's data: no device URI, "
                               "--from or --record with it (record: in the config's device URI keeps the calls)");
    if (!config && (layer || checkpoint || n_sets))
        return cli_usage_error("twin", "--layer, --checkpoint and --set go with --config");
    const pnn_backend *be;
    pnn_status st = pnn_backend_get(backend, &be);
    if (st != PNN_OK) return cli_fail("twin", st);
    pnn_trainer *tr = NULL;
    float *pool = NULL, *center = NULL;
    pnn_device *layer_dev = NULL;
    if (config) {
        pnn_cfg *cfg;
        char dir[PNN_PATH_MAX + 1];
        st = cli_load_config(config, sets, n_sets, &cfg);
        if (st == PNN_OK && (st = pnn_path_dirname(config, dir, sizeof dir)) != PNN_OK) pnn_cfg_free(cfg);
        if (st == PNN_OK) st = pnn_trainer_create(cfg, dir, &tr);
        if (st == PNN_OK && checkpoint) st = pnn_trainer_load_checkpoint(tr, checkpoint, 0);
        int k = -1;
        for (int i = 0; st == PNN_OK && i < tr->net->n_layers && k < 0; i++)
            if (pnn_layer_physical_device(tr->net->layers[i]) && (!layer || !strcmp(tr->net->layers[i]->name, layer)))
                k = i;
        if (st == PNN_OK && k < 0)
            st = PNN_ERROR(PNN_ERR_CONFIG, "%s has no physical layer%s%s%s", config, layer ? " named '" : "",
                           layer ? layer : "", layer ? "'" : "");
        if (st == PNN_OK) {
            pnn_layer *l = tr->net->layers[k];
            layer_dev = pnn_layer_physical_device(l);
            int64_t td = layer_dev->info.theta_dim;
            center = malloc((size_t)(td ? td : 1) * sizeof(float));
            if (!center) st = PNN_ERROR(PNN_ERR_NOMEM, "out of memory");
            else if (td) be->iface->to_host(be->ctx, center, l->params[0].value.data, (size_t)td * sizeof(float));
            o.theta_center = center;
            fprintf(stderr, "pnn twin: layer '%s' (%s): x from %s through the %d layer%s before it\n", l->name,
                    layer_dev->info.uri, tr->train.name, k, k == 1 ? "" : "s");
        }
        if (st == PNN_OK) st = data_pool(tr, k, &pool, &o.x_pool_rows);
        o.x_pool = pool;
        if (st != PNN_OK) {
            free(center);
            pnn_trainer_free(tr);
            return cli_fail("twin", st);
        }
    }
    char full[PNN_PATH_MAX * 2 + 16];
    if (uri && record) {
        if ((size_t)snprintf(full, sizeof full, "record:%s@%s", record, uri) >= sizeof full)
            return cli_usage_error("twin", "the --record file name and device URI are too long together");
        uri = full;
    }
    pnn_device *dev = layer_dev;
    if (uri && (st = pnn_device_open(uri, be, &dev)) != PNN_OK) return cli_fail("twin", st);
    FILE *cf = NULL;
    if (curve) {
        cf = fopen(curve, "w");
        if (!cf) {
            if (!tr) pnn_device_close(dev);
            pnn_trainer_free(tr);
            free(pool);
            free(center);
            return cli_fail("twin", PNN_ERROR(PNN_ERR_IO, "cannot write %s: %s", curve, strerror(errno)));
        }
        fprintf(cf, "epoch,train_loss,val_nmse,elapsed_s\n");
        o.curve = cf;
    }
    progress_state ps = {isatty(2), 0};
    o.progress = fit_progress;
    o.user = &ps;
    pnn_twin_fit_report r;
    st = from ? pnn_twin_fit_recording(from, dev, be, &o, out, &r) : pnn_twin_fit_device(dev, &o, out, &r);
    if (ps.tty) fputc('\n', stderr);
    if (cf && fclose(cf) && st == PNN_OK) st = PNN_ERROR(PNN_ERR_IO, "cannot write %s: %s", curve, strerror(errno));
    if (!tr) pnn_device_close(dev); /* the trainer owns the config's device */
    pnn_trainer_free(tr);
    free(pool);
    free(center);
    if (st != PNN_OK) return cli_fail("twin", st);
    fprintf(stderr, "pnn twin: validation NMSE=%.4g on %lld held-out rows", r.val_nmse, (long long)r.val_rows);
    if (!isnan(r.analytic_val_nmse)) fprintf(stderr, " (the analytic twin alone: %.4g)", r.analytic_val_nmse);
    fprintf(stderr, "; train NMSE=%.4g; best epoch %lld of %lld; %lld parameters\n", r.train_nmse,
            (long long)r.best_epoch, (long long)r.epochs, (long long)r.params);
    fprintf(stderr, "pnn twin: %lld device calls (%lld samples, %.1f s measuring), fit %.1f s at %.0f samples/s; "
            "wrote %s\n", (long long)r.device_calls, (long long)r.samples, r.measure_s, r.fit_s, r.fit_samples_per_s,
            out);
    printf("fit: validation_nmse=%.6g analytic_validation_nmse=%.6g train_nmse=%.6g device_calls=%lld samples=%lld "
           "params=%lld epochs=%lld best_epoch=%lld fit_s=%.3f fit_samples_per_s=%.1f\n",
           r.val_nmse, r.analytic_val_nmse, r.train_nmse, (long long)r.device_calls, (long long)r.samples,
           (long long)r.params, (long long)r.epochs, (long long)r.best_epoch, r.fit_s, r.fit_samples_per_s);
    return 0;
}
