/* Checkpoints of a training run: parameters and optimizer state as safetensors, and as metadata
 * the config as run, the position in the data, every rank's device and twin call counters, and
 * the run state (running sums of the metrics, bridge timing, the last test's figures), so that
 * --resume continues exactly and a finished run reprints its own result. A checkpoint read back
 * is data from outside: every number in it is checked before use. */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pnn/method.h"
#include "pnn/safetensors.h"
#include "train_dp.h"
#include "train_files.h"

#define CHECKPOINT_FORMAT "pnn-checkpoint/1"
#define MAX_COUNTERS PNN_NETWORK_MAX_COUNTERS
#define MAX_EPOCH ((long long)1 << 20) /* as many as the config allows */

/* "c0,c1,..." of n counters, into buf. */
static void format_counters(const uint64_t *c, int n, char *buf, size_t cap) {
    buf[0] = '\0';
    for (int i = 0; i < n; i++) {
        size_t l = strlen(buf);
        snprintf(buf + l, cap - l, "%s%llu", i ? "," : "", (unsigned long long)c[i]);
    }
}

/* ---- the run state as JSON ---- */

static json_t *bridge_to_json(const pnn_bridge_stats *b) {
    json_t *busy = json_array(), *calls = json_array();
    for (int d = 0; busy && calls && d < b->n_devices; d++) {
        json_array_append_new(busy, json_real(b->device_busy_s[d]));
        json_array_append_new(calls, json_integer((json_int_t)b->device_calls[d]));
    }
    return json_pack("{s:f, s:f, s:o, s:o}", "wall_s", b->wall_s, "wait_s", b->wait_s, "busy_s", busy, "calls",
                     calls);
}

static json_t *sums_to_json(const pnn_train_sums *s) {
    return json_pack("{s:f, s:f, s:f, s:I, s:o}", "loss", s->loss, "acc", s->acc, "step_s", s->step_s, "steps",
                     (json_int_t)s->steps, "at_start", bridge_to_json(&s->at_start));
}

static json_t *eval_to_json(const pnn_eval_result *r) {
    return json_pack("{s:f, s:f, s:f, s:I}", "loss", r->loss, "acc", r->acc, "acc_batchmean", r->acc_batchmean, "n",
                     (json_int_t)r->n);
}

/* The run state, malloc'd JSON text (NULL when out of memory). */
static char *run_state_text(const pnn_trainer *tr) {
    json_t *j = json_pack("{s:i, s:o, s:o, s:o, s:I, s:o, s:o}", "version", 1, "epoch_sums",
                          sums_to_json(&tr->epoch_sums), "window_sums", sums_to_json(&tr->window_sums), "bridge",
                          bridge_to_json(&tr->bridge_run), "eval_step", (json_int_t)tr->eval_step, "test_device",
                          eval_to_json(&tr->last_device), "test_twin", eval_to_json(&tr->last_twin));
    char *text = j ? json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(17)) : NULL;
    json_decref(j);
    return text;
}

static int finite_nonneg(double v) { return isfinite(v) && v >= 0; }

static int bridge_from_json(json_t *j, int n_devices, pnn_bridge_stats *b) {
    json_t *busy, *calls;
    double wall, wait;
    if (json_unpack(j, "{s:F, s:F, s:o, s:o}", "wall_s", &wall, "wait_s", &wait, "busy_s", &busy, "calls", &calls) ||
        !finite_nonneg(wall) || !finite_nonneg(wait) || !json_is_array(busy) || !json_is_array(calls) ||
        json_array_size(busy) != (size_t)n_devices || json_array_size(calls) != (size_t)n_devices)
        return 0;
    memset(b, 0, sizeof *b);
    b->wall_s = wall, b->wait_s = wait, b->n_devices = n_devices;
    for (int d = 0; d < n_devices; d++) {
        json_t *bs = json_array_get(busy, (size_t)d), *c = json_array_get(calls, (size_t)d);
        if (!json_is_number(bs) || !finite_nonneg(json_number_value(bs)) || !json_is_integer(c) ||
            json_integer_value(c) < 0)
            return 0;
        b->device_busy_s[d] = json_number_value(bs);
        b->device_calls[d] = (uint64_t)json_integer_value(c);
    }
    return 1;
}

