/* safetensors checkpoints: atomic writes (temporary file, fsync, rename, directory fsync) and
 * reads that validate the whole file before handing out any tensor, so a truncated, corrupted
 * or foreign file fails with a message instead of loading garbage. float32 only. */
#include "pnn/safetensors.h"

#include "pnn/fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors data is little-endian; pnn writes host floats directly and needs a little-endian host"
#endif

#define ST_MAX_HEADER ((uint64_t)100 << 20)
#define ST_ALIGN 64
#define ST_META_KEY "__metadata__"

struct pnn_safetensors {
    int n;
    pnn_st_entry *entries; /* sorted by name; names are owned (malloc'd) */
    float *data;           /* one aligned block holding every tensor */
    int n_meta;
    pnn_st_meta *meta; /* keys and values owned */
};

/* ---- I/O helpers ---- */

static int write_all(int fd, const void *buf, size_t len) {
    const char *p = buf;
    while (len) {
        ssize_t w = write(fd, p, len);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

/* Reads exactly len bytes at offset; -1 with errno set on error, 0 for a short file. */
static int pread_all(int fd, void *buf, size_t len, off_t off) {
    char *p = buf;
    while (len) {
        ssize_t r = pread(fd, p, len, off);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) return -1;
        if (r == 0) return 0;
        p += r;
        off += r;
        len -= (size_t)r;
    }
    return 1;
}

static int64_t count_nonfinite(const float *x, int64_t n) {
    int64_t bad = 0;
    for (int64_t i = 0; i < n; i++) bad += !isfinite(x[i]);
    return bad;
}

/* ---- writing ---- */

/* An entry's place in the name-sorted order that the header and data follow. */
typedef struct {
    const char *name;
    int index;
} st_order;

static int by_order_name(const void *a, const void *b) {
    return strcmp(((const st_order *)a)->name, ((const st_order *)b)->name);
}

/* Checks one entry to be written and returns its element count in *count. */
static pnn_status check_entry(const char *path, const pnn_st_entry *e, int index, int64_t *count) {
    if (!e->name || !*e->name || !strcmp(e->name, ST_META_KEY))
        return PNN_ERROR(PNN_ERR_INVALID, "writing '%s': entry %d needs a non-empty name other than '%s'", path, index,
                         ST_META_KEY);
    if (e->ndim < 0 || e->ndim > 4)
        return PNN_ERROR(PNN_ERR_INVALID, "writing '%s': tensor '%s' has %d dims; use 0 to 4", path, e->name, e->ndim);
    int64_t n = 1;
    for (int d = 0; d < e->ndim; d++) {
        if (e->shape[d] < 0 || (e->shape[d] > 0 && n > (INT64_MAX / 8) / e->shape[d]))
            return PNN_ERROR(PNN_ERR_INVALID, "writing '%s': tensor '%s' has a bad shape (dim %d is %lld)", path,
                             e->name, d, (long long)e->shape[d]);
        n *= e->shape[d];
    }
    if (n > 0 && !e->data)
        return PNN_ERROR(PNN_ERR_INVALID, "writing '%s': tensor '%s' has no data", path, e->name);
    int64_t bad = n > 0 ? count_nonfinite(e->data, n) : 0;
    if (bad)
        return PNN_ERROR(PNN_ERR_INVALID, "writing '%s': tensor '%s' has %lld NaN or Inf values; a checkpoint with "
                         "them could not be read back (training has diverged: lower the learning rate)",
                         path, e->name, (long long)bad);
    *count = n;
    return PNN_OK;
}

/* Builds the padded header: 8-byte length, then JSON padded with spaces to a multiple of 8.
 * order lists the entries sorted by name; data is laid out in that order. */
static pnn_status build_header(const char *path, const pnn_st_entry *entries, const st_order *order, const int64_t *counts,
                               int n, const pnn_st_meta *meta, int n_meta, char **out, size_t *out_len) {
    pnn_status st = PNN_OK;
    json_t *root = json_object(), *jmeta = n_meta ? json_object() : NULL;
    char *text = NULL;
    if (!root || (n_meta && !jmeta)) goto nomem;
    for (int k = 0; k < n_meta; k++) {
        if (!meta[k].key || !meta[k].value || json_object_get(jmeta, meta[k].key)) {
            st = PNN_ERROR(PNN_ERR_INVALID, "writing '%s': metadata entry %d needs a key and a value, and keys must "
                           "be unique", path, k);
            goto done;
        }
        if (json_object_set_new(jmeta, meta[k].key, json_string(meta[k].value))) {
            st = PNN_ERROR(PNN_ERR_INVALID, "writing '%s': metadata '%s' is not valid UTF-8", path, meta[k].key);
            goto done;
        }
    }
    if (jmeta && json_object_set(root, ST_META_KEY, jmeta)) goto nomem;
    int64_t offset = 0;
    for (int k = 0; k < n; k++) {
        const pnn_st_entry *e = &entries[order[k].index];
        json_t *shape = json_array();
        for (int d = 0; shape && d < e->ndim; d++)
            if (json_array_append_new(shape, json_integer(e->shape[d]))) {
                json_decref(shape);
                shape = NULL;
            }
        int64_t end = offset + 4 * counts[order[k].index];
        json_t *desc = shape ? json_pack("{s:s, s:o, s:[I, I]}", "dtype", "F32", "shape", shape, "data_offsets",
                                         (json_int_t)offset, (json_int_t)end)
                             : NULL;
        if (!desc) goto nomem;
        if (json_object_set_new(root, e->name, desc)) {
            st = PNN_ERROR(PNN_ERR_INVALID, "writing '%s': tensor name '%s' is not valid UTF-8", path, e->name);
            goto done;
        }
        offset = end;
    }
    text = json_dumps(root, JSON_COMPACT | JSON_SORT_KEYS);
    if (!text) goto nomem;
    size_t json_len = strlen(text), padded = (json_len + 7) & ~(size_t)7;
    char *buf = malloc(8 + padded);
    if (!buf) goto nomem;
    for (int b = 0; b < 8; b++) buf[b] = (char)(((uint64_t)padded >> (8 * b)) & 0xff);
    memcpy(buf + 8, text, json_len);
    memset(buf + 8 + json_len, ' ', padded - json_len);
    *out = buf;
    *out_len = 8 + padded;
    goto done;
nomem:
    st = PNN_ERROR(PNN_ERR_NOMEM, "writing '%s': out of memory building the header", path);
done:
    free(text);
    json_decref(jmeta);
    json_decref(root);
    return st;
}

/* Writes header and data to the temporary file and makes it durable. */
static pnn_status write_temp(const char *path, const char *tmp, const char *header, size_t header_len,
                             const pnn_st_entry *entries, const st_order *order, const int64_t *counts, int n) {
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return PNN_ERROR(PNN_ERR_IO, "writing '%s': cannot create '%s': %s (does the directory exist and is it "
                         "writable?)", path, tmp, strerror(errno));
    int failed = write_all(fd, header, header_len);
    for (int k = 0; !failed && k < n; k++)
        failed = write_all(fd, entries[order[k].index].data, (size_t)counts[order[k].index] * sizeof(float));
    if (!failed) failed = fsync(fd);
    int err = errno;
    if (close(fd) && !failed) {
        failed = 1;
        err = errno;
    }
    if (failed) return PNN_ERROR(PNN_ERR_IO, "writing '%s': %s (is the disk full?)", path, strerror(err));
    return PNN_OK;
}

pnn_status pnn_safetensors_write(const char *path, const pnn_st_entry *entries, int n_entries,
                                 const pnn_st_meta *meta, int n_meta) {
    if (!path || n_entries < 0 || n_meta < 0 || (n_entries && !entries) || (n_meta && !meta))
        return PNN_ERROR(PNN_ERR_INVALID, "pnn_safetensors_write: bad arguments (path, entries or metadata missing)");
    pnn_status st = PNN_OK;
    st_order *order = malloc(((size_t)n_entries + 1) * sizeof *order);
    int64_t *counts = malloc(((size_t)n_entries + 1) * sizeof *counts);
    size_t plen = strlen(path);
    char *tmp = malloc(plen + 32), *dir = malloc(plen + 2), *header = NULL;
    size_t header_len = 0;
    int dir_fd = -1, tmp_made = 0;
    if (!order || !counts || !tmp || !dir) {
        st = PNN_ERROR(PNN_ERR_NOMEM, "writing '%s': out of memory", path);
        goto done;
    }
    for (int i = 0; i < n_entries; i++) {
        PNN_GOTO(check_entry(path, &entries[i], i, &counts[i]));
        order[i] = (st_order){entries[i].name, i};
    }
    qsort(order, (size_t)n_entries, sizeof *order, by_order_name);
    for (int k = 1; k < n_entries; k++)
        if (!strcmp(order[k].name, order[k - 1].name)) {
            st = PNN_ERROR(PNN_ERR_INVALID, "writing '%s': two tensors are named '%s'; names must be unique", path,
                           order[k].name);
            goto done;
        }
    PNN_GOTO(build_header(path, entries, order, counts, n_entries, meta, n_meta, &header, &header_len));

    /* The directory holding path: opened first so that a missing one fails before anything is written. */
    const char *slash = strrchr(path, '/');
    if (!slash) strcpy(dir, ".");
    else if (slash == path) strcpy(dir, "/");
    else {
        memcpy(dir, path, (size_t)(slash - path));
        dir[slash - path] = '\0';
    }
    dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir_fd < 0) {
        st = PNN_ERROR(PNN_ERR_IO, "writing '%s': cannot open its directory '%s': %s (create it first)", path, dir,
                       strerror(errno));
        goto fail;
    }
    snprintf(tmp, plen + 32, "%s.tmp.%ld", path, (long)getpid());
    tmp_made = 1;
    PNN_GOTO(write_temp(path, tmp, header, header_len, entries, order, counts, n_entries));
    if (rename(tmp, path)) {
        st = PNN_ERROR(PNN_ERR_IO, "writing '%s': cannot rename '%s' over it: %s", path, tmp, strerror(errno));
        goto fail;
    }
    tmp_made = 0;
    if (fsync(dir_fd))
        st = PNN_ERROR(PNN_ERR_IO, "writing '%s': the file is in place but syncing directory '%s' failed: %s; it may "
                       "not survive a crash", path, dir, strerror(errno));
    goto done;
fail:
    if (tmp_made) unlink(tmp);
done:
    if (dir_fd >= 0) close(dir_fd);
    free(header);
    free(order);
    free(counts);
    free(tmp);
    free(dir);
    return st;
}

