/* Twin kinds as plug-ins: a kind is its own file in host/twins/ defining a pnn_twin_kind
 * pnn_twin_kind_NAME, plus one line in host/twins/registry.c. pnn_twin_create("NAME" or
 * "NAME:ARG", ...) finds it; ARG is what follows the colon (a file, for the learned kinds). */
#ifndef PNN_HOST_TWINS_KIND_H
#define PNN_HOST_TWINS_KIND_H

#include "pnn/config.h"
#include "pnn/twin.h"

typedef struct pnn_twin_kind {
    const char *name;    /* "analytic" */
    const char *summary; /* one line for --help */
    int needs_arg;       /* 1: "NAME:ARG" is required (the learned kinds' file) */
    int takes_name;      /* 1: ARG, optional here, is a name the kind checks itself (callback:NAME) */
    /* noise as pnn_twin_create; arg is "" when none was given; opts the config map the twin was
     * given in (NULL for a plain spec): the kind checks its keys */
    pnn_status (*create)(const char *arg, const pnn_cfg *opts, pnn_device *dev, double noise, pnn_twin **out);
} pnn_twin_kind;

#endif
