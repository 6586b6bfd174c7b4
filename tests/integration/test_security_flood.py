"""Floods and bad peers: malformed frames cut a peer off; raw TCP garbage and idlers leak nothing."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import msgpack
import pytest
import zmq
from zmq.utils.monitor import parse_monitor_message

import peermq
import peermq.aio
from peermq import SocketOptions
from peermq.config import SecurityOptions
from peermq.security import TrustStore, init_keys

GOOD = b"t\x00\x01" + msgpack.packb([0, "raw", 1, 1, 0.0, None, "ok"])
DEEP = b"t\x00\x01" + msgpack.packb([0, "raw", 1, 1, 0.0, None, 0])[:-1] + b"\x91" * 200 + b"\x00"
TOO_MANY_HEADERS = b"t\x00\x01" + msgpack.packb(
    [0, "raw", 1, 1, 0.0, {str(i): "v" for i in range(100)}, 1])
BAD = [b"garbage", DEEP, TOO_MANY_HEADERS, b"t\x00\x01\xdd\xff\xff\xff\xff"]


@contextlib.contextmanager
def raw(kind: int, *, curve: tuple[bytes, bytes, bytes] | None = None) -> Iterator[
        tuple[zmq.Socket[bytes], zmq.Socket[bytes]]]:
    """A raw pyzmq socket (optionally a CURVE client) and its monitor."""
    ctx = zmq.Context()
    sock = ctx.socket(kind)
    sock.setsockopt(zmq.LINGER, 0)
    if curve is not None:
        sock.curve_publickey, sock.curve_secretkey, sock.curve_serverkey = curve
    mon = sock.get_monitor_socket(zmq.EVENT_HANDSHAKE_SUCCEEDED | zmq.EVENT_DISCONNECTED
                                  | zmq.EVENT_ACCEPTED)
    try:
        yield sock, mon
    finally:
        sock.disable_monitor()
        mon.close(0)
        sock.close(0)
        ctx.term()


def wait_event(mon: zmq.Socket[bytes], event: int, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if mon.poll(50) and parse_monitor_message(mon.recv_multipart())["event"] == event:
            return True
    return False


def first_bad_frame(bad: zmq.Socket[bytes], receiver: peermq.Puller | peermq.Subscriber
                    ) -> None:
    """One bad frame, received: screening starts with the receive call after it."""
    bad.send(b"first")
    end = time.monotonic() + 5.0
    while receiver.stats().malformed == 0 and time.monotonic() < end:
        with contextlib.suppress(TimeoutError):
            receiver.recv(timeout=0.05)
    assert receiver.stats().malformed == 1


def test_a_pusher_that_keeps_sending_bad_frames_is_cut_off(
    caplog: pytest.LogCaptureFixture,
) -> None:
    opts = SocketOptions(max_bad_frames=5)
    with peermq.Puller(bind="tcp://127.0.0.1:*", options=opts) as pull, \
            peermq.Pusher(connect=None) as honest, raw(zmq.PUSH) as (bad, mon), \
            caplog.at_level(logging.WARNING, logger="peermq.security"):
        honest.connect(pull.endpoints[0])
        bad.connect(pull.endpoints[0])
        assert wait_event(mon, zmq.EVENT_HANDSHAKE_SUCCEEDED, 5.0)
        pull.wait_for_peers(2, timeout=5.0)
        first_bad_frame(bad, pull)
        for i in range(40):
            bad.send(BAD[i % len(BAD)])
        cut = False
        end = time.monotonic() + 5.0
        while not cut and time.monotonic() < end:
            with contextlib.suppress(TimeoutError):
                pull.recv(timeout=0.05)
            cut = mon.poll(0) and parse_monitor_message(mon.recv_multipart())["event"] == \
                zmq.EVENT_DISCONNECTED
        assert cut, "the bad peer's connection was not closed"
        honest.send("jobs", "still-served")
        assert pull.recv(timeout=5.0).data == "still-served"
        assert 6 <= pull.stats().malformed <= 41
    assert any("peer.cut_off" in r.getMessage() and "action=closed" in r.getMessage()
               for r in caplog.records)


@contextlib.contextmanager
def bad_then_good(pull_ep: str) -> Iterator[threading.Event]:
    """A raw pusher sends bad frames; another sends a good one once the first is cut off."""
    cut = threading.Event()
    with raw(zmq.PUSH) as (bad, mon), raw(zmq.PUSH) as (honest, _):
        bad.connect(pull_ep)
        honest.connect(pull_ep)
        assert wait_event(mon, zmq.EVENT_HANDSHAKE_SUCCEEDED, 5.0)
        for i in range(40):
            bad.send(BAD[i % len(BAD)])

        def after_the_cut() -> None:
            if wait_event(mon, zmq.EVENT_DISCONNECTED, 5.0):
                cut.set()
            honest.send(GOOD)

        helper = threading.Thread(target=after_the_cut)
        helper.start()
        try:
            yield cut
        finally:
            helper.join(10.0)


OPTS = SocketOptions(max_bad_frames=5)


def test_screening_starts_inside_one_long_recv() -> None:
    """A bad peer is cut off while one recv call waits, not only from the next call on.

    The good message is sent only once the bad connection is closed (or after 5 s): the one
    recv call returns it, and the cut must have happened during that call.
    """
    with peermq.Puller(bind="tcp://127.0.0.1:*", options=OPTS) as pull, \
            bad_then_good(pull.endpoints[0]) as cut:
        msg = pull.recv(timeout=10.0)
    assert cut.is_set(), "the bad peer was not cut off during the recv call"
    assert msg.data == "ok"


def test_screening_starts_inside_one_long_async_recv() -> None:
    async def main() -> tuple[bool, object]:
        async with peermq.aio.Puller(bind="tcp://127.0.0.1:*", options=OPTS) as pull:
            with bad_then_good(pull.endpoints[0]) as cut:
                msg = await pull.recv(timeout=10.0)
            return cut.is_set(), msg.data

    assert asyncio.run(main()) == (True, "ok")


def test_a_publisher_that_keeps_sending_bad_frames_is_disconnected() -> None:
    opts = SocketOptions(max_bad_frames=5)
    with raw(zmq.XPUB) as (bad, mon), peermq.Publisher(bind="tcp://127.0.0.1:*") as honest:
        port = bad.bind_to_random_port("tcp://127.0.0.1")
        with peermq.Subscriber(connect=[f"tcp://127.0.0.1:{port}", honest.endpoints[0]],
                               options=opts) as sub:
            assert wait_event(mon, zmq.EVENT_HANDSHAKE_SUCCEEDED, 5.0)
            honest.wait_for_subscribers(1, timeout=5.0)
            assert bad.poll(5000)  # the subscriber's subscriptions
            first_bad_frame(bad, sub)
            for i in range(40):
                bad.send(BAD[i % len(BAD)])
            end = time.monotonic() + 5.0
            gone = False
            while not gone and time.monotonic() < end:
                with contextlib.suppress(TimeoutError):
                    sub.recv(timeout=0.05)
                gone = mon.poll(0) and parse_monitor_message(mon.recv_multipart())["event"] == \
                    zmq.EVENT_DISCONNECTED
            assert gone
            # disconnected for good: it does not come back
            assert not wait_event(mon, zmq.EVENT_ACCEPTED, 1.0)
            honest.send("news", "still-served")
            assert sub.recv(timeout=5.0).data == "still-served"


def test_a_cut_off_curve_peer_is_refused_at_the_handshake_for_a_while(tmp_path: Path) -> None:
    server, client = init_keys(tmp_path / "server"), init_keys(tmp_path / "client")
    TrustStore(tmp_path / "server" / "trusted").trust(client.public, "client")
    node = peermq.Node(security=SecurityOptions(keys_dir=str(tmp_path / "server")))
    opts = SocketOptions(max_bad_frames=3)
    with node, peermq.Puller(bind="tcp://127.0.0.1:*", node=node, options=opts) as pull, \
            raw(zmq.PUSH, curve=(client.public, client.secret, server.public)) as (bad, mon):
        bad.connect(pull.endpoints[0])
        assert wait_event(mon, zmq.EVENT_HANDSHAKE_SUCCEEDED, 5.0)
        first_bad_frame(bad, pull)
        for _ in range(20):
            bad.send(b"garbage")
        end = time.monotonic() + 5.0
        assert node.security is not None
        while node.security.stats().bad_peers == 0 and time.monotonic() < end:
            with contextlib.suppress(TimeoutError):
                pull.recv(timeout=0.05)
        assert node.security.stats().bad_peers == 1
        # it reconnects by itself, and the key is refused: ZAP said no
        end = time.monotonic() + 5.0
        while node.security.stats().refused == 0 and time.monotonic() < end:
            time.sleep(0.02)
        assert node.security.stats().refused >= 1


def fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


def greeting() -> bytes:
    # a ZMTP 3.0 greeting start, so that some clients get past the first bytes and then stall
    return b"\xff" + b"\x00" * 8 + b"\x7f\x03"


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc/self/fd")
@pytest.mark.parametrize("secured", [False, True])
def test_raw_tcp_clients_with_garbage_or_idling_leak_no_descriptors(
    tmp_path: Path, secured: bool
) -> None:
    node = peermq.Node(security=SecurityOptions(keys_dir=str(tmp_path))) if secured else \
        peermq.Node()
    opts = SocketOptions(handshake_timeout=0.5)
    rng = random.Random(7)
    with node, peermq.Puller(bind="tcp://127.0.0.1:*", node=node, options=opts) as pull:
        host, port = pull.endpoints[0].removeprefix("tcp://").rsplit(":", 1)
        addr = (host, int(port))
        with contextlib.suppress(TimeoutError):
            pull.recv(timeout=0.2)
        before = fd_count()
        started = time.monotonic()
        tries = 0
        for batch in range(20):
            clients = []
            for i in range(50):
                c = socket.create_connection(addr, timeout=5.0)
                kind = (batch * 50 + i) % 4
                if kind == 0:
                    c.sendall(rng.randbytes(rng.randrange(1, 600)))
                elif kind == 1:
                    c.sendall(greeting() + rng.randbytes(50))
                elif kind == 2:
                    c.sendall(greeting())  # then idle: the handshake timeout must end it
                clients.append((kind, c))
                tries += 1
            for kind, c in clients:
                if kind >= 2:
                    # idlers wait for the node to hang up on them (bounded by the timeout)
                    c.settimeout(5.0)
                    with contextlib.suppress(OSError):
                        while c.recv(4096):
                            pass
                c.close()
        assert tries == 1000
        end = time.monotonic() + 10.0
        while fd_count() > before and time.monotonic() < end:
            with contextlib.suppress(TimeoutError):
                pull.recv(timeout=0.05)
        assert fd_count() <= before, f"{fd_count() - before} descriptors leaked"
        assert time.monotonic() - started < 45.0
        with pytest.raises(TimeoutError):
            pull.recv(timeout=0.1)  # nothing of it became a message
