/* The nccl comm kind: gradient sums in GPU memory with NCCL, one rank per GPU. It starts as the
 * mpi kind (host/comm_mpi.c), picks the rank's GPU (local_rank % GPUs, or PNN_CUDA_DEVICE),
 * broadcasts rank 0's ncclUniqueId over MPI and joins the NCCL communicator. allreduce_sum_f32
 * is ncclAllReduce on cudaStreamPerThread, waited for while polling ncclCommGetAsyncError; every
 * other operation (gathers, broadcasts, barrier, agreement) is MPI's on host memory. Every NCCL
 * call goes through PNN_NCCL_CHECK (NCCL's message, call text, file, line, rank). Without
 * PNN_USE_NCCL only the "not built" answers remain. */
#include "pnn/comm.h"

#ifdef PNN_USE_NCCL

#include <cuda_runtime_api.h>
#include <nccl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const pnn_comm_i *mpi; /* the mpi kind underneath: host collectives and shutdown */
    void *mpi_ctx;
    ncclComm_t comm;       /* NULL until ncclCommInitRank succeeded */
    int device, rank;
    int broken;            /* after an NCCL or CUDA failure: no further NCCL calls but abort */
    char first_error[768];
} nccl_ctx;

static pnn_status nccl_failed(nccl_ctx *n, ncclResult_t rc, const char *call, const char *file, int line) {
    const char *detail = ncclGetLastError(n->comm);
    pnn_status st = rc == ncclInvalidArgument || rc == ncclInvalidUsage ? PNN_ERR_INVALID
                    : rc == ncclUnhandledCudaError                     ? PNN_ERR_CUDA
                                                                        : PNN_ERR_IO;
    n->broken = 1;
    pnn_error_at(st, file, line,
                 "rank %d: %s failed: %s%s%s (%s:%d); NCCL communication is broken: look in the launcher's "
                 "output for a rank that died, run with NCCL_DEBUG=WARN for NCCL's view, and check that every "
                 "rank has its own GPU",
                 n->rank, call, ncclGetErrorString(rc), detail && *detail ? ": " : "", detail ? detail : "", file,
                 line);
    snprintf(n->first_error, sizeof n->first_error, "%s", pnn_last_error());
    return st;
}

static pnn_status nccl_cuda_failed(nccl_ctx *n, cudaError_t err, const char *call, const char *file, int line) {
    cudaGetLastError();
    n->broken = 1;
    pnn_error_at(PNN_ERR_CUDA, file, line, "rank %d (GPU %d): %s failed: %s (%s) (%s:%d)", n->rank, n->device, call,
                 cudaGetErrorName(err), cudaGetErrorString(err), file, line);
    snprintf(n->first_error, sizeof n->first_error, "%s", pnn_last_error());
    return PNN_ERR_CUDA;
}

