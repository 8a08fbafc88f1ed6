/* The base: Philox known answers, RNG streams and distributions, tensors, errors. */
#include <check.h>
#include <math.h>
#include <string.h>

#include "kernels/math/philox.h"
#include "pnn/pnn.h"
#include "tests/testutil.h"

/* Known-answer vectors of Philox4x32-10 (Random123's kat_vectors). */
START_TEST(philox_known_answers) {
    static const uint32_t ctr[3][4] = {{0, 0, 0, 0},
                                       {0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff},
                                       {0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344}};
    static const uint32_t key[3][2] = {{0, 0}, {0xffffffff, 0xffffffff}, {0xa4093822, 0x299f31d0}};
    static const uint32_t want[3][4] = {{0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8},
                                        {0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd},
                                        {0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}};
    for (int i = 0; i < 3; i++) {
        uint32_t out[4];
        pnn_philox4x32(ctr[i], key[i], out);
        for (int j = 0; j < 4; j++)
            ck_assert_msg(out[j] == want[i][j], "vector %d word %d: %08x want %08x", i, j, out[j], want[i][j]);
    }
}
END_TEST

START_TEST(rng_streams_are_reproducible_and_offsettable) {
    float a[103], b[103], c[50];
    pnn_rng_uniform(7, 3, 0, 103, a);
    pnn_rng_uniform(7, 3, 0, 103, b);
    ck_assert_int_eq(memcmp(a, b, sizeof a), 0);
    pnn_rng_uniform(7, 3, 53, 50, c); /* any offset continues the same sequence */
    ck_assert_int_eq(memcmp(a + 53, c, sizeof c), 0);
    pnn_rng_uniform(7, 4, 0, 103, b);
    ck_assert_int_ne(memcmp(a, b, sizeof a), 0);
    pnn_rng_normal(7, 3, 0, 103, a);
    pnn_rng_normal(7, 3, 51, 50, c);
    ck_assert_int_eq(memcmp(a + 51, c, sizeof c), 0);
    ck_assert(pnn_rng_stream("a", 0) != pnn_rng_stream("b", 0));
    ck_assert(pnn_rng_stream("a", 0) != pnn_rng_stream("a", 1));
}
END_TEST

START_TEST(rng_distributions_have_their_moments) {
    enum { N = 200000 };
    static float u[N], z[N];
    pnn_rng_uniform(1, 2, 0, N, u);
    pnn_rng_normal(1, 2, 0, N, z);
    double su = 0, sz = 0, sz2 = 0, sz4 = 0;
    for (int i = 0; i < N; i++) {
        ck_assert(u[i] > 0.0f && u[i] <= 1.0f);
        su += u[i];
        sz += z[i], sz2 += (double)z[i] * z[i], sz4 += pow(z[i], 4);
    }
    ck_assert_double_eq_tol(su / N, 0.5, 0.005);
    ck_assert_double_eq_tol(sz / N, 0.0, 0.01);
    ck_assert_double_eq_tol(sz2 / N, 1.0, 0.01);
    ck_assert_double_eq_tol(sz4 / N, 3.0, 0.06);
    int64_t perm[1000], seen[1000] = {0};
    pnn_rng_permutation(5, 9, 1000, perm);
    int moved = 0;
    for (int i = 0; i < 1000; i++) {
        ck_assert(perm[i] >= 0 && perm[i] < 1000);
        seen[perm[i]]++;
        moved += perm[i] != i;
    }
    for (int i = 0; i < 1000; i++) ck_assert_int_eq(seen[i], 1);
    ck_assert_int_gt(moved, 900);
}
END_TEST

