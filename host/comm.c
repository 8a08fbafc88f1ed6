/* Communication between ranks: choosing the kind from the launch environment, batch sharding,
 * device URI templates, the fixed-order (exact) reduction, metric sums, and agreement on
 * failures. The collectives themselves come from a kind's table: the one-process kind here,
 * MPI in host/comm_mpi.c, NCCL (over MPI) in host/comm_nccl.c. */
#include "pnn/comm.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct pnn_comm_scratch {
    float *pack, *recv;
    size_t pack_cap, recv_cap; /* floats */
    int64_t *counts;           /* 4 * size: send counts, send displs, recv counts, recv displs */
};

/* ---- the one-process kind: every collective is a copy ---- */

static pnn_status none_allreduce_sum(void *ctx, float *buf, int64_t n) { return PNN_OK; }

static pnn_status none_allgather(void *ctx, const void *send, size_t bytes, void *recv) {
    if (bytes && recv != send) memmove(recv, send, bytes);
    return PNN_OK;
}

static pnn_status none_alltoallv(void *ctx, const float *send, const int64_t *send_counts,
                                 const int64_t *send_displs, float *recv, const int64_t *recv_counts,
                                 const int64_t *recv_displs) {
    if (send_counts[0]) memmove(recv + recv_displs[0], send + send_displs[0], (size_t)send_counts[0] * sizeof(float));
    return PNN_OK;
}

static pnn_status none_allgatherv(void *ctx, float *buf, const int64_t *counts, const int64_t *displs) {
    return PNN_OK;
}

static pnn_status none_bcast(void *ctx, void *buf, size_t bytes, int root) { return PNN_OK; }
static pnn_status none_barrier(void *ctx) { return PNN_OK; }
static pnn_status none_shutdown(void *ctx, double timeout_s) { return PNN_OK; }

static const pnn_comm_i none_iface = {
    .name = "none",
    .allreduce_sum_f32 = none_allreduce_sum,
    .allgather = none_allgather,
    .alltoallv_f32 = none_alltoallv,
    .allgatherv_f32 = none_allgatherv,
    .bcast = none_bcast,
    .barrier = none_barrier,
    .shutdown = none_shutdown,
};

/* ---- kinds, launch detection and the choice ---- */

const char *pnn_comm_kind_name(pnn_comm_kind kind) {
    switch (kind) {
    case PNN_COMM_NONE: return "none";
    case PNN_COMM_MPI: return "mpi";
    case PNN_COMM_NCCL: return "nccl";
    }
    return "unknown";
}

pnn_status pnn_comm_parse_reduce(const char *s, pnn_reduce_mode *out) {
    if (s && !strcmp(s, "fast")) *out = PNN_REDUCE_FAST;
    else if (s && !strcmp(s, "exact")) *out = PNN_REDUCE_EXACT;
    else return PNN_ERROR(PNN_ERR_INVALID, "unknown reduction '%s'; known: fast, exact", s ? s : "(null)");
    return PNN_OK;
}

/* The value of an environment variable as a non-negative int, or -1 when unset or not one. */
static int env_int(const char *name) {
    const char *v = getenv(name);
    if (!v || !*v) return -1;
    char *end;
    long x = strtol(v, &end, 10);
    return (*end || x < 0 || x > INT_MAX) ? -1 : (int)x;
}

void pnn_comm_detect_launch(pnn_comm_launch *l) {
    static const struct {
        const char *launcher, *size, *rank, *local_rank;
    } known[] = {
        {"mpirun", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_LOCAL_RANK"},
        {"pmi", "PMI_SIZE", "PMI_RANK", "MPI_LOCALRANKID"},
        {"srun", "SLURM_STEP_NUM_TASKS", "SLURM_PROCID", "SLURM_LOCALID"},
        {"pmix", NULL, "PMIX_RANK", NULL},
    };
    memset(l, 0, sizeof *l);
    l->size = 1;
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++) {
        const char *var = known[i].size ? known[i].size : known[i].rank;
        int v = env_int(var);
        if (v < 0) continue;
        snprintf(l->launcher, sizeof l->launcher, "%s", known[i].launcher);
        snprintf(l->evidence, sizeof l->evidence, "%s=%d", var, v);
        l->size = known[i].size ? v : 0;
        l->rank = env_int(known[i].rank);
        l->local_rank = known[i].local_rank ? env_int(known[i].local_rank) : -1;
        return;
    }
}

