/* Recordings that are not what they should be: a byte flipped anywhere, a file cut at any byte,
 * an index that lies, a FIFO or a directory in the file's place, crafted headers and records,
 * paths longer than a fixed buffer, another system or a second writer continuing a recording,
 * a disk that fills up. Only a torn end is ever cut; anything else fails with a message that
 * names the place, and leaves the file as it was. */
#include <check.h>
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include "pnn/pnn.h"
#include "tests/testutil.h"

enum { N = 5, ROWS = 2, THETA = N * N + N, CALL_BYTES = 24 + 24 + ROWS * 2 * N * 4 };
#define INNER "sim:oscillator?n=5&seed=3"

static const pnn_backend *be;

/* Files go to $TMPDIR, else to tmpfs (/dev/shm) where there is one: the cases here flush a few
 * hundred times, which on a busy disk takes seconds and tests nothing more. */
static void tmp_path(char *buf, size_t cap, const char *name) {
    const char *dir = getenv("TMPDIR");
    if (!dir) dir = access("/dev/shm", W_OK | X_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(buf, cap, "%s/pnn-record-%ld-%s", dir, (long)getpid(), name);
}

static void remove_recording(const char *file) {
    char idx[8192];
    snprintf(idx, sizeof idx, "%s.idx", file);
    unlink(file), unlink(idx);
}

static unsigned char *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot read %s", path);
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    rewind(f);
    unsigned char *buf = malloc(*n + 1);
    ck_assert_uint_eq(fread(buf, 1, *n, f), *n);
    fclose(f);
    return buf;
}

static void spit(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    ck_assert_msg(f != NULL, "cannot write %s", path);
    ck_assert_uint_eq(fwrite(data, 1, n, f), n);
    fclose(f);
}

/* Field (0 offset, 1 theta offset, 2 batch) of entry k of an index file's bytes. */
static uint64_t idx_field(const unsigned char *idx, int k, int field) {
    uint64_t v;
    memcpy(&v, idx + (k * 3 + field) * 8, 8);
    return v;
}

static pnn_tensor matrix(int64_t rows, int64_t cols, const float *host) {
    pnn_tensor t = {0};
    ck_assert_int_eq(pnn_tensor_init2(&t, be, rows, cols), PNN_OK);
    if (host) pnn_tensor_from_host(&t, host, rows * cols);
    return t;
}

/* Call k of every recording here: x and theta drawn from k (theta changes every other call). */
static pnn_status call_k(pnn_device *dev, uint64_t k, float *y) {
    float x[ROWS * N], theta[THETA];
    pnn_test_uniform(x, ROWS * N, -1, 1, 100 + k, 7);
    pnn_test_uniform(theta, THETA, -0.3f, 0.3f, 200 + k / 2, 7);
    pnn_tensor tx = matrix(ROWS, N, x), ty = matrix(ROWS, N, NULL), th = matrix(1, THETA, theta);
    pnn_status st = pnn_device_forward(dev, &tx, th.data, &ty);
    if (st == PNN_OK && y) pnn_tensor_to_host(&ty, y, ROWS * N);
    pnn_tensor_free(&tx), pnn_tensor_free(&ty), pnn_tensor_free(&th);
    return st;
}

static pnn_status open_record(const char *file, const char *inner, pnn_device **dev) {
    char uri[8192];
    snprintf(uri, sizeof uri, "record:%s@%s", file, inner);
    return pnn_device_open(uri, be, dev);
}

/* Records calls first .. first + n - 1 into file (continuing it when it exists); y may be NULL. */
static void record(const char *file, uint64_t first, uint64_t n, float *y) {
    pnn_device *dev;
    ck_assert_msg(open_record(file, INNER, &dev) == PNN_OK, "%s", pnn_last_error());
    dev->calls = first; /* as a resumed run restores it */
    for (uint64_t k = 0; k < n; k++)
        ck_assert_msg(call_k(dev, first + k, y ? y + k * ROWS * N : NULL) == PNN_OK, "%s", pnn_last_error());
    pnn_device_close(dev);
}

