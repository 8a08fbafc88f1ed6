/* Physical systems as plug-ins. A system (PHYSICS.md: oscillator, shg, circuit, scatter) brings
 * its own files and nothing else: its math and kernels with their own op table per backend
 * (kernels/systems/NAME/), its simulated device and analytic twin (hwbridge/systems/NAME_*.c),
 * and one line in hwbridge/systems/registry.c. No shared header or table names a system. */
#ifndef PNN_SYSTEM_H
#define PNN_SYSTEM_H

#include "pnn/twin.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct pnn_system {
    const char *name;    /* "oscillator": opened as sim:NAME?..., and reported by its devices */
    const char *summary; /* one line for --help */
    /* its own URI keys with their defaults, "n=100, nt=5, dt=0.1" (for --help and "did you
     * mean"; every sim: device also takes the generic keys of PNN_SIM_KEYS) */
    const char *keys;
    /* Opens sim:NAME from the parsed URI (the generic keys already read); checks every key
     * with pnn_uri_check_all_used and every value's range. */
    pnn_status (*open_sim)(pnn_uri *u, const char *uri, const pnn_backend *be, pnn_device **out);
    /* The ideal physics of a device of this system, with its integration settings read from
     * the device's system_uri; refuses dims that are not this system's (a crafted header).
     * noise as pnn_twin_create. */
    pnn_status (*analytic_twin)(pnn_device *dev, double noise, pnn_twin **out);
    /* Optional (NULL: not counted). The nominal FLOPs of `rows` rows through the analytic twin's
     * forward (out[0]), its VJP alone (out[1]) and the simulated device's forward (out[2]), as
     * this system's kernels compute them (in the form they pick for that many rows), read from
     * the parsed URI (marks its keys used; the generic keys are not read). For the benchmark
     * suite's GFLOP/s and fraction of the floor. */
    pnn_status (*flops)(pnn_uri *u, int64_t rows, double out[3]);
} pnn_system;

/* The keys every simulated device takes besides its system's own (hwbridge/device.c). */
#define PNN_SIM_KEYS \
    "latency_ms=0, jitter_ms=0, fault_rate=0, drop_rate=0, timeout_ms=10000, max_batch=1048576, async=0, threads=0"

/* The system called name, or NULL. */
const pnn_system *pnn_system_find(const char *name);
int pnn_system_count(void);
const pnn_system *pnn_system_at(int i);
/* The known names, "oscillator, shg, ..." (a static string). */
const char *pnn_system_names(void);
/* PNN_ERR_INVALID for an unknown system: the message lists the known ones, with a "did you
 * mean" when one is close. */
pnn_status pnn_system_lookup(const char *name, const char *uri, const pnn_system **out);

#ifdef __cplusplus
}
#endif
#endif
