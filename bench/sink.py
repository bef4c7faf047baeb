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
            [--chunking] [--starttls CERT KEY] [--auth]

--chunking offers CHUNKING and takes BDAT (RFC 3030); the hash of a BDAT
message is taken over its dot-stuffed form, so it is the same as the one
DATA would give. --starttls offers STARTTLS (RFC 3207) with that
certificate; --auth offers AUTH PLAIN LOGIN (RFC 4954) after STARTTLS (or
at once without --starttls) and accepts any user and password. Each
message's log entry also counts its recipients.

The port is chosen by the kernel (port 0) and written to --port-file once
the socket listens. SIGTERM or SIGINT stops it; so does the `timeout` that
run.sh starts it under.
"""

import argparse
import asyncio
import base64
import hashlib
import json
import os
import signal
import ssl
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
        self.tls = False
        self.authed = False
        self.auth_login = None  # the LOGIN exchange's next prompt
        self.rcpts = 0
        self.bdat_left = 0  # bytes of the current BDAT chunk still to come
        self.bdat_last = False
        self.bdat_fresh = True  # the next BDAT starts a new message
        self.dhash = None
        self.upgrading = False
        self.early = b""  # bytes read inside TLS before the upgrade finished

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
        if self.upgrading:
            # The first bytes inside TLS can come before start_tls() has
            # returned the new transport: hold them until it has.
            self.early += data
            return
        self._arm_idle()
        items = []
        rest = data
        while rest and not self.closing and not self.upgrading:
            if self.bdat_left:
                rest = self._feed_bdat(rest, items)
            elif self.in_data:
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
                "tls": self.tls,
                "authed": self.authed,
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
        while not self.in_data and not self.closing and not self.bdat_left and not self.upgrading:
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
        if self.auth_login is not None:
            self._auth_step(line)
        elif verb == "EHLO":
            ext = [b"250-sink.bench", b"250-SIZE %d" % MAX_SIZE, b"250-8BITMIME"]
            if self.server.pipelining:
                ext.append(b"250-PIPELINING")
            if self.server.chunking:
                ext.append(b"250-CHUNKING")
            if self.server.ssl and not self.tls:
                ext.append(b"250-STARTTLS")
            elif self.server.auth:
                ext.append(b"250-AUTH PLAIN LOGIN")
            ext.append(b"250 ENHANCEDSTATUSCODES")
            for e in ext:
                self.reply(e)
        elif verb == "STARTTLS" and self.server.ssl and not self.tls:
            self.reply(b"220 2.0.0 ready to start TLS")
            # Bytes the client sent after STARTTLS are discarded (the
            # CVE-2011-0411 rule); the handshake starts on a clean stream.
            self.buf = b""
            self.upgrading = True
            asyncio.get_running_loop().create_task(self._upgrade())
        elif verb == "AUTH" and self.server.auth:
            parts = line.split()
            mech = parts[1].upper() if len(parts) > 1 else b""
            if mech == b"PLAIN" and len(parts) > 2:
                self._authed()
            elif mech == b"PLAIN":
                self.auth_login = "plain"
                self.reply(b"334 ")
            elif mech == b"LOGIN":
                self.auth_login = "user"
                self.reply(b"334 " + base64.b64encode(b"Username:"))
            else:
                self.reply(b"504 5.5.4 mechanism not supported")
        elif verb == "BDAT" and self.server.chunking:
            parts = line.split()
            try:
                size = int(parts[1])
            except (IndexError, ValueError):
                self.reply(b"501 5.5.4 BDAT size")
                return
            if self.dhash is None or self.bdat_fresh:
                self._start_message()
                self.bdat_fresh = False
            self.bdat_last = len(parts) > 2 and parts[2].upper() == b"LAST"
            self.bdat_left = size
            if size == 0:
                self._end_bdat(items)
        elif verb == "HELO":
            self.reply(b"250 sink.bench")
        elif verb == "MAIL":
            self.rcpts = 0
            self.bdat_fresh = True
            self.reply(b"250 2.0.0 ok")
        elif verb == "RCPT":
            self.rcpts += 1
            self.reply(b"250 2.0.0 ok")
        elif verb in ("RSET", "NOOP"):
            self.reply(b"250 2.0.0 ok")
        elif verb == "DATA":
            self.reply(b"354 end with <CRLF>.<CRLF>")
            self.in_data = True
            # The CRLF that ends the DATA line also starts the first data
            # line, so an empty message (".\r\n" at once) is found too.
            self.dtail = b"\r\n"
            self.dskip = 2
            self._start_message()
        elif verb == "QUIT":
            self.reply(b"221 2.0.0 bye")
            self.closing = True
        else:
            self.reply(b"502 5.5.1 not implemented")

    # -- STARTTLS and AUTH -------------------------------------------------

    async def _upgrade(self):
        loop = asyncio.get_running_loop()
        self.flush()
        try:
            self.transport = await loop.start_tls(
                self.transport, self, self.server.ssl, server_side=True
            )
        except (OSError, ssl.SSLError, ConnectionError):
            self.transport.close()
            return
        self.tls = True
        self.upgrading = False
        early, self.early = self.early, b""
        if early:
            self.data_received(early)

    def _authed(self):
        self.auth_login = None
        self.authed = True
        self.reply(b"235 2.7.0 authenticated")

    def _auth_step(self, line):
        if line == b"*":
            self.auth_login = None
            self.reply(b"501 5.7.0 cancelled")
        elif self.auth_login == "user":
            self.auth_login = "pass"
            self.reply(b"334 " + base64.b64encode(b"Password:"))
        else:
            self._authed()

    # -- BDAT ---------------------------------------------------------------

    def _start_message(self):
        self.dsize = 0
        self.dhash = hashlib.sha256()
        self.bol = True  # BDAT: at the start of a line, for dot-stuffing

    def _feed_bdat(self, data, items):
        if not items or items[-1] != "<data>":
            items.append("<data>")
        take, rest = data[: self.bdat_left], data[self.bdat_left :]
        self.bdat_left -= len(take)
        # Hashed dot-stuffed, as DATA would have carried it.
        stuffed = take.replace(b"\n.", b"\n..")
        if self.bol and take.startswith(b"."):
            stuffed = b"." + stuffed
        if take:
            self.bol = take.endswith(b"\n")
        self.dsize += len(stuffed)
        self.dhash.update(stuffed)
        if self.dsize > MAX_SIZE:
            self.reply(b"552 5.3.4 message too big")
            self.closing = True
            return b""
        if self.bdat_left == 0:
            self._end_bdat(items)
        return rest

    def _end_bdat(self, items):
        if self.bdat_last:
            items.append("LAST")
            self._accept()
            self.dhash = None
        else:
            self.reply(b"250 2.0.0 chunk ok")

    def _accept(self):
        self.messages.append(
            {"bytes": self.dsize, "sha256": self.dhash.hexdigest(), "rcpts": self.rcpts}
        )
        self.server.accepted += 1
        self.reply(b"250 2.0.0 ok: discarded")

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
        self._accept()
        return buf[i + len(END_OF_DATA) :]


class Server:
    def __init__(self, pipelining, settle, log_path, chunking=False, ssl_ctx=None, auth=False):
        self.pipelining = pipelining
        self.chunking = chunking
        self.ssl = ssl_ctx
        self.auth = auth
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
    ap.add_argument("--chunking", action="store_true", help="offer CHUNKING, take BDAT")
    ap.add_argument("--starttls", nargs=2, metavar=("CERT", "KEY"), help="offer STARTTLS")
    ap.add_argument("--auth", action="store_true", help="offer AUTH PLAIN LOGIN, accept anyone")
    args = ap.parse_args()

    ctx = None
    if args.starttls:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(*args.starttls)
    server = Server(
        args.pipelining, args.settle_ms / 1000, args.log, args.chunking, ctx, args.auth
    )
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
    # A second signal while the loop closes would hit a closed wakeup fd.
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.remove_signal_handler(sig)
        signal.signal(sig, signal.SIG_IGN)


if __name__ == "__main__":
    asyncio.run(main())
