/* Recording and replay of device calls. "record:FILE@URI" wraps any device and appends every
 * successful call (x, theta, y) to FILE; "replay:FILE" serves a recording back, call by call,
 * checking that it is asked the same questions in the same order. Recordings feed learned twins
 * and make any run repeatable without the instrument.
 *
 * File format pnn-record/1 (little-endian):
 *   "PNNREC1\n", u32 header length, a JSON header (the device's info)
 *   records: u32 magic "PNCR", u32 type, u64 payload bytes, u32 crc32(payload), u32 0, payload
 *     type 1, theta: u64 theta id, theta_dim floats (written only when theta changed)
 *     type 2, call:  u64 call index, u64 theta id, u64 batch, x [batch, x_dim], y [batch, y_dim]
 * and beside it FILE.idx: per call record three u64 (its offset, its theta record's offset, its
 * batch), so a reader finds call k without scanning. Every record is
 * flushed to disk (fdatasync) before its index entry is written; a torn record at the end (a
 * crash mid-write) is cut off, and the index rebuilt, when the file is opened again. */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "pnn/device.h"

#define REC_MAGIC "PNNREC1\n"
#define REC_FORMAT "pnn-record/1"
#define RECORD_TAG 0x52434e50u /* "PNCR" */
#define TYPE_THETA 1u
#define TYPE_CALL 2u
#define HEADER_MAX (1 << 20)

typedef struct rec_head {
    uint32_t tag, type;
    uint64_t bytes;
    uint32_t crc, zero;
} rec_head;

typedef struct rec_index_entry {
    uint64_t offset, theta_offset, batch;
} rec_index_entry;

typedef struct rec_file {
    char path[1024];
    int fd, idx_fd;
    uint64_t size;              /* bytes of valid records */
    rec_index_entry *index;     /* call records in order */
    uint64_t n_calls, cap;
    float *theta_host;          /* the theta of the last theta record */
    uint64_t theta_offset;      /* its record's offset (0 = none yet) */
    uint64_t theta_id;
} rec_file;

/* ---- file layout ---- */

static pnn_status write_all(int fd, const void *buf, size_t n, uint64_t offset, const char *path) {
    const char *p = buf;
    while (n) {
        ssize_t w = pwrite(fd, p, n, (off_t)offset);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return PNN_ERROR(PNN_ERR_IO, "cannot write %s: %s", path, strerror(errno));
        p += w, n -= (size_t)w, offset += (uint64_t)w;
    }
    return PNN_OK;
}

static int read_all(int fd, void *buf, size_t n, uint64_t offset) {
    char *p = buf;
    while (n) {
        ssize_t r = pread(fd, p, n, (off_t)offset);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return 0;
        p += r, n -= (size_t)r, offset += (uint64_t)r;
    }
    return 1;
}

static pnn_status index_push(rec_file *f, rec_index_entry e) {
    if (f->n_calls == f->cap) {
        uint64_t cap = f->cap ? 2 * f->cap : 1024;
        rec_index_entry *grown = realloc(f->index, cap * sizeof *grown);
        if (!grown) return PNN_ERROR(PNN_ERR_NOMEM, "out of memory indexing %s", f->path);
        f->index = grown;
        f->cap = cap;
    }
    f->index[f->n_calls++] = e;
    return PNN_OK;
}

static json_t *info_to_json(const pnn_device_info *info) {
    json_t *parts = json_array();
    for (int i = 0; i < info->n_theta_parts; i++) {
        const pnn_theta_part *p = &info->theta_parts[i];
        json_array_append_new(parts, json_pack("{s:s, s:I, s:I}", "name", p->name, "rows", (json_int_t)p->shape[0],
                                               "cols", (json_int_t)(p->ndim == 2 ? p->shape[1] : 0)));
    }
    return json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:[f,f], s:[f,f], s:o}", "format", REC_FORMAT, "system",
                     info->system, "system_uri", info->system_uri, "x_dim", (json_int_t)info->x_dim, "y_dim",
                     (json_int_t)info->y_dim, "theta_dim", (json_int_t)info->theta_dim, "max_batch",
                     (json_int_t)info->max_batch, "x_range", info->x_range[0], info->x_range[1], "theta_range",
                     info->theta_range[0], info->theta_range[1], "theta_parts", parts);
}

