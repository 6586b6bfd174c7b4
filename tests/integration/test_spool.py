"""Spooled Pusher/Puller over real sockets: acks, redelivery, dead letters, limits, topologies."""

from __future__ import annotations

import asyncio
import pickle
import shutil
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

import peermq
import peermq.aio
from peermq import AckMode, Delivery, SpoolOptions
from peermq._kinds import PullerBase, PusherBase

from ..helpers import python, readline

FAST = SpoolOptions(ack_timeout=0.5, backoff=0.01, backoff_max=0.05, checkpoint_interval=0.05)


def wait_for(pred: Callable[[], object], timeout: float = 5.0) -> None:
    end = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > end:
            raise AssertionError("condition not met in time")
        time.sleep(0.01)


def recv(pull: peermq.Puller, timeout: float = 5.0) -> Delivery:
    msg = pull.recv(timeout=timeout)
    assert isinstance(msg, Delivery)
    return msg


def test_a_message_held_by_a_puller_that_leaves_goes_to_another(tmp_path: Path) -> None:
    with peermq.Pusher(bind="tcp://127.0.0.1:*", spool=tmp_path / "s", spool_options=FAST) as push:
        ep = push.endpoints[0]
        with peermq.Puller(connect=ep, ack=AckMode.EXPLICIT) as a:
            push.wait_for_peers(1)
            push.send("jobs", b"one")
            first = recv(a)
            assert (first.data, first.deliveries, first.redelivered) == (b"one", 1, False)
        # a closed without acking: what it held is delivered again, to whoever is there
        with peermq.Puller(connect=ep, ack=AckMode.EXPLICIT) as b:
            again = recv(b)
            assert (again.data, again.spool_seq, again.redelivered) == (b"one", 1, True)
            again.ack()
            b.flush_acks()
            push.wait_for_acks(timeout=5.0)


def test_an_unacked_message_comes_back_after_the_ack_timeout(tmp_path: Path) -> None:
    opts = SpoolOptions(ack_timeout=0.3, backoff=0.01, backoff_max=0.02, prefetch=1)
    with peermq.Pusher(bind="tcp://127.0.0.1:*", spool=tmp_path / "s",
                       spool_options=opts) as push, \
            peermq.Puller(connect=push.endpoints[0], ack=AckMode.EXPLICIT,
                          spool_options=opts) as slow, \
            peermq.Puller(connect=push.endpoints[0], ack=AckMode.EXPLICIT,
                          spool_options=opts) as other:
        push.wait_for_peers(2)
        sent_at = time.monotonic()
        push.send("jobs", b"slow")
        for holder, waiter in ((slow, other), (other, slow)):  # noqa: B007
            try:
                first = recv(holder, timeout=0.3)
                break
            except TimeoutError:
                continue
        with pytest.raises(TimeoutError):
            holder.recv(timeout=0.1)  # its own copy is not handed out twice
        again = recv(waiter, timeout=5.0)
        assert again.data == b"slow" and again.deliveries >= 2
        assert time.monotonic() - sent_at >= 0.3  # not before the ack timeout
        again.ack()
        waiter.flush_acks()
        first.ack()  # late: harmless
        holder.flush_acks()
        push.wait_for_acks(timeout=5.0)


def test_nacks_requeue_until_max_deliver_then_dead_letter(tmp_path: Path) -> None:
    opts = SpoolOptions(max_deliver=3, backoff=0.01, backoff_max=0.02)
    with peermq.Pusher(bind="tcp://127.0.0.1:*", spool=tmp_path / "s",
                       spool_options=opts) as push, \
            peermq.Puller(connect=push.endpoints[0], ack=AckMode.EXPLICIT) as pull:
        push.wait_for_peers(1)
        push.send("jobs", b"poison")
        push.send("jobs", b"rejected")
        seen = []
        for _ in range(4):
            msg = recv(pull)
            seen.append((msg.data, msg.deliveries))
            msg.nack(requeue=msg.data == b"poison")
        assert seen == [(b"poison", 1), (b"rejected", 1), (b"poison", 2), (b"poison", 3)]
        with pytest.raises(TimeoutError):
            pull.recv(timeout=0.3)
        push.wait_for_acks(timeout=5.0)
        assert push.spool_stats().dead == 2


def test_consume_acks_when_the_handler_returns_and_nacks_when_it_raises(
    tmp_path: Path,
) -> None:
    with peermq.Pusher(bind="tcp://127.0.0.1:*", spool=tmp_path / "s",
                       spool_options=FAST) as push, \
            peermq.Puller(connect=push.endpoints[0], spool=tmp_path / "p") as pull:
        push.wait_for_peers(1)
        push.send_many([("jobs", i) for i in range(5)])
        failed = []

        def handler(msg: peermq.Message) -> None:
            if msg.data == 3 and not failed:
                failed.append(msg)
                raise RuntimeError("boom")

        with pytest.raises(RuntimeError):
            pull.consume(handler, timeout=5.0)
        assert pull.consume(handler, count=2, timeout=5.0) == 2  # 4, then 3 again
        pull.flush_acks()
        push.wait_for_acks(timeout=5.0)
        assert push.spool_stats().redelivered == 1


