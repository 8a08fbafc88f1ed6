/* libFuzzer harness: the config parser (host/config.c) and editor (host/config_edit.c). An input
 * is YAML text, optionally followed by --set assignments, each after the marker "#SET#". The
 * text is parsed; the typed reads and the key check run on every map of the tree; the
 * assignments are applied; the tree is written back as YAML and parsed again.
 * Invariants: every refusal says why (a message); a tree written as YAML reads back as the
 * same tree (keys, order, values) and writes the same text again, as long as it is within the
 * parser's nesting limit and its keys can be written (--set can build deeper trees, and keys of
 * any bytes and length: see writable_keys); nothing leaks or overflows (ASan, UBSan). */
#include <float.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pnn/config.h"

#define MAX_SETS 8
#define MAX_DEPTH 64 /* CFG_MAX_DEPTH of host/config_internal.h: deeper trees are refused on reading */

static const char *const known_keys[] = {"name", "data", "network", "method", "loss", "optimizer", "batch",
                                         "epochs", "seed", "backend", "bridge", "comm", "log_every", NULL};

static void must_say_why(pnn_status st) {
    if (st != PNN_OK && !pnn_last_error()[0]) __builtin_trap();
}

static int depth_of(const pnn_cfg *node) {
    int deepest = 0;
    for (int i = 0; i < pnn_cfg_len(node); i++) {
        int d = depth_of(pnn_cfg_at(node, i));
        if (d > deepest) deepest = d;
    }
    return pnn_cfg_type_of(node) == PNN_CFG_SCALAR ? 0 : deepest + 1;
}

static int same_tree(const pnn_cfg *a, const pnn_cfg *b) {
    if (pnn_cfg_type_of(a) != pnn_cfg_type_of(b)) return 0;
    if (pnn_cfg_type_of(a) == PNN_CFG_SCALAR) return !strcmp(pnn_cfg_scalar(a), pnn_cfg_scalar(b));
    if (pnn_cfg_len(a) != pnn_cfg_len(b)) return 0;
    for (int i = 0; i < pnn_cfg_len(a); i++) {
        if (pnn_cfg_type_of(a) == PNN_CFG_MAP && strcmp(pnn_cfg_key_at(a, i), pnn_cfg_key_at(b, i))) return 0;
        if (!same_tree(pnn_cfg_at(a, i), pnn_cfg_at(b, i))) return 0;
    }
    return 1;
}

/* 1 when s is text YAML can carry: valid UTF-8 (no overlong forms, surrogates or code points
 * over U+10FFFF) without U+FFFE and U+FFFF. Parsed text always is (libyaml checks); a --set
 * path is not checked, so a key it creates may hold other bytes, which no YAML file can. */
static int yaml_text(const char *s) {
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        uint32_t c = *p;
        int more = c < 0x80 ? 0 : (c & 0xe0) == 0xc0 ? 1 : (c & 0xf0) == 0xe0 ? 2 : (c & 0xf8) == 0xf0 ? 3 : -1;
        if (more < 0) return 0;
        c &= more ? 0x3fu >> more : 0x7fu;
        for (int k = 1; k <= more; k++) {
            if ((p[k] & 0xc0) != 0x80) return 0;
            c = c << 6 | (p[k] & 0x3fu);
        }
        static const uint32_t least[4] = {0, 0x80, 0x800, 0x10000};
        if (c < least[more] || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff) || c == 0xfffe || c == 0xffff) return 0;
        p += more + 1;
    }
    return 1;
}

/* 1 when every key can be written as YAML and read back: text YAML can carry, and short:
 * pnn_cfg_to_yaml writes keys as implicit keys, which YAML limits to 1024 characters (200 bytes
 * stay below that even when every byte is written as an escape). Such keys can only come from
 * --set paths or explicit '? key' entries, and no config check lets one through to a run; the
 * hardening report suggests refusing them in pnn_cfg_set and the parser, after which this
 * precondition can go. */
static int writable_keys(const pnn_cfg *node) {
    for (int i = 0; i < pnn_cfg_len(node); i++) {
        const char *key = pnn_cfg_key_at(node, i);
        if ((key && (!yaml_text(key) || strlen(key) > 200)) || !writable_keys(pnn_cfg_at(node, i))) return 0;
    }
    return 1;
}

