/* Philox 4x32-10 (Salmon et al., SC'11): a counter-based RNG, written once for host and
 * device so that CPU and GPU draw the same numbers from the same (key, counter). */
#ifndef PNN_MATH_PHILOX_H
#define PNN_MATH_PHILOX_H

#include <math.h>
#include <stdint.h>

#include "hd.h"

#define PNN_PHILOX_M0 0xD2511F53u
#define PNN_PHILOX_M1 0xCD9E8D57u
#define PNN_PHILOX_W0 0x9E3779B9u
#define PNN_PHILOX_W1 0xBB67AE85u

PNN_HD void pnn_mulhilo32(uint32_t a, uint32_t b, uint32_t *hi, uint32_t *lo) {
    uint64_t p = (uint64_t)a * (uint64_t)b;
    *hi = (uint32_t)(p >> 32);
    *lo = (uint32_t)p;
}

/* out = Philox4x32-10(counter, key) */
PNN_HD void pnn_philox4x32(const uint32_t counter[4], const uint32_t key[2], uint32_t out[4]) {
    uint32_t c0 = counter[0], c1 = counter[1], c2 = counter[2], c3 = counter[3];
    uint32_t k0 = key[0], k1 = key[1];
    for (int round = 0; round < 10; round++) {
        uint32_t hi0, lo0, hi1, lo1;
        pnn_mulhilo32(PNN_PHILOX_M0, c0, &hi0, &lo0);
        pnn_mulhilo32(PNN_PHILOX_M1, c2, &hi1, &lo1);
        uint32_t n0 = hi1 ^ c1 ^ k0, n1 = lo1, n2 = hi0 ^ c3 ^ k1, n3 = lo0;
        c0 = n0; c1 = n1; c2 = n2; c3 = n3;
        k0 += PNN_PHILOX_W0;
        k1 += PNN_PHILOX_W1;
    }
    out[0] = c0; out[1] = c1; out[2] = c2; out[3] = c3;
}

/* A uniform float in (0, 1] from the top 24 bits (never 0, so log() is safe). */
PNN_HD float pnn_u32_to_unit(uint32_t u) { return ((float)(u >> 8) + 1.0f) * (1.0f / 16777216.0f); }

/* Four draws of stream `stream` at block `block` (each block gives 4 numbers). */
PNN_HD void pnn_philox_block(uint64_t seed, uint64_t stream, uint64_t block, uint32_t out[4]) {
    uint32_t ctr[4] = {(uint32_t)block, (uint32_t)(block >> 32), (uint32_t)stream,
                       (uint32_t)(stream >> 32)};
    uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
    pnn_philox4x32(ctr, key, out);
}

/* Two standard normals by Box-Muller from two uniforms. */
PNN_HD void pnn_box_muller(uint32_t a, uint32_t b, float *z0, float *z1) {
    float u1 = pnn_u32_to_unit(a), u2 = pnn_u32_to_unit(b);
    float r = sqrtf(-2.0f * logf(u1));
    float t = 6.28318530717958647692f * u2;
    *z0 = r * cosf(t);
    *z1 = r * sinf(t);
}

#endif
