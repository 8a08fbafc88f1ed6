/* The CUDA backend: the pnn_backend_i table over one GPU, its start-up, error recording,
 * per-thread streams and cuBLAS handles, the caching allocator, memory transfers and GEMM.
 * The other ops live in ops_cuda.cu and conv_cuda.cu (a system's own kernels in kernels/systems/).
 *
 * Allocator: device memory comes from cudaMalloc in size classes (four per power of two, so at
 * most 25% is wasted; 512 bytes at least) and goes back to a free list of its class, never to
 * the driver, except when cudaMalloc fails (then every cached block is freed and it tries once
 * more). No managed memory. A mutex guards the lists. A released block records an event on the
 * releasing thread's stream; whoever takes it next makes its own stream wait for that event, so
 * a block is never rewritten while another thread's kernel still reads it.
 *
 * cuBLAS: one handle per thread (created on first use, destroyed at thread exit), bound to that
 * thread's stream; cuBLAS handles must not be shared between threads that issue concurrently.
 * GEMMs are exact fp32 unless TF32 is switched on (pnn_cuda_set_tf32 or PNN_CUDA_TF32=1). */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cuda/cuda_common.cuh"

/* ---- device and settings ---- */

static struct {
    pthread_once_t once;
    pnn_status init_status;
    char init_message[512];
    int device;
    int sm_count;
    size_t smem_optin;
    char name[384];
    int shared_stream; /* PNN_CUDA_STREAMS=shared */
    volatile int tf32, conv_direct;
} g_dev = {PTHREAD_ONCE_INIT, PNN_OK, "", 0, 0, 0, "", 0, 0, 0};

static __thread int t_device_set; /* this thread has called cudaSetDevice */

int pnn_cuda_sm_count(void) { return g_dev.sm_count > 0 ? g_dev.sm_count : 1; }
size_t pnn_cuda_smem_optin(void) { return g_dev.smem_optin; }
int pnn_cuda_tf32(void) { return g_dev.tf32; }
int pnn_cuda_conv_direct(void) { return g_dev.conv_direct; }
const char *pnn_cuda_device_name(void) { return g_dev.name; }
void pnn_cuda_set_tf32(int on) { g_dev.tf32 = on != 0; }
void pnn_cuda_set_conv_direct(int on) { g_dev.conv_direct = on != 0; }

cudaStream_t pnn_cuda_stream(void) {
    if (!t_device_set) {
        cudaSetDevice(g_dev.device);
        t_device_set = 1;
    }
    return g_dev.shared_stream ? cudaStreamLegacy : cudaStreamPerThread;
}

/* ---- errors: the thread-local message, and the first error kept for pnn_cuda_backend_status ---- */

static struct {
    pthread_mutex_t mu;
    pnn_status status;
    char message[1024];
} g_err = {PTHREAD_MUTEX_INITIALIZER, PNN_OK, ""};

