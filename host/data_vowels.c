/* The Hillenbrand vowel CSV (speaker, vowel, 12 formant features): strict parsing with messages
 * that name file, line and column; a seeded split stratified by vowel; z-scoring with the
 * training split's statistics. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pnn/data.h"
#include "pnn/fileio.h"
#include "pnn/rng.h"

#define PNN_VOWEL_FEATURES 12
#define PNN_VOWEL_COLUMNS (2 + PNN_VOWEL_FEATURES)
#define PNN_VOWEL_LABEL_MAX 16 /* bytes of a vowel label, with its terminator */

/* The rows read so far: features in file order and each row's vowel label. */
typedef struct {
    int64_t n, cap;
    double *x;                           /* n x PNN_VOWEL_FEATURES */
    char (*label)[PNN_VOWEL_LABEL_MAX];  /* n labels */
} pnn_vowel_rows;

static void pnn_vowel_rows_free(pnn_vowel_rows *r) {
    free(r->x);
    free(r->label);
    memset(r, 0, sizeof *r);
}

static pnn_status pnn_vowel_rows_grow(pnn_vowel_rows *r, const char *path) {
    if (r->n < r->cap) return PNN_OK;
    int64_t cap = r->cap ? 2 * r->cap : 256;
    double *x = realloc(r->x, (size_t)cap * PNN_VOWEL_FEATURES * sizeof *x);
    if (!x) return PNN_ERROR(PNN_ERR_NOMEM, "no memory for %lld rows of %s", (long long)cap, path);
    r->x = x;
    char(*label)[PNN_VOWEL_LABEL_MAX] = realloc(r->label, (size_t)cap * sizeof *label);
    if (!label) return PNN_ERROR(PNN_ERR_NOMEM, "no memory for %lld rows of %s", (long long)cap, path);
    r->label = label;
    r->cap = cap;
    return PNN_OK;
}

/* Splits line in place at commas into at most max fields, each trimmed of surrounding blanks;
 * returns the number of fields the line has (which may exceed max). */
static int pnn_csv_split(char *line, char **fields, int max) {
    int n = 0;
    char *p = line;
    for (;;) {
        char *end = strchr(p, ',');
        if (end) *end = '\0';
        while (isspace((unsigned char)*p)) p++;
        size_t len = strlen(p);
        while (len > 0 && isspace((unsigned char)p[len - 1])) p[--len] = '\0';
        if (n < max) fields[n] = p;
        n++;
        if (!end) return n;
        p = end + 1;
    }
}

/* Checks the header: speaker, vowel, then 12 named feature columns. The names are kept
 * (copied into names) so that messages about a value can name its column. */
static pnn_status pnn_vowel_header(const char *path, long lineno, char *line, char names[PNN_VOWEL_COLUMNS][64]) {
    char *f[PNN_VOWEL_COLUMNS];
    if (strncmp(line, "\xEF\xBB\xBF", 3) == 0) line += 3; /* a UTF-8 byte-order mark */
    int n = pnn_csv_split(line, f, PNN_VOWEL_COLUMNS);
    if (n != PNN_VOWEL_COLUMNS || strcmp(f[0], "speaker") != 0 || strcmp(f[1], "vowel") != 0)
        return PNN_ERROR(PNN_ERR_FORMAT,
                         "%s line %ld: the header must be speaker,vowel followed by %d feature names (%d columns); "
                         "found %d columns starting '%s'; is this the Hillenbrand vowel CSV?",
                         path, lineno, PNN_VOWEL_FEATURES, PNN_VOWEL_COLUMNS, n, n > 0 ? f[0] : "");
    for (int c = 0; c < PNN_VOWEL_COLUMNS; c++) {
        if (!*f[c])
            return PNN_ERROR(PNN_ERR_FORMAT, "%s line %ld: header column %d has no name; name every column", path,
                             lineno, c + 1);
        snprintf(names[c], 64, "%s", f[c]);
    }
    return PNN_OK;
}

