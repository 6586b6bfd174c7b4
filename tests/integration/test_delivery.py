"""Drops are never silent: gaps, drop counting, back-pressure, and shutdown accounting."""

from __future__ import annotations

import gc
import os
import time

import pytest

import peermq
from peermq import Gap, OnFull, SendTimeoutError, SocketOptions

PAYLOAD = b"x" * 1024


def wait_for(pred: object, timeout: float = 5.0) -> None:
    end = time.monotonic() + timeout
    while not pred():  # type: ignore[operator]
        if time.monotonic() > end:
            raise AssertionError("condition not met in time")
        time.sleep(0.01)


def test_a_receiver_that_falls_behind_sees_every_loss_as_a_gap() -> None:
    small = SocketOptions(send_hwm=50, recv_hwm=50)
    gaps: list[Gap] = []
    with peermq.Publisher(bind="tcp://127.0.0.1:*", options=small) as pub, peermq.Subscriber(
        connect=pub.endpoints[0], options=small, on_gap=gaps.append
    ) as sub:
        pub.wait_for_subscribers(1, timeout=5.0)
        total = 20_000
        for _ in range(total):  # the subscriber reads nothing meanwhile: queues overflow
            pub.send("t", PAYLOAD)
        received = 0
        while True:
            try:
                sub.recv(timeout=0.5)
                received += 1
            except TimeoutError:
                break
        pub.send("t", b"end")  # lands in an empty queue: every earlier loss is now visible
        assert sub.recv(timeout=5.0).data == b"end"
        received += 1
        stats = sub.stats()
        assert stats.gaps > 0, "the flood should have overflowed a 50-message queue"
        assert received + stats.gaps == total + 1
        assert sum(g.lost for g in gaps) == stats.gaps
        assert all(g.sender == pub.node.id and g.topic == "t" for g in gaps)
        # the subscriber reported its losses upstream: the publisher counts them per peer
        wait_for(lambda: pub.stats().dropped == stats.gaps)
        assert pub.stats().dropped_by_peer == {sub.token: stats.gaps}


def test_pusher_drop_policy_counts_every_drop() -> None:
    opts = SocketOptions(send_hwm=20, recv_hwm=20, on_full=OnFull.DROP)
    with peermq.Pusher(bind="tcp://127.0.0.1:*", options=opts) as push, peermq.Puller(
        connect=push.endpoints[0], options=opts
    ) as pull:
        push.wait_for_peers(1, timeout=5.0)
        results = [push.send("jobs", PAYLOAD) for _ in range(20_000)]
        accepted = sum(results)
        assert accepted < 20_000
        assert push.stats().dropped == 20_000 - accepted
        received = 0
        while True:
            try:
                pull.recv(timeout=0.5)
                received += 1
            except TimeoutError:
                break
        assert received == accepted  # what was not counted as dropped arrived


def test_pusher_blocks_then_raises_and_sends_nothing() -> None:
    opts = SocketOptions(on_full=OnFull.BLOCK, send_timeout=0.2)
    with peermq.Pusher(bind="tcp://127.0.0.1:*", options=opts) as push:
        with pytest.raises(SendTimeoutError, match="was not sent"):
            push.send("jobs", 1)  # nobody to take it
        with peermq.Puller(connect=push.endpoints[0]) as pull:
            push.wait_for_peers(1, timeout=5.0)
            push.send("jobs", 2)
            msg = pull.recv(timeout=5.0)
        assert (msg.data, msg.seq) == (2, 1)  # the failed send took no sequence number
        assert push.stats().sent == 1


