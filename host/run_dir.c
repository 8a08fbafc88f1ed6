/* A run directory: config.yaml (the config as run), metrics.csv (one row per logged window, epoch
 * and test) and checkpoint.safetensors, locked by the process that writes them. Starting a run
 * refuses a directory that holds one; resuming continues from the checkpoint, or from the start
 * when the run died before its first one, so no directory is ever a dead end. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "train_dp.h"
#include "train_files.h"

#define LOCK_FILE ".pnn-lock"

static const char metrics_header[] =
    "step,epoch,kind,loss,acc,acc_batchmean,ms_per_step,elapsed_s,device_busy_s,device_duty,backend_busy_s,"
    "backend_wait_s\n";

pnn_status pnn_train_checkpoint_path(const char *run_dir, char *buf, size_t cap) {
    return pnn_path_format(buf, cap, "%s/checkpoint.safetensors", run_dir);
}

/* Writes text to path through a temporary file and a rename, so readers never see half of it. */
static pnn_status write_file_atomic(const char *path, const char *text) {
    char tmp[PNN_PATH_MAX + 1];
    PNN_TRY(pnn_path_format(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()));
    FILE *f = fopen(tmp, "w");
    if (!f) return PNN_ERROR(PNN_ERR_IO, "cannot write %s: %s", tmp, strerror(errno));
    size_t len = strlen(text);
    int ok = fwrite(text, 1, len, f) == len && fflush(f) == 0 && fsync(fileno(f)) == 0;
    int err = errno;
    if (fclose(f) != 0 && ok) ok = 0, err = errno;
    if (!ok || rename(tmp, path) != 0) {
        if (ok) err = errno;
        unlink(tmp);
        return PNN_ERROR(PNN_ERR_IO, "cannot write %s: %s", path, strerror(err));
    }
    return PNN_OK;
}

/* Takes the directory's lock for this process (released when it exits, however it exits), then
 * removes the temporary files a killed writer left. */
static pnn_status lock_run(pnn_trainer *tr, const char *run_dir) {
    char path[PNN_PATH_MAX + 1];
    PNN_TRY(pnn_path_format(path, sizeof path, "%s/" LOCK_FILE, run_dir));
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd < 0) return PNN_ERROR(PNN_ERR_IO, "cannot create the lock file %s: %s", path, strerror(errno));
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        char owner[32] = "";
        ssize_t got = pread(fd, owner, sizeof owner - 1, 0);
        owner[got > 0 ? got : 0] = '\0';
        owner[strcspn(owner, "\n")] = '\0';
        close(fd);
        return PNN_ERROR(PNN_ERR_INVALID, "run directory %s is in use by another pnn process%s%s%s; wait for it to "
                         "end (or stop it) first", run_dir, owner[0] ? " (pid " : "", owner, owner[0] ? ")" : "");
    }
    char pid[32];
    int len = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) != 0 || pwrite(fd, pid, (size_t)len, 0) != len) {
        /* the lock holds without the pid; only the message of a second process loses it */
    }
    tr->run_lock = fd;
    static const char *const written[] = {"config.yaml", "metrics.csv", "checkpoint.safetensors"};
    for (size_t i = 0; i < sizeof written / sizeof written[0]; i++)
        PNN_TRY(pnn_remove_stale_temps(run_dir, written[i], 1, NULL));
    return PNN_OK;
}

