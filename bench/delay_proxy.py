#!/usr/bin/env python3
"""A TCP proxy on 127.0.0.1 that delays every byte by --delay-ms in each
direction: a loopback server made to look --delay-ms * 2 away, so round
trips show up in wall time.

    delay_proxy.py --port-file FILE --target PORT [--delay-ms 20] [--log FILE]

Each chunk read from one side is written to the other side --delay-ms
after it was read, in order, so the bandwidth is the loopback's and only
the latency changes. TCP's own handshake with the proxy is not delayed
(the proxy accepts at once), but it connects to the target only on
accept and the greeting then takes one delayed trip, as a real server's
would take half a round trip.

With --log, one JSON line per connection when it ends: the flights in
order (direction, bytes, ms after accept, as read by the proxy), the client's
flights (a run of client-to-server chunks with no server-to-client chunk
read between them; the TLS handshake's flights count too, since the
proxy sees the encrypted stream), the server's, bytes each way, and the
connection's length in ms. The port, chosen by the kernel, is written to
--port-file once the proxy listens. SIGTERM or SIGINT stops it.
"""

import argparse
import asyncio
import json
import os
import signal
import time

# Every buffer has a limit: one read is at most this many bytes, and a
# side that stops reading is paused when this much is waiting for it.
READ_SIZE = 256 * 1024
HIGH_WATER = 4 * 1024 * 1024
# A connection with no traffic for this long is closed.
IDLE_TIMEOUT = 120


class Conn:
    def __init__(self, delay, log):
        self.delay = delay
        self.log = log
        self.t0 = time.monotonic_ns()
        self.events = []  # (direction "C"/"S", bytes, ms since accept) per chunk
        self.bytes = {"C": 0, "S": 0}

    async def pump(self, direction, reader, writer):
        """Reads from one side and writes each chunk to the other after the
        delay; an end of stream is passed on after the delay too."""
        loop = asyncio.get_running_loop()
        queue = asyncio.Queue()

        async def writer_task():
            while True:
                due, chunk = await queue.get()
                wait = due - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                if chunk is None:
                    if writer.can_write_eof():
                        writer.write_eof()
                    return
                writer.write(chunk)
                await writer.drain()

        task = loop.create_task(writer_task())
        try:
            while True:
                chunk = await asyncio.wait_for(reader.read(READ_SIZE), IDLE_TIMEOUT)
                if not chunk:
                    break
                self.events.append(
                    (direction, len(chunk), round((time.monotonic_ns() - self.t0) / 1e6, 1))
                )
                self.bytes[direction] += len(chunk)
                queue.put_nowait((loop.time() + self.delay, chunk))
                while queue.qsize() * READ_SIZE > HIGH_WATER:
                    await asyncio.sleep(self.delay)
        except (OSError, asyncio.TimeoutError):
            pass
        queue.put_nowait((loop.time() + self.delay, None))
        try:
            await task
        except OSError:
            pass

    def record(self):
        if not self.log:
            return
        flights = {"C": 0, "S": 0}
        seq = []  # per flight: direction, bytes, ms at its first chunk
        for d, n, t in self.events:
            if seq and seq[-1][0] == d:
                seq[-1][1] += n
            else:
                flights[d] += 1
                seq.append([d, n, t])
        self.log.write(
            json.dumps(
                {
                    "client_flights": flights["C"],
                    "server_flights": flights["S"],
                    "client_bytes": self.bytes["C"],
                    "server_bytes": self.bytes["S"],
                    "ms": round((time.monotonic_ns() - self.t0) / 1e6, 2),
                    "sequence": seq,
                }
            )
            + "\n"
        )


async def handle(creader, cwriter, target, delay, log):
    conn = Conn(delay, log)
    try:
        sreader, swriter = await asyncio.open_connection("127.0.0.1", target)
    except OSError:
        cwriter.close()
        return
    await asyncio.gather(
        conn.pump("C", creader, swriter),
        conn.pump("S", sreader, cwriter),
    )
    for w in (cwriter, swriter):
        w.close()
    conn.record()


async def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--target", type=int, required=True)
    ap.add_argument("--delay-ms", type=float, default=20)
    ap.add_argument("--log")
    args = ap.parse_args()
    log = open(args.log, "a", buffering=1) if args.log else None
    delay = args.delay_ms / 1000
    srv = await asyncio.start_server(
        lambda r, w: handle(r, w, args.target, delay, log), "127.0.0.1", 0
    )
    port = srv.sockets[0].getsockname()[1]
    tmp = args.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write(f"{port}\n")
    os.replace(tmp, args.port_file)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
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
