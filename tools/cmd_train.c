/* `pnn train`: train a network from a config, or continue a run. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

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
    "Ctrl-C stops after the current step (a second one at once) and saves the state for --resume\n"
    "(exit 130). A device\n"
    "that stays down (after the retries of `bridge`) ends the run the same way, with exit 69.\n"
    "\n"
    "Config key bridge (how PAT steps use the devices), defaults shown:\n"
    "  bridge: {micro_batch: 0, schedule: pipelined, retries: 3, backoff_ms: 10}\n"
    "  micro_batch  rows per micro-batch (0 = whole batch); micro-batches overlap device and\n"
    "               backend work when pipelined; sequential gives the same parameters bit for bit\n"
    "  retries      further attempts after a device fault, busy reply or timeout (backoff doubles)\n"
    "The end of the run reports each device's busy time and duty cycle; metrics.csv has them per\n"
    "logged window and per epoch (rows train_epoch).\n"
    "\n"
    "Several processes train one model when started by mpirun or srun (docs/cluster.md):\n"
    "  mpirun -np 2 pnn train CONFIG.yaml --out RUN_DIR\n"
    "batch stays the global batch; each rank takes its part. Rank 0 writes RUN_DIR and prints.\n"
    "Config key comm, defaults shown:\n"
    "  comm: {kind: auto, reduce: fast}\n"
    "  kind    auto (MPI when started as one of several ranks), none, mpi, nccl (GPU\n"
    "          gradients all-reduced on the GPUs; needs backend: cuda)\n"
    "  reduce  fast (MPI_Allreduce; each rank draws its own device noise) or exact (shards of\n"
    "          bridge.micro_batch rows, summed in shard order: the same bits for any number of\n"
    "          ranks, also on resume with another number)\n"
    "A physical layer's device may name the rank: device: \"remote:tcp://lab-{rank}:5555\".\n"
    "Progress goes to stderr; the last line on stdout is machine-readable:\n"
    "  final: test_acc_device=... test_acc_twin=... test_loss_device=... train_s=...\n";

static volatile int stop_requested;

/* Where the training time went, per device and on the backend: keeping the hardware busy is
 * what the bridge is for. */
static void print_bridge_summary(const pnn_trainer *tr) {
    const pnn_bridge_stats *b = &tr->bridge_run;
    if (b->wall_s <= 0) return;
    for (int i = 0, d = 0; i < tr->net->n_layers && d < b->n_devices; i++) {
        int copies = pnn_layer_physical_n_copies(tr->net->layers[i]);
        for (int c = 0; c < copies && d < b->n_devices; c++, d++) {
            const pnn_device *dev = pnn_layer_physical_copy(tr->net->layers[i], c);
            char name[96];
            if (copies > 1) snprintf(name, sizeof name, "%s copy %d", tr->net->layers[i]->name, c);
            else snprintf(name, sizeof name, "%s", tr->net->layers[i]->name);
            fprintf(stderr,
                    "pnn train: device %s: busy %.2f s of %.2f s of training steps (duty %.1f%%), %llu calls in them, "
                    "%llu faults, %llu retries\n",
                    name, b->device_busy_s[d], b->wall_s, 100.0 * b->device_busy_s[d] / b->wall_s,
                    (unsigned long long)b->device_calls[d], (unsigned long long)dev->faults,
                    (unsigned long long)dev->retries);
        }
    }
    fprintf(stderr, "pnn train: backend busy %.2f s, waiting on devices %.2f s\n", b->wall_s - b->wait_s, b->wait_s);
}

/* The step in flight finishes (or its waits give up at once: retry backoff, a slow device's
 * latency), the state is saved; a second Ctrl-C stops at once (SA_RESETHAND). */
static void on_interrupt(int sig) {
    (void)sig;
    stop_requested = 1;
    pnn_interrupt_request();
}

/* Ends the run: frees the trainer, waits for the other ranks and releases MPI. rc is the exit
 * code so far; a shutdown that fails (the other ranks never came) makes it non-zero. */
