/* The file of a recording, pnn-record/1, as hwbridge/record.c's two devices use it (record:
 * appends, replay: reads). Private to hwbridge.
 *
 * Little-endian:
 *   "PNNREC1\n", u32 header length, a JSON header (the device's info)
 *   records: u32 magic "PNCR", u32 type, u64 payload bytes, u32 crc32(payload), u32 0, payload
 *     type 1, theta: u64 theta id, theta_dim floats (written only when theta changed)
 *     type 2, call:  u64 call index, u64 theta id, u64 batch, x [batch, x_dim], y [batch, y_dim]
 * and beside it FILE.idx: per call record three u64 (its offset, its theta record's offset, its
 * batch), so that other readers (NumPy) find call k without scanning. Every record is flushed to
 * disk (fdatasync) before its index entry is written.
 *
 * Nothing read is trusted alone: a record's length must agree with its type, its batch and the
 * header's dims before anything is read or sized from it, and pnn_rec_scan rebuilds the index
 * from the records themselves (checking FILE.idx would cost the same walk). A record that fails
 * its checks is a torn end (a crash mid-write) only when no valid record follows it; reopening
 * for recording cuts a torn end, and anything else is an error that names the offset and leaves
 * the file as it is. */
#ifndef PNN_RECORD_FILE_H
#define PNN_RECORD_FILE_H

#include <stddef.h>
#include <stdint.h>

#include "pnn/device.h"
#include "pnn/fileio.h"

/* Longest file name of a recording: room is kept for ".idx.tmp". */
#define PNN_REC_PATH_MAX (PNN_PATH_MAX - 8)

typedef struct pnn_rec_entry {
    uint64_t offset, theta_offset, batch;
} pnn_rec_entry;

typedef struct pnn_rec_file {
    char path[PNN_PATH_MAX + 1], idx_path[PNN_PATH_MAX + 1];
    int fd, idx_fd;
    int64_t x_dim, y_dim, theta_dim; /* the header's */
    uint64_t data_start;             /* offset of the first record */
    uint64_t size;                   /* end of the valid records */
    pnn_rec_entry *index;            /* call records in order */
    uint64_t n_calls, cap;
    uint64_t theta_offset, theta_id; /* the last theta record (offset 0: none yet) */
} pnn_rec_file;

/* Opens the file named by the len bytes at path (at most PNN_REC_PATH_MAX; refused, not cut):
 * for recording (writable) read-write, created when missing and locked against a second writer;
 * else read-only. Anything but a regular file is refused without blocking (a FIFO). *bytes gets
 * the file's size. */
pnn_status pnn_rec_open(pnn_rec_file *f, const char *path, size_t len, int writable, uint64_t *bytes);
void pnn_rec_close(pnn_rec_file *f);
/* Writes the header of a new recording into the empty file. */
pnn_status pnn_rec_write_header(pnn_rec_file *f, const pnn_device_info *info);
/* Reads the header into info (uri left empty), checked with pnn_device_info_check. */
pnn_status pnn_rec_read_header(pnn_rec_file *f, pnn_device_info *info);
/* Builds the index by walking the records after the header; f->size gets the end of the valid
 * ones (a torn end follows). Damage with valid records after it is PNN_ERR_FORMAT. check_crc:
 * every record's checksum (before appending), else the heads and the last record's checksum
 * (replay checks each call's as it serves it; f->theta_* are then not set). */
pnn_status pnn_rec_scan(pnn_rec_file *f, int check_crc);
/* Cuts what follows the valid records and rewrites FILE.idx: ready to append. */
pnn_status pnn_rec_start_appending(pnn_rec_file *f);
/* Appends a theta record, or a call record (made with the last theta) and its index entry. On
 * failure the file is cut back to what it held, so a call that failed is not in it. */
pnn_status pnn_rec_append_theta(pnn_rec_file *f, const float *theta);
pnn_status pnn_rec_append_call(pnn_rec_file *f, uint64_t call, uint64_t batch, const float *x, const float *y);
/* theta [theta_dim] of the theta record at offset, checksum checked. */
pnn_status pnn_rec_read_theta(pnn_rec_file *f, uint64_t offset, float *theta);
/* x [batch, x_dim] and y [batch, y_dim] of indexed call k (from 0), checksum checked. */
pnn_status pnn_rec_read_call(pnn_rec_file *f, uint64_t k, float *x, float *y);

#endif