static const char *base_name(const char *path) {
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

pnn_status pnn_cuda_record(pnn_status st, const char *file, int line, const char *fmt, ...) {
    char msg[900];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    pnn_error_at(st, file, line, "%s", msg);
    pthread_mutex_lock(&g_err.mu);
    if (g_err.status == PNN_OK) {
        g_err.status = st;
        snprintf(g_err.message, sizeof g_err.message, "%s (%s:%d)", msg, base_name(file), line);
    }
    pthread_mutex_unlock(&g_err.mu);
    return st;
}

pnn_status pnn_cuda_check_rt(cudaError_t err, const char *call, const char *file, int line) {
    if (err == cudaSuccess) return PNN_OK;
    return pnn_cuda_record(PNN_ERR_CUDA, file, line, "CUDA error %s (%s) in %s", cudaGetErrorName(err),
                           cudaGetErrorString(err), call);
}

pnn_status pnn_cuda_check_blas(cublasStatus_t st, const char *call, const char *file, int line) {
    if (st == CUBLAS_STATUS_SUCCESS) return PNN_OK;
    return pnn_cuda_record(st == CUBLAS_STATUS_ALLOC_FAILED ? PNN_ERR_NOMEM : PNN_ERR_CUDA, file, line,
                           "cuBLAS error %s in %s", cublasGetStatusString(st), call);
}

pnn_status pnn_cuda_backend_status(void) {
    PNN_CUDA_CHECK(cudaStreamSynchronize(pnn_cuda_stream()));
    PNN_CUDA_CHECK(cudaGetLastError());
    pthread_mutex_lock(&g_err.mu);
    pnn_status st = g_err.status;
    char message[sizeof g_err.message];
    memcpy(message, g_err.message, sizeof message);
    g_err.status = PNN_OK;
    g_err.message[0] = '\0';
    pthread_mutex_unlock(&g_err.mu);
    if (st != PNN_OK) pnn_error_at(st, __FILE__, __LINE__, "CUDA backend: %s", message);
    return st;
}

/* ---- per-thread cuBLAS handles ---- */

static pthread_key_t g_blas_key;
static __thread cublasHandle_t t_blas;
static __thread int t_blas_tf32 = -1;

static void blas_destroy(void *handle) {
    if (handle) cublasDestroy((cublasHandle_t)handle);
}

cublasHandle_t pnn_cuda_cublas(void) {
    cudaStream_t stream = pnn_cuda_stream();
    if (!t_blas) {
        cublasHandle_t h;
        if (PNN_CUBLAS_CHECK(cublasCreate(&h)) != PNN_OK) return NULL;
        if (PNN_CUBLAS_CHECK(cublasSetStream(h, stream)) != PNN_OK) {
            cublasDestroy(h);
            return NULL;
        }
        t_blas = h;
        t_blas_tf32 = -1;
        pthread_setspecific(g_blas_key, h); /* destroyed when the thread exits */
    }
    int tf32 = g_dev.tf32;
    if (tf32 != t_blas_tf32) {
        cublasMath_t mode = tf32 ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH;
        if (PNN_CUBLAS_CHECK(cublasSetMathMode(t_blas, mode)) != PNN_OK) return NULL;
        t_blas_tf32 = tf32;
    }
    return t_blas;
}

/* Row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T: a row-major matrix is its
 * transpose seen column-major, so cuBLAS gets B before A, n before m, and the same leading
 * dimensions and transpose flags. */
void pnn_cuda_gemm(void *ctx, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                   const float *a, int64_t lda, const float *b, int64_t ldb, float beta, float *c, int64_t ldc) {
    (void)ctx;
    if (m == 0 || n == 0) return;
    cublasHandle_t h = pnn_cuda_cublas();
    if (!h) return;
    PNN_CUBLAS_CHECK(cublasSgemm_64(h, trans_b ? CUBLAS_OP_T : CUBLAS_OP_N, trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, n,
                                    m, k, &alpha, b, ldb, a, lda, &beta, c, ldc));
}

/* ---- the caching allocator ---- */

#define POOL_CLASSES 200
#define POOL_BUCKETS 4096
#define POOL_MIN_BYTES 512

typedef struct pool_block {
    void *ptr;
    size_t bytes; /* the class size actually allocated */
    int cls;
    cudaEvent_t released; /* recorded on the stream of the last release; NULL until then */
    struct pool_block *next;
} pool_block;

static struct {
    pthread_mutex_t mu;
    pool_block *free_list[POOL_CLASSES];
    pool_block *live[POOL_BUCKETS]; /* blocks in use, hashed by pointer */
    size_t reserved, in_use;
} g_pool = {PTHREAD_MUTEX_INITIALIZER, {0}, {0}, 0, 0};

/* The class of a request and its size: 2^e, 1.25 2^e, 1.5 2^e or 1.75 2^e. */
static int pool_class(size_t bytes, size_t *class_bytes) {
    if (bytes < POOL_MIN_BYTES) bytes = POOL_MIN_BYTES;
    int e = 63 - __builtin_clzll((unsigned long long)bytes); /* 2^e <= bytes < 2^(e+1) */
    size_t base = (size_t)1 << e, step = base / 4;
    size_t quarters = (bytes - base + step - 1) / step; /* 0..4 */
    if (quarters == 4) {
        e++;
        base <<= 1;
        quarters = 0;
    }
    *class_bytes = base + quarters * (base / 4);
    return (e - 9) * 4 + (int)quarters;
}

static unsigned pool_bucket(const void *ptr) {
    uintptr_t v = (uintptr_t)ptr >> 9;
    return (unsigned)((v ^ (v >> 13)) % POOL_BUCKETS);
}

/* Frees every cached block (after the GPU is idle), so a large request can be met. */
static void pool_trim(void) {
    cudaDeviceSynchronize();
    pthread_mutex_lock(&g_pool.mu);
    for (int c = 0; c < POOL_CLASSES; c++) {
        pool_block *b = g_pool.free_list[c];
        while (b) {
            pool_block *next = b->next;
            cudaFree(b->ptr);
            if (b->released) cudaEventDestroy(b->released);
            g_pool.reserved -= b->bytes;
            free(b);
            b = next;
        }
        g_pool.free_list[c] = NULL;
    }
    pthread_mutex_unlock(&g_pool.mu);
}

void *pnn_cuda_alloc(void *ctx, size_t bytes) {
    (void)ctx;
#ifdef PNN_CUDA_EMU
    /* the CPU tier: every buffer exactly its size, so AddressSanitizer sees an overflow by one */
    void *exact = NULL;
    if (PNN_CUDA_CHECK(cudaMalloc(&exact, bytes)) != PNN_OK) return NULL;
    return exact;
#endif
    size_t class_bytes;
    int cls = pool_class(bytes, &class_bytes);
    if (cls < 0 || cls >= POOL_CLASSES) {
        PNN_CUDA_FAIL(PNN_ERR_NOMEM, "CUDA allocation of %zu bytes is beyond any size class", bytes);
        return NULL;
    }
    cudaStream_t stream = pnn_cuda_stream();
    pthread_mutex_lock(&g_pool.mu);
    pool_block *b = g_pool.free_list[cls];
    if (b) g_pool.free_list[cls] = b->next;
    pthread_mutex_unlock(&g_pool.mu);
    if (b) {
        /* the last user's work on it (on its stream) finishes before ours starts */
        if (b->released) PNN_CUDA_CHECK(cudaStreamWaitEvent(stream, b->released, 0));
    } else {
        b = (pool_block *)calloc(1, sizeof *b);
        if (!b) {
            PNN_CUDA_FAIL(PNN_ERR_NOMEM, "out of host memory for CUDA allocator bookkeeping");
            return NULL;
        }
        cudaError_t err = cudaMalloc(&b->ptr, class_bytes);
        if (err == cudaErrorMemoryAllocation) {
            cudaGetLastError(); /* clear it: trim and retry once */
            pool_trim();
            err = cudaMalloc(&b->ptr, class_bytes);
        }
        if (err != cudaSuccess) {
            cudaGetLastError();
            size_t free_b = 0, total_b = 0;
            cudaMemGetInfo(&free_b, &total_b);
            /* an out-of-memory is the caller's to report (alloc returns NULL); only note it here */
            pnn_error_at(PNN_ERR_NOMEM, __FILE__, __LINE__,
                         "cudaMalloc of %.1f MiB failed (%s); %.1f of %.1f MiB free on the GPU",
                         class_bytes / 1048576.0, cudaGetErrorString(err), free_b / 1048576.0,
                         total_b / 1048576.0);
            free(b);
            return NULL;
        }
        b->bytes = class_bytes;
        b->cls = cls;
        pthread_mutex_lock(&g_pool.mu);
        g_pool.reserved += class_bytes;
        pthread_mutex_unlock(&g_pool.mu);
    }
    pthread_mutex_lock(&g_pool.mu);
    unsigned h = pool_bucket(b->ptr);
    b->next = g_pool.live[h];
    g_pool.live[h] = b;
    g_pool.in_use += b->bytes;
    pthread_mutex_unlock(&g_pool.mu);
    return b->ptr;
}

void pnn_cuda_release(void *ctx, void *ptr) {
    (void)ctx;
    if (!ptr) return;
#ifdef PNN_CUDA_EMU
    cudaFree(ptr);
    return;
#endif
    cudaStream_t stream = pnn_cuda_stream();
    pthread_mutex_lock(&g_pool.mu);
    unsigned h = pool_bucket(ptr);
    pool_block **link = &g_pool.live[h];
    while (*link && (*link)->ptr != ptr) link = &(*link)->next;
    pool_block *b = *link;
    if (b) {
        *link = b->next;
        g_pool.in_use -= b->bytes;
    }
    pthread_mutex_unlock(&g_pool.mu);
    if (!b) {
        PNN_CUDA_FAIL(PNN_ERR_INVALID, "CUDA release of %p, which this backend did not allocate (or freed twice)",
                      ptr);
        return;
    }
    if (!b->released) PNN_CUDA_CHECK(cudaEventCreateWithFlags(&b->released, cudaEventDisableTiming));
    if (b->released) PNN_CUDA_CHECK(cudaEventRecord(b->released, stream));
    pthread_mutex_lock(&g_pool.mu);
    b->next = g_pool.free_list[b->cls];
    g_pool.free_list[b->cls] = b;
    pthread_mutex_unlock(&g_pool.mu);
}

void pnn_cuda_memory_stats(size_t *reserved, size_t *in_use) {
    pthread_mutex_lock(&g_pool.mu);
    *reserved = g_pool.reserved;
    *in_use = g_pool.in_use;
    pthread_mutex_unlock(&g_pool.mu);
}

/* ---- transfers ---- */

/* returns once host holds the data */
static void cuda_to_host(void *ctx, void *host, const void *src, size_t bytes) {
    (void)ctx;
    if (!bytes) return;
    cudaStream_t s = pnn_cuda_stream();
    if (PNN_CUDA_CHECK(cudaMemcpyAsync(host, src, bytes, cudaMemcpyDeviceToHost, s)) == PNN_OK)
        PNN_CUDA_CHECK(cudaStreamSynchronize(s));
}

/* returns once the host buffer may be reused: a copy from pageable memory is staged before
 * cudaMemcpyAsync returns; from page-locked memory it is not, so that case waits */
static void cuda_from_host(void *ctx, void *dst, const void *host, size_t bytes) {
    (void)ctx;
    if (!bytes) return;
    cudaStream_t s = pnn_cuda_stream();
    if (PNN_CUDA_CHECK(cudaMemcpyAsync(dst, host, bytes, cudaMemcpyHostToDevice, s)) != PNN_OK) return;
    cudaPointerAttributes attr;
    if (cudaPointerGetAttributes(&attr, host) == cudaSuccess && attr.type == cudaMemoryTypeHost)
        PNN_CUDA_CHECK(cudaStreamSynchronize(s));
    cudaGetLastError(); /* an unregistered host pointer is not an error */
}

static void cuda_copy(void *ctx, void *dst, const void *src, size_t bytes) {
    (void)ctx;
    if (!bytes || dst == src) return;
    PNN_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, pnn_cuda_stream()));
}

