/* The file of a recording (format and rules: record_file.h): its header, the checks of every
 * record, the walk that tells a torn end from damage, appending, and the index beside it. */
#include "record_file.h"

#include <errno.h>
#include <fcntl.h>
#include <float.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

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

/* What a record that passed its checks holds. */
typedef struct rec_meta {
    uint32_t type;
    uint64_t bytes;    /* the whole record, head included */
    uint64_t theta_id; /* a theta record's id, or that of the theta a call was made with */
    uint64_t batch;    /* calls only */
} rec_meta;

/* ---- reading and writing ---- */

/* pread of exactly n bytes: 1, 0 when the file ends first, -1 on an error (errno). */
static int read_at(int fd, void *buf, size_t n, uint64_t offset) {
    char *p = buf;
    while (n) {
        ssize_t r = pread(fd, p, n, (off_t)offset);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return r < 0 ? -1 : 0;
        p += r, n -= (size_t)r, offset += (uint64_t)r;
    }
    return 1;
}

/* Reads bytes the file's size says are there: a failure is an I/O error, never a torn end. */
static pnn_status read_known(const pnn_rec_file *f, void *buf, size_t n, uint64_t offset) {
    int rc = read_at(f->fd, buf, n, offset);
    if (rc == 1) return PNN_OK;
    return PNN_ERROR(PNN_ERR_IO, "cannot read recording %s at byte %llu: %s", f->path, (unsigned long long)offset,
                     rc ? strerror(errno) : "it ended early (is another process cutting it?)");
}

static pnn_status write_all(int fd, const void *buf, size_t n, uint64_t offset, const char *path) {
    const char *p = buf;
    while (n) {
        ssize_t w = pwrite(fd, p, n, (off_t)offset);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return PNN_ERROR(PNN_ERR_IO, "cannot write %s: %s", path, w ? strerror(errno) : "nothing written");
        p += w, n -= (size_t)w, offset += (uint64_t)w;
    }
    return PNN_OK;
}

static pnn_status file_size(const pnn_rec_file *f, uint64_t *size) {
    struct stat sb;
    if (fstat(f->fd, &sb) != 0) return PNN_ERROR(PNN_ERR_IO, "cannot stat %s: %s", f->path, strerror(errno));
    *size = (uint64_t)sb.st_size;
    return PNN_OK;
}

/* After a failed write: cuts the file and its index back to what they held, so that no partial
 * or unindexed record stays (the caller sees the write fail), and writes on from there. 0 when
 * even the cut failed: the next append then writes over what stayed. */
static int cut_back(pnn_rec_file *f, uint64_t size) {
    f->size = size;
    if (ftruncate(f->fd, (off_t)size) != 0) return 0;
    return f->idx_fd < 0 || ftruncate(f->idx_fd, (off_t)(f->n_calls * sizeof(pnn_rec_entry))) == 0;
}

static uint32_t crc_update(uint32_t crc, const void *data, size_t n) {
    const Bytef *p = data;
    while (n) { /* crc32 takes uInt lengths */
        size_t k = n < (1u << 30) ? n : (1u << 30);
        crc = (uint32_t)crc32(crc, p, (uInt)k);
        p += k, n -= k;
    }
    return crc;
}

static pnn_status index_push(pnn_rec_file *f, pnn_rec_entry e) {
    if (f->n_calls == f->cap) {
        uint64_t cap = f->cap ? 2 * f->cap : 1024;
        pnn_rec_entry *grown = realloc(f->index, cap * sizeof *grown);
        if (!grown) return PNN_ERROR(PNN_ERR_NOMEM, "out of memory indexing %s", f->path);
        f->index = grown;
        f->cap = cap;
    }
    f->index[f->n_calls++] = e;
    return PNN_OK;
}

/* ---- opening ---- */

