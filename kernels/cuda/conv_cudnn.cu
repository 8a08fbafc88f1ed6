/* cuDNN convolutions behind the CUDA conv2d ops (PNN_USE_CUDNN builds; empty otherwise).
 *
 * One cuDNN handle per thread on that thread's stream (as the cuBLAS handles). Descriptors are
 * made per call (microseconds); the algorithm of each (shape, direction, TF32 setting) comes
 * from cuDNN's heuristics (cudnnGet*Algorithm_v7) once and is cached. Without TF32 only
 * FMA-math algorithms qualify (exact fp32, comparable with the CPU); the backward directions
 * take deterministic algorithms only, so gradients are the same run to run. The workspace comes
 * from the caching allocator. A shape no algorithm fits returns PNN_ERR_UNSUPPORTED before any
 * work is issued, and conv_cuda.cu runs its direct kernels instead; so does any failure to set a
 * call up (handle, descriptors, heuristics, workspace), after which cuDNN is not tried again. */
#ifdef PNN_USE_CUDNN

#include <cudnn.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "kernels/cuda/cuda_common.cuh"

/* the largest workspace an algorithm may ask for */
#define CUDNN_WORKSPACE_CAP ((size_t)1 << 30)
#define CUDNN_ALGO_CACHE 64

static int dnn_not_supported(cudnnStatus_t st) {
#if CUDNN_MAJOR >= 9
    return st >= CUDNN_STATUS_NOT_SUPPORTED && st < CUDNN_STATUS_NOT_SUPPORTED + 1000;
#else
    return st == CUDNN_STATUS_NOT_SUPPORTED;
#endif
}

/* While a call is set up (handle, descriptors, algorithm, workspace) a failure is not the
 * run's: cuDNN is given up for the process (pnn_cudnn_broken) and the direct kernels take over.
 * Only a failure of the convolution itself is recorded. */
static __thread int t_setting_up;
static pthread_mutex_t g_broken_mu = PTHREAD_MUTEX_INITIALIZER;
static char g_broken[512];

static pnn_status setup_failed(const char *file, int line, const char *fmt, ...) {
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&g_broken_mu);
    if (!g_broken[0]) snprintf(g_broken, sizeof g_broken, "%s (%s:%d)", msg, file, line);
    pthread_mutex_unlock(&g_broken_mu);
    return PNN_ERR_UNSUPPORTED;
}

const char *pnn_cudnn_broken(void) {
    pthread_mutex_lock(&g_broken_mu);
    const char *why = g_broken[0] ? g_broken : NULL;
    pthread_mutex_unlock(&g_broken_mu);
    return why;
}

static pnn_status check_dnn(cudnnStatus_t st, const char *call, const char *file, int line) {
    if (st == CUDNN_STATUS_SUCCESS) return PNN_OK;
    if (t_setting_up) return setup_failed(file, line, "cuDNN error %s in %s", cudnnGetErrorString(st), call);
    return pnn_cuda_record(st == CUDNN_STATUS_ALLOC_FAILED ? PNN_ERR_NOMEM : PNN_ERR_CUDA, file, line,
                           "cuDNN error %s in %s", cudnnGetErrorString(st), call);
}
#define PNN_CUDNN_CHECK(call) check_dnn((call), #call, __FILE__, __LINE__)

/* ---- per-thread handles ---- */

static pthread_once_t g_key_once = PTHREAD_ONCE_INIT;
static pthread_key_t g_key;
static __thread cudnnHandle_t t_dnn;

static void dnn_destroy(void *h) {
    if (h) cudnnDestroy((cudnnHandle_t)h);
}
static void dnn_key_init(void) { pthread_key_create(&g_key, dnn_destroy); }

static cudnnHandle_t dnn_handle(void) {
    cudaStream_t stream = pnn_cuda_stream();
    if (!t_dnn) {
        pthread_once(&g_key_once, dnn_key_init);
        cudnnHandle_t h;
        if (PNN_CUDNN_CHECK(cudnnCreate(&h)) != PNN_OK) return NULL;
        t_dnn = h;
        pthread_setspecific(g_key, h);
    }
    if (PNN_CUDNN_CHECK(cudnnSetStream(t_dnn, stream)) != PNN_OK) return NULL;
    return t_dnn;
}

/* ---- descriptors of one call ---- */

typedef struct {
    cudnnTensorDescriptor_t x, y, bias;
    cudnnFilterDescriptor_t w;
    cudnnConvolutionDescriptor_t conv;
} conv_desc;

