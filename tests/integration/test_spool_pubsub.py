"""Durable pub/sub: Publisher(spool=...) keeps a log; Subscriber(durable=...) misses nothing
while away and gets the replay then the live stream with no gap at the seam; history."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

import peermq
from peermq import Gap, History, SpoolOptions, aio


def ep(tmp: Path) -> str:
    return f"ipc://{tmp}/pub"


def take(sub: peermq.Subscriber, n: int, timeout: float = 5.0) -> list[object]:
    return [sub.recv(timeout=timeout).data for _ in range(n)]


def test_a_durable_subscriber_gets_what_it_missed_then_the_live_stream(tmp_path: Path) -> None:
    with peermq.Publisher(bind=ep(tmp_path), spool=tmp_path / "log") as pub:
        with peermq.Subscriber(connect=ep(tmp_path), durable="billing") as sub:
            sub.wait_for_publishers(1)
            pub.send_many([("orders.new", i) for i in range(1, 11)])
            assert take(sub, 10) == list(range(1, 11))
        for i in range(11, 51):  # billing is away
            pub.send("orders.new", i)
        with peermq.Subscriber(connect=ep(tmp_path), durable="billing") as sub:
            got: list[object] = []
            nxt = 51
            # publish while the replay is read: the seam between replay and live
            while len(got) < 90:
                if nxt <= 100:
                    pub.send("orders.new", nxt)
                    nxt += 1
                got.append(sub.recv(timeout=5.0).data)
            assert got == list(range(11, 101))  # each once, in order, nothing lost at the seam
            with pytest.raises(TimeoutError):
                sub.recv(timeout=0.2)
            assert sub.stats().gaps == 0 and sub.durable == "billing"


def test_durable_state_survives_a_publisher_restart(tmp_path: Path) -> None:
    opts = SpoolOptions(checkpoint_interval=0.01)
    with peermq.Publisher(bind=ep(tmp_path), spool=tmp_path / "log", spool_options=opts) as pub:
        with peermq.Subscriber(connect=ep(tmp_path), topics="t.>", durable="d") as sub:
            sub.wait_for_publishers(1)
            pub.send_many([("t.a", i) for i in range(5)])
            assert sub.consume(lambda m: None, count=5, timeout=5.0) == 5
        gone = {"d": {"cursor": 6, "unacked": 0, "linked": False}}
        end = time.monotonic() + 5.0
        while pub.spool_stats()["consumers"] != gone and time.monotonic() < end:
            time.sleep(0.01)  # its acks and its leaving reach the publisher's link thread
        assert pub.spool_stats()["consumers"] == gone
        pub.send("t.a", 5)
    with peermq.Publisher(bind=ep(tmp_path), spool=tmp_path / "log", spool_options=opts) as pub:
        pub.send("t.a", 6)
        with peermq.Subscriber(connect=ep(tmp_path), topics="t.>", durable="d") as sub:
            assert take(sub, 2) == [5, 6]
        want = {"d": {"cursor": 8, "unacked": 0, "linked": False}}
        end = time.monotonic() + 5.0
        while pub.spool_stats()["consumers"] != want and time.monotonic() < end:
            time.sleep(0.01)  # the link thread takes the last acks and the disconnection
        assert pub.spool_stats()["consumers"] == want


def test_topics_are_filtered_at_the_publisher(tmp_path: Path) -> None:
    with peermq.Publisher(bind=ep(tmp_path), spool=tmp_path / "log") as pub, \
            peermq.Subscriber(connect=ep(tmp_path), topics=["orders.*"],
                              headers={"region": "eu"}, durable="eu-orders") as sub:
        sub.wait_for_publishers(1)
        pub.send("users.new", 1)
        pub.send("orders.new", 2, headers={"region": "eu"})
        pub.send("orders.new", 3, headers={"region": "us"})
        pub.send("orders.paid.late", 4, headers={"region": "eu"})
        pub.send("orders.paid", 5, headers={"region": "eu"})
        assert take(sub, 2) == [2, 5]
        with pytest.raises(TimeoutError):
            sub.recv(timeout=0.2)
        assert sub.stats().filtered == 1  # the header filter is applied by the subscriber


def test_history_from_a_seq_since_a_time_and_the_last_n_per_topic(tmp_path: Path) -> None:
    with peermq.Publisher(bind=ep(tmp_path), spool=tmp_path / "log") as pub:
        pub.send_many([("a", 1), ("b", 2), ("a", 3)])
        cut = time.time()
        time.sleep(0.01)  # timestamps on either side of the cut (wall clock, not a wait)
        pub.send_many([("b", 4), ("a", 5), ("c", 6)])
        pub.flush()

        def first(history: History, n: int, topics: str = ">") -> list[object]:
            with peermq.Subscriber(connect=ep(tmp_path), topics=topics,
                                   history=history) as sub:
                got = take(sub, n)
                with pytest.raises(TimeoutError):
                    sub.recv(timeout=0.2)
                return got

        assert first(History(from_seq=4), 3) == [4, 5, 6]
        assert first(History(since=cut), 3) == [4, 5, 6]
        assert sorted(first(History(last=1), 3)) == [4, 5, 6]  # type: ignore[type-var]
        assert first(History(last=2), 2, topics="a") == [3, 5]
        assert first(History(), 0) == []  # only what comes from now on


def test_retention_that_deletes_unread_messages_reports_a_gap(tmp_path: Path) -> None:
    opts = SpoolOptions(segment_bytes=4096, max_bytes=12288, checkpoint_interval=0.01)
    gaps: list[Gap] = []
    with peermq.Publisher(bind=ep(tmp_path), spool=tmp_path / "log", spool_options=opts) as pub:
        with peermq.Subscriber(connect=ep(tmp_path), durable="slow") as sub:
            sub.wait_for_publishers(1)
        for i in range(200):  # far more than the log keeps while "slow" is away
            pub.send("t", b"x" * 200 + i.to_bytes(2, "big"))
        end = time.monotonic() + 5.0
        while pub.log.log.size > opts.max_bytes and time.monotonic() < end:
            time.sleep(0.01)  # until the link thread's retention has run its course
        assert pub.log.log.first_seq() > 1
        with peermq.Subscriber(connect=ep(tmp_path), durable="slow", on_gap=gaps.append) as sub:
            got = []
            while True:
                try:
                    msg = sub.recv(timeout=0.5)
                except TimeoutError:
                    break
                assert isinstance(msg.data, bytes)
                got.append(int.from_bytes(msg.data[-2:], "big") + 1)  # its seq
            lost = [seq for g in gaps for seq in range(g.first, g.first + g.lost)]
            # every message is delivered or reported lost, exactly once, none silently missing
            assert sorted(got + lost) == list(range(1, 201))
            assert got == sorted(got) and lost and sub.stats().gaps == len(lost)


def test_the_wrong_kinds_are_not_linked(tmp_path: Path) -> None:
    with peermq.Publisher(bind=ep(tmp_path), spool=tmp_path / "log") as pub, \
            peermq.Puller(connect=ep(tmp_path), ack=peermq.AckMode.AUTO) as pull:
        with pytest.raises(TimeoutError):
            pull.wait_for_peers(1, timeout=0.5)
        assert pub.subscribers == 0


def test_asyncio_durable_subscriber(tmp_path: Path) -> None:
    async def main() -> None:
        async with aio.Publisher(bind=ep(tmp_path), spool=tmp_path / "log") as pub:
            await pub.send_many([("t", i) for i in range(3)])
            async with aio.Subscriber(connect=ep(tmp_path), durable="a",
                                      history=History(from_seq=1)) as sub:
                assert [(await sub.recv(timeout=5.0)).data for _ in range(3)] == [0, 1, 2]
                await pub.send("t", 3)
                assert (await sub.recv(timeout=5.0)).data == 3
                await pub.wait_for_subscribers(1)

    asyncio.run(main())
