"""One demo process: ``python -m peermq.cli.demo.child SPEC`` (SPEC is JSON).

It talks to the demo through its standard streams: it writes one JSON report per line on
stdout (``ready``, ``started``, ``stats``, ``done``, ``error``) and stops when its stdin
closes. So it also stops on its own when the demo dies, however that happens.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time

from ...config import SocketOptions
from ...message import Gap, Message, SocketStats
from ...node import Node
from ...sockets import Publisher, Puller, Pusher, Subscriber
from .. import _format
from .topology import BIND, DISCOVERY, ROLES, ChildSpec, Kind, Role, message, readers_of

__all__ = ["main"]

_QUICK = SocketOptions(linger=0.0)
"""Receivers have nothing worth delivering at close: they end at once."""
JOIN_TIMEOUT = 15.0
"""How long a sender waits for its receivers to join before it gives up."""


def _report(event: str, **fields: object) -> None:
    sys.stdout.write(json.dumps({"event": event, **fields}) + "\n")
    sys.stdout.flush()


def _watch_stdin(stop: threading.Event) -> None:
    # os.read, not sys.stdin: a daemon thread blocked inside a buffered reader can
    # hang interpreter shutdown
    try:
        while os.read(0, 4096):
            pass
    except OSError:
        pass
    stop.set()


def _counts(stats: SocketStats) -> dict[str, int]:
    return {"sent": stats.sent, "received": stats.received, "gaps": stats.gaps,
            "dropped": stats.dropped, "malformed": stats.malformed, "peers": stats.peers}


def _last(topic: str, seq: int | None, data: object, headers: dict[str, str]) -> dict[str, object]:
    _, text = _format.payload_text(data, limit=48)
    return {"topic": topic, "seq": seq, "headers": _format.headers_text(headers), "data": text}


def _send(role: Role, spec: ChildSpec, node: Node, stop: threading.Event) -> int:
    make = Publisher if role.kind is Kind.PUBLISHER else Pusher
    rate, every = spec["rate"], spec["report_every"]
    with make(node=node, bind=BIND, service=role.service) as sock:
        _report("ready", endpoints=sock.endpoints)
        # every reader is in before the first message: nothing is lost to slow joiners
        wait = sock.wait_for_subscribers if isinstance(sock, Publisher) else sock.wait_for_peers
        end = time.monotonic() + JOIN_TIMEOUT
        while not stop.is_set():
            try:
                wait(readers_of(role.name), timeout=0.1)
                break
            except TimeoutError:
                if time.monotonic() > end:
                    _report("error", message=f"readers did not join within {JOIN_TIMEOUT}s")
                    return 1
        _report("started")
        start = next_report = time.monotonic()
        i = 0
        last: dict[str, object] | None = None
        while not stop.is_set():
            topic, data, headers = message(role.name, i)
            sock.send(topic, data, headers or None)
            i += 1
            now = time.monotonic()
            if now >= next_report:
                last = _last(topic, None, data, headers)
                _report("stats", last=last, **_counts(sock.stats()))
                next_report = now + every
            stop.wait(max(0.0, start + i / rate - now))
        _report("done", last=last, **_counts(sock.stats()))
    return 0


def _receive(role: Role, spec: ChildSpec, node: Node, stop: threading.Event) -> int:
    connect, every = spec["connect"], spec["report_every"]
    gaps: list[Gap] = []
    sock: Subscriber | Puller
    if role.kind is Kind.SUBSCRIBER:
        sock = Subscriber(node=node, connect=connect, service=role.service, topics=role.topics,
                          headers=role.headers or None, on_gap=gaps.append, options=_QUICK)
    else:
        sock = Puller(node=node, connect=connect, service=role.service, options=_QUICK)
    with sock:
        _report("ready", endpoints=[])
        next_report = time.monotonic()
        last: Message | None = None
        while not stop.is_set():
            try:
                got = sock.recv_many(timeout=0.05)
            except TimeoutError:
                got = []
            if got:
                last = got[-1]
            for gap in gaps:
                _report("gap", topic=gap.topic, first=gap.first, lost=gap.lost)
            gaps.clear()
            if time.monotonic() >= next_report:
                _report("stats", last=_view(last), **_counts(sock.stats()))
                next_report = time.monotonic() + every
        _report("done", last=_view(last), **_counts(sock.stats()))
    return 0


def _view(msg: Message | None) -> dict[str, object] | None:
    if msg is None:
        return None
    return _last(msg.topic, msg.seq, msg.data, dict(msg.headers))


def main(argv: list[str]) -> int:
    # the demo (our parent) handles Ctrl-C and then closes our stdin
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    spec: ChildSpec = json.loads(argv[1])
    role = next(r for r in ROLES if r.name == spec["role"])
    stop = threading.Event()
    threading.Thread(target=_watch_stdin, args=(stop,), daemon=True).start()
    run = _send if role.kind.sends else _receive
    try:
        with Node(name=f"demo-{role.name}", discovery=DISCOVERY) as node:
            return run(role, spec, node, stop)
    except BrokenPipeError:
        # the demo is gone: nobody to report to, and nothing to flush at exit
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
