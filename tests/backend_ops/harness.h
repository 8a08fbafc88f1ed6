/* The harness of tests/test_backend_ops.c that case files share: a case runs one op on one
 * backend and hands back named host copies of its outputs, which the harness compares with the
 * CPU's. The generic ops' cases are in test_backend_ops.c; a physical system's are in its own
 * file tests/backend_ops/NAME.c, which registers them with PNN_BACKEND_OPS_CASES (no line
 * elsewhere: CMake compiles every file of this folder into test_backend_ops). */
#ifndef PNN_TESTS_BACKEND_OPS_H
#define PNN_TESTS_BACKEND_OPS_H

#include <check.h>
#include <stdint.h>

#include "pnn/pnn.h"

#define MAX_OUTS 8
#define MAX_BUFS 24

typedef struct {
    const pnn_backend *be;
    const pnn_backend_i *ops;
    void *ctx;
    int is_cuda; /* the second backend, when it is CUDA (cases may switch its kernel paths) */
    const char *out_name[MAX_OUTS];
    float *out[MAX_OUTS];
    int64_t out_n[MAX_OUTS];
    int n_outs;
    void *bufs[MAX_BUFS];
    int n_bufs;
} run_ctx;

/* backend buffers, freed after the case: uninitialised, U(lo, hi) from stream (the same numbers
 * on both backends), or filled with value */
float *dev_buffer(run_ctx *r, int64_t n);
float *dev_random(run_ctx *r, int64_t n, float lo, float hi, uint64_t stream);
float *dev_filled(run_ctx *r, int64_t n, float value);
/* a host array of U(lo, hi) from stream (the caller frees it) */
float *host_random(int64_t n, float lo, float hi, uint64_t stream);
/* one output of the case, compared with the CPU's of the same name and order */
void output(run_ctx *r, const char *name, const float *dev, int64_t n);

typedef struct op_case {
    const char *name;
    void (*run)(run_ctx *r, int variant);
    int variant;
    double tol; /* normalized error allowed: max |got - cpu| / max |cpu| */
} op_case;

void pnn_backend_ops_register(const op_case *cases, int n);
/* In a case file: PNN_BACKEND_OPS_CASES(name, {"label", run, variant, tol}, ...); */
#define PNN_BACKEND_OPS_CASES(tag, ...)                                                             \
    static const op_case tag##_cases[] = {__VA_ARGS__};                                             \
    __attribute__((constructor)) static void tag##_register(void) {                                 \
        pnn_backend_ops_register(tag##_cases, (int)(sizeof tag##_cases / sizeof tag##_cases[0]));   \
    }

#endif
