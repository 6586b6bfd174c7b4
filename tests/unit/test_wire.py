from __future__ import annotations

import math

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from peermq import wire
from peermq.errors import EncodeError, TopicError, WireError

VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=20)
    | st.binary(max_size=40),
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
HEADERS = st.none() | st.dictionaries(st.text(max_size=8), st.text(max_size=8), min_size=1, max_size=3)


def enc(**kw: int) -> wire.Encoder:
    return wire.Encoder("n0de", 3, max_size=kw.get("max_size", 1 << 20), max_count=kw.get("max_count", 4096))


@given(VALUES, HEADERS)
def test_single_round_trip(data: object, headers: dict[str, str] | None) -> None:
    e = enc()
    frame = e.encode("orders.created", data, headers, 12.5)
    raw, env = wire.decode_data(frame)
    assert raw == b"orders.created"
    assert env == [wire.SINGLE, "n0de", 3, 1, 12.5, headers, data]
    assert frame.startswith(b"orders.created\x00\x01")


def test_sequence_numbers_count_per_topic_and_rewind() -> None:
    e = enc()
    seqs = [wire.decode_data(e.encode(t, 0, None, 0.0))[1][3] for t in ["a", "a", "b", "a"]]
    assert seqs == [1, 2, 1, 3]
    e.rewind("a", 1)
    assert wire.decode_data(e.encode("a", 0, None, 0.0))[1][3] == 3


def test_bad_data_takes_no_sequence_number() -> None:
    e = enc()
    e.encode("a", 1, None, 0.0)
    with pytest.raises(EncodeError, match="msgpack-serialisable"):
        e.encode("a", object(), None, 0.0)
    assert wire.decode_data(e.encode("a", 2, None, 0.0))[1][3] == 2


def test_oversize_message_is_refused_and_takes_no_number() -> None:
    e = enc(max_size=200)
    with pytest.raises(EncodeError, match="max_message_size"):
        e.encode("a", b"x" * 300, None, 0.0)
    assert e.last_seq("a") == 0


def test_bad_topic_is_refused() -> None:
    with pytest.raises(TopicError):
        enc().encode("a..b", 1, None, 0.0)


@given(st.lists(VALUES, min_size=1, max_size=60), st.integers(min_value=64, max_value=600))
@settings(max_examples=60)
def test_batches_split_and_number_consecutively(items: list[object], max_bytes: int) -> None:
    e = enc(max_count=7)
    e.encode("t", "first", None, 0.0)
    frames = e.encode_batch("t", items, {"k": "v"}, 1.0, max_bytes)
    out: list[object] = []
    expected_seq = 2
    for frame, n in frames:
        _, env = wire.decode_data(frame)
        assert env[0] == wire.BATCH and env[3] == expected_seq and env[5] == {"k": "v"}
        assert len(env[6]) == n <= 7
        expected_seq += n
        out.extend(env[6])
    assert out == items
    assert e.last_seq("t") == 1 + len(items)


