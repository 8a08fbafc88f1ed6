/* The comm module in one process: the none kind's collectives, the exact (fixed-order)
 * reduction against a plain reference, batch sharding, device URI templates, and how the kind
 * is chosen from the launch environment. Started by mpirun (the test_comm_mpirun CTest entry,
 * with CK_FORK=no) in a build with MPI, it also runs the mpi kind as a one-rank job. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pnn/comm.h"
#include "pnn/rng.h"
#include "tests/testutil.h"

/* S shards of n floats whose sum depends on the order of addition: magnitudes from 2^-30 to
 * 2^30, and on every third element 2^40 in the first shard that the second cancels, and small
 * values in the others: summed first to last they survive, summed last to first they pass
 * through the 2^40 and keep only multiples of 2^-12. */
static float *order_sensitive_shards(int64_t shards, int64_t n) {
    float *g = malloc((size_t)(shards * n) * sizeof *g), u[2];
    ck_assert_ptr_nonnull(g);
    for (int64_t s = 0; s < shards; s++)
        for (int64_t i = 0; i < n; i++) {
            pnn_rng_uniform(11, (uint64_t)s, (uint64_t)(2 * i), 2, u);
            g[s * n + i] = ldexpf(u[0] - 0.5f, i % 3 ? (int)(u[1] * 60.0f) - 30 : -(int)(u[1] * 20.0f));
        }
    for (int64_t i = 0; i < n; i += 3) {
        g[i] = ldexpf(1.0f + (float)i / (float)n, 40);
        g[n + i] = -g[i];
    }
    return g;
}

/* The specification of the exact reduction, written independently of host/comm.c. */
static void reference_sum(const float *g, int64_t shards, int64_t n, int reverse, float *out) {
    for (int64_t i = 0; i < n; i++) {
        double acc = g[(reverse ? shards - 1 : 0) * n + i];
        for (int64_t k = 1; k < shards; k++) acc += g[(reverse ? shards - 1 - k : k) * n + i];
        out[i] = (float)acc;
    }
}

static pnn_comm *open_comm(const char *kind) {
    pnn_comm *c = NULL;
    ck_assert_msg(pnn_comm_init(kind, NULL, NULL, &c) == PNN_OK, "%s", pnn_last_error());
    return c;
}

START_TEST(none_kind_is_one_rank) {
    pnn_comm *c = open_comm("none");
    ck_assert_int_eq(c->kind, PNN_COMM_NONE);
    ck_assert_int_eq(c->rank, 0);
    ck_assert_int_eq(c->size, 1);
    ck_assert_int_eq(c->local_rank, 0);
    ck_assert_int_eq(c->local_size, 1);
    ck_assert_str_eq(pnn_comm_kind_name(c->kind), "none");

    float x[5] = {1.5f, -2.25f, 1e-30f, 3e30f, 0.1f}, y[5];
    memcpy(y, x, sizeof x);
    ck_assert_int_eq(pnn_comm_allreduce_sum(c, y, 5, PNN_REDUCE_FAST), PNN_OK);
    ck_assert_int_eq(memcmp(x, y, sizeof x), 0);
    ck_assert_int_eq(pnn_comm_allreduce_sum(c, y, 5, PNN_REDUCE_EXACT), PNN_OK);
    ck_assert_int_eq(memcmp(x, y, sizeof x), 0);
    ck_assert_int_eq(pnn_comm_allreduce_sum(c, y, -1, PNN_REDUCE_FAST), PNN_ERR_INVALID);
    ck_assert_int_eq(pnn_comm_allreduce_sum(c, NULL, 3, PNN_REDUCE_FAST), PNN_ERR_INVALID);

    double m[3] = {2.5, 7, -1};
    ck_assert_int_eq(pnn_comm_allreduce_double(c, m, 3), PNN_OK);
    ck_assert(m[0] == 2.5 && m[1] == 7 && m[2] == -1);

    char b[4] = "abc", all[4];
    ck_assert_int_eq(pnn_comm_bcast(c, b, sizeof b, 0), PNN_OK);
    ck_assert_str_eq(b, "abc");
    ck_assert_int_eq(pnn_comm_bcast(c, b, sizeof b, 1), PNN_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(pnn_last_error(), "root 1 is not a rank"));
    ck_assert_int_eq(pnn_comm_allgather(c, b, sizeof b, all), PNN_OK);
    ck_assert_str_eq(all, "abc");
    ck_assert_int_eq(pnn_comm_barrier(c), PNN_OK);
    ck_assert_int_eq(pnn_comm_check_same(c, x, sizeof x, "parameters"), PNN_OK);
    ck_assert_int_eq(pnn_comm_shutdown(c), PNN_OK);
    ck_assert_int_eq(pnn_comm_shutdown(c), PNN_OK); /* a second time does nothing */
    pnn_comm_free(c);
    pnn_comm_free(NULL);
}
END_TEST