def test_pullers_share_the_work_and_each_message_is_handled_once(tmp_path: Path) -> None:
    total = 600
    with peermq.Pusher(bind="tcp://127.0.0.1:*", spool=tmp_path / "s") as push:
        pulls = [peermq.Puller(connect=push.endpoints[0], ack=AckMode.AUTO) for _ in range(3)]
        try:
            push.wait_for_peers(3)
            push.send_many([("jobs", i) for i in range(total)])
            seen: Counter[int] = Counter()
            by: Counter[int] = Counter()
            end = time.monotonic() + 10.0
            while sum(seen.values()) < total and time.monotonic() < end:
                for k, p in enumerate(pulls):
                    try:
                        msg = p.recv(timeout=0.01)
                    except TimeoutError:
                        continue
                    assert isinstance(msg.data, int)
                    seen[msg.data] += 1
                    by[k] += 1
            assert set(seen) == set(range(total)) and max(seen.values()) == 1
            assert all(by[k] > 0 for k in range(3)), by
        finally:
            for p in pulls:
                p.close()
        push.wait_for_acks(timeout=5.0)


def test_a_sink_binds_and_spooled_pushers_connect(tmp_path: Path) -> None:
    with peermq.Puller(bind="tcp://127.0.0.1:*", ack=AckMode.AUTO) as sink:
        pushers = [peermq.Pusher(connect=sink.endpoints[0], spool=tmp_path / f"w{i}")
                   for i in range(2)]
        try:
            for i, push in enumerate(pushers):
                push.send_many([("results", (i, n)) for n in range(50)])
            got: set[tuple[int, int]] = set()
            sink.consume(lambda m: got.add(tuple(m.data)), count=100, timeout=10.0)  # type: ignore[arg-type]
            assert got == {(i, n) for i in range(2) for n in range(50)}
            sink.flush_acks()
            for push in pushers:
                push.wait_for_acks(timeout=5.0)
        finally:
            for push in pushers:
                push.close()


def test_what_was_not_acked_is_delivered_by_the_next_pusher_on_the_spool(
    tmp_path: Path,
) -> None:
    with peermq.Pusher(spool=tmp_path / "s") as push:
        push.send_many([("jobs", i) for i in range(10)])
        assert push.pending() == 10
        assert push.flush() == 10
    with peermq.Pusher(bind="tcp://127.0.0.1:*", spool=tmp_path / "s") as push:
        with peermq.Puller(connect=push.endpoints[0], ack=AckMode.AUTO) as pull:
            assert [recv(pull).data for _ in range(10)] == list(range(10))
            push.send("jobs", 10)
            assert recv(pull).data == 10
        push.wait_for_acks()  # close() acked the last one handed out (AUTO mode)


def test_a_second_process_cannot_open_a_spool_and_is_told_who_has_it(
    tmp_path: Path,
) -> None:
    code = """
    import sys, peermq
    with peermq.Pusher(spool=sys.argv[1]):
        print("open", flush=True)
        sys.stdin.readline()
    """
    with python(code, str(tmp_path / "s")) as child:
        assert readline(child) == "open"
        with pytest.raises(peermq.SpoolLockedError, match=f"process {child.pid}") as err:
            peermq.Pusher(spool=tmp_path / "s")
        assert err.value.pid == child.pid
    with peermq.Pusher(spool=tmp_path / "s"):
        pass  # free once the holder is gone


def test_a_full_spool_waits_then_raises_and_stores_nothing(tmp_path: Path) -> None:
    opts = SpoolOptions(segment_bytes=4096, max_bytes=16384, full_timeout=0.2)
    with peermq.Pusher(spool=tmp_path / "s", spool_options=opts) as push:
        with pytest.raises(peermq.SpoolFullError):
            for _ in range(1000):
                push.send("jobs", b"x" * 1000)
        stored = push.last_seq
        start = time.monotonic()
        with pytest.raises(peermq.SpoolFullError):
            push.send("jobs", b"more")
        assert time.monotonic() - start >= 0.19
        assert push.last_seq == stored
    now = SpoolOptions(segment_bytes=4096, max_bytes=16384, full_timeout=0.0)
    with peermq.Pusher(spool=tmp_path / "s", spool_options=now) as push:
        start = time.monotonic()
        with pytest.raises(peermq.SpoolFullError):
            push.send("jobs", b"more")
        assert time.monotonic() - start < 0.1


