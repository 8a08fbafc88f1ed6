/* pnn-device/1 (docs: ../shared/PROTOCOL.md), the parts both ends share: error codes, the
 * request parser, reply builders, the reply parser, key files, and the socket-free entry point of
 * the server that the fuzzers drive. Private to hwbridge/remote and its tests and fuzzers.
 *
 * Parsing is pure: bytes in, a struct and an error code out, with no allocation that depends on
 * a size taken from the message. Payload pointers point into the caller's frames and may be
 * unaligned: read them with memcpy. */
#ifndef PNN_REMOTE_PROTOCOL_H
#define PNN_REMOTE_PROTOCOL_H

#include <stddef.h>
#include <stdint.h>

#include "pnn/device.h"
#include "pnn/remote.h"

#define PNN_PROTO_VERSION "pnn-device/1"
/* a JSON header longer than this is refused before it is parsed */
#define PNN_PROTO_MAX_HEADER 4096
/* more frames than this after the envelope are refused without being looked at */
#define PNN_PROTO_MAX_FRAMES 8
/* a device error message carried in a reply is cut at this length */
#define PNN_PROTO_MAX_MESSAGE 400
/* a reply header longer than this fails the request (an info reply with every optional field is
 * under 2 KiB; the room is for fields a server adds beyond PROTOCOL.md) */
#define PNN_PROTO_MAX_REPLY_HEADER 65536
/* the ZMTP PLAIN user name pnn's client sends; servers look only at the password (the token) */
#define PNN_PROTO_PLAIN_USER "pnn"

/* Every ZeroMQ call is checked: on failure the status names the call, file, line and errno text. */
#define PNN_ZMQ_CHECK(call)                                                                          \
    do {                                                                                             \
        if ((call) == -1) {                                                                          \
            st = pnn_error_at(PNN_ERR_IO, __FILE__, __LINE__, "ZeroMQ call %s failed: %s", #call,    \
                              zmq_strerror(zmq_errno()));                                            \
            goto fail;                                                                               \
        }                                                                                            \
    } while (0)
/* The same for a return code already taken (call names the call that returned it). */
#define PNN_ZMQ_CHECK_RC(rc, call)                                                                   \
    do {                                                                                             \
        if ((rc) == -1) {                                                                            \
            st = pnn_error_at(PNN_ERR_IO, __FILE__, __LINE__, "ZeroMQ call %s failed: %s", call,     \
                              zmq_strerror(zmq_errno()));                                            \
            goto fail;                                                                               \
        }                                                                                            \
    } while (0)

typedef enum { PNN_OP_INFO, PNN_OP_FORWARD, PNN_OP_PING } pnn_proto_op;

/* One frame: bytes owned by someone else. */
typedef struct pnn_proto_frame {
    const void *data;
    size_t size;
} pnn_proto_frame;

/* What a server checks a request against. */
typedef struct pnn_proto_limits {
    int64_t x_dim, theta_dim, y_dim, max_batch;
    float x_range[2], theta_range[2];
    size_t max_message;    /* bytes of header + payload */
    const char *token;     /* NULL or "": no token required */
} pnn_proto_limits;

typedef struct pnn_proto_request {
    int has_id;            /* 0 when the id could not be read: the reply carries "id": null */
    uint64_t id;
    pnn_proto_op op;
    int64_t batch;
    int theta_per_sample;
    const void *x, *theta; /* into the frames, unaligned */
} pnn_proto_request;

/* A parsed reply header (client side). */
typedef struct pnn_proto_reply {
    int has_id;
    uint64_t id;
    int ok;
    pnn_remote_error error;          /* when !ok; PNN_REMOTE_N_ERRORS for a code this client does not know */
    char error_name[32];
    char message[PNN_PROTO_MAX_MESSAGE];
    int64_t batch;                   /* forward */
    /* info */
    char protocol[32], name[32], system_uri[256];
    int64_t x_dim, y_dim, theta_dim, max_batch;
    float x_range[2], theta_range[2];
    int n_theta_parts;               /* 0 when the server sent none (or an unusable list) */
    const char *malformed;           /* NULL, or the name of an info field present but malformed */
    pnn_theta_part theta_parts[PNN_DEVICE_MAX_THETA_PARTS];
} pnn_proto_reply;

/* Checks a request (frames after the envelope: header, payloads) against lim. Returns
 * PNN_REMOTE_OK or the error code to answer with; msg gets a sentence for the reply. req->has_id
 * says whether the id was read (even when the request is refused). */
pnn_remote_error pnn_proto_parse_request(const pnn_proto_frame *frames, int n_frames,
                                         const pnn_proto_limits *lim, pnn_proto_request *req, char *msg,
                                         size_t msg_size);

/* Reply headers, malloc'd NUL-terminated JSON (NULL when out of memory). */
char *pnn_proto_error_reply(int has_id, uint64_t id, pnn_remote_error code, const char *message);
/* info carries the optional "system_uri" (the URI whose parameters describe the system, for twins)
 * and "theta_parts" beside the fields of PROTOCOL.md */
char *pnn_proto_info_reply(uint64_t id, const pnn_device_info *info);
char *pnn_proto_forward_reply(uint64_t id, int64_t batch);
char *pnn_proto_ping_reply(uint64_t id);
/* Request headers (client side); token may be NULL. NULL also when the token is not UTF-8 (check
 * it first with pnn_proto_token_check). */
char *pnn_proto_request_header(const char *op, uint64_t id, const char *token, int64_t batch,
                               int theta_per_sample);

/* 1 when the secrets are equal, in time that depends only on their lengths; 0 for an empty b. */
int pnn_proto_same_secret(const char *a, size_t alen, const char *b, size_t blen);
/* A token must be 1 to 255 bytes of UTF-8 without control characters: it travels as the ZMTP
 * PLAIN password (a 1-byte length) and as a JSON string. who names it in the message. */
pnn_status pnn_proto_token_check(const char *token, const char *who);

/* Parses a reply header. PNN_ERR_FORMAT with a message when it is not a pnn-device/1 reply. */
pnn_status pnn_proto_parse_reply(const void *data, size_t size, pnn_proto_reply *out);

/* Key files (`pnn keygen`): "public=<Z85>\nsecret=<Z85>\n", '#' comment lines allowed; a public
 * key file (FILE.pub) has only the public line. Keys are 40 Z85 characters (+ NUL). */
pnn_status pnn_remote_key_read(const char *path, char public_key[41], char secret_key[41]);
/* A key given as 40 Z85 characters, or as the path of a key file (its public line). */
pnn_status pnn_remote_key_public(const char *key_or_path, char public_key[41]);

/* ---- the server without sockets (server.c): what the fuzzer drives ---- */

typedef struct pnn_server pnn_server;

/* One reply: header (malloc'd JSON) and, for forward, y (server-owned, valid until the next call). */
typedef struct pnn_server_reply {
    char *header;
    const void *payload;
    size_t payload_size;
} pnn_server_reply;

/* A server that has no socket: only pnn_server_handle_message works on it. */
pnn_status pnn_server_create_detached(pnn_device *dev, const pnn_server_config *cfg, pnn_server **out);
/* Handles one request (frames after the envelope) and fills the reply (always one: a bad request
 * gets an error reply). Fails only when out of memory. Free reply->header with free(). */
pnn_status pnn_server_handle_message(pnn_server *s, const pnn_proto_frame *frames, int n_frames,
                                     pnn_server_reply *reply);

#endif
