/* PNN_HD: marks the inline math functions of kernels/math that are compiled for both the host
 * and, under nvcc, the GPU — one definition of each formula for the CPU and CUDA backends. */
#ifndef PNN_MATH_HD_H
#define PNN_MATH_HD_H

#ifdef __CUDACC__
#define PNN_HD static inline __host__ __device__
#else
#define PNN_HD static inline
#endif

#endif
