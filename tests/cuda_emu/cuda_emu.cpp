/* The CPU tier's runtime (tests/cuda_emu/cuda_emu.h): blocks of fibers with real barriers, and
 * the CUDA runtime, cuBLAS and cuFFT calls of pnn's CUDA files served by the CPU. */
#include <cblas.h>
#include <fftw3.h>
#include <ucontext.h>

#include <cstdio>
#include <mutex>
#include <set>
#include <vector>

#include "include/cublas_v2.h"
#include "include/cufft.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/common_interface_defs.h>
#define EMU_ASAN 1
#else
#define EMU_ASAN 0
#endif

/* ---- errors ---- */

static cudaError_t g_last = cudaSuccess;
static const cudaError_t cudaErrorLaunchFailure = (cudaError_t)719;

static void set_error(cudaError_t e) {
    if (g_last == cudaSuccess) g_last = e;
}

cudaError_t cudaGetLastError() {
    cudaError_t e = g_last;
    g_last = cudaSuccess;
    return e;
}
cudaError_t cudaPeekAtLastError() { return g_last; }

const char *cudaGetErrorName(cudaError_t e) {
    switch ((int)e) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
    case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
    case cudaErrorNoDevice: return "cudaErrorNoDevice";
    case 719: return "cudaErrorLaunchFailure";
    }
    return "cudaErrorUnknown";
}
const char *cudaGetErrorString(cudaError_t e) { return cudaGetErrorName(e); }

/* ---- fibers ---- */