pnn_status pnn_rec_open(pnn_rec_file *f, const char *path, size_t len, int writable, uint64_t *bytes) {
    f->fd = f->idx_fd = -1;
    if (len == 0)
        return PNN_ERROR(PNN_ERR_INVALID, "a recording needs a file name: record:FILE@DEVICE_URI, replay:FILE");
    if (len > PNN_REC_PATH_MAX)
        return PNN_ERROR(PNN_ERR_INVALID, "the name of recording '%.60s...' is %zu bytes, at most %d; use a shorter "
                         "path", path, len, PNN_REC_PATH_MAX);
    memcpy(f->path, path, len);
    f->path[len] = '\0';
    PNN_TRY(pnn_path_format(f->idx_path, sizeof f->idx_path, "%s.idx", f->path));
    PNN_TRY(pnn_open_regular(f->path, writable ? O_RDWR | O_CREAT : O_RDONLY, 0644, "recording", &f->fd));
    /* two writers would append over each other's records. flock, not fcntl: its lock belongs to
     * this open file, so a second writer in the same process is refused too, and closing another
     * descriptor of the file (a replay of it) does not drop it. Where the file system has no
     * locks, recording goes on without. */
    if (writable && flock(f->fd, LOCK_EX | LOCK_NB) != 0 && errno == EWOULDBLOCK)
        return PNN_ERROR(PNN_ERR_IO, "recording %s is being written by another device or process; record to "
                         "another file", f->path);
    return file_size(f, bytes);
}

void pnn_rec_close(pnn_rec_file *f) {
    if (f->fd >= 0) close(f->fd);
    if (f->idx_fd >= 0) close(f->idx_fd);
    free(f->index);
    f->fd = f->idx_fd = -1;
    f->index = NULL;
    f->n_calls = f->cap = 0;
}

/* ---- header ---- */

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

/* Copies a header string into a fixed field: one that does not fit is refused, not cut. */
static pnn_status copy_string(char *dst, size_t cap, const char *src, const char *path, const char *field) {
    size_t n = strlen(src);
    if (n >= cap)
        return PNN_ERROR(PNN_ERR_FORMAT, "recording %s: header field %s is %zu bytes, at most %zu", path, field, n,
                         cap - 1);
    memcpy(dst, src, n + 1);
    return PNN_OK;
}

static pnn_status copy_range(float *dst, double lo, double hi, const char *path, const char *field) {
    if (!(fabs(lo) <= FLT_MAX) || !(fabs(hi) <= FLT_MAX)) /* NaN fails too */
        return PNN_ERROR(PNN_ERR_FORMAT, "recording %s: header field %s [%g, %g] is not a finite float range", path,
                         field, lo, hi);
    dst[0] = (float)lo, dst[1] = (float)hi;
    return PNN_OK;
}

/* Fills info from the header, then checks it as any device's before anything is sized from it. */
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
    PNN_TRY(copy_string(info->system, sizeof info->system, system, path, "system"));
    PNN_TRY(copy_string(info->system_uri, sizeof info->system_uri, system_uri, path, "system_uri"));
    PNN_TRY(copy_range(info->x_range, xr0, xr1, path, "x_range"));
    PNN_TRY(copy_range(info->theta_range, tr0, tr1, path, "theta_range"));
    info->x_dim = x_dim, info->y_dim = y_dim, info->theta_dim = theta_dim, info->max_batch = max_batch;
    if (!json_is_array(parts) || json_array_size(parts) > PNN_DEVICE_MAX_THETA_PARTS)
        return PNN_ERROR(PNN_ERR_FORMAT, "recording %s: theta_parts must be a list of at most %d parts", path,
                         PNN_DEVICE_MAX_THETA_PARTS);
    info->n_theta_parts = (int)json_array_size(parts);
    for (int i = 0; i < info->n_theta_parts; i++) {
        const char *name;
        json_int_t rows, cols;
        if (json_unpack(json_array_get(parts, (size_t)i), "{s:s, s:I, s:I}", "name", &name, "rows", &rows, "cols",
                        &cols) != 0)
            return PNN_ERROR(PNN_ERR_FORMAT, "recording %s: theta part %d needs a name, rows and cols", path, i);
        pnn_theta_part *p = &info->theta_parts[i];
        PNN_TRY(copy_string(p->name, sizeof p->name, name, path, "theta_parts.name"));
        p->ndim = cols ? 2 : 1;
        p->shape[0] = rows, p->shape[1] = cols;
    }
    char who[PNN_PATH_MAX + 16];
    snprintf(who, sizeof who, "recording %s", path);
    return pnn_device_info_check(info, who);
}