static pnn_status info_from_json(json_t *j, const char *path, pnn_device_info *info) {
    const char *format = NULL, *system = NULL, *system_uri = NULL;
    json_int_t x_dim, y_dim, theta_dim, max_batch;
    double xr0, xr1, tr0, tr1;
    json_t *parts;
    json_error_t err;
    if (json_unpack_ex(j, &err, 0, "{s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:[FF], s:[FF], s:o}", "format", &format,
                       "system", &system, "system_uri", &system_uri, "x_dim", &x_dim, "y_dim", &y_dim, "theta_dim",
                       &theta_dim, "max_batch", &max_batch, "x_range", &xr0, &xr1, "theta_range", &tr0, &tr1,
                       "theta_parts", &parts) != 0)
        return PNN_ERROR(PNN_ERR_FORMAT, "recording %s: bad header (%s)", path, err.text);
    if (strcmp(format, REC_FORMAT))
        return PNN_ERROR(PNN_ERR_FORMAT, "recording %s has format '%s'; this pnn reads %s", path, format, REC_FORMAT);
    if (x_dim < 1 || y_dim < 1 || theta_dim < 1 || max_batch < 1 || x_dim > (1 << 24) || y_dim > (1 << 24) ||
        theta_dim > ((json_int_t)1 << 32) || !json_is_array(parts) ||
        json_array_size(parts) > PNN_DEVICE_MAX_THETA_PARTS)
        return PNN_ERROR(PNN_ERR_FORMAT, "recording %s: header dims out of range", path);
    snprintf(info->system, sizeof info->system, "%s", system);
    snprintf(info->system_uri, sizeof info->system_uri, "%s", system_uri);
    info->x_dim = x_dim, info->y_dim = y_dim, info->theta_dim = theta_dim, info->max_batch = max_batch;
    info->x_range[0] = (float)xr0, info->x_range[1] = (float)xr1;
    info->theta_range[0] = (float)tr0, info->theta_range[1] = (float)tr1;
    info->n_theta_parts = (int)json_array_size(parts);
    int64_t total = 0;
    for (int i = 0; i < info->n_theta_parts; i++) {
        const char *name;
        json_int_t rows, cols;
        if (json_unpack(json_array_get(parts, (size_t)i), "{s:s, s:I, s:I}", "name", &name, "rows", &rows, "cols",
                        &cols) != 0 || rows < 1 || cols < 0)
            return PNN_ERROR(PNN_ERR_FORMAT, "recording %s: bad theta part %d", path, i);
        pnn_theta_part *p = &info->theta_parts[i];
        snprintf(p->name, sizeof p->name, "%s", name);
        p->ndim = cols ? 2 : 1;
        p->shape[0] = rows, p->shape[1] = cols;
        total += cols ? rows * cols : rows;
    }
    if (total != theta_dim) return PNN_ERROR(PNN_ERR_FORMAT, "recording %s: theta parts do not add up", path);
    return PNN_OK;
}

/* Reads the header; *data_start gets the offset of the first record. */
static pnn_status read_header(rec_file *f, pnn_device_info *info, uint64_t *data_start) {
    char magic[8];
    uint32_t len;
    if (!read_all(f->fd, magic, 8, 0) || memcmp(magic, REC_MAGIC, 8) || !read_all(f->fd, &len, 4, 8) ||
        len == 0 || len > HEADER_MAX)
        return PNN_ERROR(PNN_ERR_FORMAT, "%s is not a pnn recording (no %s header)", f->path, REC_FORMAT);
    char *text = malloc(len + 1);
    if (!text) return PNN_ERROR(PNN_ERR_NOMEM, "out of memory reading %s", f->path);
    if (!read_all(f->fd, text, len, 12)) {
        free(text);
        return PNN_ERROR(PNN_ERR_FORMAT, "recording %s: truncated header", f->path);
    }
    json_error_t err;
    json_t *j = json_loadb(text, len, 0, &err);
    free(text);
    if (!j) return PNN_ERROR(PNN_ERR_FORMAT, "recording %s: header is not JSON (%s)", f->path, err.text);
    pnn_status st = info_from_json(j, f->path, info);
    json_decref(j);
    *data_start = 12 + len;
    return st;
}

