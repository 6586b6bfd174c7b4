"""Bytes on disk (and on spool links): segment headers and checksummed records. Pure functions.

A segment file is a 24-byte header then records, back to back::

    segment header  "PMQSEG\\r\\n" | u32 version | u64 base seq | u32 crc32 of the 20 bytes before
    record          "\\xa5\\x5a" | u32 crc32 | u8 kind | u8 flags | u32 length | u64 seq | body

A record's crc32 covers everything after itself (kind .. end of body), so a flipped bit anywhere,
a torn body or a wrong length is caught. All integers are little-endian. The two magic bytes let
recovery find the next record after a damaged one with ``bytes.find`` rather than byte by byte.
"""

from __future__ import annotations

import enum
import struct
import zlib
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = [
    "HEADER",
    "MAGIC",
    "SEGMENT_HEADER",
    "Kind",
    "Scan",
    "encode",
    "encode_many",
    "encode_segment_header",
    "parse_segment_header",
    "scan",
    "split",
]

MAGIC = b"\xa5\x5a"
_HEAD = struct.Struct("<2sIBBIQ")  # magic, crc, kind, flags, length, seq
_TAIL = struct.Struct("<BBIQ")  # what the crc covers, before the body
HEADER = _HEAD.size  # 20
_SEG = struct.Struct("<8sIQI")
SEGMENT_HEADER = _SEG.size  # 24
_SEG_MAGIC = b"PMQSEG\r\n"
SEGMENT_VERSION = 1
_NO_LIMIT = 1 << 64  # above any u64 seq: a record with a huge seq is still checked


class Kind(enum.IntEnum):
    """What a record's body holds."""

    MESSAGE = 0
    """A wire data frame (peermq/wire.py), exactly as it goes to a peer."""
    DEAD = 1
    """A dead letter: msgpack ``[seq, deliveries, reason, time, frame]``."""
    DEDUP = 2
    """A puller's handled messages: msgpack ``[spool id, [seq, crc, ...]]``."""


def encode(kind: int, seq: int, body: bytes) -> bytes:
    """One record."""
    tail = _TAIL.pack(kind, 0, len(body), seq)
    crc = zlib.crc32(body, zlib.crc32(tail))
    return b"".join((MAGIC, crc.to_bytes(4, "little"), tail, body))


def encode_many(kind: int, first_seq: int, bodies: Iterable[bytes]) -> tuple[bytes, int]:
    """Records for ``bodies`` with consecutive seqs from ``first_seq``; returns (bytes, count)."""
    parts: list[bytes] = []
    pack, crc32 = _TAIL.pack, zlib.crc32
    seq = first_seq
    for body in bodies:
        tail = pack(kind, 0, len(body), seq)
        parts.append(MAGIC)
        parts.append(crc32(body, crc32(tail)).to_bytes(4, "little"))
        parts.append(tail)
        parts.append(body)
        seq += 1
    return b"".join(parts), seq - first_seq


def encode_segment_header(base_seq: int) -> bytes:
    head = _SEG_MAGIC + SEGMENT_VERSION.to_bytes(4, "little") + base_seq.to_bytes(8, "little")
    return head + zlib.crc32(head).to_bytes(4, "little")


def parse_segment_header(data: bytes) -> int | None:
    """The base seq of a segment header, or None if the bytes are not a valid one."""
    if len(data) < SEGMENT_HEADER:
        return None
    magic, version, base, crc = _SEG.unpack_from(data)
    if magic != _SEG_MAGIC or version != SEGMENT_VERSION:
        return None
    if zlib.crc32(data[: SEGMENT_HEADER - 4]) != crc:
        return None
    return int(base)


@dataclass(slots=True)
class Scan:
    """What ``scan`` found in a buffer, from ``start``."""

    seqs: list[int]
    offsets: list[int]
    """Start of each good record (relative to the buffer); with a ``stride``, of one record
    per ``stride`` bytes only (the first always)."""
    end: int
    """Offset just past the last good record."""
    bad: bool
    """True if scanning stopped at bytes that are not a good record (as opposed to the end of
    the buffer or a record cut by it)."""
    truncated: bool
    """True if the last record starts in the buffer but runs past its end."""
    count: int = 0
    """Good records (all of them, with a ``stride`` too)."""
    last: int = 0
    """Seq of the last record walked (``after_seq`` if none)."""


def scan(
    data: bytes | memoryview, start: int = 0, *, max_length: int, after_seq: int = -1,
    max_bytes: int = _NO_LIMIT, stride: int = 0,
) -> Scan:
    """Walk good records from ``start``: magic right, length sane, crc right, seqs increasing.

    Stops at the first record that is not good (``bad``), at the end of ``data``, or past
    ``max_bytes`` of records (one at least: 0 checks just the record at ``start``). Every
    record is checked; with a ``stride``, only one per ``stride`` bytes is listed (a sparse
    index), which is what makes opening a large spool cheap.
    """
    return _walk(data, start, max_length=max_length, after_seq=after_seq, max_bytes=max_bytes,
                 stride=stride)


