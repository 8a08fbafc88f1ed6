/* CUDA kernels of the shg system (the CUDA twin of shg_cpu.c; the per-element math and the FFT
 * packing are shg.h, shared with the CPU), reached through pnn_shg_cuda_ops. Each stage is one
 * kernel over the whole batch (elementwise, grid-stride): encode u, amplitudes, the
 * autoconvolution (directly: one thread per output point, the row's amplitudes in shared memory
 * when they fit; or by cuFFT through the core backend's pnn_cuda_fft, two real rows per complex
 * transform), the bins; the VJP the same stages backwards, and theta's gradient summed over the
 * rows by one warp per control (in double, deterministic).
 *
 * The tape layout is shg_ops.h's, as on the CPU, and so is the work layout: the forward's tape
 * when none is given, then [B, 2K] (amplitudes; in the VJP du and the amplitudes), [B, M] (dE), and
 * [ceil(B/2), 2L] (squared spectra or transformed gradients). The device map's work: u [B, K], the
 * phased field [B, 2K], the complex E [B, max(2M, 2L)] (direct, or the padded rows transformed in
 * place), the intensity [B, M]. */
#include "kernels/cuda/cuda_common.cuh"
#include "kernels/systems/shg/shg.h"
#include "kernels/systems/shg/shg_ops.h"

/* a row's amplitudes go to shared memory when they take at most this much */
#define SHG_SMEM_BYTES (32 * 1024)

static int64_t shg_m(const pnn_shg_params *p) { return 2 * p->k - 1; }
static int64_t shg_pairs(const pnn_shg_params *p) { return (p->batch + 1) / 2; }

static size_t shg_tape_floats(const pnn_shg_params *p) {
    return (size_t)(pnn_shg_tape_z(p) + pnn_shg_spectra_floats(p));
}

/* offsets in work after the forward's tape, as on the CPU: the amplitudes (or du), dE, spectra */
static int64_t shg_work_amp(const pnn_shg_params *p) { return (int64_t)shg_tape_floats(p); }
static int64_t shg_work_de(const pnn_shg_params *p) { return shg_work_amp(p) + pnn_shg_align(p->batch * 2 * p->k); }
static int64_t shg_work_spectra(const pnn_shg_params *p) {
    return shg_work_de(p) + pnn_shg_align(p->batch * shg_m(p));
}

static size_t shg_work_floats(const pnn_shg_params *p) {
    return (size_t)(shg_work_spectra(p) + pnn_shg_spectra_floats(p));
}

static int64_t shg_device_field_stride(const pnn_shg_params *p) {
    return 2 * shg_m(p) > 2 * p->fft_len ? 2 * shg_m(p) : 2 * p->fft_len;
}

static size_t shg_device_work_floats(const pnn_shg_params *p) {
    return (size_t)(pnn_shg_align(p->batch * 3 * p->k) + p->batch * shg_device_field_stride(p) +
                    pnn_shg_align(p->batch * shg_m(p)));
}

static float shg_norm(const pnn_shg_params *p) {
    double k = (double)p->k;
    return (float)((double)p->y_dim * 3.0 / (k * (2.0 * k * k + 1.0)));
}

/* ---- the forward stages ---- */

/* u[r, bin_of[i]] = [x_r, theta]_i */
__global__ void shg_encode_kernel(int64_t rows, int64_t k, int64_t x_dim, const int32_t *bin_of, const float *x,
                                  const float *theta, float *u) {
    PNN_GRID_STRIDE(idx, rows * k) {
        int64_t r = idx / k, i = idx % k;
        u[r * k + bin_of[i]] = i < x_dim ? x[r * x_dim + i] : theta[i - x_dim];
    }
}

__global__ void shg_amplitude_kernel(int64_t n, const float *u, float *a) {
    PNN_GRID_STRIDE(i, n) a[i] = pnn_shg_amplitude(u[i]);
}

/* E(m) of rows blockIdx.y, blockIdx.y + gridDim.y, ..., one thread per point m, each pair once
 * (as the CPU) */
