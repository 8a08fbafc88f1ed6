/* Data-parallel training (docs/cluster.md): the ranks of a comm split every batch, agree on
 * failures and stop requests once per step, sum their gradients (fast: MPI_Allreduce; exact:
 * one gradient per shard of bridge.micro_batch rows, added in shard order, so that any number
 * of ranks gives the bits of one), split the test set, and gather the device call counters for
 * checkpoints. One process in fast mode never comes here: host/train.c steps as before, unless
 * the comm is nccl. With comm nccl (backend cuda required) fast mode packs the gradients into one
 * buffer of GPU memory with the backend's copy op and all-reduces it there, never through the
 * host; exact mode, and every other exchange, go through the host buffers and MPI as with comm
 * mpi. */
#include "train_dp.h"

#include "pnn/method.h"

#include <stdio.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define MAX_COUNTERS PNN_NETWORK_MAX_COUNTERS

typedef struct pnn_train_dp {
    int64_t n;        /* floats of all parameters */
    float *buf;       /* n: packed gradients (or values, to compare them) */
    float *shards;    /* cap * n: this rank's shard gradients (exact mode) */
    int64_t cap;
    double *sums;     /* metric sums, sums_cap doubles */
    int64_t sums_cap;
    pnn_tensor dev; /* n floats of GPU memory: packed gradients for comm nccl, fast mode */
} pnn_train_dp;

/* ---- positions of the noise draws ---- */

uint64_t pnn_dp_train_position(int64_t global_step, int64_t shards_per_step, int64_t shard) {
    return ((uint64_t)global_step * (uint64_t)shards_per_step + (uint64_t)shard) << PNN_DP_CALL_BITS;
}

uint64_t pnn_dp_eval_position(int64_t chunk) { return PNN_DP_EVAL_BASE | ((uint64_t)chunk << PNN_DP_CALL_BITS); }

uint64_t pnn_dp_rank_offset(int rank) { return (uint64_t)rank << 40; }

/* Simulators draw their noise from the call index; a replay reads its recording by it, and a
 * recording or a remote device keeps the order it was given. */
static int follows_position(const pnn_device *d) { return !strncmp(d->info.uri, "sim:", 4); }

void pnn_dp_set_counters(pnn_network *net, uint64_t value) {
    uint64_t *counters[MAX_COUNTERS];
    pnn_device *devs[MAX_COUNTERS / 2];
    /* pnn_network_counters lists (device, twin) per physical layer, in pnn_network_devices' order */
    int nc = pnn_network_counters(net, counters, MAX_COUNTERS);
    int nd = pnn_network_devices(net, devs, MAX_COUNTERS / 2);
    for (int i = 0; i < nd && 2 * i + 1 < nc; i++) {
        if (follows_position(devs[i])) *counters[2 * i] = value;
        *counters[2 * i + 1] = value;
    }
}

pnn_status pnn_dp_plan_exact(int64_t b, int64_t mb, int size, int rank, pnn_dp_plan *p) {
    if (b < 1 || mb < 1)
        return PNN_ERROR(PNN_ERR_INVALID, "exact mode: a batch of %lld rows in shards of %lld", (long long)b,
                         (long long)mb);
    memset(p, 0, sizeof *p);
    p->shards = (b + mb - 1) / mb;
    PNN_TRY(pnn_comm_split(p->shards, size, rank, &p->first, &p->count));
    p->row0 = p->first * mb;
    int64_t end = (p->first + p->count) * mb;
    p->rows = p->count ? (end < b ? end : b) - p->row0 : 0;
    return PNN_OK;
}

/* ---- parameters as one buffer ---- */

int64_t pnn_dp_param_floats(const pnn_network *net) {
    int64_t n = 0;
    for (int i = 0; i < net->n_params; i++) n += net->params[i]->value.numel;
    return n;
}

pnn_status pnn_dp_pack(const pnn_network *net, int grads, float *buf) {
    for (int i = 0; i < net->n_params; i++) {
        const pnn_tensor *t = grads ? &net->params[i]->grad : &net->params[i]->value;
        PNN_TRY(pnn_tensor_to_host(t, buf, t->numel));
        buf += t->numel;
    }
    return PNN_OK;
}

