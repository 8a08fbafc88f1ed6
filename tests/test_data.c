/* The data loaders: real Fashion-MNIST files, synthetic and broken IDX files, the image flip,
 * the shipped vowel CSV and its split, and malformed CSVs. */
#include <check.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zlib.h>

#include "pnn/data.h"
#include "pnn/status.h"
#include "tests/testutil.h"

#ifndef PNN_SOURCE_DIR
#define PNN_SOURCE_DIR "."
#endif
#ifdef PNN_BINARY_DIR
#define PNN_TEST_TMP PNN_BINARY_DIR
#else
#define PNN_TEST_TMP "/tmp"
#endif
#define FMNIST_DIR "/usr/share/datasets/fashion-mnist"
#define VOWELS_CSV PNN_SOURCE_DIR "/data/vowels_hillenbrand_women.csv"

/* A fresh directory for the files of one test. */
static void make_tmpdir(char *dir, size_t size) {
    snprintf(dir, size, "%s/pnn_test_data_XXXXXX", PNN_TEST_TMP);
    ck_assert_msg(mkdtemp(dir) != NULL, "mkdtemp %s failed", dir);
}

/* Removes dir and the plain files in it. */
static void remove_tmpdir(const char *dir) {
    DIR *d = opendir(dir);
    ck_assert_ptr_nonnull(d);
    struct dirent *e;
    char path[1024];
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        ck_assert_int_eq(unlink(path), 0);
    }
    closedir(d);
    ck_assert_int_eq(rmdir(dir), 0);
}

static void put_be32(unsigned char *p, uint32_t v) {
    p[0] = (unsigned char)(v >> 24), p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8), p[3] = (unsigned char)v;
}

/* Writes dir/name: an IDX header (magic, ndim sizes) then len payload bytes, gzip-compressed
 * when gz is set (name should then end in .gz). */
static void write_idx(const char *dir, const char *name, int gz, uint32_t magic, const uint32_t *dims, int ndim,
                      const unsigned char *data, size_t len) {
    char path[1024];
    unsigned char head[16];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    put_be32(head, magic);
    for (int i = 0; i < ndim; i++) put_be32(head + 4 + 4 * i, dims[i]);
    size_t hlen = 4 + 4 * (size_t)ndim;
    if (gz) {
        gzFile f = gzopen(path, "wb");
        ck_assert_ptr_nonnull(f);
        ck_assert_int_eq(gzwrite(f, head, (unsigned)hlen), (int)hlen);
        if (len) ck_assert_int_eq(gzwrite(f, data, (unsigned)len), (int)len);
        ck_assert_int_eq(gzclose(f), Z_OK);
    } else {
        FILE *f = fopen(path, "wb");
        ck_assert_ptr_nonnull(f);
        ck_assert_uint_eq(fwrite(head, 1, hlen, f), hlen);
        if (len) ck_assert_uint_eq(fwrite(data, 1, len, f), len);
        ck_assert_int_eq(fclose(f), 0);
    }
}

/* A small valid train split in dir: 3 images of 2 x 3 pixels, labels 9, 0, 4. */
static const unsigned char small_pixels[18] = {0, 255, 51, 102, 0, 0, 1, 2, 3, 4, 5, 6, 255, 255, 255, 0, 0, 0};
static const unsigned char small_labels[3] = {9, 0, 4};
static void write_small_set(const char *dir, int gz) {
    const uint32_t idims[3] = {3, 2, 3}, ldims[1] = {3};
    write_idx(dir, gz ? "train-images-idx3-ubyte.gz" : "train-images-idx3-ubyte", gz, 0x803, idims, 3,
              small_pixels, sizeof small_pixels);
    write_idx(dir, gz ? "train-labels-idx1-ubyte.gz" : "train-labels-idx1-ubyte", gz, 0x801, ldims, 1,
              small_labels, sizeof small_labels);
}