def test_a_full_spool_takes_more_once_a_puller_acks(tmp_path: Path) -> None:
    fill = SpoolOptions(segment_bytes=4096, max_bytes=16384, full_timeout=0.0)
    with peermq.Pusher(spool=tmp_path / "s", spool_options=fill) as push:
        with pytest.raises(peermq.SpoolFullError):
            while True:
                push.send("jobs", b"x" * 500)
        n = push.last_seq
    wait = SpoolOptions(segment_bytes=4096, max_bytes=16384, full_timeout=5.0,
                        checkpoint_interval=0.01)
    with peermq.Pusher(bind="tcp://127.0.0.1:*", spool=tmp_path / "s",
                       spool_options=wait) as push, \
            peermq.Puller(connect=push.endpoints[0], ack=AckMode.AUTO) as pull:
        assert pull.consume(lambda m: None, count=n, timeout=5.0) == n
        pull.flush_acks()
        push.send("jobs", b"fits now")  # waits for the acks to free a segment
        assert recv(pull).data == b"fits now"


def test_an_undecodable_record_goes_to_the_dead_letters(tmp_path: Path) -> None:
    with peermq.Pusher(bind="tcp://127.0.0.1:*", spool=tmp_path / "s") as push, \
            peermq.Puller(connect=push.endpoints[0], ack=AckMode.AUTO) as pull:
        push.spool.append([b"not a frame"])
        push.send("jobs", b"fine")
        assert recv(pull).data == b"fine"
        pull.flush_acks()
        wait_for(lambda: push.spool_stats().dead == 1)
        assert pull.stats().malformed == 1


def test_delivery_is_a_message_and_pickles_as_one(tmp_path: Path) -> None:
    with peermq.Pusher(bind="tcp://127.0.0.1:*", spool=tmp_path / "s") as push, \
            peermq.Puller(connect=push.endpoints[0], ack=AckMode.EXPLICIT) as pull:
        push.send("t", {"k": 1}, headers={"h": "v"})
        msg = recv(pull)
        assert isinstance(msg, peermq.Message) and msg.topic == "t" and msg.headers == {"h": "v"}
        topic, data, _, sender, _, seq, _ = msg
        assert (topic, data, seq, sender) == ("t", {"k": 1}, 1, push.node.id)
        plain = pickle.loads(pickle.dumps(msg))
        assert type(plain) is peermq.Message and plain == msg
        msg.ack()
        assert msg.settled
        msg.nack()  # settled: nothing happens
        pull.flush_acks()
        push.wait_for_acks()


def test_plain_socket_bases_refuse_spool_arguments() -> None:
    with pytest.raises(peermq.ConfigError):
        PusherBase(spool="x")
    with pytest.raises(peermq.ConfigError):
        PullerBase(ack=AckMode.AUTO)


def test_a_puller_with_a_spool_drops_a_copy_after_its_own_restart(tmp_path: Path) -> None:
    # a sender that lost the ack: replayed from a copy of its spool taken before the ack came
    with peermq.Pusher(spool=tmp_path / "s") as push:
        push.send("jobs", b"once")
    shutil.copytree(tmp_path / "s", tmp_path / "copy", ignore=shutil.ignore_patterns("lock"))
    handled: list[object] = []
    dropped = []
    for spool in ("s", "copy"):
        with peermq.Pusher(bind="tcp://127.0.0.1:*", spool=tmp_path / spool) as push:
            with peermq.Puller(connect=push.endpoints[0], spool=tmp_path / "p") as pull:
                pull.consume(lambda m: handled.append(m.data), timeout=0.5)
                pull.flush_acks()
                push.wait_for_acks(timeout=5.0)  # acked either way: handled, or dropped
                dropped.append(pull.stats().duplicates)
    assert handled == [b"once"] and dropped == [0, 1]


@pytest.mark.parametrize("timeout", [-1.0, "5", True])
def test_a_bad_wait_timeout_is_a_config_error_and_loses_nothing(tmp_path: Path,
                                                                 timeout: object) -> None:
    """Both flavours refuse a negative or non-number timeout the same way (ConfigError)."""
    with peermq.Pusher(bind="tcp://127.0.0.1:*", spool=tmp_path / "s") as push:
        push.send("jobs", b"kept")
        for wait in (push.wait_for_acks, push.wait_for_peers):
            with pytest.raises(peermq.ConfigError, match="timeout"):
                wait(timeout=timeout)  # type: ignore[arg-type]
        assert push.pending() == 1

    async def main() -> None:
        async with peermq.aio.Pusher(bind="tcp://127.0.0.1:*", spool=tmp_path / "s") as apush:
            with pytest.raises(peermq.ConfigError, match="timeout"):
                await apush.wait_for_acks(timeout=timeout)  # type: ignore[arg-type]
            assert apush.pending() == 1

    asyncio.run(main())