pnn_status pnn_dp_unpack(pnn_network *net, int grads, const float *buf) {
    for (int i = 0; i < net->n_params; i++) {
        pnn_tensor *t = grads ? &net->params[i]->grad : &net->params[i]->value;
        PNN_TRY(pnn_tensor_from_host(t, buf, t->numel));
        buf += t->numel;
    }
    return PNN_OK;
}

/* ---- setup and agreement ---- */

pnn_status pnn_train_comm_kind(const pnn_cfg *cfg, const char **kind) {
    static const char *const comm_keys[] = {"kind", "reduce", NULL};
    const char *backend = "cpu";
    *kind = "auto";
    const pnn_cfg *cc = pnn_cfg_get(cfg, "comm");
    if (!cc) return PNN_OK;
    if (pnn_cfg_type_of(cc) != PNN_CFG_MAP)
        return PNN_ERROR(PNN_ERR_CONFIG, "%s:%d: 'comm' must be a map, e.g. {kind: auto, reduce: fast}",
                         pnn_cfg_source(cc), pnn_cfg_line(cc));
    PNN_TRY(pnn_cfg_check_keys(cc, comm_keys, "'comm'"));
    PNN_TRY(pnn_cfg_str(cc, "kind", 0, "auto", kind));
    if (strcmp(*kind, "auto") && strcmp(*kind, "none") && strcmp(*kind, "mpi") && strcmp(*kind, "nccl"))
        return PNN_ERROR(PNN_ERR_CONFIG, "%s:%d: unknown comm.kind '%s'; known: auto, none, mpi, nccl",
                         pnn_cfg_source(cc), pnn_cfg_line(pnn_cfg_get(cc, "kind")), *kind);
    if (!strcmp(*kind, "nccl")) {
        PNN_TRY(pnn_cfg_str(cfg, "backend", 0, "cpu", &backend));
        if (!strcmp(backend, "cpu"))
            return PNN_ERROR(PNN_ERR_CONFIG,
                             "%s:%d: comm.kind nccl sums gradients in GPU memory and needs backend: cuda, but the "
                             "backend is cpu; set backend: cuda (--set backend=cuda) or use comm.kind mpi",
                             pnn_cfg_source(cc), pnn_cfg_line(pnn_cfg_get(cc, "kind")));
    }
    return PNN_OK;
}

int pnn_dp_size(const pnn_trainer *tr) { return tr->comm ? tr->comm->size : 1; }

static int comm_is_nccl(const pnn_trainer *tr) { return tr->comm && tr->comm->kind == PNN_COMM_NCCL; }

/* This rank's share of n items (all of them in one process without a comm) */
static pnn_status my_share(const pnn_trainer *tr, int64_t n, int64_t *first, int64_t *count) {
    if (!tr->comm) {
        *first = 0, *count = n;
        return PNN_OK;
    }
    return pnn_comm_shard(tr->comm, n, first, count);
}

/* The gradients go through dp->buf: several ranks, exact mode (the shards' sums), never in one
 * process that sums nothing (nccl: its own buffer in GPU memory) */
static int uses_buf(const pnn_trainer *tr) {
    return !tr->dp->dev.data && (pnn_dp_size(tr) > 1 || tr->opt.reduce == PNN_REDUCE_EXACT);
}

pnn_status pnn_dp_agree(pnn_trainer *tr, pnn_status st, int *flag) {
    if (pnn_dp_size(tr) == 1) return st;
    return pnn_comm_agree(tr->comm, st, flag);
}

static pnn_status grow_sums(pnn_train_dp *dp, int64_t n) {
    if (n <= dp->sums_cap) return PNN_OK;
    double *p = realloc(dp->sums, (size_t)n * sizeof *p);
    if (!p) return PNN_ERROR(PNN_ERR_NOMEM, "out of memory for %lld metric sums", (long long)n);
    dp->sums = p;
    dp->sums_cap = n;
    return PNN_OK;
}

