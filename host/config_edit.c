/* Config trees, second half: typed reads with ranges and did-you-mean key checks, `--set`
 * overrides, and writing a tree back as block YAML (see host/config.c for parsing). */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config_internal.h"
#include "pnn/fileio.h"

/* ---- typed reads ---- */

/* Finds the scalar map[key] for a typed read; *v is NULL when the key is missing and optional.
 * want ("an integer") completes the error for a non-scalar value. */
static pnn_status typed_lookup(const pnn_cfg *map, const char *key, int required, const char *want,
                               const pnn_cfg **v) {
    *v = NULL;
    if (!key) return PNN_ERROR(PNN_ERR_INVALID, "pnn_cfg typed read: key must not be NULL");
    if (map && map->type != PNN_CFG_MAP)
        return PNN_ERROR(PNN_ERR_CONFIG, "%s:%d: expected a map holding key '%s', got %s", map->source, map->line,
                         key, pnn_cfg_type_words(map->type));
    const pnn_cfg *node = pnn_cfg_get(map, key);
    if (!node) {
        if (!required) return PNN_OK;
        if (!map) return PNN_ERROR(PNN_ERR_CONFIG, "config: required key '%s' is missing (its whole section is)", key);
        return PNN_ERROR(PNN_ERR_CONFIG, "%s: map at line %d has no key '%s'; add '%s: <value>' (it is required)",
                         map->source, map->line, key, key);
    }
    if (node->type != PNN_CFG_SCALAR)
        return PNN_ERROR(PNN_ERR_CONFIG, "%s:%d: key '%s': expected %s, got %s", node->source, node->line, key, want,
                         pnn_cfg_type_words(node->type));
    *v = node;
    return PNN_OK;
}

pnn_status pnn_cfg_int(const pnn_cfg *map, const char *key, int required, int64_t def, int64_t min, int64_t max,
                       int64_t *out) {
    const pnn_cfg *v;
    PNN_TRY(typed_lookup(map, key, required, "an integer", &v));
    if (!v) {
        *out = def;
        return PNN_OK;
    }
    const char *s = v->value;
    char *end;
    errno = 0;
    long long x = strtoll(s, &end, 10);
    if (!*s || isspace((unsigned char)*s) || *end)
        return PNN_ERROR(PNN_ERR_CONFIG, "%s:%d: key '%s': expected an integer, got '%.80s'", v->source, v->line, key, s);
    if (errno == ERANGE || x < min || x > max)
        return PNN_ERROR(PNN_ERR_CONFIG, "%s:%d: key '%s': %.80s is out of range; use a value in [%lld, %lld]",
                         v->source, v->line, key, s, (long long)min, (long long)max);
    *out = x;
    return PNN_OK;
}

pnn_status pnn_cfg_float(const pnn_cfg *map, const char *key, int required, double def, double min, double max,
                         double *out) {
    const pnn_cfg *v;
    PNN_TRY(typed_lookup(map, key, required, "a number", &v));
    if (!v) {
        *out = def;
        return PNN_OK;
    }
    const char *s = v->value;
    char *end;
    double x = strtod(s, &end);
    if (!*s || isspace((unsigned char)*s) || *end)
        return PNN_ERROR(PNN_ERR_CONFIG, "%s:%d: key '%s': expected a number, got '%.80s'", v->source, v->line, key, s);
    if (!isfinite(x))
        return PNN_ERROR(PNN_ERR_CONFIG, "%s:%d: key '%s': expected a finite number, got '%.80s'", v->source, v->line,
                         key, s);
    if (x < min || x > max)
        return PNN_ERROR(PNN_ERR_CONFIG, "%s:%d: key '%s': %.80s is out of range; use a value in [%g, %g]", v->source,
                         v->line, key, s, min, max);
    *out = x;
    return PNN_OK;
}

pnn_status pnn_cfg_str(const pnn_cfg *map, const char *key, int required, const char *def, const char **out) {
    const pnn_cfg *v;
    PNN_TRY(typed_lookup(map, key, required, "a string", &v));
    *out = v ? v->value : def;
    return PNN_OK;
}

pnn_status pnn_cfg_bool(const pnn_cfg *map, const char *key, int required, int def, int *out) {
    static const char *const yes[] = {"true", "yes", "on", "1"}, *const no[] = {"false", "no", "off", "0"};
    const pnn_cfg *v;
    PNN_TRY(typed_lookup(map, key, required, "true or false", &v));
    if (!v) {
        *out = def;
        return PNN_OK;
    }
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
        if (!strcasecmp(v->value, yes[i])) {
            *out = 1;
            return PNN_OK;
        }
        if (!strcasecmp(v->value, no[i])) {
            *out = 0;
            return PNN_OK;
        }
    }
    return PNN_ERROR(PNN_ERR_CONFIG, "%s:%d: key '%s': expected true or false (or yes/no, on/off, 1/0), got '%.80s'",
                     v->source, v->line, key, v->value);
}

