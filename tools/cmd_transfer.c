/* `pnn transfer`: a trained network on other copies of its device (each with its own hidden
 * mismatch), the accuracy it keeps, and what fine-tuning on each copy buys back for its device
 * calls. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "pnn/rng.h"

static const char help[] =
    "usage: pnn transfer CHECKPOINT --devices URI [URI...] [--layer NAME] [--finetune STEPS | --distill STEPS]\n"
    "                    [--set key=value]... [--seed S] [--out FILE.json] [--trust-checkpoint]\n"
    "\n"
    "Evaluates the network in CHECKPOINT on its test set on the device it was trained with and on\n"
    "each device given (other copies of the hardware: the same system, its own hidden mismatch),\n"
    "and reports the accuracy on each, their mean and spread, and the transfer gap (accuracy on\n"
    "the training device minus the mean on the copies). A URI may hold a range {A..B}, e.g.\n"
    "'sim:oscillator?n=40&nt=10&seed={2..11}' for ten copies.\n"
    "\n"
    "  --layer NAME      the physical layer to move (needed when the network has several)\n"
    "  --finetune STEPS  then train STEPS steps on each copy (the config's method, optimizer and\n"
    "                    batch, fresh optimizer state, data order from --seed) and evaluate again:\n"
    "                    the remedy, with the device calls it spent (training steps only)\n"
    "  --distill STEPS   instead, train each copy without labels to give the outputs the network\n"
    "                    gives on the training device (MSE of the outputs on training inputs; PAT on\n"
    "                    the copy, the training device queried for the targets: both calls counted)\n"
    "  --set key=value   override a config key (e.g. optimizer.lr=0.003, data.limit_test=1000)\n"
    "  --out FILE.json   write every figure (python3 tools/plot_transfer.py FILE.json draws them)\n"
    "  --trust-checkpoint  as pnn eval: open devices and files the checkpoint's config names\n"
    "\n"
    "The last line is machine-readable:\n"
    "  transfer: copies=N train_device_acc=... mean_acc=... std_acc=... gap=... [mean_acc_finetuned=...\n"
    "  gap_finetuned=... calls_per_copy=...]\n"
    "Exit codes: 64 bad arguments, 65 bad checkpoint, 69 device unavailable, 78 a device of another\n"
    "system or dims.\n";

#define MAX_COPIES 1000

typedef struct copy_result {
    char uri[1024];
    char system[32];
    int64_t x_dim, theta_dim, y_dim;
    double acc, loss, acc_ft, loss_ft;
    uint64_t calls;
} copy_result;

typedef struct transfer_args {
    const char *ckpt, *layer;
    char **sets;
    int n_sets, trust;
    int64_t finetune;
    int distill;               /* the finetune steps distil from the teacher instead of the labels */
    pnn_trainer *teacher;      /* distillation: the network on its training device */
    uint64_t seed;
} transfer_args;

/* One distillation step of student on the training rows idx[0..b): the teacher's outputs on the
 * training device are the targets of the student's (PAT pass on its own device), MSE. */
static pnn_status distill_step(pnn_trainer *student, pnn_trainer *teacher, const int64_t *idx, int64_t b,
                               pnn_tensor *x, pnn_tensor *target, pnn_tensor *dy, pnn_tensor *loss, float *host) {
    const pnn_backend *be = student->be;
    int64_t dim = student->train.dim, out = student->net->out_dim;
    for (int64_t i = 0; i < b; i++) memcpy(host + i * dim, student->train.x + idx[i] * dim, (size_t)dim * sizeof(float));
    PNN_TRY(pnn_tensor_reshape2(x, b, dim));
    PNN_TRY(pnn_tensor_from_host(x, host, b * dim));
    const pnn_tensor *yt, *ys;
    PNN_TRY(pnn_network_forward(teacher->net, x, PNN_PASS_EVAL_DEVICE, &yt));
    PNN_TRY(pnn_tensor_reshape2(target, b, out));
    PNN_TRY(pnn_tensor_copy(target, yt));
    pnn_network_zero_grad(student->net);
    PNN_TRY(pnn_network_forward(student->net, x, PNN_PASS_TRAIN_PAT, &ys));
    PNN_TRY(pnn_tensor_reshape2(dy, b, out));
    PNN_TRY(pnn_tensor_reshape2(loss, b, 1));
    be->iface->mse(be->ctx, b, out, ys->data, target->data, loss->data, dy->data, 1.0f / (float)b);
    PNN_TRY(pnn_network_backward(student->net, dy));
    PNN_TRY(pnn_backend_status(be));
    return pnn_optimizer_step(student->optim);
}

