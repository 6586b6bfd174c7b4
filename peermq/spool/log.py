"""An append-only log of checksummed records in segment files, with group commit and recovery.

One thread appends (``append``); another may read, make durable (``sync``) and delete old
segments at the same time. A lock guards the bookkeeping only: no syscall that can take long
(``fdatasync``) runs under it, so appends go on while a flush is in progress. That is the
group commit: one flush covers every write made before it started.
"""

from __future__ import annotations

import bisect
import contextlib
import logging
import os
import shutil
import threading
import time
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from ..config import Fsync
from ..errors import SpoolError
from . import _records as rec
from ._files import fsync_dir, os_error
from ._segment import (
    Damage,
    Segment,
    SegmentScan,
    file_crc,
    scan_file,
    seal,
    segment_name,
    unseal,
    unsealed,
)

__all__ = ["Damage", "Log", "Recovery"]

_log = logging.getLogger(__name__)
_READ_CHUNK = 256 * 1024


@dataclass(frozen=True, slots=True)
class Recovery:
    """What opening a log found: damage (repaired, and reported here), and what it holds."""

    damage: tuple[Damage, ...]
    segments: int
    records: int
    first: int
    last: int
    sealed: int = 0
    """Segments checked whole against their seal; the others were scanned record by record."""

    @property
    def clean(self) -> bool:
        return not self.damage