/* Replays up to n calls: the status of the open or of the first call that fails; *served gets
 * how many were served (their y in y). */
static pnn_status replay(const char *file, uint64_t n, float *y, uint64_t *served) {
    char uri[8192];
    snprintf(uri, sizeof uri, "replay:%s", file);
    pnn_device *dev;
    *served = 0;
    pnn_status st = pnn_device_open(uri, be, &dev);
    while (st == PNN_OK && *served < n)
        if ((st = call_k(dev, *served, y + *served * ROWS * N)) == PNN_OK) ++*served;
    if (dev) pnn_device_close(dev);
    return st;
}

/* The recording serves exactly n calls, whose y are want. */
static void assert_replays(const char *file, uint64_t n, const float *want) {
    float *y = calloc((n + 1) * ROWS * N, sizeof(float));
    uint64_t served;
    ck_assert_msg(replay(file, n, y, &served) == PNN_OK, "%s", pnn_last_error());
    ck_assert_int_eq(memcmp(y, want, n * ROWS * N * sizeof(float)), 0);
    ck_assert_int_eq(replay(file, n + 1, y, &served), PNN_ERR_INVALID);
    char holds[64];
    snprintf(holds, sizeof holds, "holds %llu calls", (unsigned long long)n);
    ck_assert_msg(strstr(pnn_last_error(), holds), "%s", pnn_last_error());
    free(y);
}

/* The case: one flipped byte in the middle made reopening cut everything after it. Now
 * reopening and replay fail naming the damaged record, and the file stays as it was. */
START_TEST(a_flipped_byte_in_the_middle_is_an_error_not_a_cut) {
    char file[512], idx[600];
    tmp_path(file, sizeof file, "flip.pnnrec");
    snprintf(idx, sizeof idx, "%s.idx", file);
    remove_recording(file);
    float y[12 * ROWS * N], got[12 * ROWS * N];
    record(file, 0, 12, y);
    size_t n, n_idx;
    unsigned char *orig = slurp(file, &n), *orig_idx = slurp(idx, &n_idx), *buf = malloc(n);
    ck_assert_uint_eq(n_idx, 12 * 24);
    uint64_t call = idx_field(orig_idx, 6, 0), theta = idx_field(orig_idx, 6, 1);
    ck_assert_uint_eq(theta + 24 + 8 + THETA * 4, call); /* call 7 has a new theta */
    struct {
        uint64_t at, record;
    } flips[] = {
        {call + 24 + 30, call},   /* x of call 7: its checksum fails */
        {call + 1, call},         /* its tag */
        {call + 13, call},        /* its length, now past the end of the file */
        {theta + 40, theta},      /* its theta */
        {call - 1, theta},        /* the last byte of its theta */
    };
    for (size_t i = 0; i < sizeof flips / sizeof *flips; i++) {
        memcpy(buf, orig, n);
        buf[flips[i].at] ^= 0x10;
        spit(file, buf, n);
        spit(idx, orig_idx, n_idx);
        char where[64];
        snprintf(where, sizeof where, "byte %llu", (unsigned long long)flips[i].record);
        pnn_device *dev;
        ck_assert_int_eq(open_record(file, INNER, &dev), PNN_ERR_FORMAT);
        ck_assert_msg(strstr(pnn_last_error(), where), "flip %zu: %s", i, pnn_last_error());
        size_t n_after, n_idx_after;
        unsigned char *after = slurp(file, &n_after), *idx_after = slurp(idx, &n_idx_after);
        ck_assert_uint_eq(n_after, n);
        ck_assert_int_eq(memcmp(after, buf, n), 0);
        ck_assert_uint_eq(n_idx_after, n_idx);
        ck_assert_int_eq(memcmp(idx_after, orig_idx, n_idx), 0);
        free(after), free(idx_after);
        /* replay stops at the same record, when it opens or when it reaches it */
        uint64_t served;
        ck_assert_int_eq(replay(file, 12, got, &served), PNN_ERR_FORMAT);
        ck_assert_msg(strstr(pnn_last_error(), where), "flip %zu: %s", i, pnn_last_error());
        ck_assert_uint_le(served, 6);
        ck_assert_int_eq(memcmp(got, y, served * ROWS * N * sizeof(float)), 0);
    }
    free(orig), free(orig_idx), free(buf);
    remove_recording(file);
}
END_TEST

