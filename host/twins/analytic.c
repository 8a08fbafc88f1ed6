/* The analytic twin kind: the ideal physics of the device's system, from the registry of systems
 * (each system's own analytic twin, hwbridge/systems/NAME_twin.c). */
#include "host/twins/kind.h"
#include "pnn/system.h"

static pnn_status analytic_create(const char *arg, const pnn_cfg *opts, pnn_device *dev, double noise,
                                  pnn_twin **out) {
    (void)arg;
    static const char *const keys[] = {"kind", NULL};
    if (opts) PNN_TRY(pnn_cfg_check_keys(opts, keys, "twin (analytic)"));
    const pnn_system *sys = pnn_system_find(dev->info.system);
    if (!sys)
        return PNN_ERROR(PNN_ERR_UNSUPPORTED, "no analytic twin for system '%s' of device %s: pnn knows the physics "
                         "of %s; fit a learned twin to it (pnn twin fit) and use twin: {kind: learned, path: FILE}",
                         dev->info.system, dev->info.uri, pnn_system_names());
    return sys->analytic_twin(dev, noise, out);
}

const pnn_twin_kind pnn_twin_kind_analytic = {
    .name = "analytic",
    .summary = "the ideal physics of the device's system (no hidden mismatch), with its nominal noise",
    .needs_arg = 0,
    .create = analytic_create,
};
