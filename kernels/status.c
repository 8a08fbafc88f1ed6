/* The thread-local last error and its trail of file:line places, and "did you mean". Errors are
 * the bottom of the stack: every folder reports them, the kernels' CUDA code included, so this
 * file lives in kernels/ (docs/architecture.md). */
#include "pnn/status.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

static _Thread_local char last_message[2048];
static _Thread_local char last_trail[1024];

const char *pnn_last_error(void) { return last_message; }
const char *pnn_error_trail(void) { return last_trail; }

const char *pnn_status_name(pnn_status s) {
    switch (s) {
    case PNN_OK: return "ok";
    case PNN_ERR_INVALID: return "invalid argument";
    case PNN_ERR_IO: return "I/O error";
    case PNN_ERR_FORMAT: return "bad data";
    case PNN_ERR_DEVICE: return "device error";
    case PNN_ERR_TIMEOUT: return "timeout";
    case PNN_ERR_NOMEM: return "out of memory";
    case PNN_ERR_CUDA: return "CUDA error";
    case PNN_ERR_UNSUPPORTED: return "unsupported";
    case PNN_ERR_NOT_FOUND: return "not found";
    case PNN_ERR_CONFIG: return "bad configuration";
    case PNN_ERR_INTERRUPTED: return "interrupted";
    }
    return "unknown status";
}

pnn_status pnn_error_at(pnn_status s, const char *file, int line, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_message, sizeof last_message, fmt, ap);
    va_end(ap);
    snprintf(last_trail, sizeof last_trail, "%s:%d", file, line);
    return s;
}

pnn_status pnn_error_prefix(pnn_status s, const char *fmt, ...) {
    char combined[sizeof last_message];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(combined, sizeof combined, fmt, ap);
    va_end(ap);
    if (n < 0) return s;
    size_t off = (size_t)n < sizeof combined ? (size_t)n : sizeof combined - 1;
    size_t len = strlen(last_message);
    if (len > sizeof combined - 1 - off) len = sizeof combined - 1 - off;
    memcpy(combined + off, last_message, len);
    combined[off + len] = '\0';
    memcpy(last_message, combined, off + len + 1);
    return s;
}

void pnn_error_trail_push(const char *file, int line) {
    size_t n = strlen(last_trail);
    if (n + 8 < sizeof last_trail)
        snprintf(last_trail + n, sizeof last_trail - n, " <- %s:%d", file, line);
}

void pnn_error_clear(void) {
    last_message[0] = '\0';
    last_trail[0] = '\0';
}

/* a lock-free atomic: safe to set from a signal handler and to read from any thread */
static atomic_int interrupt_flag;

void pnn_interrupt_request(void) { atomic_store(&interrupt_flag, 1); }
int pnn_interrupt_requested(void) { return atomic_load(&interrupt_flag) != 0; }
void pnn_interrupt_clear(void) { atomic_store(&interrupt_flag, 0); }

int pnn_edit_distance(const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
    if (la > 63 || lb > 63) return 1 << 20;
    int prev[64], cur[64];
    for (size_t j = 0; j <= lb; j++) prev[j] = (int)j;
    for (size_t i = 1; i <= la; i++) {
        cur[0] = (int)i;
        for (size_t j = 1; j <= lb; j++) {
            int sub = prev[j - 1] + (a[i - 1] != b[j - 1]);
            int del = prev[j] + 1, ins = cur[j - 1] + 1;
            cur[j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
        }
        memcpy(prev, cur, (lb + 1) * sizeof cur[0]);
    }
    return prev[lb];
}

void pnn_suggest(const char *word, const char *list, char *out, size_t cap) {
    int best = 3;
    if (cap) out[0] = '\0';
    for (const char *p = list; *p;) {
        size_t len = strcspn(p, ", ");
        char entry[64];
        if (len && len < sizeof entry) {
            memcpy(entry, p, len);
            entry[len] = '\0';
            char *eq = strchr(entry, '='); /* "n=100": the key */
            if (eq) *eq = '\0';
            int d = pnn_edit_distance(word, entry);
            if (d < best && d < (int)strlen(entry)) {
                best = d;
                snprintf(out, cap, "%s", entry);
            }
        }
        p += len;
        p += strspn(p, ", ");
    }
}
