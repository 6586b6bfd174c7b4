"""A spooled sender or receiver that writes its history, for the crash tests.

    python spool_peer.py send    SPOOL ENDPOINT HISTORY RUN COUNT [FSYNC [RATE]]
    python spool_peer.py drain   SPOOL ENDPOINT HISTORY          (send nothing; wait for acks)
    python spool_peer.py receive SPOOL|- ENDPOINT HISTORY INCARNATION [WORK]
    python spool_peer.py publish SPOOL ENDPOINT HISTORY RUN COUNT RATE DURABLE
    python spool_peer.py subscribe SPOOL|- ENDPOINT HISTORY INCARNATION DURABLE

Every event is one JSON line appended with a single write(2) to an O_APPEND file, so a line is
whole or absent after a SIGKILL. Senders write ``attempt`` before ``send`` and ``sent`` after it
returns, and ``durable`` after a flush; receivers write ``handled`` from inside the handler
(the ack follows when it returns). Payloads are derived from their id: see ``payload``.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sys
import time
from collections.abc import Callable

import peermq
from peermq.config import AckMode, SpoolOptions

FLUSH_EVERY = 50


def payload(msg_id: str) -> bytes:
    n = int(hashlib.sha1(msg_id.encode()).hexdigest()[:4], 16)
    return msg_id.encode() + b"|" + bytes(range(256)) * (1 + n % 6)


def digest(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()[:16]


class History:
    def __init__(self, path: str) -> None:
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def write(self, **event: object) -> None:
        os.write(self.fd, (json.dumps(event) + "\n").encode())


def send(spool: str, endpoint: str, path: str, run: str, count: int, fsync: str,
         rate: float) -> None:
    """Send ``count`` messages, at ``rate`` per second if it is not 0 (a stream in time)."""
    h = History(path)
    opts = SpoolOptions(fsync=fsync, checkpoint_interval=0.05)  # type: ignore[arg-type]
    with peermq.Pusher(bind=endpoint, spool=spool, spool_options=opts) as push:
        print("ready", flush=True)
        start = time.monotonic()
        for i in range(count):
            if rate:
                pause = start + i / rate - time.monotonic()
                if pause > 0:
                    time.sleep(pause)  # pacing the stream, not waiting for anything
            msg_id = f"{run}:{i}"
            data = payload(msg_id)
            h.write(ev="attempt", id=msg_id, h=digest(data))
            push.send("jobs", data)
            h.write(ev="sent", id=msg_id, seq=push.last_seq)
            if i % FLUSH_EVERY == FLUSH_EVERY - 1:
                h.write(ev="durable", upto=push.flush(), run=run)
        h.write(ev="durable", upto=push.flush(), run=run)
        print("sent", flush=True)
        push.wait_for_acks(timeout=60.0)
        print("acked", flush=True)


def drain(spool: str, endpoint: str, path: str) -> None:
    opts = SpoolOptions(checkpoint_interval=0.05)
    with peermq.Pusher(bind=endpoint, spool=spool, spool_options=opts) as push:
        print("ready", flush=True)
        push.wait_for_acks(timeout=60.0)
        print("acked", flush=True)


def handler(h: History, incarnation: str, work: float = 0.0
            ) -> Callable[[peermq.Message], None]:
    """A consume handler that writes each message it handles to the history."""

    def handle(msg: peermq.Message) -> None:
        assert isinstance(msg, peermq.Delivery)
        data = msg.data
        assert isinstance(data, bytes)
        if work:
            time.sleep(work)  # the handler's work, not a wait
        h.write(ev="handled", id=data.split(b"|", 1)[0].decode(), h=digest(data),
                spool=msg.spool_id, seq=msg.spool_seq, n=msg.deliveries, inc=incarnation,
                t=time.monotonic())

    return handle


def receive(spool: str, endpoint: str, path: str, incarnation: str, work: float) -> None:
    """Handle messages until SIGTERM; each takes ``work`` seconds (a slow consumer)."""
    h = History(path)
    opts = SpoolOptions(checkpoint_interval=0.05, prefetch=64)
    with peermq.Puller(connect=endpoint, spool=None if spool == "-" else spool,
                       spool_options=opts, ack=AckMode.AUTO) as pull:
        signal.signal(signal.SIGTERM, lambda *_: pull.stop())

        print("ready", flush=True)
        pull.consume(handler(h, incarnation, work))
        h.write(ev="stats", inc=incarnation, duplicates=pull.stats().duplicates)


def publish(spool: str, endpoint: str, path: str, run: str, count: int, rate: float,
            durable: str) -> None:
    """Publish a stream to a log; then wait until subscriber ``durable`` acked all of it."""
    h = History(path)
    opts = SpoolOptions(checkpoint_interval=0.05)
    with peermq.Publisher(bind=endpoint, spool=spool, spool_options=opts) as pub:
        print("ready", flush=True)
        start = time.monotonic()
        for i in range(count):
            pause = start + i / rate - time.monotonic()
            if pause > 0:
                time.sleep(pause)  # pacing the stream, not waiting for anything
            msg_id = f"{run}:{i}"
            data = payload(msg_id)
            h.write(ev="attempt", id=msg_id, h=digest(data))
            pub.send("events", data)
            h.write(ev="sent", id=msg_id, seq=pub.last_seq)
        h.write(ev="durable", upto=pub.flush(), run=run)
        print("sent", flush=True)
        end = time.monotonic() + 60.0
        while time.monotonic() < end:
            c = pub.spool_stats()["consumers"].get(durable)  # type: ignore[attr-defined]
            if c and c["cursor"] > pub.last_seq and not c["unacked"]:
                print("acked", flush=True)
                return
            time.sleep(0.02)
        sys.exit("the durable subscriber did not ack everything in time")


def subscribe(spool: str, endpoint: str, path: str, incarnation: str, durable: str) -> None:
    h = History(path)
    # a durable name seen for the first time starts at the oldest message kept
    with peermq.Subscriber(connect=endpoint, durable=durable, history=peermq.History(from_seq=1),
                           spool=None if spool == "-" else spool) as sub:
        signal.signal(signal.SIGTERM, lambda *_: sub.stop())

        print("ready", flush=True)
        sub.consume(handler(h, incarnation))
        h.write(ev="stats", inc=incarnation, duplicates=sub.stats().duplicates)


def main() -> None:
    role, *args = sys.argv[1:]
    if role == "send":
        spool, endpoint, path, run, count, *rest = args
        send(spool, endpoint, path, run, int(count), rest[0] if rest else "batch",
             float(rest[1]) if len(rest) > 1 else 0.0)
    elif role == "drain":
        drain(*args)
    elif role == "publish":
        spool, endpoint, path, run, count, rate, durable = args
        publish(spool, endpoint, path, run, int(count), float(rate), durable)
    elif role == "subscribe":
        spool, endpoint, path, incarnation, durable = args
        subscribe(spool, endpoint, path, incarnation, durable)
    elif role == "receive":
        spool, endpoint, path, incarnation, *rest = args
        receive(spool, endpoint, path, incarnation, float(rest[0]) if rest else 0.0)
    else:
        sys.exit(f"unknown role {role!r}")


if __name__ == "__main__":
    main()
