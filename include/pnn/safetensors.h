/* safetensors files (the format PyTorch and NumPy users read): an 8-byte little-endian header
 * length, a JSON header {"name": {"dtype": "F32", "shape": [...], "data_offsets": [b, e]},
 * "__metadata__": {"key": "value"}}, then the raw data. pnn writes and reads float32 only. */
#ifndef PNN_SAFETENSORS_H
#define PNN_SAFETENSORS_H

#include <stdint.h>

#include "pnn/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct pnn_st_entry {
    const char *name;
    int ndim;
    int64_t shape[4];
    const float *data;  /* host memory, prod(shape) floats */
} pnn_st_entry;

typedef struct pnn_st_meta {
    const char *key;
    const char *value;
} pnn_st_meta;

/* Writes atomically: a temporary file beside path, fsync, rename, fsync of the directory.
 * On failure no file (and no temporary) is left and an existing file at path is untouched. */
pnn_status pnn_safetensors_write(const char *path, const pnn_st_entry *entries, int n_entries,
                                 const pnn_st_meta *meta, int n_meta);

typedef struct pnn_safetensors pnn_safetensors;

/* Reads and validates the whole file: header length bounded and inside the file, JSON well
 * formed, every tensor F32 with offsets inside the data, non-overlapping and matching its shape,
 * no NaN or Inf. Errors (PNN_ERR_FORMAT; PNN_ERR_NOT_FOUND when missing) name the file and what
 * is wrong. */
pnn_status pnn_safetensors_read(const char *path, pnn_safetensors **out);
void pnn_safetensors_free(pnn_safetensors *st);
int pnn_safetensors_count(const pnn_safetensors *st);
const pnn_st_entry *pnn_safetensors_entry(const pnn_safetensors *st, int i);
const pnn_st_entry *pnn_safetensors_find(const pnn_safetensors *st, const char *name);
const char *pnn_safetensors_meta(const pnn_safetensors *st, const char *key);  /* NULL if absent */
int pnn_safetensors_meta_count(const pnn_safetensors *st);
const pnn_st_meta *pnn_safetensors_meta_at(const pnn_safetensors *st, int i); /* NULL past the last */

#ifdef __cplusplus
}
#endif
#endif
