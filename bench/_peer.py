"""peermq's blocking API: Publisher/Subscriber and Pusher/Puller, per message or batched.

Socket set-up here serves the asyncio twin (_peer_aio.py) too, with ``api=peermq.aio``: only
the waits and the measured loops differ.
"""

from __future__ import annotations

import time
from multiprocessing.connection import Connection
from types import ModuleType
from typing import Any

import peermq

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

STOP = "stop"

Sender = peermq.Publisher | peermq.Pusher
Receiver = peermq.Subscriber | peermq.Puller


def options(hwm: int) -> peermq.SocketOptions:
    return peermq.SocketOptions(send_hwm=hwm, recv_hwm=hwm, linger=0.0)


def make_sender(pattern: str, hwm: int, api: ModuleType = peermq) -> Any:
    """A bound Publisher or Pusher of ``api`` (peermq, or peermq.aio for the twins)."""
    if pattern == "pubsub":
        return api.Publisher(bind=ENDPOINT, options=options(hwm))
    return api.Pusher(
        bind=ENDPOINT, options=peermq.SocketOptions(
            send_hwm=hwm, recv_hwm=hwm, linger=0.0, on_full=peermq.OnFull.BLOCK,
            send_timeout=SETUP_TIMEOUT,
        ),
    )


def make_receiver(pattern: str, endpoint: str, hwm: int, api: ModuleType = peermq) -> Any:
    if pattern == "pubsub":
        return api.Subscriber(connect=endpoint, options=options(hwm))
    return api.Puller(connect=endpoint, options=options(hwm))


def lat_sockets(spec: Spec, side: Connection, api: ModuleType = peermq) -> tuple[Any, Any]:
    """Each end binds its sender and connects its receiver to the other end's sender."""
    out = make_sender(spec.pattern, 1000, api)
    try:
        side.send(out.endpoints[0])
        inp = make_receiver(spec.pattern, str(expect(side, "peer endpoint")), 1000, api)
    except BaseException:
        out.close()
        raise
    return out, inp


def wait_ready(sock: Sender) -> None:
    if isinstance(sock, peermq.Publisher):
        sock.wait_for_subscribers(1, timeout=SETUP_TIMEOUT)
    else:
        sock.wait_for_peers(1, timeout=SETUP_TIMEOUT)


def sender(spec: Spec, ctl: Connection, side: Connection) -> None:
    sock: Sender
    with make_sender(spec.pattern, spec.hwm) as sock:
        ctl.send(sock.endpoints[0])
        wait_ready(sock)
        topic, data = TOPIC, payload(spec.size)
        count, limit, batch = spec.count, spec.limit, spec.batch
        n = 0
        t0 = time.perf_counter()
        if batch:
            send_many = sock.send_many
            while n < count:
                send_many([(topic, data) for _ in range(batch)])
                n += batch
                if time.perf_counter() - t0 > limit:
                    break
        else:
            send = sock.send
            while n < count:
                send(topic, data)
                n += 1
                if not n & 1023 and time.perf_counter() - t0 > limit:
                    break
        t1 = time.perf_counter()
        report_sent(ctl, side, spec, n, t0, t1, dropped=sock.stats().dropped)


def receiver(spec: Spec, endpoint: str, ctl: Connection, side: Connection) -> None:
    sock: Receiver
    with make_receiver(spec.pattern, endpoint, spec.hwm) as sock:
        count, limit, idle = spec.count, spec.limit + spec.idle, spec.idle
        first = sock.recv(timeout=SETUP_TIMEOUT)
        t0 = t1 = time.perf_counter()
        n, ended = 1, "count"
        try:
            if spec.batch:
                recv_many = sock.recv_many
                while n < count:
                    n += len(recv_many(4096, timeout=idle))
                    if time.perf_counter() - t0 > limit:
                        ended = "limit"
                        break
            else:
                recv = sock.recv
                while n < count:
                    recv(timeout=idle)
                    n += 1
                    if not n & 1023 and time.perf_counter() - t0 > limit:
                        ended = "limit"
                        break
            t1 = time.perf_counter()
        except TimeoutError:
            t1, ended = time.perf_counter() - idle, "idle"
        del first
        report_received(ctl, side, n, t0, t1, ended, gaps=sock.stats().gaps)


def pinger(spec: Spec, ctl: Connection, side: Connection) -> None:
    out, inp = lat_sockets(spec, side)
    with out, inp:
        wait_ready(out)
        send, recv = out.send, inp.recv
        topic, data = TOPIC, payload(spec.size)
        clock = time.perf_counter_ns
        samples: list[int] = []
        stop_at = time.perf_counter() + spec.limit
        for i in range(spec.warmup + spec.count):
            t = clock()
            send(topic, data)
            recv(SETUP_TIMEOUT)
            if i >= spec.warmup:
                samples.append(clock() - t)
                if not i & 255 and time.perf_counter() > stop_at:
                    break
        send(STOP, b"")
        ctl.send(lat_result(samples))


def ponger(spec: Spec, ctl: Connection, side: Connection) -> None:
    out, inp = lat_sockets(spec, side)
    with out, inp:
        wait_ready(out)
        send, recv = out.send, inp.recv
        while True:
            msg = recv(SETUP_TIMEOUT + spec.limit)
            if msg.topic == STOP:
                break
            send(msg.topic, msg.data)
        ctl.send({})