/* Loading must fail with `want`, leave *out zeroed and name `needle` in the message. */
static void expect_fmnist_error(const char *dir, const char *split, pnn_status want, const char *needle) {
    pnn_dataset d;
    memset(&d, 0x5a, sizeof d);
    pnn_status st = pnn_fmnist_load(dir, split, 0, &d);
    ck_assert_msg(st == want, "status %s, want %s (%s)", pnn_status_name(st), pnn_status_name(want),
                  pnn_last_error());
    ck_assert_msg(strstr(pnn_last_error(), needle) != NULL, "message '%s' lacks '%s'", pnn_last_error(), needle);
    ck_assert_ptr_null(d.x);
    ck_assert_ptr_null(d.y);
    ck_assert_int_eq(d.n, 0);
}

/* Counts of each label in counts; returns how many labels are not integers in [0, n_classes).
 * (No assertion per sample: each one costs a round trip to the Check runner.) */
static int64_t label_histogram(const pnn_dataset *d, int64_t *counts, int n_classes) {
    int64_t bad = 0;
    for (int c = 0; c < n_classes; c++) counts[c] = 0;
    for (int64_t i = 0; i < d->n; i++) {
        int c = (int)d->y[i];
        if (c >= 0 && c < n_classes && (float)c == d->y[i])
            counts[c]++;
        else
            bad++;
    }
    return bad;
}

static void pixel_range(const pnn_dataset *d, float *lo, float *hi) {
    *lo = INFINITY, *hi = -INFINITY;
    for (int64_t i = 0; i < d->n * d->dim; i++) {
        *lo = fminf(*lo, d->x[i]);
        *hi = fmaxf(*hi, d->x[i]);
    }
}

START_TEST(fmnist_real_train) {
    pnn_dataset d;
    pnn_status st = pnn_fmnist_load(FMNIST_DIR, "train", 0, &d);
    ck_assert_msg(st == PNN_OK, "Fashion-MNIST must be installed (tools/setup.sh): %s", pnn_last_error());
    ck_assert_str_eq(d.name, "fashion-mnist-train");
    ck_assert_int_eq(d.n, 60000);
    ck_assert_int_eq(d.dim, 784);
    ck_assert_int_eq(d.image_h, 28);
    ck_assert_int_eq(d.image_w, 28);
    ck_assert_int_eq(d.n_classes, 10);
    int64_t hist[10];
    ck_assert_int_eq(label_histogram(&d, hist, 10), 0);
    for (int c = 0; c < 10; c++) ck_assert_msg(hist[c] == 6000, "class %d has %lld samples", c, (long long)hist[c]);
    float lo, hi;
    pixel_range(&d, &lo, &hi);
    ck_assert_float_eq(lo, 0.0f);
    ck_assert_float_eq(hi, 1.0f);
    pnn_dataset_free(&d);
    ck_assert_ptr_null(d.x);
    ck_assert_int_eq(d.n, 0);
}
END_TEST

START_TEST(fmnist_real_test_and_limit) {
    pnn_dataset d, head;
    pnn_status st = pnn_fmnist_load(FMNIST_DIR, "test", 0, &d);
    ck_assert_msg(st == PNN_OK, "Fashion-MNIST must be installed (tools/setup.sh): %s", pnn_last_error());
    ck_assert_str_eq(d.name, "fashion-mnist-test");
    ck_assert_int_eq(d.n, 10000);
    ck_assert_int_eq(d.dim, 784);
    ck_assert_float_eq(d.y[0], 9.0f); /* the first t10k image is an ankle boot */
    int64_t hist[10];
    ck_assert_int_eq(label_histogram(&d, hist, 10), 0);
    for (int c = 0; c < 10; c++) ck_assert_int_eq(hist[c], 1000);
    float lo, hi;
    pixel_range(&d, &lo, &hi);
    ck_assert(lo >= 0.0f && hi <= 1.0f);

    ck_assert_int_eq(pnn_fmnist_load(FMNIST_DIR, "test", 100, &head), PNN_OK);
    ck_assert_int_eq(head.n, 100);
    ck_assert_int_eq(head.dim, 784);
    ck_assert_int_eq(memcmp(head.x, d.x, 100 * 784 * sizeof(float)), 0);
    ck_assert_int_eq(memcmp(head.y, d.y, 100 * sizeof(float)), 0);
    pnn_dataset_free(&head);
    /* a limit beyond the file keeps everything */
    ck_assert_int_eq(pnn_fmnist_load(FMNIST_DIR, "test", 20000, &head), PNN_OK);
    ck_assert_int_eq(head.n, 10000);
    pnn_dataset_free(&head);
    pnn_dataset_free(&d);
}
END_TEST