static void cuda_sync(void *ctx) {
    (void)ctx;
    PNN_CUDA_CHECK(cudaStreamSynchronize(pnn_cuda_stream()));
}

/* ---- the table ---- */

/* Events that hand results from one thread's stream to another's (a device worker to the
 * training thread and back). A failure is recorded, and a NULL event makes the wait a full sync. */
static void *cuda_event_record(void *ctx) {
    (void)ctx;
    cudaEvent_t ev;
    if (PNN_CUDA_CHECK(cudaEventCreateWithFlags(&ev, cudaEventDisableTiming)) != PNN_OK) return NULL;
    if (PNN_CUDA_CHECK(cudaEventRecord(ev, pnn_cuda_stream())) != PNN_OK) {
        cudaEventDestroy(ev);
        return NULL;
    }
    return ev;
}

static void cuda_event_wait(void *ctx, void *event) {
    (void)ctx;
    if (event) PNN_CUDA_CHECK(cudaStreamWaitEvent(pnn_cuda_stream(), (cudaEvent_t)event, 0));
    else PNN_CUDA_CHECK(cudaDeviceSynchronize());
}

static void cuda_event_free(void *ctx, void *event) {
    (void)ctx;
    if (event) cudaEventDestroy((cudaEvent_t)event);
}

static pnn_status cuda_status(void *ctx) {
    (void)ctx;
    return pnn_cuda_backend_status();
}