START_TEST(agreement_names_the_failing_rank) {
    pnn_comm *c = open_comm("none");
    int flag = 0;
    ck_assert_int_eq(pnn_comm_agree(c, PNN_OK, &flag), PNN_OK);
    ck_assert_int_eq(flag, 0);
    flag = 1; /* e.g. this rank got SIGINT: every rank learns it */
    ck_assert_int_eq(pnn_comm_agree(c, PNN_OK, &flag), PNN_OK);
    ck_assert_int_eq(flag, 1);
    pnn_status st = PNN_ERROR(PNN_ERR_DEVICE, "device remote:tcp://lab-0:5555 timed out after 5 s");
    ck_assert_int_eq(pnn_comm_agree(c, st, NULL), PNN_ERR_DEVICE);
    ck_assert_str_eq(pnn_last_error(), "rank 0 failed: device remote:tcp://lab-0:5555 timed out after 5 s");
    pnn_comm_free(c);
}
END_TEST

START_TEST(exact_reduction_follows_shard_order) {
    enum { S = 7, N = 1001 };
    float *g = order_sensitive_shards(S, N), want[N], reversed[N], got[N];
    reference_sum(g, S, N, 0, want);
    reference_sum(g, S, N, 1, reversed);
    int differ = 0;
    for (int i = 0; i < N; i++) differ += memcmp(&want[i], &reversed[i], sizeof(float)) != 0;
    ck_assert_msg(differ > 0, "the test data should depend on the order of addition");

    pnn_comm *c = open_comm("none");
    ck_assert_int_eq(pnn_comm_reduce_shards(c, g, S, S, N, got), PNN_OK);
    ck_assert_int_eq(memcmp(got, want, sizeof want), 0);
    /* in place, into the first shard */
    ck_assert_int_eq(pnn_comm_reduce_shards(c, g, S, S, N, g), PNN_OK);
    ck_assert_int_eq(memcmp(g, want, sizeof want), 0);
    /* one rank holds every shard: any other count is a caller's mistake */
    ck_assert_int_eq(pnn_comm_reduce_shards(c, g, 3, S, N, got), PNN_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(pnn_last_error(), "pnn_comm_shard gives it 7 of 7"));
    ck_assert_int_eq(pnn_comm_reduce_shards(c, g, 0, 0, N, got), PNN_ERR_INVALID);

    pnn_reduce_mode mode;
    ck_assert_int_eq(pnn_comm_parse_reduce("exact", &mode), PNN_OK);
    ck_assert_int_eq(mode, PNN_REDUCE_EXACT);
    ck_assert_int_eq(pnn_comm_parse_reduce("fast", &mode), PNN_OK);
    ck_assert_int_eq(mode, PNN_REDUCE_FAST);
    ck_assert_int_eq(pnn_comm_parse_reduce("ring", &mode), PNN_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(pnn_last_error(), "known: fast, exact"));
    pnn_comm_free(c);
    free(g);
}
END_TEST