/* The same small set written gzip-compressed and plain loads to the same exact values. */
START_TEST(fmnist_synthetic_gzip_and_plain) {
    for (int gz = 0; gz < 2; gz++) {
        char dir[1024];
        make_tmpdir(dir, sizeof dir);
        write_small_set(dir, gz);
        pnn_dataset d;
        ck_assert_msg(pnn_fmnist_load(dir, "train", 0, &d) == PNN_OK, "gz=%d: %s", gz, pnn_last_error());
        ck_assert_int_eq(d.n, 3);
        ck_assert_int_eq(d.image_h, 2);
        ck_assert_int_eq(d.image_w, 3);
        ck_assert_int_eq(d.dim, 6);
        for (int i = 0; i < 18; i++) ck_assert_float_eq_tol(d.x[i], small_pixels[i] / 255.0f, 1e-7f);
        ck_assert_float_eq(d.x[1], 1.0f);
        ck_assert_float_eq_tol(d.x[2], 0.2f, 1e-7f);
        for (int i = 0; i < 3; i++) ck_assert_float_eq(d.y[i], (float)small_labels[i]);
        pnn_dataset_free(&d);
        ck_assert_int_eq(pnn_fmnist_load(dir, "train", 2, &d), PNN_OK);
        ck_assert_int_eq(d.n, 2);
        pnn_dataset_free(&d);
        /* this directory has no test split */
        expect_fmnist_error(dir, "test", PNN_ERR_NOT_FOUND, "t10k-images-idx3-ubyte");
        remove_tmpdir(dir);
    }
}
END_TEST