def test_publisher_block_policy_applies_back_pressure_without_loss() -> None:
    opts = SocketOptions(send_hwm=20, recv_hwm=20, on_full=OnFull.BLOCK, send_timeout=0.2)
    with peermq.Publisher(bind="tcp://127.0.0.1:*", options=opts) as pub, peermq.Subscriber(
        connect=pub.endpoints[0], options=opts
    ) as sub:
        pub.wait_for_subscribers(1, timeout=5.0)
        sent = 0
        with pytest.raises(SendTimeoutError):
            for _ in range(100_000):
                pub.send("t", PAYLOAD)
                sent += 1
        got = 0
        while True:
            try:
                sub.recv(timeout=0.5)
                got += 1
            except TimeoutError:
                break
        assert got == sent
        assert sub.stats().gaps == 0
        pub.send("t", b"after")  # room again
        assert sub.recv(timeout=5.0).seq == sent + 1


def test_close_says_how_many_unread_messages_it_discarded() -> None:
    with peermq.Publisher(bind="tcp://127.0.0.1:*") as pub:
        sub = peermq.Subscriber(connect=pub.endpoints[0])
        pub.wait_for_subscribers(1, timeout=5.0)
        pub.send_many([("t", i) for i in range(100)])
        pub.send("t", "last")
        first = sub.recv(timeout=5.0)
        assert first.data == 0
        wait_for(lambda: sub._sock is not None and sub._sock.poll(0))
        time.sleep(0.1)  # let the rest of the 101 cross loopback; the count must be exact anyway
        discarded = sub.close()
        assert discarded == 100
        assert sub.close() == 0  # idempotent


def test_close_with_a_stalled_peer_is_bounded_by_linger() -> None:
    opts = SocketOptions(linger=0.3, send_hwm=10, recv_hwm=10)
    node = peermq.Node()
    push = peermq.Pusher(bind="tcp://127.0.0.1:*", options=opts, node=node)
    pull = peermq.Puller(connect=push.endpoints[0], options=opts, node=node)
    push.wait_for_peers(1, timeout=5.0)
    sent = 0
    with pytest.raises(SendTimeoutError):
        while True:  # the puller never reads: its queue and then ours fill up
            push.send("t", PAYLOAD)
            sent += 1
    assert sent > 0
    start = time.monotonic()
    assert push.close() == 0
    assert pull.close() > 0  # what the puller never read is counted as discarded
    node.close()  # terminating the context waits for each socket's linger, no longer
    assert time.monotonic() - start < 3.0


@pytest.mark.parametrize("kind", [peermq.Publisher, peermq.Pusher, peermq.Subscriber, peermq.Puller])
def test_use_after_close(kind: type[peermq.Publisher]) -> None:
    sock = kind(bind="tcp://127.0.0.1:*")
    sock.close()
    assert sock.closed
    for call in (
        lambda: sock.bind("tcp://127.0.0.1:*"),
        lambda: sock.connect("tcp://127.0.0.1:9"),
        lambda: getattr(sock, "send", lambda *a: sock.recv(timeout=0))("t", 1),  # type: ignore[attr-defined]
    ):
        with pytest.raises(peermq.ClosedError):
            call()
    sock.close()


def test_unclosed_socket_warns_and_leaks_no_descriptor() -> None:
    peermq.Publisher().close()  # the node's context and its threads exist from here on
    before = len(os.listdir("/proc/self/fd"))
    with pytest.warns(ResourceWarning, match="unclosed Publisher"):
        sock = peermq.Publisher()
        del sock
        gc.collect()
    assert len(os.listdir("/proc/self/fd")) <= before


def test_bind_conflict_is_a_peer_error() -> None:
    with peermq.Publisher(bind="tcp://127.0.0.1:*") as a:
        with pytest.raises(peermq.PeerError, match="in use"):
            peermq.Publisher(bind=a.endpoints[0])


def test_stats_survive_close() -> None:
    with peermq.Publisher(bind="tcp://127.0.0.1:*") as pub, peermq.Subscriber(
        connect=pub.endpoints[0]
    ) as sub:
        pub.wait_for_subscribers(1, timeout=5.0)
        pub.send("t", 1)
        sub.recv(timeout=5.0)
    assert pub.stats().sent == 1 and sub.stats().received == 1
