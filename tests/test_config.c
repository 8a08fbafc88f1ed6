/* YAML configuration trees: parsing nested configs, typed reads with defaults and ranges, the
 * errors for bad files and values (each must name the place and the problem), --set overrides,
 * and writing a tree back to YAML that reads back to the same tree. */
#include <check.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pnn/config.h"
#include "tests/testutil.h"

/* Parsing yaml must fail with status and an error containing every one of the NULL-terminated
 * fragments. */
static void parse_fails(const char *yaml, pnn_status status, ...) {
    pnn_cfg *cfg = NULL;
    pnn_status st = pnn_cfg_parse(yaml, strlen(yaml), "bad.yaml", &cfg);
    ck_assert_msg(st == status, "parsing <<%s>> gave status %d (%s), want %d", yaml, st, pnn_last_error(), status);
    ck_assert_ptr_null(cfg);
    va_list ap;
    va_start(ap, status);
    for (const char *frag; (frag = va_arg(ap, const char *));)
        ck_assert_msg(strstr(pnn_last_error(), frag), "error '%s' lacks '%s'", pnn_last_error(), frag);
    va_end(ap);
}

static void error_has(const char *frag) {
    ck_assert_msg(strstr(pnn_last_error(), frag), "error '%s' lacks '%s'", pnn_last_error(), frag);
}

static const char *nested_yaml = "# a training config\n"
                                 "seed: 7\n"
                                 "optim:\n"
                                 "  kind: adam\n"
                                 "  lr: 1.5e-3\n"
                                 "  nesterov: yes\n"
                                 "network:\n"
                                 "  - kind: physical\n"
                                 "    device: 'sim:oscillator?n=100'\n"
                                 "    params: {n: 100, gain: 0.5}\n"
                                 "  - kind: linear\n"
                                 "    out: 10\n"
                                 "    dims: [7, 7]\n"
                                 "tags: [a, b, c]\n"
                                 "empty:\n";

START_TEST(parses_nested_maps_and_lists) {
    pnn_cfg *cfg = pnn_test_parse(nested_yaml);
    ck_assert_int_eq(pnn_cfg_type_of(cfg), PNN_CFG_MAP);
    ck_assert_int_eq(pnn_cfg_len(cfg), 5);
    ck_assert_str_eq(pnn_cfg_key_at(cfg, 0), "seed");
    ck_assert_str_eq(pnn_cfg_key_at(cfg, 4), "empty");
    ck_assert_ptr_null(pnn_cfg_key_at(cfg, 5));
    ck_assert_str_eq(pnn_cfg_source(cfg), "test.yaml");
    ck_assert_int_eq(pnn_cfg_line(pnn_cfg_get(cfg, "seed")), 2);

    const pnn_cfg *net = pnn_cfg_get(cfg, "network");
    ck_assert_int_eq(pnn_cfg_type_of(net), PNN_CFG_LIST);
    ck_assert_int_eq(pnn_cfg_len(net), 2);
    const pnn_cfg *l0 = pnn_cfg_at(net, 0), *l1 = pnn_cfg_at(net, 1);
    ck_assert_int_eq(pnn_cfg_type_of(l0), PNN_CFG_MAP);
    ck_assert_int_eq(pnn_cfg_line(l0), 8);
    ck_assert_int_eq(pnn_cfg_line(l1), 11);
    ck_assert_str_eq(pnn_cfg_scalar(pnn_cfg_get(l0, "kind")), "physical");
    ck_assert_str_eq(pnn_cfg_scalar(pnn_cfg_get(l0, "device")), "sim:oscillator?n=100");
    const pnn_cfg *params = pnn_cfg_get(l0, "params");
    ck_assert_int_eq(pnn_cfg_type_of(params), PNN_CFG_MAP);
    ck_assert_str_eq(pnn_cfg_key_at(params, 1), "gain");
    ck_assert_str_eq(pnn_cfg_scalar(pnn_cfg_at(params, 1)), "0.5");
    ck_assert_int_eq(pnn_cfg_line(pnn_cfg_at(params, 1)), 10);
    const pnn_cfg *dims = pnn_cfg_get(l1, "dims");
    ck_assert_int_eq(pnn_cfg_len(dims), 2);
    ck_assert_str_eq(pnn_cfg_scalar(pnn_cfg_at(dims, 1)), "7");
    ck_assert_str_eq(pnn_cfg_scalar(pnn_cfg_at(pnn_cfg_get(cfg, "tags"), 2)), "c");
    ck_assert_str_eq(pnn_cfg_scalar(pnn_cfg_get(cfg, "empty")), "");

    /* Lookups that do not apply give NULL / 0 rather than crashing. */
    ck_assert_ptr_null(pnn_cfg_get(cfg, "nope"));
    ck_assert_ptr_null(pnn_cfg_get(net, "kind"));
    ck_assert_ptr_null(pnn_cfg_at(net, 2));
    ck_assert_ptr_null(pnn_cfg_at(net, -1));
    ck_assert_ptr_null(pnn_cfg_scalar(net));
    ck_assert_ptr_null(pnn_cfg_scalar(NULL));
    ck_assert_int_eq(pnn_cfg_len(pnn_cfg_get(cfg, "seed")), 0);
    pnn_cfg_free(cfg);
}
END_TEST