pnn_status pnn_comm_choose(const char *kind, const pnn_comm_launch *l, int have_mpi, pnn_comm_kind *out) {
    int several = l->launcher[0] && l->size != 1; /* several ranks, or a launcher that does not say */
    char ranks[160];
    if (l->size > 1) snprintf(ranks, sizeof ranks, "one of %d ranks started by %s (%s)", l->size, l->launcher, l->evidence);
    else snprintf(ranks, sizeof ranks, "started by %s (%s)", l->launcher, l->evidence);
    if (!kind || !*kind || !strcmp(kind, "auto")) {
        /* one rank needs no MPI, and MPI_Init can fail under a launcher it does not support
         * (srun -n 1 without PMI): only several ranks choose MPI */
        if (!several) *out = PNN_COMM_NONE;
        else if (have_mpi) *out = PNN_COMM_MPI;
        else
            return PNN_ERROR(PNN_ERR_UNSUPPORTED,
                             "this process is %s, but this pnn was built without MPI, so every rank would "
                             "train alone; rebuild with MPI (apt-get install libopenmpi-dev openmpi-bin, then "
                             "cmake -DPNN_MPI=ON) or start a single process without the launcher",
                             ranks);
    } else if (!strcmp(kind, "none")) {
        if (several)
            return PNN_ERROR(PNN_ERR_INVALID,
                             "comm 'none', but this process is %s: every rank would train alone and write the "
                             "same run directory; use comm 'mpi' (or 'auto'), or start a single process",
                             ranks);
        *out = PNN_COMM_NONE;
    } else if (!strcmp(kind, "mpi")) {
        if (!have_mpi)
            return PNN_ERROR(PNN_ERR_UNSUPPORTED,
                             "comm 'mpi' needs a pnn built with MPI: apt-get install libopenmpi-dev openmpi-bin, "
                             "then configure with cmake -DPNN_MPI=ON");
        *out = PNN_COMM_MPI;
    } else if (!strcmp(kind, "nccl")) {
        if (!have_mpi || !pnn_comm_have_nccl())
            return PNN_ERROR(PNN_ERR_UNSUPPORTED,
                             "comm 'nccl' (GPU all-reduce) needs a pnn built with the CUDA backend, MPI and NCCL; "
                             "this one lacks %s: install it and configure with cmake -DPNN_NCCL=ON, or use comm "
                             "'mpi'",
                             !have_mpi ? "MPI" : "NCCL (or the CUDA backend)");
        *out = PNN_COMM_NCCL;
    } else {
        return PNN_ERROR(PNN_ERR_INVALID, "unknown comm kind '%s'; known: auto, none, mpi, nccl", kind);
    }
    return PNN_OK;
}

pnn_status pnn_comm_init(const char *kind, int *argc, char ***argv, pnn_comm **out) {
    *out = NULL;
    pnn_comm *c = calloc(1, sizeof *c);
    pnn_comm_scratch *s = calloc(1, sizeof *s);
    if (!c || !s) {
        free(c), free(s);
        return PNN_ERROR(PNN_ERR_NOMEM, "out of memory starting communication");
    }
    c->scratch = s;
    c->exit_timeout_s = 60;
    pnn_comm_detect_launch(&c->launch);
    pnn_status st = pnn_comm_choose(kind, &c->launch, pnn_comm_have_mpi(), &c->kind);
    if (st == PNN_OK && (c->kind == PNN_COMM_MPI || c->kind == PNN_COMM_NCCL)) {
        st = c->kind == PNN_COMM_NCCL ? pnn_comm_nccl_open(c, argc, argv) : pnn_comm_mpi_open(c, argc, argv);
        if (st == PNN_OK && c->launch.size > 1 && c->launch.size != c->size) {
            st = PNN_ERROR(PNN_ERR_UNSUPPORTED,
                           "the launcher started %d ranks (%s) but MPI sees %d: the launcher belongs to another "
                           "MPI than the one pnn was built with (e.g. MPICH's mpiexec with Open MPI's library); "
                           "start pnn with the mpirun of the MPI it was built with",
                           c->launch.size, c->launch.evidence, c->size);
            char msg[2048];
            snprintf(msg, sizeof msg, "%s", pnn_last_error());
            c->iface->shutdown(c->ctx, 5);
            c->iface = NULL;
            PNN_ERROR(st, "%s", msg);
        }
    } else if (st == PNN_OK) {
        c->size = c->local_size = 1;
        c->iface = &none_iface;
    }
    if (st != PNN_OK) {
        c->shut_down = 1;
        pnn_comm_free(c);
        return st;
    }
    *out = c;
    return PNN_OK;
}

