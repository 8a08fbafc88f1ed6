/* The thread-local last error and its trail of file:line places. */
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