__global__ void shg_autoconv_kernel(int64_t rows, int64_t k, int use_smem, const float *a, float *e) {
    extern __shared__ float smem[];
    const int64_t m_points = 2 * k - 1, m = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    for (int64_t r = blockIdx.y; r < rows; r += gridDim.y) {
        const float *row = a + r * k;
        if (use_smem) {
            __syncthreads(); /* the previous row's readers are done */
            for (int64_t i = threadIdx.x; i < k; i += blockDim.x) smem[i] = row[i];
            __syncthreads();
            row = smem;
        }
        if (m >= m_points) continue;
        int64_t lo = m - k + 1 > 0 ? m - k + 1 : 0, n = (m + 1) / 2 - lo;
        float sum = 0.0f;
        for (int64_t t = 0; t < n; t++) sum += row[lo + t] * row[m - lo - t];
        e[r * m_points + m] = 2.0f * sum + (m % 2 == 0 ? row[m / 2] * row[m / 2] : 0.0f);
    }
}

/* z[q] = the amplitudes of rows 2q (real part) and 2q + 1 (imaginary part), zero-padded to L */
__global__ void shg_pack_kernel(int64_t rows, int64_t width, int64_t len, int amplitude, const float *src,
                                float *z) {
    const int64_t pairs = (rows + 1) / 2;
    PNN_GRID_STRIDE(idx, pairs * len) {
        int64_t q = idx / len, i = idx % len, r = 2 * q;
        float re = 0.0f, im = 0.0f;
        if (i < width) {
            re = src[r * width + i];
            im = r + 1 < rows ? src[(r + 1) * width + i] : 0.0f;
            if (amplitude) re = pnn_shg_amplitude(re), im = pnn_shg_amplitude(im);
        }
        z[2 * idx] = re;
        z[2 * idx + 1] = im;
    }
}

/* sq = the packed square of z at k and L - k, for k = 0..L/2 of every pair */
__global__ void shg_square_pairs_kernel(int64_t pairs, int64_t len, const float *z, float *sq) {
    const int64_t half = len / 2 + 1;
    PNN_GRID_STRIDE(idx, pairs * half) {
        int64_t q = idx / half, i = idx % half, i2 = (len - i) % len;
        const float *zq = z + q * 2 * len;
        float *s = sq + q * 2 * len;
        pnn_shg_square_pair(zq[2 * i], zq[2 * i + 1], zq[2 * i2], zq[2 * i2 + 1], &s[2 * i], &s[2 * i + 1], &s[2 * i2],
                            &s[2 * i2 + 1]);
    }
}

/* dst[r, i] = the real (even r) or imaginary (odd r) part of packed row r / 2, times scale, i < width */
__global__ void shg_unpack_kernel(int64_t rows, int64_t width, int64_t len, float scale, const float *packed,
                                  float *dst) {
    PNN_GRID_STRIDE(idx, rows * width) {
        int64_t r = idx / width, i = idx % width;
        dst[idx] = packed[(r / 2) * 2 * len + 2 * i + (r % 2)] * scale;
    }
}

/* y[r, j] = c sum over bin j of e^2 */
__global__ void shg_bin_kernel(int64_t rows, int64_t m, int64_t y_dim, float c, const float *e, float *y) {
    PNN_GRID_STRIDE(idx, rows * y_dim) {
        int64_t r = idx / y_dim, j = idx % y_dim;
        int64_t lo = pnn_shg_bin_start(j, m, y_dim), hi = pnn_shg_bin_start(j + 1, m, y_dim);
        const float *er = e + r * m;
        float sum = 0.0f;
        for (int64_t i = lo; i < hi; i++) sum += er[i] * er[i];
        y[idx] = c * sum;
    }
}