static void set_dims(pnn_rec_file *f, const pnn_device_info *info, uint64_t header_bytes) {
    f->x_dim = info->x_dim, f->y_dim = info->y_dim, f->theta_dim = info->theta_dim;
    f->data_start = f->size = 12 + header_bytes;
}

pnn_status pnn_rec_write_header(pnn_rec_file *f, const pnn_device_info *info) {
    json_t *j = info_to_json(info);
    char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (!text)
        return PNN_ERROR(PNN_ERR_NOMEM, "cannot write the header of %s: out of memory, or a name in the device's "
                         "info that is not UTF-8", f->path);
    uint32_t len = (uint32_t)strlen(text);
    pnn_status st = write_all(f->fd, REC_MAGIC, 8, 0, f->path);
    if (st == PNN_OK) st = write_all(f->fd, &len, 4, 8, f->path);
    if (st == PNN_OK) st = write_all(f->fd, text, len, 12, f->path);
    if (st == PNN_OK && fsync(f->fd) != 0) st = PNN_ERROR(PNN_ERR_IO, "cannot flush %s: %s", f->path, strerror(errno));
    free(text);
    if (st != PNN_OK) {
        cut_back(f, 0); /* a half header would make the file unreadable */
        return st;
    }
    set_dims(f, info, len);
    return PNN_OK;
}

pnn_status pnn_rec_read_header(pnn_rec_file *f, pnn_device_info *info) {
    uint64_t size = 0;
    PNN_TRY(file_size(f, &size));
    char magic[8];
    uint32_t len = 0;
    if (size >= 12) {
        PNN_TRY(read_known(f, magic, 8, 0));
        PNN_TRY(read_known(f, &len, 4, 8));
    }
    if (size < 12 || memcmp(magic, REC_MAGIC, 8) || len == 0 || len > HEADER_MAX)
        return PNN_ERROR(PNN_ERR_FORMAT, "%s is not a pnn recording (no %s header)", f->path, REC_FORMAT);
    if (size - 12 < len)
        return PNN_ERROR(PNN_ERR_FORMAT, "recording %s: its header is cut short (%llu of %u bytes), so it holds no "
                         "calls; delete it and record again", f->path, (unsigned long long)(size - 12), len);
    char *text = malloc(len);
    if (!text) return PNN_ERROR(PNN_ERR_NOMEM, "out of memory reading %s", f->path);
    pnn_status st = read_known(f, text, len, 12);
    json_error_t err;
    json_t *j = st == PNN_OK ? json_loadb(text, len, 0, &err) : NULL;
    free(text);
    PNN_TRY(st);
    if (!j) return PNN_ERROR(PNN_ERR_FORMAT, "recording %s: header is not JSON (%s)", f->path, err.text);
    memset(info, 0, sizeof *info);
    st = info_from_json(j, f->path, info);
    json_decref(j);
    PNN_TRY(st);
    set_dims(f, info, len);
    return PNN_OK;
}

/* ---- records ---- */

