#!/usr/bin/env python3
"""Turns what run.sh collected into numbers. Reads files, prints lines.

    analyse.py sink LOG SKIP           the session after the first SKIP in
                                       the sink's log: flights, messages
    analyse.py gaps LOG SKIP           pauses inside client flights over
                                       every session after the first SKIP
    analyse.py client STRACE PORT      client flights from an strace -f
                                       trace of one client run
    analyse.py syscalls STRACE_C       total calls from strace -c output,
                                       and the five most frequent
    analyse.py rss TIME_V              "Maximum resident set size" and the
                                       wall time from /usr/bin/time -v
    analyse.py hyperfine JSON          mean, stddev, median, min, max (ms)
    analyse.py summary RAW             the summary table from the raw
                                       results (tab-separated records)

For bench/tls.sh (issue 15):

    analyse.py proxy LOG SKIP SINKLOG SINKSKIP WALL_US...
                                       round trips per session as the
                                       delay proxy saw them, the sink's
                                       sequence, and the clients' wall times
    analyse.py slow STRACE_T           the slowest syscalls of an
                                       strace -f -tt -T -y trace, and time
                                       by syscall
    analyse.py certreads STRACE_T      trust-store files opened and bytes
                                       read from them
    analyse.py phases STRACE_T         where the time goes between exec,
                                       connect, each socket read/write and
                                       exit, with what ran in the big gaps
    analyse.py rates N BATCH_US...     messages per second per thousand
    analyse.py callgrind OUT           total instructions (Ir)
    analyse.py issue15 RAW             the issue-15 summary table

A flight is what the client sends between two waits for the server. Seen
from the sink: bursts with no server reply between them. Seen from the
client (strace): writes to the SMTP socket with no read from it between
them. Both views name each flight by the commands in it, e.g.
"MAIL RCPT DATA" or "<data> . QUIT".
"""

import json
import re
import statistics
import sys

# -- flights, from the sink's session log -----------------------------------


def describe(flights):
    """(total, mail..data, body flights, QUIT rides with ".", sequence)."""
    names = [" ".join(f) for f in flights]
    mail = next((i for i, f in enumerate(flights) if "MAIL" in f), None)
    data = next((i for i, f in enumerate(flights) if "DATA" in f), None)
    mail_to_data = data - mail + 1 if mail is not None and data is not None else 0
    body = sum(1 for f in flights if "<data>" in f)
    quit_rides = any("." in f and "QUIT" in f for f in flights)
    return {
        "flights": len(flights),
        "mail_to_data": mail_to_data,
        "body_flights": body,
        "quit_with_dot": "yes" if quit_rides else "no",
        "sequence": " | ".join(names),
    }


def cmd_sink(log, skip):
    with open(log) as f:
        sessions = [json.loads(line) for line in f if line.strip()]
    if len(sessions) <= skip:
        sys.exit(f"analyse.py: {log} has {len(sessions)} sessions, wanted more than {skip}")
    s = sessions[skip]
    flights = [f["items"] for f in s["flights"] if f["dir"] == "C"]
    out = describe(flights)
    out["recvs"] = sum(f["recvs"] for f in s["flights"] if f["dir"] == "C")
    out["gap_max_ms"] = round(max(f["gap_max"] for f in s["flights"] if f["dir"] == "C") / 1e6, 2)
    out["session_ms"] = round((s["t_end"] - s["t_start"]) / 1e6, 2)
    out["messages"] = s["messages"]
    print(json.dumps(out))


def cmd_gaps(log, skip):
    """Over every session after the first SKIP: how often the client paused
    inside a flight (bytes held back with no reply to wait for), and the
    session length as the sink saw it."""
    with open(log) as f:
        sessions = [json.loads(line) for line in f if line.strip()][skip:]
    gaps = [max(fl["gap_max"] for fl in s["flights"] if fl["dir"] == "C") / 1e6 for s in sessions]
    lengths = [(s["t_end"] - s["t_start"]) / 1e6 for s in sessions]
    print(
        json.dumps(
            {
                "sessions": len(sessions),
                "paused_over_30ms": sum(1 for g in gaps if g > 30),
                "gap_max_ms_median": round(statistics.median(gaps), 2),
                "gap_max_ms_max": round(max(gaps), 2),
                "session_ms_median": round(statistics.median(lengths), 2),
            }
        )
    )


# -- flights, from the client's side (strace) -------------------------------