static void desc_free(conv_desc *d) {
    if (d->x) cudnnDestroyTensorDescriptor(d->x);
    if (d->y) cudnnDestroyTensorDescriptor(d->y);
    if (d->bias) cudnnDestroyTensorDescriptor(d->bias);
    if (d->w) cudnnDestroyFilterDescriptor(d->w);
    if (d->conv) cudnnDestroyConvolutionDescriptor(d->conv);
}

static pnn_status desc_make(const pnn_conv2d_params *p, conv_desc *d) {
    memset(d, 0, sizeof *d);
    const int64_t oh = pnn_conv2d_out_h(p), ow = pnn_conv2d_out_w(p);
    /* beyond cuDNN's 32-bit descriptors: the direct kernels */
    if (p->batch * p->in_c * p->in_h * p->in_w > INT_MAX || p->batch * p->out_c * oh * ow > INT_MAX ||
        p->out_c * p->in_c * p->kh * p->kw > INT_MAX || p->stride > INT_MAX || p->pad > INT_MAX)
        return PNN_ERR_UNSUPPORTED;
    pnn_status st = PNN_OK;
    if (st == PNN_OK) st = PNN_CUDNN_CHECK(cudnnCreateTensorDescriptor(&d->x));
    if (st == PNN_OK) st = PNN_CUDNN_CHECK(cudnnCreateTensorDescriptor(&d->y));
    if (st == PNN_OK) st = PNN_CUDNN_CHECK(cudnnCreateTensorDescriptor(&d->bias));
    if (st == PNN_OK) st = PNN_CUDNN_CHECK(cudnnCreateFilterDescriptor(&d->w));
    if (st == PNN_OK) st = PNN_CUDNN_CHECK(cudnnCreateConvolutionDescriptor(&d->conv));
    if (st == PNN_OK)
        st = PNN_CUDNN_CHECK(cudnnSetTensor4dDescriptor(d->x, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, (int)p->batch,
                                                        (int)p->in_c, (int)p->in_h, (int)p->in_w));
    if (st == PNN_OK)
        st = PNN_CUDNN_CHECK(cudnnSetTensor4dDescriptor(d->y, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, (int)p->batch,
                                                        (int)p->out_c, (int)oh, (int)ow));
    if (st == PNN_OK)
        st = PNN_CUDNN_CHECK(
            cudnnSetTensor4dDescriptor(d->bias, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, 1, (int)p->out_c, 1, 1));
    if (st == PNN_OK)
        st = PNN_CUDNN_CHECK(cudnnSetFilter4dDescriptor(d->w, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW, (int)p->out_c,
                                                        (int)p->in_c, (int)p->kh, (int)p->kw));
    if (st == PNN_OK)
        st = PNN_CUDNN_CHECK(cudnnSetConvolution2dDescriptor(d->conv, (int)p->pad, (int)p->pad, (int)p->stride,
                                                             (int)p->stride, 1, 1, CUDNN_CROSS_CORRELATION,
                                                             CUDNN_DATA_FLOAT));
    if (st == PNN_OK) {
        int n, c, h, w;
        st = PNN_CUDNN_CHECK(cudnnGetConvolution2dForwardOutputDim(d->conv, d->x, d->w, &n, &c, &h, &w));
        if (st == PNN_OK && (n != p->batch || c != p->out_c || h != oh || w != ow))
            st = setup_failed(__FILE__, __LINE__, "cuDNN computes a %dx%dx%dx%d convolution output, pnn %lldx%lldx%lldx%lld",
                              n, c, h, w, (long long)p->batch, (long long)p->out_c, (long long)oh, (long long)ow);
    }
    if (st != PNN_OK) desc_free(d);
    return st;
}

/* ---- algorithm choice, cached ---- */

enum { DIR_FORWARD, DIR_DATA, DIR_FILTER };

typedef struct {
    pnn_conv2d_params p;
    int dir, tf32, valid;
    int algo; /* the cudnnConvolution*Algo_t value; -1: none qualifies */
    cudnnMathType_t math;
    size_t workspace;
} algo_entry;

static struct {
    pthread_mutex_t mu;
    algo_entry e[CUDNN_ALGO_CACHE];
    int next;
} g_algos = {PTHREAD_MUTEX_INITIALIZER, {}, 0};