/* the network of the checkpoint with its physical layer on uri (NULL: as trained), tested, and
 * fine-tuned and tested again when asked */
static pnn_status run_copy(const transfer_args *a, const char *uri, const copy_result *ref, copy_result *r) {
    pnn_cfg *cfg = NULL;
    char keys[65][64];
    const char *given[65];
    int n_given = 0;
    PNN_TRY(pnn_checkpoint_config(a->ckpt, &cfg));
    pnn_status st = PNN_OK;
    for (int i = 0; st == PNN_OK && i < a->n_sets; i++) {
        st = pnn_cfg_set(cfg, a->sets[i]);
        snprintf(keys[n_given], sizeof keys[0], "%.*s", (int)strcspn(a->sets[i], "="), a->sets[i]);
        given[n_given] = keys[n_given];
        n_given++;
    }
    if (st == PNN_OK && uri) {
        st = pnn_cfg_set_device(cfg, a->layer, uri, keys[n_given], sizeof keys[0]);
        given[n_given] = keys[n_given];
        n_given++;
    }
    char untrusted[1024];
    if (st == PNN_OK && !a->trust && pnn_checkpoint_untrusted(cfg, given, n_given, untrusted, sizeof untrusted))
        st = PNN_ERROR(PNN_ERR_INVALID, "the config inside %s names %s; give it yourself (--set) or pass "
                       "--trust-checkpoint if you made this checkpoint (docs/security.md)", a->ckpt, untrusted);
    if (st != PNN_OK) {
        pnn_cfg_free(cfg);
        return st;
    }
    pnn_trainer *tr;
    PNN_TRY(pnn_trainer_create(cfg, ".", &tr));
    /* the moved layer's device: the named one, or the only one */
    pnn_device *dev = NULL;
    for (int i = 0; i < tr->net->n_layers; i++) {
        pnn_device *d = pnn_layer_physical_device(tr->net->layers[i]);
        if (d && (!a->layer || !strcmp(tr->net->layers[i]->name, a->layer))) dev = d;
    }
    if (!dev) st = PNN_ERROR(PNN_ERR_CONFIG, "the network has no physical layer%s%s%s", a->layer ? " named '" : "",
                             a->layer ? a->layer : "", a->layer ? "'" : "");
    if (st == PNN_OK) {
        snprintf(r->uri, sizeof r->uri, "%s", dev->info.uri);
        snprintf(r->system, sizeof r->system, "%s", dev->info.system);
        r->x_dim = dev->info.x_dim;
        r->theta_dim = dev->info.theta_dim;
        r->y_dim = dev->info.y_dim;
        if (ref && (strcmp(ref->system, r->system) || ref->x_dim != r->x_dim || ref->theta_dim != r->theta_dim ||
                    ref->y_dim != r->y_dim))
            st = PNN_ERROR(PNN_ERR_CONFIG, "device %s is system '%s' with x_dim=%lld theta_dim=%lld y_dim=%lld, but the "
                           "network was trained on '%s' with x_dim=%lld theta_dim=%lld y_dim=%lld (%s): transfer "
                           "moves a network to another copy of the same system", r->uri, r->system,
                           (long long)r->x_dim, (long long)r->theta_dim, (long long)r->y_dim, ref->system,
                           (long long)ref->x_dim, (long long)ref->theta_dim, (long long)ref->y_dim, ref->uri);
    }
    if (st == PNN_OK) st = pnn_trainer_load_checkpoint(tr, a->ckpt, 0);
    if (st == PNN_OK) st = pnn_trainer_evaluate(tr, PNN_PASS_EVAL_DEVICE, &tr->last_device);
    if (st == PNN_OK) {
        r->acc = tr->last_device.acc;
        r->loss = tr->last_device.loss;
        r->acc_ft = r->loss_ft = NAN;
    }
    if (st == PNN_OK && a->finetune > 0 && uri) { /* the remedy, on a copy */
        int64_t n = tr->train.n, b = tr->opt.batch < n ? tr->opt.batch : n;
        int64_t *perm = malloc((size_t)n * sizeof *perm);
        float *host = a->distill ? malloc((size_t)(b * tr->train.dim) * sizeof(float)) : NULL;
        pnn_tensor x = {.backend = tr->be}, target = {.backend = tr->be}, dy = {.backend = tr->be},
                   loss = {.backend = tr->be};
        pnn_device *tdev = NULL;
        for (int i = 0; a->distill && i < a->teacher->net->n_layers; i++) {
            pnn_device *d = pnn_layer_physical_device(a->teacher->net->layers[i]);
            if (d && (!a->layer || !strcmp(a->teacher->net->layers[i]->name, a->layer))) tdev = d;
        }
        uint64_t calls0 = dev->calls, tcalls0 = tdev ? tdev->calls : 0;
        if (!perm || (a->distill && !host)) st = PNN_ERROR(PNN_ERR_NOMEM, "out of memory");
        for (int64_t s = 0, pos = n; st == PNN_OK && s < a->finetune; s++, pos += b) {
            if (pos + b > n) {
                pnn_rng_permutation(a->seed, pnn_rng_stream("transfer.order", (uint64_t)s), n, perm);
                pos = 0;
            }
            st = a->distill ? distill_step(tr, a->teacher, perm + pos, b, &x, &target, &dy, &loss, host)
                            : pnn_trainer_step(tr, perm + pos, b, NULL, NULL);
        }
        free(perm);
        free(host);
        pnn_tensor_free(&x), pnn_tensor_free(&target), pnn_tensor_free(&dy), pnn_tensor_free(&loss);
        r->calls = dev->calls - calls0 + (tdev ? tdev->calls - tcalls0 : 0);
        if (st == PNN_OK) st = pnn_trainer_evaluate(tr, PNN_PASS_EVAL_DEVICE, &tr->last_device);
        if (st == PNN_OK) {
            r->acc_ft = tr->last_device.acc;
            r->loss_ft = tr->last_device.loss;
        }
    }
    pnn_trainer_free(tr);
    return st;
}

