/* Waiting that a stop request cuts short and that never spins. */
#include "pnn/clock.h"

#include <errno.h>
#include <string.h>

#define SLICE_S 0.05 /* how often a long sleep looks at the stop request */

pnn_status pnn_sleep_s(double s) {
    if (!(s > 0)) return PNN_OK;
    if (s > 86400) s = 86400;
    double end = pnn_now_s() + s;
    for (;;) {
        if (pnn_interrupt_requested()) return PNN_ERROR(PNN_ERR_INTERRUPTED, "interrupted while waiting");
        double left = end - pnn_now_s();
        if (left <= 0) return PNN_OK;
        double slice = left < SLICE_S ? left : SLICE_S;
        struct timespec ts = {(time_t)slice, (long)((slice - (double)(time_t)slice) * 1e9)};
        if (nanosleep(&ts, NULL) != 0 && errno != EINTR)
            return PNN_ERROR(PNN_ERR_INVALID, "nanosleep(%.3f s) failed: %s", slice, strerror(errno));
    }
}
