/* The data-parallel parts of the trainer that need no second process: the shard plan of exact
 * mode, the noise positions, packing gradients into one buffer, device templates, the comm
 * config keys, and exact mode in one process computing the gradient that fast mode does (up to
 * rounding). Several ranks: tests/cli/mpi_train.sh. */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "host/train_dp.h"
#include "pnn/pnn.h"
#include "tests/testutil.h"

/* Every rank's shards and rows, side by side, are the batch's, in order; a shard is mb rows. */
START_TEST(exact_plan_covers_the_batch_in_order) {
    for (int64_t b = 1; b <= 40; b++)
        for (int64_t mb = 1; mb <= 7; mb++)
            for (int P = 1; P <= 5; P++) {
                int64_t next_shard = 0, next_row = 0;
                for (int r = 0; r < P; r++) {
                    pnn_dp_plan p;
                    ck_assert_int_eq(pnn_dp_plan_exact(b, mb, P, r, &p), PNN_OK);
                    ck_assert_int_eq(p.shards, (b + mb - 1) / mb);
                    ck_assert_int_eq(p.first, next_shard);
                    if (p.count) ck_assert_int_eq(p.row0, next_row);
                    int64_t rows = 0;
                    for (int64_t s = p.first; s < p.first + p.count; s++) rows += b - s * mb < mb ? b - s * mb : mb;
                    ck_assert_int_eq(p.rows, rows);
                    next_shard += p.count;
                    next_row += p.rows;
                }
                ck_assert_int_eq(next_shard, (b + mb - 1) / mb);
                ck_assert_int_eq(next_row, b);
            }
    pnn_dp_plan p;
    ck_assert_int_eq(pnn_dp_plan_exact(8, 0, 2, 0, &p), PNN_ERR_INVALID);
}
END_TEST

/* Positions of different shards never meet (2^16 calls apart), evaluation and the ranks' fast
 * ranges lie elsewhere. */
START_TEST(noise_positions_are_disjoint) {
    uint64_t step = 1ull << PNN_DP_CALL_BITS;
    ck_assert_uint_eq(pnn_dp_train_position(0, 4, 0), 0);
    ck_assert_uint_eq(pnn_dp_train_position(0, 4, 3), 3 * step);
    ck_assert_uint_eq(pnn_dp_train_position(1, 4, 0), 4 * step);
    ck_assert_uint_eq(pnn_dp_train_position(1000000, 64, 63) + step - 1 < PNN_DP_EVAL_BASE, 1);
    ck_assert_uint_eq(pnn_dp_eval_position(0), PNN_DP_EVAL_BASE);
    ck_assert_uint_eq(pnn_dp_eval_position(5) - pnn_dp_eval_position(4), step);
    ck_assert_uint_eq(pnn_dp_rank_offset(0), 0);
    ck_assert_uint_eq(pnn_dp_rank_offset(2) - pnn_dp_rank_offset(1), 1ull << 40);
}
END_TEST

static const char *const small_net =
    "network:\n"
    "  - {kind: linear, name: enc, out: 6}\n"
    "  - {kind: physical, name: osc, device: 'sim:oscillator?n=6&nt=4&seed={rank}', outputs: 'last:3'}\n"
    "  - {kind: scale, name: out, init: 2}\n";