START_TEST(typed_reads_defaults_required_and_ranges) {
    pnn_cfg *cfg = pnn_test_parse(nested_yaml);
    const pnn_cfg *optim = pnn_cfg_get(cfg, "optim");
    int64_t i = -1;
    double d = -1;
    int b = -1;
    const char *s = NULL;

    ck_assert_int_eq(pnn_cfg_int(cfg, "seed", 1, 0, 0, 100, &i), PNN_OK);
    ck_assert_int_eq(i, 7);
    ck_assert_int_eq(pnn_cfg_int(cfg, "epochs", 0, 12, 1, 100, &i), PNN_OK);
    ck_assert_int_eq(i, 12);
    ck_assert_int_eq(pnn_cfg_float(optim, "lr", 1, 0, 0, 1, &d), PNN_OK);
    ck_assert_double_eq_tol(d, 1.5e-3, 1e-15);
    ck_assert_int_eq(pnn_cfg_float(optim, "momentum", 0, 0.9, 0, 1, &d), PNN_OK);
    ck_assert_double_eq(d, 0.9);
    ck_assert_int_eq(pnn_cfg_bool(optim, "nesterov", 1, 0, &b), PNN_OK);
    ck_assert_int_eq(b, 1);
    ck_assert_int_eq(pnn_cfg_bool(optim, "amsgrad", 0, 1, &b), PNN_OK);
    ck_assert_int_eq(b, 1);
    ck_assert_int_eq(pnn_cfg_str(optim, "kind", 1, NULL, &s), PNN_OK);
    ck_assert_str_eq(s, "adam");
    ck_assert_int_eq(pnn_cfg_str(optim, "schedule", 0, "cosine", &s), PNN_OK);
    ck_assert_str_eq(s, "cosine");
    /* An integer is also a number. */
    ck_assert_int_eq(pnn_cfg_float(cfg, "seed", 1, 0, 0, 10, &d), PNN_OK);
    ck_assert_double_eq(d, 7.0);
    /* A missing optional section gives the default. */
    ck_assert_int_eq(pnn_cfg_int(pnn_cfg_get(cfg, "data"), "batch", 0, 32, 1, 1024, &i), PNN_OK);
    ck_assert_int_eq(i, 32);

    /* Required but missing: names the file, the map's line and the key. */
    ck_assert_int_eq(pnn_cfg_int(pnn_cfg_at(pnn_cfg_get(cfg, "network"), 1), "n", 1, 0, 1, 10, &i), PNN_ERR_CONFIG);
    error_has("test.yaml: map at line 11 has no key 'n'");
    /* Out of range: names the line, key, value and the range. */
    i = 99;
    ck_assert_int_eq(pnn_cfg_int(cfg, "seed", 1, 0, 10, 20, &i), PNN_ERR_CONFIG);
    error_has("test.yaml:2: key 'seed'");
    error_has("[10, 20]");
    ck_assert_int_eq(i, 99);
    ck_assert_int_eq(pnn_cfg_float(optim, "lr", 1, 0, 0.01, 1, &d), PNN_ERR_CONFIG);
    error_has("test.yaml:5: key 'lr': 1.5e-3 is out of range");
    /* Wrong types. */
    ck_assert_int_eq(pnn_cfg_int(optim, "lr", 1, 0, 0, 10, &i), PNN_ERR_CONFIG);
    error_has("test.yaml:5: key 'lr': expected an integer, got '1.5e-3'");
    ck_assert_int_eq(pnn_cfg_float(optim, "kind", 1, 0, 0, 10, &d), PNN_ERR_CONFIG);
    error_has("test.yaml:4: key 'kind': expected a number, got 'adam'");
    ck_assert_int_eq(pnn_cfg_bool(optim, "kind", 1, 0, &b), PNN_ERR_CONFIG);
    error_has("key 'kind': expected true or false");
    ck_assert_int_eq(pnn_cfg_str(cfg, "tags", 1, NULL, &s), PNN_ERR_CONFIG);
    error_has("test.yaml:14: key 'tags': expected a string, got a list");
    ck_assert_int_eq(pnn_cfg_int(cfg, "optim", 1, 0, 0, 10, &i), PNN_ERR_CONFIG);
    error_has("got a map");
    ck_assert_int_eq(pnn_cfg_int(cfg, "empty", 1, 0, 0, 10, &i), PNN_ERR_CONFIG);
    error_has("expected an integer, got ''");
    pnn_cfg_free(cfg);
}
END_TEST