START_TEST(splits_tile_the_range) {
    int64_t first, count;
    static const int64_t want32[3][2] = {{0, 11}, {11, 11}, {22, 10}}; /* np 3, batch 32 */
    for (int p = 0; p < 3; p++) {
        ck_assert_int_eq(pnn_comm_split(32, 3, p, &first, &count), PNN_OK);
        ck_assert_int_eq(first, want32[p][0]);
        ck_assert_int_eq(count, want32[p][1]);
    }
    /* fewer items than parts: the last parts get none */
    static const int64_t want2[4][2] = {{0, 1}, {1, 1}, {2, 0}, {2, 0}};
    for (int p = 0; p < 4; p++) {
        ck_assert_int_eq(pnn_comm_split(2, 4, p, &first, &count), PNN_OK);
        ck_assert_int_eq(first, want2[p][0]);
        ck_assert_int_eq(count, want2[p][1]);
    }
    for (int64_t n = 0; n < 40; n++)
        for (int parts = 1; parts <= 9; parts++) {
            int64_t next = 0, lo = n, hi = 0;
            for (int p = 0; p < parts; p++) {
                ck_assert_int_eq(pnn_comm_split(n, parts, p, &first, &count), PNN_OK);
                ck_assert_int_eq(first, next);
                next += count;
                lo = count < lo ? count : lo;
                hi = count > hi ? count : hi;
            }
            ck_assert_int_eq(next, n);
            ck_assert_int_le(hi - lo, 1);
        }
    ck_assert_int_eq(pnn_comm_split(1000000000000LL, 7, 6, &first, &count), PNN_OK);
    ck_assert_int_eq(first + count, 1000000000000LL);
    ck_assert_int_eq(pnn_comm_split(-1, 2, 0, &first, &count), PNN_ERR_INVALID);
    ck_assert_int_eq(pnn_comm_split(5, 0, 0, &first, &count), PNN_ERR_INVALID);
    ck_assert_int_eq(pnn_comm_split(5, 2, 2, &first, &count), PNN_ERR_INVALID);
    ck_assert_int_eq(pnn_comm_split(5, 2, -1, &first, &count), PNN_ERR_INVALID);

    pnn_comm *c = open_comm("none");
    ck_assert_int_eq(pnn_comm_shard(c, 32, &first, &count), PNN_OK);
    ck_assert(first == 0 && count == 32);
    pnn_comm_free(c);
}
END_TEST

START_TEST(templates_expand_rank_and_local_rank) {
    char out[64];
    ck_assert_int_eq(pnn_comm_expand("remote:tcp://lab-{rank}:5555", 2, 0, out, sizeof out), PNN_OK);
    ck_assert_str_eq(out, "remote:tcp://lab-2:5555");
    ck_assert_int_eq(pnn_comm_expand("remote:tcp://node:{local_rank}{rank}/{rank}", 123, 7, out, sizeof out),
                     PNN_OK);
    ck_assert_str_eq(out, "remote:tcp://node:7123/123");
    ck_assert_int_eq(pnn_comm_expand("sim:oscillator?n=40", 5, 1, out, sizeof out), PNN_OK);
    ck_assert_str_eq(out, "sim:oscillator?n=40");
    ck_assert_int_eq(pnn_comm_expand("", 5, 1, out, sizeof out), PNN_OK);
    ck_assert_str_eq(out, "");
    ck_assert_int_eq(pnn_comm_expand("lab-{host}", 0, 0, out, sizeof out), PNN_ERR_INVALID);
    ck_assert_msg(strstr(pnn_last_error(), "unknown placeholder at '{host}'") &&
                      strstr(pnn_last_error(), "{rank}, {local_rank}"),
                  "%s", pnn_last_error());
    ck_assert_int_eq(pnn_comm_expand("lab-{rank", 0, 0, out, sizeof out), PNN_ERR_INVALID);
    ck_assert_int_eq(pnn_comm_expand("lab-{}", 0, 0, out, sizeof out), PNN_ERR_INVALID);
    /* exactly fits (9 bytes + NUL), then one byte short */
    ck_assert_int_eq(pnn_comm_expand("lab-{rank}", 10000, 0, out, 10), PNN_OK);
    ck_assert_str_eq(out, "lab-10000");
    ck_assert_int_eq(pnn_comm_expand("lab-{rank}", 10000, 0, out, 9), PNN_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(pnn_last_error(), "longer than 8 bytes"));
    ck_assert_int_eq(pnn_comm_expand(NULL, 0, 0, out, sizeof out), PNN_ERR_INVALID);
}
END_TEST

