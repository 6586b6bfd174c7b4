"""Spool records: the codec round-trips, and every damage is caught by the checksum."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from peermq.errors import WireError
from peermq.spool import _records as rec
from peermq.spool import link

MAX = 1 << 20


def test_records_round_trip_and_scan_finds_each() -> None:
    bodies = [b"", b"a", b"x" * 1000, bytes(range(256))]
    data, count = rec.encode_many(rec.Kind.MESSAGE, 7, bodies)
    assert count == 4
    found = rec.scan(data, max_length=MAX)
    assert found.seqs == [7, 8, 9, 10]
    assert not found.bad and not found.truncated and found.end == len(data)
    parts = rec.split(data)
    assert [data[a:b] for _, _, a, b in parts] == bodies
    assert [seq for _, seq, _, _ in parts] == [7, 8, 9, 10]
    assert rec.encode(rec.Kind.MESSAGE, 7, b"") == data[: rec.HEADER]


def test_segment_header_is_checked() -> None:
    head = rec.encode_segment_header(42)
    assert rec.parse_segment_header(head) == 42
    assert rec.parse_segment_header(head[:-1]) is None
    bad = bytearray(head)
    bad[12] ^= 1
    assert rec.parse_segment_header(bytes(bad)) is None


@settings(max_examples=200, deadline=None)
@given(
    bodies=st.lists(st.binary(max_size=300), min_size=1, max_size=8),
    where=st.integers(min_value=0),
    bit=st.integers(min_value=0, max_value=7),
)
def test_any_flipped_bit_is_caught(bodies: list[bytes], where: int, bit: int) -> None:
    data, _ = rec.encode_many(rec.Kind.MESSAGE, 1, bodies)
    bad = bytearray(data)
    pos = where % len(bad)
    bad[pos] ^= 1 << bit
    found = rec.scan(bytes(bad), max_length=MAX)
    # every record it accepts is one that was written, unchanged, and it stops at the damage
    good = rec.split(data)
    assert len(found.seqs) < len(bodies)
    for seq, off in zip(found.seqs, found.offsets, strict=True):
        _, _, a, b = good[seq - 1]
        assert off == a - rec.HEADER and bad[a:b] == data[a:b]
    assert found.bad or found.truncated
    with pytest.raises(ValueError):
        rec.split(bytes(bad))


@settings(max_examples=100, deadline=None)
@given(bodies=st.lists(st.binary(min_size=1, max_size=200), min_size=2, max_size=6),
       cut=st.integers(min_value=1))
def test_a_torn_record_is_reported_truncated(bodies: list[bytes], cut: int) -> None:
    data, _ = rec.encode_many(rec.Kind.MESSAGE, 1, bodies)
    short = data[: len(data) - 1 - cut % (len(bodies[-1]) + rec.HEADER - 1)]
    found = rec.scan(short, max_length=MAX)
    assert found.seqs == list(range(1, len(bodies)))
    assert found.truncated and not found.bad


def test_take_checks_what_it_takes_and_stops_at_its_bounds() -> None:
    bodies = [b"a" * 50, b"b" * 50, b"c" * 50, b"d" * 50]
    data, _ = rec.encode_many(rec.Kind.MESSAGE, 1, bodies)
    size = rec.HEADER + 50

    def take(buf: bytes, first: int, upto: int = 4, max_bytes: int = MAX
             ) -> tuple[list[int], list[int], int, bool, int]:
        return rec.take(buf, 0, max_length=MAX, after_seq=0, first=first, upto=upto,
                        max_bytes=max_bytes)

    assert take(data, 2) == ([2, 3, 4], [size, 2 * size, 3 * size], 4 * size, False, 4)
    assert take(data, 2, upto=3) == ([2, 3], [size, 2 * size], 3 * size, False, 3)
    # a budget smaller than one record still takes one; then whole records up to the budget
    assert take(data, 1, max_bytes=0)[0] == [1]
    assert take(data, 1, max_bytes=2 * size + 1)[0] == [1, 2]
    bad = bytearray(data)
    bad[rec.HEADER + 10] ^= 1  # the body of record 1
    assert take(bytes(bad), 2)[0] == [2, 3, 4]  # walked by its header only: not served
    assert take(bytes(bad), 1) == ([], [], 0, True, 0)  # taken: its crc is checked
    assert rec.scan(bytes(bad), max_length=MAX).bad  # a scan checks every record


def test_a_seq_bit_flipped_high_is_damage_not_the_end_of_the_records() -> None:
    data, _ = rec.encode_many(rec.Kind.MESSAGE, 1, [b"a", b"b"])
    bad = bytearray(data)
    bad[rec.HEADER + 1 + 19] ^= 0x80  # the top bit of the second record's seq
    found = rec.scan(bytes(bad), max_length=MAX)
    assert found.seqs == [1] and found.bad and found.end == rec.HEADER + 1


def test_resync_finds_the_next_good_record() -> None:
    data, _ = rec.encode_many(rec.Kind.MESSAGE, 1, [b"a" * 50, b"b" * 50, b"c" * 50])
    bad = bytearray(data)
    bad[rec.HEADER + 10] ^= 0xFF  # inside the first record's body
    nxt = rec.resync(bytes(bad), 1, max_length=MAX, after_seq=0)
    assert nxt == rec.HEADER + 50
    assert rec.resync(b"\x00" * 100, 0, max_length=MAX, after_seq=0) == -1


def test_link_frames_round_trip() -> None:
    h = link.Hello(link.RECEIVER, "n1", "name", "", 100, "n1/1", False)
    assert link.decode_hello(link.encode_hello(h)) == h
    assert list(link.decode_ack(link.encode_ack([5, 3, 4, 9, 9, 10, 1]))) == [1, 3, 4, 5, 9, 10]
    assert link.decode_nack(link.encode_nack([(4, True), (6, False)])) == [(4, True), (6, False)]
    assert link.encode_deliveries([1, 1, 1]) == b""
    assert link.decode_deliveries(b"", 3) == [1, 1, 1]
    assert link.decode_deliveries(link.encode_deliveries([1, 3, 2]), 3) == [1, 3, 2]


@pytest.mark.parametrize("data", [b"x", b"\x00" * 15, b"\x01" * 16 + b"\x00" * 8])
def test_malformed_ack_frames_are_wire_errors(data: bytes) -> None:
    with pytest.raises(WireError):
        list(link.decode_ack(data))