pnn_status pnn_comm_shutdown(pnn_comm *c) {
    if (!c || c->shut_down) return PNN_OK;
    c->shut_down = 1;
    return c->iface->shutdown(c->ctx, c->exit_timeout_s);
}

void pnn_comm_free(pnn_comm *c) {
    if (!c) return;
    if (!c->shut_down) {
        /* a failed shutdown must not hide the error the caller is about to report */
        char msg[2048];
        snprintf(msg, sizeof msg, "%s", pnn_last_error());
        if (pnn_comm_shutdown(c) != PNN_OK) pnn_error_at(PNN_ERR_IO, __FILE__, __LINE__, "%s", msg);
    }
    if (c->scratch) {
        free(c->scratch->pack);
        free(c->scratch->recv);
        free(c->scratch->counts);
        free(c->scratch);
    }
    free(c);
}

/* ---- sharding and templates ---- */

pnn_status pnn_comm_split(int64_t n, int parts, int part, int64_t *first, int64_t *count) {
    if (n < 0 || parts < 1 || part < 0 || part >= parts)
        return PNN_ERROR(PNN_ERR_INVALID, "cannot split %lld items into part %d of %d", (long long)n, part, parts);
    int64_t base = n / parts, rem = n % parts;
    *first = part * base + (part < rem ? part : rem);
    *count = base + (part < rem ? 1 : 0);
    return PNN_OK;
}

pnn_status pnn_comm_shard(const pnn_comm *c, int64_t n, int64_t *first, int64_t *count) {
    return pnn_comm_split(n, c->size, c->rank, first, count);
}

pnn_status pnn_comm_expand(const char *templ, int rank, int local_rank, char *out, size_t cap) {
    if (!templ || !out || cap == 0) return PNN_ERROR(PNN_ERR_INVALID, "pnn_comm_expand: no template or no room");
    size_t len = 0;
    for (const char *p = templ; *p;) {
        char num[24] = "";
        const char *piece = p;
        size_t plen = 1;
        if (*p == '{') {
            const char *close = strchr(p, '}');
            size_t nlen = close ? (size_t)(close - p - 1) : 0;
            if (close && nlen == 4 && !strncmp(p + 1, "rank", 4)) snprintf(num, sizeof num, "%d", rank);
            else if (close && nlen == 10 && !strncmp(p + 1, "local_rank", 10))
                snprintf(num, sizeof num, "%d", local_rank);
            else
                return PNN_ERROR(PNN_ERR_INVALID,
                                 "device template '%s': unknown placeholder at '%.20s'; known: {rank}, {local_rank}",
                                 templ, p);
            piece = num;
            plen = strlen(num);
            p = close + 1;
        } else {
            p++;
        }
        if (len + plen >= cap)
            return PNN_ERROR(PNN_ERR_INVALID, "device template '%s' for rank %d is longer than %zu bytes", templ,
                             rank, cap - 1);
        memcpy(out + len, piece, plen);
        len += plen;
    }
    out[len] = '\0';
    return PNN_OK;
}

/* ---- reductions ---- */

static pnn_status check_buffer(const void *buf, int64_t n, const char *what) {
    if (n < 0 || (n > 0 && !buf))
        return PNN_ERROR(PNN_ERR_INVALID, "%s: %lld elements at %p", what, (long long)n, buf);
    return PNN_OK;
}

