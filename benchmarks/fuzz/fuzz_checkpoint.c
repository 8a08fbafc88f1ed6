/* libFuzzer harness: checkpoints. The input is written to a file (fuzz_tmp.h) and read as
 * safetensors (host/safetensors.c: pnn_safetensors_read, then every entry, name lookup and
 * metadata key), as a checkpoint's embedded config (pnn_checkpoint_config), and loaded in full
 * (parameters, optimizer state, counters) into a trainer made once from fuzz-net.yaml
 * (pnn_trainer_load_checkpoint), as `pnn train --resume` does.
 * Invariants: every refusal says why; an accepted file's entries are sorted by unique name,
 * found by that name, hold prod(shape) finite floats that fit in the file; nothing leaks or
 * overflows (ASan, UBSan). */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_tmp.h"
#include "pnn/pnn.h"

#ifndef FUZZ_NET_CONFIG
#error "compile with -DFUZZ_NET_CONFIG=\"/path/to/benchmarks/fuzz/fuzz-net.yaml\" (run.sh does)"
#endif

static pnn_trainer *trainer;
static char path[1024];

static const char *const meta_keys[] = {"format", "config", "epoch", "step_in_epoch", "global_step",
                                        "optimizer_steps", "train_s", "counters", "comm_size", "counters_rank1",
                                        "", "__metadata__"};

static void must_say_why(pnn_status st) {
    if (st != PNN_OK && !pnn_last_error()[0]) __builtin_trap();
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    fuzz_tmp_init("checkpoint");
    fuzz_tmp_path(path, sizeof path, "checkpoint.safetensors");
    pnn_cfg *cfg;
    char dir[1024];
    snprintf(dir, sizeof dir, "%s", FUZZ_NET_CONFIG);
    *strrchr(dir, '/') = '\0';
    if (pnn_cfg_load(FUZZ_NET_CONFIG, &cfg) != PNN_OK || pnn_trainer_create(cfg, dir, &trainer) != PNN_OK) {
        fprintf(stderr, "fuzz_checkpoint: cannot make the trainer: %s\n", pnn_last_error());
        abort();
    }
    return 0;
}

/* Elements of a shape, or -1 when the product does not fit in int64 (no entry can have that
 * many once any dimension is 0; otherwise the reader must have refused it). */
static int64_t shape_count(const pnn_st_entry *e) {
    int64_t n = 1;
    for (int d = 0; d < e->ndim; d++)
        if (e->shape[d] == 0) return 0;
    for (int d = 0; d < e->ndim; d++)
        if (__builtin_mul_overflow(n, e->shape[d], &n)) return -1;
    return n;
}

static void check_tensors(const pnn_safetensors *st, size_t file_size) {
    int n = pnn_safetensors_count(st);
    if (n < 0 || pnn_safetensors_entry(st, n) || pnn_safetensors_entry(st, -1)) __builtin_trap();
    for (int i = 0; i < n; i++) {
        const pnn_st_entry *e = pnn_safetensors_entry(st, i);
        if (!e || !e->name || e->ndim < 0 || e->ndim > 4) __builtin_trap();
        if (i > 0 && strcmp(pnn_safetensors_entry(st, i - 1)->name, e->name) >= 0) __builtin_trap();
        if (pnn_safetensors_find(st, e->name) != e) __builtin_trap();
        int64_t count = shape_count(e);
        if (count < 0 || (uint64_t)count > file_size / 4 || (count && !e->data)) __builtin_trap();
        for (int64_t k = 0; k < count; k++)
            if (!isfinite(e->data[k])) __builtin_trap();
    }
    if (pnn_safetensors_find(st, "no such tensor") || pnn_safetensors_find(st, NULL)) __builtin_trap();
    for (size_t k = 0; k < sizeof meta_keys / sizeof meta_keys[0]; k++) {
        const char *v = pnn_safetensors_meta(st, meta_keys[k]);
        if (v) (void)strlen(v);
    }
    if (pnn_safetensors_meta(st, NULL)) __builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_write_file(path, data, size);

    pnn_safetensors *st = NULL;
    pnn_error_clear();
    pnn_status s = pnn_safetensors_read(path, &st);
    must_say_why(s);
    if ((s == PNN_OK) != (st != NULL)) __builtin_trap();
    if (st) check_tensors(st, size);
    pnn_safetensors_free(st);

    pnn_cfg *cfg = NULL;
    pnn_error_clear();
    s = pnn_checkpoint_config(path, &cfg);
    must_say_why(s);
    if ((s == PNN_OK) != (cfg != NULL)) __builtin_trap();
    if (cfg) {
        char *yaml = pnn_cfg_to_yaml(cfg);
        if (!yaml) __builtin_trap();
        free(yaml);
        pnn_cfg_free(cfg);
    }

    pnn_error_clear();
    must_say_why(pnn_trainer_load_checkpoint(trainer, path, 1));
    pnn_error_clear();
    return 0;
}
