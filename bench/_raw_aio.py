"""The asyncio baseline: ``zmq.asyncio`` sockets, one msgpack frame per message, one await each.

Set-up as in _raw.py (the same functions); here only the waits and the measured loops."""

from __future__ import annotations

import asyncio
import contextlib
import time
from multiprocessing.connection import Connection

import msgpack
import zmq
import zmq.asyncio

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
from ._raw import GO, PROBE, STOP, bound_sender, connected_receiver, destroyed, lat_sockets


async def probe_until_ready(sock: zmq.asyncio.Socket, side: Connection) -> None:
    end = time.monotonic() + SETUP_TIMEOUT
    while not side.poll(0.002):
        if time.monotonic() > end:
            raise TimeoutError("receiver never saw a probe")
        with contextlib.suppress(zmq.Again):  # a PUSH with no puller yet
            await sock.send(PROBE, zmq.NOBLOCK)
    side.recv()
    await sock.send(GO)


async def wait_for_go(sock: zmq.asyncio.Socket, side: Connection) -> None:
    await asyncio.wait_for(sock.recv(), SETUP_TIMEOUT)
    side.send("ready")
    while await asyncio.wait_for(sock.recv(), SETUP_TIMEOUT) != GO:
        pass


async def sender(spec: Spec, ctl: Connection, side: Connection) -> None:
    with destroyed(zmq.asyncio.Context()) as ctx:
        sock = bound_sender(ctx, spec, ctl)
        await probe_until_ready(sock, side)
        send, packb, topic, data = sock.send, msgpack.packb, TOPIC, payload(spec.size)
        count, limit = spec.count, spec.limit
        n = 0
        t0 = time.perf_counter()
        while n < count:
            await send(packb((topic, data)))
            n += 1
            if not n & 1023 and time.perf_counter() - t0 > limit:
                break
        t1 = time.perf_counter()
        report_sent(ctl, side, spec, n, t0, t1)


async def receiver(spec: Spec, endpoint: str, ctl: Connection, side: Connection) -> None:
    with destroyed(zmq.asyncio.Context()) as ctx:
        sock = connected_receiver(ctx, spec, endpoint)
        await wait_for_go(sock, side)
        count = spec.count
        n, t0, t1 = 0, 0.0, 0.0

        async def drain() -> None:
            nonlocal n, t0, t1
            recv, unpackb = sock.recv, msgpack.unpackb
            _topic, _data = unpackb(await recv())
            t0, n = time.perf_counter(), 1
            while n < count:
                _topic, _data = unpackb(await recv())
                n += 1
            t1 = time.perf_counter()

        end, ended = await watch(drain, lambda: n, spec.limit + spec.idle, spec.idle)
        report_received(ctl, side, n, t0, t1 if ended == "count" else end, ended)


async def pinger(spec: Spec, ctl: Connection, side: Connection) -> None:
    with destroyed(zmq.asyncio.Context()) as ctx:
        out, inp = lat_sockets(ctx, spec, side)
        end = time.monotonic() + SETUP_TIMEOUT
        while True:
            if time.monotonic() > end:
                raise TimeoutError("no pong")
            try:
                await out.send(PROBE, zmq.NOBLOCK)
                await asyncio.wait_for(inp.recv(), 0.02)
                break
            except (zmq.Again, TimeoutError):
                continue
        with contextlib.suppress(TimeoutError):
            while True:
                await asyncio.wait_for(inp.recv(), 0.2)
        send, recv, packb, unpackb = out.send, inp.recv, msgpack.packb, msgpack.unpackb
        topic, data = TOPIC, payload(spec.size)
        clock = time.perf_counter_ns
        samples: list[int] = []
        stop_at = time.perf_counter() + spec.limit
        for i in range(spec.warmup + spec.count):
            t = clock()
            await send(packb((topic, data)))
            unpackb(await recv())
            if i >= spec.warmup:
                samples.append(clock() - t)
                if not i & 255 and time.perf_counter() > stop_at:
                    break
        await out.send(packb((STOP, b"")))
        ctl.send(lat_result(samples))


async def ponger(spec: Spec, ctl: Connection, side: Connection) -> None:
    with destroyed(zmq.asyncio.Context()) as ctx:
        out, inp = lat_sockets(ctx, spec, side)
        send, recv, packb, unpackb = out.send, inp.recv, msgpack.packb, msgpack.unpackb

        async def echo() -> None:
            while True:
                topic, data = unpackb(await recv())
                if topic == STOP:
                    return
                await send(packb((topic, data)))

        await asyncio.wait_for(echo(), SETUP_TIMEOUT + spec.limit + 5.0)
        ctl.send({})
