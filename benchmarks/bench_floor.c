/* Measures this machine's ceilings for the PAT step's floor through the CPU backend
 * (host/floor.c, which pnn bench --suite uses too): sgemm GFLOP/s at the shapes the oscillator
 * networks use (and a large square one), and the bandwidth of a streaming update. Prints one
 * JSON object (read by benchmarks/pat_step.py). Usage: bench_floor */
#include <stdio.h>

#include "pnn/backend.h"
#include "pnn/floor.h"

int main(void) {
    const pnn_backend *be = pnn_backend_cpu();
    printf("{\"sgemm_gflops\": {\"2048x2048x2048\": %.1f, \"32x1610x1610\": %.1f, \"32x1610x1610_bT\": %.1f, "
           "\"512x100x100\": %.1f, \"1610x1610x640\": %.1f}, \"triad_gbs\": %.1f}\n",
           pnn_floor_gemm_gflops(be, 2048, 2048, 2048, 0, 0.5), pnn_floor_gemm_gflops(be, 32, 1610, 1610, 0, 0.5),
           pnn_floor_gemm_gflops(be, 32, 1610, 1610, 1, 0.5), pnn_floor_gemm_gflops(be, 512, 100, 100, 0, 0.5),
           pnn_floor_gemm_gflops(be, 1610, 1610, 640, 0, 0.5), pnn_floor_stream_gbs(be, (int64_t)16 << 20, 0.5));
    return 0;
}
