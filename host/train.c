/* The training loop: options, batches, the PAT or in-silico step, evaluation on device and
 * twin. Several ranks and exact mode: host/train_dp.c; the run directory and metrics:
 * host/run_dir.c; checkpoints: host/checkpoint.c. */
#include "pnn/clock.h"
#include "pnn/train.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "pnn/method.h"
#include "pnn/twin.h"
#include "pnn/rng.h"
#include "pnn/safetensors.h"
#include "train_dp.h"
#include "train_files.h"


const char *pnn_train_data_default_path(const char *set) {
    if (!strcmp(set, "fashion-mnist")) return "/usr/share/datasets/fashion-mnist";
    if (!strcmp(set, "vowels")) return PNN_DATA_DIR "/vowels_hillenbrand_women.csv";
    return NULL;
}

static pnn_status read_options(const pnn_cfg *cfg, const char *config_dir, pnn_train_options *o) {
    static const char *const top_keys[] = {"name", "data", "network", "method", "loss", "optimizer", "batch",
                                           "eval_batch", "epochs", "seed", "log_every", "checkpoint_every",
                                           "backend", "bridge", "comm", NULL};
    static const char *const bridge_keys[] = {"micro_batch", "schedule", "retries", "backoff_ms", NULL};
    static const char *const data_keys[] = {"set", "path", "hflip", "limit_train", "limit_test", "test_frac", NULL};
    static const char *const optim_keys[] = {"kind", "lr", "beta1", "beta2", "eps", "momentum", "weight_decay", NULL};
    memset(o, 0, sizeof *o);
    PNN_TRY(pnn_cfg_check_keys(cfg, top_keys, "the config's top level"));

    const pnn_cfg *data = pnn_cfg_get(cfg, "data");
    if (!data || pnn_cfg_type_of(data) != PNN_CFG_MAP)
        return PNN_ERROR(PNN_ERR_CONFIG, "%s: the config needs a 'data' map, e.g. data: {set: vowels}",
                         pnn_cfg_source(cfg));
    PNN_TRY(pnn_cfg_check_keys(data, data_keys, "'data'"));
    const char *set, *path;
    PNN_TRY(pnn_cfg_str(data, "set", 1, NULL, &set));
    const char *default_path = pnn_train_data_default_path(set);
    if (!default_path)
        return PNN_ERROR(PNN_ERR_CONFIG, "%s:%d: unknown data set '%s'; known: fashion-mnist, vowels",
                         pnn_cfg_source(data), pnn_cfg_line(pnn_cfg_get(data, "set")), set);
    snprintf(o->data_set, sizeof o->data_set, "%s", set);
    PNN_TRY(pnn_cfg_str(data, "path", 0, default_path, &path));
    if (path[0] != '/' && config_dir && config_dir[0])
        PNN_TRY(pnn_path_format(o->data_path, sizeof o->data_path, "%s/%s", config_dir, path));
    else
        PNN_TRY(pnn_path_format(o->data_path, sizeof o->data_path, "%s", path));
    PNN_TRY(pnn_cfg_bool(data, "hflip", 0, 0, &o->hflip));
    PNN_TRY(pnn_cfg_int(data, "limit_train", 0, 0, 0, INT64_MAX, &o->limit_train));
    PNN_TRY(pnn_cfg_int(data, "limit_test", 0, 0, 0, INT64_MAX, &o->limit_test));
    PNN_TRY(pnn_cfg_float(data, "test_frac", 0, 0.2, 1e-6, 1 - 1e-6, &o->test_frac));

    const char *method, *loss, *backend;
    /* method: NAME, or {kind: NAME, ...the method's own keys} */
    const pnn_cfg *mnode = pnn_cfg_get(cfg, "method");
    if (pnn_cfg_type_of(mnode) == PNN_CFG_MAP) PNN_TRY(pnn_cfg_str(mnode, "kind", 1, NULL, &method));
    else PNN_TRY(pnn_cfg_str(cfg, "method", 0, "pat", &method));
    if (!(o->method = pnn_method_find(method))) {
        char close[32];
        pnn_suggest(method, pnn_method_names(), close, sizeof close);
        return PNN_ERROR(PNN_ERR_CONFIG, "%s:%d: unknown method '%s'; known: %s%s%s%s", pnn_cfg_source(mnode),
                         pnn_cfg_line(mnode), method, pnn_method_names(), *close ? "; did you mean '" : "", close,
                         *close ? "'?" : "");
    }
    PNN_TRY(pnn_cfg_str(cfg, "loss", 0, "cross_entropy", &loss));
    if (pnn_loss_kind_parse(loss, &o->loss) != PNN_OK)
        return PNN_ERROR(PNN_ERR_CONFIG, "%s:%d: unknown loss '%s'; known: cross_entropy, mse",
                         pnn_cfg_source(cfg), pnn_cfg_line(pnn_cfg_get(cfg, "loss")), loss);
    PNN_TRY(pnn_cfg_str(cfg, "backend", 0, "cpu", &backend));
    if (strlen(backend) >= sizeof o->backend)
        return PNN_ERROR(PNN_ERR_CONFIG, "%s:%d: backend '%.40s...' is not a backend; use cpu, cuda or auto",
                         pnn_cfg_source(cfg), pnn_cfg_line(pnn_cfg_get(cfg, "backend")), backend);
    snprintf(o->backend, sizeof o->backend, "%s", backend);

    const pnn_cfg *oc = pnn_cfg_get(cfg, "optimizer");
    const char *kind = "adam";
    if (oc) {
        if (pnn_cfg_type_of(oc) != PNN_CFG_MAP)
            return PNN_ERROR(PNN_ERR_CONFIG, "%s:%d: 'optimizer' must be a map, e.g. {kind: adam, lr: 0.001}",
                             pnn_cfg_source(oc), pnn_cfg_line(oc));
        PNN_TRY(pnn_cfg_check_keys(oc, optim_keys, "'optimizer'"));
        PNN_TRY(pnn_cfg_str(oc, "kind", 0, "adam", &kind));
    }
    if (pnn_optim_defaults(kind, &o->optim) != PNN_OK)
        return PNN_ERROR(PNN_ERR_CONFIG, "%s:%d: unknown optimizer '%s'; known: adam, sgd", pnn_cfg_source(oc),
                         pnn_cfg_line(oc), kind);
    if (oc) {
        double v;
        PNN_TRY(pnn_cfg_float(oc, "lr", 0, o->optim.lr, 0, 1e3, &v)); o->optim.lr = (float)v;
        PNN_TRY(pnn_cfg_float(oc, "beta1", 0, o->optim.beta1, 0, 1 - 1e-9, &v)); o->optim.beta1 = (float)v;
        PNN_TRY(pnn_cfg_float(oc, "beta2", 0, o->optim.beta2, 0, 1 - 1e-9, &v)); o->optim.beta2 = (float)v;
        PNN_TRY(pnn_cfg_float(oc, "eps", 0, o->optim.eps, 0, 1, &v)); o->optim.eps = (float)v;
        PNN_TRY(pnn_cfg_float(oc, "momentum", 0, o->optim.momentum, 0, 1, &v)); o->optim.momentum = (float)v;
        PNN_TRY(pnn_cfg_float(oc, "weight_decay", 0, o->optim.weight_decay, 0, 1e3, &v));
        o->optim.weight_decay = (float)v;
    }
    int64_t seed;
    PNN_TRY(pnn_cfg_int(cfg, "batch", 0, 32, 1, 1 << 20, &o->batch));
    PNN_TRY(pnn_cfg_int(cfg, "eval_batch", 0, o->batch * 8, 1, 1 << 22, &o->eval_batch));
    PNN_TRY(pnn_cfg_int(cfg, "epochs", 0, 1, 0, 1 << 20, &o->epochs));
    PNN_TRY(pnn_cfg_int(cfg, "seed", 0, 1, 0, INT64_MAX, &seed));
    PNN_TRY(pnn_cfg_int(cfg, "log_every", 0, 50, 1, INT64_MAX, &o->log_every));
    PNN_TRY(pnn_cfg_int(cfg, "checkpoint_every", 0, 0, 0, INT64_MAX, &o->checkpoint_every));
    o->seed = (uint64_t)seed;

    const pnn_cfg *bc = pnn_cfg_get(cfg, "bridge");
    const char *schedule = "pipelined";
    int64_t retries = 3;
    double backoff = 10;
    if (bc) {
        if (pnn_cfg_type_of(bc) != PNN_CFG_MAP)
            return PNN_ERROR(PNN_ERR_CONFIG, "%s:%d: 'bridge' must be a map, e.g. {micro_batch: 8, schedule: pipelined}",
                             pnn_cfg_source(bc), pnn_cfg_line(bc));
        PNN_TRY(pnn_cfg_check_keys(bc, bridge_keys, "'bridge'"));
        PNN_TRY(pnn_cfg_int(bc, "micro_batch", 0, 0, 0, 1 << 20, &o->bridge.micro_batch));
        PNN_TRY(pnn_cfg_str(bc, "schedule", 0, "pipelined", &schedule));
        PNN_TRY(pnn_cfg_int(bc, "retries", 0, 3, 0, 1000, &retries));
        PNN_TRY(pnn_cfg_float(bc, "backoff_ms", 0, 10, 0, 600000, &backoff));
    }
    if (strcmp(schedule, "pipelined") && strcmp(schedule, "sequential"))
        return PNN_ERROR(PNN_ERR_CONFIG, "%s:%d: unknown bridge schedule '%s'; known: pipelined, sequential",
                         pnn_cfg_source(bc), pnn_cfg_line(pnn_cfg_get(bc, "schedule")), schedule);
    o->bridge.pipelined = !strcmp(schedule, "pipelined");
    o->bridge.retry = (pnn_retry_policy){(int)retries, backoff};
    if (o->bridge.micro_batch > 0 && (o->batch + o->bridge.micro_batch - 1) / o->bridge.micro_batch > PNN_LAYER_MAX_SLOTS)
        return PNN_ERROR(PNN_ERR_CONFIG, "%s: batch %lld in micro-batches of %lld makes more than %d of them; use "
                         "larger micro-batches",
                         pnn_cfg_source(cfg), (long long)o->batch, (long long)o->bridge.micro_batch,
                         PNN_LAYER_MAX_SLOTS);
    const char *comm_kind, *reduce = "fast";
    const pnn_cfg *cc = pnn_cfg_get(cfg, "comm");
    PNN_TRY(pnn_train_comm_kind(cfg, &comm_kind));
    snprintf(o->comm_kind, sizeof o->comm_kind, "%s", comm_kind);
    if (cc) PNN_TRY(pnn_cfg_str(cc, "reduce", 0, "fast", &reduce));
    if (pnn_comm_parse_reduce(reduce, &o->reduce) != PNN_OK)
        return PNN_ERROR(PNN_ERR_CONFIG, "%s:%d: unknown comm.reduce '%s'; known: fast, exact", pnn_cfg_source(cc),
                         pnn_cfg_line(pnn_cfg_get(cc, "reduce")), reduce);
    if (o->reduce == PNN_REDUCE_EXACT && o->bridge.micro_batch <= 0)
        return PNN_ERROR(PNN_ERR_CONFIG,
                         "%s:%d: comm.reduce exact cuts every batch into shards of bridge.micro_batch rows, but "
                         "bridge.micro_batch is not set; set it (e.g. --set bridge.micro_batch=4) or use "
                         "comm.reduce fast",
                         pnn_cfg_source(cc), pnn_cfg_line(pnn_cfg_get(cc, "reduce")));
    /* per-batch accuracies are computed over training-size batches inside each eval chunk */
    o->eval_batch = (o->eval_batch + o->batch - 1) / o->batch * o->batch;
    return PNN_OK;
}

