"""peermq's blocking API: Publisher/Subscriber and Pusher/Puller, per message or batched."""

from __future__ import annotations

import time
from multiprocessing.connection import Connection

import peermq

from ._common import ENDPOINT, SETUP_TIMEOUT, TOPIC, Spec, expect, finish, lat_result, payload
from ._common import thr_result as _thr

STOP = "stop"

Sender = peermq.Publisher | peermq.Pusher
Receiver = peermq.Subscriber | peermq.Puller


def options(hwm: int) -> peermq.SocketOptions:
    return peermq.SocketOptions(send_hwm=hwm, recv_hwm=hwm, linger=0.0)


def make_sender(pattern: str, hwm: int) -> Sender:
    if pattern == "pubsub":
        return peermq.Publisher(bind=ENDPOINT, options=options(hwm))
    return peermq.Pusher(
        bind=ENDPOINT, options=peermq.SocketOptions(
            send_hwm=hwm, recv_hwm=hwm, linger=0.0, on_full=peermq.OnFull.BLOCK,
            send_timeout=SETUP_TIMEOUT,
        ),
    )


def make_receiver(pattern: str, endpoint: str, hwm: int) -> Receiver:
    if pattern == "pubsub":
        return peermq.Subscriber(connect=endpoint, options=options(hwm))
    return peermq.Puller(connect=endpoint, options=options(hwm))


def wait_ready(sock: Sender) -> None:
    if isinstance(sock, peermq.Publisher):
        sock.wait_for_subscribers(1, timeout=SETUP_TIMEOUT)
    else:
        sock.wait_for_peers(1, timeout=SETUP_TIMEOUT)


def sender(spec: Spec, ctl: Connection, side: Connection) -> None:
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
        ctl.send({"sent": n, "send_rate": n / (t1 - t0), "dropped": sock.stats().dropped})
        finish(side, spec.limit)


def receiver(spec: Spec, endpoint: str, ctl: Connection, side: Connection) -> None:
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
        ctl.send(_thr(n, t0, t1, ended, gaps=sock.stats().gaps))
        side.send("done")


def _lat_sockets(spec: Spec, side: Connection) -> tuple[Sender, Receiver]:
    out = make_sender(spec.pattern, 1000)
    try:
        side.send(out.endpoints[0])
        inp = make_receiver(spec.pattern, str(expect(side, "peer endpoint")), 1000)
    except BaseException:
        out.close()
        raise
    return out, inp


def pinger(spec: Spec, ctl: Connection, side: Connection) -> None:
    out, inp = _lat_sockets(spec, side)
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
    out, inp = _lat_sockets(spec, side)
    with out, inp:
        wait_ready(out)
        send, recv = out.send, inp.recv
        while True:
            msg = recv(SETUP_TIMEOUT + spec.limit)
            if msg.topic == STOP:
                break
            send(msg.topic, msg.data)
        ctl.send({})