START_TEST(scalar_syntaxes) {
    pnn_cfg *cfg = pnn_test_parse("a: 0x10\nb: 12abc\nc: 99999999999999999999\nd: -42\ne: nan\nf: inf\ng: 1e400\n"
                         "h: Off\ni: 1\nj: TRUE\nk: '-3.5'\nl: \" 5\"\n");
    int64_t i;
    double d;
    int b;
    ck_assert_int_eq(pnn_cfg_int(cfg, "a", 1, 0, INT64_MIN, INT64_MAX, &i), PNN_ERR_CONFIG);
    ck_assert_int_eq(pnn_cfg_int(cfg, "b", 1, 0, INT64_MIN, INT64_MAX, &i), PNN_ERR_CONFIG);
    error_has("got '12abc'");
    ck_assert_int_eq(pnn_cfg_int(cfg, "c", 1, 0, INT64_MIN, INT64_MAX, &i), PNN_ERR_CONFIG);
    error_has("out of range");
    ck_assert_int_eq(pnn_cfg_int(cfg, "d", 1, 0, -100, 100, &i), PNN_OK);
    ck_assert_int_eq(i, -42);
    ck_assert_int_eq(pnn_cfg_float(cfg, "e", 1, 0, -1e300, 1e300, &d), PNN_ERR_CONFIG);
    error_has("finite");
    ck_assert_int_eq(pnn_cfg_float(cfg, "f", 1, 0, -1e300, 1e300, &d), PNN_ERR_CONFIG);
    ck_assert_int_eq(pnn_cfg_float(cfg, "g", 1, 0, -1e300, 1e300, &d), PNN_ERR_CONFIG);
    ck_assert_int_eq(pnn_cfg_bool(cfg, "h", 1, 1, &b), PNN_OK);
    ck_assert_int_eq(b, 0);
    ck_assert_int_eq(pnn_cfg_bool(cfg, "i", 1, 0, &b), PNN_OK);
    ck_assert_int_eq(b, 1);
    ck_assert_int_eq(pnn_cfg_bool(cfg, "j", 1, 0, &b), PNN_OK);
    ck_assert_int_eq(b, 1);
    ck_assert_int_eq(pnn_cfg_float(cfg, "k", 1, 0, -10, 10, &d), PNN_OK);
    ck_assert_double_eq(d, -3.5);
    ck_assert_int_eq(pnn_cfg_int(cfg, "l", 1, 0, 0, 10, &i), PNN_ERR_CONFIG);
    pnn_cfg_free(cfg);
}
END_TEST