int pnn_trainer_rank(const pnn_trainer *tr) { return tr->comm ? tr->comm->rank : 0; }

static pnn_status load_data(pnn_trainer *tr) {
    pnn_train_options *o = &tr->opt;
    if (!strcmp(o->data_set, "fashion-mnist")) {
        PNN_TRY(pnn_fmnist_load(o->data_path, "train", o->limit_train, &tr->train));
        PNN_TRY(pnn_fmnist_load(o->data_path, "test", o->limit_test, &tr->test));
    } else {
        PNN_TRY(pnn_vowels_load(o->data_path, o->seed, o->test_frac, &tr->train, &tr->test));
        if (o->limit_train > 0 && o->limit_train < tr->train.n) tr->train.n = o->limit_train;
        if (o->limit_test > 0 && o->limit_test < tr->test.n) tr->test.n = o->limit_test;
    }
    if (o->hflip && !tr->train.image_w)
        return PNN_ERROR(PNN_ERR_CONFIG, "data.hflip: the data set '%s' has no images to flip", o->data_set);
    return PNN_OK;
}

void pnn_trainer_free(pnn_trainer *tr) {
    if (!tr) return;
    if (tr->metrics) fclose(tr->metrics);
    if (tr->run_lock >= 0) close(tr->run_lock);
    pnn_optimizer_free(tr->optim);
    pnn_network_free(tr->net);
    pnn_dataset_free(&tr->train);
    pnn_dataset_free(&tr->test);
    pnn_tensor_free(&tr->xb);
    pnn_tensor_free(&tr->yb);
    pnn_tensor_free(&tr->dy);
    pnn_tensor_free(&tr->scratch);
    free(tr->xb_host);
    free(tr->yb_host);
    free(tr->perm);
    free(tr->micro_x);
    pnn_dp_free(tr);
    if (tr->method_state && tr->opt.method && tr->opt.method->destroy) tr->opt.method->destroy(tr->method_state);
    pnn_comm_free(tr->own_comm);
    pnn_cfg_free(tr->cfg);
    free(tr);
}

