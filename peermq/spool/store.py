"""A sender's spool: the durable queue behind ``Pusher(spool=...)``.

Layout of the directory::

    lock            flock'ed while open; holds the owner's PID
    meta            spool id and format version (written once, atomically)
    checkpoint      cursor and unacknowledged seqs with their delivery counts (atomic)
    log/*.seg       the messages, as checksummed records (``*.seg.seal``: a full segment's seal)
    dead/*.seg      dead letters
    quarantine/     damaged segment files, copied aside by recovery

Threads: ``append`` is called by the sending thread; everything else by the one thread that
runs the links (or by the owner before that thread starts and after it ends).

SpoolBase is what this queue and a publisher's log (stream.py) share: the directory, its two
logs, the checkpoint file, opening with recovery and closing.
"""

from __future__ import annotations

import bisect
import logging
import os
import secrets
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

import msgpack

from ..config import Fsync, SpoolOptions
from ..errors import ConfigError, SpoolError, SpoolFullError
from . import _records as rec
from ._files import DirLock, os_error, read_small, write_atomic
from .log import Log, Recovery
from .state import Deliveries

__all__ = ["Spool", "SpoolBase", "SpoolStats", "open_directory"]

_log = logging.getLogger(__name__)
FORMAT = 1
RECORD_OVERHEAD = 1024
"""Room for a record's header and a message's envelope beyond ``max_message_size``."""
_S = TypeVar("_S", bound="SpoolBase")


@dataclass(frozen=True, slots=True)
class SpoolStats:
    """A snapshot of a spool."""

    path: str
    id: str
    messages: int
    """Records held in segment files (acknowledged ones too, until their segment is deleted)."""
    bytes: int
    segments: int
    first_seq: int
    last_seq: int
    durable_seq: int
    """Every seq up to this one is durable (by the fsync policy)."""
    cursor: int
    """Next seq never delivered."""
    unacked: int
    """Delivered at least once, not acknowledged yet."""
    in_flight: int
    retrying: int
    pending: int
    """Not acknowledged yet: never delivered, or unacknowledged."""
    acked: int
    redelivered: int
    dead: int
    """Dead letters held."""
    damaged: int
    """Damage found by recovery when the spool was opened (see ``Spool.recovery``)."""


def open_directory(path: str | os.PathLike[str], kind: str) -> tuple[str, DirLock, str]:
    """Make or open a spool directory of ``kind``; lock it. Returns (path, lock, spool id)."""
    directory = os.path.abspath(os.fspath(path))
    try:
        os.makedirs(directory, exist_ok=True)
    except OSError as exc:
        raise os_error(exc, "create", directory) from exc
    lock = DirLock(directory)
    lock.acquire()
    try:
        meta_path = os.path.join(directory, "meta")
        meta = read_small(meta_path)
        if meta is None:
            meta = {"format": FORMAT, "id": secrets.token_hex(8), "kind": kind,
                    "created": time.time()}
            write_atomic(meta_path, meta)
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise SpoolError(f"{meta_path}: unknown spool format {meta!r}")
        if meta.get("kind") != kind:
            raise SpoolError(
                f"{directory} is a {meta.get('kind')} spool, not a {kind} spool"
            )
        return directory, lock, str(meta["id"])
    except BaseException:
        lock.release()
        raise