START_TEST(malformed_files_are_refused_with_their_line) {
    parse_fails("a: 1\nb: [1, 2\nc: 3\n", PNN_ERR_CONFIG, "bad.yaml:", NULL);
    parse_fails("a: 1\n  b: 2\n", PNN_ERR_CONFIG, "bad.yaml:2:", NULL);
    parse_fails("a: 1\nb: 'open\n", PNN_ERR_CONFIG, "bad.yaml:", "quoted scalar", NULL);
    parse_fails("a: 1\nb:\n  x: 1\n x: 2\n", PNN_ERR_CONFIG, "bad.yaml:4:", NULL);
    parse_fails("a: 1\nlr: 2\nb: 3\nlr: 4\n", PNN_ERR_CONFIG, "bad.yaml:4: duplicate key 'lr' (first at line 2)",
                NULL);
    parse_fails("net:\n  - {kind: a, kind: b}\n", PNN_ERR_CONFIG, "duplicate key 'kind'", NULL);
    parse_fails("base: &b {n: 1}\nother: *b\n", PNN_ERR_CONFIG, "bad.yaml:1:", "anchor '&b'", NULL);
    parse_fails("other: *b\n", PNN_ERR_CONFIG, "bad.yaml:1:", "alias", NULL);
    parse_fails("a: !!str 5\n", PNN_ERR_CONFIG, "bad.yaml:1:", "tag", NULL);
    parse_fails("- 1\n- 2\n", PNN_ERR_CONFIG, "top level must be a map", "not a list", NULL);
    parse_fails("just a string\n", PNN_ERR_CONFIG, "top level must be a map", NULL);
    parse_fails("", PNN_ERR_CONFIG, "bad.yaml: the config is empty", NULL);
    parse_fails("# only a comment\n", PNN_ERR_CONFIG, "empty", NULL);
    parse_fails("a: 1\n---\nb: 2\n", PNN_ERR_CONFIG, "bad.yaml:2:", "second YAML document", NULL);
    parse_fails("? [a, b]\n: 1\n", PNN_ERR_CONFIG, "bad.yaml:1:", "key must be a string", NULL);
    parse_fails("a: \"x\\0y\"\n", PNN_ERR_CONFIG, "bad.yaml:1:", "NUL", NULL);
    parse_fails("a: 1\nb: \xff\xfe\n", PNN_ERR_CONFIG, "bad.yaml:2:", "UTF-8", NULL);
    parse_fails("a:\n\tb: 1\n", PNN_ERR_CONFIG, "bad.yaml:2:1:", "not tabs", NULL);

    /* Deep nesting is refused, not recursed into without bound. */
    char deep[400] = "a: ";
    for (int i = 0; i < 100; i++) strcat(deep, "[");
    for (int i = 0; i < 100; i++) strcat(deep, "]");
    parse_fails(deep, PNN_ERR_CONFIG, "nested more than", NULL);
}
END_TEST

START_TEST(unknown_keys_suggest_the_close_one) {
    pnn_cfg *cfg = pnn_test_parse("epochs: 3\nlr: 0.1\n");
    static const char *const allowed[] = {"epochs", "lr", "seed", NULL};
    ck_assert_int_eq(pnn_cfg_check_keys(cfg, allowed, "the top level"), PNN_OK);
    pnn_cfg_free(cfg);

    cfg = pnn_test_parse("lr: 0.1\nepohcs: 3\n");
    ck_assert_int_eq(pnn_cfg_check_keys(cfg, allowed, "the top level"), PNN_ERR_CONFIG);
    error_has("test.yaml:2: unknown key 'epohcs' in the top level; allowed keys: epochs, lr, seed");
    error_has("did you mean 'epochs'?");
    pnn_cfg_free(cfg);

    cfg = pnn_test_parse("network:\n  - kind: linear\n    colour: red\n");
    ck_assert_int_eq(pnn_cfg_check_keys(pnn_cfg_at(pnn_cfg_get(cfg, "network"), 0), allowed, "layer 0 (linear)"),
                     PNN_ERR_CONFIG);
    error_has("test.yaml:2: unknown key 'kind' in layer 0 (linear)");
    ck_assert_ptr_null(strstr(pnn_last_error(), "did you mean"));
    ck_assert_int_eq(pnn_cfg_check_keys(pnn_cfg_get(cfg, "network"), allowed, "'network'"), PNN_ERR_CONFIG);
    error_has("'network' must be a map");
    pnn_cfg_free(cfg);
}
END_TEST