static int sums_from_json(json_t *j, int n_devices, pnn_train_sums *s) {
    json_int_t steps;
    json_t *at;
    if (json_unpack(j, "{s:F, s:F, s:F, s:I, s:o}", "loss", &s->loss, "acc", &s->acc, "step_s", &s->step_s, "steps",
                    &steps, "at_start", &at) ||
        !isfinite(s->loss) || !finite_nonneg(s->acc) || !finite_nonneg(s->step_s) || steps < 0 ||
        steps > ((json_int_t)1 << 40) || !bridge_from_json(at, n_devices, &s->at_start))
        return 0;
    s->steps = steps;
    return 1;
}

static int eval_from_json(json_t *j, pnn_eval_result *r) {
    json_int_t n;
    if (json_unpack(j, "{s:F, s:F, s:F, s:I}", "loss", &r->loss, "acc", &r->acc, "acc_batchmean", &r->acc_batchmean,
                    "n", &n) ||
        !isfinite(r->loss) || !(r->acc >= 0 && r->acc <= 1) || !(r->acc_batchmean >= 0 && r->acc_batchmean <= 1) ||
        n < 0)
        return 0;
    r->n = n;
    return 1;
}

/* Restores the run state; a checkpoint from before it was kept (no "run_state") restores
 * nothing: its sums start at zero and it has no stored test. */
static pnn_status load_run_state(pnn_trainer *tr, const pnn_safetensors *st, const char *path) {
    const char *text = pnn_safetensors_meta(st, "run_state");
    if (!text) return PNN_OK;
    json_error_t err;
    json_t *j = json_loads(text, 0, &err), *es, *ws, *br, *dv, *tw;
    json_int_t version, eval_step;
    pnn_train_sums e, w;
    pnn_bridge_stats b;
    pnn_eval_result rd, rt;
    int n = tr->bridge_run.n_devices;
    int ok = j && !json_unpack(j, "{s:I, s:o, s:o, s:o, s:I, s:o, s:o}", "version", &version, "epoch_sums", &es,
                               "window_sums", &ws, "bridge", &br, "eval_step", &eval_step, "test_device", &dv,
                               "test_twin", &tw) &&
             version == 1 && eval_step >= -1 && eval_step <= tr->global_step && eval_from_json(dv, &rd) &&
             eval_from_json(tw, &rt);
    /* timing and sums are kept only when the checkpoint has this network's devices */
    int sums_ok = ok && sums_from_json(es, n, &e) && sums_from_json(ws, n, &w) && bridge_from_json(br, n, &b);
    json_decref(j);
    if (!ok)
        return PNN_ERROR(PNN_ERR_FORMAT, "checkpoint %s: metadata 'run_state' is malformed%s%s; the file is damaged",
                         path, j ? "" : ": ", j ? "" : err.text);
    if (sums_ok) {
        tr->epoch_sums = e;
        tr->window_sums = w;
        tr->bridge_run = b;
    }
    tr->eval_step = eval_step;
    tr->evaluated = eval_step >= 0 && eval_step == tr->global_step;
    if (tr->evaluated) {
        tr->last_device = rd;
        tr->last_twin = rt;
    }
    return PNN_OK;
}

/* ---- writing ---- */

/* The twins' training state (online refinement), then the training method's own (its
 * optimizers), into t and names when given; how many. */
static int twin_states(pnn_trainer *tr, pnn_tensor **t, char (*names)[PNN_TWIN_STATE_NAME_MAX]) {
    const pnn_method_i *m = tr->opt.method;
    int n = pnn_network_twin_states(tr->net, NULL, NULL, 0), nm = m && m->states ? m->states(tr, NULL, NULL, 0) : 0;
    if (t) {
        pnn_network_twin_states(tr->net, t, names, n);
        if (nm) m->states(tr, t + n, names + n, nm);
    }
    return n + nm;
}

