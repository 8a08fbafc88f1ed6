/* Which circuit kernels a backend runs. */
#include <string.h>

#include "kernels/systems/circuit/circuit_ops.h"

const pnn_circuit_ops *pnn_circuit_ops_for(const pnn_backend *be) {
#ifdef PNN_USE_CUDA
    if (!strcmp(be->iface->name, "cuda")) return &pnn_circuit_cuda_ops;
#endif
    (void)be;
    return &pnn_circuit_cpu_ops;
}