static void stats(const copy_result *c, int n, int ft, double *mean, double *sd) {
    double s = 0, s2 = 0;
    for (int i = 0; i < n; i++) s += ft ? c[i].acc_ft : c[i].acc;
    *mean = s / n;
    for (int i = 0; i < n; i++) {
        double d = (ft ? c[i].acc_ft : c[i].acc) - *mean;
        s2 += d * d;
    }
    *sd = n > 1 ? sqrt(s2 / (n - 1)) : 0;
}

static void json_str(FILE *f, const char *s) {
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') fprintf(f, "\\%c", *s);
        else if ((unsigned char)*s < 0x20) fprintf(f, "\\u%04x", *s);
        else fputc(*s, f);
    }
    fputc('"', f);
}

static pnn_status write_json(const char *path, const transfer_args *a, const copy_result *own, const copy_result *c,
                             int n) {
    char tmp[PNN_PATH_MAX + 32];
    PNN_TRY(pnn_path_format(tmp, sizeof tmp, "%s.tmp", path));
    FILE *f = fopen(tmp, "w");
    if (!f) return PNN_ERROR(PNN_ERR_IO, "cannot write %s: %s", tmp, strerror(errno));
    double m, sd, mf = NAN, sdf = NAN;
    stats(c, n, 0, &m, &sd);
    if (a->finetune > 0) stats(c, n, 1, &mf, &sdf);
    fprintf(f, "{\"checkpoint\": ");
    json_str(f, a->ckpt);
    fprintf(f, ", \"remedy\": \"%s\", \"finetune_steps\": %lld, \"seed\": %llu, \"training_device\": {\"uri\": ",
            a->finetune ? (a->distill ? "distill" : "finetune") : "none", (long long)a->finetune,
            (unsigned long long)a->seed);
    json_str(f, own->uri);
    fprintf(f, ", \"acc\": %.6f, \"loss\": %.6f}, \"copies\": [", own->acc, own->loss);
    for (int i = 0; i < n; i++) {
        fprintf(f, "%s{\"uri\": ", i ? ", " : "");
        json_str(f, c[i].uri);
        fprintf(f, ", \"acc\": %.6f, \"loss\": %.6f", c[i].acc, c[i].loss);
        if (a->finetune > 0)
            fprintf(f, ", \"acc_finetuned\": %.6f, \"loss_finetuned\": %.6f, \"device_calls\": %llu", c[i].acc_ft,
                    c[i].loss_ft, (unsigned long long)c[i].calls);
        fputc('}', f);
    }
    fprintf(f, "], \"mean_acc\": %.6f, \"std_acc\": %.6f, \"gap\": %.6f", m, sd, own->acc - m);
    if (a->finetune > 0)
        fprintf(f, ", \"mean_acc_finetuned\": %.6f, \"std_acc_finetuned\": %.6f, \"gap_finetuned\": %.6f", mf, sdf,
                own->acc - mf);
    fprintf(f, "}\n");
    if (fclose(f) != 0 || rename(tmp, path) != 0) {
        remove(tmp);
        return PNN_ERROR(PNN_ERR_IO, "cannot write %s: %s", path, strerror(errno));
    }
    return PNN_OK;
}

