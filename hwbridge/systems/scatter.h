/* What the scattering system's two files share: the simulated device (scatter_sim.c, which also
 * holds the system's registry descriptor and the parts below) and the analytic twin
 * (scatter_twin.c). Both know the nominal medium, drawn from the device seed; only the device
 * adds its hidden errors to it. */
#ifndef PNN_HWBRIDGE_SCATTER_H
#define PNN_HWBRIDGE_SCATTER_H

#include "pnn/system.h"

/* Sizes: each scattering matrix holds at most 2^26 complex numbers (512 MiB). */
#define PNN_SCATTER_MAX_DIM 16384
#define PNN_SCATTER_MAX_MODES 65536
#define PNN_SCATTER_MAX_MATRIX ((int64_t)1 << 26)

#define PNN_SCATTER_KEYS \
    "x_dim=64, modes=256, y_dim=16, w_error=0.05, gamma=0.1, mismatch=1, noise=0.01, full_well=4, seed=0"

/* A scattering system's settings, as its URI gives them (defaults above). */
typedef struct pnn_scatter_settings {
    int64_t x_dim, modes, y_dim, seed;
    double w_error;   /* relative rms error of W1 and W2, times mismatch */
    double gamma;     /* scale of the modulator's hidden gamma, times mismatch */
    double mismatch;
    double noise;     /* camera read noise: absolute, in units of y */
    double full_well; /* y clips at it (hard); 0 = no well */
} pnn_scatter_settings;

/* Reads and range-checks the system's keys of u (not the generic sim: keys). */
pnn_status pnn_scatter_read_settings(pnn_uri *u, pnn_scatter_settings *s);

/* The nominal medium of a device, in backend memory: b1 = W1^T (x_dim x modes complex), b2 =
 * W2^T (modes x y_dim complex), complex Gaussian with E|W1|^2 = 1/x_dim and E|W2|^2 = 1/modes
 * (so that E y = |x|^2 / x_dim), drawn from the seed. error > 0 adds the device's hidden
 * errors: each matrix plus error times an independent draw of the same law. */
pnn_status pnn_scatter_draw_media(const pnn_backend *be, const pnn_scatter_settings *s, double error, float *b1,
                                  float *b2);

/* The two exact forms of the map (kernels/systems/scatter/scatter.h), chosen per call by the
 * number of rows: the fields form below 2 x_dim y_dim / (x_dim + 2 y_dim) rows, where it costs
 * fewer flops, the transfer-matrix form from there on. */
int pnn_scatter_use_transfer(const pnn_scatter_settings *s, int64_t rows);
/* For tests: 0 picks by rows (the default), 1 forces the fields form, 2 the transfer form. */
void pnn_scatter_set_regime(int regime);

/* The fields of a batch: u = x b1 (rows x modes), z = u w (rows x y_dim), w = diag(phi) b2. */
void pnn_scatter_fields(const pnn_backend *be, const pnn_scatter_settings *s, int64_t rows, const float *x,
                        const float *b1, const float *w, float *u, float *z);
/* The transfer matrix t = b1 w (x_dim x y_dim complex). */
void pnn_scatter_transfer(const pnn_backend *be, const pnn_scatter_settings *s, const float *b1, const float *w,
                          float *t);
/* z = x t (rows x y_dim complex) for real x. */
void pnn_scatter_through(const pnn_backend *be, const pnn_scatter_settings *s, int64_t rows, const float *x,
                         const float *t, float *z);

/* Grows the backend buffer *buf to hold rows x per_row floats (*cap: the rows it holds). */
pnn_status pnn_scatter_grow(const pnn_backend *be, float **buf, int64_t *cap, int64_t rows, int64_t per_row);

pnn_status pnn_scatter_twin_create(pnn_device *dev, double noise, pnn_twin **out);

#endif
