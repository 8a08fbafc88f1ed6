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
    const char **sets = calloc((size_t)argc, sizeof *sets), **devices = calloc((size_t)argc, sizeof *devices);
    int n_sets = 0, n_devices = 0, rc = 0, trust = 0;
    if (!sets || !devices) {
        free(sets), free(devices);
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
    pnn_eval_result dev, twin;
    pnn_status st = pnn_evaluate_checkpoint(ckpt, sets, n_sets, devices, n_devices, trust, &dev, &twin);
    if (st == PNN_OK) cli_print_final(&dev, &twin, 0.0);
    else rc = cli_fail("eval", st);
done:
    free(sets);
    free(devices);
    return rc;
}
