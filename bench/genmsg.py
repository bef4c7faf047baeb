#!/usr/bin/env python3
"""Writes a deterministic test message of about SIZE bytes to OUT.

    genmsg.py SIZE OUT

LF line ends (as scripts and cron hand mail to sendmail), a complete
header block (From, To, Subject, Date, Message-ID, so that neither client
adds a header and both should put the same bytes on the wire), then text
lines of up to 78 characters, some starting with "." and some with "..",
never a line that is a lone "." (msmtp has no "." end-of-input rule, so
such a line would make the two clients send different messages).

Prints one JSON line: the file's size, the number of lines that start
with ".", and the size and SHA-256 of the expected wire form (CRLF line
ends, dot-stuffed, without the final "."), which the sink reports for
every message it receives.
"""

import hashlib
import itertools
import json
import os
import sys

HEADER = (
    "From: Bench Sender <a@example.org>\n"
    "To: rcpt@example.org\n"
    "Subject: smtpsend benchmark message\n"
    "Date: Mon, 01 Jan 2024 00:00:00 +0000\n"
    "Message-ID: <bench-{size}@example.org>\n"
    "\n"
)
WORDS = (
    "lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod "
    "tempor incididunt ut labore et dolore magna aliqua ut enim ad minim "
    "veniam quis nostrud exercitation ullamco laboris nisi aliquip"
).split()


def line(n):
    # A varying line, 20..78 characters, from a cheap deterministic walk.
    width = 20 + (n * 37) % 59
    words, length, k = [], 0, n
    while length < width:
        w = WORDS[k % len(WORDS)]
        words.append(w)
        length += len(w) + 1
        k = k * 7 + 3
    text = " ".join(words)[:width].rstrip() or "x"
    if n % 41 == 5:
        return "." + text  # one leading dot: must be stuffed
    if n % 97 == 50:
        return ".." + text  # two: stuffed to three
    return text


def main():
    size, out = int(sys.argv[1]), sys.argv[2]
    wire = hashlib.sha256()
    written = wire_bytes = dot_lines = 0
    lines = itertools.chain(
        HEADER.format(size=size).splitlines(), (line(n) for n in itertools.count(1))
    )
    with open(out, "wb", buffering=1 << 20) as f:
        for ln in lines:
            data = (ln + "\n").encode()
            if written + len(data) > size:
                break
            f.write(data)
            written += len(data)
            if ln.startswith("."):
                dot_lines += 1
                ln = "." + ln
            on_wire = (ln + "\r\n").encode()
            wire.update(on_wire)
            wire_bytes += len(on_wire)
    print(
        json.dumps(
            {
                "file": os.path.basename(out),
                "bytes": written,
                "dot_lines": dot_lines,
                "wire_bytes": wire_bytes,
                "wire_sha256": wire.hexdigest(),
            }
        )
    )


if __name__ == "__main__":
    main()
