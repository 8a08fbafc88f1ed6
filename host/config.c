/* YAML configuration trees: libyaml's event parser builds maps, lists and scalars that remember
 * the file and line they came from; typed reads check values and ranges, `--set` overrides edit
 * the tree, and pnn_cfg_to_yaml writes it back as block YAML. */
#include "pnn/config.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>

#define CFG_MAX_FILE_BYTES ((size_t)16 << 20)
#define CFG_MAX_DEPTH 64
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

static const char *type_words(pnn_cfg_type t) {
    switch (t) {
    case PNN_CFG_MAP: return "a map";
    case PNN_CFG_LIST: return "a list";
    case PNN_CFG_SCALAR: return "a scalar";
    }
    return "an unknown node";
}

/* ---- nodes ---- */

static pnn_cfg *cfg_new(pnn_cfg_type type, const char *source, int line) {
    pnn_cfg *n = calloc(1, sizeof *n);
    if (!n) return NULL;
    n->type = type;
    n->source = source;
    n->line = line;
    return n;
}

void pnn_cfg_free(pnn_cfg *root) {
    if (!root) return;
    for (int i = 0; i < root->n; i++) {
        pnn_cfg_free(root->items[i]);
        if (root->keys) free(root->keys[i]);
    }
    free(root->items);
    free(root->keys);
    free(root->key_lines);
    free(root->value);
    free(root->owned_source);
    free(root);
}

/* Appends child (under key, a malloc'd string, for maps) to a map or list. Takes ownership of
 * key and child in every case, freeing them on failure, so callers need no cleanup. */
static pnn_status cfg_append(pnn_cfg *parent, char *key, int key_line, pnn_cfg *child) {
    if (parent->n == parent->cap) {
        int cap = parent->cap ? 2 * parent->cap : 4;
        pnn_cfg **items = realloc(parent->items, (size_t)cap * sizeof *items);
        if (items) parent->items = items;
        int ok = items != NULL;
        if (ok && parent->type == PNN_CFG_MAP) {
            char **keys = realloc(parent->keys, (size_t)cap * sizeof *keys);
            if (keys) parent->keys = keys;
            int *lines = keys ? realloc(parent->key_lines, (size_t)cap * sizeof *lines) : NULL;
            if (lines) parent->key_lines = lines;
            ok = lines != NULL;
        }
        if (!ok) {
            free(key);
            pnn_cfg_free(child);
            return PNN_ERROR(PNN_ERR_NOMEM, "out of memory growing a config %s",
                             parent->type == PNN_CFG_MAP ? "map" : "list");
        }
        parent->cap = cap;
    }
    parent->items[parent->n] = child;
    if (parent->type == PNN_CFG_MAP) {
        parent->keys[parent->n] = key;
        parent->key_lines[parent->n] = key_line;
    }
    parent->n++;
    return PNN_OK;
}

static int cfg_find(const pnn_cfg *map, const char *key) {
    for (int i = 0; i < map->n; i++)
        if (!strcmp(map->keys[i], key)) return i;
    return -1;
}

/* Copies len bytes of a scalar; a NUL inside (from a "\0" escape) cannot be kept in a C string
 * and is refused rather than silently truncating the value. */
static pnn_status copy_scalar(const char *source, int line, const yaml_char_t *s, size_t len, char **out) {
    if (memchr(s, '\0', len))
        return PNN_ERROR(PNN_ERR_CONFIG, "%s:%d: a value contains a NUL character (\\0); remove it", source, line);
    char *copy = malloc(len + 1);
    if (!copy) return PNN_ERROR(PNN_ERR_NOMEM, "%s:%d: out of memory copying a value", source, line);
    memcpy(copy, s, len);
    copy[len] = '\0';
    *out = copy;
    return PNN_OK;
}

/* ---- parsing ---- */

typedef struct {
    yaml_parser_t parser;
    const char *source;
    const char *text;
    size_t len;
    int zero_lines; /* --set values: every node gets line 0 */
} cfg_reader;

