/* A backend op that fails (as a GPU op does: asynchronously, its output unwritten, only the
 * backend's status telling) must end a training run or an evaluation with that failure, wherever
 * in the run it happens: in the forward or backward pass, the loss, the update, a device
 * request or the test. Shown without a GPU through the test-only faulty CPU backend. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pnn/pnn.h"
#include "tests/testutil.h"

static const char *const ops[] = {"gemm",  "to_host",     "from_host",    "copy",       "fill",
                                  "axpby", "softmax_xent", "adam_update", "rng_normal", "count_nonfinite",
                                  "add_bias", "act_forward", "act_backward"};

/* Trains one epoch (and tests) with op failing after `after` calls: the status, and the calls
 * made. A tanh layer calls act_*; a noisy device and twin draw random numbers (rng_normal). */
static pnn_status run(const char *op, int64_t after, int64_t *calls) {
    char yaml[2048];
    snprintf(yaml, sizeof yaml,
             "data: {set: vowels, path: %s/data/vowels_hillenbrand_women.csv}\n"
             "network:\n"
             "  - {kind: linear, name: enc, out: 10}\n"
             "  - {kind: tanh}\n"
             "  - {kind: physical, name: osc, device: 'sim:oscillator?n=10&nt=6', outputs: 'last:7'}\n"
             "  - {kind: scale, init: 5}\n"
             "batch: 16\nepochs: 1\nseed: 3\noptimizer: {kind: adam, lr: 0.01}\nbackend: 'faulty:%s:%lld'\n",
             PNN_SOURCE_DIR, op, (long long)after);
    pnn_trainer *tr;
    pnn_status st = pnn_trainer_create(pnn_test_parse(yaml), ".", &tr);
    ck_assert_msg(st == PNN_OK, "%s", pnn_last_error());
    st = pnn_trainer_run(tr);
    if (st == PNN_OK) st = pnn_trainer_evaluate(tr, PNN_PASS_EVAL_DEVICE, &tr->last_device);
    *calls = pnn_backend_faulty_calls(tr->be);
    pnn_trainer_free(tr);
    return st;
}

/* For every op, failures early, in the middle and at the last call all surface. */
START_TEST(every_op_failure_ends_the_run) {
    const char *op = ops[_i];
    int64_t total;
    char msg[256];
    ck_assert_msg(run(op, INT64_MAX / 2, &total) == PNN_OK, "%s: clean run failed: %s", op, pnn_last_error());
    ck_assert_msg(total > 0, "the test network never calls %s", op);
    const int64_t at[] = {0, 1, total / 3, total / 2, total - 1};
    for (size_t k = 0; k < sizeof at / sizeof at[0]; k++) {
        int64_t calls;
        pnn_status st = run(op, at[k], &calls);
        snprintf(msg, sizeof msg, "injected failure of backend op %s", op);
        ck_assert_msg(st == PNN_ERR_CUDA && strstr(pnn_last_error(), msg),
                      "%s failing after %lld of %lld calls gave status %d: %s", op, (long long)at[k],
                      (long long)total, st, pnn_last_error());
    }
}
END_TEST

/* The test-only switch itself: a bad name or op is refused, and a CLI name reaches it. */
START_TEST(faulty_backend_names) {
    const pnn_backend *be;
    ck_assert_int_eq(pnn_backend_get("faulty:gemm:3", &be), PNN_OK);
    ck_assert_int_eq(pnn_backend_faulty_calls(be), 0);
    ck_assert_int_eq(pnn_backend_faulty_calls(pnn_backend_cpu()), -1);
    ck_assert_int_eq(pnn_backend_get("faulty:gemm", &be), PNN_ERR_INVALID);
    ck_assert_int_eq(pnn_backend_get("faulty:gemm:-1", &be), PNN_ERR_INVALID);
    ck_assert_int_eq(pnn_backend_get("faulty:osc_forward:3", &be), PNN_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(pnn_last_error(), "cannot be made to fail"));
    ck_assert_int_eq(pnn_backend_status(pnn_backend_cpu()), PNN_OK);
}
END_TEST

int main(void) {
    Suite *s = suite_create("faults");
    TCase *tc = tcase_create("faults");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, every_op_failure_ends_the_run, 0, (int)(sizeof ops / sizeof ops[0]));
    tcase_add_test(tc, faulty_backend_names);
    suite_add_tcase(s, tc);
    return pnn_test_run(s);
}
