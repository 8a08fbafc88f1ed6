/* Communication between ranks for data-parallel training: how many processes train together,
 * which part of a batch is this one's, and the collective operations that keep their
 * parameters equal (gradient sums, metric sums, broadcasts, agreement on failures).
 * Kinds: none (one process), mpi (CPU, Open MPI or another MPI), nccl (NCCL for sums of GPU
 * memory, started over MPI: host/comm_nccl.c). */
#ifndef PNN_COMM_H
#define PNN_COMM_H

#include <stddef.h>
#include <stdint.h>

#include "pnn/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { PNN_COMM_NONE, PNN_COMM_MPI, PNN_COMM_NCCL } pnn_comm_kind;

/* How pnn_comm_allreduce_sum adds: FAST lets MPI choose the order (fastest, identical on every
 * rank, but the bits depend on the number of ranks); EXACT adds in a fixed order (see
 * pnn_comm_reduce_shards for results that do not depend on the number of ranks at all). */
typedef enum { PNN_REDUCE_FAST, PNN_REDUCE_EXACT } pnn_reduce_mode;

/* What the environment says about how this process was started, read without calling MPI. */
typedef struct pnn_comm_launch {
    char launcher[16];  /* "mpirun" (Open MPI), "pmi" (MPICH, Intel MPI, srun --mpi=pmi2),
                         * "srun" (Slurm), "pmix"; "" when started as a plain process */
    char evidence[64];  /* the variable that told, e.g. "OMPI_COMM_WORLD_SIZE=4" */
    int size;           /* ranks started together: 1 when not launched, 0 when unknown */
    int rank;           /* this process's rank, -1 when unknown */
    int local_rank;     /* its rank among those on this node, -1 when unknown */
} pnn_comm_launch;

/* The operations a kind implements. All counts are elements; every rank calls every operation
 * in the same order with matching sizes. Buffers are host memory, except allreduce_sum_f32 of
 * the nccl kind, which takes GPU memory of this rank's device (its other operations go through
 * MPI on host memory). */
typedef struct pnn_comm_i {
    const char *name;
    /* buf[0..n) = sum over ranks, in place, in the implementation's order */
    pnn_status (*allreduce_sum_f32)(void *ctx, float *buf, int64_t n);
    /* recv[r * bytes ..] = rank r's send, for every rank r */
    pnn_status (*allgather)(void *ctx, const void *send, size_t bytes, void *recv);
    /* rank j gets send[send_displs[j] ..+send_counts[j]) at its recv[recv_displs[me] ..] */
    pnn_status (*alltoallv_f32)(void *ctx, const float *send, const int64_t *send_counts,
                                const int64_t *send_displs, float *recv, const int64_t *recv_counts,
                                const int64_t *recv_displs);
    /* in place: rank r's part buf[displs[r] ..+counts[r]) goes to every rank */
    pnn_status (*allgatherv_f32)(void *ctx, float *buf, const int64_t *counts, const int64_t *displs);
    pnn_status (*bcast)(void *ctx, void *buf, size_t bytes, int root);
    pnn_status (*barrier)(void *ctx);
    /* Waits up to timeout_s (<= 0: forever) for every rank to arrive, then releases the
     * library (MPI_Finalize). When they do not arrive, or communication failed before, it
     * releases nothing and fails: the process should then exit non-zero, which makes mpirun or
     * srun end the other ranks (pnn never calls MPI_Abort). Frees ctx in every case. */
    pnn_status (*shutdown)(void *ctx, double timeout_s);
} pnn_comm_i;

typedef struct pnn_comm_scratch pnn_comm_scratch;

typedef struct pnn_comm {
    pnn_comm_kind kind;
    int rank, size;             /* this process and how many train together */
    int local_rank, local_size; /* among the ranks on this node (pick a GPU or an instrument) */
    /* how long pnn_comm_shutdown waits for the other ranks before leaving without
     * MPI_Finalize; 60 s unless changed before shutdown; <= 0 waits forever */
    double exit_timeout_s;
    pnn_comm_launch launch;
    const pnn_comm_i *iface;
    void *ctx;
    pnn_comm_scratch *scratch;  /* buffers of the exact reduction, grown on demand */
    int shut_down;
} pnn_comm;

/* Starts communication. kind: "auto" (or NULL): mpi when a launcher (mpirun, srun, ...)
 * started this process as one of several ranks and the build has MPI, none for a single
 * process (also mpirun -np 1); it fails, naming the launcher, when started as one of several
 * ranks by a build without MPI, so that a job never becomes N independent runs. "none": one
 * process (fails likewise under a multi-rank launch). "mpi": MPI even for one rank, also
 * without a launcher. "nccl": MPI as "mpi" (even for one rank), then an NCCL communicator
 * on the GPU local_rank % (GPUs visible), or PNN_CUDA_DEVICE when that is set (it is set to
 * the chosen GPU otherwise, so that the CUDA backend started later uses the same one); needs
 * a build with NCCL (PNN_NCCL) and a GPU, and is never chosen by "auto". One rank per GPU.
 * argc/argv (may be NULL) go to MPI_Init_thread. Call once per process, from the thread
 * that will make every other comm call. */
pnn_status pnn_comm_init(const char *kind, int *argc, char ***argv, pnn_comm **out);
/* Waits for every rank (exit_timeout_s) and finalizes MPI. Fails, leaving MPI unfinalized so
 * that the launcher ends the job, when the other ranks do not arrive: that happens when this
 * rank leaves after a failure they never learned of (see pnn_comm_agree). */
