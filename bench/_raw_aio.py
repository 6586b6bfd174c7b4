"""The asyncio baseline: ``zmq.asyncio`` sockets, one msgpack frame per message, one await each."""

from __future__ import annotations

import asyncio
import contextlib
import time
from multiprocessing.connection import Connection

import msgpack
import zmq
import zmq.asyncio

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
from ._raw import GO, PROBE, STOP, kinds

Ctx = zmq.asyncio.Context
Sock = zmq.asyncio.Socket


def make(ctx: Ctx, kind: int, hwm: int) -> Sock:
    sock = ctx.socket(kind)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.SNDHWM, hwm)
    sock.setsockopt(zmq.RCVHWM, hwm)
    if kind == zmq.SUB:
        sock.setsockopt(zmq.SUBSCRIBE, b"")
    return sock


async def probe_until_ready(sock: Sock, side: Connection) -> None:
    end = time.monotonic() + SETUP_TIMEOUT
    while not side.poll(0.002):
        if time.monotonic() > end:
            raise TimeoutError("receiver never saw a probe")
        with contextlib.suppress(zmq.Again):  # a PUSH with no puller yet
            await sock.send(PROBE, zmq.NOBLOCK)
    side.recv()
    await sock.send(GO)


async def wait_for_go(sock: Sock, side: Connection) -> None:
    await asyncio.wait_for(sock.recv(), SETUP_TIMEOUT)
    side.send("ready")
    while await asyncio.wait_for(sock.recv(), SETUP_TIMEOUT) != GO:
        pass


async def _sender(spec: Spec, ctl: Connection, side: Connection) -> None:
    ctx = Ctx()
    sock = make(ctx, kinds(spec.pattern)[0], spec.hwm)
    try:
        sock.bind(ENDPOINT)
        ctl.send(sock.getsockopt_string(zmq.LAST_ENDPOINT))
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
        ctl.send({"sent": n, "send_rate": n / (t1 - t0)})
        finish(side, spec.limit)
    finally:
        sock.close(0)
        ctx.term()


async def _receiver(spec: Spec, endpoint: str, ctl: Connection, side: Connection) -> None:
    ctx = Ctx()
    sock = make(ctx, kinds(spec.pattern)[1], spec.hwm)
    try:
        sock.connect(endpoint)
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
        ctl.send(_thr(n, t0, t1 if ended == "count" else end, ended))
        side.send("done")
    finally:
        sock.close(0)
        ctx.term()


async def _lat_sockets(spec: Spec, side: Connection) -> tuple[Ctx, Sock, Sock]:
    ctx = Ctx()
    out_kind, in_kind = kinds(spec.pattern)
    out, inp = make(ctx, out_kind, 1000), make(ctx, in_kind, 1000)
    out.bind(ENDPOINT)
    side.send(out.getsockopt_string(zmq.LAST_ENDPOINT))
    inp.connect(str(expect(side, "peer endpoint")))
    return ctx, out, inp


async def _pinger(spec: Spec, ctl: Connection, side: Connection) -> None:
    ctx, out, inp = await _lat_sockets(spec, side)
    try:
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
        try:
            while True:
                await asyncio.wait_for(inp.recv(), 0.2)
        except TimeoutError:
            pass
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
    finally:
        out.close(0)
        inp.close(0)
        ctx.term()


async def _ponger(spec: Spec, ctl: Connection, side: Connection) -> None:
    ctx, out, inp = await _lat_sockets(spec, side)
    try:
        send, recv, packb, unpackb = out.send, inp.recv, msgpack.packb, msgpack.unpackb

        async def echo() -> None:
            while True:
                topic, data = unpackb(await recv())
                if topic == STOP:
                    return
                await send(packb((topic, data)))

        await asyncio.wait_for(echo(), SETUP_TIMEOUT + spec.limit + 5.0)
        ctl.send({})
    finally:
        out.close(0)
        inp.close(0)
        ctx.term()


def sender(spec: Spec, ctl: Connection, side: Connection) -> None:
    asyncio.run(_sender(spec, ctl, side))


def receiver(spec: Spec, endpoint: str, ctl: Connection, side: Connection) -> None:
    asyncio.run(_receiver(spec, endpoint, ctl, side))


def pinger(spec: Spec, ctl: Connection, side: Connection) -> None:
    asyncio.run(_pinger(spec, ctl, side))


def ponger(spec: Spec, ctl: Connection, side: Connection) -> None:
    asyncio.run(_ponger(spec, ctl, side))