/* The launch variables, saved so that a test can set its own and put them back. */
static const char *const launch_vars[] = {
    "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_LOCAL_RANK", "PMI_SIZE", "PMI_RANK",
    "MPI_LOCALRANKID", "SLURM_STEP_NUM_TASKS", "SLURM_PROCID", "SLURM_LOCALID", "SLURM_NTASKS", "PMIX_RANK"};
enum { N_LAUNCH_VARS = sizeof launch_vars / sizeof launch_vars[0] };
static char *saved_vars[N_LAUNCH_VARS];

static void clear_launch(void) {
    for (int i = 0; i < N_LAUNCH_VARS; i++) {
        const char *v = getenv(launch_vars[i]);
        if (!saved_vars[i] && v) saved_vars[i] = strdup(v);
        unsetenv(launch_vars[i]);
    }
}

static void restore_launch(void) {
    for (int i = 0; i < N_LAUNCH_VARS; i++) {
        unsetenv(launch_vars[i]);
        if (saved_vars[i]) setenv(launch_vars[i], saved_vars[i], 1);
        free(saved_vars[i]);
        saved_vars[i] = NULL;
    }
}

START_TEST(launch_is_read_from_the_environment) {
    pnn_comm_launch l;
    clear_launch();
    pnn_comm_detect_launch(&l);
    ck_assert_str_eq(l.launcher, "");
    ck_assert_int_eq(l.size, 1);
    setenv("SLURM_NTASKS", "4", 1); /* a batch script before srun: still one process */
    pnn_comm_detect_launch(&l);
    ck_assert_str_eq(l.launcher, "");

    setenv("SLURM_STEP_NUM_TASKS", "2", 1);
    setenv("SLURM_PROCID", "1", 1);
    setenv("SLURM_LOCALID", "1", 1);
    pnn_comm_detect_launch(&l);
    ck_assert_str_eq(l.launcher, "srun");
    ck_assert(l.size == 2 && l.rank == 1 && l.local_rank == 1);
    ck_assert_str_eq(l.evidence, "SLURM_STEP_NUM_TASKS=2");

    setenv("OMPI_COMM_WORLD_SIZE", "4", 1); /* Open MPI's own variables come first */
    setenv("OMPI_COMM_WORLD_RANK", "3", 1);
    setenv("OMPI_COMM_WORLD_LOCAL_RANK", "0", 1);
    pnn_comm_detect_launch(&l);
    ck_assert_str_eq(l.launcher, "mpirun");
    ck_assert(l.size == 4 && l.rank == 3 && l.local_rank == 0);

    clear_launch();
    setenv("PMI_SIZE", "3", 1);
    setenv("PMI_RANK", "2", 1);
    pnn_comm_detect_launch(&l);
    ck_assert_str_eq(l.launcher, "pmi");
    ck_assert(l.size == 3 && l.rank == 2 && l.local_rank == -1);

    clear_launch();
    setenv("PMIX_RANK", "0", 1);
    pnn_comm_detect_launch(&l);
    ck_assert_str_eq(l.launcher, "pmix");
    ck_assert_int_eq(l.size, 0); /* unknown */

    clear_launch();
    setenv("OMPI_COMM_WORLD_SIZE", "many", 1); /* not a number: ignored */
    pnn_comm_detect_launch(&l);
    ck_assert_str_eq(l.launcher, "");
    restore_launch();
}
END_TEST