def test_batch_with_bad_item_sends_nothing() -> None:
    e = enc()
    with pytest.raises(EncodeError):
        e.encode_batch("t", [1, object()], None, 0.0, 1000)
    assert e.last_seq("t") == 0


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        (b"", "no topic terminator"),
        (b"\x00\x01\x90", "no topic terminator"),
        (b"topic-without-nul", "no topic terminator"),
        (b"t\x00", "truncated"),
        (b"t\x00\x02" + msgpack.packb([0, "n", 1, 1, 0.0, None, 1]), "version 2"),
        (b"t\x00\x01\xc1", "undecodable"),
        (b"t\x00\x01" + msgpack.packb([0, "n", 1, 1, 0.0, None]), "7-element"),
        (b"t\x00\x01" + msgpack.packb({"a": 1}), "7-element"),
        (b"t\x00\x01" + msgpack.packb([0, 5, 1, 1, 0.0, None, 1]), "wrong types"),
        (b"t\x00\x01" + msgpack.packb([0, "n", 1, 0, 0.0, None, 1]), "wrong types"),
        (b"t\x00\x01" + msgpack.packb([0, "n", 1, 1, "x", None, 1]), "wrong types"),
        (b"t\x00\x01" + msgpack.packb([0, "n", 1, 1, 0.0, [1], 1]), "not a map"),
        (b"t\x00\x01" + msgpack.packb([0, "n", 1, 1, 0.0, {"a": 1}, 1]), "strings"),
        (b"t\x00\x01" + msgpack.packb([1, "n", 1, 1, 0.0, None, 1]), "batch payload"),
        (b"t\x00\x01" + msgpack.packb([9, "n", 1, 1, 0.0, None, 1]), "unknown envelope kind"),
        (b"t\x00\x01" + msgpack.packb([0, "n", 1, 1, 0.0, None, 1]) + b"\x00", "undecodable"),
        # a declared length far beyond the frame: refused, nothing allocated
        (b"t\x00\x01\xdd\xff\xff\xff\xff", "undecodable"),
        (b"t\x00\x01\xc6\x7f\xff\xff\xff", "undecodable"),
    ],
)
def test_malformed_frames_raise_wire_error(frame: bytes, reason: str) -> None:
    with pytest.raises(WireError, match=reason):
        wire.decode_data(frame)


def test_deep_nesting_is_a_wire_error_not_a_crash() -> None:
    deep = b"\x91" * 100_000 + b"\xc0"
    with pytest.raises(WireError):
        wire.decode_data(b"t\x00\x01\x97\x00\xa1n\x01\x01\xcb" + b"\x00" * 8 + b"\xc0" + deep)


@given(st.binary(max_size=300))
@settings(max_examples=400)
def test_random_bytes_never_raise_anything_but_wire_error(frame: bytes) -> None:
    try:
        wire.decode_data(frame)
    except WireError:
        pass


@given(st.binary(min_size=1, max_size=200))
def test_truncations_of_a_good_frame_fail_cleanly(tail: bytes) -> None:
    frame = enc().encode("a.b", {"k": [1, 2, tail]}, {"h": "v"}, 1.0)
    for cut in range(len(frame)):
        try:
            wire.decode_data(frame[:cut])
        except WireError:
            continue


def test_control_frames_round_trip_and_reject_garbage() -> None:
    assert wire.decode_welcome(wire.encode_welcome("n", 2, "host-1")) == ("n", 2, "host-1", None)
    assert wire.decode_welcome(wire.encode_welcome("n", 2, "host-1", 7)) == ("n", 2, "host-1", 7)
    # an incarnation that is not an int is no incarnation: the welcome still counts
    assert wire.decode_welcome(b"\xffW" + msgpack.packb([1, "n", 2, "h", "x"])) == \
        ("n", 2, "h", None)
    assert wire.decode_gap(wire.encode_gap("tok", "n", 2, 5)) == ("tok", "n", 2, 5)
    for bad in (b"\xffW", b"\xffW\x93\x01\xa1n\x02", b"\xffWgarbage"):
        with pytest.raises(WireError):
            wire.decode_welcome(bad)
    for bad in (b"\xffG", wire.encode_gap("tok", "n", 2, 5)[:-1], b"\xffG" + msgpack.packb([1, "t", "n", 2, 0])):
        with pytest.raises(WireError):
            wire.decode_gap(bad)


@pytest.mark.parametrize("bad", [{"a": 1}, {1: "a"}, [("a", "b")], "a=b"])
def test_bad_headers_raise_encode_error(bad: object) -> None:
    with pytest.raises(EncodeError):
        wire.check_headers(bad)  # type: ignore[arg-type]


def test_nan_timestamp_is_still_a_float() -> None:
    # time is informational: any finite or non-finite float decodes; receivers do not crash on it
    frame = enc().encode("a", 1, None, math.inf)
    assert wire.decode_data(frame)[1][4] == math.inf
