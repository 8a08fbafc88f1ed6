/* pnn-device/1 headers: the request parser a server runs on every message (it validates all of
 * a request before anything is allocated for it), reply and request builders, and the reply
 * parser a client runs. JSON through jansson; everything here is pure (bytes in, struct out). */
#include "hwbridge/remote/protocol.h"

#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const error_names[PNN_REMOTE_N_ERRORS] = {
    "ok", "bad_request", "bad_shape", "too_large", "unauthorized", "unknown_op", "device_fault", "busy"};

const char *pnn_remote_error_name(pnn_remote_error e) {
    return (unsigned)e < PNN_REMOTE_N_ERRORS ? error_names[e] : "unknown";
}

static pnn_remote_error refuse(pnn_remote_error code, char *msg, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static pnn_remote_error refuse(pnn_remote_error code, char *msg, size_t size, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    if (size) vsnprintf(msg, size, fmt, ap);
    va_end(ap);
    return code;
}

int pnn_proto_same_secret(const char *a, size_t alen, const char *b, size_t blen) {
    unsigned char diff = alen != blen;
    for (size_t i = 0; i < alen; i++) diff |= (unsigned char)(a[i] ^ (blen ? b[i < blen ? i : 0] : 0));
    return blen > 0 && diff == 0;
}

pnn_status pnn_proto_token_check(const char *token, const char *who) {
    size_t len = strlen(token);
    if (len == 0)
        return PNN_ERROR(PNN_ERR_INVALID, "%s: the token is empty; give a non-empty secret (or no token at all, "
                         "which only a server without one accepts)", who);
    if (len > 255) return PNN_ERROR(PNN_ERR_INVALID, "%s: the token is %zu bytes; at most 255", who, len);
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)token[i] < 0x20 || token[i] == 0x7f)
            return PNN_ERROR(PNN_ERR_INVALID, "%s: the token holds a control character (byte %zu); a token is "
                             "printable text", who, i);
    json_t *j = json_string(token);   /* NULL when not UTF-8: it could not go into a header */
    if (!j) return PNN_ERROR(PNN_ERR_INVALID, "%s: the token is not UTF-8 text", who);
    json_decref(j);
    return PNN_OK;
}

/* 0 when every float of the frame is finite and inside [lo, hi]; else the index + 1 of the first
 * that is not (read with memcpy: frames are not aligned). */
static int64_t first_out_of_range(const void *data, int64_t n, const float range[2], float *bad) {
    const unsigned char *p = data;
    for (int64_t i = 0; i < n; i++) {
        float v;
        memcpy(&v, p + 4 * i, sizeof v);
        if (!(v >= range[0] && v <= range[1])) {   /* also catches NaN */
            *bad = v;
            return i + 1;
        }
    }
    return 0;
}

/* bytes of rows x cols float32, or 0 when that overflows (callers treat 0 as too large) */
static uint64_t f32_bytes(int64_t rows, int64_t cols) {
    if (rows <= 0 || cols <= 0) return 0;
    if ((uint64_t)rows > UINT64_MAX / 4 / (uint64_t)cols) return 0;
    return (uint64_t)rows * (uint64_t)cols * 4;
}