START_TEST(kind_is_chosen_from_launch_and_build) {
    pnn_comm_launch alone = {.launcher = "", .size = 1, .rank = 0, .local_rank = 0};
    pnn_comm_launch four = {.launcher = "mpirun", .evidence = "OMPI_COMM_WORLD_SIZE=4", .size = 4, .rank = 2};
    pnn_comm_launch one = {.launcher = "mpirun", .evidence = "OMPI_COMM_WORLD_SIZE=1", .size = 1, .rank = 0};
    pnn_comm_launch pmix = {.launcher = "pmix", .evidence = "PMIX_RANK=0", .size = 0, .rank = 0};
    pnn_comm_kind k;
    for (int mpi = 0; mpi <= 1; mpi++) {
        ck_assert_int_eq(pnn_comm_choose("auto", &alone, mpi, &k), PNN_OK);
        ck_assert_int_eq(k, PNN_COMM_NONE);
        ck_assert_int_eq(pnn_comm_choose(NULL, &alone, mpi, &k), PNN_OK);
        ck_assert_int_eq(k, PNN_COMM_NONE);
        ck_assert_int_eq(pnn_comm_choose("none", &alone, mpi, &k), PNN_OK);
        ck_assert_int_eq(pnn_comm_choose("none", &one, mpi, &k), PNN_OK);
        ck_assert_int_eq(pnn_comm_choose("none", &four, mpi, &k), PNN_ERR_INVALID);
        ck_assert_ptr_nonnull(strstr(pnn_last_error(), "every rank would train alone"));
        if (mpi && pnn_comm_have_nccl()) {
            ck_assert_int_eq(pnn_comm_choose("nccl", &four, mpi, &k), PNN_OK);
            ck_assert_int_eq(k, PNN_COMM_NCCL);
        } else {
            ck_assert_int_eq(pnn_comm_choose("nccl", &four, mpi, &k), PNN_ERR_UNSUPPORTED);
            ck_assert_ptr_nonnull(strstr(pnn_last_error(), "-DPNN_NCCL=ON"));
        }
        ck_assert_int_eq(pnn_comm_choose("tcp", &alone, mpi, &k), PNN_ERR_INVALID);
        ck_assert_ptr_nonnull(strstr(pnn_last_error(), "known: auto, none, mpi"));
    }
    ck_assert_int_eq(pnn_comm_choose("auto", &four, 1, &k), PNN_OK);
    ck_assert_int_eq(k, PNN_COMM_MPI);
    ck_assert_int_eq(pnn_comm_choose("auto", &one, 1, &k), PNN_OK); /* mpirun -np 1: no need for MPI */
    ck_assert_int_eq(k, PNN_COMM_NONE);
    ck_assert_int_eq(pnn_comm_choose("mpi", &one, 1, &k), PNN_OK);
    ck_assert_int_eq(k, PNN_COMM_MPI);
    ck_assert_int_eq(pnn_comm_choose("auto", &pmix, 1, &k), PNN_OK); /* size unknown: ask MPI */
    ck_assert_int_eq(k, PNN_COMM_MPI);
    ck_assert_int_eq(pnn_comm_choose("auto", &one, 0, &k), PNN_OK);
    ck_assert_int_eq(k, PNN_COMM_NONE);
    ck_assert_int_eq(pnn_comm_choose("mpi", &alone, 1, &k), PNN_OK);
    ck_assert_int_eq(k, PNN_COMM_MPI);
    /* mpirun -np 4 with a build without MPI: a clear error, not four separate runs */
    ck_assert_int_eq(pnn_comm_choose("auto", &four, 0, &k), PNN_ERR_UNSUPPORTED);
    ck_assert_msg(strstr(pnn_last_error(), "one of 4 ranks started by mpirun (OMPI_COMM_WORLD_SIZE=4)") &&
                      strstr(pnn_last_error(), "built without MPI"),
                  "%s", pnn_last_error());
    ck_assert_int_eq(pnn_comm_choose("auto", &pmix, 0, &k), PNN_ERR_UNSUPPORTED);
    ck_assert_int_eq(pnn_comm_choose("mpi", &alone, 0, &k), PNN_ERR_UNSUPPORTED);
    ck_assert_ptr_nonnull(strstr(pnn_last_error(), "-DPNN_MPI=ON"));

    if (!pnn_comm_have_mpi()) { /* the whole path, environment included (with MPI it would start MPI) */
        pnn_comm *c = NULL;
        clear_launch();
        setenv("OMPI_COMM_WORLD_SIZE", "4", 1);
        setenv("OMPI_COMM_WORLD_RANK", "1", 1);
        ck_assert_int_eq(pnn_comm_init("auto", NULL, NULL, &c), PNN_ERR_UNSUPPORTED);
        ck_assert_ptr_null(c);
        ck_assert_ptr_nonnull(strstr(pnn_last_error(), "one of 4 ranks started by mpirun"));
        ck_assert_int_eq(pnn_comm_init("mpi", NULL, NULL, &c), PNN_ERR_UNSUPPORTED);
        restore_launch();
    }
}
END_TEST

