/* What the shg system's two files share: the simulated device (shg_sim.c, which also holds the
 * system's registry descriptor) and the analytic twin (shg_twin.c) read the same settings from a
 * URI and lay u = [x, theta] on the spectral bins the same way. */
#ifndef PNN_HWBRIDGE_SHG_H
#define PNN_HWBRIDGE_SHG_H

#include "kernels/systems/shg/shg_ops.h"
#include "pnn/system.h"

/* Largest K: 2^16 spectral bins (a pulse shaper has thousands of pixels at most). */
#define PNN_SHG_MAX_K 65536

/* The settings of the system that the twin needs too (the rest is the device's hidden physics). */
typedef struct pnn_shg_settings {
    int64_t k, x_dim, y_dim;
    int layout;        /* 0 concat, 1 interleave (shg.h, pnn_shg_bin_of) */
    pnn_shg_form form; /* auto already resolved */
    double noise;      /* relative detector noise */
    int64_t seed;
} pnn_shg_settings;

/* Reads k, x_dim, y_dim, layout, form, noise and seed from u, each range-checked. */
pnn_status pnn_shg_read_settings(pnn_uri *u, pnn_shg_settings *s);
/* The parameters of a batch of rows under these settings. */
pnn_shg_params pnn_shg_params_of(const pnn_shg_settings *s, int64_t rows);
/* bin_of [K] (int32, backend memory, released by the caller): the bin of each u_i. */
pnn_status pnn_shg_upload_layout(const pnn_backend *be, const pnn_shg_settings *s, int32_t **bin_of);

pnn_status pnn_shg_twin_create(pnn_device *dev, double noise, pnn_twin **out);

#endif
