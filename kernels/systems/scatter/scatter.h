/* Per-element math of the scattering system (PHYSICS.md, "scatter"), written once for the CPU
 * loops (scatter_cpu.c) and the CUDA kernels (scatter_cuda.cu).
 *
 * The map, rows of a batch as row vectors (x real [D], complex fields interleaved re, im):
 *   u = x B1                 B1 = W1^T, D x M complex (the field on the modulator)
 *   z = u W,  W = diag(phi) B2,  phi_m = exp(i theta_eff_m),  B2 = W2^T, M x K complex
 *   y = |z|^2 (+ camera noise, clipped at the full well on the device)
 * with theta_eff = theta + gamma sin theta (gamma = 0 in the ideal model). The phases are folded
 * into B2 once per theta instead of multiplying every row's field: same map, one M x K pass in
 * place of a B x M one.
 *
 * Its exact adjoint for the ideal modulator (gamma = 0: the twin), with g = dL/dRe + i dL/dIm for
 * a complex quantity:
 *   gz = 2 dy z,   gu = gz W^H,   dx = Re(gu B1^H),   dtheta_m = sum_b Im(gu_bm conj(u_bm)).
 *
 * The same map through the transfer matrix T = B1 W (D x K complex), built once per theta:
 *   z = x T,   dx = Re(gz T^H),   S = B1^H (x^T gz) (M x K),   dtheta_m = sum_k Im(S_mk conj(W_mk))
 * (the batch sum of the first form, reassociated). Per forward + VJP the fields form costs
 * B (8 D M + 16 M K) flops and the transfer form 16 D M K, whatever the batch B: the transfer
 * form is the cheaper one from B = 2 D K / (D + 2 K) rows on. */
#ifndef PNN_MATH_SCATTER_H
#define PNN_MATH_SCATTER_H

#include <math.h>

#include "kernels/math/hd.h"

/* (re, im) of exp(i (theta + gamma sin theta)) */
PNN_HD void pnn_scatter_phase(float theta, float gamma, float *re, float *im) {
    float t = theta + gamma * sinf(theta);
    *re = cosf(t);
    *im = sinf(t);
}

/* what the camera reads of one field: |z|^2 plus noise (sigma n), clipped at the full well */
PNN_HD float pnn_scatter_detect(float re, float im, float sigma_n, float full_well) {
    return fminf(re * re + im * im + sigma_n, full_well);
}

/* one row's term of dtheta: Im(g conj(u)) */
PNN_HD float pnn_scatter_phase_grad(float g_re, float g_im, float u_re, float u_im) {
    return g_im * u_re - g_re * u_im;
}

#endif