namespace pnn_emu {
dim3 thread_idx, block_idx, block_dim, grid_dim;
unsigned char *dyn_smem;

enum fiber_state { RUNNABLE, AT_BLOCK_BARRIER, AT_WARP_BARRIER, DONE };

struct fiber {
    ucontext_t ctx;
    void *stack;
    fiber_state state;
    dim3 tid;
    uint64_t slot; /* what this thread offers in a warp exchange */
};

static const size_t STACK_BYTES = 256 << 10;
static std::vector<fiber> g_fibers;
static ucontext_t g_scheduler;
static int g_current;
static const std::function<void()> *g_kernel;
#if EMU_ASAN
static const void *g_sched_bottom;
static size_t g_sched_size;
#endif

static void switch_to_scheduler(fiber &f, bool finishing) {
#if EMU_ASAN
    void *fake = nullptr;
    __sanitizer_start_switch_fiber(finishing ? nullptr : &fake, g_sched_bottom, g_sched_size);
    if (finishing) return; /* uc_link takes it back */
    swapcontext(&f.ctx, &g_scheduler);
    __sanitizer_finish_switch_fiber(fake, &g_sched_bottom, &g_sched_size);
#else
    if (!finishing) swapcontext(&f.ctx, &g_scheduler);
#endif
}

static void trampoline() {
#if EMU_ASAN
    __sanitizer_finish_switch_fiber(nullptr, &g_sched_bottom, &g_sched_size);
#endif
    (*g_kernel)();
    fiber &f = g_fibers[g_current];
    f.state = DONE;
    switch_to_scheduler(f, true);
}

static void run(int i) {
    fiber &f = g_fibers[i];
    g_current = i;
    thread_idx = f.tid;
#if EMU_ASAN
    void *fake = nullptr;
    __sanitizer_start_switch_fiber(&fake, f.stack, STACK_BYTES);
    swapcontext(&g_scheduler, &f.ctx);
    __sanitizer_finish_switch_fiber(fake, nullptr, nullptr);
#else
    swapcontext(&g_scheduler, &f.ctx);
#endif
}

static void wait_at(fiber_state barrier) {
    fiber &f = g_fibers[g_current];
    f.state = barrier;
    switch_to_scheduler(f, false);
    thread_idx = f.tid;
}

void syncthreads() { wait_at(AT_BLOCK_BARRIER); }

uint64_t warp_exchange(uint64_t v, int lane) {
    int warp_base = g_current / 32 * 32;
    g_fibers[g_current].slot = v;
    wait_at(AT_WARP_BARRIER);
    int from = warp_base + lane;
    uint64_t got = from < (int)g_fibers.size() ? g_fibers[from].slot : 0;
    wait_at(AT_WARP_BARRIER); /* nobody overwrites a slot before every lane has read it */
    return got;
}

/* Runs one block to the end; false (and a message) when its barriers cannot all be passed. */
static bool run_block(const char **why) {
    const int n = (int)g_fibers.size();
    for (;;) {
        bool moved = false, live = false;
        for (int i = 0; i < n; i++)
            if (g_fibers[i].state == RUNNABLE) {
                run(i);
                moved = true;
            }
        /* a warp barrier opens when every live thread of the warp is at it */
        for (int w = 0; w < n; w += 32) {
            int at = 0, alive = 0;
            for (int i = w; i < n && i < w + 32; i++) {
                alive += g_fibers[i].state != DONE;
                at += g_fibers[i].state == AT_WARP_BARRIER;
            }
            if (at && at == alive) {
                for (int i = w; i < n && i < w + 32; i++) g_fibers[i].state = RUNNABLE;
                moved = true;
            }
        }
        int at = 0, alive = 0;
        for (int i = 0; i < n; i++) {
            alive += g_fibers[i].state != DONE;
            at += g_fibers[i].state == AT_BLOCK_BARRIER;
        }
        if (at && at == alive) {
            for (int i = 0; i < n; i++) g_fibers[i].state = RUNNABLE;
            moved = true;
        }
        for (int i = 0; i < n; i++) live |= g_fibers[i].state != DONE;
        if (!live) return true;
        if (!moved) {
            *why = "a barrier (__syncthreads or a warp shuffle) that not every live thread of the block or "
                   "warp reaches: divergent barrier";
            return false;
        }
    }
}

/* kernels launched from several OS threads (a device worker and the training thread) take turns */
static std::mutex g_launch_mu;

void launch(const std::function<void()> &kernel, dim3 grid, dim3 block, size_t smem, void *stream) {
    (void)stream;
    std::lock_guard<std::mutex> lock(g_launch_mu);
    unsigned threads = block.x * block.y * block.z;
    if (!threads || threads > 1024 || !grid.x || !grid.y || !grid.z || smem > (227u << 10)) {
        fprintf(stderr, "cuda_emu: bad launch: grid %ux%ux%u, block %ux%ux%u, %zu bytes of shared memory\n", grid.x,
                grid.y, grid.z, block.x, block.y, block.z, smem);
        set_error(cudaErrorInvalidConfiguration);
        return;
    }
    g_kernel = &kernel;
    grid_dim = grid, block_dim = block;
    std::vector<unsigned char> shared(smem ? smem : 1);
    g_fibers.assign(threads, fiber());
    for (auto &f : g_fibers) f.stack = malloc(STACK_BYTES);
    for (unsigned bz = 0; bz < grid.z; bz++)
        for (unsigned by = 0; by < grid.y; by++)
            for (unsigned bx = 0; bx < grid.x; bx++) {
                block_idx = dim3(bx, by, bz);
                memset(shared.data(), 0xff, shared.size()); /* uninitialised shared memory reads as NaN */
                dyn_smem = shared.data();
                for (unsigned t = 0; t < threads; t++) {
                    fiber &f = g_fibers[t];
                    f.tid = dim3(t % block.x, t / block.x % block.y, t / (block.x * block.y));
                    f.state = RUNNABLE;
                    getcontext(&f.ctx);
                    f.ctx.uc_stack.ss_sp = f.stack;
                    f.ctx.uc_stack.ss_size = STACK_BYTES;
                    f.ctx.uc_link = &g_scheduler;
                    makecontext(&f.ctx, trampoline, 0);
                }
                const char *why = nullptr;
                if (!run_block(&why)) {
                    fprintf(stderr, "cuda_emu: block (%u, %u, %u) of a %ux%u-thread launch stopped: %s\n", bx, by, bz,
                            block.x, block.y * block.z, why);
                    set_error(cudaErrorLaunchFailure);
                    bx = grid.x, by = grid.y, bz = grid.z; /* a real GPU aborts the whole grid */
                }
            }
    for (auto &f : g_fibers) free(f.stack);
    g_fibers.clear();
    dyn_smem = nullptr;
}
}  // namespace pnn_emu

