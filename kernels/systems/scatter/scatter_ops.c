/* Which scattering kernels a backend runs. */
#include <string.h>

#include "kernels/systems/scatter/scatter_ops.h"

const pnn_scatter_ops *pnn_scatter_ops_for(const pnn_backend *be) {
#ifdef PNN_USE_CUDA
    if (!strcmp(be->iface->name, "cuda")) return &pnn_scatter_cuda_ops;
#endif
    (void)be;
    return &pnn_scatter_cpu_ops;
}