pnn_status pnn_trainer_create(pnn_cfg *cfg, const char *config_dir, pnn_trainer **out) {
    return pnn_trainer_create_comm(cfg, config_dir, NULL, out);
}

/* What one rank builds on its own; pnn_trainer_create_comm then agrees on the result. */
static pnn_status create_local(pnn_trainer *tr, const char *config_dir, pnn_comm *comm) {
    pnn_cfg *cfg = tr->cfg;
    tr->comm = comm;
    PNN_TRY(read_options(cfg, config_dir, &tr->opt));
    if (tr->opt.method->create) {
        const pnn_cfg *spec = pnn_cfg_get(cfg, "method");
        PNN_TRY(tr->opt.method->create(pnn_cfg_type_of(spec) == PNN_CFG_MAP ? spec : NULL, &tr->method_state));
    }
    /* exact mode takes the per-shard path in one process too, through a comm of one */
    if (!comm && tr->opt.reduce == PNN_REDUCE_EXACT) {
        PNN_TRY(pnn_comm_init("none", NULL, NULL, &tr->own_comm));
        tr->comm = tr->own_comm;
    }
    /* the config as run names the resolved data path, so resume and eval find the data */
    char set_path[PNN_PATH_MAX + 16];
    PNN_TRY(pnn_path_format(set_path, sizeof set_path, "data.path=%s", tr->opt.data_path));
    PNN_TRY(pnn_cfg_set(cfg, set_path));
    PNN_TRY(pnn_backend_get(tr->opt.backend, &tr->be));
    PNN_TRY(load_data(tr));
    PNN_TRY(pnn_network_build_rank(pnn_cfg_get(cfg, "network"), tr->be, tr->train.dim, tr->opt.seed,
                                   pnn_trainer_rank(tr), tr->comm ? tr->comm->local_rank : 0, &tr->net));
    /* (a method with its own prediction reads the network's output its own way) */
    if (tr->opt.loss == PNN_LOSS_XENT && !tr->opt.method->evaluate && tr->net->out_dim != tr->train.n_classes)
        return PNN_ERROR(PNN_ERR_CONFIG,
                         "%s: the network gives %lld outputs per sample but '%s' has %d classes; make the "
                         "last layer give %d (e.g. outputs: last:%d on the last physical layer)",
                         pnn_cfg_source(cfg), (long long)tr->net->out_dim, tr->opt.data_set, tr->train.n_classes,
                         tr->train.n_classes, tr->train.n_classes);
    PNN_TRY(pnn_optimizer_create(&tr->opt.optim, tr->net->params, tr->net->n_params, &tr->optim));
    if (pnn_network_counter_count(tr->net) > PNN_NETWORK_MAX_COUNTERS)
        return PNN_ERROR(PNN_ERR_CONFIG, "%s: the network's devices and twins need %d random-stream counters and a "
                         "checkpoint keeps at most %d: use fewer device copies", pnn_cfg_source(cfg),
                         pnn_network_counter_count(tr->net), PNN_NETWORK_MAX_COUNTERS);
    tr->bridge_run.n_devices = pnn_network_all_devices(tr->net, tr->devices, PNN_TRAIN_MAX_DEVICES);
    for (int d = 0; d < tr->bridge_run.n_devices; d++)
        PNN_TRY(pnn_device_set_retry(tr->devices[d], &tr->opt.bridge.retry));
    if (tr->opt.method->prepare) PNN_TRY(tr->opt.method->prepare(tr));
    int needs_twin = !tr->opt.method->needs_twin || tr->opt.method->needs_twin(tr->method_state);
    for (int i = 0; needs_twin && i < tr->net->n_layers; i++) {
        const pnn_layer *l = tr->net->layers[i];
        if (pnn_layer_physical_device(l) && !pnn_layer_physical_twin(l))
            return PNN_ERROR(PNN_ERR_CONFIG, "%s: method %s needs a twin on layer '%s', which has none (twin: none): "
                             "give it one (twin: analytic, or learned from `pnn twin fit`), or train with a method "
                             "that learns from device passes alone (spsa, phyll)", pnn_cfg_source(cfg),
                             tr->opt.method->name, l->name);
    }
    tr->micro_x = calloc(PNN_LAYER_MAX_SLOTS, sizeof *tr->micro_x);
    if (!tr->micro_x) return PNN_ERROR(PNN_ERR_NOMEM, "out of memory for micro-batch views");
    int64_t rows = tr->opt.eval_batch > tr->opt.batch ? tr->opt.eval_batch : tr->opt.batch;
    PNN_TRY(pnn_tensor_init2(&tr->xb, tr->be, rows, tr->train.dim));
    PNN_TRY(pnn_tensor_init2(&tr->yb, tr->be, rows, 1));
    PNN_TRY(pnn_tensor_init2(&tr->dy, tr->be, tr->opt.batch, tr->net->out_dim));
    PNN_TRY(pnn_tensor_init2(&tr->scratch, tr->be, rows, 2));
    tr->xb_host = malloc((size_t)(rows * tr->train.dim) * sizeof(float));
    tr->yb_host = malloc((size_t)rows * sizeof(float));
    tr->perm = malloc((size_t)(tr->train.n > 0 ? tr->train.n : 1) * sizeof(int64_t));
    if (!tr->xb_host || !tr->yb_host || !tr->perm) return PNN_ERROR(PNN_ERR_NOMEM, "out of memory for batch buffers");
    return PNN_OK;
}

