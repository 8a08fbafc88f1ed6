/* The registry of twin kinds: one line per kind in PNN_TWIN_KINDS; each kind's descriptor
 * (pnn_twin_kind_NAME) is defined in its own file in this folder. */
#include <stdio.h>
#include <string.h>

#include "host/twins/kind.h"
#include "pnn/fileio.h"

#define PNN_TWIN_KINDS(X) \
    X(analytic) \
    X(learned) \
    X(residual) \
    X(callback)

#define DECLARE(name) extern const pnn_twin_kind pnn_twin_kind_##name;
PNN_TWIN_KINDS(DECLARE)
#define ENTRY(name) &pnn_twin_kind_##name,
static const pnn_twin_kind *const kinds[] = {PNN_TWIN_KINDS(ENTRY)};
#define N_KINDS ((int)(sizeof kinds / sizeof kinds[0]))

const char *pnn_twin_kind_names(void) {
    static char names[256];
    if (!names[0])
        for (int i = 0; i < N_KINDS; i++) {
            size_t l = strlen(names);
            snprintf(names + l, sizeof names - l, "%s%s", i ? ", " : "", kinds[i]->name);
        }
    return names;
}

static pnn_status create(const char *spec, const pnn_cfg *opts, pnn_device *dev, double noise, pnn_twin **out) {
    *out = NULL;
    const char *colon = strchr(spec, ':');
    size_t len = colon ? (size_t)(colon - spec) : strlen(spec);
    for (int i = 0; i < N_KINDS; i++) {
        const pnn_twin_kind *k = kinds[i];
        if (strlen(k->name) != len || strncmp(k->name, spec, len)) continue;
        const char *arg = colon ? colon + 1 : "";
        if (k->needs_arg && !*arg)
            return PNN_ERROR(PNN_ERR_CONFIG, "twin kind '%s' needs a file: twin: {kind: %s, path: FILE} (make one with "
                             "pnn twin fit)", k->name, k->name);
        if (!k->needs_arg && !k->takes_name && *arg)
            return PNN_ERROR(PNN_ERR_CONFIG, "twin kind '%s' takes no file (got '%s')", k->name, arg);
        return k->create(arg, opts, dev, noise, out);
    }
    char word[64], close[64];
    snprintf(word, sizeof word, "%.*s", (int)(len < sizeof word ? len : sizeof word - 1), spec);
    pnn_suggest(word, pnn_twin_kind_names(), close, sizeof close);
    return PNN_ERROR(PNN_ERR_CONFIG, "unknown twin kind '%s'; known: %s%s%s%s", word, pnn_twin_kind_names(),
                     *close ? "; did you mean '" : "", close, *close ? "'?" : "");
}

pnn_status pnn_twin_create(const char *spec, pnn_device *dev, double noise, pnn_twin **out) {
    return create(spec, NULL, dev, noise, out);
}

pnn_status pnn_twin_create_cfg(const pnn_cfg *node, pnn_device *dev, double noise, pnn_twin **out) {
    const char *kind, *path;
    char spec[PNN_PATH_MAX + 32];
    *out = NULL;
    if (!node) return create("analytic", NULL, dev, noise, out);
    if (pnn_cfg_type_of(node) == PNN_CFG_SCALAR) return create(pnn_cfg_scalar(node), NULL, dev, noise, out);
    if (pnn_cfg_type_of(node) != PNN_CFG_MAP)
        return PNN_ERROR(PNN_ERR_CONFIG, "%s:%d: twin: expected a kind (analytic) or a map {kind: learned, path: FILE}",
                         pnn_cfg_source(node), pnn_cfg_line(node));
    PNN_TRY(pnn_cfg_str(node, "kind", 1, NULL, &kind));
    PNN_TRY(pnn_cfg_str(node, "path", 0, "", &path));
    if (strchr(kind, ':'))
        return PNN_ERROR(PNN_ERR_CONFIG, "%s:%d: twin: kind '%s' is a name, as analytic or learned", pnn_cfg_source(node),
                         pnn_cfg_line(node), kind);
    if ((*path ? pnn_path_format(spec, sizeof spec, "%s:%s", kind, path)
               : pnn_path_format(spec, sizeof spec, "%s", kind)) != PNN_OK)
        return PNN_ERROR(PNN_ERR_CONFIG, "%s:%d: twin: the path is too long", pnn_cfg_source(node), pnn_cfg_line(node));
    return create(spec, node, dev, noise, out);
}

void pnn_twin_free(pnn_twin *tw) {
    if (tw) tw->iface->free(tw);
}
