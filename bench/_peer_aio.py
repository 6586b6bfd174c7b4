"""peermq.aio: the asyncio twins, one ``await`` per message on both sides.

Set-up as in _peer.py (the same functions, ``api=aio``); here only the waits and the measured
loops."""

from __future__ import annotations

import asyncio
import time
from multiprocessing.connection import Connection

import peermq.aio as aio

from ._common import (
    SETUP_TIMEOUT,
    TOPIC,
    Spec,
    lat_result,
    payload,
    report_received,
    report_sent,
    watch,
)
from ._peer import STOP, lat_sockets, make_receiver, make_sender

Sender = aio.Publisher | aio.Pusher
Receiver = aio.Subscriber | aio.Puller


async def wait_ready(sock: Sender) -> None:
    if isinstance(sock, aio.Publisher):
        await sock.wait_for_subscribers(1, timeout=SETUP_TIMEOUT)
    else:
        await sock.wait_for_peers(1, timeout=SETUP_TIMEOUT)


async def sender(spec: Spec, ctl: Connection, side: Connection) -> None:
    sock: Sender
    async with make_sender(spec.pattern, spec.hwm, aio) as sock:
        ctl.send(sock.endpoints[0])
        await wait_ready(sock)
        send, topic, data = sock.send, TOPIC, payload(spec.size)
        count, limit = spec.count, spec.limit
        n = 0
        t0 = time.perf_counter()
        while n < count:
            await send(topic, data)
            n += 1
            if not n & 1023 and time.perf_counter() - t0 > limit:
                break
        t1 = time.perf_counter()
        report_sent(ctl, side, spec, n, t0, t1, dropped=sock.stats().dropped)


async def receiver(spec: Spec, endpoint: str, ctl: Connection, side: Connection) -> None:
    sock: Receiver
    async with make_receiver(spec.pattern, endpoint, spec.hwm, aio) as sock:
        count = spec.count
        n, t0, t1 = 0, 0.0, 0.0
        first = await sock.recv(timeout=SETUP_TIMEOUT)

        async def drain() -> None:
            nonlocal n, t0, t1
            recv = sock.recv
            t0, n = time.perf_counter(), 1
            while n < count:
                msg = await recv()
                n += 1
            t1 = time.perf_counter()
            del msg

        end, ended = await watch(drain, lambda: n, spec.limit + spec.idle, spec.idle)
        del first
        report_received(ctl, side, n, t0, t1 if ended == "count" else end, ended,
                        gaps=sock.stats().gaps)


async def pinger(spec: Spec, ctl: Connection, side: Connection) -> None:
    out, inp = lat_sockets(spec, side, aio)
    async with out, inp:
        await wait_ready(out)
        send, recv = out.send, inp.recv
        topic, data = TOPIC, payload(spec.size)
        clock = time.perf_counter_ns
        samples: list[int] = []
        stop_at = time.perf_counter() + spec.limit
        for i in range(spec.warmup + spec.count):
            t = clock()
            await send(topic, data)
            await recv(SETUP_TIMEOUT)
            if i >= spec.warmup:
                samples.append(clock() - t)
                if not i & 255 and time.perf_counter() > stop_at:
                    break
        await send(STOP, b"")
        ctl.send(lat_result(samples))


async def ponger(spec: Spec, ctl: Connection, side: Connection) -> None:
    out, inp = lat_sockets(spec, side, aio)
    async with out, inp:
        await wait_ready(out)
        send, recv = out.send, inp.recv

        async def echo() -> None:
            while True:
                msg = await recv()
                if msg.topic == STOP:
                    return
                await send(msg.topic, msg.data)

        await asyncio.wait_for(echo(), SETUP_TIMEOUT + spec.limit + 5.0)
        ctl.send({})