/* Rank 0's part of a checkpoint: the file, with every rank's counters (all[r * nc ..]). */
static pnn_status write_checkpoint(pnn_trainer *tr, const char *path, const uint64_t *all, int nc) {
    pnn_status st = PNN_OK;
    int P = pnn_dp_size(tr), n_opt = pnn_optimizer_state_count(tr->optim), n_tw = twin_states(tr, NULL, NULL),
        n = tr->net->n_params + n_opt + n_tw;
    pnn_tensor **tw_t = calloc((size_t)n_tw + 1, sizeof *tw_t);
    char (*tw_names)[PNN_TWIN_STATE_NAME_MAX] = calloc((size_t)n_tw + 1, sizeof *tw_names);
    if (pnn_network_twin_states(tr->net, NULL, NULL, 0) && P > 1) {
        free(tw_t);
        free(tw_names);
        return PNN_ERROR(PNN_ERR_UNSUPPORTED, "a refined learned twin learns from its own process's device calls, and "
                         "a checkpoint of %d processes could keep only one of them: run refinement in one process",
                         P);
    }
    if (tw_t && tw_names) twin_states(tr, tw_t, tw_names);
    pnn_st_entry *entries = calloc((size_t)n, sizeof *entries);
    float **host = calloc((size_t)n, sizeof *host);
    char *yaml = pnn_cfg_to_yaml(tr->cfg), *state = run_state_text(tr);
    size_t clen = (size_t)nc * 21 + 1;
    char *calls = calloc((size_t)P, clen + 24), num[8][32];
    pnn_st_meta *meta = calloc((size_t)P + 12, sizeof *meta);
    if (!entries || !host || !yaml || !state || !calls || !meta || !tw_t || !tw_names) {
        st = PNN_ERROR(PNN_ERR_NOMEM, "out of memory writing checkpoint %s", path);
        goto fail;
    }
    for (int i = 0; i < n; i++) {
        const pnn_tensor *t;
        const char *name;
        if (i < tr->net->n_params) {
            t = &tr->net->params[i]->value;
            name = tr->net->params[i]->name;
        } else if (i < tr->net->n_params + n_opt) {
            t = pnn_optimizer_state(tr->optim, i - tr->net->n_params, &name);
        } else {
            t = tw_t[i - tr->net->n_params - n_opt];
            name = tw_names[i - tr->net->n_params - n_opt];
        }
        host[i] = malloc((size_t)(t->numel ? t->numel : 1) * sizeof(float));
        if (!host[i]) {
            st = PNN_ERROR(PNN_ERR_NOMEM, "out of memory writing checkpoint %s", path);
            goto fail;
        }
        PNN_GOTO(pnn_tensor_to_host(t, host[i], t->numel));
        int64_t bad = 0;
        for (int64_t k = 0; k < t->numel; k++) bad += !isfinite(host[i][k]);
        if (bad) {
            st = PNN_ERROR(PNN_ERR_FORMAT, "the run has diverged: '%s' holds %lld NaN or Inf values, so %s is not "
                           "written (lower the learning rate)", name, (long long)bad, path);
            goto fail;
        }
        entries[i].name = name;
        entries[i].ndim = t->ndim;
        memcpy(entries[i].shape, t->shape, sizeof entries[i].shape);
        entries[i].data = host[i];
    }
    snprintf(num[0], sizeof num[0], "%lld", (long long)tr->epoch);
    snprintf(num[1], sizeof num[1], "%lld", (long long)tr->step_in_epoch);
    snprintf(num[2], sizeof num[2], "%lld", (long long)tr->global_step);
    snprintf(num[3], sizeof num[3], "%lld", (long long)pnn_optimizer_step_count(tr->optim));
    snprintf(num[4], sizeof num[4], "%.17g", tr->train_s);
    snprintf(num[5], sizeof num[5], "%.6f", tr->last_device.acc);
    snprintf(num[6], sizeof num[6], "%.6f", tr->last_twin.acc);
    snprintf(num[7], sizeof num[7], "%d", P);
    /* "counters" is rank 0's (what a one-process run wrote); rank r's is "counters_rank<r>" */
    pnn_st_meta fixed[] = {{"format", CHECKPOINT_FORMAT},
                           {"config", yaml},
                           {"epoch", num[0]},
                           {"step_in_epoch", num[1]},
                           {"global_step", num[2]},
                           {"optimizer_steps", num[3]},
                           {"train_s", num[4]},
                           {"test_acc_device", num[5]},
                           {"test_acc_twin", num[6]},
                           {"comm_size", num[7]},
                           {"run_state", state}};
    int n_meta = (int)(sizeof fixed / sizeof fixed[0]);
    memcpy(meta, fixed, sizeof fixed);
    for (int r = 0; r < P; r++) {
        char *key = calls + (size_t)r * (clen + 24), *val = key + 24;
        snprintf(key, 24, r ? "counters_rank%d" : "counters", r);
        format_counters(all + (size_t)r * (size_t)nc, nc, val, clen);
        meta[n_meta++] = (pnn_st_meta){key, val};
    }
    PNN_GOTO(pnn_safetensors_write(path, entries, n, meta, n_meta));
fail:
    if (host)
        for (int i = 0; i < n; i++) free(host[i]);
    free(host);
    free(entries);
    free(yaml);
    free(state);
    free(calls);
    free(meta);
    free(tw_t);
    free(tw_names);
    return st;
}