START_TEST(gradients_pack_and_unpack_in_parameter_order) {
    pnn_cfg *cfg = pnn_test_parse(small_net);
    pnn_network *net;
    ck_assert_msg(pnn_network_build(pnn_cfg_get(cfg, "network"), pnn_backend_cpu(), 5, 1, &net) == PNN_OK, "%s",
                  pnn_last_error());
    int64_t n = pnn_dp_param_floats(net);
    ck_assert_int_eq(n, pnn_network_param_count(net));
    float *a = malloc((size_t)n * sizeof *a), *b = malloc((size_t)n * sizeof *b);
    for (int64_t i = 0; i < n; i++) a[i] = (float)i * 0.5f - 3.0f;
    ck_assert_int_eq(pnn_dp_unpack(net, 1, a), PNN_OK);
    /* the first parameter's gradient holds the first floats, the last one's the last */
    float first, last;
    pnn_tensor_to_host(&net->params[0]->grad, &first, 1);
    const pnn_tensor *lg = &net->params[net->n_params - 1]->grad;
    ck_assert_int_eq(lg->numel, 1);
    pnn_tensor_to_host(lg, &last, 1);
    ck_assert(first == a[0] && last == a[n - 1]);
    ck_assert_int_eq(pnn_dp_pack(net, 1, b), PNN_OK);
    ck_assert_int_eq(memcmp(a, b, (size_t)n * sizeof *a), 0);
    /* values are another buffer: untouched by the gradients */
    ck_assert_int_eq(pnn_dp_pack(net, 0, b), PNN_OK);
    ck_assert_int_ne(memcmp(a, b, (size_t)n * sizeof *a), 0);
    free(a), free(b);
    pnn_network_free(net);
    pnn_cfg_free(cfg);
}
END_TEST

/* {rank} in a device URI becomes this rank's number (0 for pnn_network_build); the counters of
 * simulators and twins follow pnn_dp_set_counters. */
START_TEST(device_templates_and_counters) {
    pnn_cfg *cfg = pnn_test_parse(small_net);
    pnn_network *net0, *net2;
    ck_assert_int_eq(pnn_network_build(pnn_cfg_get(cfg, "network"), pnn_backend_cpu(), 5, 1, &net0), PNN_OK);
    ck_assert_msg(pnn_network_build_rank(pnn_cfg_get(cfg, "network"), pnn_backend_cpu(), 5, 1, 2, 0, &net2) == PNN_OK,
                  "%s", pnn_last_error());
    pnn_device *d0, *d2;
    ck_assert_int_eq(pnn_network_devices(net0, &d0, 1), 1);
    ck_assert_int_eq(pnn_network_devices(net2, &d2, 1), 1);
    ck_assert_str_eq(d0->info.uri, "sim:oscillator?n=6&nt=4&seed=0");
    ck_assert_str_eq(d2->info.uri, "sim:oscillator?n=6&nt=4&seed=2");
    uint64_t *c[2];
    ck_assert_int_eq(pnn_network_counters(net2, c, 2), 2);
    pnn_dp_set_counters(net2, 12345);
    ck_assert_uint_eq(*c[0], 12345);
    ck_assert_uint_eq(*c[1], 12345);
    pnn_network_free(net0), pnn_network_free(net2);
    pnn_cfg_free(cfg);

    cfg = pnn_test_parse("network:\n  - {kind: physical, name: osc, device: 'sim:oscillator?n=6&seed={node}'}\n");
    pnn_network *bad = NULL;
    ck_assert_int_eq(pnn_network_build_rank(pnn_cfg_get(cfg, "network"), pnn_backend_cpu(), 6, 1, 1, 0, &bad),
                     PNN_ERR_CONFIG);
    ck_assert_msg(strstr(pnn_last_error(), "test.yaml:2") && strstr(pnn_last_error(), "{node}") &&
                      strstr(pnn_last_error(), "{rank}"),
                  "%s", pnn_last_error());
    pnn_cfg_free(cfg);
}
END_TEST