pnn_status pnn_trainer_create_comm(pnn_cfg *cfg, const char *config_dir, pnn_comm *comm, pnn_trainer **out) {
    *out = NULL;
    pnn_trainer *tr = calloc(1, sizeof *tr);
    pnn_status st = tr ? PNN_OK : PNN_ERROR(PNN_ERR_NOMEM, "out of memory creating a trainer");
    if (tr) {
        tr->cfg = cfg;
        tr->run_lock = -1;
        tr->eval_step = -1;
        st = create_local(tr, config_dir, comm);
    } else {
        pnn_cfg_free(cfg);
    }
    /* every rank learns whether every rank could start; then the ranks compare what they built */
    if (tr) st = pnn_dp_setup(tr, st);
    else if (comm && comm->size > 1) st = pnn_comm_agree(comm, st, NULL);
    if (st != PNN_OK) {
        pnn_trainer_free(tr);
        return st;
    }
    *out = tr;
    return PNN_OK;
}

/* Gathers samples idx[0..b) of d into xb/yb, mirroring training images where the flip stream
 * says so (each sample's flip is a function of (seed, epoch, position in the epoch): a rank that
 * loads part of a batch gives its first row position pos0). */
pnn_status pnn_train_load_rows(pnn_trainer *tr, const pnn_dataset *d, const int64_t *idx, int64_t first,
                               int64_t b, int augment, int64_t pos0) {
    int64_t dim = d->dim;
    float flip_u[1];
    for (int64_t i = 0; i < b; i++) {
        int64_t s = idx ? idx[i] : first + i;
        const float *src = d->x + s * dim;
        float *dst = tr->xb_host + i * dim;
        int flip = 0;
        if (augment && tr->opt.hflip) {
            pnn_rng_uniform(tr->opt.seed, pnn_rng_stream("train.hflip", (uint64_t)tr->epoch),
                            (uint64_t)(tr->step_in_epoch * tr->opt.batch + pos0 + i), 1, flip_u);
            flip = flip_u[0] < 0.5f;
        }
        if (flip) pnn_image_hflip(src, d->image_h, d->image_w, dst);
        else memcpy(dst, src, (size_t)dim * sizeof(float));
        tr->yb_host[i] = d->y[s];
    }
    PNN_TRY(pnn_tensor_reshape2(&tr->xb, b, dim));
    PNN_TRY(pnn_tensor_reshape2(&tr->yb, b, 1));
    PNN_TRY(pnn_tensor_from_host(&tr->xb, tr->xb_host, b * dim));
    PNN_TRY(pnn_tensor_from_host(&tr->yb, tr->yb_host, b));
    return PNN_OK;
}

