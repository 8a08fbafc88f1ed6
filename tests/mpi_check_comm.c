/* Checks of the mpi comm kind across real ranks, run by tests/cli/mpi_comm.sh under
 * mpirun -np 1, 2 and 3: sums (fast, and exact with order-sensitive data), metric sums,
 * broadcasts, shard splits, agreement on failures, templates. Rank 0 prints the exact sum's
 * hash, which the script compares across rank counts. `abandon` mode: rank 1 leaves alone and
 * the job must end (not hang). Exit 0 when every check passed on this rank. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pnn/comm.h"

static int failures, my_rank;

#define CHECK(cond, ...)                                               \
    do {                                                               \
        if (!(cond)) {                                                 \
            failures++;                                                \
            printf("rank %d: FAIL line %d: ", my_rank, __LINE__);      \
            printf(__VA_ARGS__);                                       \
            printf(" [%s]\n", pnn_last_error());                       \
        }                                                              \
    } while (0)

/* Shard s, element i: a pure function of (s, i), so that every rank can make any shard.
 * Magnitudes span 2^-30..2^26; on every fourth element 2^40 in shard 0 cancels against shard
 * 1 and the other shards hold small values, which keep all their bits only when added after
 * the cancellation: the sums depend on the order of addition. */
static float shard_value(int64_t s, int64_t i, int64_t shards) {
    uint64_t h = (uint64_t)(s * 1000003 + i) * 0x9e3779b97f4a7c15ull;
    h ^= h >> 31;
    h *= 0xbf58476d1ce4e5b9ull;
    h ^= h >> 29;
    float mant = (float)((int64_t)(h & 0xffffff) - 0x800000) / 3.0f;
    int e = i % 4 ? (int)((h >> 32) % 57) - 51 : -(int)((h >> 32) % 20) - 40;
    float v = (float)((double)mant * (e < 0 ? 1.0 / (double)(1ull << -e) : (double)(1ull << e)));
    if (i % 4 == 0 && s < 2 && shards > 1) {
        float big = 1099511627776.0f * (1.0f + (float)(i % 97) / 97.0f); /* 2^40 */
        v = s == 0 ? big : -big;
    }
    return v;
}

/* The sum in shard order, or (reverse) from the last shard to the first. */
static void reference_sum(int64_t shards, int64_t n, int reverse, float *out) {
    for (int64_t i = 0; i < n; i++) {
        double acc = shard_value(reverse ? shards - 1 : 0, i, shards);
        for (int64_t k = 1; k < shards; k++) acc += shard_value(reverse ? shards - 1 - k : k, i, shards);
        out[i] = (float)acc;
    }
}

static uint64_t fnv1a(const void *buf, size_t bytes) {
    const unsigned char *p = buf;
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < bytes; i++) h = (h ^ p[i]) * 0x100000001b3ull;
    return h;
}

/* This rank's shards of S through pnn_comm_reduce_shards, compared with the in-order sum. */
static uint64_t check_exact(pnn_comm *c, int64_t shards, int64_t n) {
    int64_t first, count;
    CHECK(pnn_comm_shard(c, shards, &first, &count) == PNN_OK, "shard");
    float *local = malloc((size_t)((count ? count : 1) * n) * sizeof(float));
    float *out = malloc((size_t)(n ? n : 1) * sizeof(float)), *want = malloc((size_t)(n ? n : 1) * sizeof(float));
    for (int64_t k = 0; k < count; k++)
        for (int64_t i = 0; i < n; i++) local[k * n + i] = shard_value(first + k, i, shards);
    CHECK(pnn_comm_reduce_shards(c, local, count, shards, n, out) == PNN_OK, "reduce_shards S=%lld n=%lld",
          (long long)shards, (long long)n);
    reference_sum(shards, n, 0, want);
    CHECK(!memcmp(out, want, (size_t)n * sizeof(float)), "exact sum of %lld shards differs from the in-order sum",
          (long long)shards);
    uint64_t h = fnv1a(out, (size_t)n * sizeof(float));
    if (shards >= 3 && n >= 4) { /* the data must be able to tell one order from another */
        reference_sum(shards, n, 1, out);
        CHECK(memcmp(out, want, (size_t)n * sizeof(float)), "the test data does not depend on the order");
    }
    free(local), free(out), free(want);
    return h;
}