/* ---- reading ---- */

typedef struct {
    int64_t begin, end; /* byte offsets inside the data section */
    int64_t count;
    int index; /* the entry it belongs to */
} st_span;

void pnn_safetensors_free(pnn_safetensors *st) {
    if (!st) return;
    /* Names and metadata strings were malloc'd here; the public structs only expose them const. */
    for (int i = 0; i < st->n; i++) free((char *)st->entries[i].name);
    for (int i = 0; i < st->n_meta; i++) {
        free((char *)st->meta[i].key);
        free((char *)st->meta[i].value);
    }
    free(st->entries);
    free(st->meta);
    free(st->data);
    free(st);
}

static pnn_status read_metadata(const char *path, json_t *jmeta, pnn_safetensors *st) {
    if (!json_is_object(jmeta))
        return PNN_ERROR(PNN_ERR_FORMAT, "'%s': '%s' in the header must be an object of strings", path, ST_META_KEY);
    st->meta = calloc(json_object_size(jmeta) + 1, sizeof *st->meta);
    if (!st->meta) return PNN_ERROR(PNN_ERR_NOMEM, "'%s': out of memory for metadata", path);
    const char *key;
    json_t *val;
    json_object_foreach(jmeta, key, val) {
        if (!json_is_string(val))
            return PNN_ERROR(PNN_ERR_FORMAT, "'%s': metadata '%s' is not a string", path, key);
        pnn_st_meta *m = &st->meta[st->n_meta];
        m->key = strdup(key);
        m->value = m->key ? strdup(json_string_value(val)) : NULL;
        if (!m->value) {
            free((char *)m->key);
            m->key = NULL;
            return PNN_ERROR(PNN_ERR_NOMEM, "'%s': out of memory for metadata", path);
        }
        st->n_meta++;
    }
    return PNN_OK;
}