pnn_status pnn_train_run_rows(pnn_trainer *tr, int64_t row0, int64_t rows, int64_t b_global) {
    pnn_network_zero_grad(tr->net);
    if (rows == 0) return PNN_OK; /* a rank without samples in this step adds a zero gradient */
    double busy0[PNN_TRAIN_MAX_DEVICES];
    uint64_t calls0[PNN_TRAIN_MAX_DEVICES];
    for (int d = 0; d < tr->bridge_run.n_devices; d++) {
        busy0[d] = tr->devices[d]->busy_s;
        calls0[d] = tr->devices[d]->calls;
    }
    tr->step_rows = b_global;
    uint64_t twin0 = 0, twin1 = 0;
    for (int i = 0; i < tr->net->n_layers; i++) {
        const pnn_twin *t = pnn_layer_physical_twin(tr->net->layers[i]);
        if (t) twin0 += t->calls;
    }
    pnn_schedule_stats stats = {0, 0};
    pnn_status st = tr->opt.method->gradient(tr, row0, rows, b_global, &stats);
    for (int i = 0; i < tr->net->n_layers; i++) {
        const pnn_twin *t = pnn_layer_physical_twin(tr->net->layers[i]);
        if (t) twin1 += t->calls;
    }
    tr->bridge_run.twin_calls += twin1 - twin0;
    tr->bridge_run.wall_s += stats.wall_s;
    tr->bridge_run.wait_s += stats.wait_s;
    for (int d = 0; d < tr->bridge_run.n_devices; d++) {
        tr->bridge_run.device_busy_s[d] += tr->devices[d]->busy_s - busy0[d];
        tr->bridge_run.device_calls[d] += tr->devices[d]->calls - calls0[d];
    }
    return st;
}