static int reader_line(const cfg_reader *r, yaml_mark_t mark) {
    return r->zero_lines ? 0 : (int)mark.line + 1;
}

/* Fetches the next event, turning libyaml's error into one naming file, line and column. */
static pnn_status reader_next(cfg_reader *r, yaml_event_t *ev) {
    if (yaml_parser_parse(&r->parser, ev)) return PNN_OK;
    const yaml_parser_t *p = &r->parser;
    const char *problem = p->problem ? p->problem : "malformed YAML";
    if (p->error == YAML_MEMORY_ERROR)
        return PNN_ERROR(PNN_ERR_NOMEM, "%s: out of memory while parsing YAML", r->source);
    if (p->error == YAML_READER_ERROR) {
        /* Encoding errors carry only a byte offset: count the lines up to it. */
        size_t line = 1, col = 1;
        for (size_t i = 0; i < p->problem_offset && i < r->len; i++) {
            if (r->text[i] == '\n') line++, col = 1;
            else col++;
        }
        return PNN_ERROR(PNN_ERR_CONFIG, "%s:%zu:%zu: %s (byte 0x%02x); save the file as UTF-8 text", r->source,
                         line, col, problem, (unsigned)p->problem_value & 0xffu);
    }
    if (r->zero_lines) /* a one-line --set value: positions would only confuse */
        return PNN_ERROR(PNN_ERR_CONFIG, "the value is not valid YAML: %s%s%s; check its quotes and brackets", problem,
                         p->context ? " " : "", p->context ? p->context : "");
    size_t at = p->problem_mark.index;
    const char *hint = at < r->len && r->text[at] == '\t' ? "YAML indents with spaces, not tabs"
                                                           : "check indentation, quotes and brackets there";
    if (p->context)
        return PNN_ERROR(PNN_ERR_CONFIG, "%s:%zu:%zu: %s (%s that started at line %zu); %s", r->source,
                         p->problem_mark.line + 1, p->problem_mark.column + 1, problem, p->context,
                         p->context_mark.line + 1, hint);
    return PNN_ERROR(PNN_ERR_CONFIG, "%s:%zu:%zu: %s; %s", r->source, p->problem_mark.line + 1,
                     p->problem_mark.column + 1, problem, hint);
}

/* Anchors, aliases and tags make a config harder to read and to edit with --set; pnn refuses
 * them so that every value is written out where it is used. */
static pnn_status refuse_extras(const cfg_reader *r, const yaml_event_t *ev) {
    const yaml_char_t *anchor = NULL, *tag = NULL;
    size_t line = ev->start_mark.line + 1, col = ev->start_mark.column + 1;
    switch (ev->type) {
    case YAML_ALIAS_EVENT:
        return PNN_ERROR(PNN_ERR_CONFIG, "%s:%zu:%zu: alias '*%s' is not supported; write the value out in full",
                         r->source, line, col, (const char *)ev->data.alias.anchor);
    case YAML_SCALAR_EVENT:
        anchor = ev->data.scalar.anchor;
        tag = ev->data.scalar.tag;
        break;
    case YAML_SEQUENCE_START_EVENT:
        anchor = ev->data.sequence_start.anchor;
        tag = ev->data.sequence_start.tag;
        break;
    case YAML_MAPPING_START_EVENT:
        anchor = ev->data.mapping_start.anchor;
        tag = ev->data.mapping_start.tag;
        break;
    default: break;
    }
    if (anchor)
        return PNN_ERROR(PNN_ERR_CONFIG, "%s:%zu:%zu: anchor '&%s' is not supported; remove it and write values "
                         "out in full", r->source, line, col, (const char *)anchor);
    if (tag)
        return PNN_ERROR(PNN_ERR_CONFIG, "%s:%zu:%zu: tag '%s' is not supported; remove it (quote the value if it "
                         "must stay a string)", r->source, line, col, (const char *)tag);
    return PNN_OK;
}

static pnn_status parse_value(cfg_reader *r, const yaml_event_t *ev, int depth, pnn_cfg **out);