START_TEST(fmnist_bad_files) {
    char dir[1024];
    const uint32_t ldims[1] = {3};
    unsigned char pixels[5 * 28 * 28] = {0};

    /* images file shorter than its header says (plain and gzip) */
    for (int gz = 0; gz < 2; gz++) {
        make_tmpdir(dir, sizeof dir);
        const uint32_t idims[3] = {3, 28, 28};
        const char *img = gz ? "train-images-idx3-ubyte.gz" : "train-images-idx3-ubyte";
        write_idx(dir, img, gz, 0x803, idims, 3, pixels, 2 * 28 * 28 + 100);
        write_idx(dir, "train-labels-idx1-ubyte", 0, 0x801, ldims, 1, small_labels, 3);
        expect_fmnist_error(dir, "train", PNN_ERR_FORMAT, img);
        ck_assert_ptr_nonnull(strstr(pnn_last_error(), "truncated"));
        ck_assert_ptr_nonnull(strstr(pnn_last_error(), "2368")); /* 16 + 3 * 784 expected */
        ck_assert_ptr_nonnull(strstr(pnn_last_error(), "1684")); /* 16 + 2 * 784 + 100 found */
        remove_tmpdir(dir);
    }

    /* a gzip stream cut short (a partial download) */
    make_tmpdir(dir, sizeof dir);
    {
        const uint32_t idims[3] = {3, 28, 28};
        unsigned char noisy[3 * 784];
        for (int i = 0; i < 3 * 784; i++) noisy[i] = (unsigned char)((i * 7919u) >> 3);
        write_idx(dir, "train-images-idx3-ubyte.gz", 1, 0x803, idims, 3, noisy, sizeof noisy);
        write_idx(dir, "train-labels-idx1-ubyte", 0, 0x801, ldims, 1, small_labels, 3);
        char path[1100];
        struct stat sb;
        snprintf(path, sizeof path, "%s/train-images-idx3-ubyte.gz", dir);
        ck_assert_int_eq(stat(path, &sb), 0);
        ck_assert_int_eq(truncate(path, sb.st_size / 2), 0);
        expect_fmnist_error(dir, "train", PNN_ERR_FORMAT, "train-images-idx3-ubyte.gz");
    }
    remove_tmpdir(dir);

    /* bad magic: a labels header in the images file */
    make_tmpdir(dir, sizeof dir);
    {
        const uint32_t idims[3] = {3, 28, 28};
        write_idx(dir, "train-images-idx3-ubyte", 0, 0x801, idims, 3, pixels, 3 * 784);
        write_idx(dir, "train-labels-idx1-ubyte", 0, 0x801, ldims, 1, small_labels, 3);
        expect_fmnist_error(dir, "train", PNN_ERR_FORMAT, "train-images-idx3-ubyte");
        ck_assert_ptr_nonnull(strstr(pnn_last_error(), "0x00000801"));
        ck_assert_ptr_nonnull(strstr(pnn_last_error(), "0x00000803"));
    }
    remove_tmpdir(dir);

    /* 3 images, 4 labels */
    make_tmpdir(dir, sizeof dir);
    {
        const uint32_t idims[3] = {3, 28, 28}, four[1] = {4};
        const unsigned char labels[4] = {1, 2, 3, 4};
        write_idx(dir, "train-images-idx3-ubyte", 0, 0x803, idims, 3, pixels, 3 * 784);
        write_idx(dir, "train-labels-idx1-ubyte.gz", 1, 0x801, four, 1, labels, 4);
        expect_fmnist_error(dir, "train", PNN_ERR_FORMAT, "train-labels-idx1-ubyte.gz");
        ck_assert_ptr_nonnull(strstr(pnn_last_error(), "4 labels"));
    }
    remove_tmpdir(dir);

    /* a label out of range */
    make_tmpdir(dir, sizeof dir);
    {
        const uint32_t idims[3] = {3, 28, 28};
        const unsigned char labels[3] = {1, 11, 3};
        write_idx(dir, "train-images-idx3-ubyte", 0, 0x803, idims, 3, pixels, 3 * 784);
        write_idx(dir, "train-labels-idx1-ubyte", 0, 0x801, ldims, 1, labels, 3);
        expect_fmnist_error(dir, "train", PNN_ERR_FORMAT, "train-labels-idx1-ubyte");
        ck_assert_ptr_nonnull(strstr(pnn_last_error(), "label 11"));
    }
    remove_tmpdir(dir);

    /* absurd image sizes */
    make_tmpdir(dir, sizeof dir);
    {
        const uint32_t idims[3] = {3, 5000, 28};
        write_idx(dir, "train-images-idx3-ubyte", 0, 0x803, idims, 3, pixels, 3 * 784);
        write_idx(dir, "train-labels-idx1-ubyte", 0, 0x801, ldims, 1, small_labels, 3);
        expect_fmnist_error(dir, "train", PNN_ERR_FORMAT, "5000 x 28");
        ck_assert_ptr_nonnull(strstr(pnn_last_error(), "train-images-idx3-ubyte"));
    }
    remove_tmpdir(dir);

    /* a header claiming billions of samples is truncation, not an enormous allocation */
    make_tmpdir(dir, sizeof dir);
    {
        const uint32_t idims[3] = {4000000000u, 28, 28}, many[1] = {4000000000u};
        write_idx(dir, "train-images-idx3-ubyte", 0, 0x803, idims, 3, pixels, 3 * 784);
        write_idx(dir, "train-labels-idx1-ubyte", 0, 0x801, many, 1, small_labels, 3);
        expect_fmnist_error(dir, "train", PNN_ERR_FORMAT, "train-labels-idx1-ubyte");
        ck_assert_ptr_nonnull(strstr(pnn_last_error(), "truncated"));
    }
    remove_tmpdir(dir);

    /* a header cut short, a labels file missing, a split name that does not exist */
    make_tmpdir(dir, sizeof dir);
    write_idx(dir, "train-images-idx3-ubyte", 0, 0x803, ldims, 1, NULL, 0);
    expect_fmnist_error(dir, "train", PNN_ERR_NOT_FOUND, "train-labels-idx1-ubyte");
    ck_assert_ptr_nonnull(strstr(pnn_last_error(), "dataset-fashion-mnist"));
    write_idx(dir, "train-labels-idx1-ubyte", 0, 0x801, ldims, 1, small_labels, 3);
    expect_fmnist_error(dir, "train", PNN_ERR_FORMAT, "train-images-idx3-ubyte");
    ck_assert_ptr_nonnull(strstr(pnn_last_error(), "16 bytes"));
    expect_fmnist_error(dir, "validation", PNN_ERR_INVALID, "validation");
    remove_tmpdir(dir);

    expect_fmnist_error("/nonexistent/pnn/fashion-mnist", "train", PNN_ERR_NOT_FOUND, "/nonexistent/pnn/fashion-mnist");
    ck_assert_ptr_nonnull(strstr(pnn_last_error(), "dataset-fashion-mnist"));
    ck_assert_ptr_nonnull(strstr(pnn_last_error(), "tools/setup.sh"));
}
END_TEST