/* ---- device, memory, streams, events ---- */

static std::mutex g_mem_mu;
static std::set<const void *> g_device_ptrs;

cudaError_t cudaGetDeviceCount(int *n) {
    *n = 1;
    return cudaSuccess;
}
cudaError_t cudaSetDevice(int d) { return d == 0 ? cudaSuccess : cudaErrorInvalidValue; }
cudaError_t cudaGetDeviceProperties(cudaDeviceProp *p, int d) {
    (void)d;
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "pnn CUDA emulation on the CPU");
    p->major = 9, p->minor = 0, p->multiProcessorCount = 2;
    p->sharedMemPerBlockOptin = 227 << 10;
    p->totalGlobalMem = (size_t)8 << 30;
    return cudaSuccess;
}
cudaError_t cudaMalloc(void **p, size_t bytes) {
    *p = malloc(bytes ? bytes : 1);
    if (!*p) return cudaErrorMemoryAllocation;
    std::lock_guard<std::mutex> lock(g_mem_mu);
    g_device_ptrs.insert(*p);
    return cudaSuccess;
}
cudaError_t cudaFree(void *p) {
    std::lock_guard<std::mutex> lock(g_mem_mu);
    g_device_ptrs.erase(p);
    free(p);
    return cudaSuccess;
}
cudaError_t cudaMemGetInfo(size_t *free_b, size_t *total_b) {
    *free_b = (size_t)6 << 30, *total_b = (size_t)8 << 30;
    return cudaSuccess;
}
cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind, cudaStream_t s) {
    (void)kind, (void)s;
    if (bytes) memmove(dst, src, bytes);
    return cudaSuccess;
}
cudaError_t cudaMemcpy2DAsync(void *dst, size_t dpitch, const void *src, size_t spitch, size_t width, size_t height,
                              cudaMemcpyKind kind, cudaStream_t s) {
    (void)kind, (void)s;
    for (size_t r = 0; r < height; r++) memmove((char *)dst + r * dpitch, (const char *)src + r * spitch, width);
    return cudaSuccess;
}
cudaError_t cudaMemsetAsync(void *dst, int value, size_t bytes, cudaStream_t s) {
    (void)s;
    memset(dst, value, bytes);
    return cudaSuccess;
}
cudaError_t cudaStreamSynchronize(cudaStream_t s) {
    (void)s;
    return cudaSuccess;
}
cudaError_t cudaDeviceSynchronize() { return cudaSuccess; }
cudaError_t cudaStreamWaitEvent(cudaStream_t s, cudaEvent_t e, unsigned flags) {
    (void)s, (void)e, (void)flags;
    return cudaSuccess;
}
cudaError_t cudaEventCreateWithFlags(cudaEvent_t *e, unsigned flags) {
    (void)flags;
    *e = (cudaEvent_t)malloc(1);
    return *e ? cudaSuccess : cudaErrorMemoryAllocation;
}
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s) {
    (void)e, (void)s;
    return cudaSuccess;
}
cudaError_t cudaEventDestroy(cudaEvent_t e) {
    free(e);
    return cudaSuccess;
}
cudaError_t cudaPointerGetAttributes(cudaPointerAttributes *a, const void *p) {
    std::lock_guard<std::mutex> lock(g_mem_mu);
    a->type = g_device_ptrs.count(p) ? cudaMemoryTypeDevice : cudaMemoryTypeUnregistered;
    return cudaSuccess;
}

/* ---- cuBLAS ---- */

