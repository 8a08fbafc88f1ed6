#!/usr/bin/env python3
"""Serve a Python function y = f(x, theta) as a pnn device (protocol pnn-device/1).

Copy this file for your instrument: write f (x: batch x x_dim, theta: theta_dim, float32 numpy
arrays; return batch x y_dim) and the device's description, as `oscillator` below does. pnn then
trains it:  pnn train CONFIG.yaml --set 'network.1.device=remote:tcp://HOST:5555?token=SECRET'

  python3 tools/pnn-device-server.py --demo oscillator --n 40 --nt 10 --token SECRET
Needs pyzmq and numpy. CURVE key files come from `pnn keygen` (lines public=Z85, secret=Z85).
With a token, a client must give it at the ZeroMQ handshake (ZMTP PLAIN: any user name, password
the token; pnn's client does) and in every request: a peer without it cannot send anything.
"""
import argparse
import hmac
import json
import signal
import sys
import threading

import numpy as np
import zmq
import zmq.utils.z85

MAX_HEADER = 4096


def oscillator(n, nt, dt):
    """The ideal coupled oscillators of pnn's sim:oscillator (no noise, no mismatch), by RK4:
    q'' = s Q - s + e, s = sin q, q(0) = x, q'(0) = 0, y = q(nt dt); theta = [C (n x n), e (n)],
    Q = (C + C^T)/2 with Q_ii = -(row sum)."""
    def f(x, theta):
        c, e = theta[:n * n].reshape(n, n), theta[n * n:]
        q_mat = (c + c.T) / 2
        np.fill_diagonal(q_mat, -q_mat.sum(axis=1))
        def acc(q):
            s = np.sin(q)
            return s @ q_mat - s + e
        q, p, h = x.copy(), np.zeros_like(x), np.float32(dt)
        for _ in range(nt):
            a1 = acc(q)
            a2 = acc(q + h / 2 * p)
            a3 = acc(q + h / 2 * p + h * h / 4 * a1)
            a4 = acc(q + h * p + h * h / 2 * a2)
            q, p = q + h * p + h * h / 6 * (a1 + a2 + a3), p + h / 6 * (a1 + 2 * a2 + 2 * a3 + a4)
        return q
    info = dict(name="oscillator", x_dim=n, y_dim=n, theta_dim=n * n + n,
                system_uri=f"python:oscillator?n={n}&nt={nt}&dt={dt}&noise=0",
                theta_parts=[{"name": "C", "shape": [n, n]}, {"name": "e", "shape": [n]}])
    return f, info


def tanh_layer(n, m):
    """y = tanh(x W + b) with theta = [W (n x m), b (m)]: the smallest trainable system."""
    def f(x, theta):
        return np.tanh(x @ theta[:n * m].reshape(n, m) + theta[n * m:])
    return f, dict(name="tanh_layer", x_dim=n, y_dim=m, theta_dim=n * m + m)


class Refused(Exception):
    def __init__(self, code, message):
        super().__init__(message)
        self.code = code


def no_duplicates(pairs):
    keys = [k for k, _ in pairs]
    if len(keys) != len(set(keys)):
        raise ValueError("duplicate key")
    return dict(pairs)


