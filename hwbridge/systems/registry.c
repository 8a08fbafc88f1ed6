/* The registry of physical systems: one line per system in PNN_SYSTEMS below; each system's
 * descriptor (pnn_system_NAME) is defined in its own files in this folder. */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "pnn/system.h"

#define PNN_SYSTEMS(X) \
    X(oscillator) \
    X(circuit) \
    X(scatter) \
    X(shg)

#define DECLARE(name) extern const pnn_system pnn_system_##name;
PNN_SYSTEMS(DECLARE)
#define ENTRY(name) &pnn_system_##name,
static const pnn_system *const systems[] = {PNN_SYSTEMS(ENTRY)};
#define N_SYSTEMS ((int)(sizeof systems / sizeof systems[0]))

const pnn_system *pnn_system_find(const char *name) {
    for (int i = 0; i < N_SYSTEMS; i++)
        if (!strcmp(systems[i]->name, name)) return systems[i];
    return NULL;
}

int pnn_system_count(void) { return N_SYSTEMS; }

const pnn_system *pnn_system_at(int i) { return i >= 0 && i < N_SYSTEMS ? systems[i] : NULL; }

static char names[512];
static pthread_once_t names_once = PTHREAD_ONCE_INIT;

static void list_names(void) {
    for (int i = 0; i < N_SYSTEMS; i++) {
        size_t l = strlen(names);
        snprintf(names + l, sizeof names - l, "%s%s", i ? ", " : "", systems[i]->name);
    }
}

const char *pnn_system_names(void) {
    pthread_once(&names_once, list_names);
    return names;
}

pnn_status pnn_system_lookup(const char *name, const char *uri, const pnn_system **out) {
    *out = pnn_system_find(name);
    if (*out) return PNN_OK;
    char close[64];
    pnn_suggest(name, pnn_system_names(), close, sizeof close);
    return PNN_ERROR(PNN_ERR_INVALID, "unknown system '%s' in '%s'; known: %s%s%s%s", name, uri, pnn_system_names(),
                     close[0] ? "; did you mean '" : "", close, close[0] ? "'?" : "");
}