static pnn_status parse_list(cfg_reader *r, int line, int depth, pnn_cfg **out) {
    pnn_cfg *list = cfg_new(PNN_CFG_LIST, r->source, line);
    if (!list) return PNN_ERROR(PNN_ERR_NOMEM, "%s:%d: out of memory for a list", r->source, line);
    pnn_status st;
    for (;;) {
        yaml_event_t ev;
        PNN_GOTO(reader_next(r, &ev));
        if (ev.type == YAML_SEQUENCE_END_EVENT) {
            yaml_event_delete(&ev);
            break;
        }
        pnn_cfg *child;
        st = parse_value(r, &ev, depth + 1, &child);
        yaml_event_delete(&ev);
        if (st != PNN_OK) goto fail;
        PNN_GOTO(cfg_append(list, NULL, 0, child));
    }
    *out = list;
    return PNN_OK;
fail:
    pnn_cfg_free(list);
    return st;
}

static pnn_status parse_map(cfg_reader *r, int line, int depth, pnn_cfg **out) {
    pnn_cfg *map = cfg_new(PNN_CFG_MAP, r->source, line);
    if (!map) return PNN_ERROR(PNN_ERR_NOMEM, "%s:%d: out of memory for a map", r->source, line);
    pnn_status st;
    for (;;) {
        yaml_event_t ev;
        PNN_GOTO(reader_next(r, &ev));
        if (ev.type == YAML_MAPPING_END_EVENT) {
            yaml_event_delete(&ev);
            break;
        }
        int key_line = reader_line(r, ev.start_mark);
        char *key = NULL;
        st = refuse_extras(r, &ev);
        if (st == PNN_OK && ev.type != YAML_SCALAR_EVENT)
            st = PNN_ERROR(PNN_ERR_CONFIG, "%s:%d: a map key must be a string, not %s; write 'name: value'",
                           r->source, key_line, ev.type == YAML_MAPPING_START_EVENT ? "a map" : "a list");
        if (st == PNN_OK)
            st = copy_scalar(r->source, key_line, ev.data.scalar.value, ev.data.scalar.length, &key);
        yaml_event_delete(&ev);
        if (st != PNN_OK) goto fail;
        int prev = cfg_find(map, key);
        if (prev >= 0) {
            st = PNN_ERROR(PNN_ERR_CONFIG, "%s:%d: duplicate key '%s' (first at line %d); keep only one of them",
                           r->source, key_line, key, map->key_lines[prev]);
            free(key);
            goto fail;
        }
        pnn_cfg *child;
        st = reader_next(r, &ev);
        if (st != PNN_OK) {
            free(key);
            goto fail;
        }
        st = parse_value(r, &ev, depth + 1, &child);
        yaml_event_delete(&ev);
        if (st != PNN_OK) {
            free(key);
            goto fail;
        }
        PNN_GOTO(cfg_append(map, key, key_line, child));
    }
    *out = map;
    return PNN_OK;
fail:
    pnn_cfg_free(map);
    return st;
}

/* Builds the node that starts with ev (a scalar or a collection start); the caller deletes ev. */
static pnn_status parse_value(cfg_reader *r, const yaml_event_t *ev, int depth, pnn_cfg **out) {
    PNN_TRY(refuse_extras(r, ev));
    int line = reader_line(r, ev->start_mark);
    if (depth > CFG_MAX_DEPTH)
        return PNN_ERROR(PNN_ERR_CONFIG, "%s:%zu: values are nested more than %d levels deep; flatten the config",
                         r->source, ev->start_mark.line + 1, CFG_MAX_DEPTH);
    switch (ev->type) {
    case YAML_SCALAR_EVENT: {
        pnn_cfg *node = cfg_new(PNN_CFG_SCALAR, r->source, line);
        if (!node) return PNN_ERROR(PNN_ERR_NOMEM, "%s:%d: out of memory for a value", r->source, line);
        pnn_status st = copy_scalar(r->source, line, ev->data.scalar.value, ev->data.scalar.length, &node->value);
        if (st != PNN_OK) {
            pnn_cfg_free(node);
            return st;
        }
        node->quoted = ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE;
        *out = node;
        return PNN_OK;
    }
    case YAML_SEQUENCE_START_EVENT: return parse_list(r, line, depth, out);
    case YAML_MAPPING_START_EVENT: return parse_map(r, line, depth, out);
    default:
        return PNN_ERROR(PNN_ERR_CONFIG, "%s:%zu: unexpected YAML structure (event %d)", r->source,
                         ev->start_mark.line + 1, (int)ev->type);
    }
}

