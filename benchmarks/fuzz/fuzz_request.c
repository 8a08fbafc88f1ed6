/* libFuzzer harness: the pnn-device/1 request parser (what a server runs on every message) and
 * the reply parser (what a client runs on every reply), on arbitrary bytes. An input starting
 * with 'T' is checked against a server that requires a token. Invariants: the parser never
 * reads outside the frames (ASan), and an accepted forward request has exactly the byte
 * lengths its batch implies. */
#include <stdint.h>
#include <stdlib.h>

#include "fuzz_frames.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    int token = size > 0 && data[0] == 'T';
    pnn_proto_limits lim = {.x_dim = 4, .theta_dim = 20, .y_dim = 4, .max_batch = 8,
                            .x_range = {-100, 100}, .theta_range = {-100, 100},
                            .max_message = 4096, .token = token ? "s3cret" : NULL};
    pnn_proto_frame frames[FUZZ_MAX_FRAMES];
    int n = fuzz_split(data + token, size - (size_t)token, frames);
    pnn_proto_request req;
    char msg[PNN_PROTO_MAX_MESSAGE];
    pnn_remote_error e = pnn_proto_parse_request(frames, n, &lim, &req, msg, sizeof msg);
    if ((unsigned)e >= PNN_REMOTE_N_ERRORS) __builtin_trap();
    if (e == PNN_REMOTE_OK && req.op == PNN_OP_FORWARD) {
        int64_t rows = req.theta_per_sample ? req.batch : 1;
        if (req.batch < 1 || req.batch > lim.max_batch || n != 3 || frames[1].size != (size_t)(req.batch * 16) ||
            frames[2].size != (size_t)(rows * 80) || req.x != frames[1].data)
            __builtin_trap();
    }
    if (e != PNN_REMOTE_OK) {
        if (!msg[0]) __builtin_trap();                         /* every refusal says why */
        char *reply = pnn_proto_error_reply(req.has_id, req.id, e, msg);
        if (!reply) __builtin_trap();                          /* and can be sent */
        free(reply);
    }
    /* the same bytes as a reply header, as a client would see them */
    pnn_proto_reply rep;
    if (pnn_proto_parse_reply(frames[0].data, frames[0].size, &rep) == PNN_OK) {
        if (rep.n_theta_parts < 0 || rep.n_theta_parts > PNN_DEVICE_MAX_THETA_PARTS) __builtin_trap();
        if (!rep.ok && rep.error == PNN_REMOTE_OK) __builtin_trap();
    }
    pnn_error_clear();
    return 0;
}