cublasStatus_t cublasCreate(cublasHandle_t *h) {
    *h = (cublasHandle_t)malloc(1);
    return *h ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_ALLOC_FAILED;
}
cublasStatus_t cublasDestroy(cublasHandle_t h) {
    free(h);
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasSetStream(cublasHandle_t h, cudaStream_t s) {
    (void)h, (void)s;
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasSetMathMode(cublasHandle_t h, cublasMath_t m) {
    (void)h, (void)m;
    return CUBLAS_STATUS_SUCCESS;
}
const char *cublasGetStatusString(cublasStatus_t st) {
    return st == CUBLAS_STATUS_SUCCESS ? "CUBLAS_STATUS_SUCCESS" : "CUBLAS_STATUS_(emulated failure)";
}

static CBLAS_TRANSPOSE blas_op(cublasOperation_t op) {
    return op == CUBLAS_OP_C ? CblasConjTrans : op == CUBLAS_OP_T ? CblasTrans : CblasNoTrans;
}

cublasStatus_t cublasSgemm_64(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int64_t m, int64_t n,
                              int64_t k, const float *alpha, const float *a, int64_t lda, const float *b, int64_t ldb,
                              const float *beta, float *c, int64_t ldc) {
    (void)h;
    if (m < 0 || n < 0 || k < 0) return CUBLAS_STATUS_INVALID_VALUE;
    if (!m || !n) return CUBLAS_STATUS_SUCCESS;
    cblas_sgemm(CblasColMajor, blas_op(ta), blas_op(tb), (blasint)m, (blasint)n, (blasint)k, *alpha, a, (blasint)lda,
                b, (blasint)ldb, *beta, c, (blasint)ldc);
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasCgemm_64(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int64_t m, int64_t n,
                              int64_t k, const cuComplex *alpha, const cuComplex *a, int64_t lda, const cuComplex *b,
                              int64_t ldb, const cuComplex *beta, cuComplex *c, int64_t ldc) {
    (void)h;
    if (m < 0 || n < 0 || k < 0) return CUBLAS_STATUS_INVALID_VALUE;
    if (!m || !n) return CUBLAS_STATUS_SUCCESS;
    cblas_cgemm(CblasColMajor, blas_op(ta), blas_op(tb), (blasint)m, (blasint)n, (blasint)k, alpha, a, (blasint)lda, b,
                (blasint)ldb, beta, c, (blasint)ldc);
    return CUBLAS_STATUS_SUCCESS;
}

/* ---- cuFFT ---- */

struct emu_plan {
    long long n, batch;
    bool made;
};
static std::vector<emu_plan> g_plans; /* pnn's CUDA code creates and runs plans under its own lock */

cufftResult cufftCreate(cufftHandle *plan) {
    g_plans.push_back({0, 0, false});
    *plan = (cufftHandle)g_plans.size() - 1;
    return CUFFT_SUCCESS;
}
cufftResult cufftMakePlanMany64(cufftHandle plan, int rank, long long *n, long long *inembed, long long istride,
                                long long idist, long long *onembed, long long ostride, long long odist,
                                cufftType type, long long batch, size_t *work) {
    (void)inembed, (void)onembed;
    if (plan < 0 || plan >= (int)g_plans.size()) return CUFFT_INVALID_PLAN;
    if (rank != 1 || type != CUFFT_C2C || istride != 1 || ostride != 1 || idist != n[0] || odist != n[0] || n[0] < 1 ||
        batch < 1)
        return CUFFT_INVALID_VALUE;
    g_plans[plan] = {n[0], batch, true};
    if (work) *work = 0;
    return CUFFT_SUCCESS;
}
cufftResult cufftSetStream(cufftHandle plan, cudaStream_t s) {
    (void)s;
    return plan >= 0 && plan < (int)g_plans.size() ? CUFFT_SUCCESS : CUFFT_INVALID_PLAN;
}
cufftResult cufftExecC2C(cufftHandle plan, cufftComplex *in, cufftComplex *out, int direction) {
    if (plan < 0 || plan >= (int)g_plans.size() || !g_plans[plan].made) return CUFFT_INVALID_PLAN;
    int len = (int)g_plans[plan].n;
    fftwf_plan p = fftwf_plan_many_dft(1, &len, (int)g_plans[plan].batch, (fftwf_complex *)in, NULL, 1, len,
                                       (fftwf_complex *)out, NULL, 1, len, direction, FFTW_ESTIMATE | FFTW_UNALIGNED);
    if (!p) return CUFFT_INVALID_VALUE;
    fftwf_execute(p);
    fftwf_destroy_plan(p);
    return CUFFT_SUCCESS;
}
cufftResult cufftDestroy(cufftHandle plan) {
    if (plan >= 0 && plan < (int)g_plans.size()) g_plans[plan].made = false;
    return CUFFT_SUCCESS;
}