/* Parses one data row (line number lineno of the file) and appends it to rows. */
static pnn_status pnn_vowel_row(const char *path, long lineno, char *line, char names[PNN_VOWEL_COLUMNS][64],
                                pnn_vowel_rows *rows) {
    char *f[PNN_VOWEL_COLUMNS];
    int n = pnn_csv_split(line, f, PNN_VOWEL_COLUMNS);
    if (n != PNN_VOWEL_COLUMNS)
        return PNN_ERROR(PNN_ERR_FORMAT, "%s line %ld: found %d columns, expected %d (speaker, vowel, %d features)",
                         path, lineno, n, PNN_VOWEL_COLUMNS, PNN_VOWEL_FEATURES);
    size_t len = strlen(f[1]);
    if (len == 0 || len >= PNN_VOWEL_LABEL_MAX)
        return PNN_ERROR(PNN_ERR_FORMAT, "%s line %ld, column 2 (%s): the vowel label '%s' must have 1 to %d characters",
                         path, lineno, names[1], f[1], PNN_VOWEL_LABEL_MAX - 1);
    PNN_TRY(pnn_vowel_rows_grow(rows, path));
    double *x = rows->x + rows->n * PNN_VOWEL_FEATURES;
    for (int j = 0; j < PNN_VOWEL_FEATURES; j++) {
        const char *s = f[2 + j];
        char *end;
        double v = strtod(s, &end);
        if (!*s || *end || !isfinite(v))
            return PNN_ERROR(PNN_ERR_FORMAT, "%s line %ld, column %d (%s): '%s' is not a finite number", path, lineno,
                             3 + j, names[2 + j], s);
        x[j] = v;
    }
    memcpy(rows->label[rows->n], f[1], len + 1);
    rows->n++;
    return PNN_OK;
}

/* Reads every row of the CSV: the first non-blank line is the header; blank lines are ignored
 * and CRLF line ends accepted. */
static pnn_status pnn_vowel_read(const char *path, pnn_vowel_rows *rows) {
    int fd;
    pnn_status opened = pnn_open_regular(path, O_RDONLY, 0, "vowel CSV", &fd);
    if (opened != PNN_OK) {
        char why[512];
        snprintf(why, sizeof why, "%s", pnn_last_error());
        return PNN_ERROR(opened, "%s; the project ships the vowels as data/vowels_hillenbrand_women.csv", why);
    }
    FILE *fp = fdopen(fd, "r");
    if (!fp) {
        close(fd);
        return PNN_ERROR(PNN_ERR_NOMEM, "cannot read the vowel CSV %s: %s", path, strerror(errno));
    }
    char names[PNN_VOWEL_COLUMNS][64];
    char *line = NULL;
    size_t cap = 0;
    long lineno = 0;
    int have_header = 0;
    pnn_status st = PNN_OK;
    for (;;) {
        errno = 0;
        ssize_t len = getline(&line, &cap, fp);
        if (len < 0) break;
        lineno++;
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = '\0';
        const char *p = line;
        while (isspace((unsigned char)*p)) p++;
        if (!*p) continue;
        if (!have_header) {
            PNN_GOTO(pnn_vowel_header(path, lineno, line, names));
            have_header = 1;
        } else {
            PNN_GOTO(pnn_vowel_row(path, lineno, line, names, rows));
        }
    }
    if (ferror(fp))
        st = PNN_ERROR(PNN_ERR_IO, "reading %s failed after line %ld: %s", path, lineno, strerror(errno));
    else if (!have_header)
        st = PNN_ERROR(PNN_ERR_FORMAT, "%s is empty; expected a header line and rows of vowel data", path);
    else if (rows->n == 0)
        st = PNN_ERROR(PNN_ERR_FORMAT, "%s has a header but no data rows", path);
fail: /* the way out on success too */
    free(line);
    fclose(fp);
    return st;
}

static int pnn_label_cmp(const void *a, const void *b) { return strcmp(a, b); }

