/* safetensors checkpoints: round trips, the exact byte layout other readers rely on, corrupt
 * files rejected with the right status and a message naming the problem, and atomic writes that
 * never leave partial files or temporaries behind. */
#include <check.h>
#include <dirent.h>
#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pnn/safetensors.h"
#include "tests/testutil.h"

static char dir[64];

static void setup(void) {
    strcpy(dir, "/tmp/pnn_st_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
}

/* Removes everything setup's directory holds (plain files and one level of directories). */
static void teardown(void) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    char p[512];
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        if (unlink(p)) rmdir(p);
    }
    closedir(d);
    rmdir(dir);
}

static const char *in_dir(const char *name) {
    static char p[2][256];
    static int which;
    which ^= 1;
    snprintf(p[which], sizeof p[which], "%s/%s", dir, name);
    return p[which];
}

/* Number of entries in the test directory other than . and .. */
static int dir_entries(void) {
    DIR *d = opendir(dir);
    ck_assert_ptr_nonnull(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
    closedir(d);
    return n;
}

static long file_size(const char *path) {
    struct stat sb;
    return stat(path, &sb) ? -1 : (long)sb.st_size;
}

/* Writes a file by hand: the header length field (header_len, normally strlen(json)), the JSON,
 * then data_len bytes of data. */
static void write_raw_len(const char *path, uint64_t header_len, const char *json, const void *data, size_t data_len) {
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    unsigned char len8[8];
    for (int b = 0; b < 8; b++) len8[b] = (unsigned char)(header_len >> (8 * b));
    ck_assert_int_eq(fwrite(len8, 1, 8, f), 8);
    ck_assert_int_eq(fwrite(json, 1, strlen(json), f), strlen(json));
    if (data_len) ck_assert_int_eq(fwrite(data, 1, data_len, f), data_len);
    ck_assert_int_eq(fclose(f), 0);
}

static void write_raw(const char *path, const char *json, const void *data, size_t data_len) {
    write_raw_len(path, strlen(json), json, data, data_len);
}

/* Reading path must fail with status and an error containing frag (and the file's path). */
static void read_fails(const char *path, pnn_status status, const char *frag) {
    pnn_safetensors *st = (pnn_safetensors *)1;
    pnn_status got = pnn_safetensors_read(path, &st);
    ck_assert_msg(got == status, "status %d (%s), want %d", got, pnn_last_error(), status);
    ck_assert_ptr_null(st);
    ck_assert_msg(strstr(pnn_last_error(), frag), "error '%s' lacks '%s'", pnn_last_error(), frag);
    ck_assert_msg(strstr(pnn_last_error(), path), "error '%s' does not name the file", pnn_last_error());
}

START_TEST(round_trip_several_tensors_and_metadata) {
    float w[12], b[4], s[1] = {3.25f}, t3[12], t4[12];
    pnn_test_uniform(w, 12, -1, 1, 1, 0);
    pnn_test_uniform(b, 4, -1, 1, 2, 0);
    pnn_test_uniform(t3, 12, -5, 5, 3, 0);
    pnn_test_uniform(t4, 12, -5, 5, 4, 0);
    const pnn_st_entry in[] = {
        {"layer.weight", 2, {3, 4}, w},
        {"layer.bias", 1, {4}, b},
        {"scale", 0, {0}, s},
        {"cube", 3, {2, 3, 2}, t3},
        {"four", 4, {2, 1, 3, 2}, t4},
        {"empty", 2, {0, 5}, NULL},
    };
    const pnn_st_meta meta[] = {{"step", "1200"}, {"format", "pnn"}, {"config", "lr: 0.1\nseed: \"7\""}};
    const char *path = in_dir("ckpt.safetensors");
    ck_assert_msg(pnn_safetensors_write(path, in, 6, meta, 3) == PNN_OK, "%s", pnn_last_error());
    ck_assert_int_eq(dir_entries(), 1); /* no temporary left behind */

    pnn_safetensors *st = NULL;
    ck_assert_msg(pnn_safetensors_read(path, &st) == PNN_OK, "%s", pnn_last_error());
    ck_assert_int_eq(pnn_safetensors_count(st), 6);
    /* Entries come back sorted by name. */
    ck_assert_str_eq(pnn_safetensors_entry(st, 0)->name, "cube");
    ck_assert_str_eq(pnn_safetensors_entry(st, 5)->name, "scale");
    ck_assert_ptr_null(pnn_safetensors_entry(st, 6));
    for (int i = 0; i < 6; i++) {
        const pnn_st_entry *e = pnn_safetensors_find(st, in[i].name);
        ck_assert_ptr_nonnull(e);
        ck_assert_str_eq(e->name, in[i].name);
        ck_assert_int_eq(e->ndim, in[i].ndim);
        int64_t n = 1;
        for (int d = 0; d < e->ndim; d++) {
            ck_assert_int_eq(e->shape[d], in[i].shape[d]);
            n *= e->shape[d];
        }
        if (n) ck_assert_int_eq(memcmp(e->data, in[i].data, (size_t)n * sizeof(float)), 0);
        ck_assert_int_eq((uintptr_t)e->data % 16, 0);
    }
    ck_assert_ptr_null(pnn_safetensors_find(st, "layer"));
    ck_assert_str_eq(pnn_safetensors_meta(st, "step"), "1200");
    ck_assert_str_eq(pnn_safetensors_meta(st, "config"), "lr: 0.1\nseed: \"7\"");
    ck_assert_ptr_null(pnn_safetensors_meta(st, "epoch"));
    pnn_safetensors_free(st);

    /* No tensors and no metadata is a valid (empty) file. */
    ck_assert_int_eq(pnn_safetensors_write(path, NULL, 0, NULL, 0), PNN_OK);
    ck_assert_int_eq(pnn_safetensors_read(path, &st), PNN_OK);
    ck_assert_int_eq(pnn_safetensors_count(st), 0);
    ck_assert_ptr_null(pnn_safetensors_find(st, "x"));
    pnn_safetensors_free(st);
}
END_TEST

START_TEST(byte_layout_of_a_tiny_file) {
    const float a[2] = {1.0f, -2.5f}, z[3] = {0.5f, 0.25f, 0.125f};
    const pnn_st_entry in[] = {{"z", 1, {3}, z}, {"a", 2, {1, 2}, a}};
    const pnn_st_meta meta[] = {{"k", "v"}};
    const char *path = in_dir("tiny.safetensors");
    ck_assert_int_eq(pnn_safetensors_write(path, in, 2, meta, 1), PNN_OK);

    FILE *f = fopen(path, "rb");
    ck_assert_ptr_nonnull(f);
    unsigned char buf[1024];
    size_t size = fread(buf, 1, sizeof buf, f);
    fclose(f);
    uint64_t n = 0;
    for (int b = 7; b >= 0; b--) n = n << 8 | buf[b];
    ck_assert_int_eq(n % 8, 0);
    ck_assert_uint_eq(8 + n + 5 * sizeof(float), size);
    ck_assert_int_eq(buf[8], '{');
    ck_assert_int_eq(buf[8 + n - 1] == '}' || buf[8 + n - 1] == ' ', 1);

    json_error_t err;
    json_t *h = json_loadb((const char *)buf + 8, n, 0, &err);
    ck_assert_msg(h != NULL, "%s", err.text);
    ck_assert_int_eq(json_object_size(h), 3);
    json_int_t ab, ae, zb, ze, a0, a1, z0;
    const char *adt, *zdt, *mv;
    ck_assert_int_eq(json_unpack(h, "{s:{s:s, s:[I, I!], s:[I, I!]!}, s:{s:s, s:[I!], s:[I, I!]!}, s:{s:s!}!}", "a",
                                 "dtype", &adt, "shape", &a0, &a1, "data_offsets", &ab, &ae, "z", "dtype", &zdt,
                                 "shape", &z0, "data_offsets", &zb, &ze, "__metadata__", "k", &mv),
                     0);
    ck_assert_str_eq(adt, "F32");
    ck_assert_str_eq(zdt, "F32");
    ck_assert_str_eq(mv, "v");
    ck_assert_int_eq(a0, 1);
    ck_assert_int_eq(a1, 2);
    ck_assert_int_eq(z0, 3);
    /* Data laid out in name order: a then z, back to back. */
    ck_assert_int_eq(ab, 0);
    ck_assert_int_eq(ae, 8);
    ck_assert_int_eq(zb, 8);
    ck_assert_int_eq(ze, 20);
    ck_assert_int_eq(memcmp(buf + 8 + n, a, sizeof a), 0);
    ck_assert_int_eq(memcmp(buf + 8 + n + 8, z, sizeof z), 0);
    json_decref(h);
}
END_TEST

START_TEST(corrupt_files_are_rejected) {
    const float two[2] = {1, 2}, three[3] = {1, 2, 3};
    const char *path = in_dir("bad.safetensors");

    read_fails(in_dir("absent.safetensors"), PNN_ERR_NOT_FOUND, "does not exist");

    /* Truncated data: a valid file missing its last float. */
    const pnn_st_entry e = {"w", 1, {3}, three};
    ck_assert_int_eq(pnn_safetensors_write(path, &e, 1, NULL, 0), PNN_OK);
    ck_assert_int_eq(truncate(path, file_size(path) - 4), 0);
    read_fails(path, PNN_ERR_FORMAT, "tensor 'w' has data_offsets [0, 12] outside the 8 data bytes");

    FILE *f = fopen(path, "wb");
    fputs("abc", f);
    fclose(f);
    read_fails(path, PNN_ERR_FORMAT, "too short");

    write_raw_len(path, 1000, "{}", NULL, 0);
    read_fails(path, PNN_ERR_FORMAT, "header length 1000 is larger than the file allows (2 bytes)");
    write_raw_len(path, (uint64_t)1 << 40, "{}", NULL, 0);
    read_fails(path, PNN_ERR_FORMAT, "100 MiB");

    write_raw(path, "{\"w\": {\"dtype\": \"F32\", ", NULL, 0);
    read_fails(path, PNN_ERR_FORMAT, "not valid JSON");
    write_raw(path, "[1, 2]  ", NULL, 0);
    read_fails(path, PNN_ERR_FORMAT, "must be a JSON object");
    write_raw(path, "{\"w\": 5}", NULL, 0);
    read_fails(path, PNN_ERR_FORMAT, "entry 'w' is not an object");

    write_raw(path, "{\"half\": {\"dtype\": \"F16\", \"shape\": [2], \"data_offsets\": [0, 4]}}", two, 4);
    read_fails(path, PNN_ERR_FORMAT, "tensor 'half' has dtype 'F16'");
    write_raw(path, "{\"w\": {\"shape\": [2], \"data_offsets\": [0, 8]}}", two, 8);
    read_fails(path, PNN_ERR_FORMAT, "no dtype");

    write_raw(path, "{\"w\": {\"dtype\": \"F32\", \"shape\": [4], \"data_offsets\": [0, 16]}}", two, 8);
    read_fails(path, PNN_ERR_FORMAT, "tensor 'w' has data_offsets [0, 16] outside the 8 data bytes");
    write_raw(path, "{\"w\": {\"dtype\": \"F32\", \"shape\": [0], \"data_offsets\": [8, 4]}}", two, 8);
    read_fails(path, PNN_ERR_FORMAT, "data_offsets [8, 4]");
    write_raw(path, "{\"w\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [-4, 0]}}", two, 8);
    read_fails(path, PNN_ERR_FORMAT, "non-negative integers");

    write_raw(path,
              "{\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]},"
              " \"b\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [4, 12]}}",
              three, 12);
    read_fails(path, PNN_ERR_FORMAT, "tensors 'a' [0, 8] and 'b' [4, 12] overlap");

    write_raw(path, "{\"w\": {\"dtype\": \"F32\", \"shape\": [3], \"data_offsets\": [0, 8]}}", two, 8);
    read_fails(path, PNN_ERR_FORMAT, "tensor 'w' spans 8 bytes but its shape needs 12");
    write_raw(path, "{\"w\": {\"dtype\": \"F32\", \"shape\": [4611686018427387904, 4], \"data_offsets\": [0, 8]}}",
              two, 8);
    read_fails(path, PNN_ERR_FORMAT, "tensor 'w' spans 8 bytes but its shape needs more than the whole data");
    write_raw(path, "{\"w\": {\"dtype\": \"F32\", \"shape\": [1,1,1,1,2], \"data_offsets\": [0, 8]}}", two, 8);
    read_fails(path, PNN_ERR_FORMAT, "at most 4 dims");
    write_raw(path, "{\"w\": {\"dtype\": \"F32\", \"shape\": [-2], \"data_offsets\": [0, 8]}}", two, 8);
    read_fails(path, PNN_ERR_FORMAT, "shape entry 0 is not a non-negative integer");
    write_raw(path, "{\"w\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8], \"x\": 1}}", two, 8);
    read_fails(path, PNN_ERR_FORMAT, "unknown field 'x'");
    write_raw(path,
              "{\"w\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]},"
              " \"w\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [4, 8]}}",
              two, 8);
    read_fails(path, PNN_ERR_FORMAT, "not valid JSON");
    write_raw(path, "{\"__metadata__\": {\"step\": 5}}", NULL, 0);
    read_fails(path, PNN_ERR_FORMAT, "metadata 'step' is not a string");

    const float bad[4] = {1.0f, NAN, INFINITY, -2.0f};
    write_raw(path, "{\"ok\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]},"
                    " \"v\": {\"dtype\": \"F32\", \"shape\": [2, 2], \"data_offsets\": [0, 16]}}",
              bad, 16);
    read_fails(path, PNN_ERR_FORMAT, "overlap");
    write_raw(path, "{\"v\": {\"dtype\": \"F32\", \"shape\": [2, 2], \"data_offsets\": [0, 16]}}", bad, 16);
    read_fails(path, PNN_ERR_FORMAT, "tensor 'v' holds 2 NaN or Inf values out of 4");

    /* Holes and unaligned offsets written by other tools are fine as long as nothing overlaps. */
    const float four[4] = {1, 2, 3, 4};
    write_raw(path, "{\"b\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [8, 16]}, \"e\": {\"dtype\": "
                    "\"F32\", \"shape\": [0], \"data_offsets\": [2, 2]}, \"a\": {\"dtype\": \"F32\", \"shape\": [1],"
                    " \"data_offsets\": [0, 4]}}",
              four, 16);
    pnn_safetensors *st;
    ck_assert_msg(pnn_safetensors_read(path, &st) == PNN_OK, "%s", pnn_last_error());
    ck_assert_int_eq(pnn_safetensors_count(st), 3);
    ck_assert_float_eq(pnn_safetensors_find(st, "b")->data[1], 4.0f);
    ck_assert_float_eq(pnn_safetensors_find(st, "a")->data[0], 1.0f);
    pnn_safetensors_free(st);
}
END_TEST

START_TEST(bad_writes_are_refused) {
    const float x[2] = {1, 2}, nan2[2] = {0, NAN};
    const char *path = in_dir("w.safetensors");
    pnn_st_entry e[2] = {{"a", 1, {2}, x}, {"a", 1, {2}, x}};
    ck_assert_int_eq(pnn_safetensors_write(path, e, 2, NULL, 0), PNN_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(pnn_last_error(), "two tensors are named 'a'"));
    e[1] = (pnn_st_entry){"n", 1, {2}, nan2};
    ck_assert_int_eq(pnn_safetensors_write(path, e, 2, NULL, 0), PNN_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(pnn_last_error(), "tensor 'n' has 1 NaN or Inf"));
    e[1] = (pnn_st_entry){"big", 5, {1, 1, 1, 1, }, x};
    ck_assert_int_eq(pnn_safetensors_write(path, e, 2, NULL, 0), PNN_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(pnn_last_error(), "5 dims"));
    e[1] = (pnn_st_entry){"neg", 1, {-1}, x};
    ck_assert_int_eq(pnn_safetensors_write(path, e, 2, NULL, 0), PNN_ERR_INVALID);
    e[1] = (pnn_st_entry){"__metadata__", 1, {2}, x};
    ck_assert_int_eq(pnn_safetensors_write(path, e, 2, NULL, 0), PNN_ERR_INVALID);
    const pnn_st_meta meta[2] = {{"k", "1"}, {"k", "2"}};
    ck_assert_int_eq(pnn_safetensors_write(path, e, 1, meta, 2), PNN_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(pnn_last_error(), "unique"));
    ck_assert_int_eq(dir_entries(), 0);
}
END_TEST

START_TEST(writes_are_atomic) {
    float big[1000];
    pnn_test_uniform(big, 1000, -1, 1, 5, 0);
    const float small[2] = {7, 8}, nan1[1] = {NAN};
    const char *path = in_dir("model.safetensors");

    /* Into a directory that does not exist: fails, creates nothing. */
    ck_assert_int_eq(pnn_safetensors_write(in_dir("missing/model.safetensors"), NULL, 0, NULL, 0), PNN_ERR_IO);
    ck_assert_ptr_nonnull(strstr(pnn_last_error(), "missing"));
    ck_assert_int_eq(dir_entries(), 0);

    /* Overwriting replaces the whole file: no tail of the larger old file survives. */
    const pnn_st_entry eb = {"w", 2, {10, 100}, big}, es = {"v", 1, {2}, small};
    ck_assert_int_eq(pnn_safetensors_write(path, &eb, 1, NULL, 0), PNN_OK);
    long big_size = file_size(path);
    ck_assert_int_eq(pnn_safetensors_write(path, &es, 1, NULL, 0), PNN_OK);
    long small_size = file_size(path);
    ck_assert_int_lt(small_size, big_size);
    pnn_safetensors *st;
    ck_assert_int_eq(pnn_safetensors_read(path, &st), PNN_OK);
    ck_assert_int_eq(pnn_safetensors_count(st), 1);
    ck_assert_ptr_null(pnn_safetensors_find(st, "w"));
    ck_assert_float_eq(pnn_safetensors_find(st, "v")->data[1], 8.0f);
    pnn_safetensors_free(st);
    ck_assert_int_eq(dir_entries(), 1);

    /* A failed write leaves the existing file exactly as it was. */
    const pnn_st_entry en = {"v", 1, {1}, nan1};
    ck_assert_int_eq(pnn_safetensors_write(path, &en, 1, NULL, 0), PNN_ERR_INVALID);
    ck_assert_int_eq(file_size(path), small_size);
    ck_assert_int_eq(dir_entries(), 1);

    /* A failure after the temporary exists (the target is a directory, so the rename fails)
     * removes the temporary and leaves the directory alone. */
    const char *sub = in_dir("sub");
    ck_assert_int_eq(mkdir(sub, 0755), 0);
    ck_assert_int_eq(pnn_safetensors_write(sub, &es, 1, NULL, 0), PNN_ERR_IO);
    ck_assert_ptr_nonnull(strstr(pnn_last_error(), "rename"));
    ck_assert_int_eq(dir_entries(), 2);
    struct stat sb;
    ck_assert_int_eq(stat(sub, &sb), 0);
    ck_assert(S_ISDIR(sb.st_mode));
}
END_TEST

Suite *safetensors_suite(void) {
    Suite *s = suite_create("safetensors");
    TCase *tc = tcase_create("files");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, round_trip_several_tensors_and_metadata);
    tcase_add_test(tc, byte_layout_of_a_tiny_file);
    tcase_add_test(tc, corrupt_files_are_rejected);
    tcase_add_test(tc, bad_writes_are_refused);
    tcase_add_test(tc, writes_are_atomic);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    return pnn_test_run(safetensors_suite());
}