static void shg_forward(void *ctx, const pnn_shg_params *p, const int32_t *bin_of, const float *x, const float *theta,
                        float *y, float *tape, float *work) {
    const int64_t rows = p->batch, k = p->k, m = shg_m(p), len = p->fft_len;
    if (rows <= 0) return;
    cudaStream_t s = pnn_cuda_stream();
    if (!tape) tape = work; /* the tape's layout at the start of work; the scratch is after it */
    float *u = tape, *e = tape + pnn_shg_tape_e(p);
    shg_encode_kernel<<<pnn_cuda_blocks(rows * k), PNN_CUDA_THREADS, 0, s>>>(rows, k, p->x_dim, bin_of, x, theta, u);
    PNN_CUDA_LAUNCHED("shg_encode_kernel");
    if (p->form == PNN_SHG_DIRECT) {
        float *a = work + shg_work_amp(p);
        shg_amplitude_kernel<<<pnn_cuda_blocks(rows * k), PNN_CUDA_THREADS, 0, s>>>(rows * k, u, a);
        PNN_CUDA_LAUNCHED("shg_amplitude_kernel");
        const int use_smem = (size_t)k * sizeof(float) <= SHG_SMEM_BYTES;
        dim3 grid((unsigned)((m + PNN_CUDA_THREADS - 1) / PNN_CUDA_THREADS), (unsigned)(rows < 65535 ? rows : 65535));
        shg_autoconv_kernel<<<grid, PNN_CUDA_THREADS, use_smem ? (size_t)k * sizeof(float) : 0, s>>>(rows, k, use_smem,
                                                                                                     a, e);
        PNN_CUDA_LAUNCHED("shg_autoconv_kernel");
    } else {
        const int64_t pairs = shg_pairs(p);
        float *z = tape + pnn_shg_tape_z(p), *sq = work + shg_work_spectra(p);
        shg_pack_kernel<<<pnn_cuda_blocks(pairs * len), PNN_CUDA_THREADS, 0, s>>>(rows, k, len, 1, u, z);
        PNN_CUDA_LAUNCHED("shg_pack_kernel");
        pnn_cuda_fft(ctx, len, pairs, 0, z, z);
        shg_square_pairs_kernel<<<pnn_cuda_blocks(pairs * (len / 2 + 1)), PNN_CUDA_THREADS, 0, s>>>(pairs, len, z, sq);
        PNN_CUDA_LAUNCHED("shg_square_pairs_kernel");
        pnn_cuda_fft(ctx, len, pairs, 1, sq, sq);
        shg_unpack_kernel<<<pnn_cuda_blocks(rows * m), PNN_CUDA_THREADS, 0, s>>>(rows, m, len, 1.0f / (float)len, sq, e);
        PNN_CUDA_LAUNCHED("shg_unpack_kernel");
    }
    shg_bin_kernel<<<pnn_cuda_blocks(rows * p->y_dim), PNN_CUDA_THREADS, 0, s>>>(rows, m, p->y_dim, shg_norm(p), e, y);
    PNN_CUDA_LAUNCHED("shg_bin_kernel");
}

/* ---- the VJP ---- */

/* dE(m) = 2 c E(m) (gain dy)_bin(m) */
__global__ void shg_output_grad_kernel(int64_t rows, int64_t m, int64_t y_dim, float c, const float *e,
                                       const float *gain, const float *dy, float *de) {
    PNN_GRID_STRIDE(idx, rows * m) {
        int64_t r = idx / m, j = pnn_shg_bin_of_point(idx % m, m, y_dim);
        float g = dy[r * y_dim + j] * (gain ? gain[r * y_dim + j] : 1.0f);
        de[idx] = 2.0f * c * g * e[idx];
    }
}

/* du[r, j] = sum_l dE(j + l) A_l, one thread per (r, j) */
__global__ void shg_correlate_kernel(int64_t rows, int64_t k, const float *de, const float *a, float *du) {
    PNN_GRID_STRIDE(idx, rows * k) {
        int64_t r = idx / k, j = idx % k;
        const float *dr = de + r * (2 * k - 1) + j, *ar = a + r * k;
        float sum = 0.0f;
        for (int64_t l = 0; l < k; l++) sum += dr[l] * ar[l];
        du[idx] = sum;
    }
}

/* w = the packed correlation product of w (transformed gradients) and z (taped spectra) */
__global__ void shg_correlate_pairs_kernel(int64_t pairs, int64_t len, float *w, const float *z) {
    const int64_t half = len / 2 + 1;
    PNN_GRID_STRIDE(idx, pairs * half) {
        int64_t q = idx / half, i = idx % half, i2 = (len - i) % len;
        float *wq = w + q * 2 * len;
        const float *zq = z + q * 2 * len;
        float w1r = wq[2 * i], w1i = wq[2 * i + 1], w2r = wq[2 * i2], w2i = wq[2 * i2 + 1];
        pnn_shg_correlate_pair(w1r, w1i, w2r, w2i, zq[2 * i], zq[2 * i + 1], zq[2 * i2], zq[2 * i2 + 1], &wq[2 * i],
                               &wq[2 * i + 1], &wq[2 * i2], &wq[2 * i2 + 1]);
    }
}

