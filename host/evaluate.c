/* A trained network tested from its checkpoint (`pnn eval`, the Python package's pnn.evaluate). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pnn/train.h"

pnn_status pnn_evaluate_checkpoint(const char *ckpt, const char *const *sets, int n_sets, const char *const *devices,
                                   int n_devices, int trust, pnn_eval_result *device, pnn_eval_result *twin) {
    /* the config keys given here: a checkpoint's own values of them are never used */
    int n = n_sets + n_devices;
    char (*given)[64] = calloc((size_t)(n ? n : 1), sizeof *given);
    const char **given_keys = calloc((size_t)(n ? n : 1), sizeof *given_keys);
    pnn_cfg *cfg = NULL;
    pnn_status st = given && given_keys ? pnn_checkpoint_config(ckpt, &cfg)
                                        : PNN_ERROR(PNN_ERR_NOMEM, "out of memory evaluating %s", ckpt);
    int n_given = 0;
    for (int i = 0; st == PNN_OK && i < n_sets; i++) {
        st = pnn_cfg_set(cfg, sets[i]);
        snprintf(given[n_given], sizeof given[0], "%.*s", (int)strcspn(sets[i], "="), sets[i]);
        given_keys[n_given] = given[n_given];
        n_given++;
    }
    for (int i = 0; st == PNN_OK && i < n_devices; i++) {
        char name[64];
        const char *d = devices[i], *eq = strchr(d, '='), *colon = strchr(d, ':');
        /* LAYER=URI when '=' comes before the scheme's ':' */
        if (eq && (!colon || eq < colon) && (size_t)(eq - d) < sizeof name) {
            snprintf(name, sizeof name, "%.*s", (int)(eq - d), d);
            st = pnn_cfg_set_device(cfg, name, eq + 1, given[n_given], sizeof given[0]);
        } else {
            st = pnn_cfg_set_device(cfg, NULL, d, given[n_given], sizeof given[0]);
        }
        given_keys[n_given] = given[n_given];
        n_given++;
    }
    char untrusted[1024];
    if (st == PNN_OK && !trust && pnn_checkpoint_untrusted(cfg, given_keys, n_given, untrusted, sizeof untrusted))
        st = PNN_ERROR(PNN_ERR_INVALID,
                       "the config inside %s names %s. eval does not open servers, recordings or files that a "
                       "checkpoint names (anyone may have made it): give them yourself with --device LAYER=URI or "
                       "--set KEY=VALUE, or pass --trust-checkpoint if you made this checkpoint",
                       ckpt, untrusted);
    free(given);
    free(given_keys);
    if (st != PNN_OK) {
        if (cfg) pnn_cfg_free(cfg);
        return st;
    }
    pnn_trainer *tr;
    PNN_TRY(pnn_trainer_create(cfg, ".", &tr));
    st = pnn_trainer_load_checkpoint(tr, ckpt, 0);
    if (st == PNN_OK) st = pnn_trainer_evaluate(tr, PNN_PASS_EVAL_DEVICE, device);
    if (st == PNN_OK) st = pnn_trainer_evaluate(tr, PNN_PASS_EVAL_TWIN, twin);
    pnn_trainer_free(tr);
    return st;
}