/* Every typed read of every key of every map, and the key check; results are only checked
 * for a message on failure. */
static void read_all(const pnn_cfg *node) {
    if (pnn_cfg_type_of(node) == PNN_CFG_MAP) {
        for (int i = 0; i < pnn_cfg_len(node); i++) {
            const char *key = pnn_cfg_key_at(node, i), *s;
            if (!key || pnn_cfg_get(node, key) == NULL) __builtin_trap();
            int64_t iv;
            double dv;
            int bv;
            pnn_error_clear();
            must_say_why(pnn_cfg_int(node, key, 1, 0, INT64_MIN, INT64_MAX, &iv));
            pnn_error_clear();
            must_say_why(pnn_cfg_int(node, key, 1, 0, 1, 100, &iv));
            pnn_error_clear();
            must_say_why(pnn_cfg_float(node, key, 1, 0, -DBL_MAX, DBL_MAX, &dv));
            pnn_error_clear();
            must_say_why(pnn_cfg_float(node, key, 1, 0, 0, 1, &dv));
            pnn_error_clear();
            must_say_why(pnn_cfg_bool(node, key, 1, 0, &bv));
            pnn_error_clear();
            if (pnn_cfg_str(node, key, 1, NULL, &s) == PNN_OK && pnn_cfg_type_of(pnn_cfg_get(node, key)) ==
                                                                      PNN_CFG_SCALAR && !s)
                __builtin_trap();
        }
        pnn_error_clear();
        must_say_why(pnn_cfg_check_keys(node, known_keys, "the fuzz config"));
        pnn_error_clear();
        must_say_why(pnn_cfg_int(node, "no such key", 1, 0, 0, 1, &(int64_t){0}));
    }
    for (int i = 0; i < pnn_cfg_len(node); i++) {
        const pnn_cfg *child = pnn_cfg_at(node, i);
        (void)pnn_cfg_line(child);
        if (!pnn_cfg_source(child)) __builtin_trap();
        read_all(child);
    }
}

/* Writes root as YAML, reads it back and checks that the tree and its text survive. */
static void round_trip(const pnn_cfg *root) {
    char *yaml = pnn_cfg_to_yaml(root);
    if (!yaml) __builtin_trap();
    pnn_cfg *again = NULL;
    pnn_error_clear();
    pnn_status st = pnn_cfg_parse(yaml, strlen(yaml), "round-trip.yaml", &again);
    must_say_why(st);
    if (depth_of(root) <= MAX_DEPTH && writable_keys(root)) {
        if (st != PNN_OK || !same_tree(root, again)) __builtin_trap();
        char *yaml2 = pnn_cfg_to_yaml(again);
        if (!yaml2 || strcmp(yaml, yaml2)) __builtin_trap();
        free(yaml2);
    }
    pnn_cfg_free(again);
    free(yaml);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *text = (const char *)data;
    /* split off the assignments */
    const char *sets[MAX_SETS + 1];
    size_t set_len[MAX_SETS + 1];
    int n = 0;
    size_t text_len = size;
    for (size_t i = 0; i + 5 <= size && n < MAX_SETS; i++)
        if (!memcmp(data + i, "#SET#", 5)) {
            if (n == 0) text_len = i;
            else set_len[n - 1] = i - (size_t)(sets[n - 1] - text);
            sets[n++] = text + i + 5;
            i += 4;
        }
    if (n) set_len[n - 1] = size - (size_t)(sets[n - 1] - text);

    pnn_cfg *root = NULL;
    pnn_error_clear();
    pnn_status st = pnn_cfg_parse(text, text_len, "fuzz.yaml", &root);
    must_say_why(st);
    if (st != PNN_OK) {
        if (root) __builtin_trap();
        return 0;
    }
    if (pnn_cfg_type_of(root) != PNN_CFG_MAP) __builtin_trap();
    read_all(root);
    round_trip(root);
    for (int k = 0; k < n; k++) {
        char *assignment = malloc(set_len[k] + 1);
        if (!assignment) break;
        memcpy(assignment, sets[k], set_len[k]);
        assignment[set_len[k]] = '\0';
        pnn_error_clear();
        must_say_why(pnn_cfg_set(root, assignment));
        free(assignment);
    }
    if (n) {
        read_all(root);
        round_trip(root);
    }
    pnn_cfg_free(root);
    pnn_error_clear();
    return 0;
}
