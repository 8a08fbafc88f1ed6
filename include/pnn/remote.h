/* Remote devices: a physical system served by another process or machine over ZeroMQ, speaking
 * pnn-device/1 (PROTOCOL.md of the design notes). The client is a pnn_device opened
 * from "remote:tcp://host:port?token=..." (pnn_device_open dispatches here); the server serves
 * any pnn_device to such clients (`pnn serve`). */
#ifndef PNN_REMOTE_H
#define PNN_REMOTE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "pnn/device.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The error codes of pnn-device/1 replies. */
typedef enum pnn_remote_error {
    PNN_REMOTE_OK = 0,
    PNN_REMOTE_BAD_REQUEST,  /* unparseable header, missing field, wrong frame count */
    PNN_REMOTE_BAD_SHAPE,    /* a frame's byte length does not match */
    PNN_REMOTE_TOO_LARGE,    /* batch over max_batch, or a message over the server's size limit */
    PNN_REMOTE_UNAUTHORIZED, /* token missing or wrong */
    PNN_REMOTE_UNKNOWN_OP,
    PNN_REMOTE_DEVICE_FAULT, /* the instrument failed; the request may be retried */
    PNN_REMOTE_BUSY,
    PNN_REMOTE_N_ERRORS
} pnn_remote_error;

/* "bad_request", ...; "ok" for PNN_REMOTE_OK */
const char *pnn_remote_error_name(pnn_remote_error e);

/* ---- client ---- */

/* Opens "remote:ENDPOINT[?key=value&...]", ENDPOINT tcp://host:port or ipc://path. Keys:
 *   token=SECRET        given at the ZeroMQ handshake (PLAIN, password SECRET, user "pnn") and in
 *                       every request header; a server that does not speak PLAIN (a pnn-device/1
 *                       server that checks headers only) is detected at open and then gets the
 *                       token in headers only. Non-empty UTF-8 without control characters.
 *   token_file=PATH     the token is the first line of PATH (keeps it out of configs and logs)
 *   timeout_ms=N        deadline of each request (default 10000); a late reply is dropped
 *   server_key=KEY      the server's CURVE public key: its .pub file, or its 40 Z85 characters
 *                       %XX-escaped (Z85 uses & ? = % and others)
 *   client_key=PATH     this client's key pair file (pnn keygen); needed with server_key
 * Values may be %XX-escaped. Asks the server for `info` at open; a server that does not answer
 * within the deadline is PNN_ERR_DEVICE; one that refuses the handshake (it needs a token or CURVE
 * keys this client lacks, or the token or key is wrong) is PNN_ERR_INVALID at once, saying which;
 * an info reply whose dims are over the device limits is PNN_ERR_FORMAT. The device's info: dims,
 * max_batch and ranges as the server reports them; system = the server's "name"; theta parts as
 * the server lists them ("theta_parts", optional) or one part "theta" [theta_dim]; uri =
 * "remote:ENDPOINT" (no secrets); system_uri = the server's "system_uri" (optional; e.g. sim:oscillator?n=40&nt=10),
 * from which a twin reads the system's settings, or "remote:NAME" when the server names none.
 *
 * forward() failures: PNN_ERR_DEVICE for device_fault/busy, PNN_ERR_TIMEOUT for a passed deadline
 * (both may be retried), PNN_ERR_INVALID for a refused request (the server's message and what to
 * fix), PNN_ERR_FORMAT at once for a reply that cannot be read (not JSON, a header over 64 KiB,
 * a wrong payload). One request at a time per device; the device may be used from any one thread
 * at a time. */
pnn_status pnn_remote_open(const char *uri, const pnn_backend *be, pnn_device **out);

typedef struct pnn_remote_stats {
    uint64_t requests;                /* requests sent */
    uint64_t replies;                 /* replies delivered to the request waiting for them */
    uint64_t error_replies;           /* of those, ok: false */
    uint64_t timeouts;                /* requests whose deadline passed */
    uint64_t late_or_unknown_replies; /* dropped: after their deadline, or an id nobody waits for */
    const char *mechanism;            /* the ZeroMQ security of the connection: "NULL", "PLAIN", "CURVE" */
} pnn_remote_stats;

/* The counters of a remote device; PNN_ERR_INVALID for a device that is not remote. */
pnn_status pnn_remote_stats_get(const pnn_device *dev, pnn_remote_stats *out);

/* Writes a new CURVE key pair to path ("public=<Z85>\nsecret=<Z85>\n", mode 0600) and its public
 * half to path.pub (mode 0644), each through a temporary file and a rename. Refuses to replace an
 * existing file unless overwrite. */
pnn_status pnn_remote_keygen(const char *path, int overwrite);

/* ---- server ---- */

#define PNN_SERVER_DEFAULT_BIND "tcp://127.0.0.1:5555"
#define PNN_SERVER_DEFAULT_MAX_BYTES ((size_t)256 << 20)
/* max_pending_bytes that turns the memory watchdog off */
#define PNN_SERVER_NO_WATCHDOG SIZE_MAX