START_TEST(missing_and_oversized_files) {
    pnn_cfg *cfg = (pnn_cfg *)1;
    ck_assert_int_eq(pnn_cfg_load("/nonexistent/dir/run.yaml", &cfg), PNN_ERR_NOT_FOUND);
    error_has("/nonexistent/dir/run.yaml");
    ck_assert_ptr_null(cfg);

    char dir[] = "/tmp/pnn_cfg_XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char path[64];
    snprintf(path, sizeof path, "%s/run.yaml", dir);
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs("epochs: 4\nnetwork:\n  - {kind: relu}\n", f);
    fclose(f);
    ck_assert_int_eq(pnn_cfg_load(path, &cfg), PNN_OK);
    ck_assert_str_eq(pnn_cfg_source(pnn_cfg_at(pnn_cfg_get(cfg, "network"), 0)), path);
    ck_assert_int_eq(pnn_cfg_line(pnn_cfg_at(pnn_cfg_get(cfg, "network"), 0)), 3);
    pnn_cfg_free(cfg);

    /* A syntax error in a file names the file's path. */
    f = fopen(path, "w");
    fputs("epochs: 4\nnetwork: [\n", f);
    fclose(f);
    ck_assert_int_eq(pnn_cfg_load(path, &cfg), PNN_ERR_CONFIG);
    error_has(path);

    /* Over 16 MiB: refused before parsing. */
    f = fopen(path, "w");
    fputs("a: 1\n", f);
    for (int i = 0; i < 17 * 1024; i++) fprintf(f, "#%01022d\n", 0);
    fclose(f);
    ck_assert_int_eq(pnn_cfg_load(path, &cfg), PNN_ERR_CONFIG);
    error_has("larger than 16 MiB");
    unlink(path);
    rmdir(dir);
}
END_TEST