static int json_nonneg_int(const json_t *v, int64_t *out) {
    if (!json_is_integer(v) || json_integer_value(v) < 0) return 0;
    *out = json_integer_value(v);
    return 1;
}

/* Validates one header entry against the data section size and fills e (not its name or data)
 * and span. */
static pnn_status read_entry(const char *path, const char *name, json_t *desc, int64_t data_size, pnn_st_entry *e,
                             st_span *span) {
    if (!json_is_object(desc))
        return PNN_ERROR(PNN_ERR_FORMAT, "'%s': header entry '%s' is not an object", path, name);
    const char *field;
    json_t *val;
    json_object_foreach(desc, field, val) {
        if (strcmp(field, "dtype") && strcmp(field, "shape") && strcmp(field, "data_offsets"))
            return PNN_ERROR(PNN_ERR_FORMAT, "'%s': tensor '%s' has an unknown field '%s'", path, name, field);
    }
    json_t *dtype = json_object_get(desc, "dtype"), *shape = json_object_get(desc, "shape"),
           *offs = json_object_get(desc, "data_offsets");
    if (!json_is_string(dtype))
        return PNN_ERROR(PNN_ERR_FORMAT, "'%s': tensor '%s' has no dtype string", path, name);
    if (strcmp(json_string_value(dtype), "F32"))
        return PNN_ERROR(PNN_ERR_FORMAT, "'%s': tensor '%s' has dtype '%s'; pnn reads only F32 (convert it, e.g. "
                         "with tensor.float() in PyTorch, before saving)", path, name, json_string_value(dtype));
    if (!json_is_array(shape) || json_array_size(shape) > 4)
        return PNN_ERROR(PNN_ERR_FORMAT, "'%s': tensor '%s' needs a shape list of at most 4 dims", path, name);
    e->ndim = (int)json_array_size(shape);
    int64_t count = 1;
    for (int d = 0; d < e->ndim; d++) {
        if (!json_nonneg_int(json_array_get(shape, (size_t)d), &e->shape[d]))
            return PNN_ERROR(PNN_ERR_FORMAT, "'%s': tensor '%s': shape entry %d is not a non-negative integer", path,
                             name, d);
        /* Any count above the data size cannot match its offsets; clamp to avoid overflow. */
        count = e->shape[d] && count > data_size / e->shape[d] ? data_size + 1 : count * e->shape[d];
    }
    int64_t b, en;
    if (!json_is_array(offs) || json_array_size(offs) != 2 || !json_nonneg_int(json_array_get(offs, 0), &b) ||
        !json_nonneg_int(json_array_get(offs, 1), &en))
        return PNN_ERROR(PNN_ERR_FORMAT, "'%s': tensor '%s' needs data_offsets [begin, end] of non-negative integers",
                         path, name);
    if (b > en || en > data_size)
        return PNN_ERROR(PNN_ERR_FORMAT, "'%s': tensor '%s' has data_offsets [%lld, %lld] outside the %lld data bytes "
                         "(is the file truncated?)", path, name, (long long)b, (long long)en, (long long)data_size);
    if (count > data_size)
        return PNN_ERROR(PNN_ERR_FORMAT, "'%s': tensor '%s' spans %lld bytes but its shape needs more than the whole "
                         "data section (%lld bytes)", path, name, (long long)(en - b), (long long)data_size);
    if (en - b != 4 * count)
        return PNN_ERROR(PNN_ERR_FORMAT, "'%s': tensor '%s' spans %lld bytes but its shape needs %lld (4 per float)",
                         path, name, (long long)(en - b), (long long)(4 * count));
    span->begin = b;
    span->end = en;
    span->count = count;
    return PNN_OK;
}

