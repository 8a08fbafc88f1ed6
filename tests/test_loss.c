/* Losses: values and gradients of cross-entropy and MSE against double references and finite
 * differences of the mean loss, and the rejection of NaN outputs and bad labels. */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "pnn/pnn.h"
#include "tests/testutil.h"

static const pnn_backend *cpu(void) { return pnn_backend_cpu(); }

START_TEST(kinds_parse) {
    pnn_loss_kind k;
    ck_assert_int_eq(pnn_loss_kind_parse("cross_entropy", &k), PNN_OK);
    ck_assert_int_eq(k, PNN_LOSS_XENT);
    ck_assert_int_eq(pnn_loss_kind_parse("xent", &k), PNN_OK);
    ck_assert_int_eq(k, PNN_LOSS_XENT);
    ck_assert_int_eq(pnn_loss_kind_parse("mse", &k), PNN_OK);
    ck_assert_int_eq(k, PNN_LOSS_MSE);
    ck_assert_int_eq(pnn_loss_kind_parse("hinge", &k), PNN_ERR_INVALID);
    ck_assert_msg(strstr(pnn_last_error(), "hinge") && strstr(pnn_last_error(), "mse"), "%s", pnn_last_error());
}
END_TEST

/* Mean loss over rows in double, from pnn_loss_compute (used for the finite differences). */
static double mean_loss(pnn_loss_kind kind, const pnn_tensor *y, const pnn_tensor *t, pnn_tensor *scratch) {
    double sum, correct;
    ck_assert_msg(pnn_loss_compute(kind, y, t, NULL, scratch, &sum, &correct) == PNN_OK, "%s", pnn_last_error());
    return sum / (double)pnn_tensor_rows(y);
}

/* Loss sum, correct count and dy = d(mean loss)/dy against a double reference, and dy against
 * central differences of the mean loss. */
static void check_loss(pnn_loss_kind kind, int64_t rows, int64_t cols, uint64_t stream) {
    pnn_tensor y, t, dy, scratch;
    memset(&scratch, 0, sizeof scratch); /* an empty scratch is set up on first use */
    int64_t tcols = kind == PNN_LOSS_XENT ? 1 : cols;
    ck_assert_int_eq(pnn_tensor_init2(&y, cpu(), rows, cols), PNN_OK);
    ck_assert_int_eq(pnn_tensor_init2(&t, cpu(), rows, tcols), PNN_OK);
    ck_assert_int_eq(pnn_tensor_init2(&dy, cpu(), rows, cols), PNN_OK);
    pnn_test_uniform(y.data, y.numel, -3, 3, 1, stream);
    pnn_test_uniform(t.data, t.numel, kind == PNN_LOSS_XENT ? 0 : -3, kind == PNN_LOSS_XENT ? (float)cols : 3,
                     2, stream);
    double want_sum = 0, want_correct = 0, *want_dy = calloc((size_t)y.numel, sizeof *want_dy);
    for (int64_t r = 0; r < rows; r++) {
        const float *z = y.data + r * cols;
        if (kind == PNN_LOSS_XENT) {
            t.data[r] = floorf(t.data[r] * 0.999f);
            int64_t label = (int64_t)t.data[r], best = 0;
            double zmax = z[0], s = 0;
            for (int64_t c = 1; c < cols; c++)
                if (z[c] > z[best]) best = c, zmax = z[c];
            for (int64_t c = 0; c < cols; c++) s += exp(z[c] - zmax);
            want_sum += zmax + log(s) - z[label];
            want_correct += best == label;
            for (int64_t c = 0; c < cols; c++)
                want_dy[r * cols + c] = (exp(z[c] - zmax) / s - (c == label)) / (double)rows;
        } else {
            for (int64_t c = 0; c < cols; c++) {
                double d = (double)z[c] - t.data[r * cols + c];
                want_sum += d * d / (double)cols;
                want_dy[r * cols + c] = 2 * d / (double)cols / (double)rows;
            }
        }
    }
    double sum, correct;
    ck_assert_msg(pnn_loss_compute(kind, &y, &t, &dy, &scratch, &sum, &correct) == PNN_OK, "%s",
                  pnn_last_error());
    ck_assert_double_eq_tol(sum, want_sum, 1e-5 * (1 + fabs(want_sum)));
    ck_assert_double_eq(correct, want_correct);
    ck_assert(pnn_test_allclose("dy", dy.data, want_dy, y.numel, 1e-7, 1e-5));

    double *fd = calloc((size_t)y.numel, sizeof *fd);
    const float eps = 1e-2f;
    for (int64_t k = 0; k < y.numel; k++) {
        float orig = y.data[k];
        y.data[k] = orig + eps;
        double up = mean_loss(kind, &y, &t, &scratch);
        y.data[k] = orig - eps;
        double down = mean_loss(kind, &y, &t, &scratch);
        y.data[k] = orig;
        fd[k] = (up - down) / (2.0 * (double)eps);
    }
    ck_assert(pnn_test_allclose("dy vs finite differences", dy.data, fd, y.numel, 1e-4, 1e-2));
    free(fd), free(want_dy);
    pnn_tensor_free(&y), pnn_tensor_free(&t), pnn_tensor_free(&dy), pnn_tensor_free(&scratch);
}

START_TEST(cross_entropy_matches_reference_and_finite_differences) {
    check_loss(PNN_LOSS_XENT, 1, 1, 10);
    check_loss(PNN_LOSS_XENT, 7, 10, 11);
    check_loss(PNN_LOSS_XENT, 33, 7, 12);
    check_loss(PNN_LOSS_XENT, 129, 3, 13);
}
END_TEST