/* Expects the next event to be of type want; what names the place for the error. */
static pnn_status expect_event(cfg_reader *r, yaml_event_type_t want, const char *what) {
    yaml_event_t ev;
    PNN_TRY(reader_next(r, &ev));
    yaml_event_type_t got = ev.type;
    size_t line = ev.start_mark.line + 1;
    yaml_event_delete(&ev);
    if (got == want) return PNN_OK;
    if (got == YAML_DOCUMENT_START_EVENT)
        return PNN_ERROR(PNN_ERR_CONFIG, "%s:%zu: a second YAML document ('---') starts here; a config holds one",
                         r->source, line);
    return PNN_ERROR(PNN_ERR_CONFIG, "%s:%zu: unexpected YAML structure %s", r->source, line, what);
}

/* Reads one document. want_map: the top level must be a block or flow map (config files);
 * otherwise (--set values) it may be a scalar or a flow collection, and an empty text is "". */
static pnn_status parse_document(cfg_reader *r, int want_map, pnn_cfg **out) {
    PNN_TRY(expect_event(r, YAML_STREAM_START_EVENT, "at the start"));
    yaml_event_t ev;
    PNN_TRY(reader_next(r, &ev));
    if (ev.type == YAML_STREAM_END_EVENT) {
        yaml_event_delete(&ev);
        if (want_map)
            return PNN_ERROR(PNN_ERR_CONFIG, "%s: the config is empty; it must be a map of 'key: value' lines",
                             r->source);
        pnn_cfg *empty = cfg_new(PNN_CFG_SCALAR, r->source, 0);
        if (empty) empty->value = calloc(1, 1);
        if (!empty || !empty->value) {
            pnn_cfg_free(empty);
            return PNN_ERROR(PNN_ERR_NOMEM, "out of memory for a value");
        }
        *out = empty;
        return PNN_OK;
    }
    yaml_event_delete(&ev); /* DOCUMENT_START: the parser guarantees it here */
    PNN_TRY(reader_next(r, &ev));
    pnn_status st = PNN_OK;
    size_t line = ev.start_mark.line + 1;
    if (want_map && ev.type != YAML_MAPPING_START_EVENT && ev.type != YAML_ALIAS_EVENT)
        st = PNN_ERROR(PNN_ERR_CONFIG, "%s:%zu: the top level must be a map of 'key: value' lines, not %s",
                       r->source, line, ev.type == YAML_SEQUENCE_START_EVENT ? "a list" : "a single value");
    else if (!want_map && ((ev.type == YAML_MAPPING_START_EVENT &&
                            ev.data.mapping_start.style != YAML_FLOW_MAPPING_STYLE) ||
                           (ev.type == YAML_SEQUENCE_START_EVENT &&
                            ev.data.sequence_start.style != YAML_FLOW_SEQUENCE_STYLE)))
        st = PNN_ERROR(PNN_ERR_CONFIG, "a value must be a single value or a flow list/map like [1, 2] or "
                       "{a: 1}; quote it if it contains ': ' or starts with '- '");
    if (st == PNN_OK) st = parse_value(r, &ev, 0, out);
    yaml_event_delete(&ev);
    if (st != PNN_OK) return st;
    st = expect_event(r, YAML_DOCUMENT_END_EVENT, "after the top level");
    if (st == PNN_OK) st = expect_event(r, YAML_STREAM_END_EVENT, "after the document");
    if (st != PNN_OK) {
        pnn_cfg_free(*out);
        *out = NULL;
    }
    return st;
}

