/* `pnn serve`: serve a device over pnn-device/1, so that `pnn train` on another process or
 * machine can use it as remote:ENDPOINT. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "pnn/remote.h"

static const char help[] =
    "usage: pnn serve DEVICE_URI [--bind ENDPOINT] [--token TOKEN | --token-file FILE] [--no-plain]\n"
    "                 [--curve-key FILE --allow-client KEY...] [--insecure] [--max-bytes N]\n"
    "                 [--max-pending-bytes N] [--rep]\n"
    "\n"
    "Serves the device DEVICE_URI (e.g. sim:oscillator?n=100&seed=1) to clients that open\n"
    "remote:ENDPOINT (pnn train with network.N.device=remote:tcp://HOST:PORT?token=...). The protocol,\n"
    "pnn-device/1, is plain ZeroMQ + JSON: tools/pnn-device-server.py serves a Python function the same way.\n"
    "\n"
    "  --bind ENDPOINT     where to listen (default tcp://127.0.0.1:5555); tcp://127.0.0.1:* picks a free\n"
    "                      port; ipc:///path/sock for a Unix socket. The endpoint is printed on start.\n"
    "  --token TOKEN       require this token (client: token=TOKEN in the URI): at the ZeroMQ handshake\n"
    "                      (ZMTP PLAIN, password TOKEN), so that nobody without it can send anything,\n"
    "                      and in every request\n"
    "  --token-file FILE   the token is the first line of FILE (keeps it out of ps and shell history)\n"
    "  --no-plain          check the token in request headers only, for pnn-device/1 clients that do not\n"
    "                      speak PLAIN; anyone who reaches the endpoint can then make the server hold up\n"
    "                      to --max-pending-bytes\n"
    "  --curve-key FILE    encrypt and authenticate with CURVE, using this server key pair (pnn keygen);\n"
    "                      clients give server_key=FILE.pub (or its Z85 key) and client_key=THEIR_KEY\n"
    "  --allow-client KEY  a client public key allowed in (Z85, a .pub file, or a directory of .pub\n"
    "                      files); repeat for several. Required with --curve-key.\n"
    "  --insecure          allow a non-loopback TCP address without CURVE (anyone on the network could\n"
    "                      drive the device, and a token would travel in clear)\n"
    "  --max-bytes N       refuse messages over N bytes (default 268435456) with too_large\n"
    "  --max-pending-bytes N  drop every connection when clients make the server hold more than N bytes\n"
    "                      of unfinished or queued messages (default: twice the largest request or reply\n"
    "                      of the device, within --max-bytes, + 64 MiB; 0: never). Clients reconnect\n"
    "                      by themselves; their requests in flight time out and are retried.\n"
    "  --rep               use a REP socket (one client request at a time) instead of ROUTER\n"
    "\n"
    "Ctrl-C stops the server and prints its counters (requests, replies by error code, handshakes,\n"
    "connection drops).\n"
    "Exit codes: 0 stopped, 64 usage, 66 key or token file missing, 69 device or endpoint unavailable,\n"
    "78 bad security configuration.\n";

static volatile int stop_requested;

static void on_interrupt(int sig) {
    (void)sig;
    stop_requested = 1;
}

static void print_stats(const pnn_server_stats *st) {
    fprintf(stderr, "pnn serve: stopped after %llu requests: %llu ok (%llu rows forwarded)",
            (unsigned long long)st->requests, (unsigned long long)st->ok, (unsigned long long)st->forward_rows);
    for (int e = 1; e < PNN_REMOTE_N_ERRORS; e++)
        if (st->errors[e]) fprintf(stderr, ", %llu %s", (unsigned long long)st->errors[e], pnn_remote_error_name(e));
    fprintf(stderr, "; %.1f MB in, %.1f MB out", st->bytes_in / 1e6, st->bytes_out / 1e6);
    if (st->curve_accepted || st->curve_denied)
        fprintf(stderr, "; CURVE clients let in %llu, refused %llu", (unsigned long long)st->curve_accepted,
                (unsigned long long)st->curve_denied);
    if (st->plain_accepted || st->plain_denied)
        fprintf(stderr, "; token handshakes let in %llu, refused %llu", (unsigned long long)st->plain_accepted,
                (unsigned long long)st->plain_denied);
    fprintf(stderr, "; most held for clients %.1f MB, connections dropped %llu times", st->pending_peak / 1e6,
            (unsigned long long)st->drops);
    fputc('\n', stderr);
}

static int read_token_file(const char *path, char *token, size_t size) {
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "pnn serve: error: cannot open token file '%s'\n", path);
        return EX_NOINPUT_;
    }
    char *got = fgets(token, (int)size, f);
    int cut = got && !strchr(token, '\n') && fgetc(f) != EOF;   /* a first line longer than the buffer */
    fclose(f);
    token[got ? strcspn(token, "\r\n") : 0] = '\0';
    if (cut) {
        fprintf(stderr, "pnn serve: error: the first line of token file '%s' is too long (a token is at most 255 "
                "characters)\n", path);
        return EX_CONFIG_;
    }
    if (!token[0]) {
        fprintf(stderr, "pnn serve: error: token file '%s' is empty (or its first line is)\n", path);
        return EX_CONFIG_;
    }
    return 0;
}