/* Checks the record at offset: its head, and (check_crc) its payload's checksum. */
static int record_valid(rec_file *f, uint64_t offset, uint64_t file_size, rec_head *h, int check_crc) {
    if (offset + sizeof *h > file_size || !read_all(f->fd, h, sizeof *h, offset)) return 0;
    if (h->tag != RECORD_TAG || (h->type != TYPE_THETA && h->type != TYPE_CALL) ||
        h->bytes > file_size - offset - sizeof *h || h->bytes < 8)
        return 0;
    if (!check_crc) return 1;
    uLong crc = crc32(0L, Z_NULL, 0);
    char buf[1 << 16];
    for (uint64_t done = 0; done < h->bytes;) {
        size_t k = h->bytes - done < sizeof buf ? (size_t)(h->bytes - done) : sizeof buf;
        if (!read_all(f->fd, buf, k, offset + sizeof *h + done)) return 0;
        crc = crc32(crc, (const Bytef *)buf, (uInt)k);
        done += k;
    }
    return (uint32_t)crc == h->crc;
}

/* Walks the records from data_start, building the index; stops at the first invalid one. */
static pnn_status scan(rec_file *f, uint64_t data_start, int check_crc) {
    struct stat sb;
    if (fstat(f->fd, &sb) != 0) return PNN_ERROR(PNN_ERR_IO, "cannot stat %s: %s", f->path, strerror(errno));
    uint64_t size = (uint64_t)sb.st_size, off = data_start, theta_off = 0;
    rec_head h;
    f->n_calls = 0;
    while (record_valid(f, off, size, &h, check_crc)) {
        if (h.type == TYPE_THETA) {
            theta_off = off;
            if (!read_all(f->fd, &f->theta_id, 8, off + sizeof h)) break;
        } else {
            uint64_t meta[3];
            if (!read_all(f->fd, meta, sizeof meta, off + sizeof h) || !theta_off) break;
            PNN_TRY(index_push(f, (rec_index_entry){off, theta_off, meta[2]}));
        }
        off += sizeof h + h.bytes;
    }
    f->size = off;
    f->theta_offset = theta_off;
    return PNN_OK;
}

static void rec_file_close(rec_file *f) {
    if (f->fd >= 0) close(f->fd);
    if (f->idx_fd >= 0) close(f->idx_fd);
    free(f->index);
    free(f->theta_host);
    f->fd = f->idx_fd = -1;
    f->index = NULL;
    f->theta_host = NULL;
}

/* Rewrites FILE.idx from the in-memory index (atomically) and opens it for appending. */
static pnn_status index_rewrite(rec_file *f) {
    char idx[1100], tmp[1120];
    snprintf(idx, sizeof idx, "%s.idx", f->path);
    snprintf(tmp, sizeof tmp, "%s.tmp", idx);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) return PNN_ERROR(PNN_ERR_IO, "cannot write %s: %s", tmp, strerror(errno));
    pnn_status st = write_all(fd, f->index, f->n_calls * sizeof *f->index, 0, tmp);
    if (st == PNN_OK && (fsync(fd) != 0 || rename(tmp, idx) != 0))
        st = PNN_ERROR(PNN_ERR_IO, "cannot write %s: %s", idx, strerror(errno));
    close(fd);
    if (st != PNN_OK) {
        unlink(tmp);
        return st;
    }
    f->idx_fd = open(idx, O_WRONLY | O_APPEND);
    if (f->idx_fd < 0) return PNN_ERROR(PNN_ERR_IO, "cannot open %s: %s", idx, strerror(errno));
    return PNN_OK;
}

/* Appends one record (head + two payload pieces) and flushes it to disk. */
static pnn_status append_record(rec_file *f, uint32_t type, const void *a, size_t na, const void *b, size_t nb) {
    uLong crc = crc32(0L, Z_NULL, 0);
    crc = crc32(crc, a, (uInt)na);
    for (size_t done = 0; done < nb;) { /* crc32 takes uInt lengths */
        size_t k = nb - done < (1u << 30) ? nb - done : (1u << 30);
        crc = crc32(crc, (const Bytef *)b + done, (uInt)k);
        done += k;
    }
    rec_head h = {RECORD_TAG, type, na + nb, (uint32_t)crc, 0};
    uint64_t off = f->size;
    PNN_TRY(write_all(f->fd, &h, sizeof h, off, f->path));
    PNN_TRY(write_all(f->fd, a, na, off + sizeof h, f->path));
    if (nb) PNN_TRY(write_all(f->fd, b, nb, off + sizeof h + na, f->path));
    if (fdatasync(f->fd) != 0) return PNN_ERROR(PNN_ERR_IO, "cannot flush %s: %s", f->path, strerror(errno));
    f->size = off + sizeof h + na + nb;
    return PNN_OK;
}

