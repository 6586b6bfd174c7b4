"""ReceiveCore, the sans-I/O receive logic: fast and slow paths must agree exactly."""

from __future__ import annotations

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from peermq import wire
from peermq._core import ReceiveCore
from peermq.config import HeaderMatch, SocketOptions
from peermq.message import Message
from peermq.topics import TopicFilter


def core(**kw: object) -> ReceiveCore:
    return ReceiveCore(token="me/1", options=SocketOptions(),
                       topics=kw.pop("topics", TopicFilter([">"])), **kw)  # type: ignore[arg-type]


def enc(node: str = "aa", stream: int = 1) -> wire.Encoder:
    return wire.Encoder(node, stream, max_size=1 << 20)


def take(c: ReceiveCore, frame: bytes) -> list[Message]:
    first = c.accept(frame)
    out = [] if first is None else [first]
    while c.pending:
        out.append(c.pending.popleft())
    return out


# a sender's action: (which sender, topic, headers or not, batch size or 0, dropped or not)
ACTION = st.tuples(st.integers(0, 2), st.sampled_from(["a", "b", "c.d"]), st.booleans(),
                   st.integers(0, 3), st.booleans())


@given(st.lists(ACTION, max_size=60))
@settings(max_examples=150)
def test_gaps_are_exactly_the_dropped_messages(actions: list[tuple[int, str, bool, int, bool]]) -> None:
    senders = [enc(f"n{i}", i) for i in range(3)]
    c = core()
    sent = dropped = 0
    got: list[Message] = []
    for who, topic, with_headers, batch, drop in actions:
        e = senders[who]
        headers = {"h": "v"} if with_headers else None
        if batch:
            frames = [f for f, _ in e.encode_batch(topic, list(range(batch)), headers, 1.0, 1 << 16)]
            n = batch
        else:
            frames, n = [e.encode(topic, "x", headers, 1.0)], 1
        sent += n
        if drop:
            dropped += n
            continue
        for frame in frames:
            got.extend(take(c, frame))
    # a loss is visible once a later message of the same stream arrives: count only those
    visible = 0
    last_seen: dict[tuple[str, str], int] = {}
    for m in got:
        key = (m.sender, m.topic)
        visible += m.seq - last_seen.get(key, m.seq - 1) - 1 if key in last_seen else 0
        last_seen[key] = m.seq
    assert c.gaps == visible
    assert c.received == len(got)
    for key in last_seen:  # per stream, sequence numbers only go up
        seqs = [m.seq for m in got if (m.sender, m.topic) == key]
        assert seqs == sorted(seqs)


def test_alternating_senders_on_one_topic() -> None:
    a, b = enc("a"), enc("b")
    c = core()
    for _ in range(5):
        take(c, a.encode("t", 1, None, 1.0))
        take(c, b.encode("t", 2, None, 1.0))
    take(c, a.encode("t", 1, {"k": "v"}, 1.0))
    assert (c.gaps, c.received) == (0, 11)


def test_resubscribing_does_not_count_messages_sent_meanwhile_as_lost() -> None:
    e = enc()
    c = core(topics=TopicFilter(["a"]))
    take(c, e.encode("a", 1, None, 1.0))
    c.set_topics(TopicFilter([]))
    e.encode("a", 2, None, 1.0)  # sent while unsubscribed: never arrives
    c.set_topics(TopicFilter(["a"]))
    assert [m.data for m in take(c, e.encode("a", 3, None, 1.0))] == [3]
    assert c.gaps == 0


def test_topic_that_is_not_utf8_is_malformed_not_filtered() -> None:
    frame = b"\xc3\x28" + enc().encode("t", 1, None, 1.0)[1:]
    c = core()
    assert take(c, frame) == []
    assert (c.malformed, c.filtered) == (1, 0)


def test_received_headers_are_read_only_and_maps_may_have_int_keys() -> None:
    c = core()
    [m] = take(c, enc().encode("t", {1: "one"}, {"k": "v"}, 1.0))
    assert m.data == {1: "one"} and m.headers == {"k": "v"}
    with pytest.raises(TypeError):
        m.headers["k"] = "changed"  # type: ignore[index]


def test_header_filter_and_fast_path() -> None:
    e = enc()
    c = core(headers={"r": "eu"}, match=HeaderMatch.ALL)
    assert take(c, e.encode("t", 1, None, 1.0)) == []
    assert [m.data for m in take(c, e.encode("t", 2, {"r": "eu"}, 1.0))] == [2]
    assert take(c, e.encode("t", 3, None, 1.0)) == []
    assert (c.filtered, c.gaps) == (2, 0)


def test_puller_core_takes_any_sequence_without_gaps() -> None:
    e = enc()
    c = core(topics=None, track_gaps=False)
    frames = [e.encode("t", i, None, 1.0) for i in range(6)]
    got = [m for f in frames[::2] for m in take(c, f)]
    assert [m.seq for m in got] == [1, 3, 5] and c.gaps == 0


def test_fast_path_still_refuses_bad_envelopes() -> None:
    e = enc()
    c = core()
    take(c, e.encode("t", 1, None, 1.0))  # the stream is now on the fast path
    good = e.encode("t", 2, None, 1.0)
    assert take(c, good[:-3]) == []  # truncated
    assert take(c, good.replace(b"\x00\x01", b"\x00\x02", 1)) == []  # wrong version
    deep = e.encode("t", 3, None, 1.0)
    nested = b"t\x00\x01\x97\x00\xa2aa\x01\x03\xcb" + deep[-9:-1][:8] + b"\xc0" + b"\x91" * 200 + b"\xc0"
    assert take(c, nested) == []
    assert c.malformed == 3


@pytest.mark.parametrize("track_gaps", [True, False])
def test_a_forged_sequence_number_on_the_hot_path_is_dropped_not_raised(track_gaps: bool) -> None:
    e = enc()
    c = core(topics=None if not track_gaps else TopicFilter([">"]), track_gaps=track_gaps)
    take(c, e.encode("t", 1, None, 1.0))
    take(c, e.encode("t", 2, None, 1.0))  # the stream is hot now
    for bad_seq in ("3", 3.0, None, [3], -1):
        frame = b"t\x00\x01\x97\x00\xa2aa\x01" + msgpack.packb(bad_seq) + msgpack.packb(1.0) + b"\xc0\x01"
        assert take(c, frame) == []
    assert c.malformed == 5
    assert [m.seq for m in take(c, e.encode("t", 3, None, 1.0))] == [3]


def test_a_goodbye_forgets_only_the_publisher_socket_that_sent_it() -> None:
    c = core()
    old, new = 7, 8  # two sockets with one (node, stream): a restart with a fixed node id
    assert take(c, wire.encode_welcome("aa", 1, "host", old)) == []
    assert take(c, wire.encode_welcome("aa", 1, "host", new)) == []  # read before the goodbye
    assert take(c, wire.encode_goodbye("me/1", "aa", 1, old)) == []
    assert set(c.publishers) == {("aa", 1)}, "the live publisher was forgotten"
    assert take(c, wire.encode_goodbye("me/1", "aa", 1, new)) == []
    assert c.publishers == {}
    # peers that send no incarnation (older ones) match by (node, stream) alone
    take(c, wire.encode_welcome("bb", 2, "old-host"))
    take(c, wire.encode_goodbye("me/1", "bb", 2, 99))
    assert c.publishers == {}
    take(c, wire.encode_welcome("cc", 3, "host", 5))
    take(c, wire.encode_goodbye("me/1", "cc", 3))
    assert c.publishers == {}