static pnn_status grow_shards(pnn_train_dp *dp, int64_t count) {
    if (count <= dp->cap) return PNN_OK;
    float *p = realloc(dp->shards, (size_t)count * (size_t)(dp->n ? dp->n : 1) * sizeof *p);
    if (!p)
        return PNN_ERROR(PNN_ERR_NOMEM, "out of memory for %lld shard gradients of %lld floats; use larger "
                         "bridge.micro_batch or more ranks", (long long)count, (long long)dp->n);
    dp->shards = p;
    dp->cap = count;
    return PNN_OK;
}

pnn_status pnn_dp_setup(pnn_trainer *tr, pnn_status st) {
    pnn_train_dp *dp = NULL;
    if (st == PNN_OK) {
        dp = tr->dp = calloc(1, sizeof *dp);
        if (!dp) st = PNN_ERROR(PNN_ERR_NOMEM, "out of memory for data-parallel training");
    }
    if (st == PNN_OK) {
        dp->n = pnn_dp_param_floats(tr->net);
        /* one process in fast mode sums nothing: no buffer (nccl: one rank too, so that a one-GPU
         * run takes the path it will take on many) */
        int sums = pnn_dp_size(tr) > 1 || tr->opt.reduce == PNN_REDUCE_EXACT || comm_is_nccl(tr);
        dp->buf = sums ? malloc((size_t)(dp->n ? dp->n : 1) * sizeof(float)) : NULL;
        int64_t shards = 1;
        if (tr->opt.reduce == PNN_REDUCE_EXACT) {
            pnn_dp_plan p = {0};
            st = pnn_dp_plan_exact(tr->opt.batch, tr->opt.bridge.micro_batch, pnn_dp_size(tr), pnn_trainer_rank(tr), &p);
            if (p.count > shards) shards = p.count;
        }
        if (sums && !dp->buf) st = PNN_ERROR(PNN_ERR_NOMEM, "out of memory for %lld gradients", (long long)dp->n);
        if (st == PNN_OK && comm_is_nccl(tr) && strcmp(tr->be->iface->name, "cuda"))
            st = PNN_ERROR(PNN_ERR_UNSUPPORTED,
                           "comm nccl sums gradients in GPU memory, but the backend is %s; use backend: cuda "
                           "(backend auto found no GPU?), or comm mpi",
                           tr->be->iface->name);
        if (st == PNN_OK && comm_is_nccl(tr) && tr->opt.reduce == PNN_REDUCE_FAST)
            st = pnn_tensor_init2(&dp->dev, tr->be, 1, dp->n ? dp->n : 1);
        if (st == PNN_OK && pnn_dp_size(tr) > 1 && pnn_network_copies(tr->net) > 1)
            st = PNN_ERROR(PNN_ERR_UNSUPPORTED,
                           "a physical layer has %d device copies (round-robin in one process), and this run has %d "
                           "ranks: give each rank its own copy instead, with {rank} in the device URI (e.g. "
                           "seed=1{rank}), or run one process",
                           pnn_network_copies(tr->net), pnn_dp_size(tr));
        if (st == PNN_OK && tr->opt.method->updates_params &&
            (pnn_dp_size(tr) > 1 || tr->opt.reduce == PNN_REDUCE_EXACT))
            st = PNN_ERROR(PNN_ERR_UNSUPPORTED,
                           "method %s updates the parameters itself, several times a batch, and runs in one process "
                           "with comm.reduce fast; this run has %d rank(s) in comm.reduce %s",
                           tr->opt.method->name, pnn_dp_size(tr),
                           tr->opt.reduce == PNN_REDUCE_EXACT ? "exact" : "fast");
        if (st == PNN_OK) st = grow_shards(dp, shards);
        if (st == PNN_OK) st = grow_sums(dp, 2 * (tr->opt.batch + 2));
    }
    /* rank r draws its devices' and twins' noise from its own range (exact mode sets the
     * counters per shard anyway) */
    if (st == PNN_OK && pnn_trainer_rank(tr) > 0) pnn_dp_set_counters(tr->net, pnn_dp_rank_offset(pnn_trainer_rank(tr)));
    PNN_TRY(pnn_dp_agree(tr, st, NULL));
    if (pnn_dp_size(tr) == 1) return PNN_OK;
    char *yaml = pnn_cfg_to_yaml(tr->cfg);
    st = pnn_comm_check_same(tr->comm, yaml ? yaml : "", yaml ? strlen(yaml) : 0,
                             "the config (with --set and the resolved data path)");
    free(yaml);
    PNN_TRY(st);
    return pnn_dp_check_params(tr, "after initialisation");
}