/* ---- record: ---- */

typedef struct record_dev {
    pnn_device *inner;
    rec_file file;
    float *x_host, *y_host;
    size_t host_rows;
} record_dev;

static void record_close(pnn_device *dev) {
    record_dev *r = dev->impl;
    if (r) {
        pnn_device_close(r->inner);
        rec_file_close(&r->file);
        free(r->x_host);
        free(r->y_host);
        free(r);
    }
    free(dev);
}

static pnn_status record_forward(pnn_device *dev, const pnn_tensor *x, const float *theta, pnn_tensor *y) {
    record_dev *r = dev->impl;
    rec_file *f = &r->file;
    const pnn_device_info *info = &dev->info;
    const pnn_backend *be = dev->be;
    r->inner->calls = dev->calls; /* the wrapper's counter is the one checkpoints restore */
    PNN_TRY(pnn_device_forward(r->inner, x, theta, y));
    size_t rows = (size_t)pnn_tensor_rows(x);
    if (rows > r->host_rows) {
        float *xh = realloc(r->x_host, rows * (size_t)info->x_dim * sizeof(float));
        if (xh) r->x_host = xh;
        float *yh = realloc(r->y_host, rows * (size_t)info->y_dim * sizeof(float));
        if (yh) r->y_host = yh;
        if (!xh || !yh) return PNN_ERROR(PNN_ERR_NOMEM, "out of memory recording to %s", f->path);
        r->host_rows = rows;
    }
    size_t tbytes = (size_t)info->theta_dim * sizeof(float);
    float *th = malloc(tbytes);
    if (!th) return PNN_ERROR(PNN_ERR_NOMEM, "out of memory recording to %s", f->path);
    be->iface->to_host(be->ctx, th, theta, tbytes);
    pnn_status st = PNN_OK;
    if (!f->theta_host || memcmp(th, f->theta_host, tbytes)) {
        uint64_t id = f->theta_id + 1, off = f->size;
        st = append_record(f, TYPE_THETA, &id, 8, th, tbytes);
        if (st != PNN_OK) {
            free(th);
            return st;
        }
        free(f->theta_host);
        f->theta_host = th;
        f->theta_id = id;
        f->theta_offset = off;
    } else {
        free(th);
    }
    be->iface->to_host(be->ctx, r->x_host, x->data, rows * (size_t)info->x_dim * sizeof(float));
    be->iface->to_host(be->ctx, r->y_host, y->data, rows * (size_t)info->y_dim * sizeof(float));
    size_t xb = rows * (size_t)info->x_dim * sizeof(float), yb = rows * (size_t)info->y_dim * sizeof(float);
    uint64_t meta[3] = {dev->calls, f->theta_id, rows};
    char *payload = malloc(sizeof meta + xb);
    if (!payload) return PNN_ERROR(PNN_ERR_NOMEM, "out of memory recording to %s", f->path);
    memcpy(payload, meta, sizeof meta);
    memcpy(payload + sizeof meta, r->x_host, xb);
    uint64_t off = f->size;
    st = append_record(f, TYPE_CALL, payload, sizeof meta + xb, r->y_host, yb);
    free(payload);
    PNN_TRY(st);
    rec_index_entry e = {off, f->theta_offset, rows};
    PNN_TRY(index_push(f, e));
    char idx[1100];
    snprintf(idx, sizeof idx, "%s.idx", f->path);
    return write_all(f->idx_fd, &e, sizeof e, (f->n_calls - 1) * sizeof e, idx);
}

static pnn_status record_input_noise(pnn_device *dev, uint64_t call, int64_t n, float *out) {
    record_dev *r = dev->impl;
    return r->inner->iface->input_noise(r->inner, call, n, out);
}

static const pnn_device_i record_iface = {.forward = record_forward, .close = record_close};
static const pnn_device_i record_iface_noise = {
    .forward = record_forward, .close = record_close, .input_noise = record_input_noise};

