"""peermq.aio: the asyncio twins, one ``await`` per message on both sides."""

from __future__ import annotations

import asyncio
import time
from multiprocessing.connection import Connection

import peermq
import peermq.aio as aio

from ._common import (
    ENDPOINT,
    SETUP_TIMEOUT,
    TOPIC,
    Spec,
    expect,
    finish,
    lat_result,
    payload,
    watch,
)
from ._common import thr_result as _thr
from ._peer import STOP, options

Sender = aio.Publisher | aio.Pusher
Receiver = aio.Subscriber | aio.Puller


def make_sender(pattern: str, hwm: int) -> Sender:
    if pattern == "pubsub":
        return aio.Publisher(bind=ENDPOINT, options=options(hwm))
    return aio.Pusher(
        bind=ENDPOINT, options=peermq.SocketOptions(
            send_hwm=hwm, recv_hwm=hwm, linger=0.0, on_full=peermq.OnFull.BLOCK,
            send_timeout=SETUP_TIMEOUT,
        ),
    )


def make_receiver(pattern: str, endpoint: str, hwm: int) -> Receiver:
    if pattern == "pubsub":
        return aio.Subscriber(connect=endpoint, options=options(hwm))
    return aio.Puller(connect=endpoint, options=options(hwm))


async def wait_ready(sock: Sender) -> None:
    if isinstance(sock, aio.Publisher):
        await sock.wait_for_subscribers(1, timeout=SETUP_TIMEOUT)
    else:
        await sock.wait_for_peers(1, timeout=SETUP_TIMEOUT)


async def _sender(spec: Spec, ctl: Connection, side: Connection) -> None:
    async with make_sender(spec.pattern, spec.hwm) as sock:
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
        ctl.send({"sent": n, "send_rate": n / (t1 - t0), "dropped": sock.stats().dropped})
        finish(side, spec.limit)


async def _receiver(spec: Spec, endpoint: str, ctl: Connection, side: Connection) -> None:
    async with make_receiver(spec.pattern, endpoint, spec.hwm) as sock:
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
        ctl.send(_thr(n, t0, t1 if ended == "count" else end, ended,
                      gaps=sock.stats().gaps))
        side.send("done")


async def _lat_sockets(spec: Spec, side: Connection) -> tuple[Sender, Receiver]:
    out = make_sender(spec.pattern, 1000)
    try:
        side.send(out.endpoints[0])
        inp = make_receiver(spec.pattern, str(expect(side, "peer endpoint")), 1000)
    except BaseException:
        out.close()
        raise
    return out, inp


async def _pinger(spec: Spec, ctl: Connection, side: Connection) -> None:
    out, inp = await _lat_sockets(spec, side)
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


async def _ponger(spec: Spec, ctl: Connection, side: Connection) -> None:
    out, inp = await _lat_sockets(spec, side)
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


def sender(spec: Spec, ctl: Connection, side: Connection) -> None:
    asyncio.run(_sender(spec, ctl, side))


def receiver(spec: Spec, endpoint: str, ctl: Connection, side: Connection) -> None:
    asyncio.run(_receiver(spec, endpoint, ctl, side))


def pinger(spec: Spec, ctl: Connection, side: Connection) -> None:
    asyncio.run(_pinger(spec, ctl, side))


def ponger(spec: Spec, ctl: Connection, side: Connection) -> None:
    asyncio.run(_ponger(spec, ctl, side))
