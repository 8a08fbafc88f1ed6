/* The nccl comm kind. Everywhere: how the kind is chosen and refused (build without NCCL, a
 * config with backend cpu). With NCCL built and a GPU present, as one rank (or under mpirun,
 * one rank per GPU: tests/cli/nccl_comm.sh): start over MPI, all-reduce of GPU memory (the sum
 * over the ranks), refusals of host memory and of an exact all-reduce, the host collectives
 * that go through MPI, a training epoch through the NCCL path against one without comm, and a
 * clean shutdown. One comm for the whole process (MPI starts once), so CK_NOFORK. Exit 77
 * after the first part when the build lacks NCCL or no GPU is present; with --built, exit 0 or
 * 77 at once by whether the build has NCCL. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "host/train_dp.h"
#include "pnn/pnn.h"
#include "tests/testutil.h"

#ifdef PNN_USE_NCCL
#include <cuda_runtime_api.h>
#endif

/* ---- without a GPU ---- */

START_TEST(kind_is_refused_where_it_cannot_work) {
    pnn_comm_launch alone = {.launcher = "", .size = 1, .rank = 0, .local_rank = 0};
    pnn_comm_kind k;
    ck_assert_int_eq(pnn_comm_choose("nccl", &alone, 0, &k), PNN_ERR_UNSUPPORTED);
    ck_assert_ptr_nonnull(strstr(pnn_last_error(), "lacks MPI"));
    pnn_status st = pnn_comm_choose("nccl", &alone, pnn_comm_have_mpi(), &k);
    if (pnn_comm_have_nccl()) {
        ck_assert_int_eq(st, PNN_OK);
        ck_assert_int_eq(k, PNN_COMM_NCCL);
    } else {
        ck_assert_int_eq(st, PNN_ERR_UNSUPPORTED);
        ck_assert_ptr_nonnull(strstr(pnn_last_error(), "-DPNN_NCCL=ON"));
        pnn_comm *c = NULL;
        ck_assert_int_eq(pnn_comm_init("nccl", NULL, NULL, &c), PNN_ERR_UNSUPPORTED);
        ck_assert_ptr_null(c);
    }
    ck_assert_str_eq(pnn_comm_kind_name(PNN_COMM_NCCL), "nccl");
}
END_TEST

START_TEST(config_with_backend_cpu_is_refused) {
    char yaml[2048];
    const char *kind;
    pnn_cfg *cfg = pnn_test_parse(pnn_test_vowels_yaml(yaml, sizeof yaml, "comm: {kind: nccl}\n"));
    ck_assert_int_eq(pnn_train_comm_kind(cfg, &kind), PNN_ERR_CONFIG);
    ck_assert_ptr_nonnull(strstr(pnn_last_error(), "test.yaml:"));
    ck_assert_ptr_nonnull(strstr(pnn_last_error(), "needs backend: cuda"));
    pnn_cfg_free(cfg);
    cfg = pnn_test_parse(pnn_test_vowels_yaml(yaml, sizeof yaml, "backend: cuda\ncomm: {kind: nccl, reduce: fast}\n"));
    ck_assert_int_eq(pnn_train_comm_kind(cfg, &kind), PNN_OK);
    ck_assert_str_eq(kind, "nccl");
    pnn_cfg_free(cfg);
    cfg = pnn_test_parse(pnn_test_vowels_yaml(yaml, sizeof yaml, "comm: {kind: gloo}\n"));
    ck_assert_int_eq(pnn_train_comm_kind(cfg, &kind), PNN_ERR_CONFIG);
    ck_assert_ptr_nonnull(strstr(pnn_last_error(), "known: auto, none, mpi, nccl"));
    pnn_cfg_free(cfg);
}
END_TEST

#ifdef PNN_USE_NCCL

/* ---- with a GPU: the comm started in main ---- */

static pnn_comm *g_comm;

START_TEST(starts_over_mpi) {
    pnn_comm *c = g_comm;
    ck_assert_int_eq(c->kind, PNN_COMM_NCCL);
    ck_assert_str_eq(c->iface->name, "nccl");
    ck_assert_int_ge(c->size, 1);
    ck_assert(c->rank >= 0 && c->rank < c->size);
    ck_assert(c->local_rank >= 0 && c->local_rank < c->local_size);
    const char *dev = getenv("PNN_CUDA_DEVICE");
    ck_assert_ptr_nonnull(dev); /* set for the CUDA backend, unless it was set before */
    int current = -1;
    ck_assert_int_eq(cudaGetDevice(&current), cudaSuccess);
    ck_assert_int_eq(current, atoi(dev));
}
END_TEST