LINE = re.compile(r"^(?:\[pid\s+)?(\d+)\]?\s+(.*)$")
CALL = re.compile(r"^(\w+)\((\d+)?(.*)\)\s+=\s+(-?\d+)")
WRITES = {"write", "writev", "sendto", "sendmsg", "send"}
READS = {"read", "readv", "recvfrom", "recvmsg", "recv"}


def strace_calls(path):
    """(name, first int arg, rest, return) per completed call, with
    <unfinished ...> / <... resumed> halves joined per process."""
    pending = {}
    with open(path, errors="replace") as f:
        for raw in f:
            m = LINE.match(raw.rstrip("\n"))
            pid, text = (m.group(1), m.group(2)) if m else ("", raw.rstrip("\n"))
            if text.endswith("<unfinished ...>"):
                pending[pid] = text[: -len("<unfinished ...>")].rstrip()
                continue
            r = re.match(r"^<\.\.\. \w+ resumed>\s?(.*)$", text)
            if r:
                text = pending.pop(pid, "") + r.group(1)
            c = CALL.match(text)
            if c:
                fd = int(c.group(2)) if c.group(2) else None
                yield c.group(1), fd, c.group(3), int(c.group(4))


STRING = re.compile(r'"((?:[^"\\]|\\.)*)"')
ESCAPES = {"r": "\r", "n": "\n", "t": "\t", "v": "\v", "f": "\f", '"': '"', "\\": "\\"}


def unescape(s):
    """Bytes of a string as strace printed it (C escapes, octal)."""
    out = bytearray()
    i = 0
    while i < len(s):
        c = s[i]
        if c != "\\":
            out += c.encode("latin-1", "replace")
            i += 1
            continue
        n = s[i + 1]
        if n in ESCAPES:
            out += ESCAPES[n].encode()
            i += 2
        elif n == "x":
            out.append(int(s[i + 2 : i + 4], 16))
            i += 4
        else:
            m = re.match(r"[0-7]{1,3}", s[i + 1 :])
            out.append(int(m.group(0), 8))
            i += 1 + len(m.group(0))
    return bytes(out)


class ClientStream:
    """What a client sends, read as the sink reads it: command lines
    until DATA, then data until the lone "."."""

    def __init__(self):
        self.buf = b""
        self.in_data = False

    def feed(self, data):
        items = []
        self.buf += data
        while True:
            if self.in_data:
                i = self.buf.find(b"\r\n.\r\n")
                if i < 0:
                    if len(self.buf) > 4:
                        items.append("<data>")
                        self.buf = self.buf[-4:]
                    return items
                if i > 0 or not self.buf.startswith(b"\r\n.\r\n"):
                    items.append("<data>")
                items.append(".")
                self.buf = self.buf[i + 5 :]
                self.in_data = False
            else:
                i = self.buf.find(b"\n")
                if i < 0:
                    return items
                line, self.buf = self.buf[:i], self.buf[i + 1 :]
                verb = line.split(b" ", 1)[0].split(b":", 1)[0].strip().upper().decode("ascii", "replace")
                items.append(verb)
                if verb == "DATA":
                    # As in the sink: the DATA line's CRLF starts the data.
                    self.in_data = True
                    self.buf = b"\r\n" + self.buf


def cmd_client(path, port):
    socks = set()
    flights = []  # each a list of items
    in_flight = False
    writes = reads = 0
    stream = ClientStream()
    for name, fd, rest, ret in strace_calls(path):
        if name == "connect" and f"htons({port})" in rest and "127.0.0.1" in rest:
            socks.add(fd)
        elif name in ("close", "shutdown") and fd in socks and name == "close":
            socks.discard(fd)
        elif fd in socks and name in WRITES and ret > 0:
            writes += 1
            payload = b"".join(unescape(m) for m in STRING.findall(rest))
            items = stream.feed(payload)
            if not in_flight:
                flights.append([])
                in_flight = True
            for it in items:
                if not flights[-1] or flights[-1][-1] != it:
                    flights[-1].append(it)
        elif fd in socks and name in READS and ret > 0:
            reads += 1
            in_flight = False
    out = describe(flights)
    out["socket_writes"] = writes
    out["socket_reads"] = reads
    print(json.dumps(out))


# -- strace -c, /usr/bin/time -v, hyperfine ---------------------------------


