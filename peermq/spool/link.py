"""Frames of a spool link, the back channel that PUSH/PULL lacks. Sans-I/O.

A spool link joins a sender (``Pusher(spool=...)``) and a receiver (a puller with acks) over a
pair of ZeroMQ ROUTER sockets; every message below follows the peer's routing id::

    HELLO    b"\\xffH"  msgpack {v, role, node, name, spool, credit, instance, reply,
                                mode, consumer, topics, start}
    GAP      b"\\xffG"  spool id, msgpack [first, last]: seqs this subscriber will never get
    DELIVER  b"\\xffD"  deliveries (u16 each, little-endian; empty: all first deliveries)
                       records (spool records back to back, exactly as on disk)
    ACK      b"\\xffA"  spool id, ranges (u64 first, u64 last, ...): handled, forget them
             [, durable name]: a durable subscriber's, so that they count after its link is gone
    NACK     b"\\xffN"  spool id, msgpack [seq, requeue, seq, requeue, ...] [, durable name]

An ACK or NACK names the spool it is for: a sender drops one meant for another spool (a
frame queued for an endpoint whose sender was replaced meanwhile).

The records keep their crc32 on the wire: a receiver checks each one, end to end.
"""

from __future__ import annotations

import struct
import sys
from array import array
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import msgpack

from ..errors import WireError

__all__ = [
    "ACK",
    "DELIVER",
    "HELLO",
    "NACK",
    "Hello",
    "decode_ack",
    "decode_deliveries",
    "decode_hello",
    "decode_nack",
    "encode_ack",
    "encode_deliveries",
    "encode_hello",
    "encode_nack",
]

VERSION = 1
HELLO = b"\xffH"
GAP = b"\xffG"
PING = b"\xffP"
"""Nothing: sent to find out whether a peer is still there (see peermq/_spool_link.py)."""
DELIVER = b"\xffD"
ACK = b"\xffA"
NACK = b"\xffN"
SENDER = "sender"
RECEIVER = "receiver"
QUEUE = "queue"
"""A receiver that takes a share of a queue (a puller)."""
STREAM = "stream"
"""A receiver that takes every message of its topics from a log (a subscriber)."""
_RANGE = struct.Struct("<QQ")
_LITTLE = sys.byteorder == "little"


@dataclass(frozen=True, slots=True)
class Hello:
    role: str
    node: str
    name: str
    spool: str
    """The sender's spool id ("" from a receiver)."""
    credit: int
    """A receiver's prefetch: messages it may hold unacknowledged (0 from a sender)."""
    instance: str
    """Random per socket instance: a new one on the same routing id is a new peer."""
    reply: bool
    mode: str = QUEUE
    """A receiver's: QUEUE (a share of the messages) or STREAM (every message of its topics)."""
    consumer: str = ""
    """A stream receiver's durable name ("": forget it when it goes)."""
    topics: tuple[str, ...] = ()
    """A stream receiver's topic patterns."""
    start: tuple[str, float] = ("new", 0.0)
    """Where a new stream consumer starts: ("new", 0), ("seq", n), ("time", t), ("last", n)."""


def encode_hello(h: Hello) -> bytes:
    packed: bytes = msgpack.packb({
        "v": VERSION, "role": h.role, "node": h.node, "name": h.name, "spool": h.spool,
        "credit": h.credit, "instance": h.instance, "reply": h.reply, "mode": h.mode,
        "consumer": h.consumer, "topics": list(h.topics), "start": list(h.start),
    })
    return packed


def decode_hello(data: bytes) -> Hello:
    try:
        m = msgpack.unpackb(data, raw=False)
        if not isinstance(m, dict) or m.get("v") != VERSION:
            raise WireError(f"hello of unknown version: {m!r:.80}")
        start = m.get("start") or ("new", 0)
        h = Hello(str(m["role"]), str(m["node"]), str(m["name"]), str(m["spool"]),
                  int(m["credit"]), str(m["instance"]), bool(m.get("reply", False)),
                  str(m.get("mode", QUEUE)), str(m.get("consumer", "")),
                  tuple(str(t) for t in m.get("topics", ())),
                  (str(start[0]), float(start[1])))
    except WireError:
        raise
    except Exception as exc:
        raise WireError(f"malformed hello: {exc}") from exc
    if (h.role not in (SENDER, RECEIVER) or h.credit < 0 or h.mode not in (QUEUE, STREAM)
            or h.start[0] not in ("new", "seq", "time", "last")):
        raise WireError(f"malformed hello: {h!r:.120}")
    return h


def encode_deliveries(counts: Iterable[int]) -> bytes:
    """Delivery numbers (1 = first) of the records of one DELIVER; b"" if all are first."""
    a = array("H", (min(c, 0xFFFF) for c in counts))
    if all(c == 1 for c in a):
        return b""
    if not _LITTLE:
        a.byteswap()
    return a.tobytes()


def decode_deliveries(data: bytes | memoryview, count: int) -> list[int]:
    if not len(data):
        return [1] * count
    a = array("H")
    a.frombytes(bytes(data))
    if not _LITTLE:
        a.byteswap()
    if len(a) != count:
        raise WireError(f"{len(a)} delivery counts for {count} records")
    return list(a)


def encode_ack(seqs: Iterable[int]) -> bytes:
    """Sorted, merged ranges of ``seqs``."""
    out = bytearray()
    first = last = -2
    for seq in sorted(seqs):
        if seq == last + 1:
            last = seq
            continue
        if seq == last:
            continue
        if first >= 0:
            out += _RANGE.pack(first, last)
        first = last = seq
    if first >= 0:
        out += _RANGE.pack(first, last)
    return bytes(out)


def decode_ack(data: bytes | memoryview) -> Iterator[int]:
    """The seqs of an ACK (checked: ranges well formed and not absurdly long)."""
    if len(data) % _RANGE.size:
        raise WireError("ack length is not a whole number of ranges")
    for first, last in _RANGE.iter_unpack(data):
        if last < first or last - first > 1 << 24:
            raise WireError(f"bad ack range {first}..{last}")
        yield from range(first, last + 1)


def encode_nack(items: Iterable[tuple[int, bool]]) -> bytes:
    flat: list[object] = []
    for seq, requeue in items:
        flat.append(seq)
        flat.append(requeue)
    packed: bytes = msgpack.packb(flat)
    return packed


def decode_nack(data: bytes | memoryview) -> list[tuple[int, bool]]:
    try:
        flat = msgpack.unpackb(bytes(data), raw=False)
        if not isinstance(flat, list) or len(flat) % 2:
            raise ValueError("not an even array")
        out = [(int(flat[i]), bool(flat[i + 1])) for i in range(0, len(flat), 2)]
    except Exception as exc:
        raise WireError(f"malformed nack: {exc}") from exc
    return out
