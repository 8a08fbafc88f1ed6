/* Shared by the fuzz harnesses: a fuzz input is a message whose frames are separated by the
 * 5-byte marker "#FRM#" (the dictionary and the seeds use it), so that the fuzzer can grow,
 * drop and reorder frames as easily as it edits the JSON header. At most 12 frames. */
#ifndef PNN_FUZZ_FRAMES_H
#define PNN_FUZZ_FRAMES_H

#include <stddef.h>
#include <string.h>

#include "hwbridge/remote/protocol.h"

#define FUZZ_MAX_FRAMES 12

static int fuzz_split(const unsigned char *data, size_t size, pnn_proto_frame *frames) {
    int n = 0;
    size_t start = 0;
    for (size_t i = 0; i + 5 <= size && n < FUZZ_MAX_FRAMES - 1; i++)
        if (!memcmp(data + i, "#FRM#", 5)) {
            frames[n++] = (pnn_proto_frame){data + start, i - start};
            start = i + 5;
            i += 4;
        }
    frames[n++] = (pnn_proto_frame){data + start, size - start};
    return n;
}

#endif