def cmd_syscalls(path):
    rows = []
    total = None
    with open(path) as f:
        for line in f:
            t = line.split()
            if not t or not re.match(r"^\d", t[0]):
                continue
            if t[-1] == "total":
                total = int(t[3])
                continue
            # % time, seconds, usecs/call, calls, [errors], syscall (the
            # total line has the same columns)
            rows.append((int(t[3]), t[-1]))
    rows.sort(reverse=True)
    top = ", ".join(f"{n} {c}" for c, n in rows[:5])
    print(json.dumps({"total": total, "distinct": len(rows), "top": top}))


def cmd_rss(path):
    rss = wall = None
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line.startswith("Maximum resident set size (kbytes):"):
                rss = int(line.rsplit(":", 1)[1])
            elif line.startswith("Elapsed (wall clock) time"):
                v = line.rsplit(" ", 1)[1]
                parts = [float(p) for p in v.split(":")]
                wall = sum(p * 60**i for i, p in enumerate(reversed(parts)))
    print(json.dumps({"rss_kb": rss, "wall_s": wall}))


def cmd_hyperfine(path):
    with open(path) as f:
        r = json.load(f)["results"][0]
    ms = [t * 1000 for t in r["times"]]
    print(
        json.dumps(
            {
                "runs": len(ms),
                "mean_ms": round(r["mean"] * 1000, 2),
                "stddev_ms": round((r["stddev"] or 0) * 1000, 2),
                "median_ms": round(statistics.median(ms), 2),
                "min_ms": round(min(ms), 2),
                "max_ms": round(max(ms), 2),
                # CPU time of the process (and the shell hyperfine runs
                # it from), as the kernel accounts it.
                "user_ms": round(r["user"] * 1000, 2),
                "system_ms": round(r["system"] * 1000, 2),
            }
        )
    )


# -- bench/tls.sh: round trips through the delay proxy -----------------------


def round_trips(seq):
    """Client flights that a server flight answered: the waits that cost
    a round trip each. A client flight with no answer (the final TLS
    close_notify, a QUIT whose reply came with the data's) costs none."""
    return sum(1 for a, b in zip(seq, seq[1:]) if a[0] == "C" and b[0] == "S")


def cmd_proxy(log, skip, sinklog, sinkskip, walls_us):
    with open(log) as f:
        rows = [json.loads(line) for line in f if line.strip()][skip:]
    with open(sinklog) as f:
        sink = [json.loads(line) for line in f if line.strip()][sinkskip:]
    rts = [round_trips(r["sequence"]) for r in rows]
    walls = [w / 1000 for w in walls_us]
    items = [f["items"] for f in sink[0]["flights"] if f["dir"] == "C"] if sink else []
    print(
        json.dumps(
            {
                "sessions": len(rows),
                "round_trips": statistics.median(rts),
                "round_trips_all": sorted(set(rts)),
                "client_flights": statistics.median(r["client_flights"] for r in rows),
                "proxy_ms_median": round(statistics.median(r["ms"] for r in rows), 1),
                "wall_ms_median": round(statistics.median(walls), 1),
                "wall_ms_min": round(min(walls), 1),
                "wall_ms_max": round(max(walls), 1),
                # The commands of each flight, as the sink read them (inside
                # TLS too); the handshake's flights are not in it.
                "sequence": " | ".join(" ".join(i) for i in items),
                "proxy_sequence": " ".join(f"{d}{n}@{t:.0f}" for d, n, t in rows[0]["sequence"]) if rows else "",
            }
        )
    )


# -- bench/tls.sh: strace -f -tt -T -y --------------------------------------

TIMED = re.compile(r"^(?:\[pid\s+)?(\d+)\]?\s+(\d+):(\d+):(\d+\.\d+)\s+(.*)$")
DURATION = re.compile(r"<(\d+\.\d+)>\s*$")


def timed_calls(path):
    """(pid, t seconds, name, text, return, duration) per completed call of
    an strace -f -tt -T trace; resumed halves keep the start time."""
    pending = {}
    with open(path, errors="replace") as f:
        for raw in f:
            m = TIMED.match(raw.rstrip("\n"))
            if not m:
                continue
            pid, text = m.group(1), m.group(5)
            t = int(m.group(2)) * 3600 + int(m.group(3)) * 60 + float(m.group(4))
            if text.endswith("<unfinished ...>"):
                pending[pid] = (t, text[: -len("<unfinished ...>")].rstrip())
                continue
            r = re.match(r"^<\.\.\. \w+ resumed>\s?(.*)$", text)
            if r:
                t, head = pending.pop(pid, (t, ""))
                text = head + r.group(1)
            c = re.match(r"^(\w+)\((.*)\)\s+=\s+(-?\d+|\?)", text)
            if not c:
                continue
            d = DURATION.search(text)
            ret = int(c.group(3)) if c.group(3) != "?" else 0
            yield pid, t, c.group(1), text, ret, float(d.group(1)) if d else 0.0


