/* Which oscillator kernels a backend runs. */
#include <string.h>

#include "kernels/systems/oscillator/oscillator_ops.h"

const pnn_osc_ops *pnn_osc_ops_for(const pnn_backend *be) {
#ifdef PNN_USE_CUDA
    if (!strcmp(be->iface->name, "cuda")) return &pnn_osc_cuda_ops;
#endif
    (void)be;
    return &pnn_osc_cpu_ops;
}
