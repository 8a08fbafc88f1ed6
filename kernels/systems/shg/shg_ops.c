/* Which shg kernels a backend runs, and the FFT length both backends use. */
#include <string.h>

#include "kernels/systems/shg/shg_ops.h"

int64_t pnn_shg_fft_len(int64_t k) {
    int64_t len = 1;
    while (len < 2 * k - 1) len *= 2;
    return len;
}

const pnn_shg_ops *pnn_shg_ops_for(const pnn_backend *be) {
#ifdef PNN_USE_CUDA
    if (!strcmp(be->iface->name, "cuda")) return &pnn_shg_cuda_ops;
#endif
    (void)be;
    return &pnn_shg_cpu_ops;
}
