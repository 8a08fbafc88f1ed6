/* Shared test helpers (see testutil.h). */
#include "testutil.h"

#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pnn/rng.h"

int pnn_test_allclose(const char *what, const float *got, const double *want, int64_t n, double atol,
                      double rtol) {
    int64_t bad = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - want[i]);
        if (!(d <= atol + rtol * fabs(want[i]))) {
            if (bad < 5)
                fprintf(stderr, "%s[%lld]: got %.9g want %.9g (diff %.3g)\n", what, (long long)i,
                        got[i], want[i], d);
            bad++;
        }
    }
    if (bad) fprintf(stderr, "%s: %lld of %lld values out of tolerance\n", what, (long long)bad, (long long)n);
    return bad == 0;
}

void pnn_test_uniform(float *x, int64_t n, float lo, float hi, uint64_t seed, uint64_t stream) {
    pnn_rng_uniform(seed, stream, 0, n, x);
    for (int64_t i = 0; i < n; i++) x[i] = lo + (hi - lo) * x[i];
}

double pnn_test_norm_err(const float *a, const double *b, int64_t n) {
    double num = 0, den = 1e-12;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (d > num) num = d;
        if (fabs(b[i]) > den) den = fabs(b[i]);
    }
    return num / den;
}

pnn_cfg *pnn_test_parse(const char *yaml) {
    pnn_cfg *cfg = NULL;
    ck_assert_msg(pnn_cfg_parse(yaml, strlen(yaml), "test.yaml", &cfg) == PNN_OK, "%s", pnn_last_error());
    ck_assert_ptr_nonnull(cfg);
    return cfg;
}

const char *pnn_test_vowels_yaml(char *buf, size_t cap, const char *extra) {
    snprintf(buf, cap,
             "data: {set: vowels, path: %s/data/vowels_hillenbrand_women.csv}\n"
             "network:\n"
             "  - {kind: linear, name: enc, out: 10}\n"
             "  - {kind: physical, name: osc, device: 'sim:oscillator?n=10&nt=6&mismatch=0&noise=0', outputs: "
             "'last:7'}\n"
             "  - {kind: scale, init: 5}\n"
             "batch: 16\nepochs: 1\nseed: 3\noptimizer: {kind: adam, lr: 0.01}\n%s",
             PNN_SOURCE_DIR, extra);
    return buf;
}

int pnn_test_run(Suite *s) {
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}

float *pnn_test_floats(size_t n) {
    float *x = malloc((n ? n : 1) * sizeof *x);
    ck_assert_ptr_nonnull(x);
    return x;
}

float *pnn_test_nan_floats(size_t n) {
    float *x = pnn_test_floats(n);
    for (size_t i = 0; i < n; i++) x[i] = NAN;
    return x;
}

float *pnn_test_random_floats(size_t n, float lo, float hi, uint64_t seed, uint64_t stream) {
    float *x = pnn_test_floats(n);
    pnn_test_uniform(x, (int64_t)n, lo, hi, seed, stream);
    return x;
}

double *pnn_test_doubles(size_t n) {
    double *x = calloc(n ? n : 1, sizeof *x);
    ck_assert_ptr_nonnull(x);
    return x;
}

double pnn_test_dot(const float *a, const float *b, size_t n) {
    double sum = 0;
    for (size_t i = 0; i < n; i++) sum += (double)a[i] * b[i];
    return sum;
}
