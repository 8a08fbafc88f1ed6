/* `pnn systems`: the physical systems a sim: device URI can name, with their keys. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "pnn/system.h"

static const char help[] =
    "usage: pnn systems [NAME]\n"
    "\n"
    "Lists the physical systems pnn simulates and has an analytic twin of (PHYSICS.md), with each\n"
    "one's URI keys and their defaults; NAME shows one. A device URI names one as\n"
    "sim:NAME?key=value&key=value, e.g. sim:oscillator?n=100&seed=7. Every sim: device also takes\n"
    "the keys of a slow, fallible instrument:\n  " PNN_SIM_KEYS "\n";

static void print_system(const pnn_system *s) {
    printf("%-11s %s\n            keys: %s\n", s->name, s->summary, s->keys);
}

int cmd_systems(int argc, char **argv) {
    if (argc > 1 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        fputs(help, stdout);
        return 0;
    }
    if (argc > 2) return cli_usage_error("systems", "give at most one system name");
    if (argc == 2) {
        const pnn_system *s;
        pnn_status st = pnn_system_lookup(argv[1], argv[1], &s);
        if (st != PNN_OK) return cli_fail("systems", st);
        print_system(s);
        return 0;
    }
    for (int i = 0; i < pnn_system_count(); i++) print_system(pnn_system_at(i));
    printf("every sim: device also takes: %s\n", PNN_SIM_KEYS);
    return 0;
}
