/* Choosing a twin for a device. */
#include <string.h>

#include "pnn/twin.h"

pnn_status pnn_twin_create(const char *kind, pnn_device *dev, double noise, pnn_twin **out) {
    *out = NULL;
    if (strcmp(kind, "analytic"))
        return PNN_ERROR(PNN_ERR_UNSUPPORTED, "unknown twin kind '%s'; known: analytic", kind);
    if (!strcmp(dev->info.system, "oscillator")) return pnn_twin_oscillator_create(dev, noise, out);
    return PNN_ERROR(PNN_ERR_UNSUPPORTED, "no analytic twin for system '%s'", dev->info.system);
}

void pnn_twin_free(pnn_twin *tw) {
    if (tw) tw->iface->free(tw);
}
