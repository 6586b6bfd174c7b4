"""The baseline: raw pyzmq, one ``msgpack.packb((topic, payload))`` frame per message.

No slow-joiner loss: the sender sends probe frames until the receiver, over a side pipe, says
one arrived; then it sends one GO frame and the measured stream. The receiver skips frames up
to GO, so what it counts is exactly the stream. Socket set-up here serves the asyncio twin
(_raw_aio.py) too: only the waits and the measured loops differ.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from multiprocessing.connection import Connection
from typing import Any, TypeVar

import msgpack
import zmq

from ._common import (
    ENDPOINT,
    SETUP_TIMEOUT,
    TOPIC,
    Spec,
    expect,
    lat_result,
    payload,
    report_received,
    report_sent,
)

PROBE = msgpack.packb(("probe", b""))
GO = msgpack.packb(("go", b""))
STOP = "stop"

S = TypeVar("S", bound="zmq.Socket[Any]")
C = TypeVar("C", bound="zmq.Context[Any]")


def kinds(pattern: str) -> tuple[int, int]:
    """(sending, receiving) socket types."""
    return (zmq.PUB, zmq.SUB) if pattern == "pubsub" else (zmq.PUSH, zmq.PULL)


@contextlib.contextmanager
def destroyed(ctx: C) -> Iterator[C]:
    """``ctx``, with every socket it made closed (linger 0) and itself ended on the way out."""
    try:
        yield ctx
    finally:
        ctx.destroy(linger=0)


def make(ctx: zmq.Context[S], kind: int, hwm: int) -> S:
    sock = ctx.socket(kind)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.SNDHWM, hwm)
    sock.setsockopt(zmq.RCVHWM, hwm)
    if kind == zmq.SUB:
        sock.setsockopt(zmq.SUBSCRIBE, b"")
    return sock


def bound_sender(ctx: zmq.Context[S], spec: Spec, ctl: Connection) -> S:
    """The sending socket of a throughput run, bound; its endpoint goes to the run."""
    sock = make(ctx, kinds(spec.pattern)[0], spec.hwm)
    sock.bind(ENDPOINT)
    ctl.send(sock.getsockopt_string(zmq.LAST_ENDPOINT))
    return sock


def connected_receiver(ctx: zmq.Context[S], spec: Spec, endpoint: str) -> S:
    sock = make(ctx, kinds(spec.pattern)[1], spec.hwm)
    sock.connect(endpoint)
    return sock


def lat_sockets(ctx: zmq.Context[S], spec: Spec, side: Connection) -> tuple[S, S]:
    """Each end binds its sending socket and connects its receiving one to the other end's."""
    out_kind, in_kind = kinds(spec.pattern)
    out, inp = make(ctx, out_kind, 1000), make(ctx, in_kind, 1000)
    out.bind(ENDPOINT)
    side.send(out.getsockopt_string(zmq.LAST_ENDPOINT))
    inp.connect(str(expect(side, "peer endpoint")))
    return out, inp


def probe_until_ready(sock: zmq.Socket[bytes], side: Connection) -> None:
    """Send probes (a PUSH with no peer yet may refuse them) until the receiver saw one."""
    sock.setsockopt(zmq.SNDTIMEO, 10)
    end = time.monotonic() + SETUP_TIMEOUT
    while not side.poll(0.002):
        if time.monotonic() > end:
            raise TimeoutError("receiver never saw a probe")
        with contextlib.suppress(zmq.Again):
            sock.send(PROBE)
    side.recv()
    sock.setsockopt(zmq.SNDTIMEO, -1)
    sock.send(GO)


def wait_for_go(sock: zmq.Socket[bytes], side: Connection) -> None:
    sock.setsockopt(zmq.RCVTIMEO, round(SETUP_TIMEOUT * 1000))
    sock.recv()
    side.send("ready")
    while sock.recv() != GO:
        pass


def sender(spec: Spec, ctl: Connection, side: Connection) -> None:
    with destroyed(zmq.Context()) as ctx:
        sock = bound_sender(ctx, spec, ctl)
        probe_until_ready(sock, side)
        send, packb, topic, data = sock.send, msgpack.packb, TOPIC, payload(spec.size)
        count, limit = spec.count, spec.limit
        n = 0
        t0 = time.perf_counter()
        while n < count:
            send(packb((topic, data)))
            n += 1
            if not n & 1023 and time.perf_counter() - t0 > limit:
                break
        t1 = time.perf_counter()
        report_sent(ctl, side, spec, n, t0, t1)


def receiver(spec: Spec, endpoint: str, ctl: Connection, side: Connection) -> None:
    with destroyed(zmq.Context()) as ctx:
        sock = connected_receiver(ctx, spec, endpoint)
        wait_for_go(sock, side)
        sock.setsockopt(zmq.RCVTIMEO, round(spec.idle * 1000))
        recv, unpackb = sock.recv, msgpack.unpackb
        count, limit = spec.count, spec.limit + spec.idle
        _topic, _data = unpackb(recv())
        t0 = t1 = time.perf_counter()
        n, ended = 1, "count"
        try:
            while n < count:
                _topic, _data = unpackb(recv())
                n += 1
                if not n & 1023 and time.perf_counter() - t0 > limit:
                    ended = "limit"
                    break
            t1 = time.perf_counter()
        except zmq.Again:
            t1, ended = time.perf_counter() - spec.idle, "idle"
        report_received(ctl, side, n, t0, t1, ended)


def pinger(spec: Spec, ctl: Connection, side: Connection) -> None:
    with destroyed(zmq.Context()) as ctx:
        out, inp = lat_sockets(ctx, spec, side)
        # Handshake: ping until one comes back, then let stragglers drain.
        out.setsockopt(zmq.SNDTIMEO, 100)
        inp.setsockopt(zmq.RCVTIMEO, 20)
        end = time.monotonic() + SETUP_TIMEOUT
        while True:
            if time.monotonic() > end:
                raise TimeoutError("no pong")
            try:
                out.send(PROBE)
                inp.recv()
                break
            except zmq.Again:
                continue
        inp.setsockopt(zmq.RCVTIMEO, 200)
        with contextlib.suppress(zmq.Again):
            while True:
                inp.recv()
        inp.setsockopt(zmq.RCVTIMEO, round(SETUP_TIMEOUT * 1000))
        send, recv, packb, unpackb = out.send, inp.recv, msgpack.packb, msgpack.unpackb
        topic, data = TOPIC, payload(spec.size)
        clock = time.perf_counter_ns
        samples: list[int] = []
        stop_at = time.perf_counter() + spec.limit
        for i in range(spec.warmup + spec.count):
            t = clock()
            send(packb((topic, data)))
            unpackb(recv())
            if i >= spec.warmup:
                samples.append(clock() - t)
                if not i & 255 and time.perf_counter() > stop_at:
                    break
        out.send(packb((STOP, b"")))
        ctl.send(lat_result(samples))


def ponger(spec: Spec, ctl: Connection, side: Connection) -> None:
    with destroyed(zmq.Context()) as ctx:
        out, inp = lat_sockets(ctx, spec, side)
        inp.setsockopt(zmq.RCVTIMEO, round((SETUP_TIMEOUT + spec.limit) * 1000))
        send, recv, packb, unpackb = out.send, inp.recv, msgpack.packb, msgpack.unpackb
        while True:
            topic, data = unpackb(recv())
            if topic == STOP:
                break
            send(packb((topic, data)))
        ctl.send({})
