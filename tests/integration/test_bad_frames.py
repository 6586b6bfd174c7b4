"""Malformed, oversize and wrong-version frames from a raw pyzmq peer never hurt a receiver."""

from __future__ import annotations

import logging

import msgpack
import pytest
import zmq

import peermq
from peermq import SocketOptions


def good(seq: int, data: object = "ok") -> bytes:
    return b"t.ok\x00\x01" + msgpack.packb([0, "rawpeer", 1, seq, 0.0, None, data])


BAD = [
    b"garbage without terminator",
    b"",
    b"t\x00\x02" + msgpack.packb([0, "rawpeer", 1, 1, 0.0, None, 1]),  # version 2
    b"t\x00\x01" + msgpack.packb([0, "rawpeer", 1, 1, 0.0, None, 1])[:-3],  # truncated
    b"t\x00\x01\xdd\xff\xff\xff\xff",  # array claiming 4 billion elements
    b"\xff\xfe" + b"\x00" * 10,  # an unknown control frame: ignored, not counted
    b"\xffWnot-msgpack",  # a forged welcome
    b"\xc3\x28\x00\x01" + msgpack.packb([0, "rawpeer", 1, 1, 0.0, None, 1]),  # topic not UTF-8
    b"t\x00\x01" + msgpack.packb([0, "rawpeer", 1, 1, 0.0, {"h": 5}, 1]),  # header not str
]
COUNTED = 8  # all of BAD but the unknown control frame


@pytest.fixture
def raw_pub() -> zmq.Socket[bytes]:
    ctx = zmq.Context()
    sock = ctx.socket(zmq.XPUB)
    sock.setsockopt(zmq.LINGER, 0)
    sock.bind("tcp://127.0.0.1:*")
    yield sock
    sock.close(0)
    ctx.term()


def wait_marker(sock: zmq.Socket[bytes]) -> None:
    while True:
        assert sock.poll(5000), "no subscriber"
        if sock.recv().startswith(b"\x01\xffS"):
            return


def test_subscriber_counts_and_drops_bad_frames_and_goes_on(
    raw_pub: zmq.Socket[bytes], caplog: pytest.LogCaptureFixture
) -> None:
    endpoint = raw_pub.getsockopt_string(zmq.LAST_ENDPOINT)
    with caplog.at_level(logging.DEBUG, logger="peermq"), peermq.Subscriber(
        connect=endpoint
    ) as sub:
        wait_marker(raw_pub)
        raw_pub.send(good(1))
        for frame in BAD:
            raw_pub.send(frame)
        raw_pub.send_multipart([good(2), good(3)])  # extra frames are just more frames
        raw_pub.send(good(4))
        got = [sub.recv(timeout=5.0) for _ in range(4)]
        assert [m.seq for m in got] == [1, 2, 3, 4]
        assert sub.stats().malformed == COUNTED
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, "one WARNING, the rest at DEBUG"
    assert "frame.dropped" in warnings[0].getMessage()


def test_oversize_frame_is_never_allocated_and_the_receiver_goes_on(
    raw_pub: zmq.Socket[bytes],
) -> None:
    endpoint = raw_pub.getsockopt_string(zmq.LAST_ENDPOINT)
    opts = SocketOptions(max_message_size=64 * 1024)
    with peermq.Publisher(bind="tcp://127.0.0.1:*") as honest, peermq.Subscriber(
        connect=[endpoint, honest.endpoints[0]], options=opts
    ) as sub:
        honest.wait_for_subscribers(1)
        sub.wait_for_publishers(1)
        wait_marker(raw_pub)
        raw_pub.send(b"t.ok\x00\x01" + b"\x00" * (1024 * 1024))  # 1 MiB > 64 KiB: ZeroMQ refuses
        honest.send("t.ok", "still here")
        msg = sub.recv(timeout=5.0)
        assert msg.data == "still here"
        with pytest.raises(TimeoutError):
            sub.recv(timeout=0.3)


def test_puller_drops_bad_frames_from_a_raw_pusher() -> None:
    ctx = zmq.Context()
    push = ctx.socket(zmq.PUSH)
    push.setsockopt(zmq.LINGER, 0)
    try:
        with peermq.Puller(bind="tcp://127.0.0.1:*") as pull:
            push.connect(pull.endpoints[0])
            for frame in BAD:
                push.send(frame)
            push.send(good(9, "work"))
            msg = pull.recv(timeout=5.0)
            assert (msg.data, msg.seq) == ("work", 9)
            assert pull.stats().malformed == COUNTED
    finally:
        push.close(0)
        ctx.term()
