/* YAML configuration trees, first half: libyaml's event parser builds maps, lists and scalars
 * that remember the file and line they came from, and the read accessors (typed reads, --set and
 * writing YAML are in host/config_edit.c). */
#include "pnn/config.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>

#include "config_internal.h"

const char *pnn_cfg_type_words(pnn_cfg_type t) {
    switch (t) {
    case PNN_CFG_MAP: return "a map";
    case PNN_CFG_LIST: return "a list";
    case PNN_CFG_SCALAR: return "a scalar";
    }
    return "an unknown node";
}

/* ---- nodes ---- */

pnn_cfg *pnn_cfg_new_node(pnn_cfg_type type, const char *source, int line) {
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
pnn_status pnn_cfg_append_node(pnn_cfg *parent, char *key, int key_line, pnn_cfg *child) {
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

int pnn_cfg_find_key(const pnn_cfg *map, const char *key) {
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

int pnn_cfg_text_ok(const char *s, size_t len) {
    const unsigned char *c = (const unsigned char *)s, *end = c + len;
    while (c < end) {
        unsigned v;
        int n = *c < 0x80 ? 0 : (*c & 0xe0) == 0xc0 ? 1 : (*c & 0xf0) == 0xe0 ? 2 : (*c & 0xf8) == 0xf0 ? 3 : -1;
        if (n < 0 || end - c <= n) return 0;
        v = n == 0 ? *c : *c & (0x3f >> n);
        for (int i = 1; i <= n; i++) {
            if ((c[i] & 0xc0) != 0x80) return 0;
            v = v << 6 | (c[i] & 0x3f);
        }
        static const unsigned least[] = {0, 0x80, 0x800, 0x10000};
        if (v < least[n] || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff)) return 0; /* overlong, surrogate */
        if (v < 0x20 || (v >= 0x7f && v <= 0x9f) || v == 0x2028 || v == 0x2029) return 0;
        c += n + 1;
    }
    return 1;
}

/* ---- parsing ---- */

typedef struct {
    yaml_parser_t parser;
    const char *source;
    const char *text;
    size_t len;
    int zero_lines; /* --set values: every node gets line 0 */
    int64_t nodes;  /* values parsed so far, against CFG_MAX_NODES */
} cfg_reader;

/* The keys of one map being parsed, hashed, so that finding duplicates stays linear in the
 * number of keys (a map of 200k keys took a minute with pairwise comparison). Slots hold
 * index + 1 into the map's keys; 0 is empty. */
typedef struct {
    uint32_t *slots;
    size_t cap; /* a power of two, at least twice the keys held */
} key_set;

static uint64_t hash_key(const char *s) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

/* Index of key in map (through its key set), or -1 after adding it as map's next key. */
static pnn_status key_set_add(key_set *ks, const pnn_cfg *map, const char *key, int *prev) {
    if ((size_t)map->n + 1 > ks->cap / 2) {
        size_t cap = ks->cap ? 2 * ks->cap : 64;
        uint32_t *slots = calloc(cap, sizeof *slots);
        if (!slots) return PNN_ERROR(PNN_ERR_NOMEM, "out of memory indexing the keys of a config map");
        for (size_t i = 0; i < ks->cap; i++) {
            if (!ks->slots[i]) continue;
            size_t j = hash_key(map->keys[ks->slots[i] - 1]) & (cap - 1);
            while (slots[j]) j = (j + 1) & (cap - 1);
            slots[j] = ks->slots[i];
        }
        free(ks->slots);
        ks->slots = slots;
        ks->cap = cap;
    }
    size_t j = hash_key(key) & (ks->cap - 1);
    for (; ks->slots[j]; j = (j + 1) & (ks->cap - 1))
        if (!strcmp(map->keys[ks->slots[j] - 1], key)) {
            *prev = (int)ks->slots[j] - 1;
            return PNN_OK;
        }
    ks->slots[j] = (uint32_t)map->n + 1;
    *prev = -1;
    return PNN_OK;
}

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
    pnn_cfg *list = pnn_cfg_new_node(PNN_CFG_LIST, r->source, line);
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
        PNN_GOTO(pnn_cfg_append_node(list, NULL, 0, child));
    }
    *out = list;
    return PNN_OK;
fail:
    pnn_cfg_free(list);
    return st;
}

static pnn_status parse_map(cfg_reader *r, int line, int depth, pnn_cfg **out) {
    pnn_cfg *map = pnn_cfg_new_node(PNN_CFG_MAP, r->source, line);
    if (!map) return PNN_ERROR(PNN_ERR_NOMEM, "%s:%d: out of memory for a map", r->source, line);
    pnn_status st;
    key_set keys = {NULL, 0};
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
        if (st == PNN_OK && (ev.data.scalar.length > CFG_MAX_KEY_BYTES || !pnn_cfg_text_ok(key, strlen(key)))) {
            st = PNN_ERROR(PNN_ERR_CONFIG, "%s:%d: a key is over %d bytes or holds control characters; pnn's keys "
                           "are short names", r->source, key_line, CFG_MAX_KEY_BYTES);
            free(key);
        }
        yaml_event_delete(&ev);
        if (st != PNN_OK) goto fail;
        int prev = -1;
        st = key_set_add(&keys, map, key, &prev);
        if (st != PNN_OK) {
            free(key);
            goto fail;
        }
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
        PNN_GOTO(pnn_cfg_append_node(map, key, key_line, child));
    }
    free(keys.slots);
    *out = map;
    return PNN_OK;
fail:
    free(keys.slots);
    pnn_cfg_free(map);
    return st;
}

/* Builds the node that starts with ev (a scalar or a collection start); the caller deletes ev. */
static pnn_status parse_value(cfg_reader *r, const yaml_event_t *ev, int depth, pnn_cfg **out) {
    PNN_TRY(refuse_extras(r, ev));
    int line = reader_line(r, ev->start_mark);
    if (++r->nodes > CFG_MAX_NODES)
        return PNN_ERROR(PNN_ERR_CONFIG, "%s:%zu: more than %d values; a config this large is not a pnn config",
                         r->source, ev->start_mark.line + 1, CFG_MAX_NODES);
    if (depth > CFG_MAX_DEPTH)
        return PNN_ERROR(PNN_ERR_CONFIG, "%s:%zu: values are nested more than %d levels deep; flatten the config",
                         r->source, ev->start_mark.line + 1, CFG_MAX_DEPTH);
    switch (ev->type) {
    case YAML_SCALAR_EVENT: {
        pnn_cfg *node = pnn_cfg_new_node(PNN_CFG_SCALAR, r->source, line);
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
        pnn_cfg *empty = pnn_cfg_new_node(PNN_CFG_SCALAR, r->source, 0);
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

pnn_status pnn_cfg_parse_text(const char *text, size_t len, const char *source, int want_map, pnn_cfg **out) {
    cfg_reader r = {.source = source, .text = text, .len = len, .zero_lines = !want_map};
    if (len > CFG_MAX_FILE_BYTES)
        return PNN_ERROR(PNN_ERR_CONFIG, "%s: the config is %zu bytes, over the 16 MiB a config may have", source,
                         len);
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
    pnn_status st = pnn_cfg_parse_text(text ? text : "", len, src, 1, &tree);
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
    int i = pnn_cfg_find_key(map, key);
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