static pnn_status payload_crc(const pnn_rec_file *f, uint64_t offset, uint64_t n, uint32_t *crc) {
    char buf[1 << 15];
    *crc = 0;
    for (uint64_t done = 0; done < n;) {
        size_t k = n - done < sizeof buf ? (size_t)(n - done) : sizeof buf;
        PNN_TRY(read_known(f, buf, k, offset + done));
        *crc = crc_update(*crc, buf, k);
        done += k;
    }
    return PNN_OK;
}

/* *valid: the record at offset is whole before end and consistent: its head, a length that
 * matches its type, its batch and the header's dims (so no size from the file is trusted alone),
 * and with check_crc its checksum. */
static pnn_status record_check(const pnn_rec_file *f, uint64_t offset, uint64_t end, int check_crc, rec_meta *m,
                               int *valid) {
    rec_head h;
    uint64_t meta[3];
    *valid = 0;
    if (offset >= end || end - offset < sizeof h + 8) return PNN_OK;
    PNN_TRY(read_known(f, &h, sizeof h, offset));
    size_t n_meta = h.type == TYPE_CALL ? 3 : 1;
    if (h.tag != RECORD_TAG || h.zero || (h.type != TYPE_THETA && h.type != TYPE_CALL) ||
        h.bytes > end - offset - sizeof h || h.bytes < 8 * n_meta)
        return PNN_OK;
    PNN_TRY(read_known(f, meta, 8 * n_meta, offset + sizeof h));
    uint64_t row = (uint64_t)(f->x_dim + f->y_dim) * sizeof(float);
    if (h.type == TYPE_THETA ? h.bytes != 8 + (uint64_t)f->theta_dim * sizeof(float)
                             : meta[2] < 1 || meta[2] > (h.bytes - 24) / row || h.bytes != 24 + meta[2] * row)
        return PNN_OK;
    if (check_crc) {
        uint32_t crc;
        PNN_TRY(payload_crc(f, offset + sizeof h, h.bytes, &crc));
        if (crc != h.crc) return PNN_OK;
    }
    *m = (rec_meta){h.type, sizeof h + h.bytes, h.type == TYPE_THETA ? meta[0] : meta[1],
                    h.type == TYPE_CALL ? meta[2] : 0};
    *valid = 1;
    return PNN_OK;
}

/* *found: the offset of the first valid record (checksum included) after from, 0 when none:
 * what tells a torn end, which nothing valid follows, from damage in the middle. */
static pnn_status next_valid_record(const pnn_rec_file *f, uint64_t from, uint64_t end, uint64_t *found) {
    unsigned char buf[1 << 15];
    *found = 0;
    /* chunks overlap by 3 bytes, so that a tag across their border is seen once */
    for (uint64_t base = from; base < end && end - base >= sizeof(rec_head); base += sizeof buf - 3) {
        size_t n = end - base < sizeof buf ? (size_t)(end - base) : sizeof buf;
        PNN_TRY(read_known(f, buf, n, base));
        for (unsigned char *p = buf; (p = memchr(p, 'P', (size_t)(buf + n - p))) && p + 4 <= buf + n; p++) {
            if (memcmp(p, "PNCR", 4)) continue;
            rec_meta m;
            int valid;
            PNN_TRY(record_check(f, base + (uint64_t)(p - buf), end, 1, &m, &valid));
            if (valid) {
                *found = base + (uint64_t)(p - buf);
                return PNN_OK;
            }
        }
    }
    return PNN_OK;
}

