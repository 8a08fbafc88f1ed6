/* libFuzzer harness: whole multi-frame messages through the server's socket-free entry point
 * (pnn_server_handle_message), serving a small simulated oscillator (n = 4, max_batch 8, message
 * limit 4096 bytes). Invariants: every message gets exactly one reply, whose header is a valid
 * pnn-device/1 reply echoing the id when the request had one; a forward reply carries batch x
 * y_dim floats; nothing leaks or overflows (ASan, UBSan). */
#include <stdint.h>
#include <stdlib.h>

#include "fuzz_frames.h"
#include "pnn/pnn.h"
#include "pnn/remote.h"

static pnn_server *server;
static pnn_device *device;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    if (pnn_device_open("sim:oscillator?n=4&nt=1&max_batch=8", pnn_backend_cpu(), &device) != PNN_OK) abort();
    pnn_server_config cfg = {.token = NULL, .max_message_bytes = 4096};
    if (pnn_server_create_detached(device, &cfg, &server) != PNN_OK) abort();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    pnn_proto_frame frames[FUZZ_MAX_FRAMES];
    int n = fuzz_split(data, size, frames);
    pnn_server_reply reply;
    if (pnn_server_handle_message(server, frames, n, &reply) != PNN_OK) __builtin_trap();
    pnn_proto_reply rep;
    if (!reply.header || pnn_proto_parse_reply(reply.header, strlen(reply.header), &rep) != PNN_OK) __builtin_trap();
    pnn_proto_request req;
    pnn_proto_limits lim = {.x_dim = 4, .theta_dim = 20, .y_dim = 4, .max_batch = 8, .x_range = {-1e30f, 1e30f},
                            .theta_range = {-1e30f, 1e30f}, .max_message = 4096};
    char msg[PNN_PROTO_MAX_MESSAGE];
    pnn_remote_error e = pnn_proto_parse_request(frames, n, &lim, &req, msg, sizeof msg);
    if (req.has_id && (!rep.has_id || rep.id != req.id)) __builtin_trap();
    if (rep.ok != (e == PNN_REMOTE_OK) && !(e == PNN_REMOTE_OK && !rep.ok && rep.error == PNN_REMOTE_DEVICE_FAULT))
        __builtin_trap();
    if (rep.ok && req.op == PNN_OP_FORWARD) {
        if (rep.batch != req.batch || reply.payload_size != (size_t)(req.batch * 16) || !reply.payload) __builtin_trap();
        /* touch every byte of y */
        volatile unsigned char sum = 0;
        for (size_t i = 0; i < reply.payload_size; i++) sum ^= ((const unsigned char *)reply.payload)[i];
    } else if (reply.payload) {
        __builtin_trap();
    }
    free(reply.header);
    pnn_error_clear();
    return 0;
}