int cmd_serve(int argc, char **argv) {
    const char *uri = NULL, *token_file = NULL;
    const char **allow = calloc((size_t)argc, sizeof *allow);
    pnn_server_config cfg = {0};
    char token[258];   /* 255 characters, CR LF and NUL */
    int rc = 0;
    if (!allow) return EX_SOFTWARE_;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int has_value = i + 1 < argc;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(help, stdout);
            goto done;
        }
        if (!strcmp(a, "--bind") || !strcmp(a, "--token") || !strcmp(a, "--token-file") ||
            !strcmp(a, "--curve-key") || !strcmp(a, "--allow-client") || !strcmp(a, "--max-bytes") ||
            !strcmp(a, "--max-pending-bytes")) {
            if (!has_value) {
                rc = cli_usage_error("serve", "%s needs a value", a);
                goto done;
            }
            const char *v = argv[++i];
            if (!strcmp(a, "--bind")) cfg.bind = v;
            else if (!strcmp(a, "--token")) cfg.token = v;
            else if (!strcmp(a, "--token-file")) token_file = v;
            else if (!strcmp(a, "--curve-key")) cfg.curve_key_file = v;
            else if (!strcmp(a, "--allow-client")) allow[cfg.n_allow_clients++] = v;
            else if (!strcmp(a, "--max-pending-bytes")) {
                char *end;
                unsigned long long n = strtoull(v, &end, 10);
                if (end == v || *end || v[0] == '-' || (n != 0 && n < 4096) || n > ((unsigned long long)1 << 50)) {
                    rc = cli_usage_error("serve", "--max-pending-bytes %s: expected a byte count in [4096, 2^50], "
                                         "or 0 for no bound", v);
                    goto done;
                }
                cfg.max_pending_bytes = n ? (size_t)n : PNN_SERVER_NO_WATCHDOG;
            } else {
                char *end;
                unsigned long long n = strtoull(v, &end, 10);
                if (end == v || *end || n < 4096 || n > ((unsigned long long)1 << 40)) {
                    rc = cli_usage_error("serve", "--max-bytes %s: expected a byte count in [4096, 2^40]", v);
                    goto done;
                }
                cfg.max_message_bytes = (size_t)n;
            }
        } else if (!strcmp(a, "--insecure")) {
            cfg.insecure = 1;
        } else if (!strcmp(a, "--rep")) {
            cfg.use_rep = 1;
        } else if (!strcmp(a, "--no-plain")) {
            cfg.token_in_header_only = 1;
        } else if (a[0] == '-' && a[1]) {
            rc = cli_usage_error("serve", "unknown option '%s'", a);
            goto done;
        } else if (!uri) {
            uri = a;
        } else {
            rc = cli_usage_error("serve", "unexpected argument '%s'", a);
            goto done;
        }
    }
    if (!uri) {
        rc = cli_usage_error("serve", "give the device to serve, e.g. pnn serve 'sim:oscillator?n=100'");
        goto done;
    }
    if (cfg.token && token_file) {
        rc = cli_usage_error("serve", "give either --token or --token-file");
        goto done;
    }
    if (cfg.token && !cfg.token[0]) {
        rc = cli_usage_error("serve", "--token is empty: give a non-empty token, or leave --token out to serve "
                             "without one");
        goto done;
    }
    if (cfg.n_allow_clients && !cfg.curve_key_file) {
        rc = cli_usage_error("serve", "--allow-client needs --curve-key (client keys only mean something with CURVE)");
        goto done;
    }
    if (token_file) {
        if ((rc = read_token_file(token_file, token, sizeof token))) goto done;
        cfg.token = token;
    }
    if (cfg.token_in_header_only && (!cfg.token || cfg.curve_key_file)) {
        rc = cli_usage_error("serve", "--no-plain only means something with a token and without --curve-key");
        goto done;
    }
    cfg.allow_clients = allow;
    cfg.log = stderr;
    pnn_device *dev;
    pnn_status st = pnn_device_open(uri, pnn_backend_cpu(), &dev);
    if (st != PNN_OK) {
        rc = cli_fail("serve", st);
        goto done;
    }
    pnn_server *srv;
    st = pnn_server_create(dev, &cfg, &srv);
    if (st != PNN_OK) {
        pnn_device_close(dev);
        rc = cli_fail("serve", st);
        goto done;
    }
    const pnn_device_info *info = pnn_device_info_get(dev);
    fprintf(stderr, "pnn serve: %s (x_dim %lld, theta_dim %lld, y_dim %lld, max_batch %lld)\n", info->uri,
            (long long)info->x_dim, (long long)info->theta_dim, (long long)info->y_dim, (long long)info->max_batch);
    pnn_server_bounds bounds;
    pnn_server_get_bounds(srv, &bounds);
    fprintf(stderr, "pnn serve: %s socket, handshake %s, token %s, CURVE %s%s\n", cfg.use_rep ? "REP" : "ROUTER",
            bounds.security, cfg.token && cfg.token[0] ? "required" : "none", cfg.curve_key_file ? "on" : "off",
            cfg.insecure && !cfg.curve_key_file ? " (--insecure: open to the network)" : "");
    if (bounds.max_pending)
        fprintf(stderr, "pnn serve: frames up to %.1f MB; connections dropped past %.1f MB held for clients\n",
                bounds.max_frame / 1e6, bounds.max_pending / 1e6);
    else
        fprintf(stderr, "pnn serve: frames up to %.1f MB; no bound on what clients make the server hold "
                "(--max-pending-bytes 0, or a C library without mallinfo2)\n", bounds.max_frame / 1e6);
    /* the one line scripts wait for */
    printf("listening on %s\n", pnn_server_endpoint(srv));
    fflush(stdout);
    struct sigaction sa = {0};
    sa.sa_handler = on_interrupt;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    st = pnn_server_serve(srv, &stop_requested);
    pnn_server_stats stats;
    pnn_server_get_stats(srv, &stats);
    print_stats(&stats);
    pnn_server_free(srv);
    pnn_device_close(dev);
    if (st != PNN_OK) rc = cli_fail("serve", st);
done:
    memset(token, 0, sizeof token);
    free(allow);
    return rc;
}
