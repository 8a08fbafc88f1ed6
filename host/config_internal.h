/* What the two halves of the config module share (host/config.c parses and reads trees,
 * host/config_edit.c checks typed values, applies --set and writes YAML): the node struct and
 * the few node helpers. Not part of the public API. */
#ifndef PNN_CONFIG_INTERNAL_H
#define PNN_CONFIG_INTERNAL_H

#include <stddef.h>

#include "pnn/config.h"

#define CFG_MAX_FILE_BYTES ((size_t)16 << 20)
#define CFG_MAX_DEPTH 64
#define CFG_MAX_NODES 1000000 /* values in one config: about 150 MB of tree at most */
#define CFG_MAX_KEY_BYTES 1000  /* YAML reads plain keys of up to 1024 characters */
#define CFG_SET_SOURCE "--set"

struct pnn_cfg {
    pnn_cfg_type type;
    const char *source; /* the root's owned copy of the file name, or CFG_SET_SOURCE */
    char *owned_source; /* set on the root of a parsed tree only */
    int line;           /* 1-based; 0 for --set values */
    int quoted;         /* scalar was quoted or a block scalar in its source: keep it quoted */
    char *value;        /* scalars */
    int n, cap;         /* children of maps and lists */
    pnn_cfg **items;
    char **keys;    /* maps: one per item */
    int *key_lines; /* maps: the line of each key, for duplicate-key errors */
};

/* "a map", "a list", "a scalar": for messages */
const char *pnn_cfg_type_words(pnn_cfg_type t);
pnn_cfg *pnn_cfg_new_node(pnn_cfg_type type, const char *source, int line);
/* Appends child (under key, a malloc'd string, for maps); takes ownership of key and child. */
pnn_status pnn_cfg_append_node(pnn_cfg *parent, char *key, int key_line, pnn_cfg *child);
/* Index of key in map, or -1. */
int pnn_cfg_find_key(const pnn_cfg *map, const char *key);
/* 1 when the len bytes at s are UTF-8 text without control characters (C0, DEL, C1) or the
 * characters YAML reads as line breaks (U+2028, U+2029): what a key may hold. */
int pnn_cfg_text_ok(const char *s, size_t len);
/* Parses text; want_map: the top level must be a map (files) or may be any value (--set). */
pnn_status pnn_cfg_parse_text(const char *text, size_t len, const char *source, int want_map, pnn_cfg **out);

#endif
