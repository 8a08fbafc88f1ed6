/* `pnn eval`: test a trained network, on the device it was trained with or another one. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const char help[] =
    "usage: pnn eval CHECKPOINT [--device URI | --device LAYER=URI]... [--set key=value]...\n"
    "                [--trust-checkpoint]\n"
    "\n"
    "Evaluates the network stored in CHECKPOINT (a run's checkpoint.safetensors) on its test set,\n"
    "on the device and on the twin, and prints the final line:\n"
    "  final: test_acc_device=... test_acc_twin=... test_loss_device=... train_s=...\n"
    "\n"
    "  --device URI        run the network's physical layer on another device (e.g. a second copy of\n"
    "                      the hardware: sim:oscillator?n=100&seed=8); with several physical layers,\n"
    "                      name the layer: --device osc2=sim:oscillator?n=1610&seed=8\n"
    "  --set key=value     override a config key (e.g. data.limit_test=1000, data.path=DIR)\n"
    "  --trust-checkpoint  open the devices and files the checkpoint's own config names\n"
    "\n"
    "A checkpoint is data that anyone may have made, so eval opens by itself only simulated devices\n"
    "(sim:) and the data set's default files. A device that is a server, a recording or a replay,\n"
    "and any other file the checkpoint names, must be given here (--device, --set) or allowed with\n"
    "--trust-checkpoint (docs/security.md).\n";

int cmd_eval(int argc, char **argv) {
    const char *ckpt = NULL;
    char **sets = calloc((size_t)argc, sizeof *sets), **devices = calloc((size_t)argc, sizeof *devices);
    /* the config keys given here: a checkpoint's own values of them are never used */
    char (*given)[64] = calloc((size_t)argc, sizeof *given);
    const char **given_keys = calloc((size_t)argc, sizeof *given_keys);
    int n_sets = 0, n_devices = 0, n_given = 0, rc = 0, trust = 0;
    if (!sets || !devices || !given || !given_keys) {
        free(sets), free(devices), free(given), free(given_keys);
        return EX_SOFTWARE_;
    }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(help, stdout);
            goto done;
        }
        if ((!strcmp(a, "--set") || !strcmp(a, "--device")) && i + 1 >= argc) {
            rc = cli_usage_error("eval", "%s needs a value", a);
            goto done;
        }
        if (!strcmp(a, "--set")) sets[n_sets++] = argv[++i];
        else if (!strcmp(a, "--device")) devices[n_devices++] = argv[++i];
        else if (!strcmp(a, "--trust-checkpoint")) trust = 1;
        else if (a[0] == '-' || ckpt) {
            rc = cli_usage_error("eval", "unexpected argument '%s'", a);
            goto done;
        } else ckpt = a;
    }
    if (!ckpt) {
        rc = cli_usage_error("eval", "give the CHECKPOINT to evaluate");
        goto done;
    }
    pnn_cfg *cfg = NULL;
    pnn_status st = pnn_checkpoint_config(ckpt, &cfg);
    for (int i = 0; st == PNN_OK && i < n_sets; i++) {
        st = pnn_cfg_set(cfg, sets[i]);
        snprintf(given[n_given], sizeof given[0], "%.*s", (int)strcspn(sets[i], "="), sets[i]);
        given_keys[n_given] = given[n_given];
        n_given++;
    }
    for (int i = 0; st == PNN_OK && i < n_devices; i++) {
        char name[64];
        const char *d = devices[i], *eq = strchr(d, '='), *colon = strchr(d, ':');
        /* LAYER=URI when '=' comes before the scheme's ':' */
        if (eq && (!colon || eq < colon) && (size_t)(eq - d) < sizeof name) {
            snprintf(name, sizeof name, "%.*s", (int)(eq - d), d);
            st = cli_set_device(cfg, name, eq + 1, given[n_given], sizeof given[0]);
        } else {
            st = cli_set_device(cfg, NULL, d, given[n_given], sizeof given[0]);
        }
        given_keys[n_given] = given[n_given];
        n_given++;
    }
    char untrusted[1024];
    if (st == PNN_OK && !trust && pnn_checkpoint_untrusted(cfg, given_keys, n_given, untrusted, sizeof untrusted))
        st = PNN_ERROR(PNN_ERR_INVALID,
                       "the config inside %s names %s. eval does not open servers, recordings or files that a "
                       "checkpoint names (anyone may have made it): give them yourself with --device LAYER=URI or "
                       "--set KEY=VALUE, or pass --trust-checkpoint if you made this checkpoint",
                       ckpt, untrusted);
    if (st != PNN_OK) {
        if (cfg) pnn_cfg_free(cfg);
        rc = cli_fail("eval", st);
        goto done;
    }
    pnn_trainer *tr;
    st = pnn_trainer_create(cfg, ".", &tr);
    if (st == PNN_OK) {
        st = pnn_trainer_load_checkpoint(tr, ckpt, 0);
        if (st == PNN_OK) st = pnn_trainer_evaluate(tr, PNN_PASS_EVAL_DEVICE, &tr->last_device);
        if (st == PNN_OK) st = pnn_trainer_evaluate(tr, PNN_PASS_EVAL_TWIN, &tr->last_twin);
        if (st == PNN_OK) cli_print_final(&tr->last_device, &tr->last_twin, 0.0);
        pnn_trainer_free(tr);
    }
    if (st != PNN_OK) rc = cli_fail("eval", st);
done:
    free(sets);
    free(devices);
    free(given);
    free(given_keys);
    return rc;
}