pnn_status pnn_cfg_check_keys(const pnn_cfg *map, const char *const *allowed, const char *where) {
    if (!map || !allowed) return PNN_OK;
    if (!where) where = "this map";
    if (map->type != PNN_CFG_MAP)
        return PNN_ERROR(PNN_ERR_CONFIG, "%s:%d: %s must be a map of 'key: value' entries, got %s", map->source,
                         map->line, where, pnn_cfg_type_words(map->type));
    for (int i = 0; i < map->n; i++) {
        const char *key = map->keys[i];
        const char *best = NULL;
        int best_d = 3, known = 0;
        char list[768];
        size_t used = 0;
        list[0] = '\0';
        for (int j = 0; allowed[j]; j++) {
            if (!strcmp(key, allowed[j])) {
                known = 1;
                break;
            }
            int d = pnn_edit_distance(key, allowed[j]);
            if (d < best_d) best_d = d, best = allowed[j];
            if (used < sizeof list) {
                int w = snprintf(list + used, sizeof list - used, "%s%s", j ? ", " : "", allowed[j]);
                used += w > 0 ? (size_t)w : 0;
            }
        }
        if (known) continue;
        char hint[128] = "";
        if (best) snprintf(hint, sizeof hint, "; did you mean '%s'?", best);
        return PNN_ERROR(PNN_ERR_CONFIG, "%s:%d: unknown key '%s' in %s; allowed keys: %s%s", map->source,
                         map->key_lines[i], key, where, list, hint);
    }
    return PNN_OK;
}

/* ---- --set ---- */

/* Checks that a path segment is a decimal index below n; returns it or -1. */
static int parse_index(const char *seg, int n) {
    long long idx = 0;
    if (!*seg) return -1;
    for (const char *c = seg; *c; c++) {
        if (*c < '0' || *c > '9') return -1;
        idx = idx * 10 + (*c - '0');
        if (idx >= n) return -1;
    }
    return (int)idx;
}

/* Walks path (dot-separated, modified in place) from root and puts value at its end. On a
 * config error nothing has changed: the walk fails only on existing nodes, before it creates
 * any. Takes ownership of value. */
static pnn_status set_path(pnn_cfg *root, char *path, const char *assignment, pnn_cfg *value) {
    pnn_cfg *node = root;
    char *seg = path;
    for (;;) {
        char *dot = strchr(seg, '.');
        if (dot) *dot = '\0';
        if (node->type == PNN_CFG_SCALAR) {
            pnn_cfg_free(value);
            return PNN_ERROR(PNN_ERR_CONFIG, "--set '%s': the value before '%s' (%s:%d) is a single value, not a map "
                             "or list; shorten the path", assignment, seg, node->source, node->line);
        }
        pnn_cfg **slot;
        if (node->type == PNN_CFG_LIST) {
            int idx = parse_index(seg, node->n);
            if (idx < 0) {
                pnn_cfg_free(value);
                return PNN_ERROR(PNN_ERR_CONFIG, "--set '%s': '%s' is not an index of the list at %s:%d, which has %d "
                                 "items (use 0 to %d)", assignment, seg, node->source, node->line, node->n,
                                 node->n - 1);
            }
            slot = &node->items[idx];
        } else {
            int i = pnn_cfg_find_key(node, seg);
            if (i < 0) {
                pnn_cfg *child = dot ? pnn_cfg_new_node(PNN_CFG_MAP, CFG_SET_SOURCE, 0) : value;
                char *key = strdup(seg);
                if (!child || !key) {
                    free(key);
                    if (child != value) pnn_cfg_free(child);
                    pnn_cfg_free(value);
                    return PNN_ERROR(PNN_ERR_NOMEM, "--set '%s': out of memory", assignment);
                }
                pnn_status st = pnn_cfg_append_node(node, key, 0, child);
                if (st != PNN_OK) {
                    if (child != value) pnn_cfg_free(value);
                    return st;
                }
                if (!dot) return PNN_OK;
                node = child;
                seg = dot + 1;
                continue;
            }
            slot = &node->items[i];
        }
        if (!dot) {
            pnn_cfg_free(*slot);
            *slot = value;
            return PNN_OK;
        }
        node = *slot;
        seg = dot + 1;
    }
}

