/* Fitting learned twins (host/twins/fit.c; `pnn twin fit`): measure a device at drawn inputs and
 * controls (or read a recording of earlier calls), then fit an MLP to the pairs by regression
 * with Adam, a validation split by device call and early stopping, and write the twin file. */
#ifndef PNN_TWIN_FIT_H
#define PNN_TWIN_FIT_H

#include <stdio.h>

#include "pnn/device.h"

#ifdef __cplusplus
extern "C" {
#endif

#define PNN_FIT_MAX_HIDDEN 15

typedef struct pnn_twin_fit_options {
    char kind[16];            /* "learned" (y) or "residual" (y minus the analytic twin's) */
    /* measuring (from a device) */
    int64_t samples;          /* rows measured in all */
    int64_t rows_per_call;    /* rows per device call; each call has its own theta */
    char x_dist[16];          /* "uniform": U(x_range) where finite, else N(0, x_scale); "normal": N(0, x_scale) */
    double x_scale;
    double theta_spread;      /* theta = centre + spread * rms(centre) * N(0, 1), clipped to theta_range */
    const float *theta_center;/* host, theta_dim floats; NULL: the analytic twin's initial theta, or the
                               * middle of theta_range */
    const float *x_pool;      /* host [x_pool_rows, x_dim]: x drawn from these rows (the task's data
                               * through the network's earlier layers) instead of x_dist; NULL: x_dist */
    int64_t x_pool_rows;
    /* the network and its fitting */
    int64_t hidden[PNN_FIT_MAX_HIDDEN];
    int n_hidden;
    char activation[16];      /* tanh, relu, sigmoid */
    double lr;
    int64_t batch;            /* rows per Adam step */
    int64_t max_epochs;
    int64_t patience;         /* epochs without a better validation NMSE before stopping */
    double val_frac;          /* the share of device calls held out */
    uint64_t seed;
    /* progress: phase "measure" (done, total calls) or "fit" (epoch, max_epochs, validation NMSE) */
    void (*progress)(void *user, const char *phase, int64_t done, int64_t total, double value);
    void *user;
    FILE *curve;              /* when set: CSV epoch,train_nmse,val_nmse,elapsed_s */
} pnn_twin_fit_options;

/* Defaults: learned, 4096 samples of 16 rows per call, uniform x, spread 0.5, hidden [128, 128]
 * tanh, lr 1e-3, batch 256, up to 300 epochs, patience 30, 20 % held out, seed 0. */
void pnn_twin_fit_defaults(pnn_twin_fit_options *o);

typedef struct pnn_twin_fit_report {
    int64_t device_calls, samples, train_rows, val_rows, params, epochs, best_epoch;
    double train_nmse, val_nmse;   /* of y, whatever the kind: sum (y - y_twin)^2 / sum (y - mean y)^2 */
    double analytic_val_nmse;      /* the analytic twin alone on the same held-out calls (NAN: none) */
    double measure_s, fit_s;
    double fit_samples_per_s;      /* rows through forward + backward + update per second */
} pnn_twin_fit_report;

/* Measures dev (wrap it in record: to keep the data) and fits; writes out_path atomically. */
pnn_status pnn_twin_fit_device(pnn_device *dev, const pnn_twin_fit_options *o, const char *out_path,
                               pnn_twin_fit_report *r);
/* Fits to the calls of a recording (record:FILE@URI of an earlier run or fit). When dev is not
 * NULL, the recording must be of a device like it (system, dims, system URI), else
 * PNN_ERR_CONFIG names both. be: where to fit. */
pnn_status pnn_twin_fit_recording(const char *rec_path, pnn_device *dev, const pnn_backend *be,
                                  const pnn_twin_fit_options *o, const char *out_path, pnn_twin_fit_report *r);

#ifdef __cplusplus
}
#endif
#endif
