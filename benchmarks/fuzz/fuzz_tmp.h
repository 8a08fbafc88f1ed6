/* Shared by the fuzz harnesses that hand the library a file path (recordings, checkpoints): a
 * private directory, on tmpfs (/dev/shm) when there is one, else in $TMPDIR or /tmp, named
 * pnn-fuzz-NAME.PID. It is removed at exit; one left by a run that crashed or was killed (the
 * fuzzer then exits without running atexit) is removed when the next run starts. */
#ifndef PNN_FUZZ_TMP_H
#define PNN_FUZZ_TMP_H

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char fuzz_dir[512];

/* Removes a directory and the plain files in it (the harnesses make no subdirectories). */
static inline void fuzz_remove_dir(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    char path[1024];
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
            unlink(path);
        }
    closedir(d);
    rmdir(dir);
}

static inline void fuzz_tmp_cleanup(void) {
    if (fuzz_dir[0]) fuzz_remove_dir(fuzz_dir);
}

/* Makes the directory for harness `name`; aborts when it cannot (the harness cannot run). */
static inline void fuzz_tmp_init(const char *name) {
    const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : getenv("TMPDIR");
    if (!base || !*base) base = "/tmp";
    char prefix[128];
    snprintf(prefix, sizeof prefix, "pnn-fuzz-%s.", name);
    DIR *d = opendir(base);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (strncmp(e->d_name, prefix, strlen(prefix))) continue;
        long pid = strtol(e->d_name + strlen(prefix), NULL, 10);
        if (pid > 0 && kill((pid_t)pid, 0) != 0 && errno == ESRCH) {
            char stale[1024];
            snprintf(stale, sizeof stale, "%s/%s", base, e->d_name);
            fuzz_remove_dir(stale);
        }
    }
    if (d) closedir(d);
    snprintf(fuzz_dir, sizeof fuzz_dir, "%s/%s%ld", base, prefix, (long)getpid());
    if (mkdir(fuzz_dir, 0700) != 0 && errno != EEXIST) {
        fprintf(stderr, "fuzz: cannot make %s: %s\n", fuzz_dir, strerror(errno));
        abort();
    }
    atexit(fuzz_tmp_cleanup);
}

static inline void fuzz_tmp_path(char *out, size_t cap, const char *file) {
    snprintf(out, cap, "%s/%s", fuzz_dir, file);
}

/* Replaces the file at path with size bytes of data; aborts on a write error (not a finding). */
static inline void fuzz_write_file(const char *path, const void *data, size_t size) {
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    const char *p = data;
    while (fd >= 0 && size) {
        ssize_t w = write(fd, p, size);
        if (w <= 0) break;
        p += w, size -= (size_t)w;
    }
    if (fd < 0 || size || close(fd) != 0) {
        fprintf(stderr, "fuzz: cannot write %s: %s\n", path, strerror(errno));
        abort();
    }
}

/* Reads the whole file at path into a malloc'd buffer (*size bytes); NULL when it cannot. */
static inline void *fuzz_read_file(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *buf = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        if (n == cap) {
            char *grown = realloc(buf, cap = cap ? 2 * cap : 4096);
            if (!grown) {
                free(buf);
                fclose(f);
                return NULL;
            }
            buf = grown;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (!got) break;
    }
    fclose(f);
    *size = n;
    return buf;
}

#endif