static pnn_status parse_text(const char *text, size_t len, const char *source, int want_map, pnn_cfg **out) {
    cfg_reader r = {.source = source, .text = text, .len = len, .zero_lines = !want_map};
    if (!yaml_parser_initialize(&r.parser)) return PNN_ERROR(PNN_ERR_NOMEM, "%s: out of memory starting the YAML parser", source);
    yaml_parser_set_input_string(&r.parser, (const unsigned char *)text, len);
    pnn_status st = parse_document(&r, want_map, out);
    yaml_parser_delete(&r.parser);
    return st;
}

pnn_status pnn_cfg_parse(const char *text, size_t len, const char *source, pnn_cfg **root) {
    if (!root || (!text && len)) return PNN_ERROR(PNN_ERR_INVALID, "pnn_cfg_parse: text and root must not be NULL");
    *root = NULL;
    char *src = strdup(source ? source : "<string>");
    if (!src) return PNN_ERROR(PNN_ERR_NOMEM, "out of memory copying the config's name");
    pnn_cfg *tree = NULL;
    pnn_status st = parse_text(text ? text : "", len, src, 1, &tree);
    if (st != PNN_OK) {
        free(src);
        return st;
    }
    tree->owned_source = src;
    *root = tree;
    return PNN_OK;
}

pnn_status pnn_cfg_load(const char *path, pnn_cfg **root) {
    if (!path || !root) return PNN_ERROR(PNN_ERR_INVALID, "pnn_cfg_load: path and root must not be NULL");
    *root = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) {
        if (errno == ENOENT)
            return PNN_ERROR(PNN_ERR_NOT_FOUND, "config file '%s' does not exist; check the path", path);
        return PNN_ERROR(PNN_ERR_IO, "cannot open config file '%s': %s", path, strerror(errno));
    }
    /* Read in growing chunks (works for pipes too), stopping one byte past the limit. */
    size_t cap = 0, len = 0;
    char *buf = NULL;
    pnn_status st = PNN_OK;
    for (;;) {
        if (len == cap) {
            size_t grow = cap ? 2 * cap : 64 << 10;
            if (grow > CFG_MAX_FILE_BYTES + 1) grow = CFG_MAX_FILE_BYTES + 1;
            char *b = realloc(buf, grow);
            if (!b) {
                st = PNN_ERROR(PNN_ERR_NOMEM, "out of memory reading config file '%s'", path);
                break;
            }
            buf = b;
            cap = grow;
        }
        size_t got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (len > CFG_MAX_FILE_BYTES) {
            st = PNN_ERROR(PNN_ERR_CONFIG, "config file '%s' is larger than 16 MiB; is it really a config?", path);
            break;
        }
        if (got == 0) {
            if (ferror(f)) st = PNN_ERROR(PNN_ERR_IO, "cannot read config file '%s': %s", path, strerror(errno));
            break;
        }
    }
    fclose(f);
    if (st == PNN_OK) st = pnn_cfg_parse(buf, len, path, root);
    free(buf);
    return st;
}

/* ---- access ---- */

pnn_cfg_type pnn_cfg_type_of(const pnn_cfg *node) { return node ? node->type : PNN_CFG_SCALAR; }
int pnn_cfg_line(const pnn_cfg *node) { return node ? node->line : 0; }
const char *pnn_cfg_source(const pnn_cfg *node) { return node ? node->source : "(no config)"; }

const pnn_cfg *pnn_cfg_get(const pnn_cfg *map, const char *key) {
    if (!map || !key || map->type != PNN_CFG_MAP) return NULL;
    int i = cfg_find(map, key);
    return i >= 0 ? map->items[i] : NULL;
}

int pnn_cfg_len(const pnn_cfg *node) { return node && node->type != PNN_CFG_SCALAR ? node->n : 0; }

const pnn_cfg *pnn_cfg_at(const pnn_cfg *node, int i) {
    return node && node->type != PNN_CFG_SCALAR && i >= 0 && i < node->n ? node->items[i] : NULL;
}