START_TEST(set_edits_scalars_paths_and_lists) {
    pnn_cfg *cfg = pnn_test_parse(nested_yaml);
    int64_t i;
    ck_assert_int_eq(pnn_cfg_set(cfg, "seed=11"), PNN_OK);
    ck_assert_int_eq(pnn_cfg_int(cfg, "seed", 1, 0, 0, 100, &i), PNN_OK);
    ck_assert_int_eq(i, 11);
    const pnn_cfg *seed = pnn_cfg_get(cfg, "seed");
    ck_assert_str_eq(pnn_cfg_source(seed), "--set");
    ck_assert_int_eq(pnn_cfg_line(seed), 0);
    /* Typed errors on --set values name "--set". */
    ck_assert_int_eq(pnn_cfg_set(cfg, "seed=many"), PNN_OK);
    ck_assert_int_eq(pnn_cfg_int(cfg, "seed", 1, 0, 0, 100, &i), PNN_ERR_CONFIG);
    error_has("--set:0: key 'seed'");

    ck_assert_int_eq(pnn_cfg_set(cfg, "optim.lr=0.25"), PNN_OK);
    ck_assert_str_eq(pnn_cfg_scalar(pnn_cfg_get(pnn_cfg_get(cfg, "optim"), "lr")), "0.25");
    /* List indices, and a value containing '=' (only the first splits). */
    ck_assert_int_eq(pnn_cfg_set(cfg, "network.1.out=1610"), PNN_OK);
    ck_assert_str_eq(pnn_cfg_scalar(pnn_cfg_get(pnn_cfg_at(pnn_cfg_get(cfg, "network"), 1), "out")), "1610");
    ck_assert_int_eq(pnn_cfg_set(cfg, "network.0.device=sim:oscillator?n=64"), PNN_OK);
    ck_assert_str_eq(pnn_cfg_scalar(pnn_cfg_get(pnn_cfg_at(pnn_cfg_get(cfg, "network"), 0), "device")),
                     "sim:oscillator?n=64");
    ck_assert_int_eq(pnn_cfg_set(cfg, "network.0.params.n=8"), PNN_OK);
    ck_assert_str_eq(pnn_cfg_scalar(pnn_cfg_get(pnn_cfg_get(pnn_cfg_at(pnn_cfg_get(cfg, "network"), 0), "params"), "n")),
                     "8");
    ck_assert_int_eq(pnn_cfg_set(cfg, "tags.2=z"), PNN_OK);
    ck_assert_str_eq(pnn_cfg_scalar(pnn_cfg_at(pnn_cfg_get(cfg, "tags"), 2)), "z");
    /* New keys, including a whole new section. */
    ck_assert_int_eq(pnn_cfg_set(cfg, "epochs=5"), PNN_OK);
    ck_assert_str_eq(pnn_cfg_key_at(cfg, pnn_cfg_len(cfg) - 1), "epochs");
    ck_assert_int_eq(pnn_cfg_set(cfg, "data.set=mnist"), PNN_OK);
    ck_assert_str_eq(pnn_cfg_scalar(pnn_cfg_get(pnn_cfg_get(cfg, "data"), "set")), "mnist");
    /* Flow values become lists and maps; a list replaces a scalar and the other way round. */
    ck_assert_int_eq(pnn_cfg_set(cfg, "network.1.dims=[4, 5, 6]"), PNN_OK);
    const pnn_cfg *dims = pnn_cfg_get(pnn_cfg_at(pnn_cfg_get(cfg, "network"), 1), "dims");
    ck_assert_int_eq(pnn_cfg_type_of(dims), PNN_CFG_LIST);
    ck_assert_int_eq(pnn_cfg_len(dims), 3);
    ck_assert_str_eq(pnn_cfg_scalar(pnn_cfg_at(dims, 2)), "6");
    ck_assert_int_eq(pnn_cfg_line(pnn_cfg_at(dims, 2)), 0);
    ck_assert_int_eq(pnn_cfg_set(cfg, "optim={kind: sgd, lr: 0.1}"), PNN_OK);
    const pnn_cfg *optim = pnn_cfg_get(cfg, "optim");
    ck_assert_int_eq(pnn_cfg_len(optim), 2);
    ck_assert_str_eq(pnn_cfg_scalar(pnn_cfg_get(optim, "kind")), "sgd");
    ck_assert_int_eq(pnn_cfg_set(cfg, "network=none"), PNN_OK);
    ck_assert_str_eq(pnn_cfg_scalar(pnn_cfg_get(cfg, "network")), "none");
    ck_assert_int_eq(pnn_cfg_set(cfg, "tags="), PNN_OK);
    ck_assert_str_eq(pnn_cfg_scalar(pnn_cfg_get(cfg, "tags")), "");
    ck_assert_int_eq(pnn_cfg_set(cfg, "name='a: b'"), PNN_OK);
    ck_assert_str_eq(pnn_cfg_scalar(pnn_cfg_get(cfg, "name")), "a: b");
    pnn_cfg_free(cfg);
}
END_TEST

START_TEST(bad_assignments_name_themselves_and_change_nothing) {
    pnn_cfg *cfg = pnn_test_parse(nested_yaml);
    char *before = pnn_cfg_to_yaml(cfg);
    ck_assert_ptr_nonnull(before);
    static const struct {
        const char *assignment, *fragment;
    } bad[] = {
        {"seed", "--set 'seed': expected path=value"},
        {"=5", "--set '=5': the path before '=' has an empty part"},
        {"optim..lr=1", "empty part"},
        {"optim.lr.=1", "empty part"},
        {".seed=1", "empty part"},
        {"seed.x=1", "--set 'seed.x=1': the value before 'x' (test.yaml:2) is a single value"},
        {"network.2.out=1", "'2' is not an index of the list at test.yaml:8, which has 2 items (use 0 to 1)"},
        {"network.-1.out=1", "'-1' is not an index"},
        {"network.kind=x", "'kind' is not an index"},
        {"network.1.dims.x=1", "--set 'network.1.dims.x=1': 'x' is not an index"},
        {"tags=[1, 2", "--set 'tags=[1, 2': the value is not valid YAML"},
        {"tags=- 1", "flow list"},
        {"tags=a: b", "quote it"},
        {"tags=*x", "alias"},
        {"tags=!!int 3", "tag"},
        {"tags=[1, 2]\n---\n[3]", "second YAML document"},
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        ck_assert_msg(pnn_cfg_set(cfg, bad[k].assignment) == PNN_ERR_CONFIG, "'%s' was accepted", bad[k].assignment);
        ck_assert_msg(strstr(pnn_last_error(), bad[k].fragment), "'%s': error '%s' lacks '%s'", bad[k].assignment,
                      pnn_last_error(), bad[k].fragment);
    }
    char *after = pnn_cfg_to_yaml(cfg);
    ck_assert_str_eq(after, before);
    free(before);
    free(after);
    pnn_cfg_free(cfg);
}
END_TEST

