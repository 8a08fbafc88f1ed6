/* Status codes and the thread-local last error: every fallible call in pnn returns a
 * pnn_status, and on failure leaves a message that says what went wrong and how to fix it. */
#ifndef PNN_STATUS_H
#define PNN_STATUS_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    PNN_OK = 0,
    PNN_ERR_INVALID,     /* bad argument or usage */
    PNN_ERR_IO,          /* a read or write failed */
    PNN_ERR_FORMAT,      /* data from outside is malformed (file, message, device output) */
    PNN_ERR_DEVICE,      /* a physical or simulated device failed */
    PNN_ERR_TIMEOUT,     /* a deadline passed */
    PNN_ERR_NOMEM,       /* an allocation failed */
    PNN_ERR_CUDA,        /* a CUDA, cuBLAS or cuDNN call failed */
    PNN_ERR_UNSUPPORTED, /* asked for something this build or backend cannot do */
    PNN_ERR_NOT_FOUND,   /* an input file or run directory does not exist */
    PNN_ERR_CONFIG,      /* a configuration file or override is wrong */
    PNN_ERR_INTERRUPTED  /* stopped on request (Ctrl-C, SIGTERM) while waiting */
} pnn_status;

/* The message of the last error on this thread ("" when none). */
const char *pnn_last_error(void);
/* Where the last error was raised and the calls it went up through, "file:line <- file:line". */
const char *pnn_error_trail(void);
const char *pnn_status_name(pnn_status s);

/* Records a message (printf-style) for status s and returns s. */
pnn_status pnn_error_at(pnn_status s, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Prefixes the current message with more context ("loading config x.yaml: "). */
pnn_status pnn_error_prefix(pnn_status s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void pnn_error_trail_push(const char *file, int line);
void pnn_error_clear(void);

/* For "did you mean" in messages: the entry of list (separated by commas and spaces, e.g.
 * "n, nt, dt") closest to word within two edits, written to out (cap bytes); "" when none is. */
void pnn_suggest(const char *word, const char *list, char *out, size_t cap);
/* Levenshtein distance of two words; words over 63 bytes count as far apart. */
int pnn_edit_distance(const char *a, const char *b);

/* A process-wide stop request (a signal handler may call pnn_interrupt_request: it only stores
 * to an atomic flag). Long waits inside pnn (retry backoff, a simulated instrument's latency)
 * look at it and return PNN_ERR_INTERRUPTED, so that a stop is not held up by them. */
void pnn_interrupt_request(void);
int pnn_interrupt_requested(void);
void pnn_interrupt_clear(void);

#define PNN_ERROR(s, ...) pnn_error_at((s), __FILE__, __LINE__, __VA_ARGS__)

/* Return the status of expr if it failed, adding this place to the trail. */
#define PNN_TRY(expr)                                   \
    do {                                                \
        pnn_status pnn_try_s_ = (expr);                 \
        if (pnn_try_s_ != PNN_OK) {                     \
            pnn_error_trail_push(__FILE__, __LINE__);   \
            return pnn_try_s_;                          \
        }                                               \
    } while (0)

/* Store the status of expr in `st` and jump to `fail:` if it failed. */
#define PNN_GOTO(expr)                                  \
    do {                                                \
        st = (expr);                                    \
        if (st != PNN_OK) {                             \
            pnn_error_trail_push(__FILE__, __LINE__);   \
            goto fail;                                  \
        }                                               \
    } while (0)

#ifdef __cplusplus
}
#endif
#endif
