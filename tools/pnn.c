/* The `pnn` program: dispatches to its subcommands. */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static const char usage[] =
    "pnn " PNN_VERSION ": train physical neural networks with physics-aware training\n"
    "\n"
    "usage: pnn COMMAND [ARGS]\n"
    "\n"
    "commands:\n"
    "  train CONFIG.yaml [--set key=value]... [--out RUN_DIR]   train a network\n"
    "  train --resume RUN_DIR [--set key=value]...              continue a run from its checkpoint\n"
    "  eval CHECKPOINT [--device URI]                           test a trained network on a device\n"
    "  bench CONFIG.yaml [--steps N]                            time training steps\n"
    "  bench --suite [--quick] [--out DIR]                      the benchmark suite and its report\n"
    "  serve DEVICE_URI [--bind ENDPOINT] [--token T]...        serve a device to remote: clients\n"
    "  keygen FILE                                              make a CURVE key pair for serve/remote:\n"
    "  systems [NAME]                                           the physical systems sim: devices simulate\n"
    "  twin fit DEVICE_URI --out FILE                           fit a learned twin to a device or recording\n"
    "  transfer CHECKPOINT --devices URI...                     a trained network on other copies of its device\n"
    "  compare CONFIG.yaml [--methods M,...] [--seeds N]        training methods side by side, by device passes\n"
    "\n"
    "`pnn COMMAND --help` explains each. Examples: examples/*.yaml; docs/architecture.md.\n"
    "Exit codes: 0 ok, 64 usage, 65 bad data, 66 missing input, 69 device unavailable,\n"
    "70 internal, 74 I/O, 78 bad config, 130 interrupted. PNN_VERBOSE=1 adds where an error was raised.\n";

int main(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        fputs(usage, argc < 2 ? stderr : stdout);
        return argc < 2 ? EX_USAGE_ : 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("pnn %s\n", PNN_VERSION);
        return 0;
    }
    if (!strcmp(argv[1], "train")) return cmd_train(argc - 1, argv + 1);
    if (!strcmp(argv[1], "eval")) return cmd_eval(argc - 1, argv + 1);
    if (!strcmp(argv[1], "bench")) return cmd_bench(argc - 1, argv + 1);
    if (!strcmp(argv[1], "serve")) return cmd_serve(argc - 1, argv + 1);
    if (!strcmp(argv[1], "keygen")) return cmd_keygen(argc - 1, argv + 1);
    if (!strcmp(argv[1], "systems")) return cmd_systems(argc - 1, argv + 1);
    if (!strcmp(argv[1], "twin")) return cmd_twin(argc - 1, argv + 1);
    if (!strcmp(argv[1], "transfer")) return cmd_transfer(argc - 1, argv + 1);
    if (!strcmp(argv[1], "compare")) return cmd_compare(argc - 1, argv + 1);
    fprintf(stderr, "pnn: unknown command '%s'; commands: train, eval, bench, serve, keygen, systems, twin, transfer, compare (see pnn --help)\n",
            argv[1]);
    return EX_USAGE_;
}