/* Serialises cfg, parses the result, and checks that serialising again gives the same text. */
static void check_round_trip(pnn_cfg *cfg) {
    char *y1 = pnn_cfg_to_yaml(cfg);
    ck_assert_ptr_nonnull(y1);
    pnn_cfg *back = NULL;
    ck_assert_msg(pnn_cfg_parse(y1, strlen(y1), "round.yaml", &back) == PNN_OK, "%s\n---\n%s", pnn_last_error(), y1);
    char *y2 = pnn_cfg_to_yaml(back);
    ck_assert_ptr_nonnull(y2);
    ck_assert_str_eq(y2, y1);
    free(y1);
    free(y2);
    pnn_cfg_free(back);
}

START_TEST(to_yaml_round_trips) {
    pnn_cfg *cfg = pnn_test_parse(nested_yaml);
    char *y = pnn_cfg_to_yaml(cfg);
    /* Block style with lists of maps written inline after the dash; flow input becomes block. */
    ck_assert_ptr_nonnull(strstr(y, "network:\n  - kind: physical\n    device: \"sim:oscillator?n=100\"\n"));
    ck_assert_ptr_nonnull(strstr(y, "    params:\n      n: 100\n      gain: 0.5\n"));
    ck_assert_ptr_nonnull(strstr(y, "tags:\n  - a\n"));
    ck_assert_ptr_nonnull(strstr(y, "empty: \"\"\n"));
    free(y);
    check_round_trip(cfg);
    pnn_cfg_free(cfg);

    /* Strings that need quoting, nested lists, empty collections and odd keys. */
    cfg = pnn_test_parse("colon: 'a: b'\n"
                "hash: 'x #y'\n"
                "lead: '  spaces'\n"
                "trail: 'spaces  '\n"
                "dash: '- item'\n"
                "star: '*ref'\n"
                "bool_string: 'true'\n"
                "plain_bool: true\n"
                "negative: -3\n"
                "multi: \"line1\\nline2\\t\\\"q\\\" \\\\ \\x01\\u0085\"\n"
                "block: |\n  first\n  second\n"
                "unicode: 'héllo ✓'\n"
                "'key: with colon': 1\n"
                "'yes': 2\n"
                "'': 3\n"
                "nested: [[1, 2], [], {}, [{a: 1, b: [x]}]]\n"
                "emptymap: {}\n"
                "doc: '---'\n");
    y = pnn_cfg_to_yaml(cfg);
    ck_assert_ptr_nonnull(strstr(y, "plain_bool: true\n"));
    ck_assert_ptr_nonnull(strstr(y, "bool_string: \"true\"\n"));
    ck_assert_ptr_nonnull(strstr(y, "negative: -3\n"));
    free(y);
    check_round_trip(cfg);
    pnn_cfg *back = NULL;
    y = pnn_cfg_to_yaml(cfg);
    ck_assert_int_eq(pnn_cfg_parse(y, strlen(y), "r.yaml", &back), PNN_OK);
    static const char *const keys[] = {"colon", "hash", "lead", "trail", "dash", "star", "multi", "block", "unicode",
                                       "key: with colon", "yes", "", "doc"};
    for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++) {
        const char *want = pnn_cfg_scalar(pnn_cfg_get(cfg, keys[k])), *got = pnn_cfg_scalar(pnn_cfg_get(back, keys[k]));
        ck_assert_ptr_nonnull(want);
        ck_assert_msg(got && !strcmp(got, want), "key '%s': got '%s', want '%s'", keys[k], got ? got : "(missing)",
                      want);
    }
    ck_assert_str_eq(pnn_cfg_scalar(pnn_cfg_get(back, "multi")), "line1\nline2\t\"q\" \\ \x01\xc2\x85");
    ck_assert_str_eq(pnn_cfg_scalar(pnn_cfg_get(back, "block")), "first\nsecond\n");
    const pnn_cfg *nested = pnn_cfg_get(back, "nested");
    ck_assert_int_eq(pnn_cfg_len(nested), 4);
    ck_assert_int_eq(pnn_cfg_len(pnn_cfg_at(nested, 0)), 2);
    ck_assert_int_eq(pnn_cfg_type_of(pnn_cfg_at(nested, 2)), PNN_CFG_MAP);
    ck_assert_int_eq(pnn_cfg_len(pnn_cfg_at(nested, 2)), 0);
    ck_assert_str_eq(pnn_cfg_scalar(pnn_cfg_at(pnn_cfg_get(pnn_cfg_at(pnn_cfg_at(nested, 3), 0), "b"), 0)), "x");
    free(y);
    pnn_cfg_free(back);

    /* A tree edited by --set round-trips too. */
    ck_assert_int_eq(pnn_cfg_set(cfg, "extra.deep.list=[1, {k: 'v #'}]"), PNN_OK);
    check_round_trip(cfg);
    pnn_cfg_free(cfg);

    cfg = pnn_test_parse("{}");
    y = pnn_cfg_to_yaml(cfg);
    ck_assert_str_eq(y, "{}\n");
    free(y);
    pnn_cfg_free(cfg);
}
END_TEST