static int by_span_begin(const void *a, const void *b) {
    int64_t x = ((const st_span *)a)->begin, y = ((const st_span *)b)->begin;
    return (x > y) - (x < y);
}

static int by_name(const void *a, const void *b) {
    return strcmp(((const pnn_st_entry *)a)->name, ((const pnn_st_entry *)b)->name);
}

/* Fails naming two tensors whose byte ranges overlap; empty tensors occupy nothing. */
static pnn_status check_overlaps(const char *path, const pnn_st_entry *entries, const st_span *spans, int n) {
    st_span *sorted = malloc(((size_t)n + 1) * sizeof *sorted);
    if (!sorted) return PNN_ERROR(PNN_ERR_NOMEM, "'%s': out of memory", path);
    memcpy(sorted, spans, (size_t)n * sizeof *sorted);
    qsort(sorted, (size_t)n, sizeof *sorted, by_span_begin);
    pnn_status st = PNN_OK;
    const st_span *prev = NULL;
    for (int k = 0; k < n && st == PNN_OK; k++) {
        const st_span *s = &sorted[k];
        if (s->begin == s->end) continue;
        if (prev && s->begin < prev->end)
            st = PNN_ERROR(PNN_ERR_FORMAT, "'%s': tensors '%s' [%lld, %lld] and '%s' [%lld, %lld] overlap; the file "
                           "is corrupt", path, entries[prev->index].name, (long long)prev->begin,
                           (long long)prev->end, entries[s->index].name, (long long)s->begin, (long long)s->end);
        prev = s;
    }
    free(sorted);
    return st;
}