static const pnn_backend_i cuda_iface = {
    .name = "cuda",
    .alloc = pnn_cuda_alloc,
    .release = pnn_cuda_release,
    .to_host = cuda_to_host,
    .from_host = cuda_from_host,
    .copy = cuda_copy,
    .fill = pnn_cuda_fill,
    .sync = cuda_sync,
    .event_record = cuda_event_record,
    .event_wait = cuda_event_wait,
    .event_free = cuda_event_free,
    .status = cuda_status,
    .gemm = pnn_cuda_gemm,
    .cgemm = pnn_cuda_cgemm,
    .fft = pnn_cuda_fft,
    .count_nonfinite = pnn_cuda_count_nonfinite,
    .rng_normal = pnn_cuda_rng_normal,
    .copy2d = pnn_cuda_copy2d,
    .axpby = pnn_cuda_axpby,
    .scale = pnn_cuda_scale,
    .clamp = pnn_cuda_clamp,
    .dot = pnn_cuda_dot,
    .add_bias = pnn_cuda_add_bias,
    .bias_grad = pnn_cuda_bias_grad,
    .act_forward = pnn_cuda_act_forward,
    .act_backward = pnn_cuda_act_backward,
    .patchify = pnn_cuda_patchify,
    .unpatchify = pnn_cuda_unpatchify,
    .softmax_xent = pnn_cuda_softmax_xent,
    .mse = pnn_cuda_mse,
    .adam_update = pnn_cuda_adam_update,
    .sgd_update = pnn_cuda_sgd_update,
    .conv2d_work_floats = pnn_cuda_conv2d_work_floats,
    .conv2d_forward = pnn_cuda_conv2d_forward,
    .conv2d_backward_data = pnn_cuda_conv2d_backward_data,
    .conv2d_backward_filter = pnn_cuda_conv2d_backward_filter,
};