/* A single-bit flip anywhere in a recording: reopening either fails and leaves the file as it
 * was, or keeps every call; only a flip in the last record, which nothing valid follows and so
 * cannot be told from a torn write, loses that record (every 8th byte there: each cut costs an
 * fsync, and cutting is the next test's). */
START_TEST(no_bit_flip_anywhere_loses_good_calls) {
    char file[512], idx[600];
    tmp_path(file, sizeof file, "flips.pnnrec");
    snprintf(idx, sizeof idx, "%s.idx", file);
    remove_recording(file);
    record(file, 0, 4, NULL);
    size_t n, n_idx;
    unsigned char *orig = slurp(file, &n), *orig_idx = slurp(idx, &n_idx), *buf = malloc(n);
    uint64_t last = idx_field(orig_idx, 3, 0);
    for (size_t at = 0; at < n; at += at < last ? 1 : 8) {
        memcpy(buf, orig, n);
        buf[at] ^= (unsigned char)(1u << (at % 8));
        spit(file, buf, n);
        pnn_device *dev;
        pnn_status st = open_record(file, INNER, &dev);
        size_t n_after, n_idx_after;
        unsigned char *after = slurp(file, &n_after), *idx_after = slurp(idx, &n_idx_after);
        if (at >= last) {
            ck_assert_msg(st == PNN_OK && n_after == last && n_idx_after == 3 * 24,
                          "byte %zu (last record): %zu bytes kept (%s)", at, n_after, pnn_last_error());
        } else if (st != PNN_OK) {
            ck_assert_msg(n_after == n && !memcmp(after, buf, n), "byte %zu: failed (%s) but changed the file", at,
                          pnn_last_error());
        } else {
            ck_assert_msg(n_after == n && n_idx_after == 4 * 24, "byte %zu: reopened with %zu calls", at,
                          n_idx_after / 24);
        }
        if (st == PNN_OK) pnn_device_close(dev);
        free(after), free(idx_after);
    }
    free(orig), free(orig_idx), free(buf);
    remove_recording(file);
}
END_TEST

/* A crash mid-write leaves a torn last record. Replay of the file cut at any byte serves exactly
 * the whole calls before the cut, whatever the index says; reopening for recording, cut in each
 * part of the last three records (head, call fields, payload), cuts exactly the torn one and
 * the recording goes on. */
