#!/usr/bin/env python3
"""The memory of `pnn serve` under the unfinished-multipart attack, before and after the fix.

A raw ZMTP 3.0 peer (this file speaks just enough of RFC 23: libzmq itself never sends a
multipart message before its last frame) connects to `pnn serve DEVICE --token T` and sends
frames of 1 MiB, every one with MORE, never the last: ZeroMQ keeps a message's frames until it is
complete, outside every high-water mark, so a server that lets the peer in holds all of it. The
server's VmRSS (now) and VmHWM (peak) come from /proc/PID/status before the attack and once RSS
has stopped changing after it.

  python3 benchmarks/serve_memory_attack.py --pnn build/pnn --old-pnn /tmp/b/old/pnn \\
      --old-commit 260dbaf --out benchmarks/results/serve-memory-attack-2026-12-02.json

Runs: the old server (token checked in request headers only) attacked without the token; the new
server attacked without the token (NULL handshake, PLAIN with a wrong password), with the token
at its defaults (--mib, then 800 MiB, past the default bound) and with --max-pending-bytes
64 MiB; and, on the new server, the one thing a peer
without the token can still send: one frame of its handshake, up to the server's frame bound
(at the defaults, and with --max-bytes 16 MiB, which lowers that bound). Needs python3 only.
"""
import argparse
import datetime
import json
import os
import platform
import re
import socket
import struct
import subprocess
import time

MIB = 1 << 20


# ---- a raw ZMTP 3.0 peer ----

def greeting(mechanism):
    return b"\xff" + b"\0" * 7 + b"\x01\x7f" + bytes([3, 0]) + mechanism.ljust(20, b"\0") + b"\0" * 32


def frame_header(size, more=False, command=False):
    return bytes([2 | (1 if more else 0) | (4 if command else 0)]) + struct.pack(">Q", size)


def command(body):
    return frame_header(len(body), command=True) + body


def recv_exact(s, n):
    b = b""
    while len(b) < n:
        chunk = s.recv(n - len(b))
        if not chunk:
            raise ConnectionError("the server closed the connection")
        b += chunk
    return b


def recv_command(s):
    flags = recv_exact(s, 1)[0]
    n = struct.unpack(">Q", recv_exact(s, 8))[0] if flags & 2 else recv_exact(s, 1)[0]
    return recv_exact(s, n)


def zmtp_peer(endpoint, password=None):
    """A DEALER through the NULL handshake (password None) or PLAIN; returns (socket, admitted)."""
    host, port = endpoint[len("tcp://"):].rsplit(":", 1)
    s = socket.create_connection((host, int(port)), timeout=5)
    meta = bytes([11]) + b"Socket-Type" + struct.pack(">I", 6) + b"DEALER"
    try:
        s.sendall(greeting(b"PLAIN" if password is not None else b"NULL"))
        recv_exact(s, 64)
        if password is None:
            s.sendall(command(b"\x05READY" + meta))
        else:
            s.sendall(command(b"\x05HELLO" + bytes([5]) + b"bench" + bytes([len(password)]) + password))
            if not recv_command(s).startswith(b"\x07WELCOME"):
                return s, False
            s.sendall(command(b"\x08INITIATE" + meta))
        return s, recv_command(s).startswith(b"\x05READY")
    except (ConnectionError, OSError):
        return s, False


def send_frames(s, frame, total):
    """Frames of `frame` zero bytes with MORE until `total` bytes or the server closes; bytes sent."""
    chunk, sent = frame_header(frame, more=True) + bytes(frame), 0
    try:
        while sent < total:
            s.sendall(chunk)
            sent += frame
    except OSError:
        pass
    return sent


def send_frames_raw(s, total):
    """The body of a frame whose header was sent: zeros up to total bytes, or until closed."""
    block, sent = bytes(MIB), 0
    try:
        while sent < total:
            s.sendall(block)
            sent += MIB
    except OSError:
        pass
    return sent


# ---- the server ----

def status_kb(pid, field):
    text = open(f"/proc/{pid}/status").read()
    return int(re.search(field + r":\s+(\d+)", text).group(1))


def settled_rss_kb(pid, quiet_s=1.0, limit_s=20.0):
    last, since, t0 = status_kb(pid, "VmRSS"), time.time(), time.time()
    while time.time() - since < quiet_s and time.time() - t0 < limit_s:
        time.sleep(0.05)
        now = status_kb(pid, "VmRSS")
        if now != last:
            last, since = now, time.time()
    return last