/* Splits "scheme:PATH@REST" (REST may be NULL for replay) and checks the path. */
static pnn_status split_uri(const char *uri, int want_inner, char *path, size_t cap, const char **rest) {
    const char *p = strchr(uri, ':') + 1;
    const char *at = want_inner ? strchr(p, '@') : NULL;
    size_t len = want_inner ? (at ? (size_t)(at - p) : 0) : strcspn(p, "?");
    if (want_inner && !at)
        return PNN_ERROR(PNN_ERR_INVALID, "device URI '%s': write record:FILE@DEVICE_URI, e.g. "
                         "record:runs/osc.pnnrec@sim:oscillator?n=100", uri);
    if (len == 0 || len >= cap)
        return PNN_ERROR(PNN_ERR_INVALID, "device URI '%s': missing or too long file name", uri);
    memcpy(path, p, len);
    path[len] = '\0';
    *rest = want_inner ? at + 1 : p + len;
    return PNN_OK;
}

pnn_status pnn_record_open(const char *uri, const pnn_backend *be, pnn_device **out) {
    pnn_status st = PNN_OK;
    *out = NULL;
    char path[1024];
    const char *inner_uri;
    PNN_TRY(split_uri(uri, 1, path, sizeof path, &inner_uri));
    pnn_device *dev = calloc(1, sizeof *dev);
    record_dev *r = calloc(1, sizeof *r);
    if (!dev || !r) {
        free(dev);
        free(r);
        return PNN_ERROR(PNN_ERR_NOMEM, "out of memory opening %s", uri);
    }
    r->file.fd = r->file.idx_fd = -1;
    snprintf(r->file.path, sizeof r->file.path, "%s", path);
    dev->impl = r;
    dev->be = be;
    dev->iface = &record_iface;
    PNN_GOTO(pnn_device_open(inner_uri, be, &r->inner));
    if (r->inner->iface->input_noise) dev->iface = &record_iface_noise;
    dev->info = r->inner->info;
    snprintf(dev->info.uri, sizeof dev->info.uri, "%s", uri);
    rec_file *f = &r->file;
    f->fd = open(path, O_RDWR | O_CREAT, 0644);
    if (f->fd < 0) {
        st = PNN_ERROR(PNN_ERR_IO, "cannot open recording %s: %s", path, strerror(errno));
        goto fail;
    }
    struct stat sb;
    fstat(f->fd, &sb);
    uint64_t data_start;
    if (sb.st_size == 0) {
        json_t *j = info_to_json(&dev->info);
        char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
        json_decref(j);
        if (!text) {
            st = PNN_ERROR(PNN_ERR_NOMEM, "out of memory writing the header of %s", path);
            goto fail;
        }
        uint32_t len = (uint32_t)strlen(text);
        st = write_all(f->fd, REC_MAGIC, 8, 0, path);
        if (st == PNN_OK) st = write_all(f->fd, &len, 4, 8, path);
        if (st == PNN_OK) st = write_all(f->fd, text, len, 12, path);
        free(text);
        if (st == PNN_OK && fsync(f->fd) != 0) st = PNN_ERROR(PNN_ERR_IO, "cannot flush %s: %s", path, strerror(errno));
        if (st != PNN_OK) goto fail;
        data_start = 12 + len;
        f->size = data_start;
    } else {
        /* continue an existing recording of the same system: cut a torn tail, rebuild the index */
        pnn_device_info rec_info;
        PNN_GOTO(read_header(f, &rec_info, &data_start));
        if (rec_info.x_dim != dev->info.x_dim || rec_info.y_dim != dev->info.y_dim ||
            rec_info.theta_dim != dev->info.theta_dim || strcmp(rec_info.system, dev->info.system)) {
            st = PNN_ERROR(PNN_ERR_INVALID, "recording %s holds another system (%s %lld -> %lld); record to a new file",
                           path, rec_info.system, (long long)rec_info.x_dim, (long long)rec_info.y_dim);
            goto fail;
        }
        PNN_GOTO(scan(f, data_start, 1));
        if (ftruncate(f->fd, (off_t)f->size) != 0) {
            st = PNN_ERROR(PNN_ERR_IO, "cannot cut the torn end of %s: %s", path, strerror(errno));
            goto fail;
        }
        if (f->theta_offset) { /* reload the last theta so unchanged controls are not written again */
            size_t tbytes = (size_t)dev->info.theta_dim * sizeof(float);
            f->theta_host = malloc(tbytes);
            if (!f->theta_host || !read_all(f->fd, f->theta_host, tbytes, f->theta_offset + sizeof(rec_head) + 8)) {
                free(f->theta_host);
                f->theta_host = NULL;
            }
        }
    }
    PNN_GOTO(index_rewrite(f));
    *out = dev;
    return PNN_OK;
fail:
    record_close(dev);
    return st;
}

