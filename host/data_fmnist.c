/* Fashion-MNIST from its IDX files (gzip-compressed or plain, both read through zlib), with
 * every header field and length checked; also the left-right image flip used for augmentation
 * and the release of any loaded data set. */
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <zlib.h>

#include "pnn/data.h"

#define PNN_IDX_MAGIC_IMAGES 0x00000803u /* unsigned bytes, 3 dimensions */
#define PNN_IDX_MAGIC_LABELS 0x00000801u /* unsigned bytes, 1 dimension */
#define PNN_IDX_MAX_SIDE 4096u
#define PNN_FMNIST_CLASSES 10
#define PNN_FMNIST_HINT                                                                            \
    "install Debian's dataset-fashion-mnist package (files in /usr/share/datasets/fashion-mnist) " \
    "or run tools/setup.sh"

/* One open IDX file: the path it was found under (for messages) and the zlib stream. */
typedef struct {
    char path[4096];
    gzFile gz;
} pnn_idx_file;

static int pnn_is_regular_file(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* Opens dir/base.gz, or dir/base when there is no .gz. A missing file is PNN_ERR_NOT_FOUND
 * with the install hint; a file that exists but cannot be opened is PNN_ERR_IO. */
static pnn_status pnn_idx_open(const char *dir, const char *base, pnn_idx_file *f) {
    int len = snprintf(f->path, sizeof f->path, "%s/%s.gz", dir, base);
    if (len < 0 || (size_t)len >= sizeof f->path)
        return PNN_ERROR(PNN_ERR_INVALID, "Fashion-MNIST directory path '%s' is too long (limit %zu bytes)",
                         dir, sizeof f->path - 8);
    if (!pnn_is_regular_file(f->path)) {
        snprintf(f->path, sizeof f->path, "%s/%s", dir, base);
        if (!pnn_is_regular_file(f->path))
            return PNN_ERROR(PNN_ERR_NOT_FOUND,
                             "Fashion-MNIST file missing: neither %s/%s.gz nor %s/%s exists; " PNN_FMNIST_HINT,
                             dir, base, dir, base);
    }
    errno = 0;
    f->gz = gzopen(f->path, "rb");
    if (!f->gz)
        return PNN_ERROR(PNN_ERR_IO, "cannot open %s: %s; check its permissions", f->path,
                         errno ? strerror(errno) : "out of memory in zlib");
    return PNN_OK;
}

/* Reads up to len bytes; *got is how many arrived (fewer only at the end of the data). A read
 * error or corrupt compressed data is an error naming the file. */
static pnn_status pnn_idx_read(pnn_idx_file *f, void *buf, size_t len, size_t *got) {
    *got = 0;
    while (*got < len) {
        size_t want = len - *got;
        if (want > (size_t)INT_MAX) want = (size_t)INT_MAX;
        int n = gzread(f->gz, (unsigned char *)buf + *got, (unsigned)want);
        if (n < 0) {
            int zerr = 0;
            const char *msg = gzerror(f->gz, &zerr);
            if (zerr == Z_ERRNO)
                return PNN_ERROR(PNN_ERR_IO, "reading %s failed: %s", f->path, strerror(errno));
            return PNN_ERROR(PNN_ERR_FORMAT, "%s is not valid gzip data (%s); re-download or reinstall it",
                             f->path, msg);
        }
        if (n == 0) break;
        *got += (size_t)n;
    }
    return PNN_OK;
}

static uint32_t pnn_be32(const unsigned char *p) {
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | (uint32_t)p[3];
}

/* Reads the header of an IDX file of `ndim` dimensions (4-byte magic, then ndim big-endian
 * sizes) into dims after checking the magic number. */
static pnn_status pnn_idx_header(pnn_idx_file *f, uint32_t magic, int ndim, uint32_t *dims) {
    unsigned char h[16];
    size_t want = 4 + 4 * (size_t)ndim, got;
    PNN_TRY(pnn_idx_read(f, h, want, &got));
    if (got < want)
        return PNN_ERROR(PNN_ERR_FORMAT,
                         "%s is truncated: expected at least %zu bytes (the IDX header), found %zu; "
                         "re-download or reinstall it",
                         f->path, want, got);
    uint32_t m = pnn_be32(h);
    if (m != magic)
        return PNN_ERROR(PNN_ERR_FORMAT,
                         "%s has magic number 0x%08x, expected 0x%08x (an IDX file of unsigned bytes with %d "
                         "dimension%s); is it the right file?",
                         f->path, m, magic, ndim, ndim == 1 ? "" : "s");
    for (int i = 0; i < ndim; i++) dims[i] = pnn_be32(h + 4 + 4 * i);
    return PNN_OK;
}

/* Reads n >= 1 records of rec bytes each (after a header of header_bytes) into *out as floats times
 * scale. The array grows as data arrives, so a header that claims more records than the file
 * holds is reported as truncation, not as an enormous allocation. */
static pnn_status pnn_idx_records(pnn_idx_file *f, int64_t header_bytes, int64_t n, int64_t rec, float scale,
                                  float **out) {
    int64_t cap = 0, done = 0;
    float *buf = NULL;
    unsigned char chunk[1 << 16];
    int64_t total = n * rec;
    pnn_status st = PNN_OK;
    while (done < total) {
        size_t want = (size_t)(total - done < (int64_t)sizeof chunk ? total - done : (int64_t)sizeof chunk);
        size_t got;
        PNN_GOTO(pnn_idx_read(f, chunk, want, &got));
        if (done + (int64_t)got > cap) {
            int64_t ncap = cap ? cap : (int64_t)1 << 20;
            while (ncap < done + (int64_t)got) ncap *= 2;
            if (ncap > total) ncap = total;
            float *nb = realloc(buf, (size_t)ncap * sizeof *nb);
            if (!nb) {
                st = PNN_ERROR(PNN_ERR_NOMEM, "no memory for %lld values of %s",
                               (long long)ncap, f->path);
                goto fail;
            }
            buf = nb, cap = ncap;
        }
        for (size_t i = 0; i < got; i++) buf[done + (int64_t)i] = (float)chunk[i] * scale;
        done += (int64_t)got;
        if (got < want) {
            st = PNN_ERROR(PNN_ERR_FORMAT,
                           "%s is truncated: expected at least %lld bytes (uncompressed) for %lld records of "
                           "%lld bytes, found %lld; re-download or reinstall it",
                           f->path, (long long)(header_bytes + total), (long long)n, (long long)rec,
                           (long long)(header_bytes + done));
            goto fail;
        }
    }
    *out = buf;
    return PNN_OK;
fail:
    free(buf);
    return st;
}

/* Loads split "train" or "test" of Fashion-MNIST from dir. The headers of both files are
 * checked (magic, sizes, equal counts) before any pixel is read; only the first `limit`
 * samples are read when limit > 0, so bytes past them are not checked. */
pnn_status pnn_fmnist_load(const char *dir, const char *split, int64_t limit, pnn_dataset *out) {
    if (!out) return PNN_ERROR(PNN_ERR_INVALID, "pnn_fmnist_load: out is NULL");
    memset(out, 0, sizeof *out);
    if (!dir || !split)
        return PNN_ERROR(PNN_ERR_INVALID, "pnn_fmnist_load: %s is NULL", dir ? "split" : "dir");
    const char *prefix;
    if (strcmp(split, "train") == 0)
        prefix = "train";
    else if (strcmp(split, "test") == 0)
        prefix = "t10k";
    else
        return PNN_ERROR(PNN_ERR_INVALID, "Fashion-MNIST split '%s' is unknown; use \"train\" or \"test\"", split);
    if (limit < 0)
        return PNN_ERROR(PNN_ERR_INVALID, "Fashion-MNIST limit %lld is negative; use 0 for all samples",
                         (long long)limit);
    struct stat sd;
    if (stat(dir, &sd) != 0 || !S_ISDIR(sd.st_mode))
        return PNN_ERROR(PNN_ERR_NOT_FOUND, "Fashion-MNIST directory '%s' does not exist; " PNN_FMNIST_HINT, dir);

    char images_base[64], labels_base[64];
    snprintf(images_base, sizeof images_base, "%s-images-idx3-ubyte", prefix);
    snprintf(labels_base, sizeof labels_base, "%s-labels-idx1-ubyte", prefix);
    pnn_idx_file img = {.gz = NULL}, lab = {.gz = NULL};
    float *x = NULL, *y = NULL;
    pnn_status st = PNN_OK;
    PNN_GOTO(pnn_idx_open(dir, images_base, &img));
    PNN_GOTO(pnn_idx_open(dir, labels_base, &lab));

    uint32_t idims[3] = {0}, ldims[1] = {0};
    PNN_GOTO(pnn_idx_header(&img, PNN_IDX_MAGIC_IMAGES, 3, idims));
    PNN_GOTO(pnn_idx_header(&lab, PNN_IDX_MAGIC_LABELS, 1, ldims));
    if (idims[1] == 0 || idims[2] == 0 || idims[1] > PNN_IDX_MAX_SIDE || idims[2] > PNN_IDX_MAX_SIDE) {
        st = PNN_ERROR(PNN_ERR_FORMAT, "%s declares images of %u x %u pixels; expected 28 x 28 (at most %u per side)",
                       img.path, idims[1], idims[2], PNN_IDX_MAX_SIDE);
        goto fail;
    }
    if (idims[0] == 0) {
        st = PNN_ERROR(PNN_ERR_FORMAT, "%s declares 0 images; re-download or reinstall it", img.path);
        goto fail;
    }
    if (idims[0] != ldims[0]) {
        st = PNN_ERROR(PNN_ERR_FORMAT, "%s holds %u images but %s holds %u labels; the two files must be of the "
                       "same split and release",
                       img.path, idims[0], lab.path, ldims[0]);
        goto fail;
    }
    int64_t n = idims[0], h = idims[1], w = idims[2];
    if (limit > 0 && limit < n) n = limit;

    PNN_GOTO(pnn_idx_records(&lab, 8, n, 1, 1.0f, &y));
    for (int64_t i = 0; i < n; i++) {
        if (y[i] >= (float)PNN_FMNIST_CLASSES) {
            st = PNN_ERROR(PNN_ERR_FORMAT, "%s: label %d of sample %lld is out of range (expected 0..%d)",
                           lab.path, (int)y[i], (long long)i, PNN_FMNIST_CLASSES - 1);
            goto fail;
        }
    }
    PNN_GOTO(pnn_idx_records(&img, 16, n, h * w, 1.0f / 255.0f, &x));

    gzclose(img.gz);
    gzclose(lab.gz);
    snprintf(out->name, sizeof out->name, "fashion-mnist-%s", split);
    out->n = n;
    out->dim = h * w;
    out->n_classes = PNN_FMNIST_CLASSES;
    out->image_h = h;
    out->image_w = w;
    out->x = x;
    out->y = y;
    return PNN_OK;
fail:
    free(x);
    free(y);
    if (img.gz) gzclose(img.gz);
    if (lab.gz) gzclose(lab.gz);
    return st;
}

void pnn_dataset_free(pnn_dataset *d) {
    if (!d) return;
    free(d->x);
    free(d->y);
    memset(d, 0, sizeof *d);
}

void pnn_image_hflip(const float *img, int64_t h, int64_t w, float *out) {
    for (int64_t r = 0; r < h; r++)
        for (int64_t c = 0; c < w; c++) out[r * w + c] = img[r * w + (w - 1 - c)];
}