START_TEST(mse_matches_reference_and_finite_differences) {
    check_loss(PNN_LOSS_MSE, 1, 1, 20);
    check_loss(PNN_LOSS_MSE, 7, 10, 21);
    check_loss(PNN_LOSS_MSE, 33, 1, 22);
    check_loss(PNN_LOSS_MSE, 129, 3, 23);
}
END_TEST

START_TEST(scratch_is_reused_across_batch_sizes) {
    pnn_tensor y, t, scratch;
    float z[6] = {5, 0, 0, 0, 5, 0}, lab[3] = {0, 2, 1};
    ck_assert_int_eq(pnn_tensor_init2(&y, cpu(), 2, 3), PNN_OK);
    ck_assert_int_eq(pnn_tensor_init2(&t, cpu(), 2, 1), PNN_OK);
    ck_assert_int_eq(pnn_tensor_init2(&scratch, cpu(), 1, 1), PNN_OK);
    pnn_tensor_from_host(&y, z, 6);
    pnn_tensor_from_host(&t, lab, 2);
    double sum, correct;
    ck_assert_int_eq(pnn_loss_compute(PNN_LOSS_XENT, &y, &t, NULL, &scratch, &sum, &correct), PNN_OK);
    /* row 0 right with margin 5, row 1 wrong (label 2 against a 5 at 1) */
    double l0 = log(1 + 2 * exp(-5.0)), l1 = 5 + log(1 + 2 * exp(-5.0));
    ck_assert_double_eq_tol(sum, l0 + l1, 1e-5);
    ck_assert_double_eq(correct, 1);
    ck_assert_int_eq(pnn_tensor_reshape2(&y, 1, 3), PNN_OK);
    ck_assert_int_eq(pnn_tensor_reshape2(&t, 1, 1), PNN_OK);
    ck_assert_int_eq(pnn_loss_compute(PNN_LOSS_XENT, &y, &t, NULL, &scratch, &sum, &correct), PNN_OK);
    ck_assert_double_eq_tol(sum, l0, 1e-5);
    ck_assert_double_eq(correct, 1);
    /* large logits stay finite */
    float big[3] = {1000, -1000, 0};
    pnn_tensor_from_host(&y, big, 3);
    ck_assert_int_eq(pnn_loss_compute(PNN_LOSS_XENT, &y, &t, NULL, &scratch, &sum, &correct), PNN_OK);
    ck_assert(isfinite(sum) && sum < 1e-6);
    pnn_tensor_free(&y), pnn_tensor_free(&t), pnn_tensor_free(&scratch);
}
END_TEST

START_TEST(nonfinite_outputs_and_bad_labels_are_rejected) {
    pnn_tensor y, t, dy, scratch;
    ck_assert_int_eq(pnn_tensor_init2(&y, cpu(), 4, 3), PNN_OK);
    ck_assert_int_eq(pnn_tensor_init2(&t, cpu(), 4, 1), PNN_OK);
    ck_assert_int_eq(pnn_tensor_init2(&dy, cpu(), 4, 3), PNN_OK);
    ck_assert_int_eq(pnn_tensor_init2(&scratch, cpu(), 1, 1), PNN_OK);
    double sum, correct;
    y.data[1] = NAN, y.data[7] = INFINITY;
    ck_assert_int_eq(pnn_loss_compute(PNN_LOSS_XENT, &y, &t, &dy, &scratch, &sum, &correct), PNN_ERR_FORMAT);
    ck_assert_msg(strstr(pnn_last_error(), "2 NaN or Inf"), "%s", pnn_last_error());
    ck_assert_int_eq(pnn_loss_compute(PNN_LOSS_MSE, &y, &dy, NULL, &scratch, &sum, &correct), PNN_ERR_FORMAT);
    y.data[1] = y.data[7] = 0;
    static const float bad_labels[] = {3, -1, 1.5f, NAN};
    for (int i = 0; i < 4; i++) {
        t.data[2] = bad_labels[i];
        ck_assert_int_eq(pnn_loss_compute(PNN_LOSS_XENT, &y, &t, &dy, &scratch, &sum, &correct), PNN_ERR_FORMAT);
        ck_assert_msg(strstr(pnn_last_error(), "row 2") && strstr(pnn_last_error(), "[0, 3)"), "%s",
                      pnn_last_error());
    }
    t.data[2] = 2;
    ck_assert_int_eq(pnn_loss_compute(PNN_LOSS_XENT, &y, &t, &dy, &scratch, &sum, &correct), PNN_OK);
    ck_assert_double_eq_tol(sum, 4 * log(3.0), 1e-5);
    /* shapes: MSE targets must match y, XENT labels are one column, dy must match y */
    ck_assert_int_eq(pnn_loss_compute(PNN_LOSS_MSE, &y, &t, NULL, &scratch, &sum, &correct), PNN_ERR_INVALID);
    ck_assert_int_eq(pnn_tensor_reshape2(&dy, 3, 4), PNN_OK);
    ck_assert_int_eq(pnn_loss_compute(PNN_LOSS_XENT, &y, &t, &dy, &scratch, &sum, &correct), PNN_ERR_INVALID);
    pnn_tensor_free(&y), pnn_tensor_free(&t), pnn_tensor_free(&dy), pnn_tensor_free(&scratch);
}
END_TEST

int main(void) {
    Suite *s = suite_create("loss");
    TCase *tc = tcase_create("loss");
    tcase_add_test(tc, kinds_parse);
    tcase_add_test(tc, cross_entropy_matches_reference_and_finite_differences);
    tcase_add_test(tc, mse_matches_reference_and_finite_differences);
    tcase_add_test(tc, scratch_is_reused_across_batch_sizes);
    tcase_add_test(tc, nonfinite_outputs_and_bad_labels_are_rejected);
    suite_add_tcase(s, tc);
    return pnn_test_run(s);
}
