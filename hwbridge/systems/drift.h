/* Slow drift of a simulated device's hidden parameters (PHYSICS.md, "drift"), shared by the
 * systems that drift: f(call) in [-1, 1], the mean of three sinusoids whose periods (around
 * `period` calls, from 0.5 to 1.5 times it) and phases are drawn once from the device seed. A
 * function of (seed, call index) alone, so a resumed run sees the same drift. */
#ifndef PNN_HWBRIDGE_DRIFT_H
#define PNN_HWBRIDGE_DRIFT_H

#include <math.h>
#include <stdint.h>

#include "pnn/rng.h"

typedef struct pnn_sim_drift {
    double period[3], phase[3];
} pnn_sim_drift;

#define PNN_SIM_DRIFT_TWO_PI 6.283185307179586

/* stream: the system's own name for its drift draws, e.g. "sim.circuit.drift" */
static inline void pnn_sim_drift_init(pnn_sim_drift *d, uint64_t seed, const char *stream, double period) {
    float r[6];
    pnn_rng_uniform(seed, pnn_rng_stream(stream, 0), 0, 6, r);
    for (int k = 0; k < 3; k++) {
        d->period[k] = period * (0.5 + r[k]);
        d->phase[k] = PNN_SIM_DRIFT_TWO_PI * r[3 + k];
    }
}

static inline double pnn_sim_drift_at(const pnn_sim_drift *d, uint64_t call) {
    double f = 0;
    for (int k = 0; k < 3; k++) f += sin(PNN_SIM_DRIFT_TWO_PI * (double)call / d->period[k] + d->phase[k]);
    return f / 3;
}

#endif