pnn_status pnn_trainer_save_checkpoint(pnn_trainer *tr, const char *path) {
    uint64_t *counters[MAX_COUNTERS], mine[MAX_COUNTERS];
    int nc = pnn_network_counters(tr->net, counters, MAX_COUNTERS), P = pnn_dp_size(tr);
    for (int i = 0; i < nc; i++) mine[i] = *counters[i];
    uint64_t *all = malloc((size_t)P * (size_t)(nc ? nc : 1) * sizeof *all);
    pnn_status st = all ? PNN_OK : PNN_ERROR(PNN_ERR_NOMEM, "out of memory writing checkpoint %s", path);
    if (P > 1) {
        /* the parameters must be the same on every rank for one file to hold them */
        st = pnn_dp_agree(tr, st, NULL);
        if (st == PNN_OK) st = pnn_dp_check_params(tr, "at a checkpoint");
        if (st == PNN_OK) st = pnn_dp_gather_counters(tr, mine, nc, all);
        if (st != PNN_OK) {
            free(all);
            return st;
        }
    } else if (all) {
        memcpy(all, mine, (size_t)nc * sizeof *all);
    }
    if (st == PNN_OK && pnn_trainer_rank(tr) == 0) st = write_checkpoint(tr, path, all, nc);
    free(all);
    /* a full disk on rank 0 stops every rank */
    return pnn_dp_agree(tr, st, NULL);
}

/* ---- reading ---- */

/* A count in [0, max] written in decimal digits only (no sign, exponent or overflow). */
static pnn_status meta_count(const pnn_safetensors *st, const char *path, const char *key, long long max,
                             long long *out) {
    const char *v = pnn_safetensors_meta(st, key);
    char *end;
    errno = 0;
    if (v && *v >= '0' && *v <= '9') {
        long long n = strtoll(v, &end, 10);
        if (!*end && errno != ERANGE && n <= max) {
            *out = n;
            return PNN_OK;
        }
    }
    return PNN_ERROR(PNN_ERR_FORMAT, "checkpoint %s: metadata '%s' is %s%s%s; expected a count in [0, %lld]", path,
                     key, v ? "'" : "missing", v ? v : "", v ? "'" : "", max);
}