/* du = 2 du dA/du (in place) */
__global__ void shg_input_grad_kernel(int64_t n, const float *u, float *du) {
    PNN_GRID_STRIDE(i, n) du[i] = 2.0f * du[i] * pnn_shg_amplitude_grad(u[i]);
}

/* dx[r, i] = du[r, bin_of[i]] */
__global__ void shg_gather_dx_kernel(int64_t rows, int64_t k, int64_t x_dim, const int32_t *bin_of, const float *du,
                                     float *dx) {
    PNN_GRID_STRIDE(idx, rows * x_dim) {
        int64_t r = idx / x_dim, i = idx % x_dim;
        dx[idx] = du[r * k + bin_of[i]];
    }
}

/* dtheta[t] += sum over rows of du[r, bin_of[x_dim + t]], one warp per t, in double */
__global__ void shg_theta_grad_kernel(int64_t rows, int64_t k, int64_t x_dim, const int32_t *bin_of, const float *du,
                                      float *dtheta) {
    int64_t t = (int64_t)blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
    int lane = threadIdx.x % 32;
    if (t >= k - x_dim) return;
    int64_t bin = bin_of[x_dim + t];
    double sum = 0.0;
    for (int64_t r = lane; r < rows; r += 32) sum += du[r * k + bin];
    for (int o = 16; o > 0; o /= 2) sum += __shfl_xor_sync(0xffffffffu, sum, o);
    if (lane == 0) dtheta[t] += (float)sum;
}

static void shg_vjp(void *ctx, const pnn_shg_params *p, const int32_t *bin_of, const float *tape, const float *gain,
                    const float *dy, float *dx, float *dtheta, float *work) {
    const int64_t rows = p->batch, k = p->k, m = shg_m(p), len = p->fft_len, yd = p->y_dim;
    if (rows <= 0) return;
    cudaStream_t s = pnn_cuda_stream();
    const float *u = tape, *e = tape + pnn_shg_tape_e(p);
    float *du = work + shg_work_amp(p), *amp = du + rows * k, *de = work + shg_work_de(p);
    shg_output_grad_kernel<<<pnn_cuda_blocks(rows * m), PNN_CUDA_THREADS, 0, s>>>(rows, m, yd, shg_norm(p), e, gain,
                                                                                   dy, de);
    PNN_CUDA_LAUNCHED("shg_output_grad_kernel");
    if (p->form == PNN_SHG_DIRECT) {
        shg_amplitude_kernel<<<pnn_cuda_blocks(rows * k), PNN_CUDA_THREADS, 0, s>>>(rows * k, u, amp);
        PNN_CUDA_LAUNCHED("shg_amplitude_kernel");
        shg_correlate_kernel<<<pnn_cuda_blocks(rows * k), PNN_CUDA_THREADS, 0, s>>>(rows, k, de, amp, du);
        PNN_CUDA_LAUNCHED("shg_correlate_kernel");
    } else {
        const int64_t pairs = shg_pairs(p);
        const float *z = tape + pnn_shg_tape_z(p);
        float *w = work + shg_work_spectra(p);
        shg_pack_kernel<<<pnn_cuda_blocks(pairs * len), PNN_CUDA_THREADS, 0, s>>>(rows, m, len, 0, de, w);
        PNN_CUDA_LAUNCHED("shg_pack_kernel");
        pnn_cuda_fft(ctx, len, pairs, 0, w, w);
        shg_correlate_pairs_kernel<<<pnn_cuda_blocks(pairs * (len / 2 + 1)), PNN_CUDA_THREADS, 0, s>>>(pairs, len, w, z);
        PNN_CUDA_LAUNCHED("shg_correlate_pairs_kernel");
        pnn_cuda_fft(ctx, len, pairs, 1, w, w);
        shg_unpack_kernel<<<pnn_cuda_blocks(rows * k), PNN_CUDA_THREADS, 0, s>>>(rows, k, len, 1.0f / (float)len, w, du);
        PNN_CUDA_LAUNCHED("shg_unpack_kernel");
    }
    shg_input_grad_kernel<<<pnn_cuda_blocks(rows * k), PNN_CUDA_THREADS, 0, s>>>(rows * k, u, du);
    PNN_CUDA_LAUNCHED("shg_input_grad_kernel");
    if (dx) {
        shg_gather_dx_kernel<<<pnn_cuda_blocks(rows * p->x_dim), PNN_CUDA_THREADS, 0, s>>>(rows, k, p->x_dim, bin_of, du,
                                                                                            dx);
        PNN_CUDA_LAUNCHED("shg_gather_dx_kernel");
    }
    const int64_t t_dim = k - p->x_dim, warps = PNN_CUDA_THREADS / 32;
    shg_theta_grad_kernel<<<(unsigned)((t_dim + warps - 1) / warps), PNN_CUDA_THREADS, 0, s>>>(rows, k, p->x_dim, bin_of,
                                                                                              du, dtheta);
    PNN_CUDA_LAUNCHED("shg_theta_grad_kernel");
}

