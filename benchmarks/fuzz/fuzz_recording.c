/* libFuzzer harness: recordings (hwbridge/record.c, docs/architecture.md "Recording"). The
 * input is a recording file, written twice into a private directory (fuzz_tmp.h):
 *  1. a copy is reopened for recording (record:COPY@sim:oscillator?n=4&nt=1&seed=1, the device
 *     the seeds were recorded from), which walks every record, cuts a torn end and rewrites
 *     COPY.idx; one call is then recorded, the copy is closed, and replayed: the new call must
 *     be served back (asked with its own x and theta) with the y it recorded;
 *  2. the original is opened for replay (replay:FILE, x and theta checked), and each call the
 *     recorder indexed in 1 (COPY.idx, three u64 per call: offset, theta record offset, batch)
 *     is asked with the x and theta stored in the file, which it must serve; when the recorder
 *     refused the file, replay:FILE?check=0 is asked a few calls of batch 1.
 * Invariants: every refusal says why; after a reopen and one call the file ends with that call
 * and its index lists it; recorded calls replay; nothing leaks or overflows (ASan, UBSan). */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_tmp.h"
#include "pnn/pnn.h"

#define INNER_URI "sim:oscillator?n=4&nt=1&seed=1"
#define MAX_CALLS 64
#define CALL_HEAD 48 /* record head (24 bytes) + call index, theta id, batch (3 u64) */
#define THETA_HEAD 32 /* record head + theta id */

static char rec_path[1024], rec_idx[1024], rec_idx_tmp[1024], replay_path[1024], replay_idx[1024];
static char record_uri[1200], replay_uri[1200], replay_uri_nocheck[1200];

typedef struct {
    uint64_t offset, theta_offset, batch;
} idx_entry;

static void must_say_why(pnn_status st) {
    if (st != PNN_OK && !pnn_last_error()[0]) __builtin_trap();
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    fuzz_tmp_init("recording");
    fuzz_tmp_path(rec_path, sizeof rec_path, "copy.pnnrec");
    fuzz_tmp_path(rec_idx, sizeof rec_idx, "copy.pnnrec.idx");
    fuzz_tmp_path(rec_idx_tmp, sizeof rec_idx_tmp, "copy.pnnrec.idx.tmp");
    fuzz_tmp_path(replay_path, sizeof replay_path, "input.pnnrec");
    fuzz_tmp_path(replay_idx, sizeof replay_idx, "input.pnnrec.idx");
    snprintf(record_uri, sizeof record_uri, "record:%s@%s", rec_path, INNER_URI);
    snprintf(replay_uri, sizeof replay_uri, "replay:%s", replay_path);
    snprintf(replay_uri_nocheck, sizeof replay_uri_nocheck, "replay:%s?check=0", replay_path);
    return 0;
}

/* One call through dev: x [batch, x_dim] and theta are host memory (the CPU backend's). */
static pnn_status call(pnn_device *dev, const float *x, int64_t batch, const float *theta, float *y) {
    const pnn_device_info *info = pnn_device_info_get(dev);
    pnn_tensor xt, yt;
    int64_t xs[2] = {batch, info->x_dim}, ys[2] = {batch, info->y_dim};
    if (pnn_tensor_view(&xt, pnn_backend_cpu(), (float *)x, 2, xs) != PNN_OK ||
        pnn_tensor_view(&yt, pnn_backend_cpu(), y, 2, ys) != PNN_OK)
        __builtin_trap();
    pnn_error_clear();
    pnn_status st = pnn_device_forward(dev, &xt, theta, &yt);
    must_say_why(st);
    return st;
}

/* Step 1: reopen a copy for recording, add one call, replay that call. Returns the calls the
 * recorder indexed before it (malloc'd, *n of them) or NULL when it refused the file. */
