#!/usr/bin/env python3
"""A capturing SMTP server built on aiosmtpd, a second real server beside Postfix.

Postfix rewrites what it delivers (adds Received:, Return-Path:, may fix
headers); this server keeps the bytes exactly as the client sent them after
dot-unstuffing (aiosmtpd's `envelope.original_content`), so tests can assert
on the wire form of the message body.

    aiosmtpd_capture.py --port P --tls-port Q --cert C --key K --out DIR
                        [--user U --password W]

  --port      plain SMTP with STARTTLS offered (not required)
  --tls-port  implicit TLS (SMTPS)
  AUTH PLAIN/LOGIN is offered after TLS when --user is given (aiosmtpd's own
  SASL implementation, independent of Dovecot's).

One file per message in DIR, named <ns-timestamp>-<seq>.eml, written to a
temporary name and renamed, so a reader never sees half a file:

    MAIL FROM:<sender> [params...]
    RCPT TO:<rcpt>                      (one line per accepted recipient)
    X-EHLO: <the name the client gave>  (HELO/EHLO/LHLO argument)
    X-Greeting-Verb: EHLO|HELO
    X-TLS: no | <protocol> <cipher>
    X-Auth: <user>                      (only when the client authenticated)
    <empty line>
    <the raw message bytes, as received, CRLF line ends kept>

The envelope block is UTF-8 with "\\n" line ends; split the file at the first
b"\\n\\n" to get the raw data.
"""

import argparse
import asyncio
import os
import signal
import ssl
import sys
import time

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

MAX_MESSAGE = 10 * 1024 * 1024  # same SIZE limit as the Postfix ports


class Capture:
    def __init__(self, outdir: str):
        self.outdir = outdir
        self.seq = 0

    async def handle_DATA(self, server, session, envelope):
        self.seq += 1
        lines = ["MAIL FROM:<%s>%s" % (envelope.mail_from,
                                        "".join(" " + o for o in envelope.mail_options))]
        # aiosmtpd refuses every RCPT parameter (it has no DSN), so there are
        # none to record.
        for rcpt in envelope.rcpt_tos:
            lines.append("RCPT TO:<%s>" % rcpt)
        lines.append("X-EHLO: %s" % (session.host_name or ""))
        lines.append("X-Greeting-Verb: %s" % ("EHLO" if session.extended_smtp else "HELO"))
        # The ssl_object is there for STARTTLS and implicit TLS alike; aiosmtpd's
        # own session.ssl is only set after STARTTLS.
        tls = server.transport.get_extra_info("ssl_object") if server.transport else None
        if tls is not None:
            lines.append("X-TLS: %s %s" % (tls.version(), (tls.cipher() or ("",))[0]))
        else:
            lines.append("X-TLS: no")
        if session.authenticated:
            lines.append("X-Auth: %s" % _auth_name(session.auth_data))
        head = ("\n".join(lines) + "\n\n").encode("utf-8", "surrogateescape")
        data = envelope.original_content or b""
        name = "%d-%04d.eml" % (time.time_ns(), self.seq)
        tmp = os.path.join(self.outdir, "." + name + ".tmp")
        with open(tmp, "wb") as f:
            f.write(head)
            f.write(data)
        os.rename(tmp, os.path.join(self.outdir, name))
        return "250 2.0.0 OK captured as %s" % name


def _auth_name(auth_data) -> str:
    if isinstance(auth_data, LoginPassword):
        return auth_data.login.decode("utf-8", "replace")
    return str(auth_data)


def make_authenticator(user: str, password: str):
    def authenticator(server, session, envelope, mechanism, auth_data):
        if isinstance(auth_data, LoginPassword):
            ok = (auth_data.login == user.encode("utf-8")
                  and auth_data.password == password.encode("utf-8"))
            return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)
        return AuthResult(success=False, handled=False)
    return authenticator


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--tls-port", type=int, required=True)
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--user")
    ap.add_argument("--password")
    args = ap.parse_args()

    os.makedirs(args.out, exist_ok=True)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(args.cert, args.key)
    handler = Capture(args.out)

    def factory(implicit: bool):
        kwargs = dict(
            hostname="localhost",
            ident="smtpsend-test aiosmtpd",
            data_size_limit=MAX_MESSAGE,
            enable_SMTPUTF8=True,
            decode_data=False,
            # STARTTLS needs tls_context; on the implicit-TLS port the
            # connection is already encrypted, so none is given there.
            tls_context=None if implicit else ctx,
            require_starttls=False,
            timeout=60,
        )
        if args.user:
            kwargs["authenticator"] = make_authenticator(args.user, args.password or "")
            # aiosmtpd only counts STARTTLS as TLS; on the implicit-TLS port
            # the whole connection is encrypted, so do not ask for more.
            kwargs["auth_require_tls"] = not implicit
        return lambda: SMTP(handler, **kwargs)

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    servers = [
        loop.run_until_complete(loop.create_server(factory(False), args.host, args.port)),
        loop.run_until_complete(loop.create_server(factory(True), args.host, args.tls_port, ssl=ctx)),
    ]
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, loop.stop)
    print(f"aiosmtpd capture listening on {args.host}:{args.port} (STARTTLS) "
          f"and :{args.tls_port} (implicit TLS), writing to {args.out}", flush=True)
    try:
        loop.run_forever()
    finally:
        for s in servers:
            s.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