class SpoolBase:
    """A spool directory of one kind, locked: its message log, dead letters and checkpoint.

    Opening recovers both logs (see Log.open) and hands the checkpoint to ``_restore``;
    closing flushes, writes a last checkpoint and releases the directory. Spool (a queue)
    and StreamLog (a publisher's log) add their delivery models on top.
    """

    KIND: ClassVar[str]
    """``meta``'s kind: a directory of another kind is refused."""
    EVENT: ClassVar[str]
    """Prefix of the log events of this kind of spool."""
    DEAD_FLUSHED: ClassVar[bool]
    """Flush each dead letter at once (unless Fsync.NEVER): when it has left the log."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        options: SpoolOptions | None = None,
        *,
        max_record: int = 8 * 1024 * 1024,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        options = options or SpoolOptions()
        if not isinstance(options, SpoolOptions):
            raise ConfigError(f"options must be a SpoolOptions, got {type(options).__name__}")
        dead_fsync = options.fsync
        if self.DEAD_FLUSHED and options.fsync is not Fsync.NEVER:
            dead_fsync = Fsync.ALWAYS
        self.options = options
        self._clock = clock
        self.path, self._lock, self.id = open_directory(path, self.KIND)
        quarantine = os.path.join(self.path, "quarantine")
        self._checkpoint_path = os.path.join(self.path, "checkpoint")
        self.log = Log(os.path.join(self.path, "log"), kind=rec.Kind.MESSAGE,
                       segment_bytes=options.segment_bytes,
                       max_record=max_record + RECORD_OVERHEAD, fsync=options.fsync,
                       quarantine=quarantine)
        self.dead = Log(os.path.join(self.path, "dead"), kind=rec.Kind.DEAD,
                        segment_bytes=options.segment_bytes,
                        max_record=max_record + RECORD_OVERHEAD + 256, fsync=dead_fsync,
                        quarantine=quarantine)
        self.checkpoint_damaged = False
        self._saved: object = None
        try:
            saved = self._load_checkpoint()
            self.recovery: Recovery = self.log.open(first_seq=self._resume_seq(saved))
            self.dead_recovery: Recovery = self.dead.open()
            self.dead_count = self.dead.recovery.records
            """Dead letters held."""
            self._restore(saved)
        except BaseException:
            self.log.close()
            self.dead.close()
            self._lock.release()
            raise
        self._last_checkpoint = self._clock()
        self._closed = False
        if not self.recovery.clean:
            _log.warning("%s.recovered path=%s damage=%d", self.EVENT, self.path,
                         len(self.recovery.damage))

    def _load_checkpoint(self) -> dict[str, Any]:
        """The checkpoint as msgpack gave it (checked field by field where used); {} if none."""
        try:
            got = read_small(self._checkpoint_path)
        except SpoolError as exc:
            # everything is then unacknowledged: delivered again, never lost
            _log.warning("%s.checkpoint_damaged path=%s error=%s", self.EVENT, self.path, exc)
            self.checkpoint_damaged = True
            return {}
        return got if isinstance(got, dict) and got.get("id") == self.id else {}

    def _resume_seq(self, saved: dict[str, Any]) -> int:
        """The seq the log must not hand out again even if its newest segment is lost."""
        raise NotImplementedError

    def _restore(self, saved: dict[str, Any]) -> None:
        """Rebuild the delivery state from the checkpoint, once both logs are open."""
        raise NotImplementedError

    def _restored(self, saved: dict[str, Any], now: float) -> tuple[Deliveries, int]:
        """Deliveries of one cursor from its checkpointed ``cursor`` and ``unacked`` (what
        retention deleted is left out); and the saved cursor, which may be below the log."""
        first = self.log.first_seq()
        cursor = int(saved.get("cursor", first))
        unacked = [(int(s), int(n)) for s, n in saved.get("unacked", ()) if int(s) >= first]
        return Deliveries(self.options, cursor=max(cursor, first), unacked=unacked,
                          now=now), cursor

    # -- the sending thread
    def append(self, frames: Sequence[bytes]) -> int:
        return self.log.append(frames)

    # -- the link thread
    def sync(self) -> int:
        return self.log.sync()

    @property
    def deliverable(self) -> int:
        """Highest seq that may be delivered: durable by the policy."""
        return self.log.durable_seq

    def read(self, seq: int, upto: int, max_bytes: int) -> tuple[bytes, list[tuple[int, int]]]:
        return self.log.read(seq, upto, max_bytes)

    def _bury(self, deliveries: Deliveries, seqs: Sequence[int], reason: str) -> int:
        """Copy ``seqs`` to the dead letters (with their delivery counts and ``reason``), then
        stop tracking them in ``deliveries``; returns how many were still held."""
        bodies: list[bytes] = []
        now = time.time()
        for seq in seqs:
            data, found = self.log.read(seq, seq, 0)
            if found and found[0][0] == seq:
                count = deliveries.attempts.get(seq, 0)
                bodies.append(msgpack.packb([seq, count, reason, now, data[rec.HEADER :]],
                                            use_bin_type=True))
        if bodies:
            self.dead.append(bodies)
            self.dead_count += len(bodies)
            _log.warning("%s.dead_letter path=%s count=%d reason=%s", self.EVENT, self.path,
                         len(bodies), reason)
        deliveries.forget(seqs)
        deliveries.dead += len(bodies)
        return len(bodies)

    def _due(self, force: bool) -> bool:
        """True (and the clock restarted) if a checkpoint is due: forced, or the interval is up."""
        now = self._clock()
        if not force and now - self._last_checkpoint < self.options.checkpoint_interval:
            return False
        self._last_checkpoint = now
        return True

    def _save(self, state: object, fields: dict[str, object]) -> None:
        """Write the checkpoint (atomically) with ``fields``, unless ``state`` is as last saved."""
        if state != self._saved:
            write_atomic(self._checkpoint_path, {"id": self.id, **fields, "time": time.time()},
                         sync=self.options.fsync is not Fsync.NEVER)
            self._saved = state

    def checkpoint(self, *, force: bool = False) -> object:
        raise NotImplementedError

    def close(self) -> None:
        """Flush, write a last checkpoint, release the directory (idempotent)."""
        if self._closed:
            return
        self._closed = True
        try:
            if self.log.failed is None:
                self.log.sync()
                self.checkpoint(force=True)
        except SpoolError as exc:
            # what was stored is safe; acks since the last checkpoint come back as redeliveries
            _log.error("%s.close_checkpoint_failed path=%s error=%s", self.EVENT, self.path, exc)
        finally:
            self.log.close()
            self.dead.close()
            self._lock.release()

    def __enter__(self: _S) -> _S:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.path} id={self.id}>"


class Spool(SpoolBase):
    """Messages on disk until acknowledged, with delivery state, dead letters and retention."""

    KIND = "queue"
    EVENT = "spool"
    DEAD_FLUSHED = True

    def _resume_seq(self, saved: dict[str, Any]) -> int:
        return int(saved.get("cursor", 1))

    def _restore(self, saved: dict[str, Any]) -> None:
        self.deliveries, _ = self._restored(saved, self._clock())
        self._requeued_path = os.path.join(self.path, "dead", "requeued")
        self._requeued = self._load_requeued()
        self.dead_count = sum(1 for s, _ in self._dead_records() if s not in self._requeued)

    def append(self, frames: Sequence[bytes]) -> int:
        """Store ``frames``; returns the last seq. SpoolFullError past ``max_bytes``."""
        if self.log.size >= self.options.max_bytes:
            raise SpoolFullError(
                f"spool {self.path} is full: {self.log.size} bytes of max_bytes="
                f"{self.options.max_bytes}; acknowledgements free whole segments"
            )
        return self.log.append(frames)

    @property
    def full(self) -> bool:
        return self.log.size >= self.options.max_bytes

    def bury(self, seqs: Sequence[int], reason: str) -> int:
        """Move ``seqs`` to the dead letters (durably), then stop tracking them."""
        return self._bury(self.deliveries, seqs, reason)

    def _load_requeued(self) -> set[int]:
        try:
            got = read_small(self._requeued_path)
        except SpoolError as exc:  # then they may be requeued twice: at least once still
            _log.warning("spool.requeued_damaged path=%s error=%s", self.path, exc)
            return set()
        return {int(s) for s in got} if isinstance(got, list) else set()

    def _dead_records(self) -> Iterator[tuple[int, bytes]]:
        """(dead seq, body) of every dead letter held (requeued ones too)."""
        return self.dead.bodies(self.dead.first_seq(), self.dead.last_seq)

    def requeue(self, seqs: Collection[int] | None = None) -> int:
        """Put dead letters back in the queue as new messages: all, or those of these seqs.

        They are durable in the log before they leave the dead letters; a crash in between
        can requeue one twice, never lose it. Returns how many were requeued.
        """
        chosen: list[int] = []
        frames: list[bytes] = []
        for dseq, body in self._dead_records():
            if dseq in self._requeued:
                continue
            seq, _, _, _, frame = msgpack.unpackb(body, raw=False)
            if seqs is None or seq in seqs:
                chosen.append(dseq)
                frames.append(frame)
        if not frames:
            return 0
        self.log.append(frames)
        self.log.sync()
        self._requeued.update(chosen)
        self.dead_count -= len(chosen)
        if self.dead_count == 0:
            self.dead.roll()
            self.dead.delete_before(self.dead.next_seq)
            self._requeued = set()
        write_atomic(self._requeued_path, sorted(self._requeued))
        _log.info("spool.requeued path=%s count=%d", self.path, len(frames))
        return len(frames)

    def checkpoint(self, *, force: bool = False) -> bool:
        """Write the delivery state (atomically) if it changed and it is time; then retain."""
        if not self._due(force):
            return False
        cursor, unacked = self.deliveries.snapshot()
        try:
            self._save((cursor, unacked), {"cursor": cursor, "unacked": unacked})
        finally:
            # deleting acknowledged segments needs no checkpoint (a restart without one
            # only delivers again what is left), and it is what frees a full disk
            self.expire()
            self.retain()
        return True

    def expire(self) -> int:
        """``max_age``: whatever is older and not acknowledged goes to the dead letters, reason
        "expired", a whole segment at a time (age is a segment's newest write). Returns how
        many."""
        if self.options.max_age is None:
            return 0
        horizon = time.time() - self.options.max_age
        d = self.deliveries
        buried = 0
        segments = self.log.segments()
        if segments[-1].count and segments[-1].newest < horizon:
            self.log.roll()  # nothing came for max_age: the active segment is old as a whole
            segments = self.log.segments()
        for seg in segments[:-1]:
            if seg.newest >= horizon:
                break
            if not seg.count:
                continue
            seqs = sorted(x for x in d.attempts if seg.first <= x <= seg.last)
            if d.cursor <= seg.last:
                seqs.extend(range(max(d.cursor, seg.first), seg.last + 1))
                d.skip_to(seg.last + 1)
            if seqs:
                buried += self.bury(seqs, "expired")
        return buried

    def retain(self) -> int:
        """Delete sealed segments that hold nothing unacknowledged; returns bytes freed."""
        d = self.deliveries
        unacked = sorted(d.attempts)
        cursor = d.cursor
        doomed = []
        segments = self.log.segments()
        for seg in segments[:-1]:
            if seg.count and seg.last >= cursor:
                break
            i = bisect.bisect_left(unacked, seg.first)
            if seg.count == 0 or i == len(unacked) or unacked[i] > seg.last:
                doomed.append(seg)
        active = segments[-1]
        if (active.count and active.last < cursor and not unacked
                and (active.size >= self.options.segment_bytes // 4 or self.full)):
            self.log.roll()
            return self.retain()
        return self.log.delete(doomed) if doomed else 0

    def stats(self) -> SpoolStats:
        d = self.deliveries
        segs = self.log.segments()
        last = self.log.last_seq
        first = next((s.first for s in segs if s.count), last + 1)
        never = max(0, last - max(d.cursor, first) + 1)
        return SpoolStats(
            path=self.path, id=self.id, messages=sum(s.count for s in segs),
            bytes=self.log.size, segments=len(segs), first_seq=first, last_seq=last,
            durable_seq=self.log.durable_seq, cursor=d.cursor, unacked=len(d.attempts),
            in_flight=d.in_flight, retrying=d.retrying, pending=never + len(d.attempts),
            acked=d.acked, redelivered=d.redelivered, dead=self.dead_count,
            damaged=len(self.recovery.damage) + len(self.dead_recovery.damage),
        )

