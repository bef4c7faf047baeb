#!/usr/bin/env python3
"""A plain SMTP server on 127.0.0.1 that writes each message it accepts to
OUT/<ns>-<seq>.eml as the package test reads it:

    MAIL FROM:<sender>
    RCPT TO:<rcpt>          (one line per recipient)
    <empty line>
    <the message bytes as received, after dot-unstuffing>

    capture.py PORT OUT [SECONDS]

It stops by itself after SECONDS (default 600), or on SIGTERM.
"""

import asyncio
import os
import signal
import sys
import time

from aiosmtpd.controller import Controller


class Capture:
    def __init__(self, out):
        self.out = out
        self.seq = 0

    async def handle_DATA(self, server, session, envelope):
        self.seq += 1
        head = ["MAIL FROM:<%s>" % envelope.mail_from]
        head += ["RCPT TO:<%s>" % r for r in envelope.rcpt_tos]
        data = envelope.original_content or b""
        name = "%d-%04d.eml" % (time.time_ns(), self.seq)
        tmp = os.path.join(self.out, "." + name)
        with open(tmp, "wb") as f:
            f.write(("\n".join(head) + "\n\n").encode())
            f.write(data)
        os.rename(tmp, os.path.join(self.out, name))
        return "250 2.0.0 captured"


def main():
    port, out = int(sys.argv[1]), sys.argv[2]
    seconds = float(sys.argv[3]) if len(sys.argv) > 3 else 600.0
    os.makedirs(out, exist_ok=True)
    ctl = Controller(Capture(out), hostname="127.0.0.1", port=port,
                     decode_data=False, data_size_limit=10 * 1024 * 1024)
    ctl.start()
    print("capture: listening on 127.0.0.1:%d" % port, flush=True)
    done = asyncio.Event()
    loop = asyncio.new_event_loop()
    loop.add_signal_handler(signal.SIGTERM, done.set)
    try:
        loop.run_until_complete(asyncio.wait_for(done.wait(), seconds))
    except asyncio.TimeoutError:
        pass
    finally:
        ctl.stop()


if __name__ == "__main__":
    main()
