/* Reproducible random numbers: every number is a function of (seed, stream, index), so a run,
 * a device and a test can be replayed exactly, on the CPU or the GPU. Streams separate uses
 * (initialisation of each parameter, device noise of each call, shuffling of each epoch). */
#ifndef PNN_RNG_H
#define PNN_RNG_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* out[i] for i < n = the (offset + i)-th number of the stream; uniform in (0, 1]. */
void pnn_rng_uniform(uint64_t seed, uint64_t stream, uint64_t offset, int64_t n, float *out);
/* Standard normals (Box-Muller on pairs of uniforms). */
void pnn_rng_normal(uint64_t seed, uint64_t stream, uint64_t offset, int64_t n, float *out);
/* A stream id from a name and an index, so that uses never collide by accident. */
uint64_t pnn_rng_stream(const char *name, uint64_t index);
/* A random permutation of 0..n-1 (Fisher-Yates driven by the stream). */
void pnn_rng_permutation(uint64_t seed, uint64_t stream, int64_t n, int64_t *perm);

#ifdef __cplusplus
}
#endif
#endif