START_TEST(hflip_mirrors_rows) {
    const float img[6] = {1, 2, 3, 4, 5, 6};
    const float want[6] = {3, 2, 1, 6, 5, 4};
    float out[6], back[6];
    pnn_image_hflip(img, 2, 3, out);
    for (int i = 0; i < 6; i++) ck_assert_float_eq(out[i], want[i]);
    pnn_image_hflip(out, 2, 3, back);
    for (int i = 0; i < 6; i++) ck_assert_float_eq(back[i], img[i]);

    float a[28 * 28], b[28 * 28], c[28 * 28];
    for (int i = 0; i < 28 * 28; i++) a[i] = (float)((i * 37) % 101);
    pnn_image_hflip(a, 28, 28, b);
    ck_assert_int_ne(memcmp(a, b, sizeof a), 0);
    ck_assert_float_eq(b[5 * 28 + 0], a[5 * 28 + 27]);
    pnn_image_hflip(b, 28, 28, c);
    ck_assert_int_eq(memcmp(a, c, sizeof a), 0);
}
END_TEST

START_TEST(vowels_shipped_split) {
    pnn_dataset tr, te;
    pnn_status st = pnn_vowels_load(VOWELS_CSV, 1, 0.2, &tr, &te);
    ck_assert_msg(st == PNN_OK, "%s", pnn_last_error());
    ck_assert_str_eq(tr.name, "vowels-train");
    ck_assert_str_eq(te.name, "vowels-test");
    ck_assert_int_eq(tr.n + te.n, 258);
    ck_assert_int_eq(te.n, 49);
    ck_assert_int_eq(tr.n, 209);
    ck_assert_int_eq(tr.dim, 12);
    ck_assert_int_eq(te.dim, 12);
    ck_assert_int_eq(tr.n_classes, 7);
    ck_assert_int_eq(te.n_classes, 7);
    ck_assert_int_eq(tr.image_h, 0);
    ck_assert_int_eq(tr.image_w, 0);
    int64_t ctr[7], cte[7];
    ck_assert_int_eq(label_histogram(&tr, ctr, 7), 0);
    ck_assert_int_eq(label_histogram(&te, cte, 7), 0);
    for (int c = 0; c < 7; c++) {
        ck_assert_int_eq(cte[c], 7);                 /* round(0.2 * 37) = round(0.2 * 36) = 7 */
        ck_assert_int_eq(ctr[c], c == 6 ? 29 : 30); /* uw, last alphabetically, has 36 rows */
    }
    /* training features are z-scored: mean 0, population std 1 */
    for (int j = 0; j < 12; j++) {
        double s = 0, s2 = 0;
        for (int64_t i = 0; i < tr.n; i++) s += tr.x[i * 12 + j];
        double m = s / (double)tr.n;
        for (int64_t i = 0; i < tr.n; i++) s2 += (tr.x[i * 12 + j] - m) * (tr.x[i * 12 + j] - m);
        ck_assert_double_eq_tol(m, 0.0, 1e-5);
        ck_assert_double_eq_tol(sqrt(s2 / (double)tr.n), 1.0, 1e-5);
    }
    float lo = INFINITY, hi = -INFINITY;
    for (int64_t i = 0; i < te.n * 12; i++) lo = fminf(lo, te.x[i]), hi = fmaxf(hi, te.x[i]);
    ck_assert(lo > -10.0f && hi < 10.0f); /* the test split is scaled too */
    pnn_dataset_free(&tr);
    pnn_dataset_free(&te);
}
END_TEST