class Log:
    """Segment files ``NNNN.seg`` in one directory (seqs are consecutive when appended)."""

    def __init__(
        self,
        directory: str,
        *,
        kind: rec.Kind,
        segment_bytes: int,
        max_record: int,
        fsync: Fsync,
        quarantine: str,
    ) -> None:
        self.directory = directory
        self.kind = kind
        self.segment_bytes = segment_bytes
        self.max_record = max_record
        self.fsync = fsync
        self.quarantine_dir = quarantine
        self._lock = threading.Lock()
        self._segments: list[Segment] = []
        self._bases: list[int] = []
        self._next = 1
        self._durable = 0
        self._durable_at: tuple[Segment | None, int] = (None, 0)
        self._failed: SpoolError | None = None
        self._hint: tuple[Segment | None, int, int] = (None, 0, 0)
        """(segment, seq, offset) where the last read ended: sequential reads start there."""
        self._bytes = 0
        self._closed = False
        self.recovery = Recovery((), 0, 0, 0, 0)

    # -- opening and recovery
    def open(self, *, first_seq: int = 1) -> Recovery:
        """Check every segment, repair damage (see Damage), and get ready to append.

        A sealed segment whose every byte matches its seal is taken as the seal describes it;
        any other is scanned record by record, and sealed then if it will not grow again."""
        try:
            os.makedirs(self.directory, exist_ok=True)
            names = sorted(n for n in os.listdir(self.directory) if n.endswith(".seg"))
        except OSError as exc:
            raise os_error(exc, "open", self.directory) from exc
        damage: list[Damage] = []
        scanned: list[Segment] = []
        sealed = 0
        last = 0
        # a quarantined newest segment held seqs from its base on: never hand them out again
        first_seq = max([first_seq] + [b for b in map(_base_of, names) if b is not None])
        for i, name in enumerate(names):
            newest = i == len(names) - 1
            next_base = _base_of(names[i + 1]) if not newest else None
            seg, found, trusted = self._open_segment(name, last, newest, next_base)
            damage.extend(found)
            if seg is None:
                continue
            self._segments.append(seg)
            if trusted:
                sealed += 1
            else:
                scanned.append(seg)
            if seg.count:
                last = seg.last
        if not self._segments or self._segments[-1].size >= self.segment_bytes:
            base = max(last + 1, first_seq, self._segments[-1].base if self._segments else 1)
            self._segments.append(self._create(base))
        self._bases = [s.base for s in self._segments]
        active = self._segments[-1]
        active.crc = file_crc(active.fd, active.size)  # appends go on from it
        for seg in scanned:
            if seg is not active:  # checked record by record just now: seal what was found
                seg.crc = file_crc(seg.fd, seg.size)
                seal(seg, sync=self.fsync is not Fsync.NEVER)
        self._next = max(last + 1, active.base, first_seq)
        self._durable = self._next - 1
        self._durable_at = (active, active.size)
        self._bytes = sum(s.size for s in self._segments)
        records = sum(s.count for s in self._segments)
        first = next((s.first for s in self._segments if s.count), 0)
        self.recovery = Recovery(tuple(damage), len(self._segments), records, first, last,
                                 sealed)
        for d in damage:
            _log.warning(
                "spool.damage dir=%s segment=%s kind=%s offset=%d bytes=%d lost=%s "
                "quarantined=%s", self.directory, d.segment, d.kind, d.offset, d.length,
                _ranges_text(d.lost), d.quarantined,
            )
        return self.recovery

    def _open_segment(
        self, name: str, after: int, newest: bool, next_base: int | None
    ) -> tuple[Segment | None, list[Damage], bool]:
        """(segment or None if quarantined whole, damage found, whether its seal vouched)."""
        path = os.path.join(self.directory, name)
        try:
            fd = os.open(path, os.O_RDWR)
        except OSError as exc:
            raise os_error(exc, "open", path) from exc
        try:
            named = _base_of(name)
            if newest:
                unseal(path)  # it may be appended to: its seal would go stale
            elif named is not None:
                seg = unsealed(fd, path, named, after)
                if seg is not None:
                    seg.newest = os.fstat(fd).st_mtime
                    return seg, [], True
            found = scan_file(fd, max_length=self.max_record, after_seq=after)
            if found.base is None or found.base != named:
                return (*self._bad_header(fd, path, name, found.size, newest, named), False)
            seg = Segment(path, found.base, fd, found.size, found.first, found.last, found.count)
            seg.newest = os.fstat(fd).st_mtime
            for seq, off in found.index:
                seg.idx_seq.append(seq)
                seg.idx_off.append(off)
            if not found.bad:
                return seg, [], False
            tail_off, tail_len = found.bad[-1]
            if newest and len(found.bad) == 1 and tail_off + tail_len == found.size:
                self._truncate(fd, path, tail_off)
                seg.size = tail_off
                return seg, [Damage(name, "torn-tail", tail_off, tail_len)], False
            salvaged = self._salvage(seg, found, name, newest, next_base)
            os.close(fd)
            return (*salvaged, False)
        except BaseException:
            os.close(fd)
            raise

    def _bad_header(
        self, fd: int, path: str, name: str, size: int, newest: bool, base: int | None
    ) -> tuple[Segment | None, list[Damage]]:
        if newest and base is not None and size <= rec.SEGMENT_HEADER:
            # a crash while the segment was being created: write its header again
            try:
                os.ftruncate(fd, 0)
                os.pwrite(fd, rec.encode_segment_header(base), 0)
                os.fsync(fd)
            except OSError as exc:
                raise os_error(exc, "repair", path) from exc
            return Segment(path, base, fd, rec.SEGMENT_HEADER), (
                [Damage(name, "torn-tail", 0, size)] if size else []
            )
        moved = self._quarantine(path, name)
        os.close(fd)
        return None, [Damage(name, "corrupt", 0, size, (), moved)]

    def _salvage(
        self, seg: Segment, found: SegmentScan, name: str, newest: bool, next_base: int | None
    ) -> tuple[Segment, list[Damage]]:
        """Copy a damaged segment to quarantine/, keep only its good records, say what was lost."""
        path = seg.path
        try:
            unseal(path)
            os.makedirs(self.quarantine_dir, exist_ok=True)
            copy = os.path.join(self.quarantine_dir, f"{name}.{int(time.time() * 1000)}")
            shutil.copyfile(path, copy)
            _copy_good(seg.fd, path, seg.base, [(a, b) for a, b, _ in found.good])
            fsync_dir(self.quarantine_dir)
            fsync_dir(self.directory)
            fd = os.open(path, os.O_RDWR)
        except OSError as exc:
            raise os_error(exc, "quarantine", path) from exc
        clean = scan_file(fd, max_length=self.max_record, after_seq=seg.first - 1)
        new = Segment(path, seg.base, fd, clean.size, clean.first, clean.last, clean.count,
                      seg.newest)
        for seq, off in clean.index:
            new.idx_seq.append(seq)
            new.idx_off.append(off)
        moved = os.path.relpath(copy, os.path.dirname(self.quarantine_dir))
        damage = []
        for off, length in found.bad:
            before = [r for r, g in zip(found.seqs, found.good, strict=True) if g[1] <= off]
            after = [r for r, g in zip(found.seqs, found.good, strict=True) if g[0] >= off + length]
            lo = before[-1][1] + 1 if before else seg.base
            if after:
                hi: int | None = after[0][0] - 1
            else:
                hi = next_base - 1 if next_base is not None else None
            lost = ((lo, hi),) if hi is not None and hi >= lo else ()
            torn = newest and off + length == found.size
            damage.append(Damage(name, "torn-tail" if torn else "corrupt", off, length,
                                 () if torn else lost, moved))
        return new, damage

    def _truncate(self, fd: int, path: str, size: int) -> None:
        try:
            os.ftruncate(fd, size)
            os.fsync(fd)
        except OSError as exc:
            raise os_error(exc, "truncate", path) from exc

    def _quarantine(self, path: str, name: str) -> str:
        """Move (or copy) a damaged file aside; returns its path relative to the spool."""
        try:
            unseal(path)
            os.makedirs(self.quarantine_dir, exist_ok=True)
            dest = os.path.join(self.quarantine_dir, f"{name}.{int(time.time())}")
            os.replace(path, dest)
            fsync_dir(self.quarantine_dir)
            fsync_dir(self.directory)
        except OSError as exc:
            raise os_error(exc, "quarantine", path) from exc
        return os.path.relpath(dest, os.path.dirname(self.quarantine_dir))

    def _create(self, base: int) -> Segment:
        path = os.path.join(self.directory, segment_name(base))
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
        except OSError as exc:
            raise os_error(exc, "create", path) from exc
        try:
            _write_all(fd, rec.encode_segment_header(base), 0)
            if self.fsync is not Fsync.NEVER:
                os.fdatasync(fd)
                fsync_dir(self.directory)
        except OSError as exc:
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(path)
            raise os_error(exc, "create", path) from exc
        seg = Segment(path, base, fd, rec.SEGMENT_HEADER)
        seg.newest = time.time()
        seg.crc = zlib.crc32(rec.encode_segment_header(base))
        return seg

    # -- appending
    @property
    def next_seq(self) -> int:
        return self._next

    @property
    def last_seq(self) -> int:
        return self._next - 1

    @property
    def durable_seq(self) -> int:
        """Highest seq made durable (for Fsync.NEVER: written)."""
        return self._durable

    @property
    def size(self) -> int:
        """Bytes on disk in segment files."""
        return self._bytes

    @property
    def failed(self) -> SpoolError | None:
        return self._failed

    def append(self, bodies: Sequence[bytes]) -> int:
        """Write records for ``bodies``; returns the seq of the last. Raises SpoolError.

        Written (in the page cache: safe from the death of this process) before it returns;
        with Fsync.ALWAYS also flushed. On any error nothing of the call is kept.
        """
        with self._lock:
            if self._failed is not None:
                raise self._failed
            if self._closed:
                raise SpoolError(f"log {self.directory} is closed")
            seg = self._segments[-1]
            if seg.size >= self.segment_bytes:
                seg = self._roll()
            first = self._next
            data, count = rec.encode_many(self.kind, first, bodies)
            start = seg.size
            try:
                _write_all(seg.fd, data, start)
            except OSError as exc:
                self._cut(seg, start)
                raise os_error(exc, "write", seg.path) from exc
            seg.crc = zlib.crc32(data, seg.crc)
            pos, seq, note = start, first, seg.note
            for body in bodies:
                note(seq, pos)
                pos += rec.HEADER + len(body)
                seq += 1
            if not seg.count:
                seg.first = first
            seg.count += count
            seg.last = first + count - 1
            seg.size = pos
            seg.newest = time.time()
            self._bytes += pos - start
            self._next = first + count
            if self.fsync is Fsync.ALWAYS:
                try:
                    os.fdatasync(seg.fd)
                except OSError as exc:
                    raise self._fail(exc, seg) from exc
                self._durable, self._durable_at = seg.last, (seg, seg.size)
            elif self.fsync is Fsync.NEVER:
                self._durable, self._durable_at = seg.last, (seg, seg.size)
            return seg.last

    def _cut(self, seg: Segment, size: int) -> None:
        """Cut a partial write off the end of ``seg`` (a short write before ENOSPC)."""
        try:
            os.ftruncate(seg.fd, size)
        except OSError as exc:
            self._failed = os_error(exc, "truncate", seg.path)

    def _roll(self) -> Segment:
        """Seal the active segment (flushed first) and start a new one. Lock held."""
        old = self._segments[-1]
        if self.fsync is not Fsync.NEVER:
            try:
                os.fdatasync(old.fd)
            except OSError as exc:
                raise self._fail(exc, old) from exc
        self._durable, self._durable_at = self._next - 1, (old, old.size)
        seal(old, sync=self.fsync is not Fsync.NEVER)
        seg = self._create(self._next)
        self._segments.append(seg)
        self._bases.append(seg.base)
        self._bytes += seg.size
        return seg

    def roll(self) -> None:
        """Seal the active segment now if it holds records (so that retention may delete it)."""
        with self._lock:
            if self._failed is None and self._segments[-1].count:
                self._roll()

    def sync(self) -> int:
        """Make everything written so far durable; returns the durable seq. Any thread.

        A failed flush puts the log in a failed state: what it was to cover is cut off the
        file and never reported durable; every later call raises.
        """
        with self._lock:
            if self._failed is not None:
                raise self._failed
            target = self._next - 1
            if target <= self._durable or self.fsync is Fsync.NEVER:
                return self._durable
            seg = self._segments[-1]
            size = seg.size
        try:
            os.fdatasync(seg.fd)
        except OSError as exc:
            with self._lock:
                raise self._fail(exc, seg) from exc
        with self._lock:
            if target > self._durable:
                self._durable, self._durable_at = target, (seg, size)
            return self._durable

    def _fail(self, exc: OSError, seg: Segment) -> SpoolError:
        durable_seg, durable_size = self._durable_at
        keep = durable_size if durable_seg is seg else rec.SEGMENT_HEADER
        err = os_error(exc, "flush (fdatasync)", seg.path)
        self._failed = type(err)(
            f"{err}. Nothing after seq {self._durable} was reported durable, and it has been "
            "cut off; close the spool and open it again"
        )
        with contextlib.suppress(OSError):
            os.ftruncate(seg.fd, keep)
        _log.error("spool.fsync_failed dir=%s durable=%d error=%s", self.directory,
                   self._durable, exc)
        return self._failed

    # -- reading
    def segments(self) -> list[Segment]:
        with self._lock:
            return list(self._segments)

    def first_seq(self) -> int:
        """Seq of the oldest record still held (next_seq if none)."""
        with self._lock:
            for s in self._segments:
                if s.count:
                    return s.first
            return self._next

    def read(self, seq: int, upto: int, max_bytes: int) -> tuple[bytes, list[tuple[int, int]]]:
        """Records from ``seq`` (or the next one held) to ``upto``, as stored, checked.

        Returns (bytes, [(seq, offset in bytes)]); at least one record if there is one, more up
        to ``max_bytes``; never crosses a segment. SpoolError if a record fails its check.
        """
        with self._lock:
            i = bisect.bisect_right(self._bases, seq) - 1
            segs = self._segments[max(i, 0) :]
        for seg in segs:
            if not seg.count or seg.last < seq:
                continue
            if seg.first > upto:
                return b"", []
            return self._read_segment(seg, max(seq, seg.first), upto, max_bytes)
        return b"", []

    def bodies(self, start: int, upto: int) -> Iterator[tuple[int, bytes]]:
        """(seq, body) of each record from ``start`` to ``upto``, read a MiB at a time."""
        seq = start
        while seq <= upto:
            data, found = self.read(seq, upto, 1 << 20)
            if not found:
                return
            ends = [o for _, o in found[1:]] + [len(data)]
            for (s, off), end in zip(found, ends, strict=True):
                yield s, data[off + rec.HEADER : end]
            seq = found[-1][0] + 1

    def _read_segment(
        self, seg: Segment, seq: int, upto: int, max_bytes: int
    ) -> tuple[bytes, list[tuple[int, int]]]:
        hint_seg, hint_seq, hint_off = self._hint
        at_seq, off = seg.offset_hint(seq)
        if hint_seg is seg and at_seq <= hint_seq <= seq:
            at_seq, off = hint_seq, hint_off  # on from where the last read ended
        want = max(max_bytes, _READ_CHUNK)
        while True:
            try:
                data = os.pread(seg.fd, want, off)
            except OSError as exc:
                raise os_error(exc, "read", seg.path) from exc
            seqs, offsets, stop, bad, last = rec.take(
                data, 0, max_length=self.max_record, after_seq=at_seq - 1, first=seq,
                upto=upto, max_bytes=max_bytes)
            if seqs:
                start = offsets[0]
                self._hint = (seg, seqs[-1] + 1, off + stop)
                return data[start:stop], [(s, o - start)
                                          for s, o in zip(seqs, offsets, strict=True)]
            if bad:
                raise SpoolError(
                    f"a record in {seg.path} at offset {off + stop} fails its check: the disk "
                    "changed it after the spool was opened"
                )
            if off + stop >= seg.size:
                return b"", []
            if stop + rec.HEADER <= len(data) and rec.seq_at(data, stop) > upto:
                return b"", []
            if stop:  # walked records before ``seq`` (or the read cut one): go on from there
                off += stop
                at_seq = last + 1
            else:  # one record larger than the read
                want = max(want * 2, rec.record_length(data, 0) if len(data) >= rec.HEADER
                           else 0)

    # -- retention
    def delete_before(self, seq: int) -> int:
        """Delete sealed segments whose records are all below ``seq``; returns bytes freed."""
        with self._lock:
            doomed = [s for s in self._segments[:-1] if not s.count or s.last < seq]
            if not doomed:
                return 0
            keep = [s for s in self._segments if s not in doomed]
            self._segments = keep
            self._bases = [s.base for s in keep]
        return self._unlink(doomed)

    def delete(self, segments: Sequence[Segment]) -> int:
        """Delete these sealed segments (never the active one); returns bytes freed."""
        with self._lock:
            doomed = [s for s in segments if s in self._segments[:-1]]
            self._segments = [s for s in self._segments if s not in doomed]
            self._bases = [s.base for s in self._segments]
        return self._unlink(doomed)

    def _unlink(self, doomed: Sequence[Segment]) -> int:
        freed = 0
        for s in doomed:
            with contextlib.suppress(OSError):
                os.close(s.fd)
            try:
                unseal(s.path)  # first: a crash in between leaves a segment without its seal
                os.unlink(s.path)
            except FileNotFoundError:
                pass
            except OSError as exc:
                raise os_error(exc, "delete", s.path) from exc
            freed += s.size
        with self._lock:
            self._bytes -= freed
        if doomed and self.fsync is not Fsync.NEVER:
            with contextlib.suppress(OSError):
                fsync_dir(self.directory)
        return freed

    def close(self) -> None:
        """Flush what was written (unless Fsync.NEVER or failed) and close the files."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            segs, self._segments = self._segments, []
        try:
            if segs and self._failed is None and self.fsync is not Fsync.NEVER:
                with contextlib.suppress(OSError):
                    os.fdatasync(segs[-1].fd)
        finally:
            for s in segs:
                with contextlib.suppress(OSError):
                    os.close(s.fd)


def _write_all(fd: int, data: bytes, offset: int) -> None:
    view = memoryview(data)
    while view:
        n = os.pwrite(fd, view, offset)
        view = view[n:]
        offset += n


def _base_of(name: str) -> int | None:
    stem = name[: -len(".seg")]
    return int(stem) if stem.isdigit() else None


def _ranges_text(ranges: Sequence[tuple[int, int]]) -> str:
    return ",".join(f"{a}..{b}" if a != b else str(a) for a, b in ranges) or "-"


def _copy_good(src_fd: int, dst_path: str, base: int, runs: Sequence[tuple[int, int]]) -> None:
    """Replace ``dst_path`` (atomically) by a segment of the good byte ``runs`` of ``src_fd``."""
    tmp = dst_path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        _write_all(fd, rec.encode_segment_header(base), 0)
        pos = rec.SEGMENT_HEADER
        for start, end in runs:
            at = start
            while at < end:
                chunk = os.pread(src_fd, min(4 << 20, end - at), at)
                _write_all(fd, chunk, pos)
                pos += len(chunk)
                at += len(chunk)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, dst_path)
