/* What the circuit system's two files share: the simulated device (circuit_sim.c, which also
 * holds the system's registry descriptor and reads its keys) and the analytic twin
 * (circuit_twin.c). */
#ifndef PNN_HWBRIDGE_CIRCUIT_H
#define PNN_HWBRIDGE_CIRCUIT_H

#include "kernels/systems/circuit/circuit_ops.h"
#include "pnn/system.h"

/* Limits of the keys: segments (x_dim + theta_dim) and the steps of a run. */
#define PNN_CIRCUIT_MAX_SEGMENTS ((int64_t)1 << 20)
#define PNN_CIRCUIT_MAX_RUN_STEPS ((int64_t)1 << 30)
/* the stability bound on the step: w0 dt <= this */
#define PNN_CIRCUIT_MAX_W0_DT 0.2

/* A circuit's settings as its URI gives them. */
typedef struct pnn_circuit_settings {
    pnn_circuit_params p;  /* the nominal circuit (batch 0) */
    double T;              /* duration of a run: segments * steps * dt */
    double mismatch;       /* scale of the hidden differences; 0 = the ideal circuit */
    double drift;          /* relative amplitude of w0's drift over calls (times mismatch) */
    double drift_period;   /* calls: the drift's time scale */
    double noise;          /* additive noise on every output sample, in drive units */
    int64_t seed;
} pnn_circuit_settings;

/* Reads and range-checks the keys of sim:circuit (the device and, from info.system_uri, the
 * twin), including the step bound w0 dt <= 0.2. Marks them used. */
pnn_status pnn_circuit_read_settings(pnn_uri *u, pnn_circuit_settings *out);

pnn_status pnn_circuit_twin_create(pnn_device *dev, double noise, pnn_twin **out);

#endif