START_TEST(allreduce_sums_gpu_memory) {
    pnn_comm *c = g_comm;
    enum { N = 1000003 }; /* odd, above NCCL's small-message protocols */
    float *host = malloc(N * sizeof *host), *back = malloc(N * sizeof *back), *dev = NULL;
    ck_assert(host && back);
    /* small integers: the sum over any number of ranks is exact, in any order */
    for (int i = 0; i < N; i++) host[i] = (float)(i % 1001 - 500);
    ck_assert_int_eq(cudaMalloc((void **)&dev, N * sizeof *dev), cudaSuccess);
    ck_assert_int_eq(cudaMemcpy(dev, host, N * sizeof *dev, cudaMemcpyHostToDevice), cudaSuccess);
    ck_assert_msg(pnn_comm_allreduce_sum(c, dev, N, PNN_REDUCE_FAST) == PNN_OK, "%s", pnn_last_error());
    ck_assert_int_eq(cudaMemcpy(back, dev, N * sizeof *dev, cudaMemcpyDeviceToHost), cudaSuccess);
    int64_t wrong = 0, first = -1;
    for (int i = 0; i < N; i++)
        if (back[i] != host[i] * (float)c->size && wrong++ == 0) first = i;
    ck_assert_msg(wrong == 0, "%lld of %d sums wrong, first at %lld: %g, want %g", (long long)wrong, N,
                  (long long)first, first >= 0 ? back[first] : 0.0, first >= 0 ? host[first] * c->size : 0.0);
    /* again, and nothing at all */
    ck_assert_int_eq(pnn_comm_allreduce_sum(c, dev, N, PNN_REDUCE_FAST), PNN_OK);
    ck_assert_int_eq(pnn_comm_allreduce_sum(c, dev, 0, PNN_REDUCE_FAST), PNN_OK);
    ck_assert_int_eq(cudaMemcpy(back, dev, sizeof *back * 3, cudaMemcpyDeviceToHost), cudaSuccess);
    ck_assert(back[1] == host[1] * (float)(c->size * c->size));

    /* wrong uses are refused with a message, and the comm stays usable */
    ck_assert_int_eq(pnn_comm_allreduce_sum(c, host, N, PNN_REDUCE_FAST), PNN_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(pnn_last_error(), "host memory"));
    ck_assert_int_eq(pnn_comm_allreduce_sum(c, dev, N, PNN_REDUCE_EXACT), PNN_ERR_UNSUPPORTED);
    ck_assert_ptr_nonnull(strstr(pnn_last_error(), "exact"));
    ck_assert_int_eq(pnn_comm_allreduce_sum(c, dev, N, PNN_REDUCE_FAST), PNN_OK);
    cudaFree(dev);
    free(host);
    free(back);
}
END_TEST

START_TEST(host_collectives_go_through_mpi) {
    pnn_comm *c = g_comm;
    double m[2] = {1.5, (double)c->rank};
    ck_assert_int_eq(pnn_comm_allreduce_double(c, m, 2), PNN_OK);
    ck_assert(m[0] == 1.5 * c->size && m[1] == c->size * (c->size - 1) / 2.0);
    enum { S = 4, N = 33 };
    float shards[S * N], out[N];
    int64_t first = 0, count = 0;
    ck_assert_int_eq(pnn_comm_shard(c, S, &first, &count), PNN_OK);
    for (int64_t k = 0; k < count; k++)
        for (int i = 0; i < N; i++) shards[k * N + i] = (float)((first + k) * 100 + i);
    ck_assert_msg(pnn_comm_reduce_shards(c, shards, count, S, N, out) == PNN_OK, "%s", pnn_last_error());
    for (int i = 0; i < N; i++) ck_assert(out[i] == (float)(600 + 4 * i));
    int root_value = c->rank == 0 ? 42 : -1;
    ck_assert_int_eq(pnn_comm_bcast(c, &root_value, sizeof root_value, 0), PNN_OK);
    ck_assert_int_eq(root_value, 42);
    ck_assert_int_eq(pnn_comm_barrier(c), PNN_OK);
    ck_assert_int_eq(pnn_comm_agree(c, PNN_OK, NULL), PNN_OK);
}
END_TEST