pnn_status pnn_comm_allreduce_sum(pnn_comm *c, float *buf, int64_t n, pnn_reduce_mode mode) {
    PNN_TRY(check_buffer(buf, n, "pnn_comm_allreduce_sum"));
    if (mode == PNN_REDUCE_EXACT && c->kind == PNN_COMM_NCCL)
        return PNN_ERROR(PNN_ERR_UNSUPPORTED,
                         "comm nccl sums GPU memory in NCCL's order only: an exact (fixed-order) all-reduce is not "
                         "available; use PNN_REDUCE_FAST, or copy to the host and use pnn_comm_reduce_shards");
    if (mode == PNN_REDUCE_EXACT) return pnn_comm_reduce_shards(c, buf, 1, c->size, n, buf);
    return c->iface->allreduce_sum_f32(c->ctx, buf, n);
}

/* out[e] = shards[0][e] + shards[1][e] + ... in shard order, in double, rounded once. Every
 * path of the exact reduction, on one rank or many, adds through this function, so an element
 * sees the same operations in the same order wherever it is reduced. out may alias shard 0. */
static void sum_shards_in_order(const float *shards, int64_t count, int64_t stride, int64_t n, float *out) {
    enum { BLOCK = 512 };
    int64_t blocks = (n + BLOCK - 1) / BLOCK;
    /* threads split the elements, never an element's sum: the bits do not depend on them */
#pragma omp parallel for schedule(static) if (n > 65536)
    for (int64_t b = 0; b < blocks; b++) {
        double acc[BLOCK];
        int64_t e0 = b * BLOCK, m = n - e0 < BLOCK ? n - e0 : BLOCK;
        for (int64_t j = 0; j < m; j++) acc[j] = shards[e0 + j];
        for (int64_t s = 1; s < count; s++) {
            const float *g = shards + s * stride + e0;
            for (int64_t j = 0; j < m; j++) acc[j] += g[j];
        }
        for (int64_t j = 0; j < m; j++) out[e0 + j] = (float)acc[j];
    }
}

static pnn_status grow(float **buf, size_t *cap, size_t need) {
    if (need <= *cap) return PNN_OK;
    float *p = realloc(*buf, (need ? need : 1) * sizeof(float));
    if (!p) return PNN_ERROR(PNN_ERR_NOMEM, "out of memory for %zu floats of the exact reduction", need);
    *buf = p;
    *cap = need;
    return PNN_OK;
}