def cmd_slow(path):
    calls = list(timed_calls(path))
    by_name = {}
    for _, _, name, _, _, d in calls:
        n, total = by_name.get(name, (0, 0.0))
        by_name[name] = (n + 1, total + d)
    print("time inside syscalls, by syscall (ms, calls):")
    for name, (n, total) in sorted(by_name.items(), key=lambda kv: -kv[1][1])[:12]:
        print(f"  {total * 1000:8.2f}  {n:5d}  {name}")
    print("the 15 slowest calls (ms):")
    for _, _, name, text, _, d in sorted(calls, key=lambda c: -c[5])[:15]:
        print(f"  {d * 1000:8.2f}  {text[:150]}")


TRUST = ("ca-certificates", "/etc/ssl/certs", "/usr/lib/ssl", "/etc/ssl/openssl.cnf")


def cmd_certreads(path):
    opened = {}
    read_bytes = 0
    reads = 0
    for _, _, name, text, ret, _ in timed_calls(path):
        if name in ("openat", "open") and ret >= 0 and any(p in text for p in TRUST):
            f = STRING.findall(text)
            key = f[0] if f else text
            opened[key] = opened.get(key, 0) + 1
        elif name in READS and ret > 0:
            fdpath = re.match(r"^\w+\(\d+<([^>]*)>", text)
            if fdpath and any(p in fdpath.group(1) for p in TRUST):
                reads += 1
                read_bytes += ret
    print(
        json.dumps(
            {
                "trust_files_opened": sum(opened.values()),
                "bundle_opens": sum(n for p, n in opened.items() if p.endswith(".crt") or p.endswith(".pem")),
                "reads": reads,
                "bytes_read": read_bytes,
                "files": dict(sorted(opened.items(), key=lambda kv: -kv[1])[:6]),
            }
        )
    )


def cmd_phases(path):
    """The process's time line around its SMTP socket: from exec to the
    connect, each run of socket writes or reads, and the exit; the steps
    of 1 ms or more, each with the syscalls made in it (strace -yy names the
    files and sockets)."""
    calls = list(timed_calls(path))
    if not calls:
        print(json.dumps({}))
        return
    start, end = calls[0][1], calls[-1][1] + calls[-1][5]
    sock_fd = None
    events = []  # (t, label)
    for pid, t, name, text, ret, d in calls:
        m = re.match(r"^\w+\((\d+)<", text)
        if name == "connect" and "AF_INET" in text and sock_fd is None:
            sock_fd = m.group(1) if m else None
            events.append((t + d, "connect"))
        elif m and m.group(1) == sock_fd and ret > 0 and (name in WRITES or name in READS):
            kind = "write" if name in WRITES else "read"
            if events and events[-1][1].startswith(kind):
                events[-1] = (t + d, f"{kind} x{int(events[-1][1].split('x')[1]) + 1}")
            else:
                events.append((t + d, f"{kind} x1"))
    marks = [(start, "exec")] + events + [(end, "exit")]
    steps = []
    for (t0, a), (t1, b) in zip(marks, marks[1:]):
        between = [c for c in calls if t0 <= c[1] < t1]
        kinds = {}
        for c in between:
            kinds[c[2]] = kinds.get(c[2], 0) + 1
        steps.append(
            {
                "from": a,
                "to": b,
                "ms": round((t1 - t0) * 1000, 2),
                "syscalls": dict(sorted(kinds.items(), key=lambda kv: -kv[1])[:4]),
            }
        )
    big = [st for st in steps if st["ms"] >= 1.0]
    print(
        json.dumps(
            {
                "total_ms": round((end - start) * 1000, 2),
                "steps_under_1ms": len(steps) - len(big),
                "their_ms": round(sum(st["ms"] for st in steps if st["ms"] < 1.0), 2),
                "steps_over_1ms": big,
            }
        )
    )


