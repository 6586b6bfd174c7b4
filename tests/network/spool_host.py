"""A spooled sender or receiver on a lab host, for the partition tests.

    python -m tests.network.spool_host push      ENDPOINT SPOOL HISTORY RUN RATE LIMIT
    python -m tests.network.spool_host publish   ENDPOINT SPOOL HISTORY RUN RATE LIMIT DURABLE
    python -m tests.network.spool_host pull      ENDPOINT SPOOL HISTORY INCARNATION
    python -m tests.network.spool_host subscribe ENDPOINT SPOOL HISTORY INCARNATION DURABLE

The history (sent, durable, handled) is the crash tests' (tests/integration/spool_peer.py) and
is checked by their checker. On stdout, JSON lines for the test to wait on: ``ready``, and from
senders ``peers`` (each change of the number of linked receivers, with the monotonic time,
which every namespace shares), then ``sent`` and ``acked``. A sender streams RATE messages a
second until the line ``stop`` arrives on stdin or LIMIT seconds have passed; closing stdin
closes any of them cleanly.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable

import peermq
from peermq._spooled_sync import SpooledPublisher, SpooledPusher
from peermq.config import AckMode, SpoolOptions

from ..integration.spool_peer import History, digest, handler, payload

FLUSH_EVERY = 50
ACKED_WITHIN = 30.0
"""How long a sender waits, after its stream, for everything to be acknowledged."""


def out(event: str, **fields: object) -> None:
    print(json.dumps({"event": event, "t": time.monotonic(), **fields}), flush=True)


class Control:
    """stdin: ``stop`` ends a sender's stream; end of file ends the process."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.eof = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in sys.stdin:
            if line.strip() == "stop":
                self.stop.set()
        self.stop.set()
        self.eof.set()


def stream(sock: SpooledPusher | SpooledPublisher, ctl: Control, h: History, run: str,
           rate: float, limit: float, linked: Callable[[], int]) -> None:
    """Send at ``rate`` until told to stop (or ``limit`` s); report ``linked()`` changes."""
    start = time.monotonic()
    peers = -1
    i = 0
    while not ctl.stop.is_set() and time.monotonic() - start < limit:
        now = linked()
        if now != peers:
            peers = now
            out("peers", n=now)
        # pacing the stream; the stop event ends the pause early
        if ctl.stop.wait(max(0.0, start + i / rate - time.monotonic())):
            break
        msg_id = f"{run}:{i}"
        data = payload(msg_id)
        h.write(ev="attempt", id=msg_id, h=digest(data))
        sock.send("jobs", data)
        h.write(ev="sent", id=msg_id, seq=sock.last_seq)
        i += 1
        if i % FLUSH_EVERY == 0:
            h.write(ev="durable", upto=sock.flush(), run=run)
    h.write(ev="durable", upto=sock.flush(), run=run)
    out("sent", count=i)


def serve(sock: SpooledPusher | SpooledPublisher, path: str, run: str, rate: float,
          limit: float, linked: Callable[[], int], unacked: Callable[[], int]) -> None:
    """Stream, then wait for ``unacked()`` to reach 0 and report it; then for end of stdin."""
    ctl = Control()
    with sock:
        out("ready", endpoint=sock.endpoints[0])
        stream(sock, ctl, History(path), run, rate, limit, linked)
        end = time.monotonic() + ACKED_WITHIN
        while unacked() and time.monotonic() < end:
            ctl.eof.wait(0.02)  # polling a count: the spool has no event for it
        out("acked", unacked=unacked())
        ctl.eof.wait(ACKED_WITHIN)


def push(endpoint: str, spool: str, path: str, run: str, rate: float, limit: float) -> None:
    # the defaults under test: heartbeats 1 s / 5 s, ack_timeout 30 s
    opts = SpoolOptions(checkpoint_interval=0.05)
    sock = peermq.Pusher(bind=endpoint, spool=spool, spool_options=opts)
    serve(sock, path, run, rate, limit, lambda: sock.peers, sock.pending)


def publish(endpoint: str, spool: str, path: str, run: str, rate: float, limit: float,
            durable: str) -> None:
    opts = SpoolOptions(checkpoint_interval=0.05)
    sock = peermq.Publisher(bind=endpoint, spool=spool, spool_options=opts)

    def unacked() -> int:
        """Messages the durable subscriber has not acknowledged (all, before it is known)."""
        c = sock.spool_stats()["consumers"].get(durable)  # type: ignore[attr-defined]
        cursor, held = (c["cursor"], c["unacked"]) if c else (1, 0)
        return int(sock.last_seq + 1 - cursor + held)

    serve(sock, path, run, rate, limit, lambda: sock.subscribers, unacked)


def receive(endpoint: str, spool: str, path: str, inc: str, durable: str | None) -> None:
    ctl, h = Control(), History(path)
    gaps: list[object] = []
    sock: peermq.Puller | peermq.Subscriber
    if durable is None:
        sock = peermq.Puller(connect=endpoint, spool=spool, ack=AckMode.AUTO)
    else:
        sock = peermq.Subscriber(connect=endpoint, durable=durable, spool=spool,
                                 history=peermq.History(from_seq=1), on_gap=gaps.append)
    with sock:
        threading.Thread(target=lambda: (ctl.eof.wait(), sock.stop()), daemon=True).start()

        out("ready")
        sock.consume(handler(h, inc))
        stats = sock.stats()
        h.write(ev="stats", inc=inc, duplicates=stats.duplicates)
        out("stats", duplicates=stats.duplicates, gaps=stats.gaps, told=len(gaps))


def main() -> None:
    role, endpoint, spool, path, *rest = sys.argv[1:]
    if role == "push":
        run, rate, limit = rest
        push(endpoint, spool, path, run, float(rate), float(limit))
    elif role == "publish":
        run, rate, limit, durable = rest
        publish(endpoint, spool, path, run, float(rate), float(limit), durable)
    elif role == "pull":
        receive(endpoint, spool, path, rest[0], None)
    elif role == "subscribe":
        receive(endpoint, spool, path, rest[0], rest[1])
    else:
        sys.exit(f"unknown role {role!r}")


if __name__ == "__main__":
    main()