static void check_sums(pnn_comm *c) {
    int P = c->size, r = c->rank;
    enum { N = 100003 };
    float *x = malloc(N * sizeof(float));
    /* integers: exact in any order, so the fast sum must be exact too */
    for (int i = 0; i < N; i++) x[i] = (float)((r + 1) * (i % 1000));
    CHECK(pnn_comm_allreduce_sum(c, x, N, PNN_REDUCE_FAST) == PNN_OK, "fast allreduce");
    int bad = 0;
    for (int i = 0; i < N; i++) bad += x[i] != (float)(P * (P + 1) / 2 * (i % 1000));
    CHECK(bad == 0, "fast allreduce: %d wrong sums", bad);
    /* exact allreduce: rank r contributes shard r of P, summed in rank order */
    for (int i = 0; i < N; i++) x[i] = shard_value(r, i, P);
    CHECK(pnn_comm_allreduce_sum(c, x, N, PNN_REDUCE_EXACT) == PNN_OK, "exact allreduce");
    float *want = malloc(N * sizeof(float));
    reference_sum(P, N, 0, want);
    CHECK(!memcmp(x, want, N * sizeof(float)), "exact allreduce differs from the rank-order sum");
    /* the fast sum of the same data is close (its order is MPI's) */
    for (int i = 0; i < N; i++) x[i] = (float)(i % 7) + 0.1f * (float)r;
    CHECK(pnn_comm_allreduce_sum(c, x, N, PNN_REDUCE_FAST) == PNN_OK, "fast allreduce");
    bad = 0;
    for (int i = 0; i < N; i++) {
        double w = (double)P * (i % 7) + 0.1 * P * (P - 1) / 2.0;
        bad += !(x[i] >= w - 1e-5 * (w + 1) && x[i] <= w + 1e-5 * (w + 1));
    }
    CHECK(bad == 0, "fast allreduce: %d sums out of tolerance", bad);
    free(x), free(want);

    double m[2] = {(double)r, 1.5};
    CHECK(pnn_comm_allreduce_double(c, m, 2) == PNN_OK && m[0] == P * (P - 1) / 2.0 && m[1] == 1.5 * P,
          "metric sums %g %g", m[0], m[1]);
}

static void check_shards(pnn_comm *c) {
    static const int64_t sizes[] = {32, 2, 0, 1, 1000003};
    int P = c->size;
    int64_t *all = malloc((size_t)P * 2 * sizeof(int64_t));
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        int64_t mine[2];
        CHECK(pnn_comm_shard(c, sizes[k], &mine[0], &mine[1]) == PNN_OK, "shard %lld", (long long)sizes[k]);
        CHECK(pnn_comm_allgather(c, mine, sizeof mine, all) == PNN_OK, "allgather");
        int64_t next = 0;
        for (int r = 0; r < P; r++) {
            CHECK(all[2 * r] == next, "n=%lld: rank %d starts at %lld, not %lld", (long long)sizes[k], r,
                  (long long)all[2 * r], (long long)next);
            CHECK(all[2 * r + 1] >= sizes[k] / P && all[2 * r + 1] <= sizes[k] / P + 1, "uneven split");
            next += all[2 * r + 1];
        }
        CHECK(next == sizes[k], "n=%lld: the shards cover %lld", (long long)sizes[k], (long long)next);
    }
    free(all);
}

static void check_bcast_and_same(pnn_comm *c) {
    int P = c->size, r = c->rank;
    enum { BYTES = 5 << 20 };
    unsigned char *b = malloc(BYTES);
    for (int i = 0; i < BYTES; i++) b[i] = r == P - 1 ? (unsigned char)(i * 7 + 3) : 0;
    CHECK(pnn_comm_bcast(c, b, BYTES, P - 1) == PNN_OK, "bcast");
    int bad = 0;
    for (int i = 0; i < BYTES; i++) bad += b[i] != (unsigned char)(i * 7 + 3);
    CHECK(bad == 0, "bcast from rank %d: %d wrong bytes", P - 1, bad);
    CHECK(pnn_comm_check_same(c, b, BYTES, "parameters") == PNN_OK, "check_same on equal buffers");
    if (P > 1) {
        if (r == P - 1) b[BYTES / 2] ^= 1;
        char want[64];
        snprintf(want, sizeof want, "rank %d's differs from rank 0's", P - 1);
        CHECK(pnn_comm_check_same(c, b, BYTES, "parameters") == PNN_ERR_INVALID &&
                  strstr(pnn_last_error(), want),
              "check_same must name rank %d", P - 1);
    }
    free(b);
}

