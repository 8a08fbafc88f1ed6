/* Choosing a twin for a device: the kind (analytic: the system's ideal physics, from the
 * registry of systems). */
#include <string.h>

#include "pnn/system.h"
#include "pnn/twin.h"

pnn_status pnn_twin_create(const char *kind, pnn_device *dev, double noise, pnn_twin **out) {
    *out = NULL;
    if (strcmp(kind, "analytic"))
        return PNN_ERROR(PNN_ERR_UNSUPPORTED, "unknown twin kind '%s'; known: analytic", kind);
    const pnn_system *sys = pnn_system_find(dev->info.system);
    if (!sys)
        return PNN_ERROR(PNN_ERR_UNSUPPORTED, "no analytic twin for system '%s' of device %s: pnn knows the physics "
                         "of %s", dev->info.system, dev->info.uri, pnn_system_names());
    return sys->analytic_twin(dev, noise, out);
}

void pnn_twin_free(pnn_twin *tw) {
    if (tw) tw->iface->free(tw);
}