START_TEST(a_torn_end_is_cut_at_any_byte_and_recording_continues) {
    char file[512], idx[600];
    tmp_path(file, sizeof file, "torn.pnnrec");
    snprintf(idx, sizeof idx, "%s.idx", file);
    remove_recording(file);
    float y[4 * ROWS * N], got[5 * ROWS * N];
    record(file, 0, 4, y);
    size_t n, n_idx;
    unsigned char *orig = slurp(file, &n), *orig_idx = slurp(idx, &n_idx);
    /* the records: theta, call 1, call 2, theta2, call 3, call 4 */
    uint64_t theta2 = idx_field(orig_idx, 2, 1), data_start = idx_field(orig_idx, 0, 1);
    uint64_t ends[] = {theta2, idx_field(orig_idx, 2, 0), idx_field(orig_idx, 3, 0), n};
    for (int i = 0; i < 3 * 7; i++) {
        uint64_t steps[] = {0, 1, 23, 24, 31, 47, 100}, cut = ends[i / 7] + steps[i % 7];
        if (cut >= ends[i / 7 + 1]) continue;
        spit(file, orig, cut);
        spit(idx, orig_idx, n_idx); /* an index longer than the file */
        uint64_t whole = 0, keep = 0;
        for (int k = 0; k < 4; k++) whole += idx_field(orig_idx, k, 0) + CALL_BYTES <= cut;
        for (int e = 0; e < 4; e++) keep = ends[e] <= cut ? ends[e] : keep;
        pnn_device *dev;
        ck_assert_msg(open_record(file, INNER, &dev) == PNN_OK, "cut at %llu: %s", (unsigned long long)cut,
                      pnn_last_error());
        pnn_device_close(dev);
        size_t n_after, n_idx_after;
        free(slurp(file, &n_after)), free(slurp(idx, &n_idx_after));
        ck_assert_uint_eq(n_after, keep);
        ck_assert_uint_eq(n_idx_after, whole * 24);
        if (cut == theta2 + 1 || cut == ends[2] + 100) { /* and it goes on where it stopped */
            record(file, whole, 4 - whole, NULL);
            assert_replays(file, 4, y);
        }
    }
    for (uint64_t cut = 0; cut < n; cut++) {
        spit(file, orig, cut);
        spit(idx, orig_idx, n_idx);
        uint64_t whole = 0, served;
        for (int k = 0; k < 4; k++) whole += idx_field(orig_idx, k, 0) + CALL_BYTES <= cut;
        pnn_status st = replay(file, whole + 1, got, &served);
        if (cut < data_start) {
            ck_assert_int_eq(st, PNN_ERR_FORMAT);
            continue;
        }
        ck_assert_msg(st == PNN_ERR_INVALID && served == whole, "cut at %llu: %llu served (%s)",
                      (unsigned long long)cut, (unsigned long long)served, pnn_last_error());
        ck_assert_int_eq(memcmp(got, y, whole * ROWS * N * sizeof(float)), 0);
    }
    free(orig), free(orig_idx);
    remove_recording(file);
}
END_TEST

/* FILE.idx is written for other readers; replay does not trust it: missing, empty, short,
 * garbage, crafted or not a file, the recording serves every call. */
START_TEST(a_lying_index_hides_no_calls) {
    char file[512], idx[600];
    tmp_path(file, sizeof file, "idx.pnnrec");
    snprintf(idx, sizeof idx, "%s.idx", file);
    remove_recording(file);
    float y[6 * ROWS * N];
    record(file, 0, 6, y);
    size_t n_idx;
    unsigned char *orig = slurp(idx, &n_idx), bad[6 * 24];
    float noise[6 * 24 / 4];
    pnn_test_uniform(noise, 6 * 24 / 4, -1e6f, 1e6f, 9, 1);
    signal(SIGALRM, SIG_DFL); /* Check's handler would hide why */
    alarm(10);                /* a FIFO must not block */
    for (int v = 0; v < 8; v++) {
        unlink(idx);
        rmdir(idx);
        memcpy(bad, orig, n_idx);
        uint64_t huge = (uint64_t)1 << 60;
        switch (v) {
        case 0: break; /* missing */
        case 1: spit(idx, bad, 0); break;
        case 2: spit(idx, bad, 2 * 24); break;
        case 3: spit(idx, noise, sizeof noise); break;
        case 4: memcpy(bad + 2 * 24 + 16, &huge, 8), spit(idx, bad, sizeof bad); break;      /* batch */
        case 5: memmove(bad + 24, bad + 48, 4 * 24), spit(idx, bad, 5 * 24); break;          /* call 2 left out */
        case 6: ck_assert_int_eq(mkfifo(idx, 0644), 0); break;
        case 7: ck_assert_int_eq(mkdir(idx, 0755), 0); break;
        }
        assert_replays(file, 6, y);
    }
    /* reopening for recording writes it anew, over a FIFO too */
    rmdir(idx);
    ck_assert_int_eq(mkfifo(idx, 0644), 0);
    record(file, 6, 0, NULL);
    size_t n_new;
    unsigned char *rebuilt = slurp(idx, &n_new);
    ck_assert_uint_eq(n_new, n_idx);
    ck_assert_int_eq(memcmp(rebuilt, orig, n_idx), 0);
    alarm(0);
    free(orig), free(rebuilt);
    remove_recording(file);
}
END_TEST

