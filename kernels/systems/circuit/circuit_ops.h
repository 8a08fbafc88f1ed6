/* The circuit system's own ops (PHYSICS.md, "circuit"), one table per backend: the CPU kernels
 * in circuit_cpu.c, the CUDA kernels in circuit_cuda.cu. The simulated device and the analytic
 * twin (hwbridge/systems/circuit_*.c) reach them through pnn_circuit_ops_for(backend).
 *
 * A row's drive u has `segments` values, each held for `steps` RK4 steps of size dt; the circuit
 * starts at rest (v = v' = 0) and y_dim samples of v are taken, output j after step
 * floor((j + 1) segments steps / y_dim) (circuit.h). */
#ifndef PNN_CIRCUIT_OPS_H
#define PNN_CIRCUIT_OPS_H

#include <stddef.h>
#include <stdint.h>

#include "pnn/backend.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct pnn_circuit_params {
    int64_t batch;      /* B: rows, independent */
    int64_t segments;   /* S: drive values per row */
    int64_t steps;      /* RK4 steps per segment */
    int64_t x_dim;      /* drive values from x; the other segments - x_dim come from theta */
    int64_t y_dim;      /* samples of v per row, y_dim <= segments * steps */
    int interleave;     /* 1: x and theta interleaved over the segments, 0: x then theta */
    float dt;           /* step size */
    float w0, qf, alpha, kappa; /* the circuit's constants */
} pnn_circuit_params;

typedef struct pnn_circuit_ops {
    /* u [B, S] = x [B, x_dim] and theta [S - x_dim] placed on the segments by the layout, each
     * clipped to the drive's rails [-1, 1] */
    void (*drive)(void *ctx, const pnn_circuit_params *p, const float *x, const float *theta, float *u);
    /* through drive, given du [B, S]: dx = (du at x's segments) where x is inside the rails
     * (overwritten; may be NULL), dtheta += (du summed over rows) where theta is inside them */
    void (*drive_backward)(void *ctx, const pnn_circuit_params *p, const float *x, const float *theta,
                           const float *du, float *dx, float *dtheta);
    /* y [B, y_dim]: the circuit under drive u [B, S] from rest. tape (may be NULL) gets what
     * vjp needs, tape_floats(p) floats. */
    void (*forward)(void *ctx, const pnn_circuit_params *p, const float *u, float *y, float *tape);
    /* The exact vector-Jacobian product of the discrete map above at the taped point:
     * du [B, S] = (dy/du)^T dy (overwritten). */
    void (*vjp)(void *ctx, const pnn_circuit_params *p, const float *u, const float *tape, const float *dy,
                float *du);
    size_t (*tape_floats)(const pnn_circuit_params *p);
} pnn_circuit_ops;

/* The table for the backend's kernels (the CUDA one on a CUDA backend, else the CPU's). */
const pnn_circuit_ops *pnn_circuit_ops_for(const pnn_backend *be);

/* The CPU kernels: also the reference the CUDA ones are tested against. */
extern const pnn_circuit_ops pnn_circuit_cpu_ops;
void pnn_cpu_circuit_drive(void *ctx, const pnn_circuit_params *p, const float *x, const float *theta, float *u);
void pnn_cpu_circuit_drive_backward(void *ctx, const pnn_circuit_params *p, const float *x, const float *theta,
                                    const float *du, float *dx, float *dtheta);
void pnn_cpu_circuit_forward(void *ctx, const pnn_circuit_params *p, const float *u, float *y, float *tape);
void pnn_cpu_circuit_vjp(void *ctx, const pnn_circuit_params *p, const float *u, const float *tape,
                         const float *dy, float *du);
size_t pnn_cpu_circuit_tape_floats(const pnn_circuit_params *p);

#ifdef PNN_USE_CUDA
extern const pnn_circuit_ops pnn_circuit_cuda_ops;
#endif

#ifdef __cplusplus
}
#endif
#endif