/* Class index of every row: the distinct labels sorted alphabetically, numbered from 0. */
static pnn_status pnn_vowel_classes(const char *path, const pnn_vowel_rows *rows, int *cls, int *n_classes) {
    char(*sorted)[PNN_VOWEL_LABEL_MAX] = malloc((size_t)rows->n * sizeof *sorted);
    if (!sorted) return PNN_ERROR(PNN_ERR_NOMEM, "no memory to sort the labels of %s", path);
    memcpy(sorted, rows->label, (size_t)rows->n * sizeof *sorted);
    qsort(sorted, (size_t)rows->n, sizeof *sorted, pnn_label_cmp);
    int64_t k = 0;
    for (int64_t i = 0; i < rows->n; i++)
        if (k == 0 || strcmp(sorted[i], sorted[k - 1]) != 0) memmove(sorted[k++], sorted[i], sizeof *sorted);
    for (int64_t i = 0; i < rows->n; i++) {
        const char *hit = bsearch(rows->label[i], sorted, (size_t)k, sizeof *sorted, pnn_label_cmp);
        cls[i] = (int)((hit - sorted[0]) / PNN_VOWEL_LABEL_MAX);
    }
    free(sorted);
    *n_classes = (int)k;
    return PNN_OK;
}

/* Marks which rows go to the test split: for each class, a permutation from
 * (seed, stream "vowels.split"/class) of its rows in file order, whose first
 * round(test_frac * count) entries are test. Depends only on the file, seed and test_frac. */
static pnn_status pnn_vowel_split(const char *path, const pnn_vowel_rows *rows, const int *cls, int n_classes,
                                  uint64_t seed, double test_frac, unsigned char *in_test) {
    int64_t *members = malloc((size_t)rows->n * sizeof *members);
    int64_t *perm = malloc((size_t)rows->n * sizeof *perm);
    if (!members || !perm) {
        free(members);
        free(perm);
        return PNN_ERROR(PNN_ERR_NOMEM, "no memory to split %s", path);
    }
    memset(in_test, 0, (size_t)rows->n);
    for (int c = 0; c < n_classes; c++) {
        int64_t count = 0;
        for (int64_t i = 0; i < rows->n; i++)
            if (cls[i] == c) members[count++] = i;
        int64_t k = (int64_t)llround(test_frac * (double)count);
        pnn_rng_permutation(seed, pnn_rng_stream("vowels.split", (uint64_t)c), count, perm);
        for (int64_t j = 0; j < k; j++) in_test[members[perm[j]]] = 1;
    }
    free(members);
    free(perm);
    return PNN_OK;
}

/* Allocates d for n rows and fills it from the rows whose in_test flag equals want, in file
 * order, z-scored with mean and sd. */
static pnn_status pnn_vowel_fill(const char *path, const char *name, const pnn_vowel_rows *rows, const int *cls,
                                 int n_classes, const unsigned char *in_test, unsigned char want, int64_t n,
                                 const double *mean, const double *sd, pnn_dataset *d) {
    d->x = malloc((size_t)n * PNN_VOWEL_FEATURES * sizeof *d->x);
    d->y = malloc((size_t)n * sizeof *d->y);
    if (!d->x || !d->y) {
        pnn_dataset_free(d);
        return PNN_ERROR(PNN_ERR_NOMEM, "no memory for the %s split of %s", name, path);
    }
    int64_t k = 0;
    for (int64_t i = 0; i < rows->n; i++) {
        if (in_test[i] != want) continue;
        for (int j = 0; j < PNN_VOWEL_FEATURES; j++)
            d->x[k * PNN_VOWEL_FEATURES + j] = (float)((rows->x[i * PNN_VOWEL_FEATURES + j] - mean[j]) / sd[j]);
        d->y[k++] = (float)cls[i];
    }
    snprintf(d->name, sizeof d->name, "%s", name);
    d->n = n;
    d->dim = PNN_VOWEL_FEATURES;
    d->n_classes = n_classes;
    return PNN_OK;
}

/* Loads the vowel CSV and splits it (see data.h). Errors: bad arguments -> PNN_ERR_INVALID
 * (test_frac outside (0, 1), or one that leaves a split empty); a missing file ->
 * PNN_ERR_NOT_FOUND; malformed content or a feature that is constant over the training split
 * -> PNN_ERR_FORMAT. */
