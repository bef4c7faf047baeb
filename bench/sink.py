#!/usr/bin/env python3
"""A discarding SMTP sink for the benchmarks, on 127.0.0.1 only.

It accepts every message, keeps none of it, and writes one JSON line per
session to --log: the client's "flights" and a SHA-256 of each message as
it arrived on the wire (dot-stuffed, CRLF, without the final ".").

A flight is every byte the client sent between two writes of the server:
consecutive recv() bursts with no server reply between them are one
flight. The server answers at the end of each recv() burst, after
handling every complete line in it, as a pipelining server does
(RFC 2920 section 3.2), so a client that waits for a reply starts a new
flight and a client that pipelines does not. With --settle-ms the server
waits until the client has been quiet that long before it answers, so a
client that makes several writes without waiting for a reply (msmtp
writes each pipelined command, and each message line, separately) is
seen as one flight however the scheduler spaced the writes.

Plain asyncio rather than aiosmtpd: aiosmtpd reads through a StreamReader,
which hides where one recv() ends and the next begins, and that boundary is
what this sink is for.

    sink.py --port-file FILE --log FILE [--no-pipelining] [--settle-ms MS]

The port is chosen by the kernel (port 0) and written to --port-file once
the socket listens. SIGTERM or SIGINT stops it; so does the `timeout` that
run.sh starts it under.
"""

import argparse
import asyncio
import hashlib
import json
import os
import signal
import time

# Every buffer has a limit: a command line longer than this is refused
# and the connection closed (RFC 5321 section 4.5.3.1.4 allows 512).
MAX_LINE = 4096
# Advertised and enforced: large enough for the 100 MB benchmark message.
MAX_SIZE = 256 * 1024 * 1024
# A session that says nothing for this long is dropped.
IDLE_TIMEOUT = 120
END_OF_DATA = b"\r\n.\r\n"