/* Copies each tensor into its own aligned slot of one block and checks the values. */
static pnn_status read_data(const char *path, int fd, off_t data_start, pnn_safetensors *st, const st_span *spans) {
    size_t total = ST_ALIGN;
    for (int i = 0; i < st->n; i++) total += ((size_t)(spans[i].end - spans[i].begin) + ST_ALIGN - 1) & ~(size_t)(ST_ALIGN - 1);
    st->data = aligned_alloc(ST_ALIGN, total);
    if (!st->data) return PNN_ERROR(PNN_ERR_NOMEM, "'%s': out of memory for %zu bytes of tensors", path, total);
    char *slot = (char *)st->data;
    for (int i = 0; i < st->n; i++) {
        pnn_st_entry *e = &st->entries[i];
        size_t bytes = (size_t)(spans[i].end - spans[i].begin);
        int r = pread_all(fd, slot, bytes, data_start + (off_t)spans[i].begin);
        if (r < 0) return PNN_ERROR(PNN_ERR_IO, "'%s': reading tensor '%s': %s", path, e->name, strerror(errno));
        if (r == 0) return PNN_ERROR(PNN_ERR_FORMAT, "'%s': the file shrank while reading tensor '%s'", path, e->name);
        e->data = (const float *)slot;
        int64_t bad = count_nonfinite(e->data, spans[i].count);
        if (bad)
            return PNN_ERROR(PNN_ERR_FORMAT, "'%s': tensor '%s' holds %lld NaN or Inf values out of %lld; the "
                             "checkpoint was saved from a diverged run", path, e->name, (long long)bad,
                             (long long)spans[i].count);
        slot += (bytes + ST_ALIGN - 1) & ~(size_t)(ST_ALIGN - 1);
    }
    return PNN_OK;
}

/* Parses the header JSON and everything it describes into ts. */
static pnn_status read_body(const char *path, int fd, uint64_t header_len, int64_t data_size, pnn_safetensors *ts) {
    char *text = malloc(header_len ? header_len : 1);
    if (!text) return PNN_ERROR(PNN_ERR_NOMEM, "'%s': out of memory for a %llu-byte header", path,
                                (unsigned long long)header_len);
    int r = pread_all(fd, text, header_len, 8);
    if (r <= 0) {
        free(text);
        return PNN_ERROR(r < 0 ? PNN_ERR_IO : PNN_ERR_FORMAT, "'%s': cannot read the header: %s", path,
                         r < 0 ? strerror(errno) : "file too short");
    }
    json_error_t jerr;
    json_t *root = json_loadb(text, header_len, JSON_REJECT_DUPLICATES, &jerr);
    free(text);
    if (!root)
        return PNN_ERROR(PNN_ERR_FORMAT, "'%s': the header is not valid JSON (byte %d: %s); this is not a "
                         "safetensors file or it is corrupt", path, jerr.position, jerr.text);
    pnn_status st = PNN_OK;
    st_span *spans = NULL;
    if (!json_is_object(root)) {
        st = PNN_ERROR(PNN_ERR_FORMAT, "'%s': the header must be a JSON object", path);
        goto fail;
    }
    size_t n = json_object_size(root);
    ts->entries = calloc(n + 1, sizeof *ts->entries);
    spans = calloc(n + 1, sizeof *spans);
    if (!ts->entries || !spans) {
        st = PNN_ERROR(PNN_ERR_NOMEM, "'%s': out of memory for %zu header entries", path, n);
        goto fail;
    }
    const char *name;
    json_t *val;
    json_object_foreach(root, name, val) {
        if (!strcmp(name, ST_META_KEY)) {
            PNN_GOTO(read_metadata(path, val, ts));
            continue;
        }
        pnn_st_entry *e = &ts->entries[ts->n];
        PNN_GOTO(read_entry(path, name, val, data_size, e, &spans[ts->n]));
        spans[ts->n].index = ts->n;
        e->name = strdup(name);
        if (!e->name) {
            st = PNN_ERROR(PNN_ERR_NOMEM, "'%s': out of memory", path);
            goto fail;
        }
        ts->n++;
    }
    PNN_GOTO(check_overlaps(path, ts->entries, spans, ts->n));
    PNN_GOTO(read_data(path, fd, (off_t)(8 + header_len), ts, spans));
    qsort(ts->entries, (size_t)ts->n, sizeof *ts->entries, by_name);
fail: /* success falls through with st == PNN_OK */
    free(spans);
    json_decref(root);
    return st;
}