/* ---- the device's map ---- */

/* a[r, i] = A(u) (phase_i): the phased field, complex, into rows of `stride` floats (zeros from 2K on) */
__global__ void shg_field_kernel(int64_t rows, int64_t k, int64_t stride, const float *u, const float *phase, float *a) {
    const int64_t width = stride / 2;
    PNN_GRID_STRIDE(idx, rows * width) {
        int64_t r = idx / width, i = idx % width;
        float amp = i < k ? pnn_shg_amplitude(u[r * k + i]) : 0.0f;
        a[r * stride + 2 * i] = i < k ? amp * phase[2 * i] : 0.0f;
        a[r * stride + 2 * i + 1] = i < k ? amp * phase[2 * i + 1] : 0.0f;
    }
}

/* complex E(m) of each row directly, each pair once (as the CPU); rows of 2K and `stride` floats */
__global__ void shg_autoconv_complex_kernel(int64_t rows, int64_t k, int64_t stride, const float *a, float *e) {
    const int64_t m_points = 2 * k - 1;
    PNN_GRID_STRIDE(idx, rows * m_points) {
        int64_t r = idx / m_points, m = idx % m_points;
        const float *ar = a + r * 2 * k;
        int64_t lo = m - k + 1 > 0 ? m - k + 1 : 0, n = (m + 1) / 2 - lo;
        float sr = 0.0f, si = 0.0f;
        for (int64_t t = 0; t < n; t++) {
            int64_t i = lo + t, j = m - lo - t;
            sr += ar[2 * i] * ar[2 * j] - ar[2 * i + 1] * ar[2 * j + 1];
            si += ar[2 * i] * ar[2 * j + 1] + ar[2 * i + 1] * ar[2 * j];
        }
        sr *= 2.0f, si *= 2.0f;
        if (m % 2 == 0) {
            float hr = ar[m], hi = ar[m + 1]; /* a_{m/2} */
            sr += hr * hr - hi * hi;
            si += 2.0f * hr * hi;
        }
        e[r * stride + 2 * m] = sr;
        e[r * stride + 2 * m + 1] = si;
    }
}

/* z = z^2, elementwise complex */
__global__ void shg_square_complex_kernel(int64_t n, float *z) {
    PNN_GRID_STRIDE(i, n) {
        float re = z[2 * i], im = z[2 * i + 1];
        z[2 * i] = re * re - im * im;
        z[2 * i + 1] = 2.0f * re * im;
    }
}

/* I[r, m] = |pm[m] scale E[r, m]|^2 from complex rows of `stride` floats */
__global__ void shg_intensity_kernel(int64_t rows, int64_t m, int64_t stride, float scale, const float *e,
                                     const float *pm, float *inten) {
    PNN_GRID_STRIDE(idx, rows * m) {
        int64_t r = idx / m, i = idx % m;
        float re = e[r * stride + 2 * i] * scale, im = e[r * stride + 2 * i + 1] * scale;
        inten[idx] = pm[i] * pm[i] * (re * re + im * im);
    }
}

/* y[r, j] = sum_t I(start_j + t) weight(offset_j + t) */
__global__ void shg_weighted_bins_kernel(int64_t rows, int64_t m, int64_t y_dim, const int32_t *start,
                                         const int32_t *count, const int32_t *offset, const float *weight,
                                         const float *inten, float *y) {
    PNN_GRID_STRIDE(idx, rows * y_dim) {
        int64_t r = idx / y_dim, j = idx % y_dim;
        const float *src = inten + r * m + start[j], *w = weight + offset[j];
        float sum = 0.0f;
        for (int32_t t = 0; t < count[j]; t++) sum += src[t] * w[t];
        y[idx] = sum;
    }
}

