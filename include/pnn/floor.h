/* The machine's ceilings, measured through a backend (host/floor.c): the rate of its GEMM at a
 * given shape and the bandwidth of a streaming update, the floor that throughput figures are
 * fractions of (pnn bench --suite, benchmarks/bench_floor.c). */
#ifndef PNN_FLOOR_H
#define PNN_FLOOR_H

#include <stddef.h>

#include "pnn/backend.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Best GFLOP/s of C[m, n] = A[m, k] B[k, n] (B transposed when trans_b) over repetitions lasting
 * at least min_s seconds (and at least 3). 0 when the backend could not allocate. */
double pnn_floor_gemm_gflops(const pnn_backend *be, int64_t m, int64_t n, int64_t k, int trans_b, double min_s);
/* Best GB/s of y = a x + b y over two arrays of `floats` each (counted as 3 streams: read x and y,
 * write y). 0 when the backend could not allocate. */
double pnn_floor_stream_gbs(const pnn_backend *be, int64_t floats, double min_s);
/* The CPU's model name from /proc/cpuinfo ("unknown" where there is none), for reports. */
void pnn_floor_cpu_model(char *buf, size_t cap);

#ifdef __cplusplus
}
#endif
#endif