static void check_agreement(pnn_comm *c) {
    int P = c->size, r = c->rank, f = P > 1 ? 1 : 0;
    int flag = r == P - 1;
    CHECK(pnn_comm_agree(c, PNN_OK, &flag) == PNN_OK && flag == 1, "agree with a flag on rank %d", P - 1);
    pnn_status mine = r == f ? PNN_ERROR(PNN_ERR_DEVICE, "device remote:tcp://lab-%d:5555 timed out", r) : PNN_OK;
    pnn_status st = pnn_comm_agree(c, mine, NULL);
    char want[128];
    snprintf(want, sizeof want, "rank %d failed: device remote:tcp://lab-%d:5555 timed out", f, f);
    printf("rank %d: agree: %s\n", r, pnn_last_error());
    CHECK(st == PNN_ERR_DEVICE && !strncmp(pnn_last_error(), want, strlen(want)), "agreement on rank %d's failure",
          f);
    if (P >= 3) {
        mine = r == 1 || r == 2 ? PNN_ERROR(PNN_ERR_IO, "disk full on node %d", r) : PNN_OK;
        st = pnn_comm_agree(c, mine, NULL);
        CHECK(st == PNN_ERR_IO && strstr(pnn_last_error(), "rank 1 failed: disk full on node 1") &&
                  strstr(pnn_last_error(), "rank 2 failed too"),
              "two failures");
    }
}

int main(int argc, char **argv) {
    pnn_comm *c;
    const char *mode = argc > 1 ? argv[1] : "check";
    if (pnn_comm_init("mpi", &argc, &argv, &c) != PNN_OK) {
        printf("FAIL: pnn_comm_init: %s\n", pnn_last_error());
        return 1;
    }
    my_rank = c->rank;
    if (!strcmp(mode, "abandon")) {
        /* rank 1 leaves without telling anyone; the others wait in a barrier that never ends */
        c->exit_timeout_s = 2;
        if (c->rank == 1) {
            pnn_status st = pnn_comm_shutdown(c);
            printf("rank 1: shutdown: %s\n", pnn_last_error());
            pnn_comm_free(c);
            return st == PNN_ERR_TIMEOUT ? 3 : 1;
        }
        pnn_comm_barrier(c);
        printf("rank %d: FAIL: the barrier ended without rank 1\n", c->rank);
        return 1;
    }
    CHECK(c->kind == PNN_COMM_MPI, "kind %s", pnn_comm_kind_name(c->kind));
    CHECK(c->launch.size == c->size, "launcher says %d ranks, MPI %d", c->launch.size, c->size);
    CHECK(c->local_rank >= 0 && c->local_rank < c->local_size, "local rank %d of %d", c->local_rank, c->local_size);
    check_shards(c);
    check_sums(c);
    uint64_t h7 = check_exact(c, 7, 10007);
    uint64_t h2 = check_exact(c, 2, 1001); /* fewer shards than ranks at np 3 */
    uint64_t h1 = check_exact(c, 5, 2);    /* fewer elements than ranks */
    check_bcast_and_same(c);
    check_agreement(c);
    char uri[64], want[64];
    snprintf(want, sizeof want, "remote:tcp://lab-%d:5555", c->rank);
    CHECK(pnn_comm_expand("remote:tcp://lab-{rank}:5555", c->rank, c->local_rank, uri, sizeof uri) == PNN_OK &&
              !strcmp(uri, want),
          "template gave %s", uri);
    CHECK(pnn_comm_barrier(c) == PNN_OK, "barrier");
    if (c->rank == 0) printf("exact-hash %016" PRIx64 " %016" PRIx64 " %016" PRIx64 "\n", h7, h2, h1);
    CHECK(pnn_comm_shutdown(c) == PNN_OK, "shutdown");
    printf("rank %d of %d: %s\n", my_rank, c->size, failures ? "FAILED" : "ok");
    pnn_comm_free(c);
    return failures ? 1 : 0;
}
