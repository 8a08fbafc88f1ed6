/* Host-side streams of the Philox generator in kernels/math/philox.h. */
#include "pnn/rng.h"

#include "../kernels/math/philox.h"

void pnn_rng_uniform(uint64_t seed, uint64_t stream, uint64_t offset, int64_t n, float *out) {
    int64_t i = 0;
    while (i < n) {
        uint64_t idx = offset + (uint64_t)i;
        uint32_t r[4];
        pnn_philox_block(seed, stream, idx / 4, r);
        for (unsigned j = (unsigned)(idx % 4); j < 4 && i < n; j++, i++) out[i] = pnn_u32_to_unit(r[j]);
    }
}

void pnn_rng_normal(uint64_t seed, uint64_t stream, uint64_t offset, int64_t n, float *out) {
    int64_t i = 0;
    while (i < n) {
        uint64_t idx = offset + (uint64_t)i;
        uint32_t r[4];
        float z[4];
        pnn_philox_block(seed, stream, idx / 4, r);
        pnn_box_muller(r[0], r[1], &z[0], &z[1]);
        pnn_box_muller(r[2], r[3], &z[2], &z[3]);
        for (unsigned j = (unsigned)(idx % 4); j < 4 && i < n; j++, i++) out[i] = z[j];
    }
}

uint64_t pnn_rng_stream(const char *name, uint64_t index) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (const char *c = name; *c; c++) h = (h ^ (unsigned char)*c) * 1099511628211ull;
    return h ^ (index * 0x9E3779B97F4A7C15ull);
}

void pnn_rng_permutation(uint64_t seed, uint64_t stream, int64_t n, int64_t *perm) {
    for (int64_t i = 0; i < n; i++) perm[i] = i;
    for (int64_t i = n - 1; i > 0; i--) {
        uint32_t r[4];
        pnn_philox_block(seed, stream, (uint64_t)i, r);
        uint64_t u = ((uint64_t)r[0] << 32) | r[1];
        int64_t j = (int64_t)(u % (uint64_t)(i + 1));
        int64_t t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
}