class Session(asyncio.Protocol):
    """One SMTP connection: command mode until 354, data mode until the
    lone ".", and a record of who sent what when."""

    def __init__(self, server):
        self.server = server
        self.buf = b""
        self.in_data = False
        # [{"dir", "recvs", "bytes", "items", "t0", "t1", "gap_max"}], ns
        self.flights = []
        self.messages = []  # [{"bytes", "sha256"}]
        self.out = []  # replies queued during this recv burst
        self.closing = False  # close once this burst's replies are out
        self.settle_timer = None
        self.idle = None

    # -- record keeping ----------------------------------------------------

    def _note(self, direction, nbytes, items):
        now = time.monotonic_ns()
        if self.flights and self.flights[-1]["dir"] == direction:
            f = self.flights[-1]
            f["recvs"] += 1
            f["bytes"] += nbytes
            # The longest pause inside one flight: the client (or its
            # kernel) holding bytes back without waiting for a reply.
            f["gap_max"] = max(f["gap_max"], now - f["t1"])
            f["t1"] = now
            for it in items:
                if not f["items"] or f["items"][-1] != it:
                    f["items"].append(it)
        else:
            self.flights.append(
                {
                    "dir": direction,
                    "recvs": 1,
                    "bytes": nbytes,
                    "items": list(items),
                    "t0": now,
                    "t1": now,
                    "gap_max": 0,
                }
            )

    # -- asyncio -----------------------------------------------------------

    def connection_made(self, transport):
        self.transport = transport
        self.t_start = time.monotonic_ns()
        self._arm_idle()
        self.reply(b"220 sink.bench ESMTP discard sink")
        self.flush()

    def _arm_idle(self):
        loop = asyncio.get_running_loop()
        if self.idle:
            self.idle.cancel()
        self.idle = loop.call_later(IDLE_TIMEOUT, self.transport.close)

    def data_received(self, data):
        self._arm_idle()
        items = []
        rest = data
        while rest and not self.closing:
            if self.in_data:
                rest = self._feed_data(rest, items)
                if rest is None:
                    break
            else:
                rest = self._feed_command(rest, items)
        # The burst is recorded before the replies it caused.
        self._note("C", len(data), items)
        if self.server.settle:
            # Answer only once the client has been quiet for a while, so
            # that writes it made without waiting count as one flight
            # however the scheduler spaced them.
            if self.settle_timer:
                self.settle_timer.cancel()
            loop = asyncio.get_running_loop()
            self.settle_timer = loop.call_later(self.server.settle, self.answer)
        else:
            self.answer()

    def answer(self):
        self.settle_timer = None
        self.flush()
        if self.closing:
            self.transport.close()

    def connection_lost(self, exc):
        self.idle.cancel()
        if self.settle_timer:
            self.settle_timer.cancel()
        self.server.record(
            {
                "pipelining": self.server.pipelining,
                "t_start": self.t_start,
                "t_end": time.monotonic_ns(),
                "flights": self.flights,
                "messages": self.messages,
            }
        )

    # -- replies -----------------------------------------------------------

    def reply(self, line):
        self.out.append(line + b"\r\n")

    def flush(self):
        if self.out:
            payload = b"".join(self.out)
            self.out = []
            # The code of each reply's last line ("250-" lines continue).
            finals = [
                ln[:3].decode()
                for ln in payload.split(b"\r\n")
                if ln[:3].isdigit() and ln[3:4] != b"-"
            ]
            self.transport.write(payload)
            self._note("S", len(payload), finals)

    # -- command mode ------------------------------------------------------

    def _feed_command(self, data, items):
        self.buf += data
        while not self.in_data and not self.closing:
            i = self.buf.find(b"\n")
            if i < 0:
                if len(self.buf) > MAX_LINE:
                    self.reply(b"500 line too long")
                    self.closing = True
                return b""
            line, self.buf = self.buf[:i].rstrip(b"\r"), self.buf[i + 1 :]
            self._command(line, items)
        rest, self.buf = self.buf, b""
        return rest

    def _command(self, line, items):
        verb = line.split(b" ", 1)[0].split(b":", 1)[0].upper().decode("ascii", "replace")
        items.append(verb)
        if verb == "EHLO":
            ext = [b"250-sink.bench", b"250-SIZE %d" % MAX_SIZE, b"250-8BITMIME"]
            if self.server.pipelining:
                ext.append(b"250-PIPELINING")
            ext.append(b"250 ENHANCEDSTATUSCODES")
            for e in ext:
                self.reply(e)
        elif verb == "HELO":
            self.reply(b"250 sink.bench")
        elif verb in ("MAIL", "RCPT", "RSET", "NOOP"):
            self.reply(b"250 2.0.0 ok")
        elif verb == "DATA":
            self.reply(b"354 end with <CRLF>.<CRLF>")
            self.in_data = True
            # The CRLF that ends the DATA line also starts the first data
            # line, so an empty message (".\r\n" at once) is found too.
            self.dtail = b"\r\n"
            self.dskip = 2
            self.dsize = 0
            self.dhash = hashlib.sha256()
        elif verb == "QUIT":
            self.reply(b"221 2.0.0 bye")
            self.closing = True
        else:
            self.reply(b"502 5.5.1 not implemented")

    # -- data mode ---------------------------------------------------------

    def _take(self, chunk):
        if self.dskip:
            cut = min(self.dskip, len(chunk))
            chunk = chunk[cut:]
            self.dskip -= cut
        self.dsize += len(chunk)
        self.dhash.update(chunk)

    def _feed_data(self, data, items):
        if not items or items[-1] != "<data>":
            items.append("<data>")
        buf = self.dtail + data
        i = buf.find(END_OF_DATA)
        if i < 0:
            keep = len(END_OF_DATA) - 1
            self._take(buf[:-keep])
            self.dtail = buf[-keep:]
            if self.dsize > MAX_SIZE:
                self.reply(b"552 5.3.4 message too big")
                self.closing = True
            return None
        self._take(buf[: i + 2])
        self.in_data = False
        items.append(".")
        self.messages.append({"bytes": self.dsize, "sha256": self.dhash.hexdigest()})
        self.server.accepted += 1
        self.reply(b"250 2.0.0 ok: discarded")
        return buf[i + len(END_OF_DATA) :]


class Server:
    def __init__(self, pipelining, settle, log_path):
        self.pipelining = pipelining
        self.settle = settle
        self.log = open(log_path, "a", buffering=1)
        self.accepted = 0

    def record(self, session):
        self.log.write(json.dumps(session) + "\n")


async def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--log", required=True)
    ap.add_argument("--pipelining", action=argparse.BooleanOptionalAction, default=True)
    ap.add_argument(
        "--settle-ms",
        type=float,
        default=0,
        help="answer a burst only after the client has been quiet this long",
    )
    args = ap.parse_args()

    server = Server(args.pipelining, args.settle_ms / 1000, args.log)
    loop = asyncio.get_running_loop()
    srv = await loop.create_server(lambda: Session(server), "127.0.0.1", 0)
    port = srv.sockets[0].getsockname()[1]
    tmp = args.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write(f"{port}\n")
    os.replace(tmp, args.port_file)

    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with srv:
        await stop.wait()


if __name__ == "__main__":
    asyncio.run(main())