static void train_epoch(const char *extra, pnn_comm *comm, float *params, int64_t cap) {
    char yaml[2048];
    pnn_trainer *tr = NULL;
    pnn_status st = pnn_trainer_create_comm(pnn_test_parse(pnn_test_vowels_yaml(yaml, sizeof yaml, extra)), ".", comm, &tr);
    ck_assert_msg(st == PNN_OK, "%s", pnn_last_error());
    ck_assert_msg(pnn_trainer_run(tr) == PNN_OK, "%s", pnn_last_error());
    ck_assert_int_le(pnn_dp_param_floats(tr->net), cap);
    ck_assert_int_eq(pnn_dp_pack(tr->net, 0, params), PNN_OK);
    pnn_trainer_free(tr);
}

/* One rank: the gradients go to a GPU buffer, through ncclAllReduce (a copy for one rank) and
 * back: the parameters after an epoch match a run without comm up to the GPU's run-to-run
 * rounding. Several ranks: the epoch runs (the comparison is tests/cli/nccl_comm.sh's). */
START_TEST(trainer_sums_gradients_on_the_gpu) {
    static float with[8192], without[8192];
    const char *extra = "backend: cuda\ncomm: {kind: nccl}\n";
    train_epoch(extra, g_comm, with, 8192);
    if (g_comm->size > 1) return;
    train_epoch("backend: cuda\n", NULL, without, 8192);
    char yaml[2048];
    pnn_trainer *tr = NULL;
    ck_assert_int_eq(pnn_trainer_create_comm(pnn_test_parse(pnn_test_vowels_yaml(yaml, sizeof yaml, extra)), ".", g_comm, &tr), PNN_OK);
    int64_t n = pnn_dp_param_floats(tr->net);
    pnn_trainer_free(tr);
    double worst = 0, scale = 1e-30;
    for (int64_t i = 0; i < n; i++) {
        worst = fmax(worst, fabs((double)with[i] - without[i]));
        scale = fmax(scale, fabs((double)without[i]));
    }
    ck_assert_msg(worst / scale < 1e-4, "max |nccl - none| / max |none| = %g", worst / scale);
    /* a cpu-backend trainer is refused before it reaches NCCL */
    pnn_status st = pnn_trainer_create_comm(pnn_test_parse(pnn_test_vowels_yaml(yaml, sizeof yaml, "comm: {kind: nccl}\n")), ".",
                                            g_comm, &tr);
    ck_assert_int_eq(st, PNN_ERR_CONFIG);
    ck_assert_ptr_nonnull(strstr(pnn_last_error(), "needs backend: cuda"));
}
END_TEST

#endif /* PNN_USE_NCCL */

static int run_suite(Suite *s) {
    SRunner *sr = srunner_create(s);
    srunner_set_fork_status(sr, CK_NOFORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed;
}

int main(int argc, char **argv) {
    /* --built: only say whether this build has the nccl kind (for tests/cli/nccl_comm.sh) */
    if (argc > 1 && !strcmp(argv[1], "--built")) return pnn_comm_have_nccl() ? 0 : 77;
    Suite *s = suite_create("comm_nccl");
    TCase *tc = tcase_create("anywhere");
    tcase_add_test(tc, kind_is_refused_where_it_cannot_work);
    tcase_add_test(tc, config_with_backend_cpu_is_refused);
    suite_add_tcase(s, tc);
    if (run_suite(s)) return 1;
#ifdef PNN_USE_NCCL
    int gpus = 0;
    if (cudaGetDeviceCount(&gpus) != cudaSuccess || gpus == 0) {
        printf("skip: no GPU here (cudaGetDeviceCount), the NCCL part did not run\n");
        return 77;
    }
    if (pnn_comm_init("nccl", NULL, NULL, &g_comm) != PNN_OK) {
        fprintf(stderr, "pnn_comm_init(\"nccl\") failed: %s\n", pnn_last_error());
        return 1;
    }
    s = suite_create("comm_nccl_gpu");
    tc = tcase_create("gpu");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, starts_over_mpi);
    tcase_add_test(tc, allreduce_sums_gpu_memory);
    tcase_add_test(tc, host_collectives_go_through_mpi);
    tcase_add_test(tc, trainer_sums_gradients_on_the_gpu);
    suite_add_tcase(s, tc);
    int failed = run_suite(s);
    pnn_status st = pnn_comm_shutdown(g_comm);
    if (st != PNN_OK) {
        fprintf(stderr, "pnn_comm_shutdown: %s\n", pnn_last_error());
        failed++;
    }
    pnn_comm_free(g_comm);
    return failed ? 1 : 0;
#else
    printf("skip: this build has no NCCL (configure with -DPNN_NCCL=ON), the GPU part did not run\n");
    return 77;
#endif
}