static void shg_device_forward(void *ctx, const pnn_shg_params *p, const int32_t *bin_of, const float *x,
                               const float *theta, const float *phase, const float *pm, const pnn_shg_bins *bins,
                               float *y, float *work) {
    const int64_t rows = p->batch, k = p->k, m = shg_m(p), len = p->fft_len, stride = shg_device_field_stride(p);
    if (rows <= 0) return;
    cudaStream_t s = pnn_cuda_stream();
    float *u = work, *a = u + rows * k, *e = work + pnn_shg_align(rows * 3 * k), *inten = e + rows * stride;
    shg_encode_kernel<<<pnn_cuda_blocks(rows * k), PNN_CUDA_THREADS, 0, s>>>(rows, k, p->x_dim, bin_of, x, theta, u);
    PNN_CUDA_LAUNCHED("shg_encode_kernel");
    float scale = 1.0f;
    int64_t e_stride = stride;
    if (p->form == PNN_SHG_DIRECT) {
        shg_field_kernel<<<pnn_cuda_blocks(rows * k), PNN_CUDA_THREADS, 0, s>>>(rows, k, 2 * k, u, phase, a);
        PNN_CUDA_LAUNCHED("shg_field_kernel");
        shg_autoconv_complex_kernel<<<pnn_cuda_blocks(rows * m), PNN_CUDA_THREADS, 0, s>>>(rows, k, stride, a, e);
        PNN_CUDA_LAUNCHED("shg_autoconv_complex_kernel");
    } else {
        /* the padded rows in place, L complex values each, contiguous for one batched transform */
        e_stride = 2 * len;
        shg_field_kernel<<<pnn_cuda_blocks(rows * len), PNN_CUDA_THREADS, 0, s>>>(rows, k, e_stride, u, phase, e);
        PNN_CUDA_LAUNCHED("shg_field_kernel");
        pnn_cuda_fft(ctx, len, rows, 0, e, e);
        shg_square_complex_kernel<<<pnn_cuda_blocks(rows * len), PNN_CUDA_THREADS, 0, s>>>(rows * len, e);
        PNN_CUDA_LAUNCHED("shg_square_complex_kernel");
        pnn_cuda_fft(ctx, len, rows, 1, e, e);
        scale = 1.0f / (float)len;
    }
    shg_intensity_kernel<<<pnn_cuda_blocks(rows * m), PNN_CUDA_THREADS, 0, s>>>(rows, m, e_stride, scale, e, pm, inten);
    PNN_CUDA_LAUNCHED("shg_intensity_kernel");
    shg_weighted_bins_kernel<<<pnn_cuda_blocks(rows * p->y_dim), PNN_CUDA_THREADS, 0, s>>>(
        rows, m, p->y_dim, bins->start, bins->count, bins->offset, bins->weight, inten, y);
    PNN_CUDA_LAUNCHED("shg_weighted_bins_kernel");
}

__global__ void shg_detect_kernel(int64_t n, int64_t y_dim, const float *normals, float sigma, const float *offset,
                                  float *y, float *gain) {
    PNN_GRID_STRIDE(i, n) {
        y[i] = pnn_shg_detect(y[i], normals ? normals[i] : 0.0f, sigma, offset ? offset[i % y_dim] : 0.0f,
                              gain ? &gain[i] : NULL);
    }
}

static void shg_detect(void *ctx, int64_t n, int64_t y_dim, const float *normals, float sigma, const float *offset,
                       float *y, float *gain) {
    (void)ctx;
    if (n <= 0) return;
    shg_detect_kernel<<<pnn_cuda_blocks(n), PNN_CUDA_THREADS, 0, pnn_cuda_stream()>>>(n, y_dim, normals, sigma, offset, y,
                                                                                      gain);
    PNN_CUDA_LAUNCHED("shg_detect_kernel");
}

extern "C" const pnn_shg_ops pnn_shg_cuda_ops = {
    .forward = shg_forward,
    .vjp = shg_vjp,
    .device_forward = shg_device_forward,
    .detect = shg_detect,
    .tape_floats = shg_tape_floats,
    .work_floats = shg_work_floats,
    .device_work_floats = shg_device_work_floats,
};