pnn_status pnn_rec_scan(pnn_rec_file *f, int check_crc) {
    uint64_t end = 0, off = f->data_start, last = 0, theta_off = 0, theta_id = 0;
    PNN_TRY(file_size(f, &end));
    f->n_calls = 0;
    while (off < end) {
        rec_meta m;
        int valid;
        PNN_TRY(record_check(f, off, end, check_crc, &m, &valid));
        if (!valid) {
            uint64_t next = 0;
            PNN_TRY(next_valid_record(f, off + 1, end, &next));
            if (!next) break; /* a torn end */
            return PNN_ERROR(PNN_ERR_FORMAT, "recording %s: the record at byte %llu (after call %llu) is damaged, yet "
                             "valid records follow at byte %llu: this is no torn end, so nothing was cut; restore the "
                             "file from a copy, or keep its first %llu bytes (the calls before the damage) as a new "
                             "recording", f->path, (unsigned long long)off, (unsigned long long)f->n_calls,
                             (unsigned long long)next, (unsigned long long)off);
        }
        if (m.type == TYPE_CALL && (!theta_off || m.theta_id != theta_id))
            return PNN_ERROR(PNN_ERR_FORMAT, "recording %s: call %llu (byte %llu) was made with theta %llu, but the "
                             "theta record before it (byte %llu) is %llu: the file is damaged; restore it from a copy",
                             f->path, (unsigned long long)f->n_calls + 1, (unsigned long long)off,
                             (unsigned long long)m.theta_id, (unsigned long long)theta_off,
                             (unsigned long long)theta_id);
        if (m.type == TYPE_THETA) theta_off = off, theta_id = m.theta_id;
        else PNN_TRY(index_push(f, (pnn_rec_entry){off, theta_off, m.batch}));
        last = off;
        off += m.bytes;
    }
    if (!check_crc && last) { /* a torn end can have a whole length: only its checksum tells */
        rec_meta m;
        int valid;
        PNN_TRY(record_check(f, last, off, 1, &m, &valid));
        if (!valid) {
            if (f->n_calls && f->index[f->n_calls - 1].offset == last) f->n_calls--;
            off = last;
        }
    }
    f->size = off;
    f->theta_offset = theta_off, f->theta_id = theta_id;
    return PNN_OK;
}

/* Writes FILE.idx anew from the index in memory, through a temporary file and a rename (a crash
 * leaves the old one or the new one), and keeps it open to append to. */
static pnn_status index_rewrite(pnn_rec_file *f) {
    char tmp[PNN_PATH_MAX + 1];
    int fd;
    PNN_TRY(pnn_path_format(tmp, sizeof tmp, "%s.tmp", f->idx_path));
    if (unlink(tmp) != 0 && errno != ENOENT) /* left by a killed run, or not a file at all */
        return PNN_ERROR(PNN_ERR_IO, "cannot remove %s: %s; remove it by hand", tmp, strerror(errno));
    PNN_TRY(pnn_open_regular(tmp, O_WRONLY | O_CREAT | O_EXCL, 0644, "recording index", &fd));
    pnn_status st = write_all(fd, f->index, f->n_calls * sizeof *f->index, 0, tmp);
    if (st == PNN_OK && (fsync(fd) != 0 || rename(tmp, f->idx_path) != 0))
        st = PNN_ERROR(PNN_ERR_IO, "cannot write %s: %s", f->idx_path, strerror(errno));
    if (st != PNN_OK) {
        close(fd);
        unlink(tmp);
        return st;
    }
    if (f->idx_fd >= 0) close(f->idx_fd);
    f->idx_fd = fd;
    return PNN_OK;
}

pnn_status pnn_rec_start_appending(pnn_rec_file *f) {
    uint64_t size = 0;
    PNN_TRY(file_size(f, &size));
    if (size > f->size && ftruncate(f->fd, (off_t)f->size) != 0)
        return PNN_ERROR(PNN_ERR_IO, "cannot cut the torn end of %s: %s", f->path, strerror(errno));
    return index_rewrite(f);
}

typedef struct rec_piece {
    const void *data;
    size_t n;
} rec_piece;

