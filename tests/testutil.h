/* Helpers shared by the Check suites: tolerance comparison that prints the first mismatches,
 * random tensors from the project RNG, and finite-difference gradient checks. */
#ifndef PNN_TESTUTIL_H
#define PNN_TESTUTIL_H

#include <stddef.h>
#include <stdint.h>

#include <check.h>

#include "pnn/config.h"

/* 1 when |got - want| <= atol + rtol * |want| everywhere; otherwise prints the first few
 * mismatches (with `what`) and returns 0. */
int pnn_test_allclose(const char *what, const float *got, const double *want, int64_t n, double atol,
                      double rtol);
/* Fills x with U(lo, hi) from (seed, stream). */
void pnn_test_uniform(float *x, int64_t n, float lo, float hi, uint64_t seed, uint64_t stream);
/* max |a - b| / max(1e-12, max |b|): the normalized error used to compare backends. */
double pnn_test_norm_err(const float *a, const double *b, int64_t n);
/* n floats (at least one) of host memory, checked; the same filled with NaN (so that reads of
 * unwritten memory show), or with U(lo, hi) from (seed, stream); n zeroed doubles */
float *pnn_test_floats(size_t n);
float *pnn_test_nan_floats(size_t n);
float *pnn_test_random_floats(size_t n, float lo, float hi, uint64_t seed, uint64_t stream);
double *pnn_test_doubles(size_t n);
/* sum a[i] b[i] in double */
double pnn_test_dot(const float *a, const float *b, size_t n);

/* Runs every test of s and returns the exit status for main (0 when all passed). */
int pnn_test_run(Suite *s);

/* Parses a YAML config (named test.yaml in messages); fails the test on error. */
pnn_cfg *pnn_test_parse(const char *yaml);
/* A vowels training config with a 10-oscillator ideal device, `extra` appended (top-level keys). */
const char *pnn_test_vowels_yaml(char *buf, size_t cap, const char *extra);

#endif