/* Security: with CURVE, clients are let in by public key (ZAP); else with a token, by the ZMTP PLAIN
 * handshake whose password must be the token (ZAP; the user name is not looked at); else anyone who
 * reaches the endpoint. The token is also checked in every request header. A peer that has not
 * passed the handshake can make the server hold at most one frame of it (up to max_frame bytes:
 * ZeroMQ allocates a frame whole when its size arrives) per connection, until the handshake fails
 * or times out (ZeroMQ's 30 s); the watchdog counts these too.
 *
 * What the others can make it hold: frames are bounded by max_frame (the largest frame a request
 * to this device can need, doubled so that near misses still get a too_large reply, plus 64 KiB);
 * but ZeroMQ keeps a message's frames until its last one comes, outside any high-water mark. So
 * a watchdog thread looks at the process's heap in use (glibc mallinfo2) every 10 ms, device
 * calls or not; past max_pending_bytes above what it held when serving began (its own buffers'
 * growth excepted) it shuts down every connection to the endpoint (the kernel sockets, found in
 * /proc/self/fd), so that ZeroMQ frees their unfinished messages (complete ones already queued
 * are still read and answered, into the void). Clients reconnect by
 * themselves; their requests in flight time out (the device queue retries them). The heap is the
 * whole process's: the watchdog is meant for a process that serves (pnn serve); a device that
 * grows its own buffers may cause one drop, after which the larger heap is the new baseline.
 * Without mallinfo2 (not glibc) the watchdog is off. */
typedef struct pnn_server_config {
    const char *bind;               /* NULL: PNN_SERVER_DEFAULT_BIND; port "*" picks a free one */
    const char *token;              /* NULL or "": no token; else see pnn_proto_token_check */
    const char *curve_key_file;     /* the server's key pair file; NULL: no CURVE */
    const char *const *allow_clients; /* CURVE client public keys: Z85, key files or directories of them */
    int n_allow_clients;
    int insecure;                   /* allow a non-loopback TCP address without CURVE */
    size_t max_message_bytes;       /* 0: PNN_SERVER_DEFAULT_MAX_BYTES */
    size_t max_pending_bytes;       /* the watchdog's bound; 0: twice the largest request or reply
                                       of this device (within max_message_bytes) + 64 MiB;
                                       PNN_SERVER_NO_WATCHDOG: off */
    int token_in_header_only;       /* with a token and no CURVE: no PLAIN handshake, the token is
                                       checked in headers only (clients of pnn-device/1 that do not
                                       speak PLAIN); then anyone who reaches the endpoint can make
                                       the server hold up to max_pending_bytes */
    int use_rep;                    /* a REP socket instead of ROUTER */
    int poll_ms;                    /* how often the stop flag is looked at; 0: 100 */
    FILE *log;                      /* a line for each watchdog drop (written from its thread); NULL: none */
} pnn_server_config;

typedef struct pnn_server_stats {
    uint64_t requests;                        /* messages received */
    uint64_t ok;                              /* answered with ok: true */
    uint64_t errors[PNN_REMOTE_N_ERRORS];     /* answered with each error code */
    uint64_t forward_rows;
    uint64_t bytes_in, bytes_out;
    uint64_t curve_accepted, curve_denied;    /* CURVE handshakes (ZAP) */
    uint64_t plain_accepted, plain_denied;    /* PLAIN handshakes (ZAP): the token right or wrong */
    uint64_t drops;                           /* times the watchdog dropped every connection */
    uint64_t pending_peak;                    /* most bytes the watchdog saw held beyond the baseline */
} pnn_server_stats;

/* What a server bounds (see pnn_server_config). */
typedef struct pnn_server_bounds {
    const char *security;  /* "NULL", "PLAIN" or "CURVE" */
    size_t max_frame;      /* a bigger frame disconnects its peer (ZMQ_MAXMSGSIZE) */
    size_t max_pending;    /* the watchdog's bound; 0 when it is off */
} pnn_server_bounds;

typedef struct pnn_server pnn_server;

/* Binds the endpoint (loopback by default; a non-loopback TCP address needs CURVE or insecure:
 * PNN_ERR_CONFIG otherwise) and checks the key files. The device stays the caller's. */
pnn_status pnn_server_create(pnn_device *dev, const pnn_server_config *cfg, pnn_server **out);
/* The endpoint bound, with the port resolved ("tcp://127.0.0.1:41234"). */
const char *pnn_server_endpoint(const pnn_server *s);
void pnn_server_get_bounds(const pnn_server *s, pnn_server_bounds *out);
/* Answers requests until *stop becomes nonzero (checked every poll_ms and after signals), with the
 * memory watchdog running beside it. Bad requests never stop it; only a broken socket does. */
pnn_status pnn_server_serve(pnn_server *s, volatile int *stop);
/* Counters so far (may be called from another thread while serving). */
void pnn_server_get_stats(pnn_server *s, pnn_server_stats *out);
void pnn_server_free(pnn_server *s);

/* create + serve + free; stats (may be NULL) gets the final counters. */
pnn_status pnn_server_run(pnn_device *dev, const pnn_server_config *cfg, volatile int *stop,
                          pnn_server_stats *stats);

#ifdef __cplusplus
}
#endif
#endif
