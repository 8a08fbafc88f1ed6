/* Time for measurements: a monotonic clock in seconds, and the median of a sample (which sorts
 * it), as benchmarks and timing reports use them. */
#ifndef PNN_CLOCK_H
#define PNN_CLOCK_H

#include <stdlib.h>
#include <time.h>

#include "pnn/status.h"

static inline double pnn_now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static inline int pnn_cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Sleeps s seconds (nothing for s <= 0, at most a day), in slices that look at
 * pnn_interrupt_requested(): PNN_ERR_INTERRUPTED when a stop was asked for, PNN_ERR_INVALID when
 * the clock fails for any reason but a signal (never a busy loop). Implemented in base/clock.c. */
pnn_status pnn_sleep_s(double s);

/* Sorts x[0..n) ascending and returns its median (0 when n is 0). */
static inline double pnn_median(double *x, size_t n) {
    if (!n) return 0;
    qsort(x, n, sizeof *x, pnn_cmp_double);
    return n % 2 ? x[n / 2] : 0.5 * (x[n / 2 - 1] + x[n / 2]);
}

#endif