def cmd_rates(n, batches_us):
    sizes = [1000] * (len(batches_us) - 1) + [n - 1000 * (len(batches_us) - 1)]
    rates = [size * 1e6 / us for size, us in zip(sizes, batches_us)]
    print(
        json.dumps(
            {
                "n": n,
                "total_s": round(sum(batches_us) / 1e6, 1),
                "first_1000_per_s": round(rates[0], 1),
                "last_1000_per_s": round(rates[-1], 1),
                "per_s_by_thousand": [round(r, 1) for r in rates],
            }
        )
    )


def cmd_callgrind(path):
    total = None
    with open(path) as f:
        for line in f:
            if line.startswith(("totals:", "summary:")):
                total = int(line.split()[1])
    print(json.dumps({"instructions": total}))


# -- the summary -------------------------------------------------------------


def _first(key):
    return lambda vs: str(vs[0][key])


def _span(key, scale=1.0, fmt="{:.1f}"):
    """Median of the runs, with (min–max) when they differ."""

    def cell(vs):
        xs = sorted(v[key] * scale for v in vs)
        mid = fmt.format(statistics.median(xs))
        if fmt.format(xs[0]) == fmt.format(xs[-1]):
            return mid
        return f"{mid} ({fmt.format(xs[0])}–{fmt.format(xs[-1])})"

    return cell


# bench: the rows shown for each of its variants, in order. A label
# without "{v}" is a detail of the row above it.
SUMMARY = {
    "memory": [
        ("peak RSS, {v} (MiB; median (min–max) of runs)", _span("rss_kb", 1 / 1024)),
        ("  wall time (s; median; busy machine)", _span("wall_s", 1, "{:.2f}")),
    ],
    "flights-client": [
        ("client flights per session, {v} (client's view: strace)", _first("flights")),
        ("  MAIL..DATA flights", _first("mail_to_data")),
        ("  QUIT rides with the end of data", _first("quit_with_dot")),
        ("  writes to the socket", _first("socket_writes")),
    ],
    "flights-sink": [
        ("client flights per session, {v} (sink's view)", _first("flights")),
        ("  MAIL..DATA flights", _first("mail_to_data")),
        ("  QUIT rides with the end of data", _first("quit_with_dot")),
    ],
    "syscalls": [
        ("syscalls per message, {v} message (strace -c)", _first("total")),
    ],
    "pauses": [
        (
            "sessions with a >30 ms pause inside one client flight, {v}",
            lambda vs: f"{vs[0]['paused_over_30ms']} of {vs[0]['sessions']}",
        ),
        ("  longest pause in a session, median (ms)", _first("gap_max_ms_median")),
        ("  session length at the sink, median (ms)", _first("session_ms_median")),
    ],
    "wall-hyperfine": [
        (
            "wall per message, {v} message (ms; hyperfine mean ± σ; busy machine)",
            lambda vs: f"{vs[0]['mean_ms']:.1f} ± {vs[0]['stddev_ms']:.1f}",
        ),
        (
            "  CPU per message, user + system (ms; hyperfine)",
            lambda vs: f"{vs[0]['user_ms']:.1f} + {vs[0]['system_ms']:.1f}",
        ),
    ],
    "wall-loop": [
        (
            "wall for {v} (s; plain loop; busy machine)",
            lambda vs: f"{vs[0]['total_s']:.2f} ({vs[0]['per_msg_ms']:.1f} ms/msg)",
        ),
    ],
    "delivered": [
        ("messages the sink received intact, {v}", _first("ok")),
    ],
}
TOOLS = ("smtpsend", "msmtp")


def _ms(v):
    return f"{v:,.1f}" if v < 100 else f"{v:,.0f}"


