/* The circuit system's ops, CPU against CUDA (tests/test_circuit.c checks the CPU kernels
 * against double references): the drive and its gradient, forward with and without a tape, and
 * the VJP. */
#include <math.h>

#include "kernels/systems/circuit/circuit_ops.h"
#include "tests/backend_ops/harness.h"

/* batch, segments, steps, x_dim, y_dim, interleave: odd sizes, y_dim above and below segments,
 * a batch past one block of threads, and a long drive (S = 256) */
static const int64_t circuit_shapes[][6] = {
    {37, 16, 20, 8, 16, 1}, {5, 7, 3, 3, 21, 0}, {300, 33, 4, 20, 7, 1}, {1, 2, 1, 1, 1, 0}, {256, 256, 2, 128, 64, 1}};

static void case_circuit(run_ctx *r, int v) {
    const int64_t *s = circuit_shapes[v];
    const pnn_circuit_ops *ops = pnn_circuit_ops_for(r->be);
    pnn_circuit_params p = {.batch = s[0], .segments = s[1], .steps = s[2], .x_dim = s[3], .y_dim = s[4],
                            .interleave = (int)s[5], .dt = 0.02f, .w0 = 6.2831853f, .qf = 4.0f, .alpha = 20.0f,
                            .kappa = 2.0f};
    int64_t nx = p.batch * p.x_dim, nt = p.segments - p.x_dim, nu = p.batch * p.segments, ny = p.batch * p.y_dim;
    /* inputs beyond the rails too, so the clip and its gradient are compared */
    float *x = dev_random(r, nx, -1.3f, 1.3f, 150), *theta = dev_random(r, nt, -1.3f, 1.3f, 151);
    float *u = dev_filled(r, nu, NAN), *y = dev_filled(r, ny, NAN), *y2 = dev_filled(r, ny, NAN);
    float *tape = dev_filled(r, (int64_t)ops->tape_floats(&p), NAN);
    float *dy = dev_random(r, ny, -1, 1, 152), *du = dev_filled(r, nu, NAN), *dx = dev_filled(r, nx, NAN);
    float *dtheta = dev_random(r, nt, -1, 1, 153);
    ops->drive(r->ctx, &p, x, theta, u);
    ops->forward(r->ctx, &p, u, y, tape);
    ops->forward(r->ctx, &p, u, y2, NULL);
    ops->vjp(r->ctx, &p, u, tape, dy, du);
    ops->drive_backward(r->ctx, &p, x, theta, du, dx, dtheta);
    output(r, "u", u, nu);
    output(r, "y", y, ny);
    output(r, "y_without_tape", y2, ny);
    output(r, "tape", tape, (int64_t)ops->tape_floats(&p)); /* both backends: (v, w) per step, rows contiguous */
    output(r, "du", du, nu);
    output(r, "dx", dx, nx);
    output(r, "dtheta", dtheta, nt);
}

PNN_BACKEND_OPS_CASES(circuit,
    {"circuit B=37 S=16", case_circuit, 0, 1e-4},   {"circuit B=5 S=7 concat", case_circuit, 1, 1e-4},
    {"circuit B=300 S=33", case_circuit, 2, 1e-4},  {"circuit B=1 S=2", case_circuit, 3, 1e-4},
    {"circuit B=256 S=256", case_circuit, 4, 1e-4})