/* The mpi kind as a one-rank job (mpirun -np 1): the same answers as the none kind, bit for
 * bit. MPI starts once per process, so everything is in this one test (run with CK_FORK=no). */
START_TEST(mpi_kind_matches_none_on_one_rank) {
    enum { S = 5, N = 777 };
    pnn_comm *c = open_comm("mpi");
    ck_assert_int_eq(c->kind, PNN_COMM_MPI);
    ck_assert_int_eq(c->size, 1);
    ck_assert_int_eq(c->rank, 0);
    ck_assert_int_eq(c->local_size, 1);
    float *g = order_sensitive_shards(S, N), want[N], got[N];
    reference_sum(g, S, N, 0, want);
    ck_assert_int_eq(pnn_comm_reduce_shards(c, g, S, S, N, got), PNN_OK);
    ck_assert_int_eq(memcmp(got, want, sizeof want), 0);
    memcpy(got, g, sizeof got);
    ck_assert_int_eq(pnn_comm_allreduce_sum(c, got, N, PNN_REDUCE_FAST), PNN_OK);
    ck_assert_int_eq(memcmp(got, g, sizeof got), 0);
    double m[2] = {3, 4};
    ck_assert_int_eq(pnn_comm_allreduce_double(c, m, 2), PNN_OK);
    ck_assert(m[0] == 3 && m[1] == 4);
    char b[6] = "hello";
    ck_assert_int_eq(pnn_comm_bcast(c, b, sizeof b, 0), PNN_OK);
    ck_assert_str_eq(b, "hello");
    ck_assert_int_eq(pnn_comm_barrier(c), PNN_OK);
    ck_assert_int_eq(pnn_comm_check_same(c, g, sizeof want, "gradients"), PNN_OK);
    pnn_status st = PNN_ERROR(PNN_ERR_TIMEOUT, "instrument lab-0 did not answer");
    ck_assert_int_eq(pnn_comm_agree(c, st, NULL), PNN_ERR_TIMEOUT);
    ck_assert_str_eq(pnn_last_error(), "rank 0 failed: instrument lab-0 did not answer");
    ck_assert_int_eq(pnn_comm_shutdown(c), PNN_OK);
    pnn_comm_free(c);
    /* MPI cannot start twice in a process: a clear error, not a crash */
    pnn_comm *again = NULL;
    ck_assert_int_eq(pnn_comm_init("mpi", NULL, NULL, &again), PNN_ERR_UNSUPPORTED);
    ck_assert_ptr_nonnull(strstr(pnn_last_error(), "finalized"));
    free(g);
}
END_TEST

int main(void) {
    Suite *s = suite_create("comm");
    TCase *tc = tcase_create("comm");
    pnn_comm_launch l;
    pnn_comm_detect_launch(&l);
    if (pnn_comm_have_mpi() && l.launcher[0] && l.size == 1) tcase_add_test(tc, mpi_kind_matches_none_on_one_rank);
    else
        fprintf(stderr, "test_comm: the mpi kind is not tested here (%s); test_comm_mpirun runs it under mpirun\n",
                pnn_comm_have_mpi() ? "not started by mpirun -np 1" : "this build has no MPI");
    tcase_add_test(tc, none_kind_is_one_rank);
    tcase_add_test(tc, agreement_names_the_failing_rank);
    tcase_add_test(tc, exact_reduction_follows_shard_order);
    tcase_add_test(tc, splits_tile_the_range);
    tcase_add_test(tc, templates_expand_rank_and_local_rank);
    tcase_add_test(tc, launch_is_read_from_the_environment);
    tcase_add_test(tc, kind_is_chosen_from_launch_and_build);
    suite_add_tcase(s, tc);
    return pnn_test_run(s);
}