static pnn_status open_metrics(pnn_trainer *tr, const char *path) {
    tr->metrics = fopen(path, "a");
    if (!tr->metrics) return PNN_ERROR(PNN_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    return PNN_OK;
}

static pnn_status open_run_files(pnn_trainer *tr, const char *run_dir) {
    char path[PNN_PATH_MAX + 1];
    struct stat sb;
    if (!run_dir[0]) return PNN_ERROR(PNN_ERR_INVALID, "the run directory is empty; give --out DIR");
    PNN_TRY(pnn_path_format(path, sizeof path, "%s/config.yaml", run_dir));
    if (stat(path, &sb) == 0)
        return PNN_ERROR(PNN_ERR_INVALID,
                         "run directory %s already holds a run; continue it with --resume %s or choose "
                         "another --out",
                         run_dir, run_dir);
    PNN_TRY(pnn_mkdir_p(run_dir));
    PNN_TRY(lock_run(tr, run_dir));
    char *yaml = pnn_cfg_to_yaml(tr->cfg);
    if (!yaml) return PNN_ERROR(PNN_ERR_NOMEM, "out of memory writing the config");
    pnn_status st = write_file_atomic(path, yaml);
    free(yaml);
    PNN_TRY(st);
    PNN_TRY(pnn_path_format(path, sizeof path, "%s/metrics.csv", run_dir));
    PNN_TRY(write_file_atomic(path, metrics_header));
    return open_metrics(tr, path);
}

pnn_status pnn_trainer_open_run(pnn_trainer *tr, const char *run_dir) {
    /* rank 0 writes the run directory; the others only need to know where it is */
    pnn_status st = pnn_trainer_rank(tr) == 0 ? open_run_files(tr, run_dir) : PNN_OK;
    if (st == PNN_OK) st = pnn_path_format(tr->run_dir, sizeof tr->run_dir, "%s", run_dir);
    return pnn_dp_agree(tr, st, NULL);
}

/* ---- metrics ---- */

void pnn_train_sums_start(pnn_trainer *tr, pnn_train_sums *s) {
    memset(s, 0, sizeof *s);
    s->at_start = tr->bridge_run;
}

/* Timing columns of a window of training steps: the differences of two bridge_stats. */
static void metrics_timing(FILE *f, const pnn_bridge_stats *now, const pnn_bridge_stats *then) {
    double wall = now->wall_s - then->wall_s, wait = now->wait_s - then->wait_s, busy = 0, busiest = 0;
    for (int d = 0; d < now->n_devices; d++) {
        double b = now->device_busy_s[d] - then->device_busy_s[d];
        busy += b;
        if (b > busiest) busiest = b;
    }
    if (now->n_devices)
        fprintf(f, "%.4f,%.4f,", busy, wall > 0 ? busiest / wall : 0);
    else
        fputs(",,", f);
    fprintf(f, "%.4f,%.4f", wall - wait, wait);
}

pnn_status pnn_train_metrics_row(pnn_trainer *tr, const char *kind, double loss, double acc, double acc_bm,
                                 double ms, double elapsed, const pnn_bridge_stats *since) {
    if (!tr->metrics) return PNN_OK;
    fprintf(tr->metrics, "%lld,%lld,%s,%.6g,%.6g,", (long long)tr->global_step, (long long)tr->epoch, kind,
            loss, acc);
    if (acc_bm >= 0) fprintf(tr->metrics, "%.6g", acc_bm);
    fputc(',', tr->metrics);
    if (ms >= 0) fprintf(tr->metrics, "%.4g", ms);
    fprintf(tr->metrics, ",%.3f,", elapsed);
    if (since) metrics_timing(tr->metrics, &tr->bridge_run, since);
    else fputs(",,,", tr->metrics);
    fputc('\n', tr->metrics);
    /* a full disk loses rows: stop the run (its checkpoint would not fit either) rather than go on */
    if (fflush(tr->metrics) != 0 || ferror(tr->metrics))
        return PNN_ERROR(PNN_ERR_IO, "cannot write %s/metrics.csv: %s (is the disk full?)", tr->run_dir,
                         strerror(errno));
    return PNN_OK;
}

/* Keeps the metrics rows up to the checkpoint's step, so a resumed run's file reads as one run.
 * Streams through a temporary file: a long run's metrics are never held in memory. */
static pnn_status truncate_metrics(pnn_trainer *tr) {
    char path[PNN_PATH_MAX + 1], tmp[PNN_PATH_MAX + 1];
    PNN_TRY(pnn_path_format(path, sizeof path, "%s/metrics.csv", tr->run_dir));
    PNN_TRY(pnn_path_format(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()));
    FILE *in = fopen(path, "r"), *out = fopen(tmp, "w");
    if (!out) {
        if (in) fclose(in);
        return PNN_ERROR(PNN_ERR_IO, "cannot write %s: %s", tmp, strerror(errno));
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int first = 1, ok = 1;
    while (in && ok && (len = getline(&line, &cap, in)) > 0) {
        long long step = 0;
        /* the header, then rows up to the checkpoint's step; a torn last line is dropped */
        if (first ? strncmp(line, "step,", 5) != 0
                  : sscanf(line, "%lld,", &step) != 1 || step > tr->global_step || line[len - 1] != '\n')
            continue;
        first = 0;
        ok = fwrite(line, 1, (size_t)len, out) == (size_t)len;
    }
    free(line);
    if (in) fclose(in);
    if (ok && first) ok = fputs(metrics_header, out) >= 0;
    ok = ok && fflush(out) == 0 && fsync(fileno(out)) == 0;
    int err = errno;
    if (fclose(out) != 0 && ok) ok = 0, err = errno;
    if (!ok || rename(tmp, path) != 0) {
        if (ok) err = errno;
        unlink(tmp);
        return PNN_ERROR(PNN_ERR_IO, "cannot write %s: %s", path, strerror(err));
    }
    return open_metrics(tr, path);
}

/* Loads the checkpoint; a run that has none yet (it stopped before its first one: killed, a full
 * disk, a diverged first epoch) starts from its beginning, which is exactly where it stopped. */
static pnn_status load_or_restart(pnn_trainer *tr, const char *path) {
    struct stat sb;
    if (stat(path, &sb) != 0 && errno == ENOENT) {
        snprintf(tr->note, sizeof tr->note,
                 "the run has no checkpoint yet (it stopped before its first one): it starts from its beginning");
        return PNN_OK;
    }
    return pnn_trainer_load_checkpoint(tr, path, 1);
}

pnn_status pnn_trainer_resume(pnn_trainer *tr, const char *run_dir) {
    char path[PNN_PATH_MAX + 1];
    PNN_TRY(pnn_path_format(tr->run_dir, sizeof tr->run_dir, "%s", run_dir));
    PNN_TRY(pnn_train_checkpoint_path(run_dir, path, sizeof path));
    pnn_status st = pnn_trainer_rank(tr) == 0 ? lock_run(tr, run_dir) : PNN_OK;
    PNN_TRY(pnn_dp_agree(tr, st, NULL));
    /* every rank loads the same file (on a file system they all see) */
    PNN_TRY(pnn_dp_agree(tr, load_or_restart(tr, path), NULL));
    if (pnn_dp_size(tr) > 1) PNN_TRY(pnn_dp_check_params(tr, "after loading the checkpoint"));
    return pnn_dp_agree(tr, pnn_trainer_rank(tr) == 0 ? truncate_metrics(tr) : PNN_OK, NULL);
}