void pnn_dp_free(pnn_trainer *tr) {
    pnn_train_dp *dp = tr->dp;
    if (!dp) return;
    free(dp->buf);
    free(dp->shards);
    free(dp->sums);
    pnn_tensor_free(&dp->dev);
    free(dp);
    tr->dp = NULL;
}

pnn_status pnn_dp_check_params(pnn_trainer *tr, const char *when) {
    char what[96];
    snprintf(what, sizeof what, "the hash of the parameters %s", when);
    pnn_status st = pnn_dp_agree(tr, pnn_dp_pack(tr->net, 0, tr->dp->buf), NULL);
    if (st == PNN_OK) st = pnn_comm_check_same(tr->comm, tr->dp->buf, (size_t)tr->dp->n * sizeof(float), what);
    return st;
}

pnn_status pnn_dp_gather_counters(pnn_trainer *tr, const uint64_t *mine, int n, uint64_t *all) {
    if (pnn_dp_size(tr) == 1) {
        memcpy(all, mine, (size_t)n * sizeof *all);
        return PNN_OK;
    }
    return pnn_comm_allgather(tr->comm, mine, (size_t)n * sizeof *mine, all);
}

/* ---- checkpoints ---- */

pnn_status pnn_dp_load_counters(pnn_trainer *tr, const pnn_safetensors *st, const char *path) {
    /* each rank takes its own counters back; comm_size is absent in one-process checkpoints */
    int rank = pnn_trainer_rank(tr), P = pnn_dp_size(tr);
    const char *size_s = pnn_safetensors_meta(st, "comm_size");
    char *end;
    errno = 0;
    long saved_size = size_s ? strtol(size_s, &end, 10) : 1;
    if (size_s && (end == size_s || *end || errno == ERANGE || saved_size < 1 || saved_size > (1L << 20)))
        return PNN_ERROR(PNN_ERR_FORMAT, "checkpoint %s: metadata 'comm_size' is '%.40s'; expected a rank count", path,
                         size_s);
    char key[32];
    snprintf(key, sizeof key, rank ? "counters_rank%d" : "counters", rank);
    uint64_t *counters[MAX_COUNTERS];
    int nc = pnn_network_counters(tr->net, counters, MAX_COUNTERS);
    const char *calls = pnn_safetensors_meta(st, key);
    if (!calls && rank >= saved_size) {
        /* a rank the saved run did not have: it starts its own range of noise draws */
        pnn_dp_set_counters(tr->net, pnn_dp_rank_offset(rank));
        nc = 0;
    }
    for (int i = 0; i < nc; i++) {
        errno = 0;
        unsigned long long c = calls && *calls >= '0' && *calls <= '9' ? strtoull(calls, &end, 10) : 0;
        if (!calls || !(*calls >= '0' && *calls <= '9') || errno == ERANGE || (*end && *end != ','))
            return PNN_ERROR(PNN_ERR_FORMAT, "checkpoint %s: metadata '%s' lacks counter %d or it is not a count (was it "
                                     "written with another number of device copies?)", path,
                             key, i);
        *counters[i] = c;
        calls = *end == ',' ? end + 1 : end;
    }
    if (calls && *calls)
        return PNN_ERROR(PNN_ERR_FORMAT, "checkpoint %s: metadata '%s' holds more counters than the network's %d; it "
                         "was written for another network (or with another number of device copies)", path, key, nc);
    tr->note[0] = '\0';
    if (saved_size != P)
        snprintf(tr->note, sizeof tr->note,
                 tr->opt.reduce == PNN_REDUCE_EXACT
                     ? "the checkpoint was written by %ld ranks and this run has %d: exact mode continues bit for "
                       "bit (device noise follows the shards, not the ranks)"
                     : "the checkpoint was written by %ld ranks and this run has %d: fast mode continues correctly "
                       "but not bit for bit (batches split otherwise; ranks without saved device counters start "
                       "their own noise range); use comm.reduce exact to continue exactly",
                 saved_size, P);
    return PNN_OK;
}

