/* Shared pieces of the `pnn` subcommands: exit codes, errors, configs, progress display. */
#include "cli.h"

#include <stdarg.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int cli_exit_code(pnn_status st) {
    switch (st) {
    case PNN_OK: return EX_OK_;
    case PNN_ERR_INVALID: return EX_USAGE_;
    case PNN_ERR_FORMAT: return EX_DATAERR_;
    case PNN_ERR_NOT_FOUND: return EX_NOINPUT_;
    case PNN_ERR_DEVICE:
    case PNN_ERR_TIMEOUT:
    case PNN_ERR_UNSUPPORTED: return EX_UNAVAILABLE_;
    case PNN_ERR_IO: return EX_IOERR_;
    case PNN_ERR_CONFIG: return EX_CONFIG_;
    case PNN_ERR_INTERRUPTED: return EX_INTERRUPTED_;
    case PNN_ERR_NOMEM:
    case PNN_ERR_CUDA: return EX_SOFTWARE_;
    }
    return EX_SOFTWARE_;
}

int cli_fail(const char *cmd, pnn_status st) {
    fprintf(stderr, "pnn %s: error: %s\n", cmd, pnn_last_error());
    const char *verbose = getenv("PNN_VERBOSE");
    if (verbose && *verbose && strcmp(verbose, "0")) fprintf(stderr, "  (at %s)\n", pnn_error_trail());
    return cli_exit_code(st);
}

int cli_usage_error(const char *cmd, const char *fmt, ...) {
    va_list ap;
    fprintf(stderr, "pnn %s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n(see pnn %s --help)\n", cmd);
    return EX_USAGE_;
}

pnn_status cli_load_config(const char *path, char **sets, int n_sets, pnn_cfg **cfg) {
    PNN_TRY(pnn_cfg_load(path, cfg));
    for (int i = 0; i < n_sets; i++) {
        pnn_status st = pnn_cfg_set(*cfg, sets[i]);
        if (st != PNN_OK) {
            pnn_cfg_free(*cfg);
            *cfg = NULL;
            return st;
        }
    }
    return PNN_OK;
}

static void format_eta(double s, char *buf, size_t size) {
    if (s < 0 || s > 1e7) snprintf(buf, size, "--");
    else if (s >= 3600) snprintf(buf, size, "%dh%02dm", (int)(s / 3600), (int)(s / 60) % 60);
    else snprintf(buf, size, "%dm%02ds", (int)(s / 60), (int)s % 60);
}

typedef struct progress_state {
    double last_print;
    int64_t start_step;
    int started;
} progress_state;

void cli_progress(void *user, const pnn_progress *p) {
    static progress_state ps;
    pnn_trainer *tr = user;
    int tty = isatty(2);
    if (!ps.started) {
        ps.started = 1;
        ps.start_step = p->global_step - 1;
    }
    if (!strcmp(p->phase, "eval")) {
        if (tty) fprintf(stderr, "\r\033[K");
        fprintf(stderr, "epoch %lld/%lld: evaluating on the test set (device, twin)...\n", (long long)p->epoch,
                (long long)p->epochs);
        return;
    }
    if (!strcmp(p->phase, "epoch_done")) {
        char twin[32] = "none";
        if (tr->last_twin.n) snprintf(twin, sizeof twin, "acc %.2f%%", 100 * tr->last_twin.acc);
        fprintf(stderr, "epoch %lld/%lld: train loss %.4f acc %.2f%% | test on device: acc %.2f%% loss %.4f | on twin: %s\n",
                (long long)p->epoch, (long long)p->epochs, p->loss, 100 * p->acc, 100 * tr->last_device.acc,
                tr->last_device.loss, twin);
        return;
    }
    double rate = (p->global_step - ps.start_step) / (p->elapsed_s > 1e-9 ? p->elapsed_s : 1e-9);
    int64_t left = (p->epochs - p->epoch - 1) * p->steps_per_epoch + (p->steps_per_epoch - p->step_in_epoch);
    char eta[32];
    format_eta(left / (rate > 0 ? rate : 1e-9), eta, sizeof eta);
    int last = p->step_in_epoch == p->steps_per_epoch;
    if (tty) {
        if (!last && p->elapsed_s - ps.last_print < 0.1) return;
        ps.last_print = p->elapsed_s;
        int width = 30, filled = (int)(width * (double)p->step_in_epoch / (double)p->steps_per_epoch);
        char bar[64];
        for (int i = 0; i < width; i++) bar[i] = i < filled ? '#' : '.';
        bar[width] = '\0';
        fprintf(stderr, "\r\033[Kepoch %lld/%lld [%s] %lld/%lld loss %.4f acc %.2f%% %.1f step/s ETA %s",
                (long long)p->epoch + 1, (long long)p->epochs, bar, (long long)p->step_in_epoch,
                (long long)p->steps_per_epoch, p->loss, 100 * p->acc, rate, eta);
        if (last) fputc('\n', stderr);
    } else if (last || p->global_step % tr->opt.log_every == 0) {
        fprintf(stderr, "epoch %lld/%lld step %lld/%lld loss %.4f acc %.2f%% %.1f step/s eta %s\n",
                (long long)p->epoch + 1, (long long)p->epochs, (long long)p->step_in_epoch,
                (long long)p->steps_per_epoch, p->loss, 100 * p->acc, rate, eta);
    }
}

void cli_print_final(const pnn_eval_result *dev, const pnn_eval_result *twin, double train_s) {
    /* nan: not evaluated on the twin (a layer without one) */
    printf("final: test_acc_device=%.4f test_acc_twin=%.4f test_loss_device=%.4f "
           "test_acc_device_batchmean=%.4f test_loss_twin=%.4f train_s=%.1f\n",
           dev->acc, twin->n ? twin->acc : NAN, dev->loss, dev->acc_batchmean, twin->n ? twin->loss : NAN, train_s);
    fflush(stdout);
}

