"""The sender's delivery bookkeeping (no I/O): credit, acks, timeouts, backoff, dead letters."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from peermq.config import Fsync, SpoolOptions
from peermq.errors import ConfigError
from peermq.spool.state import Deliveries

OPTS = SpoolOptions(ack_timeout=10.0, max_deliver=3, backoff=1.0, backoff_max=8.0)


def fresh(**kw: object) -> Deliveries:
    return Deliveries(OPTS, rng=random.Random(1), **kw)  # type: ignore[arg-type]


def test_ack_from_any_link_and_floor() -> None:
    d = fresh()
    a, b = d.link_up("a", 3), d.link_up("b", 3)
    d.sent(a, [1, 2, 3], 0.0)
    d.sent(b, [4, 5], 0.0)
    assert (a.room, b.room, d.cursor, d.in_flight) == (0, 1, 6, 5)
    assert d.ack([2, 4, 4, 99]) == 2  # duplicates and unknown seqs are ignored
    assert d.floor() == 1 and a.room == 1
    d.ack([1, 3, 5])
    assert d.floor() == 6 and d.in_flight == 0 and d.acked == 5


def test_ack_timeout_redelivers_with_backoff_then_dead_letters() -> None:
    d = fresh()
    a = d.link_up("a", 10)
    d.sent(a, [1], 0.0)
    assert d.expire(9.9) == [] and d.due(100.0, 10) == []
    assert d.expire(10.0) == []  # the first redelivery is scheduled, not dead
    assert d.due(10.0, 10) == []  # backoff: 0.5..1.0 s after the timeout
    assert d.due(11.0, 10) == [1]
    d.sent(a, [1], 11.0)
    assert d.redelivered == 1 and d.attempts[1] == 2
    d.expire(21.0)
    assert d.due(21.0 + 2.0, 10) == [1]  # second backoff at most 2 s
    d.sent(a, [1], 23.0)
    assert d.expire(33.0) == [1]  # third delivery unacked: max_deliver=3 reached
    d.forget([1])
    assert d.floor() == 2 and d.due(1e9, 10) == []


def test_a_lost_link_gives_back_what_it_held() -> None:
    d = fresh()
    a, b = d.link_up("a", 5), d.link_up("b", 5)
    d.sent(a, [1, 2], 0.0)
    d.sent(b, [3], 0.0)
    assert d.link_down("a", 1.0) == []
    assert "a" not in d.links and d.in_flight == 1
    assert sorted(d.due(10.0, 10)) == [1, 2]
    assert d.link_down("nobody", 1.0) == []


def test_nack_requeues_or_rejects() -> None:
    d = fresh()
    a = d.link_up("a", 5)
    d.sent(a, [1, 2], 0.0)
    assert d.nack(1, True, 0.0) == []
    assert d.nack(2, False, 0.0) == [2]
    assert d.nack(7, True, 0.0) == []
    assert d.due(5.0, 10) == [1]


def test_restored_state_redelivers_the_unacked_at_once() -> None:
    d = fresh(cursor=10, unacked=[(3, 1), (7, 2), (12, 1)], now=5.0)
    assert d.cursor == 10 and sorted(d.attempts) == [3, 7]  # 12 >= cursor: never delivered
    assert d.floor() == 3
    assert sorted(d.due(5.0, 10)) == [3, 7]
    assert d.snapshot() == (10, [(3, 1), (7, 2)])


@settings(max_examples=200, deadline=None)
@given(n=st.integers(1, 200), seed=st.integers(0, 2**32))
def test_backoff_doubles_is_capped_and_jittered_down(n: int, seed: int) -> None:
    d = Deliveries(OPTS, rng=random.Random(seed))
    full = min(OPTS.backoff_max, OPTS.backoff * 2.0 ** (n - 1))
    assert full / 2 <= d.backoff(n) <= full


@settings(max_examples=100, deadline=None)
@given(ops=st.lists(st.tuples(st.sampled_from(["send", "ack", "nack", "drop", "tick"]),
                              st.integers(0, 30)), max_size=80))
def test_nothing_is_forgotten(ops: list[tuple[str, int]]) -> None:
    """Whatever happens, every seq below the cursor is acked, dead, or still tracked."""
    d = fresh()
    now = 0.0
    acked: set[int] = set()
    dead: set[int] = set()
    links = {}
    for op, x in ops:
        now += 0.5
        if op == "send":
            link = links.get(x % 3) or d.link_up(x % 3, 5)
            links[x % 3] = link
            seqs = d.due(now, link.room) or list(range(d.cursor, d.cursor + min(link.room, 2)))
            if seqs:
                d.sent(link, seqs, now)
        elif op == "ack":
            if x in d.attempts:
                acked.add(x)
            d.ack([x])
        elif op == "nack":
            for s in d.nack(x, x % 2 == 0, now):
                dead.add(s)
                d.forget([s])
        elif op == "drop":
            links.pop(x % 3, None)
            for s in d.link_down(x % 3, now):
                dead.add(s)
                d.forget([s])
        else:
            now += 20.0
            for s in d.expire(now):
                dead.add(s)
                d.forget([s])
    for seq in range(1, d.cursor):
        assert (seq in acked) + (seq in dead) + (seq in d.attempts) == 1, seq
    assert d.floor() == (min(d.attempts) if d.attempts else d.cursor)


@pytest.mark.parametrize("bad", [
    {"fsync": "sometimes"}, {"segment_bytes": 100}, {"max_bytes": 4096, "segment_bytes": 8192},
    {"ack_timeout": 0.0}, {"max_deliver": 0}, {"backoff": 2.0, "backoff_max": 1.0},
    {"prefetch": 0}, {"max_age": 0.0}, {"heartbeat_interval": 2.0, "heartbeat_timeout": 1.0},
    {"checkpoint_interval": -1.0},
])
def test_bad_spool_options_raise_config_error(bad: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        SpoolOptions(**bad)  # type: ignore[arg-type]


def test_fsync_accepts_the_strings_of_the_issue() -> None:
    assert SpoolOptions(fsync="never").fsync is Fsync.NEVER  # type: ignore[arg-type]
    assert SpoolOptions().fsync is Fsync.BATCH