# bench/tls.sh's rows (issue 15's six figures).
ISSUE15 = {
    "rtt": [
        ("round trips, {v} (20 ms proxy)", _first("round_trips")),
        ("  wall time behind the proxy (ms; median)", lambda vs: _ms(vs[0]["wall_ms_median"])),
        ("  commands per flight (sink's view)", _first("sequence")),
    ],
    "wall": [
        (
            "2 KB send, {v} (ms; hyperfine median, mean ± σ)",
            lambda vs: f"{_ms(vs[0]['median_ms'])} ({vs[0]['mean_ms']:.1f} ± {vs[0]['stddev_ms']:.1f})",
        ),
        (
            "  CPU, user + system (ms)",
            lambda vs: f"{vs[0]['user_ms']:.1f} + {vs[0]['system_ms']:.1f}",
        ),
    ],
    "syscalls": [("syscalls, {v} send (strace -c)", _first("total"))],
    "trust-store": [
        ("trust-store files opened, {v} send", _first("trust_files_opened")),
        ("  bytes read from them", _first("bytes_read")),
    ],
    "queue-run": [
        ("queue run / loop: {v} (s)", lambda vs: f"{vs[0]['run_ms'] / 1000:.2f}"),
        ("  delivered intact", _first("delivered_intact")),
    ],
    "rcpts": [
        (
            "-t, {v} (s; peak RSS MiB)",
            lambda vs: (
                f"{vs[0]['rss']['wall_s']:.2f} s, {vs[0]['rss']['rss_kb'] / 1024:.0f} MiB"
                if "rss" in vs[0]
                else vs[0].get("failed", "failed")[:40]
            ),
        ),
        ("  recipients on the wire", lambda vs: str(vs[0].get("rcpts_sent", "–"))),
    ],
    "spool": [
        ("queueing {v}: total (s)", _first("total_s")),
        ("  first thousand (msg/s)", _first("first_1000_per_s")),
        ("  last thousand (msg/s)", _first("last_1000_per_s")),
    ],
    "submission": [("syscalls of one submission, {v} (strace -c)", lambda vs: f"{vs[0]['total']:,} ({vs[0]['top']})")],
    "list": [
        (
            "{v} (s; peak RSS MiB)",
            lambda vs: f"{vs[0]['rss']['wall_s']:.2f} s, {vs[0]['rss']['rss_kb'] / 1024:.1f} MiB",
        )
    ],
    "instructions": [
        ("instructions, {v} (callgrind, millions)", lambda vs: f"{vs[0]['instructions'] / 1e6:.1f}")
    ],
}


def cmd_summary(path, summary=None):
    """A Markdown table from the raw records (bench, tool, variant, JSON;
    tab-separated; "#" lines are comments)."""
    summary = summary or SUMMARY
    rec = {}
    with open(path) as f:
        for line in f:
            if line.startswith("#") or not line.strip():
                continue
            bench, tool, variant, data = line.rstrip("\n").split("\t", 3)
            rec.setdefault(bench, {}).setdefault(variant, {}).setdefault(tool, []).append(json.loads(data))
    rows = []
    for bench, shown in summary.items():
        for variant, by_tool in rec.get(bench, {}).items():
            for label, cell in shown:
                cells = [cell(by_tool[t]) if t in by_tool else "–" for t in TOOLS]
                rows.append([label.format(v=variant).replace("  ", "↳ ", 1)] + cells)
    header = ["", *TOOLS]
    widths = [max(len(r[i]) for r in rows + [header]) for i in range(len(header))]
    print("| " + " | ".join(h.ljust(w) for h, w in zip(header, widths)) + " |")
    print("|" + "|".join("-" * (w + 1) + ":" if i else "-" * (w + 2) for i, w in enumerate(widths)) + "|")
    for r in rows:
        print("| " + " | ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))) + " |")


def main():
    cmd, *args = sys.argv[1:]
    if cmd == "sink":
        cmd_sink(args[0], int(args[1]))
    elif cmd == "gaps":
        cmd_gaps(args[0], int(args[1]))
    elif cmd == "client":
        cmd_client(args[0], int(args[1]))
    elif cmd == "syscalls":
        cmd_syscalls(args[0])
    elif cmd == "rss":
        cmd_rss(args[0])
    elif cmd == "hyperfine":
        cmd_hyperfine(args[0])
    elif cmd == "summary":
        cmd_summary(args[0])
    elif cmd == "issue15":
        cmd_summary(args[0], ISSUE15)
    elif cmd == "proxy":
        cmd_proxy(args[0], int(args[1]), args[2], int(args[3]), [int(w) for w in args[4:]])
    elif cmd == "slow":
        cmd_slow(args[0])
    elif cmd == "certreads":
        cmd_certreads(args[0])
    elif cmd == "phases":
        cmd_phases(args[0])
    elif cmd == "rates":
        cmd_rates(int(args[0]), [int(b) for b in args[1:]])
    elif cmd == "callgrind":
        cmd_callgrind(args[0])
    else:
        sys.exit(f"analyse.py: unknown command {cmd}")


if __name__ == "__main__":
    main()