static int same_set(const pnn_dataset *a, const pnn_dataset *b) {
    return a->n == b->n && memcmp(a->x, b->x, (size_t)(a->n * a->dim) * sizeof(float)) == 0 &&
           memcmp(a->y, b->y, (size_t)a->n * sizeof(float)) == 0;
}

START_TEST(vowels_split_follows_seed) {
    pnn_dataset tr1, te1, tr2, te2, tr3, te3;
    ck_assert_int_eq(pnn_vowels_load(VOWELS_CSV, 42, 0.2, &tr1, &te1), PNN_OK);
    ck_assert_int_eq(pnn_vowels_load(VOWELS_CSV, 42, 0.2, &tr2, &te2), PNN_OK);
    ck_assert_int_eq(pnn_vowels_load(VOWELS_CSV, 43, 0.2, &tr3, &te3), PNN_OK);
    ck_assert(same_set(&tr1, &tr2));
    ck_assert(same_set(&te1, &te2));
    ck_assert(!same_set(&te1, &te3));
    ck_assert(!same_set(&tr1, &tr3));
    ck_assert_int_eq(te1.n, te3.n); /* only membership changes, not the sizes */
    pnn_dataset_free(&tr1), pnn_dataset_free(&te1);
    pnn_dataset_free(&tr2), pnn_dataset_free(&te2);
    pnn_dataset_free(&tr3), pnn_dataset_free(&te3);
}
END_TEST

