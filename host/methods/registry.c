/* The registry of training methods: one line per method in PNN_METHODS; each method's
 * descriptor (pnn_method_NAME) is defined in its own file in this folder. */
#include <stdio.h>
#include <string.h>

#include "host/methods/method_impl.h"

#define PNN_METHODS(X) \
    X(pat) \
    X(insilico) \
    X(dfa) \
    X(spsa) \
    X(phyll)

#define DECLARE(name) extern const pnn_method_i pnn_method_##name;
PNN_METHODS(DECLARE)
#define ENTRY(name) &pnn_method_##name,
static const pnn_method_i *const methods[] = {PNN_METHODS(ENTRY)};
#define N_METHODS ((int)(sizeof methods / sizeof methods[0]))

const pnn_method_i *pnn_method_find(const char *name) {
    for (int i = 0; name && i < N_METHODS; i++)
        if (!strcmp(methods[i]->name, name)) return methods[i];
    return NULL;
}

const pnn_method_i *pnn_method_at(int i) { return i >= 0 && i < N_METHODS ? methods[i] : NULL; }

const char *pnn_method_names(void) {
    static char names[256];
    if (!names[0])
        for (int i = 0; i < N_METHODS; i++) {
            size_t l = strlen(names);
            snprintf(names + l, sizeof names - l, "%s%s", i ? ", " : "", methods[i]->name);
        }
    return names;
}