/* ---- replay: ---- */

typedef struct replay_dev {
    rec_file file;
    int check;                 /* compare x and theta with the recording */
    uint64_t theta_loaded;     /* offset of the theta record in theta_host */
    float *x_rec, *y_rec, *x_now, *theta_now;
} replay_dev;

static void replay_close(pnn_device *dev) {
    replay_dev *r = dev->impl;
    if (r) {
        rec_file_close(&r->file);
        free(r->x_rec), free(r->y_rec), free(r->x_now), free(r->theta_now);
        free(r);
    }
    free(dev);
}

static double max_abs_diff(const float *a, const float *b, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double d = a[i] > b[i] ? (double)a[i] - b[i] : (double)b[i] - a[i];
        if (d > m || d != d) m = d;
    }
    return m;
}

static pnn_status replay_forward(pnn_device *dev, const pnn_tensor *x, const float *theta, pnn_tensor *y) {
    replay_dev *r = dev->impl;
    rec_file *f = &r->file;
    const pnn_device_info *info = &dev->info;
    const pnn_backend *be = dev->be;
    uint64_t k = dev->calls;
    if (k >= f->n_calls)
        return PNN_ERROR(PNN_ERR_INVALID, "replay %s: asked for call %llu but the recording holds %llu calls",
                         f->path, (unsigned long long)k + 1, (unsigned long long)f->n_calls);
    rec_index_entry e = f->index[k];
    size_t rows = (size_t)pnn_tensor_rows(x);
    if (e.batch != rows)
        return PNN_ERROR(PNN_ERR_INVALID, "replay %s: call %llu was recorded with a batch of %llu, asked with %zu "
                         "(replay needs the same micro-batches as the recording)",
                         f->path, (unsigned long long)k + 1, (unsigned long long)e.batch, rows);
    size_t xn = rows * (size_t)info->x_dim, yn = rows * (size_t)info->y_dim;
    float *xr = realloc(r->x_rec, xn * sizeof(float)), *yr = xr ? realloc(r->y_rec, yn * sizeof(float)) : NULL;
    if (xr) r->x_rec = xr;
    if (yr) r->y_rec = yr;
    float *xw = yr ? realloc(r->x_now, xn * sizeof(float)) : NULL;
    if (xw) r->x_now = xw;
    if (!xr || !yr || !xw) return PNN_ERROR(PNN_ERR_NOMEM, "out of memory replaying %s", f->path);
    rec_head h;
    struct stat sb;
    fstat(f->fd, &sb);
    if (!record_valid(f, e.offset, (uint64_t)sb.st_size, &h, 1) || h.type != TYPE_CALL ||
        h.bytes != 24 + (xn + yn) * sizeof(float) || !read_all(f->fd, r->x_rec, xn * sizeof(float), e.offset + sizeof h + 24) ||
        !read_all(f->fd, r->y_rec, yn * sizeof(float), e.offset + sizeof h + 24 + xn * sizeof(float)))
        return PNN_ERROR(PNN_ERR_FORMAT, "replay %s: call record %llu is damaged (bad checksum or size)", f->path,
                         (unsigned long long)k + 1);
    if (r->check) {
        be->iface->to_host(be->ctx, r->x_now, x->data, xn * sizeof(float));
        if (memcmp(r->x_now, r->x_rec, xn * sizeof(float)))
            return PNN_ERROR(PNN_ERR_INVALID, "replay %s: call %llu was asked with another x than recorded (max |diff| "
                             "%g); add ?check=0 to serve the recording regardless",
                             f->path, (unsigned long long)k + 1, max_abs_diff(r->x_now, r->x_rec, xn));
        size_t tn = (size_t)info->theta_dim;
        if (r->theta_loaded != e.theta_offset) {
            if (!record_valid(f, e.theta_offset, (uint64_t)sb.st_size, &h, 1) || h.type != TYPE_THETA ||
                !read_all(f->fd, f->theta_host, tn * sizeof(float), e.theta_offset + sizeof h + 8))
                return PNN_ERROR(PNN_ERR_FORMAT, "replay %s: theta record of call %llu is damaged", f->path,
                                 (unsigned long long)k + 1);
            r->theta_loaded = e.theta_offset;
        }
        be->iface->to_host(be->ctx, r->theta_now, theta, tn * sizeof(float));
        if (memcmp(r->theta_now, f->theta_host, tn * sizeof(float)))
            return PNN_ERROR(PNN_ERR_INVALID, "replay %s: call %llu was asked with other controls than recorded (max "
                             "|diff| %g); add ?check=0 to serve the recording regardless",
                             f->path, (unsigned long long)k + 1, max_abs_diff(r->theta_now, f->theta_host, tn));
    }
    be->iface->from_host(be->ctx, y->data, r->y_rec, yn * sizeof(float));
    return PNN_OK;
}

