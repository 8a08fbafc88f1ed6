/* What the oscillator system's two files share: the simulated device (oscillator_sim.c, which
 * also holds the system's registry descriptor) and the analytic twin (oscillator_twin.c). */
#ifndef PNN_HWBRIDGE_OSCILLATOR_H
#define PNN_HWBRIDGE_OSCILLATOR_H

#include "pnn/system.h"

/* Largest n: theta = n*n + n floats must stay within PNN_DEVICE_MAX_THETA_DIM. */
#define PNN_OSC_MAX_N 16383

pnn_status pnn_osc_twin_create(pnn_device *dev, double noise, pnn_twin **out);

#endif
