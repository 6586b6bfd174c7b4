"""Publisher/Subscriber over real ZeroMQ sockets: tcp, ipc, inproc and across processes."""

from __future__ import annotations

import contextlib
import textwrap
import time
from pathlib import Path

import pytest

import peermq
from peermq import HeaderMatch, Message, wire

from ..helpers import python, readline


def drain(sub: peermq.Subscriber, n: int, timeout: float = 5.0) -> list[Message]:
    return [sub.recv(timeout=timeout) for _ in range(n)]


@pytest.fixture(params=["tcp", "ipc", "inproc"])
def endpoint(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return {
        "tcp": "tcp://127.0.0.1:*",
        "ipc": f"ipc://{tmp_path}/pub.sock",
        "inproc": f"inproc://pub-{request.node.name}",
    }[request.param]


def test_everything_sent_after_readiness_arrives(endpoint: str) -> None:
    # plain ZeroMQ loses all of these to the slow joiner; wait_for_subscribers makes it 0
    with peermq.Publisher(bind=endpoint) as pub, peermq.Subscriber(
        connect=pub.endpoints[0]
    ) as sub:
        assert pub.wait_for_subscribers(1, timeout=5.0) == 1
        for i in range(1000):
            pub.send("t.x", i)
        got = drain(sub, 1000)
        assert [m.data for m in got] == list(range(1000))
        assert [m.seq for m in got] == list(range(1, 1001))
        assert {m.sender for m in got} == {pub.node.id}
        assert sub.stats().gaps == 0


def test_subscriber_knows_it_is_connected() -> None:
    with peermq.Publisher(bind="tcp://127.0.0.1:*") as pub, peermq.Subscriber(
        connect=pub.endpoints[0]
    ) as sub:
        pub.wait_for_subscribers(1, timeout=5.0)  # the publisher's thread attaches the peer
        assert sub.wait_for_publishers(1, timeout=5.0) == 1
        assert sub.stats().peers == 1


def test_wait_times_out_cleanly() -> None:
    with peermq.Publisher(bind="tcp://127.0.0.1:*") as pub:
        with pytest.raises(TimeoutError, match="0 of 1 subscribers"):
            pub.wait_for_subscribers(1, timeout=0.2)
    with peermq.Subscriber(connect="tcp://127.0.0.1:1") as sub:
        with pytest.raises(TimeoutError, match="0 of 1 publishers"):
            sub.wait_for_publishers(1, timeout=0.2)
        with pytest.raises(TimeoutError, match="no message"):
            sub.recv(timeout=0.1)


def test_topic_patterns_filter_at_both_ends() -> None:
    with peermq.Publisher(bind="tcp://127.0.0.1:*") as pub, peermq.Subscriber(
        connect=pub.endpoints[0], topics=["orders.*", "metrics.cpu"]
    ) as sub:
        pub.wait_for_subscribers(1, timeout=5.0)
        for topic in ["orders.created", "orders.created.eu", "orders", "metrics.cpu",
                      "metrics.cpu.total", "metrics.mem", "other", "orders.end"]:
            pub.send(topic, topic)
        got = [sub.recv(timeout=5.0).data for _ in range(3)]
        assert got == ["orders.created", "metrics.cpu", "orders.end"]
        # 'orders.created.eu' passed the publisher's prefix 'orders.' but not the exact match;
        # the rest never crossed the wire
        assert sub.stats().filtered == 1
        assert sub.stats().received == 3


def test_subscribe_and_unsubscribe_while_running() -> None:
    with peermq.Publisher(bind="tcp://127.0.0.1:*") as pub, peermq.Subscriber(
        connect=pub.endpoints[0], topics=["a"]
    ) as sub:
        pub.wait_for_subscribers(1, timeout=5.0)
        sub.subscribe("b.>")
        assert sub.topics == ("a", "b.>")
        # a new subscription takes a moment to reach the publisher: send until one arrives
        for i in range(500):
            pub.send("b.x", i)
            try:
                first = sub.recv(timeout=0.01)
                break
            except TimeoutError:
                continue
        else:
            pytest.fail("subscription never took effect")
        assert first.topic == "b.x"
        sub.unsubscribe("b.>")
        assert sub.topics == ("a",)
        pub.send("a", "a-only")
        while (msg := sub.recv(timeout=5.0)).topic != "a":
            pass
        assert msg.data == "a-only"


@pytest.mark.parametrize(
    ("match", "expected"),
    [(HeaderMatch.ALL, ["eu-gold"]), (HeaderMatch.ANY, ["eu-gold", "eu-free", "us-gold"])],
)
def test_header_filters(match: HeaderMatch, expected: list[str]) -> None:
    with peermq.Publisher(bind="tcp://127.0.0.1:*") as pub, peermq.Subscriber(
        connect=pub.endpoints[0], headers={"region": "eu", "tier": "gold"}, match=match
    ) as sub:
        pub.wait_for_subscribers(1, timeout=5.0)
        for region in ("eu", "us"):
            for tier in ("gold", "free"):
                pub.send("t", f"{region}-{tier}", headers={"region": region, "tier": tier})
        pub.send("t", "none")
        pub.send("t", "last", headers={"region": "eu", "tier": "gold"})
        got = []
        while not got or got[-1] != "last":
            got.append(sub.recv(timeout=5.0).data)
        assert got[:-1] == expected
        assert sub.stats().filtered == 5 - len(expected)


def test_send_many_arrives_in_order_with_consecutive_sequence_numbers() -> None:
    opts = peermq.SocketOptions(batch_max_bytes=1024)
    with peermq.Publisher(bind="tcp://127.0.0.1:*", options=opts) as pub, peermq.Subscriber(
        connect=pub.endpoints[0]
    ) as sub:
        pub.wait_for_subscribers(1, timeout=5.0)
        pub.send("a", "single")
        pairs = [("a" if i % 300 < 200 else "b", i) for i in range(1000)]
        assert pub.send_many(pairs, headers={"h": "1"}) == 1000
        got = drain(sub, 1001)
        assert [m.data for m in got[1:]] == [d for _, d in pairs]
        a_seqs = [m.seq for m in got if m.topic == "a"]
        assert a_seqs == list(range(1, len(a_seqs) + 1))
        assert all(m.headers == {"h": "1"} for m in got[1:])
        assert sub.stats().gaps == 0 and pub.stats().sent == 1001


def test_recv_many_and_iteration_and_consume() -> None:
    with peermq.Publisher(bind="tcp://127.0.0.1:*") as pub, peermq.Subscriber(
        connect=pub.endpoints[0]
    ) as sub:
        pub.wait_for_subscribers(1, timeout=5.0)
        pub.send_many([("t", i) for i in range(30)])
        first = sub.recv_many(max_count=10, timeout=5.0)
        assert [m.data for m in first] == list(range(10))
        seen: list[object] = []
        for msg in sub:
            seen.append(msg.data)
            if len(seen) == 10:
                sub.stop()
        assert seen == list(range(10, 20))
        handled: list[object] = []
        assert sub.consume(lambda m: handled.append(m.data), count=10, timeout=5.0) == 10
        assert handled == list(range(20, 30))
        assert sub.consume(handled.append, timeout=0.2) == 0


def test_handler_exception_propagates_and_loses_no_later_message() -> None:
    with peermq.Publisher(bind="tcp://127.0.0.1:*") as pub, peermq.Subscriber(
        connect=pub.endpoints[0]
    ) as sub:
        pub.wait_for_subscribers(1, timeout=5.0)
        pub.send("t", 1)
        pub.send("t", 2)

        def boom(msg: Message) -> None:
            raise RuntimeError(f"bad {msg.data}")

        with pytest.raises(RuntimeError, match="bad 1"):
            sub.consume(boom, timeout=5.0)
        assert sub.recv(timeout=5.0).data == 2


def test_publisher_in_another_process() -> None:
    code = textwrap.dedent(
        """
        import sys, peermq
        with peermq.Publisher(bind="tcp://127.0.0.1:*") as pub:
            print(pub.endpoints[0], flush=True)
            pub.wait_for_subscribers(2, timeout=10.0)
            for i in range(500):
                pub.send("p.x" if i % 2 else "p.y", i, headers={"n": str(i)})
            pub.send("p.end", None)
            sys.stdin.read()
        """
    )
    with python(code) as proc:
        ep = readline(proc)
        with peermq.Subscriber(connect=ep, topics=["p.x", "p.end"]) as odd, peermq.Subscriber(
            connect=ep
        ) as every:
            got_every = [every.recv(timeout=10.0) for _ in range(501)]
            got_odd = [odd.recv(timeout=10.0) for _ in range(251)]
    assert [m.data for m in got_every[:500]] == list(range(500))
    assert [m.data for m in got_odd[:250]] == list(range(1, 500, 2))
    assert got_odd[-1].topic == "p.end"
    assert got_every[3].headers == {"n": "3"}
    assert proc.returncode == 0


def test_many_publishers_one_subscriber() -> None:
    with peermq.Subscriber(bind="tcp://127.0.0.1:*") as sub:
        pubs = [peermq.Publisher(connect=sub.endpoints[0]) for _ in range(3)]
        try:
            # ZeroMQ attaches a bound socket's peers in the thread that owns it: the
            # subscriber must run (wait) for the publishers to see its subscriptions
            assert sub.wait_for_publishers(3, timeout=5.0) == 3
            for p in pubs:
                p.wait_for_subscribers(1, timeout=5.0)
            for i, p in enumerate(pubs):
                p.send("t", i)
            got = sorted(sub.recv(timeout=5.0).data for _ in range(3))  # type: ignore[type-var]
            assert got == [0, 1, 2]
        finally:
            for p in pubs:
                p.close()


def test_a_publisher_that_closes_leaves_the_count_and_the_names() -> None:
    node = peermq.Node(name="three")
    try:
        pubs = [peermq.Publisher(bind="tcp://127.0.0.1:*", node=node) for _ in range(3)]
        with peermq.Subscriber(connect=[p.endpoints[0] for p in pubs],
                               topics=["orders.>"]) as sub:
            for p in pubs:  # a bound publisher attaches its peer (and welcomes it) as it runs
                p.wait_for_subscribers(1, timeout=5.0)
            assert sub.wait_for_publishers(3, timeout=5.0) == 3
            assert sub.publisher_names == {node.id: "three"}
            pubs[0].close()  # its goodbye reaches a subscriber of other topics too
            end = time.monotonic() + 5.0
            while sub.publishers != 2 and time.monotonic() < end:
                with contextlib.suppress(TimeoutError):
                    sub.recv(timeout=0.05)
            assert sub.publishers == 2
            assert sub.stats().peers == 2
            pubs[1].send("orders.x", 1)
            assert sub.recv(timeout=5.0).data == 1
    finally:
        for p in pubs:
            p.close()
        node.close()


def test_a_malformed_goodbye_is_ignored_and_changes_nothing() -> None:
    assert wire.decode_goodbye(b"\xffSabc") is None            # no separator
    assert wire.decode_goodbye(b"\xffSabc\x00\xc1") is None    # msgpack that does not decode
    assert wire.decode_goodbye(b"\xffSabc\x00\x93\x02\xa1n\x01") is None  # another version
    assert wire.decode_goodbye(b"\xffSabc\x00\x93\x01\x01\x01") is None   # node not a str
    with peermq.Publisher(bind="tcp://127.0.0.1:*") as pub, \
            peermq.Subscriber(connect=pub.endpoints[0]) as sub:
        pub.wait_for_subscribers(1, timeout=5.0)
        assert sub.wait_for_publishers(1, timeout=5.0) == 1
        pub._live().send(b"\xffS" + sub.token.encode() + b"\x00junk")
        pub.send("after", 2)
        assert sub.recv(timeout=5.0).data == 2
        assert sub.publishers == 1
        assert sub.stats().malformed == 0