/* ---- the step ---- */

/* comm nccl: every gradient into dp->dev (backend copies, in parameter order, as pnn_dp_pack
 * does on the host), summed there by NCCL, and copied back. */
static pnn_status sum_on_device(pnn_trainer *tr) {
    pnn_train_dp *dp = tr->dp;
    const pnn_backend *be = tr->be;
    int64_t off = 0;
    for (int i = 0; i < tr->net->n_params; i++) {
        const pnn_tensor *g = &tr->net->params[i]->grad;
        be->iface->copy(be->ctx, dp->dev.data + off, g->data, (size_t)g->numel * sizeof(float));
        off += g->numel;
    }
    /* the copies (and the backward pass before them) are done before NCCL reads the buffer */
    PNN_TRY(pnn_backend_status(be));
    PNN_TRY(pnn_comm_allreduce_sum(tr->comm, dp->dev.data, dp->n, PNN_REDUCE_FAST));
    off = 0;
    for (int i = 0; i < tr->net->n_params; i++) {
        pnn_tensor *g = &tr->net->params[i]->grad;
        be->iface->copy(be->ctx, g->data, dp->dev.data + off, (size_t)g->numel * sizeof(float));
        off += g->numel;
    }
    return pnn_backend_status(be);
}

/* Fast: this rank's contiguous rows of the batch, in micro-batches as in one process. */
static pnn_status fast_local(pnn_trainer *tr, const int64_t *idx, int64_t b) {
    int64_t first = 0, count = 0;
    PNN_TRY(my_share(tr, b, &first, &count));
    if (count) PNN_TRY(pnn_train_load_rows(tr, &tr->train, idx + first, 0, count, 1, first));
    return pnn_train_run_rows(tr, 0, count, b);
}

/* Exact: this rank's shards one by one, each from zeroed gradients, with its devices' and
 * twins' counters at the shard's global position; the shard's gradient goes to its row of
 * dp->shards, its loss sum and correct count to sums[s] and sums[S + s]. */
static pnn_status exact_local(pnn_trainer *tr, const int64_t *idx, int64_t b, pnn_dp_plan *p) {
    pnn_train_dp *dp = tr->dp;
    int64_t mb = tr->opt.bridge.micro_batch, per_step = (tr->opt.batch + mb - 1) / mb;
    PNN_TRY(pnn_dp_plan_exact(b, mb, pnn_dp_size(tr), pnn_trainer_rank(tr), p));
    PNN_TRY(grow_shards(dp, p->count));
    PNN_TRY(grow_sums(dp, 2 * p->shards));
    memset(dp->sums, 0, (size_t)(2 * p->shards) * sizeof *dp->sums);
    if (p->rows) PNN_TRY(pnn_train_load_rows(tr, &tr->train, idx + p->row0, 0, p->rows, 1, p->row0));
    for (int64_t k = 0; k < p->count; k++) {
        int64_t s = p->first + k, r0 = s * mb, rows = b - r0 < mb ? b - r0 : mb;
        pnn_dp_set_counters(tr->net, pnn_dp_train_position(tr->global_step, per_step, s));
        tr->step_loss = tr->step_correct = 0;
        PNN_TRY(pnn_train_run_rows(tr, r0 - p->row0, rows, b));
        dp->sums[s] = tr->step_loss;
        dp->sums[p->shards + s] = tr->step_correct;
        PNN_TRY(pnn_dp_pack(tr->net, 1, dp->shards + k * dp->n));
    }
    return PNN_OK;
}

/* A method that updates the parameters itself (pnn_method_i.updates_params): the step is its
 * gradient call alone; if that fails, the parameters, the method's states and the counters are
 * put back as they were, so that a checkpoint written then resumes before the step. */