static pnn_remote_error check_forward(const pnn_proto_frame *frames, int n_frames, const pnn_proto_limits *lim,
                                      json_t *root, pnn_proto_request *req, char *msg, size_t ms) {
    json_t *jb = json_object_get(root, "batch"), *jt = json_object_get(root, "theta_per_sample");
    if (!json_is_integer(jb) || json_integer_value(jb) < 1)
        return refuse(PNN_REMOTE_BAD_REQUEST, msg, ms, "forward needs \"batch\": an integer >= 1 (rows of x)");
    req->batch = json_integer_value(jb);
    if (req->batch > lim->max_batch)
        return refuse(PNN_REMOTE_TOO_LARGE, msg, ms, "batch %lld is over this device's max_batch %lld; split it",
                      (long long)req->batch, (long long)lim->max_batch);
    if (jt && !json_is_boolean(jt))
        return refuse(PNN_REMOTE_BAD_REQUEST, msg, ms, "\"theta_per_sample\" must be true or false");
    req->theta_per_sample = json_is_true(jt);
    if (n_frames != 3)
        return refuse(PNN_REMOTE_BAD_REQUEST, msg, ms,
                      "forward takes 2 payload frames (x, theta) after the header; this message has %d",
                      n_frames - 1);
    uint64_t xb = f32_bytes(req->batch, lim->x_dim);
    uint64_t tb = f32_bytes(req->theta_per_sample ? req->batch : 1, lim->theta_dim);
    uint64_t yb = f32_bytes(req->batch, lim->y_dim);
    if (!xb || !tb || !yb || yb > lim->max_message)
        return refuse(PNN_REMOTE_TOO_LARGE, msg, ms,
                      "the reply to a batch of %lld would be over this server's message limit of %zu bytes",
                      (long long)req->batch, lim->max_message);
    if (frames[1].size != xb)
        return refuse(PNN_REMOTE_BAD_SHAPE, msg, ms,
                      "x is %zu bytes; batch %lld x x_dim %lld float32 is %llu bytes", frames[1].size,
                      (long long)req->batch, (long long)lim->x_dim, (unsigned long long)xb);
    if (frames[2].size != tb)
        return refuse(PNN_REMOTE_BAD_SHAPE, msg, ms, "theta is %zu bytes; %s%lld float32 is %llu bytes",
                      frames[2].size, req->theta_per_sample ? "batch x theta_dim = " : "theta_dim = ",
                      (long long)(tb / 4), (unsigned long long)tb);
    float bad;
    int64_t at = first_out_of_range(frames[1].data, (int64_t)(xb / 4), lim->x_range, &bad);
    if (at)
        return refuse(PNN_REMOTE_BAD_REQUEST, msg, ms, "x[%lld] = %g is outside x_range [%g, %g] or not finite",
                      (long long)(at - 1), bad, lim->x_range[0], lim->x_range[1]);
    at = first_out_of_range(frames[2].data, (int64_t)(tb / 4), lim->theta_range, &bad);
    if (at)
        return refuse(PNN_REMOTE_BAD_REQUEST, msg, ms,
                      "theta[%lld] = %g is outside theta_range [%g, %g] or not finite", (long long)(at - 1), bad,
                      lim->theta_range[0], lim->theta_range[1]);
    req->x = frames[1].data;
    req->theta = frames[2].data;
    return PNN_REMOTE_OK;
}

pnn_remote_error pnn_proto_parse_request(const pnn_proto_frame *frames, int n_frames,
                                         const pnn_proto_limits *lim, pnn_proto_request *req, char *msg,
                                         size_t ms) {
    memset(req, 0, sizeof *req);
    if (ms) msg[0] = '\0';
    if (n_frames < 1 || !frames)
        return refuse(PNN_REMOTE_BAD_REQUEST, msg, ms,
                      "empty message: send [empty delimiter][JSON header][payload frames...]");
    if (frames[0].size > PNN_PROTO_MAX_HEADER)
        return refuse(PNN_REMOTE_TOO_LARGE, msg, ms, "the header is %zu bytes; the limit is %d",
                      frames[0].size, PNN_PROTO_MAX_HEADER);
    json_error_t jerr;
    json_t *root = json_loadb(frames[0].data, frames[0].size, JSON_REJECT_DUPLICATES, &jerr);
    pnn_remote_error e = PNN_REMOTE_OK;
    if (!root)
        return refuse(PNN_REMOTE_BAD_REQUEST, msg, ms, "the header is not JSON (column %d: %.120s)",
                      jerr.column, jerr.text);
    if (!json_is_object(root)) {
        e = refuse(PNN_REMOTE_BAD_REQUEST, msg, ms, "the header must be a JSON object");
        goto done;
    }
    json_t *jid = json_object_get(root, "id");
    if (!json_is_integer(jid) || json_integer_value(jid) < 0) {
        e = refuse(PNN_REMOTE_BAD_REQUEST, msg, ms, "every request needs \"id\": an unsigned integer");
        goto done;
    }
    req->has_id = 1;
    req->id = (uint64_t)json_integer_value(jid);
    size_t total = 0;
    for (int i = 0; i < n_frames; i++) total += frames[i].size < SIZE_MAX - total ? frames[i].size : SIZE_MAX - total;
    if (total > lim->max_message) {
        e = refuse(PNN_REMOTE_TOO_LARGE, msg, ms,
                   "the message is %zu bytes; this server's limit is %zu (pnn serve --max-bytes)", total,
                   lim->max_message);
        goto done;
    }
    if (lim->token && lim->token[0]) {
        json_t *jt = json_object_get(root, "token");
        if (!json_is_string(jt) || !pnn_proto_same_secret(lim->token, strlen(lim->token), json_string_value(jt),
                                                json_string_length(jt))) {
            e = refuse(PNN_REMOTE_UNAUTHORIZED, msg, ms,
                       jt ? "wrong token" : "this server needs a token: add \"token\" to every request");
            goto done;
        }
    }
    json_t *jop = json_object_get(root, "op");
    if (!json_is_string(jop)) {
        e = refuse(PNN_REMOTE_BAD_REQUEST, msg, ms, "every request needs \"op\": \"info\", \"forward\" or \"ping\"");
        goto done;
    }
    const char *op = json_string_value(jop);
    if (!strcmp(op, "info") || !strcmp(op, "ping")) {
        req->op = op[0] == 'i' ? PNN_OP_INFO : PNN_OP_PING;
        if (n_frames != 1)
            e = refuse(PNN_REMOTE_BAD_REQUEST, msg, ms, "%s takes no payload frames; this message has %d", op,
                       n_frames - 1);
    } else if (!strcmp(op, "forward")) {
        req->op = PNN_OP_FORWARD;
        e = check_forward(frames, n_frames, lim, root, req, msg, ms);
    } else {
        e = refuse(PNN_REMOTE_UNKNOWN_OP, msg, ms, "unknown op '%.40s'; this server knows info, forward, ping", op);
    }
done:
    json_decref(root);
    return e;
}