/* Copies a checkpoint tensor into t, checking that it exists and has t's shape. */
static pnn_status load_tensor(const pnn_safetensors *st, const char *path, const char *name, pnn_tensor *t) {
    const pnn_st_entry *e = pnn_safetensors_find(st, name);
    if (!e)
        return PNN_ERROR(PNN_ERR_FORMAT, "checkpoint %s has no tensor '%s': it was written for another network",
                         path, name);
    /* the shapes are compared, never multiplied out: a crafted one may overflow int64 */
    if (e->ndim != t->ndim || memcmp(e->shape, t->shape, (size_t)t->ndim * sizeof(int64_t)))
        return PNN_ERROR(PNN_ERR_FORMAT, "checkpoint %s: tensor '%s' has another shape than the network's", path,
                         name);
    return pnn_tensor_from_host(t, e->data, t->numel);
}

/* The position (epoch, step) and optimizer step count, checked against this run's data. */
static pnn_status load_position(pnn_trainer *tr, const pnn_safetensors *st, const char *path) {
    long long epoch, step, gstep, osteps;
    int64_t steps = (tr->train.n + tr->opt.batch - 1) / tr->opt.batch;
    PNN_TRY(meta_count(st, path, "epoch", MAX_EPOCH, &epoch));
    PNN_TRY(meta_count(st, path, "step_in_epoch", steps, &step));
    PNN_TRY(meta_count(st, path, "global_step", INT64_MAX / 2, &gstep));
    PNN_TRY(meta_count(st, path, "optimizer_steps", INT64_MAX / 2, &osteps));
    const char *ts = pnn_safetensors_meta(st, "train_s");
    char *end;
    double train_s = ts ? strtod(ts, &end) : 0;
    if (ts && (end == ts || *end || !isfinite(train_s) || train_s < 0))
        return PNN_ERROR(PNN_ERR_FORMAT, "checkpoint %s: metadata 'train_s' is '%s'; expected seconds", path, ts);
    tr->epoch = epoch;
    tr->step_in_epoch = step;
    tr->global_step = gstep;
    tr->train_s = train_s;
    pnn_optimizer_set_step_count(tr->optim, osteps);
    return PNN_OK;
}

pnn_status pnn_trainer_load_checkpoint(pnn_trainer *tr, const char *path, int full) {
    pnn_safetensors *st;
    pnn_status s = PNN_OK;
    PNN_TRY(pnn_safetensors_read(path, &st));
    const char *fmt = pnn_safetensors_meta(st, "format");
    if (!fmt || strcmp(fmt, CHECKPOINT_FORMAT)) {
        s = PNN_ERROR(PNN_ERR_FORMAT, "%s is not a pnn checkpoint (format '%.40s', expected '%s')", path,
                      fmt ? fmt : "none", CHECKPOINT_FORMAT);
        goto done;
    }
    for (int i = 0; i < tr->net->n_params && s == PNN_OK; i++)
        s = load_tensor(st, path, tr->net->params[i]->name, &tr->net->params[i]->value);
    if (s != PNN_OK || !full) goto done;
    for (int i = 0; i < pnn_optimizer_state_count(tr->optim) && s == PNN_OK; i++) {
        const char *name;
        pnn_tensor *t = pnn_optimizer_state(tr->optim, i, &name);
        s = load_tensor(st, path, name, t);
    }
    int n_tw = twin_states(tr, NULL, NULL);
    if (n_tw && s == PNN_OK) {
        pnn_tensor **tw_t = calloc((size_t)n_tw, sizeof *tw_t);
        char (*tw_names)[PNN_TWIN_STATE_NAME_MAX] = calloc((size_t)n_tw, sizeof *tw_names);
        if (!tw_t || !tw_names) s = PNN_ERROR(PNN_ERR_NOMEM, "out of memory reading %s", path);
        else twin_states(tr, tw_t, tw_names);
        for (int i = 0; i < n_tw && s == PNN_OK; i++) s = load_tensor(st, path, tw_names[i], tw_t[i]);
        if (s == PNN_OK) s = pnn_network_twin_states_loaded(tr->net);
        free(tw_t);
        free(tw_names);
    }
    if (s == PNN_OK) s = load_position(tr, st, path);
    if (s == PNN_OK) s = load_run_state(tr, st, path);
    if (s == PNN_OK) s = pnn_dp_load_counters(tr, st, path);
done:
    pnn_safetensors_free(st);
    return s;
}