pnn_status pnn_comm_reduce_shards(pnn_comm *c, const float *local, int64_t local_shards, int64_t total_shards,
                                  int64_t n, float *out) {
    int P = c->size, r = c->rank;
    int64_t sfirst = 0, scount = 0;
    PNN_TRY(check_buffer(local, local_shards * n, "pnn_comm_reduce_shards (local shards)"));
    PNN_TRY(check_buffer(out, n, "pnn_comm_reduce_shards (out)"));
    if (total_shards < 1 || local_shards < 0)
        return PNN_ERROR(PNN_ERR_INVALID, "pnn_comm_reduce_shards: %lld of %lld shards", (long long)local_shards,
                         (long long)total_shards);
    PNN_TRY(pnn_comm_shard(c, total_shards, &sfirst, &scount));
    if (scount != local_shards)
        return PNN_ERROR(PNN_ERR_INVALID,
                         "rank %d holds %lld shards but pnn_comm_shard gives it %lld of %lld; take the shards "
                         "from pnn_comm_shard(comm, total_shards, ...)",
                         r, (long long)local_shards, (long long)scount, (long long)total_shards);
    if (P == 1) {
        sum_shards_in_order(local, total_shards, n, n, out);
        return PNN_OK;
    }
    /* every rank must mean the same reduction, or the exchange below would mismatch */
    int64_t mine[2] = {n, total_shards}, *all = NULL;
    pnn_comm_scratch *s = c->scratch;
    if (!s->counts && !(s->counts = malloc((size_t)P * 4 * sizeof(int64_t))))
        return PNN_ERROR(PNN_ERR_NOMEM, "out of memory for the exact reduction");
    all = malloc((size_t)P * sizeof mine);
    if (!all) return PNN_ERROR(PNN_ERR_NOMEM, "out of memory for the exact reduction");
    pnn_status st = c->iface->allgather(c->ctx, mine, sizeof mine, all);
    for (int i = 0; st == PNN_OK && i < P; i++)
        if (all[2 * i] != n || all[2 * i + 1] != total_shards)
            st = PNN_ERROR(PNN_ERR_INVALID,
                           "ranks disagree on an exact reduction: rank %d sums %lld shards of %lld floats, rank "
                           "%d %lld of %lld",
                           r, (long long)total_shards, (long long)n, i, (long long)all[2 * i + 1],
                           (long long)all[2 * i]);
    free(all);
    PNN_TRY(st);

    /* rank j reduces elements [e_j, e_j + m_j) over all shards: it receives that slice of
     * every shard, in global shard order, sums, and gives the result back to everyone */
    int64_t *send_counts = s->counts, *send_displs = send_counts + P, *recv_counts = send_displs + P,
            *recv_displs = recv_counts + P;
    int64_t e_r = 0, m_r = 0;
    PNN_TRY(pnn_comm_split(n, P, r, &e_r, &m_r));
    /* what goes to rank j must be contiguous: [shard][slice j]; one shard already is */
    const float *send = local;
    if (local_shards > 1) {
        PNN_TRY(grow(&s->pack, &s->pack_cap, (size_t)(local_shards * n)));
        send = s->pack;
    }
    PNN_TRY(grow(&s->recv, &s->recv_cap, (size_t)(total_shards * m_r)));
    for (int j = 0; j < P; j++) {
        int64_t e_j = 0, m_j = 0, f_j = 0, c_j = 0;
        pnn_comm_split(n, P, j, &e_j, &m_j);
        pnn_comm_split(total_shards, P, j, &f_j, &c_j);
        send_counts[j] = local_shards * m_j;
        send_displs[j] = local_shards * e_j;
        for (int64_t k = 0; k < local_shards && local_shards > 1; k++)
            memcpy(s->pack + send_displs[j] + k * m_j, local + k * n + e_j, (size_t)m_j * sizeof(float));
        recv_counts[j] = c_j * m_r;
        recv_displs[j] = f_j * m_r;
    }
    PNN_TRY(c->iface->alltoallv_f32(c->ctx, send, send_counts, send_displs, s->recv, recv_counts, recv_displs));
    sum_shards_in_order(s->recv, total_shards, m_r, m_r, out + e_r);
    for (int j = 0; j < P; j++) pnn_comm_split(n, P, j, &send_displs[j], &send_counts[j]);
    return c->iface->allgatherv_f32(c->ctx, out, send_counts, send_displs);
}

pnn_status pnn_comm_allreduce_double(pnn_comm *c, double *buf, int n) {
    PNN_TRY(check_buffer(buf, n, "pnn_comm_allreduce_double"));
    if (c->size == 1 || n == 0) return PNN_OK;
    double *all = malloc((size_t)c->size * (size_t)n * sizeof(double));
    if (!all) return PNN_ERROR(PNN_ERR_NOMEM, "out of memory summing %d metrics over %d ranks", n, c->size);
    pnn_status st = c->iface->allgather(c->ctx, buf, (size_t)n * sizeof(double), all);
    if (st == PNN_OK)
        for (int i = 0; i < n; i++) {
            double sum = all[i];
            for (int r = 1; r < c->size; r++) sum += all[(size_t)r * (size_t)n + (size_t)i];
            buf[i] = sum;
        }
    free(all);
    return st;
}

pnn_status pnn_comm_allgather(pnn_comm *c, const void *send, size_t bytes, void *recv) {
    if (bytes && (!send || !recv)) return PNN_ERROR(PNN_ERR_INVALID, "pnn_comm_allgather: no buffer");
    return c->iface->allgather(c->ctx, send, bytes, recv);
}

