/* What the subcommands of the `pnn` program share: exit codes, error printing, --set lists. */
#ifndef PNN_TOOLS_CLI_H
#define PNN_TOOLS_CLI_H

#include "pnn/pnn.h"

/* sysexits.h codes, as DESIGN.md asks */
enum { EX_OK_ = 0, EX_USAGE_ = 64, EX_DATAERR_ = 65, EX_NOINPUT_ = 66, EX_UNAVAILABLE_ = 69,
       EX_SOFTWARE_ = 70, EX_IOERR_ = 74, EX_CONFIG_ = 78, EX_INTERRUPTED_ = 130 };

/* The sysexits code of a status (what cli_fail returns), without printing anything. */
int cli_exit_code(pnn_status st);
/* Prints "pnn CMD: error: <message>" (and the trail with PNN_VERBOSE=1); returns the exit code. */
int cli_fail(const char *cmd, pnn_status st);
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Loads a config file and applies the --set assignments in order. */
pnn_status cli_load_config(const char *path, char **sets, int n_sets, pnn_cfg **cfg);
/* Progress on stderr: a bar with rate and ETA on a terminal, plain lines otherwise. */
void cli_progress(void *user, const pnn_progress *p);
/* Prints the final machine-readable line of a run. */
void cli_print_final(const pnn_eval_result *dev, const pnn_eval_result *twin, double train_s);

/* Points the physical layer called name (or the only one, when name is NULL) of cfg's network at
 * uri; key gets the config key set ("network.K.device"). */
int cmd_train(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_bench_suite(int argc, char **argv); /* pnn bench --suite (tools/cmd_bench_suite.c) */
int cmd_serve(int argc, char **argv);
int cmd_keygen(int argc, char **argv);
int cmd_systems(int argc, char **argv);
int cmd_twin(int argc, char **argv);
int cmd_transfer(int argc, char **argv);
int cmd_compare(int argc, char **argv);

#endif