def attack(binary, commit, device, token, label, mode, extra, frame, total):
    """One server, one attack. mode: null, wrong, token (the attacker has it), hello (a huge
    PLAIN HELLO frame, never finished)."""
    args = [binary, "serve", device, "--bind", "tcp://127.0.0.1:*", "--token", token] + extra
    server = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    endpoint = server.stdout.readline().split()[-1]
    time.sleep(0.3)
    before, t0 = settled_rss_kb(server.pid, quiet_s=0.3), time.time()
    if mode == "hello":
        host, port = endpoint[len("tcp://"):].rsplit(":", 1)
        s, admitted = socket.create_connection((host, int(port)), timeout=5), False
        s.sendall(greeting(b"PLAIN") + frame_header(total + MIB, command=True))
        sent = send_frames_raw(s, total)
    else:
        password = {"null": None, "wrong": b"not-the-token", "token": token.encode()}[mode]
        s, admitted = zmtp_peer(endpoint, password)
        sent = send_frames(s, frame, total)
    seconds = time.time() - t0
    after = settled_rss_kb(server.pid)
    peak = status_kb(server.pid, "VmHWM")
    alive = server.poll() is None
    s.close()
    server.terminate()
    try:
        _, err = server.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        server.kill()
        _, err = server.communicate()
    lines = [line for line in err.splitlines() if line.strip()]
    return dict(server=label, commit=commit, attacker=mode, admitted_at_handshake=admitted,
                server_args=args[2:], sent_mib=round(sent / MIB, 1), attack_s=round(seconds, 2),
                rss_before_mb=round(before / 1024, 1), rss_after_mb=round(after / 1024, 1),
                rss_peak_mb=round(peak / 1024, 1), held_after_mb=round((after - before) / 1024, 1),
                peak_growth_mb=round((peak - before) / 1024, 1), server_alive=alive, server_log=lines[-4:])


def machine():
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
               platform.processor())
    mem = next(int(line.split()[1]) for line in open("/proc/meminfo") if line.startswith("MemTotal"))
    libc = " ".join(platform.libc_ver())
    try:
        zmq = subprocess.run(["pkg-config", "--modversion", "libzmq"], capture_output=True, text=True).stdout.strip()
    except OSError:
        zmq = "unknown"
    return dict(cpu=cpu, cores=os.cpu_count(), memory_gb=round(mem / 2**20, 1), kernel=platform.release(),
                libc=libc, libzmq=zmq, python=platform.python_version())


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pnn", required=True, help="the new pnn binary")
    ap.add_argument("--commit", default=None, help="the new binary's commit (default: git HEAD, +dirty)")
    ap.add_argument("--old-pnn", help="the pnn binary from before the fix")
    ap.add_argument("--old-commit", default="unknown")
    ap.add_argument("--device", default="sim:oscillator?n=40&nt=10&seed=1")
    ap.add_argument("--mib", type=int, default=300, help="MiB the attacker sends")
    ap.add_argument("--frame-kib", type=int, default=1024)
    ap.add_argument("--out", help="write the JSON here")
    args = ap.parse_args()
    commit = args.commit
    if commit is None:
        here = os.path.dirname(os.path.abspath(__file__))
        git = lambda *a: subprocess.run(["git", "-C", here, *a], capture_output=True, text=True).stdout.strip()
        commit = git("rev-parse", "--short", "HEAD") + (" + uncommitted changes" if git("status", "--porcelain") else "")
    frame, total, token = args.frame_kib * 1024, args.mib * MIB, "bench-token"
    runs = []
    plan = []
    if args.old_pnn:
        plan.append((args.old_pnn, args.old_commit, "old", "null", [], total))
    plan += [(args.pnn, commit, "new", "null", [], total), (args.pnn, commit, "new", "wrong", [], total),
             (args.pnn, commit, "new", "token", [], total),
             # past the default bound (604 MB for sim:oscillator?n=40 at the default --max-bytes)
             (args.pnn, commit, "new", "token", [], max(total, 800 * MIB)),
             (args.pnn, commit, "new", "token", ["--max-pending-bytes", str(64 * MIB)], total),
             (args.pnn, commit, "new", "hello", [], total),
             (args.pnn, commit, "new", "hello", ["--max-bytes", str(16 * MIB)], total)]
    for binary, c, label, mode, extra, amount in plan:
        run = attack(binary, c, args.device, token, label, mode, extra, frame, amount)
        runs.append(run)
        print(f"{label:4} {mode:6} {' '.join(extra):32} {amount // MIB:4} MiB: sent {run['sent_mib']:6.1f} MiB  RSS "
              f"{run['rss_before_mb']:6.1f} -> {run['rss_after_mb']:6.1f} MB (peak {run['rss_peak_mb']:6.1f})",
              flush=True)
    result = dict(benchmark="serve_memory_attack", date=datetime.date.today().isoformat(), machine=machine(),
                  device=args.device,
                  attack=dict(frame_bytes=frame, total_bytes=total, note="each run's sent_mib says what it sent",
                              what="raw ZMTP 3.0 DEALER; every frame has MORE; the message never ends"),
                  attackers=dict(null="no token: NULL handshake (all a pnn-device/1 client without PLAIN does)",
                                 wrong="PLAIN handshake with a wrong password",
                                 token="PLAIN handshake with the token",
                                 hello="no token: a PLAIN greeting, then a HELLO command frame of "
                                       "total + 1 MiB bytes, never finished (all a peer can send before the "
                                       "handshake)"),
                  runs=runs)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=1)
            f.write("\n")


if __name__ == "__main__":
    main()
