/* CURVE key files for remote devices: `pnn keygen` writes them, clients and servers read them.
 * Format (text, one key per line, '#' comments allowed):
 *     public=<40 Z85 characters>
 *     secret=<40 Z85 characters>      (only in the key pair file, which is mode 0600)
 * FILE.pub holds the public line alone: that is what goes to the other side. */
#include "hwbridge/remote/protocol.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

static int is_z85_key(const char *s, size_t len) {
    if (len != 40) return 0;
    char buf[41];
    uint8_t raw[32];
    memcpy(buf, s, 40);
    buf[40] = '\0';
    return zmq_z85_decode(raw, buf) != NULL;
}

pnn_status pnn_remote_key_read(const char *path, char public_key[41], char secret_key[41]) {
    char text[4096];
    FILE *f = fopen(path, "r");
    if (!f)
        return PNN_ERROR(PNN_ERR_NOT_FOUND, "cannot open key file '%s': %s; make one with: pnn keygen %s", path,
                         strerror(errno), path);
    size_t n = fread(text, 1, sizeof text - 1, f);
    int too_long = !feof(f);
    fclose(f);
    if (too_long) return PNN_ERROR(PNN_ERR_CONFIG, "key file '%s' is over 4 KiB: not a pnn key file", path);
    text[n] = '\0';
    int got_public = 0, got_secret = 0;
    for (char *line = text, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        if (next) *next++ = '\0';
        size_t len = strlen(line);
        if (len && line[len - 1] == '\r') line[--len] = '\0';
        if (!len || line[0] == '#') continue;
        int pub = !strncmp(line, "public=", 7), sec = !strncmp(line, "secret=", 7);
        if ((!pub && !sec) || !is_z85_key(line + 7, len - 7))
            return PNN_ERROR(PNN_ERR_CONFIG,
                             "key file '%s': line '%.20s...' is not public=<40 Z85 characters> or "
                             "secret=<40 Z85 characters>; make key files with pnn keygen",
                             path, line);
        char *dst = pub ? public_key : secret_key;  /* a secret nobody asked for is not kept */
        if (dst) {
            memcpy(dst, line + 7, 40);
            dst[40] = '\0';
        }
        if (pub) got_public = 1;
        else got_secret = 1;
    }
    memset(text, 0, sizeof text);
    if (!got_public) {
        return PNN_ERROR(PNN_ERR_CONFIG, "key file '%s' has no public= line; make key files with pnn keygen", path);
    }
    if (secret_key && !got_secret)
        return PNN_ERROR(PNN_ERR_CONFIG,
                         "key file '%s' has no secret= line: give the key pair file that pnn keygen wrote, "
                         "not its .pub half",
                         path);
    if (secret_key) {
        /* the public key must belong to the secret one */
        char derived[41];
        if (zmq_curve_public(derived, secret_key) != 0 || strcmp(derived, public_key))
            return PNN_ERROR(PNN_ERR_CONFIG, "key file '%s': its public key does not belong to its secret key",
                             path);
    }
    return PNN_OK;
}

pnn_status pnn_remote_key_public(const char *key_or_path, char public_key[41]) {
    if (is_z85_key(key_or_path, strlen(key_or_path))) {
        memcpy(public_key, key_or_path, 41);
        return PNN_OK;
    }
    return pnn_remote_key_read(key_or_path, public_key, NULL);
}

/* Writes text to path through path.tmp.XXXXXX (created with mode), fsync and rename. */
static pnn_status write_atomic(const char *path, const char *text, mode_t mode) {
    pnn_status st = PNN_OK;
    char tmp[4200];
    if (snprintf(tmp, sizeof tmp, "%s.tmp.XXXXXX", path) >= (int)sizeof tmp)
        return PNN_ERROR(PNN_ERR_INVALID, "key file path '%s' is too long", path);
    int fd = mkstemp(tmp);
    if (fd < 0) return PNN_ERROR(PNN_ERR_IO, "cannot create '%s': %s", tmp, strerror(errno));
    size_t len = strlen(text);
    if (fchmod(fd, mode) != 0 || write(fd, text, len) != (ssize_t)len || fsync(fd) != 0) {
        st = PNN_ERROR(PNN_ERR_IO, "cannot write '%s': %s", tmp, strerror(errno));
        close(fd);
        goto fail;
    }
    if (close(fd) != 0 || rename(tmp, path) != 0) {
        st = PNN_ERROR(PNN_ERR_IO, "cannot write '%s': %s", path, strerror(errno));
        goto fail;
    }
    return PNN_OK;
fail:
    unlink(tmp);
    return st;
}

pnn_status pnn_remote_keygen(const char *path, int overwrite) {
    char pub[41], sec[41], text[400], pub_path[4200];
    if (zmq_curve_keypair(pub, sec) != 0)
        return PNN_ERROR(PNN_ERR_UNSUPPORTED, "zmq_curve_keypair failed (%s): this libzmq was built without CURVE",
                         zmq_strerror(zmq_errno()));
    if (snprintf(pub_path, sizeof pub_path, "%s.pub", path) >= (int)sizeof pub_path)
        return PNN_ERROR(PNN_ERR_INVALID, "key file path '%s' is too long", path);
    if (!overwrite && (access(path, F_OK) == 0 || access(pub_path, F_OK) == 0))
        return PNN_ERROR(PNN_ERR_INVALID, "'%s' or '%s' exists; pnn keygen does not replace keys (remove them "
                         "or use --force)", path, pub_path);
    snprintf(text, sizeof text,
             "# pnn CURVE key pair (pnn keygen). Keep this file private; give %.80s.pub to the other side.\n"
             "public=%s\nsecret=%s\n",
             strrchr(path, '/') ? strrchr(path, '/') + 1 : path, pub, sec);
    PNN_TRY(write_atomic(path, text, 0600));
    snprintf(text, sizeof text, "# pnn CURVE public key (pnn keygen)\npublic=%s\n", pub);
    PNN_TRY(write_atomic(pub_path, text, 0644));
    memset(sec, 0, sizeof sec);
    memset(text, 0, sizeof text);
    return PNN_OK;
}