const char *pnn_cfg_key_at(const pnn_cfg *map, int i) {
    return map && map->type == PNN_CFG_MAP && i >= 0 && i < map->n ? map->keys[i] : NULL;
}

const char *pnn_cfg_scalar(const pnn_cfg *node) {
    return node && node->type == PNN_CFG_SCALAR ? node->value : NULL;
}

/* ---- typed reads ---- */

/* Finds the scalar map[key] for a typed read; *v is NULL when the key is missing and optional.
 * want ("an integer") completes the error for a non-scalar value. */
static pnn_status typed_lookup(const pnn_cfg *map, const char *key, int required, const char *want,
                               const pnn_cfg **v) {
    *v = NULL;
    if (!key) return PNN_ERROR(PNN_ERR_INVALID, "pnn_cfg typed read: key must not be NULL");
    if (map && map->type != PNN_CFG_MAP)
        return PNN_ERROR(PNN_ERR_CONFIG, "%s:%d: expected a map holding key '%s', got %s", map->source, map->line,
                         key, type_words(map->type));
    const pnn_cfg *node = pnn_cfg_get(map, key);
    if (!node) {
        if (!required) return PNN_OK;
        if (!map) return PNN_ERROR(PNN_ERR_CONFIG, "config: required key '%s' is missing (its whole section is)", key);
        return PNN_ERROR(PNN_ERR_CONFIG, "%s: map at line %d has no key '%s'; add '%s: <value>' (it is required)",
                         map->source, map->line, key, key);
    }
    if (node->type != PNN_CFG_SCALAR)
        return PNN_ERROR(PNN_ERR_CONFIG, "%s:%d: key '%s': expected %s, got %s", node->source, node->line, key, want,
                         type_words(node->type));
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

/* Levenshtein distance, for "did you mean" suggestions; names longer than 63 bytes count as far. */
static int edit_distance(const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
    if (la > 63 || lb > 63) return 1 << 20;
    int prev[64], cur[64];
    for (size_t j = 0; j <= lb; j++) prev[j] = (int)j;
    for (size_t i = 1; i <= la; i++) {
        cur[0] = (int)i;
        for (size_t j = 1; j <= lb; j++) {
            int sub = prev[j - 1] + (a[i - 1] != b[j - 1]);
            int del = prev[j] + 1, ins = cur[j - 1] + 1;
            cur[j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
        }
        memcpy(prev, cur, (lb + 1) * sizeof cur[0]);
    }
    return prev[lb];
}

pnn_status pnn_cfg_check_keys(const pnn_cfg *map, const char *const *allowed, const char *where) {
    if (!map || !allowed) return PNN_OK;
    if (!where) where = "this map";
    if (map->type != PNN_CFG_MAP)
        return PNN_ERROR(PNN_ERR_CONFIG, "%s:%d: %s must be a map of 'key: value' entries, got %s", map->source,
                         map->line, where, type_words(map->type));
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
            int d = edit_distance(key, allowed[j]);
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
            int i = cfg_find(node, seg);
            if (i < 0) {
                pnn_cfg *child = dot ? cfg_new(PNN_CFG_MAP, CFG_SET_SOURCE, 0) : value;
                char *key = strdup(seg);
                if (!child || !key) {
                    free(key);
                    if (child != value) pnn_cfg_free(child);
                    pnn_cfg_free(value);
                    return PNN_ERROR(PNN_ERR_NOMEM, "--set '%s': out of memory", assignment);
                }
                pnn_status st = cfg_append(node, key, 0, child);
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
    char *path = malloc(plen + 1);
    if (!path) return PNN_ERROR(PNN_ERR_NOMEM, "--set '%s': out of memory", assignment);
    memcpy(path, assignment, plen);
    path[plen] = '\0';
    pnn_cfg *value = NULL;
    pnn_status st = parse_text(eq + 1, strlen(eq + 1), CFG_SET_SOURCE, 0, &value);
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