pnn_status pnn_comm_bcast(pnn_comm *c, void *buf, size_t bytes, int root) {
    if (root < 0 || root >= c->size)
        return PNN_ERROR(PNN_ERR_INVALID, "pnn_comm_bcast: root %d is not a rank (0..%d)", root, c->size - 1);
    if (bytes && !buf) return PNN_ERROR(PNN_ERR_INVALID, "pnn_comm_bcast: no buffer");
    return c->iface->bcast(c->ctx, buf, bytes, root);
}

pnn_status pnn_comm_barrier(pnn_comm *c) { return c->iface->barrier(c->ctx); }

/* ---- agreement ---- */

enum { AGREE_MESSAGE = 1536 };

pnn_status pnn_comm_agree(pnn_comm *c, pnn_status local, int *any_flag) {
    char message[AGREE_MESSAGE];
    snprintf(message, sizeof message, "%s", local != PNN_OK ? pnn_last_error() : "");
    int32_t mine[2] = {(int32_t)local, any_flag && *any_flag ? 1 : 0};
    int32_t *all = malloc((size_t)c->size * sizeof mine);
    if (!all) return PNN_ERROR(PNN_ERR_NOMEM, "out of memory agreeing on the state of %d ranks", c->size);
    pnn_status st = c->iface->allgather(c->ctx, mine, sizeof mine, all);
    if (st != PNN_OK) {
        free(all);
        return st;
    }
    int first = -1, flag = 0, others = 0;
    char also[160] = "";
    for (int r = 0; r < c->size; r++) {
        flag |= all[2 * r + 1] != 0;
        if (all[2 * r] == PNN_OK) continue;
        if (first < 0) {
            first = r;
        } else if (others++ < 8) {
            size_t l = strlen(also);
            snprintf(also + l, sizeof also - l, "%s%d", others > 1 ? ", " : "", r);
        }
    }
    if (any_flag) *any_flag = flag;
    if (first < 0) {
        free(all);
        return PNN_OK;
    }
    pnn_status failed = (pnn_status)all[2 * first];
    free(all);
    PNN_TRY(c->iface->bcast(c->ctx, message, sizeof message, first));
    message[sizeof message - 1] = '\0';
    if (others)
        return PNN_ERROR(failed, "rank %d failed: %s (rank%s %s%s failed too; see their output)", first, message,
                         others > 1 ? "s" : "", also, others > 8 ? ", ..." : "");
    return PNN_ERROR(failed, "rank %d failed: %s", first, message);
}

/* A 64-bit hash of bytes (word-wise multiply-xorshift), to compare large buffers across ranks. */
static uint64_t hash_bytes(const void *buf, size_t bytes) {
    const unsigned char *p = buf;
    uint64_t h = 0x9e3779b97f4a7c15ull ^ bytes;
    size_t i = 0;
    for (; i + 8 <= bytes; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        h = (h ^ w) * 0xff51afd7ed558ccdull;
        h ^= h >> 32;
    }
    for (; i < bytes; i++) h = (h ^ p[i]) * 0x100000001b3ull;
    h ^= h >> 29;
    return h * 0xc4ceb9fe1a85ec53ull;
}

pnn_status pnn_comm_check_same(pnn_comm *c, const void *buf, size_t bytes, const char *what) {
    if (bytes && !buf) return PNN_ERROR(PNN_ERR_INVALID, "pnn_comm_check_same: no buffer for %s", what);
    uint64_t mine = hash_bytes(buf, bytes), *all = malloc((size_t)c->size * sizeof mine);
    if (!all) return PNN_ERROR(PNN_ERR_NOMEM, "out of memory comparing %s across ranks", what);
    pnn_status st = c->iface->allgather(c->ctx, &mine, sizeof mine, all);
    for (int r = 1; st == PNN_OK && r < c->size; r++)
        if (all[r] != all[0])
            st = PNN_ERROR(PNN_ERR_INVALID,
                           "%s differs between ranks: rank %d's differs from rank 0's; every rank must start from "
                           "the same config, seed and checkpoint",
                           what, r);
    free(all);
    return st;
}