/* Writes text to dir/name and returns the path in path. */
static void write_text(const char *dir, const char *name, const char *text, char *path, size_t size) {
    snprintf(path, size, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(fputs(text, f) >= 0, 1);
    ck_assert_int_eq(fclose(f), 0);
}

static const char *const vowel_header =
    "speaker,vowel,F1steady_state,F2steady_state,F3steady_state,F120%,F220%,F320%,F150%,F250%,F350%,F180%,F280%,F380%";

static int cmp_by_first(const void *a, const void *b) {
    const float *x = a, *y = b;
    return (x[0] > y[0]) - (x[0] < y[0]);
}

/* A CSV with CRLF lines, blank lines and classes out of alphabetical order (iy, ae, uw):
 * feature 1 rises with the class's alphabetical rank, feature 2 is the row number 0..29. So
 * sorting all samples by feature 1 must give labels 0, 1, 2 in order, and the row numbers,
 * z-scored by one affine map for both splits, must be equally spaced. */
START_TEST(vowels_synthetic_classes_and_scaling) {
    char dir[1024], path[1100];
    make_tmpdir(dir, sizeof dir);
    static const char *const labels[3] = {"iy", "ae", "uw"};
    static const int rank[3] = {1, 0, 2};
    char text[8192];
    int len = snprintf(text, sizeof text, "\r\n%s\r\n", vowel_header);
    for (int r = 0; r < 30; r++) {
        int k = r / 10;
        len += snprintf(text + len, sizeof text - (size_t)len, "w%02d,%s,%d,%d", r, labels[k], 100 * rank[k] + r % 10,
                        r);
        for (int j = 2; j < 12; j++) len += snprintf(text + len, sizeof text - (size_t)len, ",%d.5", (r * j * 7) % 13);
        len += snprintf(text + len, sizeof text - (size_t)len, "\r\n%s", r == 14 ? "\r\n  \r\n" : "");
    }
    ck_assert_int_lt(len, (int)sizeof text);
    write_text(dir, "v.csv", text, path, sizeof path);

    pnn_dataset tr, te;
    ck_assert_msg(pnn_vowels_load(path, 7, 0.3, &tr, &te) == PNN_OK, "%s", pnn_last_error());
    ck_assert_int_eq(tr.n_classes, 3);
    ck_assert_int_eq(te.n, 9); /* round(0.3 * 10) = 3 per class */
    ck_assert_int_eq(tr.n, 21);
    float rows[30][3];
    for (int64_t i = 0; i < 30; i++) {
        const pnn_dataset *d = i < tr.n ? &tr : &te;
        int64_t k = i < tr.n ? i : i - tr.n;
        rows[i][0] = d->x[k * 12 + 0];
        rows[i][1] = d->y[k];
        rows[i][2] = d->x[k * 12 + 1];
    }
    qsort(rows, 30, sizeof rows[0], cmp_by_first);
    for (int i = 0; i < 30; i++) ck_assert_float_eq(rows[i][1], (float)(i / 10));
    float z[30];
    for (int i = 0; i < 30; i++) z[i] = rows[i][2];
    qsort(z, 30, sizeof z[0], cmp_by_first);
    float step = z[1] - z[0];
    ck_assert(step > 0.0f);
    for (int i = 1; i < 30; i++) ck_assert_float_eq_tol(z[i] - z[i - 1], step, 1e-4f);
    pnn_dataset_free(&tr);
    pnn_dataset_free(&te);
    remove_tmpdir(dir);
}
END_TEST

/* Loading the CSV text must fail with `want`, leave both outputs zeroed and put every needle
 * in the message. */
static void expect_vowels_error(const char *dir, const char *text, double test_frac, pnn_status want,
                                const char *needle1, const char *needle2) {
    char path[1100];
    write_text(dir, "bad.csv", text, path, sizeof path);
    pnn_dataset tr, te;
    memset(&tr, 0x5a, sizeof tr);
    memset(&te, 0x5a, sizeof te);
    pnn_status st = pnn_vowels_load(path, 1, test_frac, &tr, &te);
    ck_assert_msg(st == want, "status %s, want %s (%s)", pnn_status_name(st), pnn_status_name(want),
                  pnn_last_error());
    ck_assert_msg(strstr(pnn_last_error(), "bad.csv") != NULL, "message '%s' lacks the file", pnn_last_error());
    ck_assert_msg(strstr(pnn_last_error(), needle1) != NULL, "message '%s' lacks '%s'", pnn_last_error(), needle1);
    if (needle2)
        ck_assert_msg(strstr(pnn_last_error(), needle2) != NULL, "message '%s' lacks '%s'", pnn_last_error(),
                      needle2);
    ck_assert_ptr_null(tr.x);
    ck_assert_ptr_null(te.x);
    ck_assert_int_eq(tr.n, 0);
    ck_assert_int_eq(te.n, 0);
}

START_TEST(vowels_malformed_csv) {
    char dir[1024], text[4096];
    make_tmpdir(dir, sizeof dir);
    static const char *const good_rows = "w01,ae,1,2,3,4,5,6,7,8,9,10,11,12\n"
                                         "w02,ae,2,3,4,5,6,7,8,9,10,11,12,13\n"
                                         "w03,iy,3,1,4,1,5,9,2,6,5,3,5,8\n"
                                         "w04,iy,4,2,5,2,6,8,3,7,4,2,4,9\n";

    snprintf(text, sizeof text, "%s\n%sw05,iy,1,2,3,4,5,6,7,8,9,10,11\n", vowel_header, good_rows);
    expect_vowels_error(dir, text, 0.5, PNN_ERR_FORMAT, "line 6", "13 columns");
    snprintf(text, sizeof text, "%s\n%sw05,iy,1,2,3,4,5,6,7,8,9,10,11,12,13\n", vowel_header, good_rows);
    expect_vowels_error(dir, text, 0.5, PNN_ERR_FORMAT, "line 6", "15 columns");
    snprintf(text, sizeof text, "%s\nw01,ae,1,2,abc,4,5,6,7,8,9,10,11,12\n%s", vowel_header, good_rows);
    expect_vowels_error(dir, text, 0.5, PNN_ERR_FORMAT, "line 2, column 5", "'abc'");
    snprintf(text, sizeof text, "%s\n%s\nw01,ae,1,2,3,4,5,6,7,8,9,10,11,nan\n", vowel_header, good_rows);
    expect_vowels_error(dir, text, 0.5, PNN_ERR_FORMAT, "line 7, column 14", "'nan'");
    snprintf(text, sizeof text, "%s\nw01,ae,inf,2,3,4,5,6,7,8,9,10,11,12\n", vowel_header);
    expect_vowels_error(dir, text, 0.5, PNN_ERR_FORMAT, "line 2, column 3", "'inf'");
    snprintf(text, sizeof text, "%s\n%sw09,uw,1,2,3,,5,6,7,8,9,10,11,12\n", vowel_header, good_rows);
    expect_vowels_error(dir, text, 0.5, PNN_ERR_FORMAT, "line 6, column 6", "F120%");
    snprintf(text, sizeof text, "%s\nw09,,1,2,3,4,5,6,7,8,9,10,11,12\n", vowel_header);
    expect_vowels_error(dir, text, 0.5, PNN_ERR_FORMAT, "line 2, column 2", "vowel");
    snprintf(text, sizeof text, "speaker,vowl,a,b,c,d,e,f,g,h,i,j,k,l\n%s", good_rows);
    expect_vowels_error(dir, text, 0.5, PNN_ERR_FORMAT, "line 1", "header");
    snprintf(text, sizeof text, "%s", good_rows); /* no header at all */
    expect_vowels_error(dir, text, 0.5, PNN_ERR_FORMAT, "line 1", "header");
    expect_vowels_error(dir, "\n\n", 0.5, PNN_ERR_FORMAT, "empty", NULL);
    snprintf(text, sizeof text, "%s\n", vowel_header);
    expect_vowels_error(dir, text, 0.5, PNN_ERR_FORMAT, "no data rows", NULL);
    /* feature 3 constant over every row, so over the training split too */
    snprintf(text, sizeof text,
             "%s\nw01,ae,1,1,7,1,1,1,1,1,1,1,1,1\nw02,ae,2,2,7,2,2,2,2,2,2,2,2,2\n"
             "w03,iy,3,3,7,3,3,3,3,3,3,3,3,3\nw04,iy,4,4,7,4,4,4,4,4,4,4,4,4\n",
             vowel_header);
    expect_vowels_error(dir, text, 0.5, PNN_ERR_FORMAT, "column 5", "constant");
    /* test_frac out of (0, 1), or so small that no row goes to test */
    snprintf(text, sizeof text, "%s\n%s", vowel_header, good_rows);
    expect_vowels_error(dir, text, 0.01, PNN_ERR_INVALID, "test_frac", NULL);
    pnn_dataset tr, te;
    ck_assert_int_eq(pnn_vowels_load(VOWELS_CSV, 1, 0.0, &tr, &te), PNN_ERR_INVALID);
    ck_assert_int_eq(pnn_vowels_load(VOWELS_CSV, 1, 1.0, &tr, &te), PNN_ERR_INVALID);
    ck_assert_int_eq(pnn_vowels_load(VOWELS_CSV, 1, NAN, &tr, &te), PNN_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(pnn_last_error(), "test_frac"));
    ck_assert_int_eq(pnn_vowels_load(VOWELS_CSV, 1, 0.2, &tr, &tr), PNN_ERR_INVALID);

    /* paths that cannot be read */
    ck_assert_int_eq(pnn_vowels_load("/nonexistent/pnn/vowels.csv", 1, 0.2, &tr, &te), PNN_ERR_NOT_FOUND);
    ck_assert_ptr_nonnull(strstr(pnn_last_error(), "/nonexistent/pnn/vowels.csv"));
    ck_assert_ptr_null(tr.x);
    ck_assert_int_eq(pnn_vowels_load(dir, 1, 0.2, &tr, &te), PNN_ERR_FORMAT); /* a directory */
    ck_assert_ptr_nonnull(strstr(pnn_last_error(), dir));
    ck_assert_ptr_nonnull(strstr(pnn_last_error(), "not a regular file (a directory)"));
    remove_tmpdir(dir);
}
END_TEST

int main(void) {
    Suite *s = suite_create("data");
    TCase *tc = tcase_create("data");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, fmnist_real_train);
    tcase_add_test(tc, fmnist_real_test_and_limit);
    tcase_add_test(tc, fmnist_synthetic_gzip_and_plain);
    tcase_add_test(tc, fmnist_bad_files);
    tcase_add_test(tc, hflip_mirrors_rows);
    tcase_add_test(tc, vowels_shipped_split);
    tcase_add_test(tc, vowels_split_follows_seed);
    tcase_add_test(tc, vowels_synthetic_classes_and_scaling);
    tcase_add_test(tc, vowels_malformed_csv);
    suite_add_tcase(s, tc);
    return pnn_test_run(s);
}