int cmd_transfer(int argc, char **argv) {
    transfer_args a = {0};
    char **uris = calloc(MAX_COPIES, sizeof *uris), **sets = calloc((size_t)argc, sizeof *sets);
    const char *out = NULL;
    int n = 0, rc = 0, in_devices = 0;
    copy_result *res = NULL, own;
    pnn_status st = PNN_OK;
    if (!uris || !sets) {
        free(uris), free(sets);
        return EX_SOFTWARE_;
    }
    a.sets = sets;
    for (int i = 1; i < argc && st == PNN_OK; i++) {
        const char *s = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(s, "--help") || !strcmp(s, "-h")) {
            fputs(help, stdout);
            goto done;
        }
        if (s[0] != '-') {
            if (in_devices) st = pnn_device_uri_expand(s, uris, &n, MAX_COPIES);
            else if (!a.ckpt) a.ckpt = s;
            else {
                rc = cli_usage_error("transfer", "unexpected argument '%s' (devices follow --devices)", s);
                goto done;
            }
            continue;
        }
        in_devices = 0;
        if (!strcmp(s, "--devices")) {
            in_devices = 1;
            continue;
        }
        if (!strcmp(s, "--trust-checkpoint")) {
            a.trust = 1;
            continue;
        }
        if (!v) {
            rc = cli_usage_error("transfer", "%s needs a value", s);
            goto done;
        }
        i++;
        char *end;
        if (!strcmp(s, "--layer")) a.layer = v;
        else if (!strcmp(s, "--out")) out = v;
        else if (!strcmp(s, "--set")) sets[a.n_sets++] = (char *)v;
        else if (!strcmp(s, "--finetune") || !strcmp(s, "--distill") || !strcmp(s, "--seed")) {
            errno = 0;
            long long x = strtoll(v, &end, 10);
            if (errno || end == v || *end || x < 0 || (strcmp(s, "--seed") && x > 10000000)) {
                rc = cli_usage_error("transfer", "bad value '%s' for %s: a whole number >= 0", v, s);
                goto done;
            }
            if (!strcmp(s, "--seed")) a.seed = (uint64_t)x;
            else {
                if (a.finetune > 0 && (a.distill != !strcmp(s, "--distill"))) {
                    rc = cli_usage_error("transfer", "--finetune and --distill are two remedies: one at a time");
                    goto done;
                }
                a.finetune = x;
                a.distill = !strcmp(s, "--distill");
            }
        } else {
            rc = cli_usage_error("transfer", "unknown option %s", s);
            goto done;
        }
    }
    if (st != PNN_OK) {
        rc = cli_fail("transfer", st);
        goto done;
    }
    if (!a.ckpt) {
        rc = cli_usage_error("transfer", "give the CHECKPOINT of a trained network");
        goto done;
    }
    if (n == 0) {
        rc = cli_usage_error("transfer", "give the devices to move the network to: --devices URI [URI...], e.g. "
                             "--devices 'sim:oscillator?n=40&nt=10&seed={2..11}'");
        goto done;
    }
    res = calloc((size_t)n, sizeof *res);
    if (!res) {
        rc = EX_SOFTWARE_;
        goto done;
    }
    st = run_copy(&a, NULL, NULL, &own);
    if (st != PNN_OK) {
        rc = cli_fail("transfer", pnn_error_prefix(st, "on the training device: "));
        goto done;
    }
    if (a.distill && a.finetune > 0) {
        /* the teacher: the network as trained, on its training device */
        pnn_cfg *cfg = NULL;
        st = pnn_checkpoint_config(a.ckpt, &cfg);
        for (int i = 0; st == PNN_OK && i < a.n_sets; i++) st = pnn_cfg_set(cfg, a.sets[i]);
        if (st == PNN_OK) st = pnn_trainer_create(cfg, ".", &a.teacher);
        else if (cfg) pnn_cfg_free(cfg);
        if (st == PNN_OK) st = pnn_trainer_load_checkpoint(a.teacher, a.ckpt, 0);
        if (st != PNN_OK) {
            rc = cli_fail("transfer", pnn_error_prefix(st, "the training device, for distillation: "));
            goto done;
        }
    }
    printf("%-60s %9s%s\n", "device", "test acc",
           a.finetune ? (a.distill ? "   distilled  device calls" : "  fine-tuned  device calls") : "");
    printf("%-60.60s %8.2f%%   (the training device)\n", own.uri, 100 * own.acc);
    for (int i = 0; i < n; i++) {
        st = run_copy(&a, uris[i], &own, &res[i]);
        if (st != PNN_OK) {
            rc = cli_fail("transfer", st);
            goto done;
        }
        printf("%-60.60s %8.2f%%", res[i].uri, 100 * res[i].acc);
        if (a.finetune) printf("  %9.2f%%  %11llu", 100 * res[i].acc_ft, (unsigned long long)res[i].calls);
        printf("\n");
        fflush(stdout);
    }
    double m, sd, mf = NAN, sdf = NAN, calls = 0;
    stats(res, n, 0, &m, &sd);
    for (int i = 0; i < n; i++) calls += (double)res[i].calls / n;
    printf("on the training device %.2f %%; on %d other cop%s %.2f +- %.2f %%: a gap of %.2f points\n", 100 * own.acc,
           n, n == 1 ? "y" : "ies", 100 * m, 100 * sd, 100 * (own.acc - m));
    if (a.finetune) {
        stats(res, n, 1, &mf, &sdf);
        printf("after %lld %s steps on each (%.0f device calls): %.2f +- %.2f %%: a gap of %.2f points\n",
               (long long)a.finetune, a.distill ? "distillation" : "fine-tuning", calls, 100 * mf, 100 * sdf,
               100 * (own.acc - mf));
    }
    if (out && (st = write_json(out, &a, &own, res, n)) != PNN_OK) {
        rc = cli_fail("transfer", st);
        goto done;
    }
    printf("transfer: copies=%d train_device_acc=%.4f mean_acc=%.4f std_acc=%.4f gap=%.4f", n, own.acc, m, sd,
           own.acc - m);
    if (a.finetune)
        printf(" %s=%.4f %s=%.4f calls_per_copy=%.0f", a.distill ? "mean_acc_distilled" : "mean_acc_finetuned", mf,
               a.distill ? "gap_distilled" : "gap_finetuned", own.acc - mf, calls);
    printf("\n");
done:
    for (int i = 0; i < n; i++) free(uris[i]);
    free(uris);
    free(sets);
    free(res);
    pnn_trainer_free(a.teacher);
    return rc;
}
