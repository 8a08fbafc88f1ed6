/* `pnn keygen`: make a CURVE key pair for a remote device server or client. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "pnn/remote.h"

static const char help[] =
    "usage: pnn keygen FILE [--force]\n"
    "\n"
    "Writes a new CURVE key pair to FILE (mode 0600: keep it private) and its public half to\n"
    "FILE.pub (give that to the other side). Both are text:\n"
    "  public=<40 Z85 characters>\n"
    "  secret=<40 Z85 characters>     (FILE only)\n"
    "A server uses its pair with pnn serve --curve-key FILE and lets clients in with\n"
    "--allow-client CLIENT.pub; a client opens remote:tcp://HOST:PORT?server_key=SERVER.pub&client_key=FILE.\n"
    "\n"
    "  --force   replace FILE and FILE.pub if they exist\n";

int cmd_keygen(int argc, char **argv) {
    const char *path = NULL;
    int force = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(help, stdout);
            return 0;
        }
        if (!strcmp(argv[i], "--force")) force = 1;
        else if (argv[i][0] == '-' && argv[i][1]) return cli_usage_error("keygen", "unknown option '%s'", argv[i]);
        else if (!path) path = argv[i];
        else return cli_usage_error("keygen", "unexpected argument '%s'", argv[i]);
    }
    if (!path) return cli_usage_error("keygen", "give the key file to write, e.g. pnn keygen server.key");
    pnn_status st = pnn_remote_keygen(path, force);
    if (st != PNN_OK) return cli_fail("keygen", st);
    fprintf(stderr, "pnn keygen: wrote %s (secret, mode 0600) and %s.pub (public)\n", path, path);
    return 0;
}