START_TEST(comm_config_keys) {
    char yaml[2048];
    const char *kind;
    pnn_cfg *cfg = pnn_test_parse(pnn_test_vowels_yaml(yaml, sizeof yaml, ""));
    ck_assert_int_eq(pnn_train_comm_kind(cfg, &kind), PNN_OK);
    ck_assert_str_eq(kind, "auto");
    pnn_cfg_free(cfg);
    cfg = pnn_test_parse(pnn_test_vowels_yaml(yaml, sizeof yaml, "comm: {kind: mpi, reduce: fast}\n"));
    ck_assert_int_eq(pnn_train_comm_kind(cfg, &kind), PNN_OK);
    ck_assert_str_eq(kind, "mpi");
    pnn_cfg_free(cfg);

    static const struct {
        const char *extra, *says;
    } bad[] = {
        {"comm: {reduce: exact}\n", "bridge.micro_batch"},
        {"comm: {reduce: slow}\n", "known: fast, exact"},
        {"comm: {kind: nccl}\n", "needs backend: cuda"},
        {"comm: {kind: mpi, shards: 4}\n", "shards"},
        {"comm: mpi\n", "must be a map"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        pnn_trainer *tr = NULL;
        pnn_status st = pnn_trainer_create(pnn_test_parse(pnn_test_vowels_yaml(yaml, sizeof yaml, bad[i].extra)), ".", &tr);
        ck_assert_msg(st == PNN_ERR_CONFIG, "%s: %d %s", bad[i].extra, st, pnn_last_error());
        ck_assert_msg(strstr(pnn_last_error(), "test.yaml:") && strstr(pnn_last_error(), bad[i].says), "%s: %s",
                      bad[i].extra, pnn_last_error());
    }
}
END_TEST

static void train_epoch(const char *extra, float *params, int64_t cap, pnn_eval_result *ev) {
    char yaml[2048];
    pnn_trainer *tr;
    ck_assert_msg(pnn_trainer_create(pnn_test_parse(pnn_test_vowels_yaml(yaml, sizeof yaml, extra)), ".", &tr) == PNN_OK, "%s",
                  pnn_last_error());
    ck_assert_int_eq(pnn_trainer_run(tr), PNN_OK);
    ck_assert_int_le(pnn_dp_param_floats(tr->net), cap);
    ck_assert_int_eq(pnn_dp_pack(tr->net, 0, params), PNN_OK);
    *ev = tr->last_device;
    pnn_trainer_free(tr);
}

/* One process, exact mode: each shard's gradient apart, summed in double in shard order. On an
 * ideal device that is fast mode's gradient up to rounding, and repeatable bit for bit. */
START_TEST(exact_mode_in_one_process_computes_the_gradient) {
    static float fast[4096], exact[4096], again[4096];
    pnn_eval_result ef, ee, ea;
    train_epoch("bridge: {micro_batch: 4}\n", fast, 4096, &ef);
    train_epoch("bridge: {micro_batch: 4}\ncomm: {reduce: exact}\n", exact, 4096, &ee);
    train_epoch("bridge: {micro_batch: 4, schedule: sequential}\ncomm: {reduce: exact}\n", again, 4096, &ea);
    int64_t n = 10 * 12 + 10 + 10 * 10 + 10 + 1;
    double worst = 0, scale = 0;
    for (int64_t i = 0; i < n; i++) {
        worst = fmax(worst, fabs((double)fast[i] - exact[i]));
        scale = fmax(scale, fabs((double)fast[i]));
    }
    ck_assert_msg(worst / scale < 1e-4, "exact vs fast: %g relative", worst / scale);
    ck_assert_int_eq(memcmp(exact, again, (size_t)n * sizeof(float)), 0);
    ck_assert(ee.n == 49 && ee.acc == ea.acc && ee.loss == ea.loss);
    ck_assert(fabs(ee.acc - ef.acc) <= 2.0 / 49);
}
END_TEST

Suite *train_dp_suite(void) {
    Suite *s = suite_create("train_dp");
    TCase *tc = tcase_create("train_dp");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, exact_plan_covers_the_batch_in_order);
    tcase_add_test(tc, noise_positions_are_disjoint);
    tcase_add_test(tc, gradients_pack_and_unpack_in_parameter_order);
    tcase_add_test(tc, device_templates_and_counters);
    tcase_add_test(tc, comm_config_keys);
    tcase_add_test(tc, exact_mode_in_one_process_computes_the_gradient);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    return pnn_test_run(train_dp_suite());
}
