/* The mpi comm kind: thin, checked wrappers of MPI collectives on a private duplicate of
 * MPI_COMM_WORLD whose errors return instead of killing the job. Every MPI call goes through
 * PNN_MPI_CHECK (call text, file, line, rank, MPI_Error_string); after the first failure the
 * communicator refuses further collectives, and shutdown leaves MPI unfinalized so that the
 * launcher ends the job. Without PNN_USE_MPI only the "not built" answers remain. */
#include "pnn/comm.h"

#ifdef PNN_USE_MPI

#include <limits.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct {
    MPI_Comm world;     /* collectives of the run */
    MPI_Comm exit_comm; /* only the shutdown barrier, so it never matches a collective of the run */
    int rank;
    int broken;
    char first_error[768];
} mpi_ctx;

/* comms alive on MPI in this process, and whether pnn called MPI_Init (then it finalizes) */
static int mpi_users, mpi_initialized_here;

static pnn_status mpi_failed(mpi_ctx *m, int rc, const char *call, const char *file, int line) {
    char text[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(rc, text, &len) != MPI_SUCCESS) snprintf(text, sizeof text, "MPI error code %d", rc);
    m->broken = 1;
    pnn_error_at(PNN_ERR_IO, file, line,
                 "rank %d: %s failed: %s (%s:%d); communication between the ranks is broken: look in the "
                 "launcher's output for a rank that died, and check that every rank runs the same pnn and config",
                 m->rank, call, text, file, line);
    snprintf(m->first_error, sizeof m->first_error, "%s", pnn_last_error());
    return PNN_ERR_IO;
}

#define PNN_MPI_CHECK(m, call)                                                   \
    do {                                                                         \
        int pnn_mpi_rc_ = (call);                                                \
        if (pnn_mpi_rc_ != MPI_SUCCESS)                                          \
            return mpi_failed((m), pnn_mpi_rc_, #call, __FILE__, __LINE__);      \
    } while (0)

static pnn_status usable(const mpi_ctx *m) {
    if (m->broken)
        return PNN_ERROR(PNN_ERR_IO, "rank %d: no further communication after an earlier MPI failure: %s", m->rank,
                         m->first_error);
    return PNN_OK;
}

static pnn_status fits_int(const mpi_ctx *m, int64_t v, const char *what) {
    if (v < 0 || v > INT_MAX)
        return PNN_ERROR(PNN_ERR_UNSUPPORTED,
                         "rank %d: %s of %lld elements is beyond MPI's int counts; use fewer shards or "
                         "reduce: fast",
                         m->rank, what, (long long)v);
    return PNN_OK;
}

static pnn_status mpi_allreduce_sum(void *ctx, float *buf, int64_t n) {
    mpi_ctx *m = ctx;
    PNN_TRY(usable(m));
    for (int64_t off = 0; off < n; off += INT_MAX) {
        int count = (int)(n - off < INT_MAX ? n - off : INT_MAX);
        PNN_MPI_CHECK(m, MPI_Allreduce(MPI_IN_PLACE, buf + off, count, MPI_FLOAT, MPI_SUM, m->world));
    }
    return PNN_OK;
}

static pnn_status mpi_allgather(void *ctx, const void *send, size_t bytes, void *recv) {
    mpi_ctx *m = ctx;
    PNN_TRY(usable(m));
    PNN_TRY(fits_int(m, (int64_t)bytes, "an all-gather"));
    int n = (int)bytes;
    PNN_MPI_CHECK(m, MPI_Allgather(send, n, MPI_BYTE, recv, n, MPI_BYTE, m->world));
    return PNN_OK;
}

/* int copies of count and displacement arrays (MPI-3 counts are int) */
static pnn_status to_ints(const mpi_ctx *m, int size, const int64_t *const *src, int *dst, int arrays) {
    for (int a = 0; a < arrays; a++)
        for (int j = 0; j < size; j++) {
            PNN_TRY(fits_int(m, src[a][j], "an all-to-all part"));
            dst[a * size + j] = (int)src[a][j];
        }
    return PNN_OK;
}

static pnn_status mpi_alltoallv(void *ctx, const float *send, const int64_t *send_counts, const int64_t *send_displs,
                                float *recv, const int64_t *recv_counts, const int64_t *recv_displs) {
    mpi_ctx *m = ctx;
    int size;
    PNN_TRY(usable(m));
    PNN_MPI_CHECK(m, MPI_Comm_size(m->world, &size));
    int *v = malloc((size_t)size * 4 * sizeof(int));
    if (!v) return PNN_ERROR(PNN_ERR_NOMEM, "rank %d: out of memory for an all-to-all", m->rank);
    const int64_t *src[4] = {send_counts, send_displs, recv_counts, recv_displs};
    pnn_status st = to_ints(m, size, src, v, 4);
    if (st == PNN_OK) {
        int rc = MPI_Alltoallv(send, v, v + size, MPI_FLOAT, recv, v + 2 * size, v + 3 * size, MPI_FLOAT, m->world);
        if (rc != MPI_SUCCESS)
            st = mpi_failed(m, rc, "MPI_Alltoallv(send, counts, displs, MPI_FLOAT, recv, ...)", __FILE__, __LINE__);
    }
    free(v);
    return st;
}

static pnn_status mpi_allgatherv(void *ctx, float *buf, const int64_t *counts, const int64_t *displs) {
    mpi_ctx *m = ctx;
    int size;
    PNN_TRY(usable(m));
    PNN_MPI_CHECK(m, MPI_Comm_size(m->world, &size));
    int *v = malloc((size_t)size * 2 * sizeof(int));
    if (!v) return PNN_ERROR(PNN_ERR_NOMEM, "rank %d: out of memory for an all-gather", m->rank);
    const int64_t *src[2] = {counts, displs};
    pnn_status st = to_ints(m, size, src, v, 2);
    if (st == PNN_OK) {
        int rc = MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, buf, v, v + size, MPI_FLOAT, m->world);
        if (rc != MPI_SUCCESS)
            st = mpi_failed(m, rc, "MPI_Allgatherv(MPI_IN_PLACE, ..., buf, counts, displs, MPI_FLOAT)", __FILE__,
                            __LINE__);
    }
    free(v);
    return st;
}