/* One process or several, one method or another: the step is pnn_dp_step (host/train_dp.c), in
 * which one process without a comm sums nothing. */
pnn_status pnn_trainer_step(pnn_trainer *tr, const int64_t *idx, int64_t b, double *loss, double *acc) {
    return pnn_dp_step(tr, idx, b, loss, acc);
}

pnn_status pnn_train_eval_chunk(pnn_trainer *tr, pnn_pass pass, int64_t first, int64_t b, double sums[4]) {
    int64_t bs = tr->opt.batch;
    const pnn_tensor *y;
    PNN_TRY(pnn_train_load_rows(tr, &tr->test, NULL, first, b, 0, 0));
    PNN_TRY(pnn_network_forward(tr->net, &tr->xb, pass, &y));
    for (int64_t r = 0; r < b; r += bs) {
        int64_t rb = b - r < bs ? b - r : bs;
        pnn_tensor yv, tv;
        int64_t yshape[2] = {rb, tr->net->out_dim}, tshape[2] = {rb, 1};
        double ls, c;
        PNN_TRY(pnn_tensor_view(&yv, tr->be, y->data + r * tr->net->out_dim, 2, yshape));
        PNN_TRY(pnn_tensor_view(&tv, tr->be, tr->yb.data + r, 2, tshape));
        pnn_status st = pnn_loss_compute(tr->opt.loss, &yv, &tv, NULL, &tr->scratch, &ls, &c);
        if (st != PNN_OK) return pnn_error_prefix(st, "evaluating on the test set: ");
        sums[0] += ls;
        sums[1] += c;
        sums[2] += c / (double)rb;
        sums[3] += 1;
    }
    return pnn_backend_status(tr->be);
}

