/* Host-side streams of the Philox generator in kernels/math/philox.h. */
#include "pnn/rng.h"

#include "kernels/math/philox.h"

static void uniform_block(uint64_t seed, uint64_t stream, uint64_t block, float *v) {
    uint32_t r[4];
    pnn_philox_block(seed, stream, block, r);
    for (int j = 0; j < 4; j++) v[j] = pnn_u32_to_unit(r[j]);
}

static void normal_block(uint64_t seed, uint64_t stream, uint64_t block, float *v) {
    uint32_t r[4];
    pnn_philox_block(seed, stream, block, r);
    pnn_box_muller(r[0], r[1], &v[0], &v[1]);
    pnn_box_muller(r[2], r[3], &v[2], &v[3]);
}

typedef void (*block_fn)(uint64_t seed, uint64_t stream, uint64_t block, float *v);

/* One number of the stream through a whole block (for the partial blocks at both ends). */
static float single(block_fn fn, uint64_t seed, uint64_t stream, uint64_t idx) {
    float v[4];
    fn(seed, stream, idx / 4, v);
    return v[idx % 4];
}

/* out[i] = number (offset + i) of the stream, four per Philox block: the partial blocks at both
 * ends one by one, the full blocks between in parallel (device noise draws ~10^5 numbers per
 * call, worth two threads). */
static void fill(block_fn fn, uint64_t seed, uint64_t stream, uint64_t offset, int64_t n, float *out) {
    int64_t head = (int64_t)((4 - offset % 4) % 4);
    if (head > n) head = n;
    int64_t full = (n - head) / 4;
    uint64_t first_block = (offset + (uint64_t)head) / 4;
    for (int64_t i = 0; i < head; i++) out[i] = single(fn, seed, stream, offset + (uint64_t)i);
#pragma omp parallel for if (full > 4096)
    for (int64_t b = 0; b < full; b++) fn(seed, stream, first_block + (uint64_t)b, out + head + 4 * b);
    for (int64_t i = head + 4 * full; i < n; i++) out[i] = single(fn, seed, stream, offset + (uint64_t)i);
}

void pnn_rng_uniform(uint64_t seed, uint64_t stream, uint64_t offset, int64_t n, float *out) {
    fill(uniform_block, seed, stream, offset, n, out);
}

void pnn_rng_normal(uint64_t seed, uint64_t stream, uint64_t offset, int64_t n, float *out) {
    fill(normal_block, seed, stream, offset, n, out);
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