/* ---- building headers ---- */

static char *dump(json_t *root) {
    if (!root) return NULL;
    char *s = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    return s;
}

static json_t *id_value(int has_id, uint64_t id) {
    return has_id ? json_integer((json_int_t)id) : json_null();
}

char *pnn_proto_error_reply(int has_id, uint64_t id, pnn_remote_error code, const char *message) {
    /* messages quote the request (and jansson's errors quote its bytes), which may be cut in the
     * middle of a UTF-8 sequence or not be UTF-8 at all: JSON strings must be, so keep ASCII */
    char clean[PNN_PROTO_MAX_MESSAGE];
    size_t n = 0;
    for (const char *p = message ? message : ""; *p && n + 1 < sizeof clean; p++)
        clean[n++] = (unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f ? '?' : *p;
    clean[n] = '\0';
    return dump(json_pack("{s:o, s:b, s:s, s:s}", "id", id_value(has_id, id), "ok", 0, "error",
                          pnn_remote_error_name(code), "message", clean));
}

char *pnn_proto_forward_reply(uint64_t id, int64_t batch) {
    return dump(json_pack("{s:I, s:b, s:I}", "id", (json_int_t)id, "ok", 1, "batch", (json_int_t)batch));
}

char *pnn_proto_ping_reply(uint64_t id) { return dump(json_pack("{s:I, s:b}", "id", (json_int_t)id, "ok", 1)); }

char *pnn_proto_info_reply(uint64_t id, const pnn_device_info *info) {
    const char *system_uri = info->system_uri[0] ? info->system_uri : info->uri;
    json_t *parts = json_array();
    for (int i = 0; parts && i < info->n_theta_parts; i++) {
        const pnn_theta_part *p = &info->theta_parts[i];
        json_t *shape = p->ndim == 2 ? json_pack("[I, I]", (json_int_t)p->shape[0], (json_int_t)p->shape[1])
                                     : json_pack("[I]", (json_int_t)p->shape[0]);
        json_array_append_new(parts, json_pack("{s:s, s:o}", "name", p->name, "shape", shape));
    }
    return dump(json_pack("{s:I, s:b, s:s, s:s, s:I, s:I, s:I, s:I, s:[f, f], s:[f, f], s:s, s:o}", "id",
                          (json_int_t)id, "ok", 1, "protocol", PNN_PROTO_VERSION, "name", info->system, "x_dim",
                          (json_int_t)info->x_dim, "theta_dim", (json_int_t)info->theta_dim, "y_dim",
                          (json_int_t)info->y_dim, "max_batch", (json_int_t)info->max_batch, "x_range",
                          (double)info->x_range[0], (double)info->x_range[1], "theta_range",
                          (double)info->theta_range[0], (double)info->theta_range[1], "system_uri",
                          system_uri, "theta_parts", parts));
}

char *pnn_proto_request_header(const char *op, uint64_t id, const char *token, int64_t batch,
                               int theta_per_sample) {
    json_t *root = json_pack("{s:s, s:I}", "op", op, "id", (json_int_t)id);
    if (!root) return NULL;
    if (token && token[0] && json_object_set_new(root, "token", json_string(token)) != 0) {
        json_decref(root);
        return NULL;
    }
    if (!strcmp(op, "forward")) {
        json_object_set_new(root, "batch", json_integer((json_int_t)batch));
        json_object_set_new(root, "theta_per_sample", json_boolean(theta_per_sample));
    }
    return dump(root);
}

/* ---- parsing replies ---- */

static int64_t int_field(json_t *root, const char *key) {
    json_t *v = json_object_get(root, key);
    return json_is_integer(v) ? (int64_t)json_integer_value(v) : -1;
}

static int range_field(json_t *root, const char *key, float out[2]) {
    json_t *v = json_object_get(root, key);
    if (!json_is_array(v) || json_array_size(v) != 2 || !json_is_number(json_array_get(v, 0)) ||
        !json_is_number(json_array_get(v, 1)))
        return 0;
    double lo = json_number_value(json_array_get(v, 0)), hi = json_number_value(json_array_get(v, 1));
    if (!(lo <= hi)) return 0;
    out[0] = lo < -3e38 ? -3e38f : (float)lo;
    out[1] = hi > 3e38 ? 3e38f : (float)hi;
    return 1;
}

static void copy_string(json_t *root, const char *key, char *dst, size_t size) {
    json_t *v = json_object_get(root, key);
    if (json_is_string(v)) snprintf(dst, size, "%s", json_string_value(v));
}

/* theta_parts: kept only when every entry is usable (else the client uses one part "theta") */
static void theta_parts_field(json_t *root, pnn_proto_reply *out) {
    json_t *v = json_object_get(root, "theta_parts");
    size_t n = json_array_size(v);
    if (!json_is_array(v) || n < 1 || n > PNN_DEVICE_MAX_THETA_PARTS) return;
    for (size_t i = 0; i < n; i++) {
        json_t *e = json_array_get(v, i), *name = json_object_get(e, "name"), *shape = json_object_get(e, "shape");
        size_t nd = json_array_size(shape);
        if (!json_is_string(name) || json_string_length(name) < 1 ||
            json_string_length(name) >= sizeof out->theta_parts[0].name || !json_is_array(shape) || nd < 1 || nd > 2)
            return;
        pnn_theta_part *p = &out->theta_parts[i];
        snprintf(p->name, sizeof p->name, "%s", json_string_value(name));
        p->ndim = (int)nd;
        p->shape[1] = 0;
        for (size_t d = 0; d < nd; d++) {
            json_t *s = json_array_get(shape, d);
            if (!json_is_integer(s) || json_integer_value(s) < 1 || json_integer_value(s) > ((int64_t)1 << 31)) return;
            p->shape[d] = json_integer_value(s);
        }
    }
    out->n_theta_parts = (int)n;
}

pnn_status pnn_proto_parse_reply(const void *data, size_t size, pnn_proto_reply *out) {
    memset(out, 0, sizeof *out);
    out->x_dim = out->y_dim = out->theta_dim = out->max_batch = out->batch = -1;
    if (size > PNN_PROTO_MAX_REPLY_HEADER)
        return PNN_ERROR(PNN_ERR_FORMAT, "a reply header of %zu bytes is over the limit of %d", size,
                         PNN_PROTO_MAX_REPLY_HEADER);
    json_error_t jerr;
    json_t *root = json_loadb(data, size, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) return PNN_ERROR(PNN_ERR_FORMAT, "a reply header is not JSON (column %d: %s)", jerr.column, jerr.text);
    pnn_status st = PNN_OK;
    json_t *jid = json_object_get(root, "id"), *jok = json_object_get(root, "ok");
    if (!json_is_object(root) || !json_is_boolean(jok) ||
        !(json_is_null(jid) || (json_is_integer(jid) && json_integer_value(jid) >= 0))) {
        st = PNN_ERROR(PNN_ERR_FORMAT, "a reply header lacks \"id\" (unsigned integer or null) or \"ok\" (boolean)");
        goto done;
    }
    out->has_id = json_is_integer(jid);
    out->id = out->has_id ? (uint64_t)json_integer_value(jid) : 0;
    out->ok = json_is_true(jok);
    if (!out->ok) {
        json_t *je = json_object_get(root, "error");
        if (!json_is_string(je)) {
            st = PNN_ERROR(PNN_ERR_FORMAT, "an error reply lacks \"error\"");
            goto done;
        }
        snprintf(out->error_name, sizeof out->error_name, "%s", json_string_value(je));
        out->error = PNN_REMOTE_N_ERRORS;
        for (int i = 1; i < PNN_REMOTE_N_ERRORS; i++)
            if (!strcmp(out->error_name, error_names[i])) out->error = (pnn_remote_error)i;
        copy_string(root, "message", out->message, sizeof out->message);
        goto done;
    }
    out->batch = int_field(root, "batch");
    copy_string(root, "protocol", out->protocol, sizeof out->protocol);
    copy_string(root, "name", out->name, sizeof out->name);
    copy_string(root, "system_uri", out->system_uri, sizeof out->system_uri);
    out->x_dim = int_field(root, "x_dim");
    out->y_dim = int_field(root, "y_dim");
    out->theta_dim = int_field(root, "theta_dim");
    out->max_batch = int_field(root, "max_batch");
    out->x_range[0] = out->theta_range[0] = -3e38f;
    out->x_range[1] = out->theta_range[1] = 3e38f;
    if (json_object_get(root, "x_range") && !range_field(root, "x_range", out->x_range)) out->malformed = "x_range";
    if (json_object_get(root, "theta_range") && !range_field(root, "theta_range", out->theta_range))
        out->malformed = "theta_range";
    theta_parts_field(root, out);
done:
    json_decref(root);
    return st;
}