class Device:
    def __init__(self, f, info, args):
        self.f, self.args = f, args
        self.info = dict(protocol="pnn-device/1", max_batch=args.max_batch, x_range=[-1e30, 1e30],
                         theta_range=[-1e30, 1e30], **info)

    def handle(self, frames):
        """One request (frames after the envelope) -> reply frames. Never raises."""
        rid = None
        try:
            if not frames or len(frames[0]) > MAX_HEADER:
                raise Refused("too_large" if frames else "bad_request", "header missing or over 4096 bytes")
            try:
                h = json.loads(bytes(frames[0]).decode("utf-8"), object_pairs_hook=no_duplicates)
            except ValueError as err:
                raise Refused("bad_request", f"the header is not JSON: {err}")
            if not isinstance(h, dict) or type(h.get("id")) is not int or not 0 <= h["id"] < 2**63:
                raise Refused("bad_request", "every request needs \"id\": an unsigned integer")
            rid = h["id"]
            if sum(len(fr) for fr in frames) > self.args.max_bytes:
                raise Refused("too_large", f"the message is over this server's limit of {self.args.max_bytes} bytes")
            tok = h.get("token")
            if self.args.token and not (isinstance(tok, str) and hmac.compare_digest(
                    tok.encode("utf-8", "surrogatepass"), self.args.token_bytes)):
                raise Refused("unauthorized", "wrong token" if tok else "this server needs a token")
            op = h.get("op")
            if op in ("info", "ping"):
                if len(frames) != 1:
                    raise Refused("bad_request", f"{op} takes no payload frames")
                return [json.dumps(dict(self.info if op == "info" else {}, id=rid, ok=True)).encode()]
            if op != "forward":
                raise Refused("unknown_op" if isinstance(op, str) else "bad_request", f"unknown op {op!r}")
            return self.forward(h, frames)
        except Refused as r:
            return [json.dumps(dict(id=rid, ok=False, error=r.code, message=str(r))).encode()]

    def forward(self, h, frames):
        d, b, tps = self.info, h.get("batch"), h.get("theta_per_sample", False)
        if type(b) is not int or b < 1:
            raise Refused("bad_request", "forward needs \"batch\": an integer >= 1")
        if b > d["max_batch"]:
            raise Refused("too_large", f"batch {b} is over max_batch {d['max_batch']}")
        if not isinstance(tps, bool):
            raise Refused("bad_request", "\"theta_per_sample\" must be true or false")
        if len(frames) != 3:
            raise Refused("bad_request", "forward takes 2 payload frames (x, theta)")
        x_bytes, t_bytes = 4 * b * d["x_dim"], 4 * (b if tps else 1) * d["theta_dim"]
        if len(frames[1]) != x_bytes or len(frames[2]) != t_bytes:
            raise Refused("bad_shape", f"x must be {x_bytes} bytes and theta {t_bytes}")
        x = np.frombuffer(frames[1], dtype="<f4").reshape(b, d["x_dim"])
        theta = np.frombuffer(frames[2], dtype="<f4").reshape(-1, d["theta_dim"])
        if not (np.isfinite(x).all() and np.isfinite(theta).all()):
            raise Refused("bad_request", "x or theta holds NaN or Inf")
        try:
            if tps:
                y = np.concatenate([self.f(x[i:i + 1], theta[i]) for i in range(b)])
            else:
                y = self.f(x, theta[0])
            y = np.ascontiguousarray(y, dtype="<f4")
        except Exception as err:  # the instrument failed: the client may retry
            raise Refused("device_fault", f"{type(err).__name__}: {err}")
        if y.shape != (b, d["y_dim"]) or not np.isfinite(y).all():
            raise Refused("device_fault", f"the device returned shape {y.shape} or non-finite values")
        return [json.dumps(dict(id=h["id"], ok=True, batch=b)).encode(), y.tobytes()]


def start_zap_handler(ctx, token, allowed_keys):
    """Answers ZeroMQ's handshake checks (ZAP, RFC 27) in a thread until ctx ends: a CURVE client
    gets in when its public key (Z85) is in allowed_keys, a PLAIN client when its password is the
    token (bytes)."""
    zap = ctx.socket(zmq.REP)
    zap.linger = 0
    zap.bind("inproc://zeromq.zap.01")

    def serve():
        try:
            while True:
                req = zap.recv_multipart()  # version, id, domain, address, identity, mechanism, credentials
                mech = req[5] if len(req) > 5 and req[0] == b"1.0" else b""
                if mech == b"CURVE" and len(req) == 7:
                    ok = zmq.utils.z85.encode(req[6]) in allowed_keys
                elif mech == b"PLAIN" and len(req) == 8 and token:
                    ok = hmac.compare_digest(req[7], token)
                else:
                    ok = False
                zap.send_multipart([b"1.0", req[1] if len(req) > 1 else b"", b"200" if ok else b"400",
                                    b"OK" if ok else b"refused", b"", b""])
        except zmq.ContextTerminated:
            zap.close()
    threading.Thread(target=serve, daemon=True).start()