/* A FIFO named as the recording would block the open forever; a directory or a read-only file
 * cannot be a recording: errors, at once. A symlink to a recording is that recording. */
START_TEST(only_a_regular_file_is_a_recording) {
    char file[512], link[600], uri[700];
    tmp_path(file, sizeof file, "fifo.pnnrec");
    snprintf(uri, sizeof uri, "replay:%s", file);
    remove_recording(file);
    pnn_device *dev;
    signal(SIGALRM, SIG_DFL); /* Check's handler would hide why */
    alarm(10);
    ck_assert_int_eq(mkfifo(file, 0644), 0);
    ck_assert_int_eq(pnn_device_open(uri, be, &dev), PNN_ERR_FORMAT);
    ck_assert_msg(strstr(pnn_last_error(), "FIFO"), "%s", pnn_last_error());
    ck_assert_int_eq(open_record(file, INNER, &dev), PNN_ERR_FORMAT);
    ck_assert_msg(strstr(pnn_last_error(), "FIFO"), "%s", pnn_last_error());
    alarm(0);
    unlink(file);
    ck_assert_int_eq(mkdir(file, 0755), 0);
    ck_assert_int_eq(pnn_device_open(uri, be, &dev), PNN_ERR_FORMAT);
    ck_assert_int_ne(open_record(file, INNER, &dev), PNN_OK);
    ck_assert_msg(strstr(pnn_last_error(), file), "%s", pnn_last_error());
    rmdir(file);
    float y[3 * ROWS * N];
    record(file, 0, 2, y);
    snprintf(link, sizeof link, "%s.link", file);
    unlink(link);
    ck_assert_int_eq(symlink(file, link), 0);
    record(link, 2, 1, y + 2 * ROWS * N); /* appends to the file it points to */
    assert_replays(file, 3, y);
    assert_replays(link, 3, y);
    if (geteuid() != 0) { /* root may write anyway */
        ck_assert_int_eq(chmod(file, 0444), 0);
        ck_assert_int_eq(open_record(file, INNER, &dev), PNN_ERR_IO);
        ck_assert_msg(strstr(pnn_last_error(), "ermission"), "%s", pnn_last_error());
        assert_replays(file, 3, y);
    }
    unlink(link);
    char link_idx[700];
    snprintf(link_idx, sizeof link_idx, "%s.idx", link);
    unlink(link_idx);
    remove_recording(file);
}
END_TEST

/* Writes a recording with the given header (and no records). */
static void craft_header(const char *file, const char *json) {
    uint32_t len = (uint32_t)strlen(json);
    unsigned char buf[8192];
    memcpy(buf, "PNNREC1\n", 8);
    memcpy(buf + 8, &len, 4);
    memcpy(buf + 12, json, len);
    spit(file, buf, 12 + len);
}

/* A header is any device's info: every dim, string and range is checked before anything is
 * sized from it, by replay itself (not only by pnn_device_open after it). */
