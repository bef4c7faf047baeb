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


def cmd_summary(path):
    """A Markdown table from the raw records (bench, tool, variant, JSON;
    tab-separated; "#" lines are comments)."""
    rec = {}
    with open(path) as f:
        for line in f:
            if line.startswith("#") or not line.strip():
                continue
            bench, tool, variant, data = line.rstrip("\n").split("\t", 3)
            rec.setdefault(bench, {}).setdefault(variant, {}).setdefault(tool, []).append(json.loads(data))
    rows = []
    for bench, shown in SUMMARY.items():
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
    else:
        sys.exit(f"analyse.py: unknown command {cmd}")


if __name__ == "__main__":
    main()