static int finish(pnn_trainer *tr, pnn_comm *comm, int rc) {
    pnn_trainer_free(tr);
    if (pnn_comm_shutdown(comm) != PNN_OK && rc == 0) rc = cli_fail("train", PNN_ERR_IO);
    pnn_comm_free(comm);
    return rc;
}

/* A failure of the run. The trainer agrees on every failure, so all ranks hold the same one
 * and rank 0 reports it; only a rank whose own communication broke ("rank R: MPI_... failed",
 * which the others may never learn) reports it too. */
static int fail_agreed(pnn_trainer *tr, pnn_comm *comm, pnn_status st) {
    char own[32];
    snprintf(own, sizeof own, "rank %d: ", comm->rank);
    int mine = !strncmp(pnn_last_error(), own, strlen(own));
    int rc = comm->rank == 0 || mine ? cli_fail("train", st) : cli_exit_code(st);
    return finish(tr, comm, rc);
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
            /* the methods from their registry, so that a new one appears here by itself */
            printf("\nConfig key method: a name, or {kind: NAME, ...its keys} (docs/architecture.md):\n");
            const pnn_method_i *m;
            for (int i = 0; (m = pnn_method_at(i)); i++) printf("  %-10s %s\n", m->name, m->summary);
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
    if ((out && !out[0]) || (resume && !resume[0])) {
        free(sets);
        return cli_usage_error("train", "%s needs a directory, not an empty string", out ? "--out" : "--resume");
    }
    /* paths are used as given or refused, never cut */
    char config_path[PNN_PATH_MAX + 1], config_dir[PNN_PATH_MAX + 1], run_dir[PNN_PATH_MAX + 1] = "";
    pnn_status st = PNN_OK;
    if (resume) {
        struct stat sb;
        if (stat(resume, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
            free(sets);
            fprintf(stderr, "pnn train: error: run directory '%s' does not exist; nothing to resume\n", resume);
            return EX_NOINPUT_;
        }
        st = pnn_path_format(config_path, sizeof config_path, "%s/config.yaml", resume);
        if (st == PNN_OK) st = pnn_path_format(run_dir, sizeof run_dir, "%s", resume);
    } else {
        st = pnn_path_format(config_path, sizeof config_path, "%s", config);
        if (st == PNN_OK && out) st = pnn_path_format(run_dir, sizeof run_dir, "%s", out);
    }
    if (st != PNN_OK) {
        free(sets);
        return cli_fail("train", st);
    }
    pnn_cfg *cfg = NULL;
    st = pnn_path_dirname(config_path, config_dir, sizeof config_dir);
    if (st == PNN_OK) st = cli_load_config(config_path, sets, n_sets, &cfg);
    free(sets);
    if (st != PNN_OK) return cli_fail("train", st);
    /* how many train together: from the launcher and comm.kind, before anything is printed */
    const char *kind;
    pnn_comm *comm;
    st = pnn_train_comm_kind(cfg, &kind);
    if (st == PNN_OK) st = pnn_comm_init(kind, NULL, NULL, &comm);
    if (st != PNN_OK) {
        pnn_cfg_free(cfg);
        return cli_fail("train", st);
    }
    int rank0 = comm->rank == 0;
    if (!run_dir[0]) {
        /* rank 0's clock names the run; every rank must write to the same place */
        if (rank0) {
            const char *base = strrchr(config, '/') ? strrchr(config, '/') + 1 : config;
            size_t len = strcspn(base, ".");
            char stamp[32];
            time_t now = time(NULL);
            strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", localtime(&now));
            st = pnn_path_format(run_dir, sizeof run_dir, "runs/%.*s-%s", (int)len, base, stamp);
            /* two runs started in the same second get -2, -3, ... rather than a refusal */
            for (int k = 2; st == PNN_OK && k < 1000 && access(run_dir, F_OK) == 0; k++)
                st = pnn_path_format(run_dir, sizeof run_dir, "runs/%.*s-%s-%d", (int)len, base, stamp, k);
        }
        if (st == PNN_OK) st = pnn_comm_bcast(comm, run_dir, sizeof run_dir, 0);
        if (st != PNN_OK) {
            pnn_cfg_free(cfg);
            return finish(NULL, comm, cli_fail("train", st));
        }
    }
    pnn_trainer *tr;
    st = pnn_trainer_create_comm(cfg, config_dir, comm, &tr);
    if (st != PNN_OK) return fail_agreed(NULL, comm, st);
    st = resume ? pnn_trainer_resume(tr, run_dir) : pnn_trainer_open_run(tr, run_dir);
    if (st != PNN_OK) return fail_agreed(tr, comm, st);
    /* a finished run reprints its own result (its checkpoint keeps it), and says how to extend it */
    int finished = tr->epoch >= tr->opt.epochs;
    if (rank0 && resume && finished)
        fprintf(stderr, "pnn train: the run in %s is finished (%lld epochs); its result is below. Train it further "
                        "with --resume %s --set epochs=N\n", run_dir, (long long)tr->epoch, run_dir);
    if (rank0) {
        char ranks[96] = "";
        if (comm->size > 1)
            snprintf(ranks, sizeof ranks, ", %d ranks (%s, reduce %s)", comm->size, pnn_comm_kind_name(comm->kind),
                     tr->opt.reduce == PNN_REDUCE_EXACT ? "exact" : "fast");
        fprintf(stderr, "pnn train: %s, %lld parameters, method %s, %lld train / %lld test samples%s -> %s\n",
                tr->opt.data_set, (long long)pnn_network_param_count(tr->net),
                tr->opt.method->name, (long long)tr->train.n, (long long)tr->test.n,
                ranks, run_dir);
        if (tr->note[0]) fprintf(stderr, "pnn train: note: %s\n", tr->note);
        tr->progress = cli_progress;
        tr->progress_user = tr;
    }
    tr->stop = &stop_requested;
    struct sigaction sa = {0};
    sa.sa_handler = on_interrupt;
    sa.sa_flags = SA_RESETHAND;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    st = pnn_trainer_run(tr);
    if (rank0) print_bridge_summary(tr);
    if (st == PNN_ERR_INTERRUPTED) {
        /* a wait gave up on the stop request: the failed step was undone; keep the one before */
        st = pnn_trainer_save_state(tr);
        if (st != PNN_OK) return fail_agreed(tr, comm, st);
        tr->interrupted = 1;
    }
    if (st == PNN_OK && tr->interrupted) {
        if (rank0)
            fprintf(stderr, "\npnn train: interrupted after step %lld; the state is saved in %s; continue with "
                            "pnn train --resume %s\n",
                    (long long)tr->global_step, run_dir, run_dir);
        return finish(tr, comm, 130);
    }
    if (st != PNN_OK) {
        /* keep what was learned up to the last completed step: every rank learned of the failure
         * in the same step, so all take part in the checkpoint, and rank 0 writes it */
        pnn_status first = st;
        char msg[2048];
        snprintf(msg, sizeof msg, "%s", pnn_last_error());
        pnn_status saved = pnn_trainer_save_state(tr);
        if (rank0) {
            if (saved == PNN_OK)
                fprintf(stderr, "pnn train: saved the state after step %lld in %s/checkpoint.safetensors; continue "
                                "with --resume %s (with --set to point a layer at another device)\n",
                        (long long)tr->global_step, run_dir, run_dir);
            else
                fprintf(stderr, "pnn train: could not save the state after step %lld: %s; %s\n",
                        (long long)tr->global_step, pnn_last_error(),
                        "--resume continues from the last checkpoint written before, or from the start");
        }
        pnn_error_at(first, __FILE__, __LINE__, "%s", msg);
        return fail_agreed(tr, comm, first);
    }
    if (!tr->evaluated) {
        if (rank0 && resume && finished)
            fprintf(stderr, "pnn train: note: this checkpoint predates stored results: the test runs again, with "
                            "the devices' noise where the run left it\n");
        st = pnn_trainer_evaluate(tr, PNN_PASS_EVAL_DEVICE, &tr->last_device);
        if (st == PNN_OK) st = pnn_trainer_evaluate(tr, PNN_PASS_EVAL_TWIN, &tr->last_twin);
        if (st != PNN_OK) return fail_agreed(tr, comm, st);
    }
    if (rank0) cli_print_final(&tr->last_device, &tr->last_twin, tr->train_s);
    return finish(tr, comm, 0);
}
