/* Regular files only, paths that are never cut, and clean-up after killed writers. */
#include "pnn/fileio.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

pnn_status pnn_open_regular(const char *path, int flags, mode_t mode, const char *what, int *fd) {
    *fd = -1;
    /* O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer */
    int f = open(path, flags | O_CLOEXEC | O_NOCTTY | O_NONBLOCK, mode);
    if (f < 0) {
        int err = errno;
        if (err == ENOENT) return PNN_ERROR(PNN_ERR_NOT_FOUND, "%s '%s' does not exist; check the path", what, path);
        return PNN_ERROR(PNN_ERR_IO, "cannot open %s '%s': %s", what, path, strerror(err));
    }
    struct stat sb;
    if (fstat(f, &sb) != 0) {
        int err = errno;
        close(f);
        return PNN_ERROR(PNN_ERR_IO, "cannot stat %s '%s': %s", what, path, strerror(err));
    }
    if (!S_ISREG(sb.st_mode)) {
        close(f);
        return PNN_ERROR(PNN_ERR_FORMAT, "%s '%s' is not a regular file (%s); give the path of a file", what, path,
                         S_ISDIR(sb.st_mode) ? "a directory" : S_ISFIFO(sb.st_mode) ? "a FIFO" : "a device or socket");
    }
    int fl = fcntl(f, F_GETFL);
    if (fl < 0 || fcntl(f, F_SETFL, fl & ~O_NONBLOCK) != 0) {
        int err = errno;
        close(f);
        return PNN_ERROR(PNN_ERR_IO, "cannot use %s '%s': %s", what, path, strerror(err));
    }
    *fd = f;
    return PNN_OK;
}

pnn_status pnn_path_format(char *buf, size_t cap, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, cap, fmt, ap);
    va_end(ap);
    if (n >= 0 && (size_t)n < cap) return PNN_OK;
    char start[48];
    snprintf(start, sizeof start, "%s", buf);
    buf[0] = '\0';
    if (n < 0) return PNN_ERROR(PNN_ERR_INVALID, "cannot build a path from '%s'", fmt);
    return PNN_ERROR(PNN_ERR_INVALID, "path '%s...' is too long: %d bytes, at most %zu; use a shorter one", start, n,
                     cap - 1);
}

pnn_status pnn_remove_stale_temps(const char *dir, const char *base, int any_pid, int *removed) {
    if (removed) *removed = 0;
    DIR *d = opendir(dir);
    if (!d) return PNN_ERROR(PNN_ERR_IO, "cannot read directory %s: %s", dir, strerror(errno));
    size_t blen = strlen(base);
    struct dirent *e;
    pnn_status st = PNN_OK;
    while ((e = readdir(d))) {
        const char *name = e->d_name;
        if (strncmp(name, base, blen) || strncmp(name + blen, ".tmp.", 5)) continue;
        char *end;
        long pid = strtol(name + blen + 5, &end, 10);
        if (end == name + blen + 5 || *end || pid <= 0) continue;
        if (pid == (long)getpid()) continue;
        /* without the lock, a live process may still be writing it: leave it */
        if (!any_pid && (kill((pid_t)pid, 0) == 0 || errno != ESRCH)) continue;
        char path[PNN_PATH_MAX + 1];
        if (pnn_path_format(path, sizeof path, "%s/%s", dir, name) != PNN_OK) continue;
        if (unlink(path) == 0) {
            if (removed) (*removed)++;
        } else if (errno != ENOENT) {
            st = PNN_ERROR(PNN_ERR_IO, "cannot remove the stale temporary file %s: %s", path, strerror(errno));
            break;
        }
    }
    closedir(d);
    return st;
}

pnn_status pnn_mkdir_p(const char *dir) {
    char buf[PNN_PATH_MAX + 1];
    PNN_TRY(pnn_path_format(buf, sizeof buf, "%s", dir));
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        if (mkdir(buf, 0777) != 0 && errno != EEXIST)
            return PNN_ERROR(PNN_ERR_IO, "cannot create directory %s: %s", buf, strerror(errno));
        *p = '/';
    }
    if (mkdir(buf, 0777) != 0 && errno != EEXIST)
        return PNN_ERROR(PNN_ERR_IO, "cannot create directory %s: %s", buf, strerror(errno));
    return PNN_OK;
}

pnn_status pnn_path_dirname(const char *path, char *buf, size_t size) {
    const char *slash = strrchr(path, '/');
    if (!slash) return pnn_path_format(buf, size, ".");
    if (slash == path) return pnn_path_format(buf, size, "/");
    if ((size_t)(slash - path) >= size) return pnn_path_format(buf, size, "%s", path); /* fails, naming it */
    return pnn_path_format(buf, size, "%.*s", (int)(slash - path), path);
}