pnn_status pnn_checkpoint_config(const char *path, pnn_cfg **cfg) {
    pnn_safetensors *st;
    *cfg = NULL;
    PNN_TRY(pnn_safetensors_read(path, &st));
    const char *yaml = pnn_safetensors_meta(st, "config");
    pnn_status s = yaml ? pnn_cfg_parse(yaml, strlen(yaml), path, cfg)
                        : PNN_ERROR(PNN_ERR_FORMAT, "%s has no 'config' metadata: not a pnn checkpoint", path);
    pnn_safetensors_free(st);
    return s;
}

/* ---- what a checkpoint's config may not open by itself ---- */

typedef struct untrusted_walk {
    const char *const *given;
    int n_given, count;
    const char *data_default;
    char *buf;
    size_t cap;
} untrusted_walk;

static int is_given(const untrusted_walk *w, const char *key) {
    for (int i = 0; i < w->n_given; i++)
        if (!strcmp(w->given[i], key)) return 1;
    return 0;
}

static int names_a_file(const char *key) {
    size_t n = strlen(key);
    return !strcmp(key, "path") || (n > 5 && !strcmp(key + n - 5, "_path")) || !strcmp(key, "file") ||
           (n > 5 && !strcmp(key + n - 5, "_file"));
}

static void walk_untrusted(untrusted_walk *w, const pnn_cfg *node, const char *key, const char *where) {
    if (pnn_cfg_type_of(node) == PNN_CFG_SCALAR) {
        const char *v = pnn_cfg_scalar(node);
        int risky = 0;
        if (!strcmp(key, "device")) risky = strncmp(v, "sim:", 4) != 0;
        else if (!strcmp(where, "data.path")) risky = !w->data_default || strcmp(v, w->data_default);
        else risky = names_a_file(key);
        if (risky && !is_given(w, where)) {
            size_t l = strlen(w->buf);
            if (l < w->cap)
                snprintf(w->buf + l, w->cap - l, "%s%s = '%.200s'", w->count ? "; " : "", where, v);
            w->count++;
        }
        return;
    }
    for (int i = 0; i < pnn_cfg_len(node); i++) {
        char sub[512];
        const char *k = pnn_cfg_key_at(node, i);
        char index[24];
        if (!k) snprintf(index, sizeof index, "%d", i);
        snprintf(sub, sizeof sub, "%s%s%s", where, where[0] ? "." : "", k ? k : index);
        walk_untrusted(w, pnn_cfg_at(node, i), k ? k : key, sub);
    }
}

int pnn_checkpoint_untrusted(const pnn_cfg *cfg, const char *const *given, int n_given, char *buf, size_t cap) {
    const char *set = pnn_cfg_scalar(pnn_cfg_get(pnn_cfg_get(cfg, "data"), "set"));
    untrusted_walk w = {given, n_given, 0, set ? pnn_train_data_default_path(set) : NULL, buf, cap};
    if (cap) buf[0] = '\0';
    walk_untrusted(&w, cfg, "", "");
    return w.count;
}

pnn_status pnn_trainer_save_state(pnn_trainer *tr) {
    char path[PNN_PATH_MAX + 1];
    if (!tr->run_dir[0]) return PNN_ERROR(PNN_ERR_INVALID, "the run keeps no files: no state to save");
    PNN_TRY(pnn_train_checkpoint_path(tr->run_dir, path, sizeof path));
    if (tr->state_lost)
        return PNN_ERROR(PNN_ERR_CUDA, "an update failed part way, so the parameters in memory are no state of the run");
    return pnn_trainer_save_checkpoint(tr, path);
}
