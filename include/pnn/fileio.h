/* Files that come from outside: opening only regular files (a FIFO or a device node named as a
 * recording or checkpoint would block or stream forever), building paths that are used as given
 * or refused (never silently cut), and removing the temporary files a killed process left. */
#ifndef PNN_FILEIO_H
#define PNN_FILEIO_H

#include <stddef.h>
#include <sys/types.h>

#include "pnn/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Longest path pnn builds or accepts (bytes, without the NUL): Linux's PATH_MAX - 1. */
#define PNN_PATH_MAX 4095

/* Opens path with flags (O_RDONLY, O_RDWR, O_CREAT...; O_CLOEXEC is added) and mode, without
 * blocking on a FIFO, and fails unless it is a regular file. what names the file for messages
 * ("recording", "checkpoint"). ENOENT is PNN_ERR_NOT_FOUND, a non-regular file PNN_ERR_FORMAT,
 * anything else PNN_ERR_IO. */
pnn_status pnn_open_regular(const char *path, int flags, mode_t mode, const char *what, int *fd);

/* snprintf into buf[cap] that fails (PNN_ERR_INVALID, naming the start of the path and both
 * lengths) instead of truncating; buf is then "". */
pnn_status pnn_path_format(char *buf, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* The directory part of path ("." when none), into buf; PNN_ERR_INVALID when it does not fit. */
pnn_status pnn_path_dirname(const char *path, char *buf, size_t size);

/* mkdir -p: dir and every missing parent (PNN_ERR_IO naming the one that could not be made). */
pnn_status pnn_mkdir_p(const char *dir);

/* Removes files in dir named "<base>.tmp.<pid>" left by a process killed while it wrote base:
 * those of any other process when the caller holds the directory's lock (any_pid), else only
 * those whose process is gone. *removed (may be NULL) gets how many. */
pnn_status pnn_remove_stale_temps(const char *dir, const char *base, int any_pid, int *removed);

#ifdef __cplusplus
}
#endif
#endif