def read_key(path, part):
    for line in open(path):
        if line.startswith(part + "="):
            return line.strip()[len(part) + 1:].encode()
    sys.exit(f"key file {path} has no {part}= line (make key files with pnn keygen)")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--demo", choices=["oscillator", "tanh"], default="oscillator", help="the function served")
    ap.add_argument("--n", type=int, default=40, help="oscillators (or tanh inputs)")
    ap.add_argument("--nt", type=int, default=10, help="RK4 steps (oscillator)")
    ap.add_argument("--dt", type=float, default=0.1, help="RK4 step (oscillator)")
    ap.add_argument("--bind", default="tcp://127.0.0.1:5555", help="endpoint; port * picks a free one")
    ap.add_argument("--token", help="require this token at the handshake (PLAIN password) and in every request")
    ap.add_argument("--curve-key", help="server key pair file (pnn keygen): turns CURVE on")
    ap.add_argument("--allow-client", action="append", default=[], help="allowed client .pub file (repeat)")
    ap.add_argument("--insecure", action="store_true", help="allow a non-loopback address without CURVE")
    ap.add_argument("--max-bytes", type=int, default=256 << 20, help="refuse larger messages (too_large)")
    ap.add_argument("--max-batch", type=int, default=1 << 16)
    args = ap.parse_args()
    if args.token is not None and not args.token:
        sys.exit("--token is empty: give a non-empty token, or leave --token out to serve without one")
    try:
        args.token_bytes = args.token.encode() if args.token else b""
    except UnicodeEncodeError:
        sys.exit("--token is not UTF-8 text")
    host = args.bind.split("://")[-1].rsplit(":", 1)[0]
    if args.bind.startswith("tcp://") and not (host.startswith("127.") or host in ("localhost", "[::1]")) \
            and not args.curve_key and not args.insecure:
        sys.exit(f"refusing to serve on {args.bind} without CURVE: anyone on the network could drive the device; "
                 "use --curve-key/--allow-client, a loopback address, or --insecure")
    f, info = oscillator(args.n, args.nt, args.dt) if args.demo == "oscillator" else tanh_layer(args.n, 7)
    device, ctx = Device(f, info, args), zmq.Context()
    allowed = {read_key(p, "public") for p in args.allow_client}
    if args.curve_key and not allowed:
        sys.exit("--curve-key needs at least one --allow-client")
    if args.curve_key or args.token:
        start_zap_handler(ctx, args.token_bytes, allowed)  # before the socket binds: no handshake goes unchecked
    sock = ctx.socket(zmq.ROUTER)
    sock.linger = 0
    sock.maxmsgsize = 2 * args.max_bytes + 65536
    if args.curve_key:
        sock.curve_server, sock.curve_secretkey = True, read_key(args.curve_key, "secret")
    elif args.token:
        sock.plain_server = True
    if args.curve_key or args.token:
        sock.zap_domain = b"pnn"
    sock.bind(args.bind)
    for sig in (signal.SIGINT, signal.SIGTERM):  # both stop it cleanly, even in the background
        signal.signal(sig, signal.default_int_handler)
    print("listening on", sock.getsockopt_string(zmq.LAST_ENDPOINT), flush=True)
    try:
        while True:
            # a signal may land on any thread (OpenBLAS's too) and then does not interrupt a blocking
            # recv: the main thread wakes up to run the handler
            if not sock.poll(200):
                continue
            msg = sock.recv_multipart(copy=False)
            env = 2 if len(msg) > 1 and len(msg[1]) == 0 else 1  # [identity][empty delimiter]
            sock.send_multipart([m.bytes for m in msg[:env]] + device.handle([m.buffer for m in msg[env:]]))
    except KeyboardInterrupt:
        pass
    finally:
        sock.close(linger=0)
        ctx.term()


if __name__ == "__main__":
    main()