/* Appends one record and flushes it to disk; on failure cuts the file back to its old end. */
static pnn_status append_record(pnn_rec_file *f, uint32_t type, const rec_piece *pieces, int n_pieces) {
    uint32_t crc = 0;
    uint64_t bytes = 0;
    for (int i = 0; i < n_pieces; i++) crc = crc_update(crc, pieces[i].data, pieces[i].n), bytes += pieces[i].n;
    rec_head h = {RECORD_TAG, type, bytes, crc, 0};
    uint64_t off = f->size, at = off + sizeof h;
    pnn_status st = write_all(f->fd, &h, sizeof h, off, f->path);
    for (int i = 0; st == PNN_OK && i < n_pieces; at += pieces[i].n, i++)
        st = write_all(f->fd, pieces[i].data, pieces[i].n, at, f->path);
    if (st == PNN_OK && fdatasync(f->fd) != 0)
        st = PNN_ERROR(PNN_ERR_IO, "cannot flush %s: %s", f->path, strerror(errno));
    if (st != PNN_OK) {
        cut_back(f, off);
        return st;
    }
    f->size = at;
    return PNN_OK;
}

pnn_status pnn_rec_append_theta(pnn_rec_file *f, const float *theta) {
    uint64_t id = f->theta_id + 1, off = f->size;
    rec_piece pieces[2] = {{&id, 8}, {theta, (size_t)f->theta_dim * sizeof(float)}};
    PNN_TRY(append_record(f, TYPE_THETA, pieces, 2));
    f->theta_id = id, f->theta_offset = off;
    return PNN_OK;
}

pnn_status pnn_rec_append_call(pnn_rec_file *f, uint64_t call, uint64_t batch, const float *x, const float *y) {
    uint64_t meta[3] = {call, f->theta_id, batch}, off = f->size;
    rec_piece pieces[3] = {{meta, sizeof meta},
                           {x, (size_t)(batch * (uint64_t)f->x_dim) * sizeof(float)},
                           {y, (size_t)(batch * (uint64_t)f->y_dim) * sizeof(float)}};
    PNN_TRY(append_record(f, TYPE_CALL, pieces, 3));
    pnn_rec_entry e = {off, f->theta_offset, batch};
    pnn_status st = index_push(f, e);
    if (st == PNN_OK) {
        /* at its place, not appended: after a partial write the next entry goes where it belongs */
        st = write_all(f->idx_fd, &e, sizeof e, (f->n_calls - 1) * sizeof e, f->idx_path);
        if (st != PNN_OK) f->n_calls--;
    }
    if (st != PNN_OK) cut_back(f, off);
    return st;
}

pnn_status pnn_rec_read_theta(pnn_rec_file *f, uint64_t offset, float *theta) {
    rec_meta m;
    int valid;
    PNN_TRY(record_check(f, offset, f->size, 1, &m, &valid));
    if (!valid || m.type != TYPE_THETA)
        return PNN_ERROR(PNN_ERR_FORMAT, "recording %s: the theta record at byte %llu is damaged (bad checksum or "
                         "length); restore the recording from a copy", f->path, (unsigned long long)offset);
    return read_known(f, theta, (size_t)f->theta_dim * sizeof(float), offset + sizeof(rec_head) + 8);
}

pnn_status pnn_rec_read_call(pnn_rec_file *f, uint64_t k, float *x, float *y) {
    pnn_rec_entry e = f->index[k];
    rec_meta m;
    int valid;
    PNN_TRY(record_check(f, e.offset, f->size, 1, &m, &valid));
    if (!valid || m.type != TYPE_CALL || m.batch != e.batch)
        return PNN_ERROR(PNN_ERR_FORMAT, "recording %s: call %llu (byte %llu) is damaged (bad checksum or length); "
                         "restore the recording from a copy", f->path, (unsigned long long)k + 1,
                         (unsigned long long)e.offset);
    size_t xb = (size_t)(e.batch * (uint64_t)f->x_dim) * sizeof(float);
    PNN_TRY(read_known(f, x, xb, e.offset + sizeof(rec_head) + 24));
    return read_known(f, y, (size_t)(e.batch * (uint64_t)f->y_dim) * sizeof(float),
                      e.offset + sizeof(rec_head) + 24 + xb);
}