/* the first (fastest by cuDNN's estimate) result that ran, fits the cap, and is allowed */
#define PICK_ALGO(results, count, need_deterministic, tf32, out)                                         \
    for (int i_ = 0; i_ < (count); i_++) {                                                                \
        if ((results)[i_].status != CUDNN_STATUS_SUCCESS || (results)[i_].memory > CUDNN_WORKSPACE_CAP) continue; \
        if (!(tf32) && (results)[i_].mathType != CUDNN_FMA_MATH && (results)[i_].mathType != CUDNN_DEFAULT_MATH) \
            continue;                                                                                     \
        if ((need_deterministic) && (results)[i_].determinism != CUDNN_DETERMINISTIC) continue;           \
        (out)->algo = (int)(results)[i_].algo;                                                            \
        (out)->math = (tf32) ? (results)[i_].mathType : CUDNN_FMA_MATH;                                  \
        (out)->workspace = (results)[i_].memory;                                                          \
        break;                                                                                            \
    }

static pnn_status algo_find(cudnnHandle_t h, const conv_desc *d, const pnn_conv2d_params *p, int dir,
                            algo_entry *out) {
    int tf32 = pnn_cuda_tf32();
    pthread_mutex_lock(&g_algos.mu);
    for (int i = 0; i < CUDNN_ALGO_CACHE; i++) {
        algo_entry *e = &g_algos.e[i];
        if (e->valid && e->dir == dir && e->tf32 == tf32 && !memcmp(&e->p, p, sizeof *p)) {
            *out = *e;
            pthread_mutex_unlock(&g_algos.mu);
            return PNN_OK;
        }
    }
    pthread_mutex_unlock(&g_algos.mu);
    memset(out, 0, sizeof *out);
    out->p = *p, out->dir = dir, out->tf32 = tf32, out->valid = 1, out->algo = -1;
    /* without TF32 the descriptor asks for FMA math, so the heuristics rank those kernels */
    PNN_TRY(PNN_CUDNN_CHECK(cudnnSetConvolutionMathType(d->conv, tf32 ? CUDNN_DEFAULT_MATH : CUDNN_FMA_MATH)));
    int count = 0;
    if (dir == DIR_FORWARD) {
        cudnnConvolutionFwdAlgoPerf_t r[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
        PNN_TRY(PNN_CUDNN_CHECK(cudnnGetConvolutionForwardAlgorithm_v7(h, d->x, d->w, d->conv, d->y,
                                                                       CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &count, r)));
        PICK_ALGO(r, count, 0, tf32, out);
    } else if (dir == DIR_DATA) {
        cudnnConvolutionBwdDataAlgoPerf_t r[CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT];
        PNN_TRY(PNN_CUDNN_CHECK(cudnnGetConvolutionBackwardDataAlgorithm_v7(
            h, d->w, d->y, d->conv, d->x, CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT, &count, r)));
        PICK_ALGO(r, count, 1, tf32, out);
    } else {
        cudnnConvolutionBwdFilterAlgoPerf_t r[CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT];
        PNN_TRY(PNN_CUDNN_CHECK(cudnnGetConvolutionBackwardFilterAlgorithm_v7(
            h, d->x, d->y, d->conv, d->w, CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT, &count, r)));
        PICK_ALGO(r, count, 1, tf32, out);
    }
    pthread_mutex_lock(&g_algos.mu);
    g_algos.e[g_algos.next] = *out;
    g_algos.next = (g_algos.next + 1) % CUDNN_ALGO_CACHE;
    pthread_mutex_unlock(&g_algos.mu);
    return PNN_OK;
}

/* Sets up handle, descriptors, algorithm and workspace for one call; PNN_ERR_UNSUPPORTED when
 * no algorithm qualifies (nothing recorded then: the caller falls back). */
typedef struct {
    cudnnHandle_t h;
    conv_desc d;
    algo_entry a;
    void *workspace;
} conv_call;

static pnn_status call_begin(const pnn_conv2d_params *p, int dir, conv_call *c) {
    memset(c, 0, sizeof *c);
    if (pnn_cudnn_broken()) return PNN_ERR_UNSUPPORTED;
    t_setting_up = 1;
    pnn_status st = PNN_OK;
    c->h = dnn_handle();
    if (!c->h) st = PNN_ERR_UNSUPPORTED;
    if (st == PNN_OK) st = desc_make(p, &c->d);
    if (st == PNN_OK) st = algo_find(c->h, &c->d, p, dir, &c->a);
    if (st == PNN_OK && c->a.algo < 0) st = PNN_ERR_UNSUPPORTED;
    if (st == PNN_OK) st = PNN_CUDNN_CHECK(cudnnSetConvolutionMathType(c->d.conv, c->a.math));
    if (st == PNN_OK && c->a.workspace) {
        c->workspace = pnn_cuda_alloc(NULL, c->a.workspace);
        if (!c->workspace)
            st = setup_failed(__FILE__, __LINE__, "no GPU memory for a %.1f MiB cuDNN workspace",
                              c->a.workspace / 1048576.0);
    }
    t_setting_up = 0;
    if (st != PNN_OK) desc_free(&c->d);
    return st;
}

/* The status of the convolution call itself: a "not supported" (an algorithm the heuristics
 * offered but the restricted math mode cannot run) marks the shape as cuDNN-less and falls back,
 * before anything was written. */
static pnn_status call_run(conv_call *c, const pnn_conv2d_params *p, int dir, cudnnStatus_t st, const char *call,
                           int line) {
    if (st == CUDNN_STATUS_SUCCESS) return PNN_OK;
    if (dnn_not_supported(st)) {
        pthread_mutex_lock(&g_algos.mu);
        for (int i = 0; i < CUDNN_ALGO_CACHE; i++) {
            algo_entry *e = &g_algos.e[i];
            if (e->valid && e->dir == dir && e->tf32 == c->a.tf32 && !memcmp(&e->p, p, sizeof *p)) e->algo = -1;
        }
        pthread_mutex_unlock(&g_algos.mu);
        return PNN_ERR_UNSUPPORTED;
    }
    return check_dnn(st, call, __FILE__, line);
}
#define CALL_RUN(c, p, dir, expr) call_run((c), (p), (dir), (expr), #expr, __LINE__)

static void call_end(conv_call *c) {
    if (c->workspace) pnn_cuda_release(NULL, c->workspace);
    desc_free(&c->d);
}

pnn_status pnn_cudnn_conv2d_forward(const pnn_conv2d_params *p, const float *x, const float *weight, const float *bias,
                                    float *y) {
    conv_call c;
    PNN_TRY(call_begin(p, DIR_FORWARD, &c));
    const float one = 1.0f, zero = 0.0f;
    pnn_status st = CALL_RUN(&c, p, DIR_FORWARD,
                             cudnnConvolutionForward(c.h, &one, c.d.x, x, c.d.w, weight, c.d.conv,
                                                     (cudnnConvolutionFwdAlgo_t)c.a.algo, c.workspace, c.a.workspace,
                                                     &zero, c.d.y, y));
    if (st == PNN_OK && bias) st = PNN_CUDNN_CHECK(cudnnAddTensor(c.h, &one, c.d.bias, bias, &one, c.d.y, y));
    call_end(&c);
    return st;
}

pnn_status pnn_cudnn_conv2d_backward_data(const pnn_conv2d_params *p, const float *dy, const float *weight, float *dx) {
    conv_call c;
    PNN_TRY(call_begin(p, DIR_DATA, &c));
    const float one = 1.0f, zero = 0.0f;
    pnn_status st = CALL_RUN(&c, p, DIR_DATA,
                             cudnnConvolutionBackwardData(c.h, &one, c.d.w, weight, c.d.y, dy, c.d.conv,
                                                          (cudnnConvolutionBwdDataAlgo_t)c.a.algo, c.workspace,
                                                          c.a.workspace, &zero, c.d.x, dx));
    call_end(&c);
    return st;
}

/* beta = 1: the weight gradient accumulates, as the table asks */
pnn_status pnn_cudnn_conv2d_backward_filter(const pnn_conv2d_params *p, const float *x, const float *dy, float *dweight,
                                            float *dbias) {
    conv_call c;
    PNN_TRY(call_begin(p, DIR_FILTER, &c));
    const float one = 1.0f;
    pnn_status st = CALL_RUN(&c, p, DIR_FILTER,
                             cudnnConvolutionBackwardFilter(c.h, &one, c.d.x, x, c.d.y, dy, c.d.conv,
                                                            (cudnnConvolutionBwdFilterAlgo_t)c.a.algo, c.workspace,
                                                            c.a.workspace, &one, c.d.w, dweight));
    if (st == PNN_OK && dbias)
        st = PNN_CUDNN_CHECK(cudnnConvolutionBackwardBias(c.h, &one, c.d.y, dy, &one, c.d.bias, dbias));
    call_end(&c);
    return st;
}

#endif /* PNN_USE_CUDNN */
