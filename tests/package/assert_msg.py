#!/usr/bin/env python3
"""Checks one message captured by capture.py; prints what is wrong and
exits 1, or exits 0.

    assert_msg.py FILE [--mail-from ADDR] [--rcpt ADDR ...] [--no-header NAME ...]
                       [--line TEXT ...] [--header NAME:SUBSTRING ...]

--rcpt        the exact set of envelope recipients (repeat for each)
--no-header   a header that must not be in the message (Bcc)
--line        a body line that must be there exactly, bytes as UTF-8
              (8-bit text, ".", "..": proof that nothing was mangled)
--header      a header whose value must contain SUBSTRING
"""

import argparse
import sys


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("file")
    ap.add_argument("--mail-from")
    ap.add_argument("--rcpt", action="append", default=[])
    ap.add_argument("--no-header", action="append", default=[])
    ap.add_argument("--line", action="append", default=[])
    ap.add_argument("--header", action="append", default=[])
    a = ap.parse_args()

    raw = open(a.file, "rb").read()
    env, _, data = raw.partition(b"\n\n")
    env = env.decode().splitlines()
    mail_from = env[0][len("MAIL FROM:<"):-1]
    rcpts = sorted(l[len("RCPT TO:<"):-1] for l in env[1:])
    head, _, body = data.partition(b"\r\n\r\n")
    headers = {}
    name = None
    for l in head.split(b"\r\n"):
        if l[:1] in (b" ", b"\t") and name:
            headers[name] += b" " + l.strip()
        elif b":" in l:
            name, _, v = l.partition(b":")
            name = name.decode(errors="replace").lower()
            headers.setdefault(name, b"")
            headers[name] = v.strip()
    lines = body.split(b"\r\n")

    errors = []
    if a.mail_from is not None and mail_from != a.mail_from:
        errors.append("MAIL FROM <%s>, wanted <%s>" % (mail_from, a.mail_from))
    if a.rcpt and rcpts != sorted(a.rcpt):
        errors.append("RCPT TO %s, wanted %s" % (rcpts, sorted(a.rcpt)))
    for h in a.no_header:
        if h.lower() in headers:
            errors.append("header %s present: %r" % (h, headers[h.lower()]))
    for h in a.header:
        n, _, want = h.partition(":")
        got = headers.get(n.lower())
        if got is None or want.encode() not in got:
            errors.append("header %s is %r, wanted it to contain %r" % (n, got, want))
    for want in a.line:
        if want.encode() not in lines:
            errors.append("no body line %r" % want)
    if b"\n" in data.replace(b"\r\n", b"") or b"\r" in data.replace(b"\r\n", b""):
        errors.append("a bare CR or LF in the data")
    for e in errors:
        print("  %s: %s" % (a.file, e))
    sys.exit(1 if errors else 0)


main()