/* Whether every physical layer has a twin (twin: none takes it away). */
static int has_twins(const pnn_network *net) {
    for (int i = 0; i < net->n_layers; i++)
        if (pnn_layer_physical_device(net->layers[i]) && !pnn_layer_physical_twin(net->layers[i])) return 0;
    return 1;
}

pnn_status pnn_trainer_evaluate(pnn_trainer *tr, pnn_pass pass, pnn_eval_result *res) {
    if (pass == PNN_PASS_EVAL_TWIN && !has_twins(tr->net)) {
        *res = (pnn_eval_result){0, 0, 0, 0}; /* n = 0: not evaluated */
        return PNN_OK;
    }
    return pnn_dp_evaluate(tr, pass, res);
}

static void report(pnn_trainer *tr, const char *phase, int64_t steps, double loss, double acc, double t0) {
    if (!tr->progress) return;
    pnn_progress p = {.epoch = tr->epoch, .epochs = tr->opt.epochs, .step_in_epoch = tr->step_in_epoch,
                      .steps_per_epoch = steps, .global_step = tr->global_step, .loss = loss, .acc = acc,
                      .elapsed_s = pnn_now_s() - t0, .phase = phase};
    tr->progress(tr->progress_user, &p);
}

static pnn_status checkpoint(pnn_trainer *tr) {
    if (!tr->run_dir[0]) return PNN_OK;
    char path[PNN_PATH_MAX + 1];
    PNN_TRY(pnn_train_checkpoint_path(tr->run_dir, path, sizeof path));
    return pnn_trainer_save_checkpoint(tr, path);
}

/* Adds a step to the running sums of the epoch and of the metrics window. */
static void sums_add(pnn_train_sums *s, double loss, double acc, double step_s) {
    s->loss += loss, s->acc += acc, s->step_s += step_s, s->steps++;
}

