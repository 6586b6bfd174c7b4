"""Read-only views of a spool directory, for ``peermq spool``: safe while a pusher runs.

Nothing here writes or locks: damage is reported, not repaired (opening the spool repairs it),
and delivery state is the last checkpoint's, so it may lag a running pusher by
``checkpoint_interval``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

import msgpack

from .. import wire
from ..errors import SpoolError, WireError
from ..message import NO_HEADERS, Message
from . import _records as rec
from ._files import holder, os_error, read_small
from ._segment import Damage, scan_file

__all__ = [
    "DeadLetter",
    "Overview",
    "Stored",
    "check",
    "dead_letters",
    "messages",
    "overview",
    "verify",
]

_MAX_RECORD = 1 << 30


@dataclass(frozen=True, slots=True)
class Overview:
    """What ``peermq spool stats`` shows."""

    path: str
    id: str
    kind: str
    holder: int | None
    """PID of the process that has it open, None if nobody does."""
    messages: int
    bytes: int
    segments: int
    first_seq: int
    last_seq: int
    cursor: int
    unacked: int
    pending: int
    dead: int
    quarantined: int
    damage: tuple[Damage, ...]
    consumers: dict[str, tuple[int, int]]
    """A publisher's log (kind "log"): durable subscribers' (cursor, unacked)."""


@dataclass(frozen=True, slots=True)
class Stored:
    """One message in the spool, with its state as of the last checkpoint."""

    seq: int
    state: str
    """``acked`` (its segment is not deleted yet), ``unacked``, ``pending`` (never sent) or
    ``dead`` (moved to the dead letters); in a publisher's log, ``kept`` (each subscriber has
    its own cursor)."""
    deliveries: int
    size: int
    message: Message | None
    """None if the record does not hold a wire frame peermq can decode."""


@dataclass(frozen=True, slots=True)
class DeadLetter:
    seq: int
    """Its seq in the spool it came from."""
    deliveries: int
    reason: str
    time: float
    requeued: bool
    message: Message | None


def check(path: str | os.PathLike[str]) -> str:
    """The absolute path of a spool directory; SpoolError if ``path`` is not one."""
    directory = os.path.abspath(os.fspath(path))
    if not os.path.isfile(os.path.join(directory, "meta")):
        raise SpoolError(f"{directory} is not a spool directory (no meta file)")
    return directory


def _segments(directory: str) -> list[str]:
    try:
        names = sorted(n for n in os.listdir(directory) if n.endswith(".seg"))
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise os_error(exc, "list", directory) from exc
    return [os.path.join(directory, n) for n in names]


def _records(directory: str, damage: list[Damage] | None = None
             ) -> Iterator[tuple[int, int, bytes]]:
    """(seq, record size, body) of every good record, in order; damage appended if given."""
    paths = _segments(directory)
    for i, path in enumerate(paths):
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError as exc:
            raise os_error(exc, "open", path) from exc
        try:
            found = scan_file(fd, max_length=_MAX_RECORD)
            name = os.path.basename(path)
            if damage is not None:
                newest = i == len(paths) - 1
                for off, length in found.bad:
                    torn = newest and off + length == found.size
                    damage.append(Damage(name, "torn-tail" if torn else "corrupt", off, length))
            for start, end, _ in found.good:
                at = start
                while at < end:
                    data = os.pread(fd, min(4 << 20, end - at), at)
                    scanned = rec.scan(data, 0, max_length=_MAX_RECORD)
                    if not scanned.seqs:  # a record larger than the read: read it whole
                        data = os.pread(fd, rec.record_length(data, 0), at)
                        scanned = rec.scan(data, 0, max_length=_MAX_RECORD)
                    for seq, off in zip(scanned.seqs, scanned.offsets, strict=True):
                        size = rec.record_length(data, off)
                        yield seq, size, data[off + rec.HEADER : off + size]
                    at += scanned.end
        finally:
            os.close(fd)


def decode(frame: bytes) -> Message | None:
    try:
        raw, env = wire.decode_data(frame)
    except WireError:
        return None
    kind, node, stream, seq, ts, headers, payload = env
    if kind != wire.SINGLE:
        return None
    return Message(raw.decode("utf-8", "replace"), payload, headers or NO_HEADERS, node, stream,
                   seq, ts)


def _checkpoint(directory: str) -> dict[str, object]:
    try:
        ck = read_small(os.path.join(directory, "checkpoint"))
    except SpoolError:
        ck = None
    return ck if isinstance(ck, dict) else {}


def _state(directory: str) -> tuple[int, dict[int, int]]:
    ck = _checkpoint(directory)
    unacked = ck.get("unacked", ())
    return int(ck.get("cursor", 1)), {  # type: ignore[call-overload]
        int(s): int(n) for s, n in unacked}  # type: ignore[attr-defined]


def _consumers(directory: str) -> dict[str, tuple[int, int]]:
    got = _checkpoint(directory).get("consumers")
    if not isinstance(got, dict):
        return {}
    return {str(name): (int(c.get("cursor", 0)), len(c.get("unacked", ())))
            for name, c in got.items() if isinstance(c, dict)}


def _kind(directory: str) -> str:
    meta = read_small(os.path.join(directory, "meta"))
    return str(meta.get("kind", "")) if isinstance(meta, dict) else ""


def _requeued(directory: str) -> set[int]:
    try:
        got = read_small(os.path.join(directory, "dead", "requeued"))
    except SpoolError:
        return set()
    return {int(s) for s in got} if isinstance(got, list) else set()


def overview(path: str | os.PathLike[str]) -> Overview:
    """Counts, state and damage of a spool, without opening (or repairing) it."""
    directory = check(path)
    meta = read_small(os.path.join(directory, "meta")) or {}
    log = os.path.join(directory, "log")
    damage: list[Damage] = []
    count = 0
    first = last = 0
    for seq, _, _ in _records(log, damage):
        count += 1
        first = first or seq
        last = seq
    cursor, unacked = _state(directory)
    if meta.get("kind") == "log":  # no shared cursor: each subscriber has its own
        cursor, unacked = last + 1, {}
    seg_paths = _segments(log)
    size = sum(os.path.getsize(p) for p in seg_paths)
    gone = _requeued(directory)
    dead = sum(1 for s, _, _ in _records(os.path.join(directory, "dead")) if s not in gone)
    qdir = os.path.join(directory, "quarantine")
    quarantined = len(os.listdir(qdir)) if os.path.isdir(qdir) else 0
    never = max(0, last - max(cursor, first or cursor) + 1) if count else 0
    return Overview(
        path=directory, id=str(meta.get("id", "")), kind=str(meta.get("kind", "")),
        holder=holder(directory), messages=count, bytes=size, segments=len(seg_paths),
        first_seq=first, last_seq=last, cursor=cursor,
        unacked=sum(1 for s in unacked if s >= first), pending=never + len(unacked),
        dead=dead, quarantined=quarantined, damage=tuple(damage),
        consumers=_consumers(directory),
    )


def messages(path: str | os.PathLike[str], *, start: int = 1) -> Iterator[Stored]:
    """The messages held, from seq ``start``, with their state as of the last checkpoint."""
    directory = check(path)
    cursor, unacked = _state(directory)
    stream = _kind(directory) == "log"
    dead = set() if stream else {d.seq for d in dead_letters(directory)}
    for seq, size, body in _records(os.path.join(directory, "log")):
        if seq < start:
            continue
        if stream:
            state, n = "kept", 0
        elif seq in dead:
            state, n = "dead", 0
        elif seq in unacked:
            state, n = "unacked", unacked[seq]
        elif seq < cursor:
            state, n = "acked", 0
        else:
            state, n = "pending", 0
        yield Stored(seq, state, n, size, decode(body))


def dead_letters(path: str | os.PathLike[str]) -> Iterator[DeadLetter]:
    directory = check(path)
    gone = _requeued(directory)
    for dseq, _, body in _records(os.path.join(directory, "dead")):
        try:
            seq, count, reason, when, frame = msgpack.unpackb(body, raw=False)
        except Exception:
            continue
        yield DeadLetter(int(seq), int(count), str(reason), float(when), dseq in gone,
                         decode(frame))


@dataclass(frozen=True, slots=True)
class Verification:
    path: str
    records: int
    dead: int
    damage: tuple[Damage, ...]
    checkpoint: str
    """``ok``, ``missing`` or why it is damaged."""

    @property
    def ok(self) -> bool:
        return not self.damage and self.checkpoint in ("ok", "missing")


def verify(path: str | os.PathLike[str]) -> Verification:
    """Read every record of a spool (messages and dead letters) and check every checksum."""
    directory = check(path)
    damage: list[Damage] = []
    records = sum(1 for _ in _records(os.path.join(directory, "log"), damage))
    dead = sum(1 for _ in _records(os.path.join(directory, "dead"), damage))
    try:
        ck = read_small(os.path.join(directory, "checkpoint"))
        state = "missing" if ck is None else "ok"
    except SpoolError as exc:
        state = str(exc)
    return Verification(directory, records, dead, tuple(damage), state)