static pnn_status self_updating_step(pnn_trainer *tr, const int64_t *idx, int64_t b, double *loss, double *acc) {
    const pnn_method_i *m = tr->opt.method;
    uint64_t *counters[MAX_COUNTERS], saved[MAX_COUNTERS];
    int nc = pnn_network_counters(tr->net, counters, MAX_COUNTERS);
    for (int i = 0; i < nc; i++) saved[i] = *counters[i];
    int ns = m->states ? m->states(tr, NULL, NULL, 0) : 0, n = tr->net->n_params + ns;
    pnn_tensor **t = calloc((size_t)n + 1, sizeof *t);
    char (*names)[PNN_TWIN_STATE_NAME_MAX] = calloc((size_t)ns + 1, sizeof *names);
    float **keep = calloc((size_t)n + 1, sizeof *keep);
    pnn_status st = t && names && keep ? PNN_OK : PNN_ERROR(PNN_ERR_NOMEM, "out of memory for a training step");
    if (st == PNN_OK && ns) m->states(tr, t + tr->net->n_params, names, ns);
    for (int i = 0; st == PNN_OK && i < n; i++) {
        if (i < tr->net->n_params) t[i] = &tr->net->params[i]->value;
        keep[i] = malloc((size_t)(t[i]->numel ? t[i]->numel : 1) * sizeof(float));
        st = keep[i] ? pnn_tensor_to_host(t[i], keep[i], t[i]->numel)
                     : PNN_ERROR(PNN_ERR_NOMEM, "out of memory for a training step");
    }
    tr->step_loss = tr->step_correct = 0;
    if (st == PNN_OK) {
        st = fast_local(tr, idx, b);
        if (st == PNN_OK) st = pnn_backend_status(tr->be);
        if (st != PNN_OK) {
            char why[2048];
            snprintf(why, sizeof why, "%s", pnn_last_error());
            pnn_status put_back = PNN_OK;
            for (int i = 0; i < n && put_back == PNN_OK; i++) put_back = pnn_tensor_from_host(t[i], keep[i], t[i]->numel);
            for (int i = 0; i < nc; i++) *counters[i] = saved[i];
            if (put_back != PNN_OK) tr->state_lost = 1;
            st = pnn_error_at(st, __FILE__, __LINE__, "%s", why);
        }
    }
    for (int i = 0; keep && i < n; i++) free(keep[i]);
    free(keep);
    free(names);
    free(t);
    PNN_TRY(st);
    tr->stop_agreed = tr->stop && *tr->stop;
    if (loss) *loss = tr->step_loss / (double)b;
    if (acc) *acc = tr->step_correct / (double)b;
    return PNN_OK;
}