def take(
    data: bytes, start: int, *, max_length: int, after_seq: int, first: int, upto: int,
    max_bytes: int,
) -> tuple[list[int], list[int], int, bool, int]:
    """Good records of seqs ``first``..``upto`` from ``start``, at most ``max_bytes`` of them
    (one at least): (seqs, offsets, end, bad, last). Records before ``first`` are walked by
    their headers only; the ones taken are checked in full. ``end`` is where the walk stopped,
    ``last`` the seq of the last record walked."""
    got = _walk(data, start, max_length=max_length, after_seq=after_seq, first=first,
                upto=upto, max_bytes=max_bytes)
    return got.seqs, got.offsets, got.end, got.bad, got.last


def _walk(
    data: bytes | memoryview, start: int, *, max_length: int, after_seq: int,
    first: int = 0, upto: int = _NO_LIMIT, max_bytes: int = _NO_LIMIT, stride: int = 0,
) -> Scan:
    """The one record walk, for scan and take.

    Headers are checked for every record (magic, sane length, increasing seq); the crc only
    for the records kept (seq >= ``first``), which are listed (one per ``stride`` bytes if
    given). Stops at a bad record, at a record cut by the end of ``data`` (truncated), past
    ``upto``, or past ``max_bytes`` of kept records (one kept at least).
    """
    mv = memoryview(data)
    n = len(mv)
    unpack = _HEAD.unpack_from
    crc32 = zlib.crc32
    seqs: list[int] = []
    offsets: list[int] = []
    pos = start
    last = after_seq
    stop = n  # where kept records must end: the buffer, then also the byte budget
    listed = start  # where the next record to list may start
    count = 0
    bad = truncated = False
    while pos < n:
        if n - pos < HEADER:
            truncated = True
            break
        magic, crc, _kind, _flags, length, seq = unpack(mv, pos)
        if magic != MAGIC or length > max_length or seq <= last:
            bad = True
            break
        end = pos + HEADER + length
        if end > stop or seq > upto:
            truncated = end > n
            break
        if seq >= first:
            if crc32(mv[pos + 6 : end]) != crc:
                bad = True
                break
            if not count:
                stop = min(n, pos + max(max_bytes, end - pos))
            count += 1
            if pos >= listed:
                seqs.append(seq)
                offsets.append(pos)
                listed = pos + stride
        last = seq
        pos = end
    return Scan(seqs, offsets, pos, bad, truncated, count, last)


def seq_at(data: bytes | memoryview, offset: int) -> int:
    """The seq in the header of the record at ``offset``."""
    return int(_HEAD.unpack_from(data, offset)[5])


def resync(data: bytes | memoryview, start: int, *, max_length: int, after_seq: int) -> int:
    """Offset of the next good record at or after ``start``, or -1 if there is none."""
    raw = bytes(data) if isinstance(data, memoryview) else data
    pos = start
    while True:
        pos = raw.find(MAGIC, pos)
        if pos < 0:
            return -1
        found = scan(raw, pos, max_length=max_length, after_seq=after_seq, max_bytes=0)
        if found.seqs:
            return pos
        pos += 1


def split(data: bytes | memoryview) -> list[tuple[int, int, int, int]]:
    """``(kind, seq, body start, body end)`` of each record in ``data``, checked.

    Raises ValueError at the first record that is malformed or fails its crc.
    """
    mv = memoryview(data)
    n = len(mv)
    unpack = _HEAD.unpack_from
    crc32 = zlib.crc32
    out: list[tuple[int, int, int, int]] = []
    pos = 0
    while pos < n:
        if n - pos < HEADER:
            raise ValueError("truncated record header")
        magic, crc, kind, _flags, length, seq = unpack(mv, pos)
        end = pos + HEADER + length
        if magic != MAGIC or end > n:
            raise ValueError("malformed record")
        if crc32(mv[pos + 6 : end]) != crc:
            raise ValueError(f"record {seq}: checksum mismatch")
        out.append((kind, seq, pos + HEADER, end))
        pos = end
    return out


def record_crc(data: bytes | memoryview, offset: int) -> int:
    """The stored crc of the record at ``offset``."""
    return int.from_bytes(bytes(memoryview(data)[offset + 2 : offset + 6]), "little")


def record_length(data: bytes | memoryview, offset: int) -> int:
    """Total bytes of the record at ``offset`` (header included)."""
    return HEADER + int(_HEAD.unpack_from(data, offset)[4])