static const pnn_device_i replay_iface = {.forward = replay_forward, .close = replay_close};

/* Loads FILE.idx when it agrees with the file; else scans the file. */
static pnn_status load_index(rec_file *f, uint64_t data_start) {
    char idx[1100];
    snprintf(idx, sizeof idx, "%s.idx", f->path);
    struct stat sb, db;
    int fd = open(idx, O_RDONLY);
    if (fd >= 0 && fstat(fd, &sb) == 0 && fstat(f->fd, &db) == 0 && sb.st_size % (off_t)sizeof(rec_index_entry) == 0) {
        uint64_t n = (uint64_t)sb.st_size / sizeof(rec_index_entry);
        f->index = malloc((n ? n : 1) * sizeof *f->index);
        int ok = f->index && read_all(fd, f->index, n * sizeof *f->index, 0);
        for (uint64_t i = 0; ok && i < n; i++) /* offsets must point inside the file, in order */
            ok = f->index[i].offset >= data_start && f->index[i].offset < (uint64_t)db.st_size &&
                 (i == 0 || f->index[i].offset > f->index[i - 1].offset);
        close(fd);
        if (ok) {
            f->n_calls = f->cap = n;
            return PNN_OK;
        }
        free(f->index);
        f->index = NULL;
    } else if (fd >= 0) {
        close(fd);
    }
    return scan(f, data_start, 0);
}

pnn_status pnn_replay_open(const char *uri, const pnn_backend *be, pnn_device **out) {
    pnn_status st = PNN_OK;
    *out = NULL;
    char path[1024];
    const char *query;
    PNN_TRY(split_uri(uri, 0, path, sizeof path, &query));
    int check = 1;
    if (*query && strcmp(query, "?check=1") && strcmp(query, "?check=0"))
        return PNN_ERROR(PNN_ERR_INVALID, "device URI '%s': replay takes only ?check=0 or ?check=1", uri);
    if (!strcmp(query, "?check=0")) check = 0;
    pnn_device *dev = calloc(1, sizeof *dev);
    replay_dev *r = calloc(1, sizeof *r);
    if (!dev || !r) {
        free(dev);
        free(r);
        return PNN_ERROR(PNN_ERR_NOMEM, "out of memory opening %s", uri);
    }
    r->file.fd = r->file.idx_fd = -1;
    r->check = check;
    snprintf(r->file.path, sizeof r->file.path, "%s", path);
    dev->impl = r;
    dev->be = be;
    dev->iface = &replay_iface;
    rec_file *f = &r->file;
    f->fd = open(path, O_RDONLY);
    if (f->fd < 0) {
        st = PNN_ERROR(errno == ENOENT ? PNN_ERR_NOT_FOUND : PNN_ERR_IO, "cannot open recording %s: %s", path,
                       strerror(errno));
        goto fail;
    }
    uint64_t data_start;
    PNN_GOTO(read_header(f, &dev->info, &data_start));
    snprintf(dev->info.uri, sizeof dev->info.uri, "%s", uri);
    PNN_GOTO(load_index(f, data_start));
    f->theta_host = malloc((size_t)dev->info.theta_dim * sizeof(float));
    r->theta_now = malloc((size_t)dev->info.theta_dim * sizeof(float));
    if (!f->theta_host || !r->theta_now) {
        st = PNN_ERROR(PNN_ERR_NOMEM, "out of memory opening %s", uri);
        goto fail;
    }
    *out = dev;
    return PNN_OK;
fail:
    replay_close(dev);
    return st;
}