pnn_status pnn_vowels_load(const char *csv_path, uint64_t seed, double test_frac, pnn_dataset *train,
                           pnn_dataset *test) {
    if (!train || !test || train == test)
        return PNN_ERROR(PNN_ERR_INVALID, "pnn_vowels_load: train and test must be two distinct data sets");
    memset(train, 0, sizeof *train);
    memset(test, 0, sizeof *test);
    if (!csv_path) return PNN_ERROR(PNN_ERR_INVALID, "pnn_vowels_load: csv_path is NULL");
    if (!(test_frac > 0.0 && test_frac < 1.0))
        return PNN_ERROR(PNN_ERR_INVALID, "vowels: test_frac %g must be strictly between 0 and 1 (e.g. 0.2)",
                         test_frac);

    pnn_vowel_rows rows = {0};
    int *cls = NULL;
    unsigned char *in_test = NULL;
    pnn_status st = PNN_OK;
    PNN_GOTO(pnn_vowel_read(csv_path, &rows));
    cls = malloc((size_t)rows.n * sizeof *cls);
    in_test = malloc((size_t)rows.n);
    if (!cls || !in_test) {
        st = PNN_ERROR(PNN_ERR_NOMEM, "no memory to index the %lld rows of %s", (long long)rows.n, csv_path);
        goto fail;
    }
    int n_classes = 0;
    PNN_GOTO(pnn_vowel_classes(csv_path, &rows, cls, &n_classes));
    PNN_GOTO(pnn_vowel_split(csv_path, &rows, cls, n_classes, seed, test_frac, in_test));

    int64_t n_test = 0;
    for (int64_t i = 0; i < rows.n; i++) n_test += in_test[i];
    int64_t n_train = rows.n - n_test;
    if (n_test == 0 || n_train < 2) {
        st = PNN_ERROR(PNN_ERR_INVALID,
                       "vowels: test_frac %g splits the %lld rows of %s into %lld train and %lld test; each "
                       "split needs samples (train at least 2): choose a test_frac nearer 0.5",
                       test_frac, (long long)rows.n, csv_path, (long long)n_train, (long long)n_test);
        goto fail;
    }

    double mean[PNN_VOWEL_FEATURES] = {0}, sd[PNN_VOWEL_FEATURES] = {0};
    for (int64_t i = 0; i < rows.n; i++)
        if (!in_test[i])
            for (int j = 0; j < PNN_VOWEL_FEATURES; j++) mean[j] += rows.x[i * PNN_VOWEL_FEATURES + j];
    for (int j = 0; j < PNN_VOWEL_FEATURES; j++) mean[j] /= (double)n_train;
    for (int64_t i = 0; i < rows.n; i++)
        if (!in_test[i])
            for (int j = 0; j < PNN_VOWEL_FEATURES; j++) {
                double d = rows.x[i * PNN_VOWEL_FEATURES + j] - mean[j];
                sd[j] += d * d;
            }
    for (int j = 0; j < PNN_VOWEL_FEATURES; j++) {
        sd[j] = sqrt(sd[j] / (double)n_train);
        if (!(sd[j] > 1e-12 * fmax(1.0, fabs(mean[j])))) {
            st = PNN_ERROR(PNN_ERR_FORMAT,
                           "%s: feature column %d is constant (%g) over the training split, so it cannot be "
                           "z-scored; check the file",
                           csv_path, 3 + j, mean[j]);
            goto fail;
        }
    }

    PNN_GOTO(pnn_vowel_fill(csv_path, "vowels-train", &rows, cls, n_classes, in_test, 0, n_train, mean, sd, train));
    PNN_GOTO(pnn_vowel_fill(csv_path, "vowels-test", &rows, cls, n_classes, in_test, 1, n_test, mean, sd, test));
    pnn_vowel_rows_free(&rows);
    free(cls);
    free(in_test);
    return PNN_OK;
fail:
    pnn_dataset_free(train);
    pnn_dataset_free(test);
    pnn_vowel_rows_free(&rows);
    free(cls);
    free(in_test);
    return st;
}
