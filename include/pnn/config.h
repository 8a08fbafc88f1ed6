/* Configuration trees read from YAML: maps, lists and scalars, each remembering the file and
 * line it came from so that errors can name them. `--set a.b=value` edits a tree. */
#ifndef PNN_CONFIG_H
#define PNN_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "pnn/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { PNN_CFG_SCALAR, PNN_CFG_MAP, PNN_CFG_LIST } pnn_cfg_type;

typedef struct pnn_cfg pnn_cfg;

/* Reads a YAML file whose top level is a map. Errors (PNN_ERR_CONFIG; PNN_ERR_NOT_FOUND for a
 * missing file) name the file, line and column. Anchors, aliases and tags are refused. */
pnn_status pnn_cfg_load(const char *path, pnn_cfg **root);
pnn_status pnn_cfg_parse(const char *text, size_t len, const char *source, pnn_cfg **root);
void pnn_cfg_free(pnn_cfg *root);

/* Applies "path=value": path is dot-separated map keys and list indices ("network.2.n").
 * A missing map key is created; a list index must exist. The value is parsed as YAML flow
 * (so "[1, 2]" gives a list) and recorded as coming from "--set". */
pnn_status pnn_cfg_set(pnn_cfg *root, const char *assignment);
/* Points the physical layer called `name` of the config's network (or its only one, when name is
 * NULL) at uri; the key it set ("network.3.device") goes to key (key_cap bytes). */
pnn_status pnn_cfg_set_device(pnn_cfg *cfg, const char *name, const char *uri, char *key, size_t key_cap);

pnn_cfg_type pnn_cfg_type_of(const pnn_cfg *node);
int pnn_cfg_line(const pnn_cfg *node);        /* 1-based; 0 for --set values */
const char *pnn_cfg_source(const pnn_cfg *node);  /* file name or "--set" */
/* Map lookup; NULL when node is not a map or has no such key. */
const pnn_cfg *pnn_cfg_get(const pnn_cfg *map, const char *key);
/* Children of a map or list, in order; keys only for maps. */
int pnn_cfg_len(const pnn_cfg *node);
const pnn_cfg *pnn_cfg_at(const pnn_cfg *node, int i);
const char *pnn_cfg_key_at(const pnn_cfg *map, int i);
const char *pnn_cfg_scalar(const pnn_cfg *node);  /* NULL unless scalar */

/* Typed reads of map[key]. A missing key gives the default when `required` is 0, else an
 * error. Wrong types or values out of [min, max] give errors naming source:line and key. */
pnn_status pnn_cfg_int(const pnn_cfg *map, const char *key, int required, int64_t def, int64_t min,
                       int64_t max, int64_t *out);
pnn_status pnn_cfg_float(const pnn_cfg *map, const char *key, int required, double def, double min,
                         double max, double *out);
pnn_status pnn_cfg_str(const pnn_cfg *map, const char *key, int required, const char *def,
                       const char **out);
pnn_status pnn_cfg_bool(const pnn_cfg *map, const char *key, int required, int def, int *out);
/* Fails naming the first key of map not in allowed (NULL-terminated), its line, and the keys
 * that are allowed. `where` describes the map ("layer 3 (oscillator)"). */
pnn_status pnn_cfg_check_keys(const pnn_cfg *map, const char *const *allowed, const char *where);

/* Serialises the tree as YAML (block style) into a malloc'd string. */
char *pnn_cfg_to_yaml(const pnn_cfg *root);

#ifdef __cplusplus
}
#endif
#endif