pnn_status pnn_trainer_run(pnn_trainer *tr) {
    const pnn_train_options *o = &tr->opt;
    int64_t n = tr->train.n, steps = (n + o->batch - 1) / o->batch;
    double t_start = pnn_now_s();
    pnn_train_sums *ep = &tr->epoch_sums, *win = &tr->window_sums;
    while (tr->epoch < o->epochs) {
        pnn_rng_permutation(o->seed, pnn_rng_stream("train.shuffle", (uint64_t)tr->epoch), n, tr->perm);
        /* a run resumed mid-epoch continues the sums its checkpoint kept */
        if (tr->step_in_epoch == 0) {
            pnn_train_sums_start(tr, ep);
            pnn_train_sums_start(tr, win);
        }
        while (tr->step_in_epoch < steps) {
            int64_t first = tr->step_in_epoch * o->batch, b = n - first < o->batch ? n - first : o->batch;
            double loss, acc, t0 = pnn_now_s();
            PNN_TRY(pnn_trainer_step(tr, tr->perm + first, b, &loss, &acc));
            double dt = pnn_now_s() - t0;
            tr->train_s += dt;
            tr->step_in_epoch++;
            tr->global_step++;
            tr->evaluated = 0;
            sums_add(ep, loss, acc, dt);
            sums_add(win, loss, acc, dt);
            if (tr->global_step % o->log_every == 0 || tr->step_in_epoch == steps) {
                PNN_TRY(pnn_train_metrics_row(tr, "train", win->loss / win->steps, win->acc / win->steps, -1,
                                              1e3 * win->step_s / win->steps, tr->train_s, &win->at_start));
                pnn_train_sums_start(tr, win);
            }
            report(tr, "train", steps, ep->loss / ep->steps, ep->acc / ep->steps, t_start);
            if (o->checkpoint_every && tr->global_step % o->checkpoint_every == 0) PNN_TRY(checkpoint(tr));
            /* with several ranks, the stop requests were exchanged in the step */
            if (pnn_dp_size(tr) > 1 ? tr->stop_agreed : tr->stop && *tr->stop) {
                tr->interrupted = 1;
                return checkpoint(tr);
            }
        }
        double ep_loss = ep->steps ? ep->loss / ep->steps : 0, ep_acc = ep->steps ? ep->acc / ep->steps : 0;
        if (ep->steps)
            PNN_TRY(pnn_train_metrics_row(tr, "train_epoch", ep_loss, ep_acc, -1,
                                          1e3 * (tr->bridge_run.wall_s - ep->at_start.wall_s) / ep->steps,
                                          tr->train_s, &ep->at_start));
        tr->epoch++;
        tr->step_in_epoch = 0;
        report(tr, "eval", steps, ep_loss, ep_acc, t_start);
        PNN_TRY(pnn_trainer_evaluate(tr, PNN_PASS_EVAL_DEVICE, &tr->last_device));
        PNN_TRY(pnn_trainer_evaluate(tr, PNN_PASS_EVAL_TWIN, &tr->last_twin));
        tr->evaluated = 1;
        tr->eval_step = tr->global_step;
        PNN_TRY(pnn_train_metrics_row(tr, "test_device", tr->last_device.loss, tr->last_device.acc,
                                      tr->last_device.acc_batchmean, -1, tr->train_s, NULL));
        if (tr->last_twin.n)
            PNN_TRY(pnn_train_metrics_row(tr, "test_twin", tr->last_twin.loss, tr->last_twin.acc,
                                          tr->last_twin.acc_batchmean, -1, tr->train_s, NULL));
        /* the next epoch's sums start here: a checkpoint taken now keeps empty ones */
        pnn_train_sums_start(tr, ep);
        pnn_train_sums_start(tr, win);
        PNN_TRY(checkpoint(tr));
        report(tr, "epoch_done", steps, ep_loss, ep_acc, t_start);
    }
    return PNN_OK;
}