pnn_status pnn_comm_shutdown(pnn_comm *c);
/* Shuts down (if not done) and frees. NULL is fine. */
void pnn_comm_free(pnn_comm *c);

/* 1 when this build has MPI (PNN_MPI found it at configure time). */
int pnn_comm_have_mpi(void);
/* 1 when this build has the nccl kind (PNN_NCCL: CUDA backend, MPI and NCCL found). */
int pnn_comm_have_nccl(void);
const char *pnn_comm_kind_name(pnn_comm_kind kind);
/* "fast" or "exact". */
pnn_status pnn_comm_parse_reduce(const char *s, pnn_reduce_mode *out);

/* Reads OMPI_COMM_WORLD_*, PMI_*, SLURM_STEP_NUM_TASKS / SLURM_PROCID / SLURM_LOCALID and
 * PMIX_RANK. (SLURM_NTASKS alone does not count: a batch script has it before any srun.) */
void pnn_comm_detect_launch(pnn_comm_launch *l);
/* The decision pnn_comm_init makes from a kind string, a launch and whether MPI is built. */
pnn_status pnn_comm_choose(const char *kind, const pnn_comm_launch *l, int have_mpi, pnn_comm_kind *out);

/* Splits n items into `parts` contiguous ranges, the first n % parts of them one longer:
 * part p gets [*first, *first + *count). Parts past n get count 0. */
pnn_status pnn_comm_split(int64_t n, int parts, int part, int64_t *first, int64_t *count);
/* This rank's range of n items (samples of a batch, or shards): pnn_comm_split over ranks. */
pnn_status pnn_comm_shard(const pnn_comm *c, int64_t n, int64_t *first, int64_t *count);
/* Replaces {rank} and {local_rank} in templ, e.g. "remote:tcp://lab-{rank}:5555". Fails on
 * an unknown {placeholder} or when the result does not fit in cap bytes. */
pnn_status pnn_comm_expand(const char *templ, int rank, int local_rank, char *out, size_t cap);

/* Sums buf[0..n) (host or CPU-backend memory) over ranks, in place, on every rank. FAST:
 * MPI_Allreduce. EXACT: rank 0's + rank 1's + ... in rank order, accumulated in double and
 * rounded once: the same bits on every run with the same number of ranks.
 * The nccl kind: buf is GPU memory on this rank's device, whose writers have finished
 * (pnn_backend_status); FAST is ncclAllReduce (ring or tree order, chosen by NCCL), synchronous;
 * EXACT is refused (copy to the host and use pnn_comm_reduce_shards, which works on host
 * memory through MPI in the nccl kind too). */
pnn_status pnn_comm_allreduce_sum(pnn_comm *c, float *buf, int64_t n, pnn_reduce_mode mode);
/* The reduction whose result does not depend on the number of ranks. The global work is cut
 * into total_shards shards in a fixed order; this rank holds shards [first, first + count) of
 * pnn_comm_shard(c, total_shards), as `count` rows of n floats in `local`. On every rank,
 * out[i] = g_0[i] + g_1[i] + ... + g_{S-1}[i], added in shard order in double and rounded once:
 * bit-identical for 1, 2, 3 ... ranks, given the same shard values. out may equal local. Moves
 * each element about twice (an all-to-all, then an all-gather), like a ring all-reduce when
 * every rank holds one shard. */
pnn_status pnn_comm_reduce_shards(pnn_comm *c, const float *local, int64_t local_shards, int64_t total_shards,
                                  int64_t n, float *out);
/* Sums n doubles over ranks in rank order (metrics: loss sums, correct counts), in place. */
pnn_status pnn_comm_allreduce_double(pnn_comm *c, double *buf, int n);
/* recv (size * bytes) gets every rank's `bytes` from send, in rank order. */
pnn_status pnn_comm_allgather(pnn_comm *c, const void *send, size_t bytes, void *recv);
pnn_status pnn_comm_bcast(pnn_comm *c, void *buf, size_t bytes, int root);
pnn_status pnn_comm_barrier(pnn_comm *c);

/* Agreement on failure, called by every rank at the same point with its own status (its
 * message is pnn_last_error()). When every rank is fine it returns PNN_OK; when any failed,
 * every rank returns the status of the lowest failing rank with the message
 * "rank R failed: <its message>" (naming the others that failed too). any_flag (may be NULL):
 * in, this rank's flag (e.g. a stop request); out, 1 when any rank set it. */
pnn_status pnn_comm_agree(pnn_comm *c, pnn_status local, int *any_flag);
/* Fails on every rank, naming the first rank that differs from rank 0, unless buf holds the
 * same bytes everywhere (compared by a 64-bit hash): for parameters after start and resume. */
pnn_status pnn_comm_check_same(pnn_comm *c, const void *buf, size_t bytes, const char *what);

/* The mpi kind's constructor (host/comm_mpi.c): fills c's rank, size, local_rank, local_size,
 * iface and ctx. PNN_ERR_UNSUPPORTED in a build without MPI. */
pnn_status pnn_comm_mpi_open(pnn_comm *c, int *argc, char ***argv);
/* The nccl kind's constructor (host/comm_nccl.c): opens the mpi kind, then NCCL on top of it
 * (rank 0's ncclGetUniqueId broadcast over MPI, ncclCommInitRank) and takes over iface and ctx.
 * PNN_ERR_UNSUPPORTED in a build without NCCL or on a machine without a GPU. */
pnn_status pnn_comm_nccl_open(pnn_comm *c, int *argc, char ***argv);

#ifdef __cplusplus
}
#endif
#endif