START_TEST(crafted_headers_are_refused) {
    char file[512], uri[700], json[4096], long_uri[1101];
    tmp_path(file, sizeof file, "header.pnnrec");
    snprintf(uri, sizeof uri, "replay:%s", file);
    remove_recording(file);
    memset(long_uri, 'a', 1100); /* longer than info.system_uri */
    long_uri[1100] = '\0';
    const char *parts = "[{\"name\":\"C\",\"rows\":5,\"cols\":5},{\"name\":\"b\",\"rows\":5,\"cols\":0}]";
    struct {
        const char *system_uri;
        long long x_dim, theta_dim, max_batch;
        const char *x_range, *parts;
    } cases[] = {
        {"sim:oscillator?n=5", 5, 30, 8, "[-1,1]", parts}, /* good */
        {"sim:oscillator?n=5", 1LL << 25, 30, 8, "[-1,1]", parts},
        {"sim:oscillator?n=5", 0, 30, 8, "[-1,1]", parts},
        {"sim:oscillator?n=5", 5, 1LL << 29, 8, "[-1,1]", "[{\"name\":\"t\",\"rows\":536870912,\"cols\":0}]"},
        {"sim:oscillator?n=5", 40, 56, 8, "[-1,1]", parts}, /* parts hold 30 */
        {long_uri, 5, 30, 8, "[-1,1]", parts},
        {"sim:oscillator?n=5", 5, 30, 8, "[1,-1]", parts},
        {"sim:oscillator?n=5", 5, 30, 8, "[-1e39,1]", parts},
        {"sim:oscillator?n=5", 5, 30, 0, "[-1,1]", parts},
        {"sim:oscillator?n=5", 5, 30, 8, "[-1,1]", "[{\"name\":\"a_name_too_long_for_it\",\"rows\":30,\"cols\":0}]"},
        {"sim:oscillator?n=5", 5, 9, 8, "[-1,1]", "[{\"name\":\"C\",\"rows\":3037000500,\"cols\":3037000500}]"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        snprintf(json, sizeof json,
                 "{\"format\":\"pnn-record/1\",\"system\":\"oscillator\",\"system_uri\":\"%s\",\"x_dim\":%lld,"
                 "\"y_dim\":5,\"theta_dim\":%lld,\"max_batch\":%lld,\"x_range\":%s,\"theta_range\":[-1,1],"
                 "\"theta_parts\":%s}",
                 cases[i].system_uri, cases[i].x_dim, cases[i].theta_dim, cases[i].max_batch, cases[i].x_range,
                 cases[i].parts);
        craft_header(file, json);
        pnn_device *dev = NULL;
        pnn_status st = pnn_replay_open(uri, be, &dev);
        ck_assert_msg(st == (i ? PNN_ERR_FORMAT : PNN_OK), "case %zu: %s", i, pnn_last_error());
        if (!i) ck_assert_int_eq(dev->info.theta_dim, 30);
        if (dev) pnn_device_close(dev);
    }
    remove_recording(file);
}
END_TEST

/* A call record whose batch field disagrees with its length drives no allocation: with its
 * checksum made right, it is damage in the middle (valid calls follow) for both devices. */
START_TEST(a_crafted_batch_is_damage) {
    char file[512], idx[600];
    tmp_path(file, sizeof file, "batch.pnnrec");
    snprintf(idx, sizeof idx, "%s.idx", file);
    remove_recording(file);
    record(file, 0, 3, NULL);
    size_t n, n_idx;
    unsigned char *buf = slurp(file, &n), *index = slurp(idx, &n_idx);
    uint64_t call = idx_field(index, 1, 0), huge = (uint64_t)1 << 60, bytes;
    memcpy(buf + call + 24 + 16, &huge, 8);
    memcpy(&bytes, buf + call + 8, 8);
    uint32_t crc = (uint32_t)crc32(0, buf + call + 24, (uInt)bytes);
    memcpy(buf + call + 16, &crc, 4);
    spit(file, buf, n);
    char where[64];
    snprintf(where, sizeof where, "byte %llu", (unsigned long long)call);
    pnn_device *dev;
    ck_assert_int_eq(open_record(file, INNER, &dev), PNN_ERR_FORMAT);
    ck_assert_msg(strstr(pnn_last_error(), where), "%s", pnn_last_error());
    float y[3 * ROWS * N];
    uint64_t served;
    ck_assert_int_eq(replay(file, 3, y, &served), PNN_ERR_FORMAT);
    ck_assert_msg(strstr(pnn_last_error(), where), "%s", pnn_last_error());
    free(buf), free(index);
    remove_recording(file);
}
END_TEST

/* A path is used as given or refused with a message, never cut: a long one works; one too long
 * for the device's URI is refused, by pnn_device_open and by replay and record themselves. */
START_TEST(long_paths_are_used_or_refused) {
    char dir[2048], file[8192], uri[8300];
    tmp_path(dir, sizeof dir, "long");
    ck_assert_msg(mkdir(dir, 0755) == 0 || errno == EEXIST, "%s", strerror(errno));
    for (int level = 0; level < 4; level++) { /* 4 directories of 200-byte names */
        size_t len = strlen(dir);
        dir[len] = '/';
        memset(dir + len + 1, 'd', 200);
        dir[len + 201] = '\0';
        ck_assert_msg(mkdir(dir, 0755) == 0 || errno == EEXIST, "%s", strerror(errno));
    }
    snprintf(file, sizeof file, "%s/rec.pnnrec", dir);
    ck_assert_uint_gt(strlen(file), 800);
    float y[2 * ROWS * N];
    record(file, 0, 2, y);
    assert_replays(file, 2, y);
    snprintf(uri, sizeof uri, "replay:%s", file);
    pnn_device *dev;
    ck_assert_int_eq(pnn_device_open(uri, be, &dev), PNN_OK);
    ck_assert_str_eq(dev->info.uri, uri);
    pnn_device_close(dev);
    remove_recording(file);
    for (int level = 0; level <= 4; level++) { /* from the deepest */
        ck_assert_int_eq(rmdir(dir), 0);
        *strrchr(dir, '/') = '\0';
    }
    for (size_t len = 1100; len <= 4100; len += 3000) {
        memset(file, 'f', len);
        file[len] = '\0';
        snprintf(uri, sizeof uri, "replay:%s", file);
        ck_assert_int_eq(pnn_device_open(uri, be, &dev), PNN_ERR_INVALID);
        ck_assert_int_eq(pnn_replay_open(uri, be, &dev), PNN_ERR_INVALID);
        ck_assert_msg(strstr(pnn_last_error(), "characters long"), "%s", pnn_last_error());
        snprintf(uri, sizeof uri, "record:%s@%s", file, INNER);
        ck_assert_int_eq(pnn_record_open(uri, be, &dev), PNN_ERR_INVALID);
        ck_assert_msg(strstr(pnn_last_error(), "characters long"), "%s", pnn_last_error());
    }
}
END_TEST

/* Calls appended to a recording come from the system its header names: another seed is another
 * system; a timing key (a device that no longer fails) is not. */
START_TEST(another_system_cannot_continue_a_recording) {
    char file[512];
    tmp_path(file, sizeof file, "system.pnnrec");
    remove_recording(file);
    record(file, 0, 2, NULL);
    size_t n, n_after;
    unsigned char *before = slurp(file, &n);
    pnn_device *dev;
    ck_assert_int_eq(open_record(file, "sim:oscillator?n=5&seed=4", &dev), PNN_ERR_INVALID);
    ck_assert_msg(strstr(pnn_last_error(), "was made with"), "%s", pnn_last_error());
    ck_assert_int_eq(open_record(file, "sim:oscillator?n=6&seed=3", &dev), PNN_ERR_INVALID);
    ck_assert_msg(strstr(pnn_last_error(), "another system"), "%s", pnn_last_error());
    unsigned char *after = slurp(file, &n_after);
    ck_assert_uint_eq(n_after, n);
    ck_assert_int_eq(memcmp(before, after, n), 0);
    ck_assert_msg(open_record(file, INNER "&fault_rate=0&latency_ms=1", &dev) == PNN_OK, "%s", pnn_last_error());
    pnn_device_close(dev);
    free(before), free(after);
    remove_recording(file);
}
END_TEST

/* Two writers would append over each other's records: the second is refused. */
START_TEST(a_second_writer_is_refused) {
    char file[512];
    tmp_path(file, sizeof file, "lock.pnnrec");
    remove_recording(file);
    pnn_device *dev, *other = NULL;
    ck_assert_int_eq(open_record(file, INNER, &dev), PNN_OK);
    pid_t pid = fork();
    if (pid == 0) {
        pnn_status st = open_record(file, INNER, &other);
        _exit(st == PNN_ERR_IO && strstr(pnn_last_error(), "another device or process") ? 0 : 1);
    }
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the second writer was not refused");
    /* in the same process too, and a replay of the file opened and closed meanwhile keeps the lock */
    pnn_device *replay;
    char uri[600];
    snprintf(uri, sizeof uri, "replay:%s", file);
    ck_assert_int_eq(pnn_device_open(uri, pnn_backend_cpu(), &replay), PNN_OK);
    pnn_device_close(replay);
    ck_assert_int_eq(open_record(file, INNER, &other), PNN_ERR_IO);
    pnn_device_close(dev);
    remove_recording(file);
}
END_TEST

/* A disk that fills up mid-record: the call fails, nothing of it stays, and once there is room
 * again the same call goes in as if nothing happened. */
START_TEST(a_full_disk_leaves_no_partial_call) {
    char file[512];
    tmp_path(file, sizeof file, "full.pnnrec");
    remove_recording(file);
    float y[4 * ROWS * N];
    record(file, 0, 3, y);
    size_t n;
    free(slurp(file, &n));
    pnn_device *dev;
    ck_assert_int_eq(open_record(file, INNER, &dev), PNN_OK);
    dev->calls = 3;
    signal(SIGXFSZ, SIG_IGN);
    struct rlimit lim, full;
    ck_assert_int_eq(getrlimit(RLIMIT_FSIZE, &lim), 0);
    full = lim;
    full.rlim_cur = n + 60; /* half of the next call record */
    /* no ck_assert while the limit holds: Check writes its own messages to a file */
    int limited = setrlimit(RLIMIT_FSIZE, &full) == 0;
    pnn_status st = call_k(dev, 3, NULL);
    ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &lim), 0);
    ck_assert(limited);
    ck_assert_msg(st == PNN_ERR_IO, "%s", pnn_last_error());
    size_t n_after;
    free(slurp(file, &n_after));
    ck_assert_uint_eq(n_after, n);
    ck_assert_msg(call_k(dev, 3, y + 3 * ROWS * N) == PNN_OK, "%s", pnn_last_error());
    pnn_device_close(dev);
    assert_replays(file, 4, y);
    remove_recording(file);
}
END_TEST

int main(void) {
    be = pnn_backend_cpu();
    Suite *s = suite_create("record");
    TCase *tc = tcase_create("record");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, a_flipped_byte_in_the_middle_is_an_error_not_a_cut);
    tcase_add_test(tc, no_bit_flip_anywhere_loses_good_calls);
    tcase_add_test(tc, a_torn_end_is_cut_at_any_byte_and_recording_continues);
    tcase_add_test(tc, a_lying_index_hides_no_calls);
    tcase_add_test(tc, only_a_regular_file_is_a_recording);
    tcase_add_test(tc, crafted_headers_are_refused);
    tcase_add_test(tc, a_crafted_batch_is_damage);
    tcase_add_test(tc, long_paths_are_used_or_refused);
    tcase_add_test(tc, another_system_cannot_continue_a_recording);
    tcase_add_test(tc, a_second_writer_is_refused);
    tcase_add_test(tc, a_full_disk_leaves_no_partial_call);
    suite_add_tcase(s, tc);
    return pnn_test_run(s);
}