pnn_status pnn_cfg_set(pnn_cfg *root, const char *assignment) {
    if (!root || !assignment) return PNN_ERROR(PNN_ERR_INVALID, "pnn_cfg_set: root and assignment must not be NULL");
    const char *eq = strchr(assignment, '=');
    if (!eq)
        return PNN_ERROR(PNN_ERR_CONFIG, "--set '%s': expected path=value, e.g. network.1.n=1610", assignment);
    size_t plen = (size_t)(eq - assignment);
    int segments = 1, empty_part = plen == 0;
    for (size_t i = 0; i < plen; i++) {
        if (assignment[i] != '.') continue;
        segments++;
        if (i == 0 || i + 1 == plen || assignment[i + 1] == '.') empty_part = 1;
    }
    if (empty_part)
        return PNN_ERROR(PNN_ERR_CONFIG, "--set '%s': the path before '=' has an empty part; write it like "
                         "network.1.n=1610", assignment);
    if (segments > CFG_MAX_DEPTH)
        return PNN_ERROR(PNN_ERR_CONFIG, "--set '%s': the path has more than %d parts", assignment, CFG_MAX_DEPTH);
    /* keys that a config file could not hold (written out, they would not read back) */
    if (plen > CFG_MAX_KEY_BYTES || !pnn_cfg_text_ok(assignment, plen))
        return PNN_ERROR(PNN_ERR_CONFIG, "--set '%.60s': the path before '=' is over %d bytes, or not UTF-8 text "
                         "without control characters", assignment, CFG_MAX_KEY_BYTES);
    char *path = malloc(plen + 1);
    if (!path) return PNN_ERROR(PNN_ERR_NOMEM, "--set '%s': out of memory", assignment);
    memcpy(path, assignment, plen);
    path[plen] = '\0';
    pnn_cfg *value = NULL;
    pnn_status st = pnn_cfg_parse_text(eq + 1, strlen(eq + 1), CFG_SET_SOURCE, 0, &value);
    if (st != PNN_OK) pnn_error_prefix(st, "--set '%s': ", assignment);
    else st = set_path(root, path, assignment, value);
    free(path);
    return st;
}

/* ---- writing YAML ---- */

typedef struct {
    char *p;
    size_t n, cap;
    int failed;
} ybuf;

static void put(ybuf *b, const char *s, size_t len) {
    if (b->failed) return;
    if (b->n + len + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + len + 1) cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->failed = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, len);
    b->n += len;
    b->p[b->n] = '\0';
}

static void puts_(ybuf *b, const char *s) { put(b, s, strlen(s)); }

static void pad(ybuf *b, int indent) {
    for (int i = 0; i < indent; i++) put(b, " ", 1);
}

/* 1 when s, written plain in block context, reads back as the same string. */
static int plain_safe(const char *s) {
    size_t len = strlen(s);
    if (!len) return 0;
    if (strchr(",[]{}#&*!|>'\"%@`", s[0]) || s[0] == ' ' || s[0] == '\t') return 0;
    if (strchr("-?:", s[0]) && (s[1] == '\0' || s[1] == ' ' || s[1] == '\t')) return 0;
    if (!strncmp(s, "---", 3) || !strncmp(s, "...", 3)) return 0;
    if (s[len - 1] == ' ' || s[len - 1] == '\t' || s[len - 1] == ':') return 0;
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        if (*c < 0x20 || *c == 0x7f || (c[0] == 0xc2 && c[1] >= 0x80 && c[1] <= 0x9f)) return 0;
        if (c[0] == 0xe2 && c[1] == 0x80 && (c[2] == 0xa8 || c[2] == 0xa9)) return 0; /* YAML line breaks */
        if (c[0] == 0xef && c[1] == 0xbb && c[2] == 0xbf) return 0;                   /* a byte order mark */
        if ((c[0] == ':' && (c[1] == ' ' || c[1] == '\t')) || ((c[0] == ' ' || c[0] == '\t') && c[1] == '#'))
            return 0;
    }
    return 1;
}

/* Strings a YAML reader would take for null or a boolean if written plain. */
static int looks_special(const char *s) {
    static const char *const words[] = {"~", "null", "true", "false", "yes", "no", "on", "off"};
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
        if (!strcasecmp(s, words[i])) return 1;
    return 0;
}

/* Writes s double-quoted, escaping what YAML would otherwise fold or refuse. Control
 * characters, including the C1 range (UTF-8 C2 80..C2 9F), become \xNN code points. */