pnn_status pnn_dp_step(pnn_trainer *tr, const int64_t *idx, int64_t b, double *loss, double *acc) {
    if (tr->opt.method->updates_params) return self_updating_step(tr, idx, b, loss, acc);
    pnn_train_dp *dp = tr->dp;
    int exact = tr->opt.reduce == PNN_REDUCE_EXACT;
    uint64_t *counters[MAX_COUNTERS], saved[MAX_COUNTERS];
    int nc = pnn_network_counters(tr->net, counters, MAX_COUNTERS);
    for (int i = 0; i < nc; i++) saved[i] = *counters[i];
    pnn_dp_plan plan = {0};
    tr->step_loss = tr->step_correct = 0;
    pnn_status st = exact ? exact_local(tr, idx, b, &plan) : fast_local(tr, idx, b);
    if (st == PNN_OK) st = pnn_backend_status(tr->be);
    /* before any sum: did every rank finish its part, and does any rank want to stop? */
    int flag = tr->stop && *tr->stop;
    st = pnn_dp_agree(tr, st, &flag);
    tr->stop_agreed = flag;
    double sums[2] = {tr->step_loss, tr->step_correct};
    if (st == PNN_OK && exact) {
        st = pnn_comm_reduce_shards(tr->comm, dp->shards, plan.count, plan.shards, dp->n, dp->buf);
        /* each shard's sums come from one rank (the others add zeros): then added in shard order */
        if (st == PNN_OK) st = pnn_comm_allreduce_double(tr->comm, dp->sums, (int)(2 * plan.shards));
        sums[0] = sums[1] = 0;
        for (int64_t s = 0; st == PNN_OK && s < plan.shards; s++) {
            sums[0] += dp->sums[s];
            sums[1] += dp->sums[plan.shards + s];
        }
    } else if (st == PNN_OK && dp->dev.data) {
        st = sum_on_device(tr);
        if (st == PNN_OK) st = pnn_comm_allreduce_double(tr->comm, sums, 2);
    } else if (st == PNN_OK && pnn_dp_size(tr) > 1) {
        st = pnn_dp_pack(tr->net, 1, dp->buf);
        if (st == PNN_OK) st = pnn_comm_allreduce_sum(tr->comm, dp->buf, dp->n, PNN_REDUCE_FAST);
        if (st == PNN_OK) st = pnn_comm_allreduce_double(tr->comm, sums, 2);
    }
    if (st == PNN_OK && uses_buf(tr)) st = pnn_dp_unpack(tr->net, 1, dp->buf);
    if (st != PNN_OK) {
        /* the step did not happen: a checkpoint written now resumes before it */
        for (int i = 0; i < nc; i++) *counters[i] = saved[i];
        return st;
    }
    st = pnn_optimizer_step(tr->optim);
    if (st == PNN_OK) st = pnn_backend_status(tr->be);
    /* an update that failed on one rank leaves the ranks' parameters apart: all stop */
    st = pnn_dp_agree(tr, st, NULL);
    if (st != PNN_OK) {
        tr->state_lost = 1;
        return st;
    }
    if (loss) *loss = sums[0] / (double)b;
    if (acc) *acc = sums[1] / (double)b;
    return PNN_OK;
}

/* ---- evaluation ---- */

/* The test set in whole chunks of eval_batch rows, contiguous ranges of chunks per rank. Each
 * chunk's sums are kept apart and added in chunk order after the exchange, so the figures do
 * not depend on the number of ranks; in exact mode the devices' counters follow the chunk. */
pnn_status pnn_dp_evaluate(pnn_trainer *tr, pnn_pass pass, pnn_eval_result *res) {
    pnn_train_dp *dp = tr->dp;
    const pnn_dataset *d = &tr->test;
    int64_t chunk = tr->opt.eval_batch, n_chunks = (d->n + chunk - 1) / chunk, first = 0, count = 0;
    memset(res, 0, sizeof *res);
    pnn_status st = my_share(tr, n_chunks, &first, &count);
    if (st == PNN_OK) st = grow_sums(dp, 4 * n_chunks);
    if (st == PNN_OK) memset(dp->sums, 0, (size_t)(4 * n_chunks) * sizeof *dp->sums);
    for (int64_t c = first; st == PNN_OK && c < first + count; c++) {
        int64_t row = c * chunk, b = d->n - row < chunk ? d->n - row : chunk;
        if (tr->opt.reduce == PNN_REDUCE_EXACT) pnn_dp_set_counters(tr->net, pnn_dp_eval_position(c));
        st = tr->opt.method->evaluate ? tr->opt.method->evaluate(tr, pass, row, b, dp->sums + 4 * c)
                                      : pnn_train_eval_chunk(tr, pass, row, b, dp->sums + 4 * c);
    }
    PNN_TRY(pnn_dp_agree(tr, st, NULL));
    if (pnn_dp_size(tr) > 1) PNN_TRY(pnn_comm_allreduce_double(tr->comm, dp->sums, (int)(4 * n_chunks)));
    double total[4] = {0, 0, 0, 0};
    for (int64_t c = 0; c < n_chunks; c++)
        for (int j = 0; j < 4; j++) total[j] += dp->sums[4 * c + j];
    res->n = d->n;
    res->loss = d->n ? total[0] / (double)d->n : 0;
    res->acc = d->n ? total[1] / (double)d->n : 0;
    res->acc_batchmean = total[3] > 0 ? total[2] / total[3] : 0;
    return PNN_OK;
}
