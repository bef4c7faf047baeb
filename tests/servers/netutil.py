#!/usr/bin/env python3
"""Small network helpers for up.sh: choosing free ports, waiting for greetings.

    netutil.py free-ports N
        Prints N distinct TCP ports on 127.0.0.1 that nothing listens on, one
        per line. They are drawn at random from below the kernel's ephemeral
        range (ip_local_port_range), so an outgoing connection made by some
        other test cannot be holding one of them when our server binds it.
        Two up.sh runs at once are kept apart by up.sh's lock file, not here.

    netutil.py wait TIMEOUT SPEC...
        Waits until every SPEC answers with a 220 greeting, or TIMEOUT seconds
        pass. SPEC is NAME=tcp:PORT, NAME=tls:PORT:CAFILE (implicit TLS,
        verified against CAFILE for the name "localhost") or NAME=unix:PATH.
        Exits 0 when all answered; otherwise prints which did not and exits 1.
        A greeting that is not 220 also counts as failure (at once: a server
        that says 421/554 will not change its mind).
"""

import random
import socket
import ssl
import sys
import time

HOST = "127.0.0.1"
# One connection attempt must not eat the whole budget.
CONNECT_TIMEOUT = 2.0


def ephemeral_low() -> int:
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def port_is_free(port: int) -> bool:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        # No SO_REUSEADDR: a port in TIME_WAIT is skipped too, which errs on
        # the side of a port that Postfix (which does set it) can surely bind.
        s.bind((HOST, port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def free_ports(n: int) -> list:
    hi = ephemeral_low() - 1
    lo = max(10000, hi - 20000)
    candidates = list(range(lo, hi + 1))
    random.SystemRandom().shuffle(candidates)
    chosen = []
    for port in candidates:
        if port_is_free(port):
            chosen.append(port)
            if len(chosen) == n:
                return chosen
    raise SystemExit(f"netutil: could not find {n} free ports in {lo}-{hi}")


def read_greeting(sock) -> bytes:
    """Reads a whole (possibly multi-line) greeting; returns the last line."""
    buf = b""
    while True:
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError(f"closed after {buf!r}")
        buf += chunk
        lines = buf.split(b"\r\n")
        for line in lines[:-1]:
            if len(line) < 4 or line[3:4] != b"-":
                return line
        if len(buf) > 65536:
            raise ConnectionError("greeting too long")


def probe(spec: str) -> str:
    """Returns "" if SPEC answered 220, else a reason. Raises OSError if not up yet."""
    kind, _, rest = spec.partition(":")
    if kind == "unix":
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(CONNECT_TIMEOUT)
        sock.connect(rest)
    elif kind == "tcp":
        sock = socket.create_connection((HOST, int(rest)), timeout=CONNECT_TIMEOUT)
    elif kind == "tls":
        port, _, cafile = rest.partition(":")
        ctx = ssl.create_default_context(cafile=cafile)
        raw = socket.create_connection((HOST, int(port)), timeout=CONNECT_TIMEOUT)
        sock = ctx.wrap_socket(raw, server_hostname="localhost")
    else:
        raise SystemExit(f"netutil: bad spec {spec!r}")
    with sock:
        line = read_greeting(sock)
        try:
            sock.sendall(b"QUIT\r\n")
        except OSError:
            pass
    if line.startswith(b"220"):
        return ""
    return f"greeting {line!r}"


def wait(timeout: float, specs: list) -> int:
    deadline = time.monotonic() + timeout
    pending = dict(s.split("=", 1) for s in specs)
    last_error = {}
    while pending:
        for name, spec in list(pending.items()):
            try:
                reason = probe(spec)
            except (OSError, ConnectionError) as e:
                last_error[name] = str(e)
                continue
            if reason:
                print(f"netutil: {name} ({spec}) answered with {reason}", file=sys.stderr)
                return 1
            del pending[name]
        if not pending:
            break
        if time.monotonic() > deadline:
            for name, spec in pending.items():
                print(f"netutil: {name} ({spec}) not answering after {timeout:.0f} s: "
                      f"{last_error.get(name, '?')}", file=sys.stderr)
            return 1
        time.sleep(0.05)
    return 0


def main(argv: list) -> int:
    if len(argv) >= 2 and argv[0] == "free-ports":
        print("\n".join(str(p) for p in free_ports(int(argv[1]))))
        return 0
    if len(argv) >= 3 and argv[0] == "wait":
        return wait(float(argv[1]), argv[2:])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