static void put_quoted(ybuf *b, const char *s) {
    put(b, "\"", 1);
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        char esc[8];
        if (*c == '"') puts_(b, "\\\"");
        else if (*c == '\\') puts_(b, "\\\\");
        else if (*c == '\n') puts_(b, "\\n");
        else if (*c == '\t') puts_(b, "\\t");
        else if (*c == '\r') puts_(b, "\\r");
        else if (*c < 0x20 || *c == 0x7f) {
            snprintf(esc, sizeof esc, "\\x%02x", *c);
            puts_(b, esc);
        } else if (c[0] == 0xc2 && c[1] >= 0x80 && c[1] <= 0x9f) {
            snprintf(esc, sizeof esc, "\\x%02x", c[1]);
            puts_(b, esc);
            c++;
        } else if (c[0] == 0xe2 && c[1] == 0x80 && (c[2] == 0xa8 || c[2] == 0xa9)) {
            puts_(b, c[2] == 0xa8 ? "\\L" : "\\P"); /* line and paragraph separators, which YAML folds */
            c += 2;
        } else if (c[0] == 0xef && c[1] == 0xbb && c[2] == 0xbf) {
            puts_(b, "\\uFEFF");
            c += 2;
        } else put(b, (const char *)c, 1);
    }
    put(b, "\"", 1);
}

static void put_scalar(ybuf *b, const pnn_cfg *node) {
    if (node->quoted || !plain_safe(node->value)) put_quoted(b, node->value);
    else puts_(b, node->value);
}

static void put_key(ybuf *b, const char *key) {
    if (!plain_safe(key) || looks_special(key)) put_quoted(b, key);
    else puts_(b, key);
}

static void emit_node(ybuf *b, const pnn_cfg *node, int indent, int inline_first);

/* Writes what follows "key:" or "-": the value on the same line if it is a scalar or an empty
 * collection, else a nested block starting on the next line (maps) or inline after "- ". */
static void emit_child(ybuf *b, const pnn_cfg *child, int indent, int after_dash) {
    if (child->type == PNN_CFG_SCALAR) {
        put(b, " ", 1);
        put_scalar(b, child);
        put(b, "\n", 1);
    } else if (child->n == 0) {
        puts_(b, child->type == PNN_CFG_MAP ? " {}\n" : " []\n");
    } else if (after_dash) {
        put(b, " ", 1);
        emit_node(b, child, indent + 2, 1);
    } else {
        put(b, "\n", 1);
        emit_node(b, child, indent + 2, 0);
    }
}

/* Writes a non-empty map or list at indent; inline_first: the first line's indentation has
 * already been written (after "- "). */
static void emit_node(ybuf *b, const pnn_cfg *node, int indent, int inline_first) {
    for (int i = 0; i < node->n; i++) {
        if (i > 0 || !inline_first) pad(b, indent);
        if (node->type == PNN_CFG_MAP) {
            put_key(b, node->keys[i]);
            put(b, ":", 1);
            emit_child(b, node->items[i], indent, 0);
        } else {
            put(b, "-", 1);
            emit_child(b, node->items[i], indent, 1);
        }
    }
}

char *pnn_cfg_to_yaml(const pnn_cfg *root) {
    ybuf b = {0};
    if (!root) return NULL;
    if (root->type == PNN_CFG_SCALAR) {
        put_scalar(&b, root);
        put(&b, "\n", 1);
    } else if (root->n == 0) {
        puts_(&b, root->type == PNN_CFG_MAP ? "{}\n" : "[]\n");
    } else {
        emit_node(&b, root, 0, 0);
    }
    if (b.failed) {
        free(b.p);
        PNN_ERROR(PNN_ERR_NOMEM, "out of memory writing a config as YAML");
        return NULL;
    }
    return b.p;
}

pnn_status pnn_cfg_set_device(pnn_cfg *cfg, const char *name, const char *uri, char *key, size_t key_cap) {
    const pnn_cfg *net = pnn_cfg_get(cfg, "network");
    int found = -1, count = 0;
    for (int i = 0; net && i < pnn_cfg_len(net); i++) {
        const pnn_cfg *l = pnn_cfg_at(net, i);
        const char *kind = pnn_cfg_scalar(pnn_cfg_get(l, "kind"));
        const char *lname = pnn_cfg_scalar(pnn_cfg_get(l, "name"));
        if (!kind || strcmp(kind, "physical")) continue;
        count++;
        if (!name || (lname && !strcmp(lname, name))) found = i;
    }
    if (name && found < 0)
        return PNN_ERROR(PNN_ERR_INVALID, "--device %s=...: the network has no physical layer called '%s'",
                         name, name);
    if (!name && count != 1)
        return PNN_ERROR(PNN_ERR_INVALID,
                         "--device: the network has %d physical layers; name one as --device LAYER=URI", count);
    char assignment[2048];
    PNN_TRY(pnn_path_format(assignment, sizeof assignment, "network.%d.device=%s", found, uri));
    snprintf(key, key_cap, "network.%d.device", found);
    return pnn_cfg_set(cfg, assignment);
}