static idx_entry *record_and_replay(const uint8_t *data, size_t size, uint64_t *n) {
    fuzz_write_file(rec_path, data, size);
    unlink(rec_idx);
    unlink(rec_idx_tmp);
    pnn_device *dev;
    pnn_error_clear();
    pnn_status st = pnn_record_open(record_uri, pnn_backend_cpu(), &dev);
    must_say_why(st);
    if (st != PNN_OK) return NULL;
    const pnn_device_info *info = pnn_device_info_get(dev);
    int64_t xd = info->x_dim, yd = info->y_dim, td = info->theta_dim;
    size_t idx_size = 0;
    idx_entry *before = fuzz_read_file(rec_idx, &idx_size);
    if (!before || idx_size % sizeof *before) __builtin_trap(); /* the index is rewritten on reopening */
    *n = idx_size / sizeof *before;

    float x[4] = {0.1f, -0.2f, 0.3f, -0.4f}, y[4], y_again[4], theta[64];
    if (xd != 4 || yd != 4 || td > 64) __builtin_trap(); /* the oscillator of INNER_URI */
    for (int64_t i = 0; i < td; i++) theta[i] = 0.01f * (float)(i % 7) - 0.02f;
    if (call(dev, x, 1, theta, y) != PNN_OK) __builtin_trap(); /* a simulator without faults */
    pnn_device_close(dev);

    /* the file now ends with that call, and its index lists it last */
    size_t rec_size = 0, after_size = 0;
    void *rec = fuzz_read_file(rec_path, &rec_size);
    idx_entry *after = fuzz_read_file(rec_idx, &after_size);
    if (!rec || !after || after_size != (*n + 1) * sizeof *after) __builtin_trap();
    idx_entry last = after[*n];
    if (last.batch != 1 || last.offset + CALL_HEAD + (uint64_t)(xd + yd) * 4 != rec_size) __builtin_trap();
    free(rec);
    free(after);

    /* and it replays */
    pnn_error_clear();
    char uri[1200];
    snprintf(uri, sizeof uri, "replay:%s", rec_path);
    if (pnn_replay_open(uri, pnn_backend_cpu(), &dev) != PNN_OK) __builtin_trap();
    dev->calls = *n;
    if (call(dev, x, 1, theta, y_again) != PNN_OK || memcmp(y, y_again, sizeof y)) __builtin_trap();
    pnn_device_close(dev);
    return before;
}

/* Step 2: replay the input itself, asking each call the recorder indexed with its own x and
 * theta (read from the input at the offsets of the index). */
static void replay_input(const uint8_t *data, size_t size, const idx_entry *calls, uint64_t n) {
    fuzz_write_file(replay_path, data, size);
    unlink(replay_idx);
    pnn_device *dev;
    pnn_error_clear();
    pnn_status st = pnn_replay_open(calls ? replay_uri : replay_uri_nocheck, pnn_backend_cpu(), &dev);
    must_say_why(st);
    if (st != PNN_OK) return;
    const pnn_device_info *info = pnn_device_info_get(dev);
    int64_t xd = info->x_dim, yd = info->y_dim, td = info->theta_dim;
    if (!calls) { /* nothing is known about the calls: ask a few, wrongly sized or not */
        float *buf = xd <= 4096 && yd <= 4096 && td <= 4096 ? calloc((size_t)(xd + yd + td), sizeof(float)) : NULL;
        for (int k = 0; buf && k < 4; k++)
            if (call(dev, buf, 1, buf + xd + yd, buf + xd) != PNN_OK) break;
        free(buf);
        pnn_device_close(dev);
        return;
    }
    float *theta = malloc((size_t)td * sizeof(float));
    for (uint64_t k = 0; theta && k < n && k < MAX_CALLS; k++) {
        idx_entry e = calls[k];
        uint64_t xbytes = e.batch * (uint64_t)xd * 4;
        /* the recorder accepted these calls: they lie inside the file */
        if (e.batch < 1 || e.offset + CALL_HEAD + xbytes > size || e.theta_offset + THETA_HEAD + (uint64_t)td * 4 > size)
            __builtin_trap();
        float *x = malloc(xbytes), *y = malloc(e.batch * (uint64_t)yd * 4);
        if (!x || !y) __builtin_trap();
        memcpy(x, data + e.offset + CALL_HEAD, xbytes);
        memcpy(theta, data + e.theta_offset + THETA_HEAD, (size_t)td * 4);
        /* what the device layer refuses whatever the device: a batch over the header's
         * max_batch, NaN or Inf in y */
        int servable = e.batch <= (uint64_t)info->max_batch;
        if (servable && e.offset + CALL_HEAD + xbytes + e.batch * (uint64_t)yd * 4 <= size) {
            memcpy(y, data + e.offset + CALL_HEAD + xbytes, e.batch * (uint64_t)yd * 4);
            for (uint64_t i = 0; i < e.batch * (uint64_t)yd; i++) servable &= isfinite(y[i]) != 0;
        }
        st = call(dev, x, (int64_t)e.batch, theta, y);
        free(x);
        free(y);
        if (st != PNN_OK && servable) __builtin_trap(); /* a call the recorder kept, asked as recorded */
        if (st != PNN_OK) break;
    }
    free(theta);
    pnn_device_close(dev);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    uint64_t n = 0;
    idx_entry *calls = record_and_replay(data, size, &n);
    replay_input(data, size, calls, n);
    free(calls);
    unlink(rec_path);
    unlink(rec_idx);
    unlink(replay_path);
    pnn_error_clear();
    return 0;
}
