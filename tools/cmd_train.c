/* `pnn train`: train a network from a config, or continue a run. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "cli.h"

static const char help[] =
    "usage: pnn train CONFIG.yaml [--set key=value]... [--out RUN_DIR]\n"
    "       pnn train --resume RUN_DIR [--set key=value]...\n"
    "\n"
    "Trains the network that CONFIG.yaml describes (data, network, method, optimizer, epochs, seed;\n"
    "see examples/). After each epoch the test set is evaluated on the device and on the twin.\n"
    "\n"
    "  --set key=value  override a config key; dots reach into maps and lists:\n"
    "                   --set method=insilico --set epochs=1 --set network.4.device=sim:oscillator?n=1610\n"
    "  --out RUN_DIR    where the run is kept (default runs/<config name>-<date-time>): config.yaml as\n"
    "                   run, metrics.csv (one row per logged step and per evaluation), and\n"
    "                   checkpoint.safetensors (written atomically after each epoch and every\n"
    "                   checkpoint_every steps)\n"
    "  --resume RUN_DIR continue the run in RUN_DIR from its checkpoint; the result is the same as\n"
    "                   a run that never stopped. --set epochs=N extends it.\n"
    "\n"
    "Ctrl-C stops after the current step and saves the state for --resume (exit 130).\n"
    "Progress goes to stderr; the last line on stdout is machine-readable:\n"
    "  final: test_acc_device=... test_acc_twin=... test_loss_device=... train_s=...\n";

static volatile int stop_requested;

static void on_interrupt(int sig) {
    (void)sig;
    stop_requested = 1;
}

int cmd_train(int argc, char **argv) {
    const char *config = NULL, *out = NULL, *resume = NULL;
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
        if ((!strcmp(a, "--set") || !strcmp(a, "--out") || !strcmp(a, "--resume")) && i + 1 >= argc) {
            free(sets);
            return cli_usage_error("train", "%s needs a value", a);
        }
        if (!strcmp(a, "--set")) sets[n_sets++] = argv[++i];
        else if (!strncmp(a, "--set=", 6)) sets[n_sets++] = argv[i] + 6;
        else if (!strcmp(a, "--out")) out = argv[++i];
        else if (!strcmp(a, "--resume")) resume = argv[++i];
        else if (a[0] == '-' && a[1]) {
            free(sets);
            return cli_usage_error("train", "unknown option '%s'", a);
        } else if (!config) config = a;
        else {
            free(sets);
            return cli_usage_error("train", "unexpected argument '%s'", a);
        }
    }
    if (!config == !resume || (resume && out)) {
        free(sets);
        return cli_usage_error("train", "give either CONFIG.yaml (with optional --out) or --resume RUN_DIR");
    }
    char config_path[1100], config_dir[1024], run_dir[1024];
    if (resume) {
        struct stat sb;
        if (stat(resume, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
            free(sets);
            fprintf(stderr, "pnn train: error: run directory '%s' does not exist; nothing to resume\n", resume);
            return EX_NOINPUT_;
        }
        snprintf(config_path, sizeof config_path, "%s/config.yaml", resume);
        snprintf(run_dir, sizeof run_dir, "%s", resume);
    } else {
        snprintf(config_path, sizeof config_path, "%s", config);
        if (out) {
            snprintf(run_dir, sizeof run_dir, "%s", out);
        } else {
            const char *base = strrchr(config, '/') ? strrchr(config, '/') + 1 : config;
            size_t len = strcspn(base, ".");
            char stamp[32];
            time_t now = time(NULL);
            strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", localtime(&now));
            snprintf(run_dir, sizeof run_dir, "runs/%.*s-%s", (int)len, base, stamp);
        }
    }
    cli_dirname(config_path, config_dir, sizeof config_dir);
    pnn_cfg *cfg;
    pnn_status st = cli_load_config(config_path, sets, n_sets, &cfg);
    free(sets);
    if (st != PNN_OK) return cli_fail("train", st);
    pnn_trainer *tr;
    st = pnn_trainer_create(cfg, config_dir, &tr);
    if (st != PNN_OK) return cli_fail("train", st);
    st = resume ? pnn_trainer_resume(tr, run_dir) : pnn_trainer_open_run(tr, run_dir);
    if (st != PNN_OK) {
        pnn_trainer_free(tr);
        return cli_fail("train", st);
    }
    fprintf(stderr, "pnn train: %s, %lld parameters, method %s, %lld train / %lld test samples -> %s\n",
            tr->opt.data_set, (long long)pnn_network_param_count(tr->net),
            tr->opt.method == PNN_METHOD_PAT ? "pat" : "insilico", (long long)tr->train.n, (long long)tr->test.n,
            run_dir);
    tr->progress = cli_progress;
    tr->progress_user = tr;
    tr->stop = &stop_requested;
    struct sigaction sa = {0};
    sa.sa_handler = on_interrupt;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    st = pnn_trainer_run(tr);
    if (st == PNN_OK && tr->interrupted) {
        fprintf(stderr, "\npnn train: interrupted after step %lld; the state is saved in %s; continue with "
                        "pnn train --resume %s\n",
                (long long)tr->global_step, run_dir, run_dir);
        pnn_trainer_free(tr);
        return 130;
    }
    if (st != PNN_OK) {
        /* keep what was learned up to the last completed step */
        pnn_status first = st;
        char msg[2048];
        snprintf(msg, sizeof msg, "%s", pnn_last_error());
        char path[1100];
        snprintf(path, sizeof path, "%s/checkpoint.safetensors", run_dir);
        if (pnn_trainer_save_checkpoint(tr, path) == PNN_OK)
            fprintf(stderr, "pnn train: saved the state after step %lld in %s; continue with --resume %s\n",
                    (long long)tr->global_step, path, run_dir);
        pnn_error_at(first, __FILE__, __LINE__, "%s", msg);
        pnn_trainer_free(tr);
        return cli_fail("train", first);
    }
    if (!tr->evaluated) {
        st = pnn_trainer_evaluate(tr, PNN_PASS_EVAL_DEVICE, &tr->last_device);
        if (st == PNN_OK) st = pnn_trainer_evaluate(tr, PNN_PASS_EVAL_TWIN, &tr->last_twin);
        if (st != PNN_OK) {
            pnn_trainer_free(tr);
            return cli_fail("train", st);
        }
    }
    cli_print_final(&tr->last_device, &tr->last_twin, tr->train_s);
    pnn_trainer_free(tr);
    return 0;
}