pnn_status pnn_safetensors_read(const char *path, pnn_safetensors **out) {
    if (!path || !out) return PNN_ERROR(PNN_ERR_INVALID, "pnn_safetensors_read: path and out must not be NULL");
    *out = NULL;
    int fd;
    /* a FIFO or device node named as a checkpoint is refused before it can block */
    PNN_TRY(pnn_open_regular(path, O_RDONLY, 0, "checkpoint", &fd));
    pnn_status s = PNN_OK;
    pnn_safetensors *st = NULL;
    struct stat sb;
    unsigned char len8[8];
    if (fstat(fd, &sb)) {
        s = PNN_ERROR(PNN_ERR_IO, "cannot stat checkpoint '%s': %s", path, strerror(errno));
        goto done;
    }
    if (sb.st_size < 8) {
        s = PNN_ERROR(PNN_ERR_FORMAT, "'%s' is %lld bytes, too short to be a safetensors file", path,
                      (long long)sb.st_size);
        goto done;
    }
    int r = pread_all(fd, len8, 8, 0);
    if (r <= 0) {
        s = PNN_ERROR(PNN_ERR_IO, "cannot read '%s': %s", path, r < 0 ? strerror(errno) : "file shrank");
        goto done;
    }
    uint64_t header_len = 0;
    for (int b = 7; b >= 0; b--) header_len = header_len << 8 | len8[b];
    if (header_len > ST_MAX_HEADER || header_len > (uint64_t)sb.st_size - 8) {
        s = PNN_ERROR(PNN_ERR_FORMAT, "'%s': header length %llu is larger than %s (%llu bytes); the file is truncated "
                      "or not a safetensors file", path, (unsigned long long)header_len,
                      header_len > ST_MAX_HEADER ? "the 100 MiB limit" : "the file allows",
                      header_len > ST_MAX_HEADER ? (unsigned long long)ST_MAX_HEADER
                                                 : (unsigned long long)sb.st_size - 8);
        goto done;
    }
    st = calloc(1, sizeof *st);
    if (!st) {
        s = PNN_ERROR(PNN_ERR_NOMEM, "'%s': out of memory", path);
        goto done;
    }
    s = read_body(path, fd, header_len, (int64_t)(sb.st_size - 8 - (off_t)header_len), st);
done:
    close(fd);
    if (s != PNN_OK) pnn_safetensors_free(st);
    else *out = st;
    return s;
}

int pnn_safetensors_count(const pnn_safetensors *st) { return st ? st->n : 0; }

const pnn_st_entry *pnn_safetensors_entry(const pnn_safetensors *st, int i) {
    return st && i >= 0 && i < st->n ? &st->entries[i] : NULL;
}

const pnn_st_entry *pnn_safetensors_find(const pnn_safetensors *st, const char *name) {
    if (!st || !name || !st->n) return NULL;
    pnn_st_entry key = {.name = name};
    return bsearch(&key, st->entries, (size_t)st->n, sizeof key, by_name);
}

const char *pnn_safetensors_meta(const pnn_safetensors *st, const char *key) {
    for (int i = 0; st && key && i < st->n_meta; i++)
        if (!strcmp(st->meta[i].key, key)) return st->meta[i].value;
    return NULL;
}

int pnn_safetensors_meta_count(const pnn_safetensors *st) { return st ? st->n_meta : 0; }

const pnn_st_meta *pnn_safetensors_meta_at(const pnn_safetensors *st, int i) {
    return st && i >= 0 && i < st->n_meta ? &st->meta[i] : NULL;
}