/* Values and keys that once did not read back, or could not be written (found by fuzz_config):
 * YAML's line and paragraph separators in a value, keys that are not text or too long. */
START_TEST(separators_and_odd_keys) {
    pnn_cfg *cfg = pnn_test_parse("name: a\n");
    ck_assert_int_eq(pnn_cfg_set(cfg, "name=vowels\xe2\x80\xa8  ls\xe2\x80\xa9x\xef\xbb\xbfy"), PNN_OK);
    check_round_trip(cfg);
    ck_assert_int_eq(pnn_cfg_set(cfg, "ke\x01y=1"), PNN_ERR_CONFIG);
    ck_assert_int_eq(pnn_cfg_set(cfg, "k\xc3=1"), PNN_ERR_CONFIG);     /* cut UTF-8 */
    ck_assert_int_eq(pnn_cfg_set(cfg, "k\xe2\x80\xa8=1"), PNN_ERR_CONFIG); /* a separator in a key */
    char *long_key = malloc(1100);
    memset(long_key, 'k', 1001);
    strcpy(long_key + 1001, "=1");
    ck_assert_int_eq(pnn_cfg_set(cfg, long_key), PNN_ERR_CONFIG);
    ck_assert_ptr_nonnull(strstr(pnn_last_error(), "over 1000 bytes"));
    free(long_key);
    check_round_trip(cfg);
    pnn_cfg_free(cfg);
    pnn_cfg *bad = NULL;
    const char *quoted_ctl = "\"a\\x01b\": 1\n";
    ck_assert_int_eq(pnn_cfg_parse(quoted_ctl, strlen(quoted_ctl), "k.yaml", &bad), PNN_ERR_CONFIG);
    ck_assert_ptr_null(bad);
}
END_TEST

Suite *config_suite(void) {
    Suite *s = suite_create("config");
    TCase *tc = tcase_create("yaml");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, parses_nested_maps_and_lists);
    tcase_add_test(tc, typed_reads_defaults_required_and_ranges);
    tcase_add_test(tc, scalar_syntaxes);
    tcase_add_test(tc, malformed_files_are_refused_with_their_line);
    tcase_add_test(tc, unknown_keys_suggest_the_close_one);
    tcase_add_test(tc, missing_and_oversized_files);
    tcase_add_test(tc, set_edits_scalars_paths_and_lists);
    tcase_add_test(tc, bad_assignments_name_themselves_and_change_nothing);
    tcase_add_test(tc, to_yaml_round_trips);
    tcase_add_test(tc, separators_and_odd_keys);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    return pnn_test_run(config_suite());
}