static pnn_status mpi_bcast(void *ctx, void *buf, size_t bytes, int root) {
    mpi_ctx *m = ctx;
    PNN_TRY(usable(m));
    for (size_t off = 0; off < bytes; off += INT_MAX) {
        int count = (int)(bytes - off < INT_MAX ? bytes - off : INT_MAX);
        PNN_MPI_CHECK(m, MPI_Bcast((char *)buf + off, count, MPI_BYTE, root, m->world));
    }
    return PNN_OK;
}

static pnn_status mpi_barrier(void *ctx) {
    mpi_ctx *m = ctx;
    PNN_TRY(usable(m));
    PNN_MPI_CHECK(m, MPI_Barrier(m->world));
    return PNN_OK;
}

/* Waits for every rank on the exit communicator, polling so that a rank that never comes
 * cannot hold this one forever. */
static pnn_status wait_for_all(mpi_ctx *m, double timeout_s) {
    MPI_Request req;
    int done = 0;
    PNN_MPI_CHECK(m, MPI_Ibarrier(m->exit_comm, &req));
    double t0 = MPI_Wtime();
    for (;;) {
        PNN_MPI_CHECK(m, MPI_Test(&req, &done, MPI_STATUS_IGNORE));
        if (done) return PNN_OK;
        if (timeout_s > 0 && MPI_Wtime() - t0 > timeout_s)
            return PNN_ERROR(PNN_ERR_TIMEOUT,
                             "rank %d: the other ranks did not reach the end within %g s (one of them probably "
                             "waits in a step after a failure it never learned of); leaving without MPI_Finalize "
                             "so that the launcher (mpirun, srun) ends the job",
                             m->rank, timeout_s);
        struct timespec ms = {0, 1000000};
        nanosleep(&ms, NULL);
    }
}

/* Frees the communicators and, when pnn started MPI and this was its last comm, finalizes. */
static pnn_status release(mpi_ctx *m) {
    PNN_MPI_CHECK(m, MPI_Comm_free(&m->world));
    PNN_MPI_CHECK(m, MPI_Comm_free(&m->exit_comm));
    if (mpi_users == 0 && mpi_initialized_here) PNN_MPI_CHECK(m, MPI_Finalize());
    return PNN_OK;
}