START_TEST(tensors_check_shapes) {
    const pnn_backend *be = pnn_backend_cpu();
    pnn_tensor t;
    ck_assert_int_eq(pnn_tensor_init2(&t, be, 3, 5), PNN_OK);
    ck_assert_int_eq(t.numel, 15);
    for (int i = 0; i < 15; i++) ck_assert(t.data[i] == 0.0f);
    ck_assert_int_eq(pnn_tensor_check2(&t, 3, 5, "x"), PNN_OK);
    ck_assert_int_eq(pnn_tensor_check2(&t, 3, 4, "weights of fc1"), PNN_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(pnn_last_error(), "weights of fc1"));
    float *before = t.data;
    ck_assert_int_eq(pnn_tensor_reshape2(&t, 5, 3), PNN_OK); /* fits: no reallocation */
    ck_assert_ptr_eq(t.data, before);
    ck_assert_int_eq(pnn_tensor_reshape2(&t, 10, 10), PNN_OK);
    ck_assert_int_eq(t.numel, 100);
    float host[100];
    for (int i = 0; i < 100; i++) host[i] = (float)i;
    ck_assert_int_eq(pnn_tensor_from_host(&t, host, 100), PNN_OK);
    ck_assert_int_eq(pnn_tensor_from_host(&t, host, 101), PNN_ERR_INVALID);
    int64_t bad_shape[2] = {-1, 4};
    pnn_tensor u;
    ck_assert_int_eq(pnn_tensor_init(&u, be, 2, bad_shape), PNN_ERR_INVALID);
    int64_t huge[2] = {INT64_C(1) << 30, INT64_C(1) << 30};
    ck_assert_int_eq(pnn_tensor_init(&u, be, 2, huge), PNN_ERR_INVALID);
    pnn_tensor v;
    int64_t shape[1] = {10};
    ck_assert_int_eq(pnn_tensor_view(&v, be, t.data + 5, 1, shape), PNN_OK);
    ck_assert(v.data[0] == 5.0f);
    ck_assert_int_eq(pnn_tensor_reshape2(&v, 20, 20), PNN_ERR_INVALID);
    pnn_tensor_free(&v); /* a view frees nothing */
    ck_assert(t.data[5] == 5.0f);
    pnn_tensor_free(&t);
    float nan_data[4] = {1, NAN, INFINITY, 2};
    ck_assert_int_eq(pnn_count_nonfinite(nan_data, 4), 2);
}
END_TEST

static pnn_status inner(void) { return PNN_ERROR(PNN_ERR_FORMAT, "bad value %d", 42); }
static pnn_status outer(void) {
    PNN_TRY(inner());
    return PNN_OK;
}

START_TEST(errors_carry_message_and_trail) {
    pnn_error_clear();
    ck_assert_str_eq(pnn_last_error(), "");
    ck_assert_int_eq(outer(), PNN_ERR_FORMAT);
    ck_assert_str_eq(pnn_last_error(), "bad value 42");
    ck_assert_ptr_nonnull(strstr(pnn_error_trail(), "test_base.c"));
    ck_assert_ptr_nonnull(strstr(pnn_error_trail(), " <- "));
    pnn_error_prefix(PNN_ERR_FORMAT, "reading %s: ", "x.csv");
    ck_assert_str_eq(pnn_last_error(), "reading x.csv: bad value 42");
    ck_assert_str_eq(pnn_status_name(PNN_ERR_CONFIG), "bad configuration");
    const pnn_backend *be;
    /* "cuda" works only in a CUDA build on a machine with a GPU; elsewhere it says what to use */
    pnn_status cuda = pnn_backend_get("cuda", &be);
    ck_assert(cuda == PNN_OK || cuda == PNN_ERR_UNSUPPORTED);
    if (cuda != PNN_OK) ck_assert_ptr_nonnull(strstr(pnn_last_error(), "use backend: cpu"));
    ck_assert_int_eq(pnn_backend_get("tpu", &be), PNN_ERR_INVALID);
    ck_assert_int_eq(pnn_backend_get("auto", &be), PNN_OK);
}
END_TEST

int main(void) {
    Suite *s = suite_create("base");
    TCase *tc = tcase_create("base");
    tcase_add_test(tc, philox_known_answers);
    tcase_add_test(tc, rng_streams_are_reproducible_and_offsettable);
    tcase_add_test(tc, rng_distributions_have_their_moments);
    tcase_add_test(tc, tensors_check_shapes);
    tcase_add_test(tc, errors_carry_message_and_trail);
    suite_add_tcase(s, tc);
    return pnn_test_run(s);
}