#define PNN_NCCL_CHECK(n, call)                                                  \
    do {                                                                         \
        ncclResult_t pnn_nccl_rc_ = (call);                                      \
        if (pnn_nccl_rc_ != ncclSuccess)                                         \
            return nccl_failed((n), pnn_nccl_rc_, #call, __FILE__, __LINE__);    \
    } while (0)

#define PNN_NCCL_CUDA_CHECK(n, call)                                             \
    do {                                                                         \
        cudaError_t pnn_nccl_err_ = (call);                                      \
        if (pnn_nccl_err_ != cudaSuccess)                                        \
            return nccl_cuda_failed((n), pnn_nccl_err_, #call, __FILE__, __LINE__); \
    } while (0)

static pnn_status usable(const nccl_ctx *n) {
    if (n->broken)
        return PNN_ERROR(PNN_ERR_IO, "rank %d: no further NCCL communication after an earlier failure: %s", n->rank,
                         n->first_error);
    return PNN_OK;
}

/* Errors NCCL found in the background (a peer gone, a network error). */
static pnn_status check_async(nccl_ctx *n) {
    ncclResult_t async = ncclSuccess;
    PNN_NCCL_CHECK(n, ncclCommGetAsyncError(n->comm, &async));
    if (async != ncclSuccess && async != ncclInProgress)
        return nccl_failed(n, async, "an NCCL operation (asynchronous error)", __FILE__, __LINE__);
    return PNN_OK;
}

/* Waits for the stream, watching NCCL's asynchronous errors (a plain cudaStreamSynchronize
 * would hang forever when a peer fails inside a collective). */
static pnn_status wait_stream(nccl_ctx *n, cudaStream_t s) {
    for (unsigned spins = 0;; spins++) {
        cudaError_t err = cudaStreamQuery(s);
        if (err == cudaSuccess) return PNN_OK;
        if (err != cudaErrorNotReady)
            return nccl_cuda_failed(n, err, "cudaStreamQuery(cudaStreamPerThread)", __FILE__, __LINE__);
        if (spins % 64 == 63) PNN_TRY(check_async(n));
        sched_yield();
    }
}

/* buf must be device (or managed) memory of this rank's GPU, or NCCL fails with less to say. */
static pnn_status check_device_buffer(nccl_ctx *n, const void *buf) {
    struct cudaPointerAttributes attr;
    cudaError_t err = cudaPointerGetAttributes(&attr, buf);
    if (err != cudaSuccess) {
        cudaGetLastError();
        return PNN_ERROR(PNN_ERR_INVALID, "rank %d: comm nccl cannot tell where %p lives (%s); pass GPU memory",
                         n->rank, buf, cudaGetErrorString(err));
    }
    if (attr.type != cudaMemoryTypeDevice && attr.type != cudaMemoryTypeManaged)
        return PNN_ERROR(PNN_ERR_INVALID,
                         "rank %d: comm nccl sums GPU memory, but %p is host memory; give it a buffer of the "
                         "cuda backend (backend: cuda), or use comm mpi for host buffers",
                         n->rank, buf);
    if (attr.device != n->device)
        return PNN_ERROR(PNN_ERR_INVALID,
                         "rank %d: %p is memory of GPU %d but this rank's NCCL communicator is on GPU %d: the "
                         "CUDA backend was started before the comm on another GPU; create the comm first, or "
                         "set PNN_CUDA_DEVICE to the rank's local rank",
                         n->rank, buf, attr.device, n->device);
    return PNN_OK;
}

static pnn_status nccl_allreduce_sum(void *ctx, float *buf, int64_t count) {
    nccl_ctx *n = ctx;
    PNN_TRY(usable(n));
    if (count == 0) return PNN_OK;
    PNN_TRY(check_device_buffer(n, buf));
    PNN_NCCL_CUDA_CHECK(n, cudaSetDevice(n->device));
    PNN_NCCL_CHECK(n, ncclAllReduce(buf, buf, (size_t)count, ncclFloat32, ncclSum, n->comm, cudaStreamPerThread));
    return wait_stream(n, cudaStreamPerThread);
}

/* the rest is MPI's, on host memory; it keeps working after an NCCL failure, so that the ranks
 * can still agree on it */
static pnn_status nccl_allgather(void *ctx, const void *send, size_t bytes, void *recv) {
    nccl_ctx *n = ctx;
    return n->mpi->allgather(n->mpi_ctx, send, bytes, recv);
}

static pnn_status nccl_alltoallv(void *ctx, const float *send, const int64_t *send_counts, const int64_t *send_displs,
                                 float *recv, const int64_t *recv_counts, const int64_t *recv_displs) {
    nccl_ctx *n = ctx;
    return n->mpi->alltoallv_f32(n->mpi_ctx, send, send_counts, send_displs, recv, recv_counts, recv_displs);
}

static pnn_status nccl_allgatherv(void *ctx, float *buf, const int64_t *counts, const int64_t *displs) {
    nccl_ctx *n = ctx;
    return n->mpi->allgatherv_f32(n->mpi_ctx, buf, counts, displs);
}

static pnn_status nccl_bcast(void *ctx, void *buf, size_t bytes, int root) {
    nccl_ctx *n = ctx;
    return n->mpi->bcast(n->mpi_ctx, buf, bytes, root);
}

static pnn_status nccl_barrier(void *ctx) {
    nccl_ctx *n = ctx;
    return n->mpi->barrier(n->mpi_ctx);
}

/* The MPI shutdown first: it waits (with its timeout) for every rank to arrive, so that the
 * NCCL teardown after it cannot wait on a rank that never comes. Then ncclCommDestroy when all
 * went well, ncclCommAbort (which never waits) otherwise. Returns the first failure. */
static pnn_status nccl_shutdown(void *ctx, double timeout_s) {
    nccl_ctx *n = ctx;
    pnn_status st = usable(n);
    if (st == PNN_OK && n->comm) st = check_async(n);
    char msg[1024] = "";
    if (st != PNN_OK) snprintf(msg, sizeof msg, "%s", pnn_last_error());
    pnn_status mst = n->mpi->shutdown(n->mpi_ctx, timeout_s);
    if (n->comm) {
        cudaSetDevice(n->device);
        if (st == PNN_OK && mst == PNN_OK) {
            ncclResult_t rc = ncclCommDestroy(n->comm);
            if (rc != ncclSuccess) st = nccl_failed(n, rc, "ncclCommDestroy(comm)", __FILE__, __LINE__);
        } else {
            ncclCommAbort(n->comm);
        }
    }
    free(n);
    if (msg[0]) return PNN_ERROR(st, "%s", msg);
    return st != PNN_OK ? st : mst;
}

static const pnn_comm_i nccl_iface = {
    .name = "nccl",
    .allreduce_sum_f32 = nccl_allreduce_sum,
    .allgather = nccl_allgather,
    .alltoallv_f32 = nccl_alltoallv,
    .allgatherv_f32 = nccl_allgatherv,
    .bcast = nccl_bcast,
    .barrier = nccl_barrier,
    .shutdown = nccl_shutdown,
};

/* This rank's GPU: PNN_CUDA_DEVICE when set (the CUDA backend reads it too), else
 * local_rank % GPUs, written to PNN_CUDA_DEVICE so that the backend, started later, agrees. */
static pnn_status pick_device(nccl_ctx *n, const pnn_comm *c) {
    int count = 0;
    cudaError_t err = cudaGetDeviceCount(&count);
    if (err != cudaSuccess || count == 0) {
        cudaGetLastError();
        return PNN_ERROR(PNN_ERR_UNSUPPORTED, "rank %d: comm nccl needs a GPU, and CUDA finds none (%s); use comm mpi",
                         n->rank, err != cudaSuccess ? cudaGetErrorString(err) : "the driver reports 0 GPUs");
    }
    const char *env = getenv("PNN_CUDA_DEVICE");
    if (env && *env) {
        char *end;
        long d = strtol(env, &end, 10);
        if (*end || d < 0 || d >= count)
            return PNN_ERROR(PNN_ERR_INVALID, "rank %d: PNN_CUDA_DEVICE=%s, but there are %d CUDA devices (0..%d)",
                             n->rank, env, count, count - 1);
        n->device = (int)d;
    } else {
        n->device = (c->local_rank > 0 ? c->local_rank : 0) % count;
        char value[16];
        snprintf(value, sizeof value, "%d", n->device);
        if (setenv("PNN_CUDA_DEVICE", value, 1) != 0)
            return PNN_ERROR(PNN_ERR_NOMEM, "rank %d: cannot set PNN_CUDA_DEVICE=%s", n->rank, value);
    }
    if (c->local_size > count)
        fprintf(stderr,
                "pnn: warning: rank %d: %d ranks on this node share %d GPU%s; NCCL needs one GPU per rank, "
                "start at most %d ranks per node\n",
                n->rank, c->local_size, count, count > 1 ? "s" : "", count);
    PNN_NCCL_CUDA_CHECK(n, cudaSetDevice(n->device));
    PNN_NCCL_CUDA_CHECK(n, cudaFree(0)); /* the context now, not inside NCCL's initialisation */
    return PNN_OK;
}

/* The NCCL part of the start, with c's iface and ctx still MPI's. Every rank learns whether
 * every rank got its GPU (and rank 0 its unique id) before any of them enters NCCL. */
static pnn_status start_nccl(nccl_ctx *n, pnn_comm *c) {
    ncclUniqueId id;
    memset(&id, 0, sizeof id);
    pnn_status st = pick_device(n, c);
    if (st == PNN_OK && c->rank == 0) {
        ncclResult_t rc = ncclGetUniqueId(&id);
        if (rc != ncclSuccess) st = nccl_failed(n, rc, "ncclGetUniqueId(&id)", __FILE__, __LINE__);
    }
    PNN_TRY(pnn_comm_agree(c, st, NULL));
    PNN_TRY(n->mpi->bcast(n->mpi_ctx, &id, sizeof id, 0));
    ncclResult_t rc = ncclCommInitRank(&n->comm, c->size, id, c->rank);
    if (rc != ncclSuccess) {
        n->comm = NULL;
        st = nccl_failed(n, rc, "ncclCommInitRank(&comm, size, id, rank)", __FILE__, __LINE__);
    }
    return pnn_comm_agree(c, st, NULL);
}

pnn_status pnn_comm_nccl_open(pnn_comm *c, int *argc, char ***argv) {
    PNN_TRY(pnn_comm_mpi_open(c, argc, argv));
    nccl_ctx *n = calloc(1, sizeof *n);
    pnn_status st = n ? PNN_OK : PNN_ERROR(PNN_ERR_NOMEM, "out of memory starting NCCL communication");
    if (st == PNN_OK) {
        n->mpi = c->iface;
        n->mpi_ctx = c->ctx;
        n->rank = c->rank;
        n->device = -1;
        st = start_nccl(n, c);
    }
    if (st != PNN_OK) {
        /* every rank agreed on the failure: MPI can end cleanly; keep the message */
        char msg[2048];
        snprintf(msg, sizeof msg, "%s", pnn_last_error());
        if (n && n->comm) ncclCommAbort(n->comm);
        c->iface->shutdown(c->ctx, c->exit_timeout_s);
        c->iface = NULL;
        c->ctx = NULL;
        free(n);
        return PNN_ERROR(st, "%s", msg);
    }
    c->iface = &nccl_iface;
    c->ctx = n;
    return PNN_OK;
}

int pnn_comm_have_nccl(void) { return 1; }

#else /* !PNN_USE_NCCL */

int pnn_comm_have_nccl(void) { return 0; }

pnn_status pnn_comm_nccl_open(pnn_comm *c, int *argc, char ***argv) {
    (void)c, (void)argc, (void)argv;
    return PNN_ERROR(PNN_ERR_UNSUPPORTED,
                     "this pnn was built without NCCL: comm nccl needs the CUDA backend, MPI and NCCL "
                     "(apt-get install libnccl-dev, or NCCL from the CUDA toolkit), then configure with cmake "
                     "-DPNN_NCCL=ON; or use comm mpi");
}

#endif