static pnn_status mpi_shutdown(void *ctx, double timeout_s) {
    mpi_ctx *m = ctx;
    pnn_status st = usable(m);
    if (st != PNN_OK)
        pnn_error_prefix(st, "rank %d: leaving without MPI_Finalize so that the launcher ends the job: ", m->rank);
    else
        st = wait_for_all(m, timeout_s);
    mpi_users--;
    if (st == PNN_OK) st = release(m);
    free(m);
    return st;
}

static const pnn_comm_i mpi_iface = {
    .name = "mpi",
    .allreduce_sum_f32 = mpi_allreduce_sum,
    .allgather = mpi_allgather,
    .alltoallv_f32 = mpi_alltoallv,
    .allgatherv_f32 = mpi_allgatherv,
    .bcast = mpi_bcast,
    .barrier = mpi_barrier,
    .shutdown = mpi_shutdown,
};

static pnn_status open_comms(mpi_ctx *m, pnn_comm *c) {
    MPI_Comm local;
    PNN_MPI_CHECK(m, MPI_Comm_dup(MPI_COMM_WORLD, &m->world));
    PNN_MPI_CHECK(m, MPI_Comm_set_errhandler(m->world, MPI_ERRORS_RETURN));
    PNN_MPI_CHECK(m, MPI_Comm_dup(m->world, &m->exit_comm));
    PNN_MPI_CHECK(m, MPI_Comm_rank(m->world, &c->rank));
    PNN_MPI_CHECK(m, MPI_Comm_size(m->world, &c->size));
    PNN_MPI_CHECK(m, MPI_Comm_split_type(m->world, MPI_COMM_TYPE_SHARED, c->rank, MPI_INFO_NULL, &local));
    PNN_MPI_CHECK(m, MPI_Comm_rank(local, &c->local_rank));
    PNN_MPI_CHECK(m, MPI_Comm_size(local, &c->local_size));
    PNN_MPI_CHECK(m, MPI_Comm_free(&local));
    return PNN_OK;
}

/* Starts MPI unless the program did (then the program finalizes it too). */
static pnn_status start_mpi(mpi_ctx *m, int *argc, char ***argv) {
    int flag = 0, provided;
    PNN_MPI_CHECK(m, MPI_Finalized(&flag));
    if (flag)
        return PNN_ERROR(PNN_ERR_UNSUPPORTED,
                         "MPI was finalized in this process already and cannot start again: create the mpi comm "
                         "once per process (pnn_comm_init in main) and free it at the end");
    PNN_MPI_CHECK(m, MPI_Initialized(&flag));
    if (!flag) {
        PNN_MPI_CHECK(m, MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided));
        mpi_initialized_here = 1;
        /* errors on the world communicator (and the dups made from it) return, not kill the job */
        PNN_MPI_CHECK(m, MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN));
    }
    PNN_MPI_CHECK(m, MPI_Comm_rank(MPI_COMM_WORLD, &m->rank));
    return PNN_OK;
}

pnn_status pnn_comm_mpi_open(pnn_comm *c, int *argc, char ***argv) {
    mpi_ctx *m = calloc(1, sizeof *m);
    if (!m) return PNN_ERROR(PNN_ERR_NOMEM, "out of memory starting MPI communication");
    m->rank = -1;
    pnn_status st = start_mpi(m, argc, argv);
    if (st == PNN_OK) st = open_comms(m, c);
    if (st != PNN_OK) {
        free(m);
        return st;
    }
    mpi_users++;
    c->iface = &mpi_iface;
    c->ctx = m;
    return PNN_OK;
}

int pnn_comm_have_mpi(void) { return 1; }

#else /* !PNN_USE_MPI */

int pnn_comm_have_mpi(void) { return 0; }

pnn_status pnn_comm_mpi_open(pnn_comm *c, int *argc, char ***argv) {
    (void)c, (void)argc, (void)argv;
    return PNN_ERROR(PNN_ERR_UNSUPPORTED,
                     "this pnn was built without MPI: apt-get install libopenmpi-dev openmpi-bin, then configure "
                     "with cmake -DPNN_MPI=ON");
}

#endif