static const pnn_backend cuda_backend = {&cuda_iface, NULL};

/* ---- start-up ---- */

int pnn_cuda_device_count(void) {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        cudaGetLastError();
        return 0;
    }
    return n;
}

static int env_flag(const char *name) {
    const char *v = getenv(name);
    return v && *v && strcmp(v, "0") != 0;
}

static void cuda_init_once(void) {
    int count = 0;
    cudaError_t err = cudaGetDeviceCount(&count);
    if (err != cudaSuccess || count == 0) {
        cudaGetLastError();
        g_dev.init_status = PNN_ERR_UNSUPPORTED;
        snprintf(g_dev.init_message, sizeof g_dev.init_message,
                 "no CUDA device found: %s; use backend: cpu",
                 err != cudaSuccess ? cudaGetErrorString(err) : "the driver reports 0 GPUs");
        return;
    }
    const char *dev = getenv("PNN_CUDA_DEVICE");
    g_dev.device = dev && *dev ? atoi(dev) : 0;
    if (g_dev.device < 0 || g_dev.device >= count) {
        g_dev.init_status = PNN_ERR_INVALID;
        snprintf(g_dev.init_message, sizeof g_dev.init_message,
                 "PNN_CUDA_DEVICE=%s, but there are %d CUDA devices (0..%d)", dev, count, count - 1);
        return;
    }
    cudaDeviceProp prop;
    err = cudaSetDevice(g_dev.device);
    if (err == cudaSuccess) err = cudaGetDeviceProperties(&prop, g_dev.device);
    if (err == cudaSuccess) err = cudaFree(0); /* creates the context now, not in the first op */
    if (err != cudaSuccess) {
        g_dev.init_status = PNN_ERR_CUDA;
        snprintf(g_dev.init_message, sizeof g_dev.init_message, "cannot start CUDA device %d: %s",
                 g_dev.device, cudaGetErrorString(err));
        cudaGetLastError();
        return;
    }
    t_device_set = 1;
    g_dev.sm_count = prop.multiProcessorCount;
    g_dev.smem_optin = prop.sharedMemPerBlockOptin;
    snprintf(g_dev.name, sizeof g_dev.name, "%s, sm_%d%d, %d SMs, %.0f GiB", prop.name, prop.major, prop.minor,
             prop.multiProcessorCount, prop.totalGlobalMem / 1073741824.0);
    const char *streams = getenv("PNN_CUDA_STREAMS");
    g_dev.shared_stream = streams && !strcmp(streams, "shared");
    g_dev.tf32 = env_flag("PNN_CUDA_TF32");
    pthread_key_create(&g_blas_key, blas_destroy);
}

pnn_status pnn_cuda_backend_get(const pnn_backend **be) {
    pthread_once(&g_dev.once, cuda_init_once);
    if (g_dev.init_status != PNN_OK) return PNN_ERROR(g_dev.init_status, "%s", g_dev.init_message);
    *be = &cuda_backend;
    return PNN_OK;
}
