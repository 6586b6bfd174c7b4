"""One segment file: its in-memory summary, the scan that rebuilds it (and finds damage), and
its seal.

A segment keeps no per-record objects in memory: a sparse index holds one (seq, offset) pair
per ``INDEX_STRIDE`` bytes, so ten million records cost tens of thousands of index entries.

A sealed segment (one that will never be written again) gets a seal file next to it,
``NNNN.seg.seal``: the crc32 of every byte of the segment, computed from the bytes as they
were written, with its summary and index. Opening checks a sealed segment against its seal
in one pass at the speed of zlib instead of walking its records one by one in Python; any
difference (or no seal, or a damaged one) and it is scanned record by record as before, so
damage is found, reported and quarantined the same way.
"""

from __future__ import annotations

import bisect
import contextlib
import logging
import os
import zlib
from array import array
from dataclasses import dataclass, field

from ..errors import SpoolError
from . import _records as rec
from ._files import read_small, write_atomic

__all__ = [
    "INDEX_STRIDE",
    "SEAL",
    "Damage",
    "Segment",
    "SegmentScan",
    "file_crc",
    "scan_file",
    "seal",
    "segment_name",
    "unseal",
    "unsealed",
]

_log = logging.getLogger(__name__)
SEAL = ".seal"
"""Suffix of a segment's seal file (``NNNN.seg.seal``)."""

INDEX_STRIDE = 64 * 1024
_CHUNK = 4 * 1024 * 1024


def segment_name(base: int) -> str:
    return f"{base:020d}.seg"


@dataclass(eq=False)
class Segment:
    """A segment file and what is known of it without reading it again."""

    path: str
    base: int
    """The seq it was created for: its first record has this seq or a greater one."""
    fd: int
    size: int
    """Bytes in the file, header included, up to the end of the last good record."""
    first: int = 0
    """Seq of its first record (0 while empty)."""
    last: int = 0
    """Seq of its last record (0 while empty)."""
    count: int = 0
    newest: float = 0.0
    """Wall-clock time of its last append (file mtime after a restart): for age retention."""
    idx_seq: array[int] = field(default_factory=lambda: array("Q"))
    idx_off: array[int] = field(default_factory=lambda: array("Q"))
    crc: int = 0
    """crc32 of the file's bytes up to ``size``, kept as they are appended: its seal."""

    def note(self, seq: int, offset: int) -> None:
        """Index the record at ``offset`` if the last index entry is a stride behind."""
        if not self.idx_off or offset - self.idx_off[-1] >= INDEX_STRIDE:
            self.idx_seq.append(seq)
            self.idx_off.append(offset)

    def offset_hint(self, seq: int) -> tuple[int, int]:
        """(seq, offset) of the last indexed record at or before ``seq`` (start of data if none)."""
        i = bisect.bisect_right(self.idx_seq, seq) - 1
        if i < 0:
            return self.first, rec.SEGMENT_HEADER
        return self.idx_seq[i], self.idx_off[i]

    def trim_index(self, size: int) -> None:
        """Forget index entries at or past ``size`` (after a truncation)."""
        while self.idx_off and self.idx_off[-1] >= size:
            self.idx_off.pop()
            self.idx_seq.pop()


@dataclass(frozen=True, slots=True)
class Damage:
    """Bytes of a segment that are not good records, as recovery or verification found them."""

    segment: str
    """File name of the segment."""
    kind: str
    """``torn-tail``: the unfinished end of the newest segment (a crash mid-write), cut off.
    ``corrupt``: bad bytes anywhere else (a flipped bit, a lost sector): the file is copied to
    ``quarantine/`` and only its good records are kept."""
    offset: int
    length: int
    lost: tuple[tuple[int, int], ...] = ()
    """Seq ranges (first, last) that were in the damaged bytes, when they can be told."""
    quarantined: str | None = None


@dataclass
class SegmentScan:
    """What a full read of one segment file found."""

    base: int | None
    """Base seq from the header; None if the header itself is damaged."""
    size: int
    """File size."""
    good: list[tuple[int, int, int]]
    """Runs of good records: (start offset, end offset, count). Usually one."""
    bad: list[tuple[int, int]]
    """Damaged byte ranges (offset, length) between or after good runs."""
    seqs: list[tuple[int, int]]
    """(first seq, last seq) of each good run, in order."""
    index: list[tuple[int, int]]
    """Sparse (seq, offset) pairs for the good records."""
    count: int = 0

    @property
    def first(self) -> int:
        return self.seqs[0][0] if self.seqs else 0

    @property
    def last(self) -> int:
        return self.seqs[-1][1] if self.seqs else 0


def file_crc(fd: int, size: int) -> int:
    """crc32 of the first ``size`` bytes of a file (read in chunks; zlib lets other threads run)."""
    crc = 0
    pos = 0
    while pos < size:
        chunk = os.pread(fd, min(_CHUNK, size - pos), pos)
        if not chunk:
            break
        crc = zlib.crc32(chunk, crc)
        pos += len(chunk)
    return crc


def seal(seg: Segment, *, sync: bool) -> None:
    """Write the seal of ``seg``, which must never be written again. A seal that cannot be
    written only costs the next open a scan of the segment: it is logged, not raised."""
    try:
        write_atomic(seg.path + SEAL, {
            "base": seg.base, "size": seg.size, "crc": seg.crc, "count": seg.count,
            "first": seg.first, "last": seg.last,
            "index": [list(seg.idx_seq), list(seg.idx_off)],
        }, sync=sync)
    except SpoolError as exc:
        _log.warning("spool.seal_failed segment=%s error=%s", seg.path, exc)


def unseal(path: str) -> None:
    """Remove the seal of the segment at ``path`` (before the segment changes or goes)."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path + SEAL)


def unsealed(fd: int, path: str, base: int, after_seq: int) -> Segment | None:
    """The segment at ``path``, as its seal describes it, if the seal is there, intact, and
    every byte of the file matches its crc; None otherwise (then scan it record by record)."""
    try:
        got = read_small(path + SEAL)
    except SpoolError as exc:
        _log.warning("spool.seal_damaged segment=%s error=%s", path, exc)
        return None
    if not isinstance(got, dict):
        return None
    try:
        size, crc, count = int(got["size"]), int(got["crc"]), int(got["count"])
        first, last = int(got["first"]), int(got["last"])
        seqs, offsets = array("Q", got["index"][0]), array("Q", got["index"][1])
    except (KeyError, IndexError, TypeError, ValueError, OverflowError):
        return None
    fits = (got.get("base") == base and len(seqs) == len(offsets)
            and (count == first == last == 0
                 or (max(after_seq + 1, base) <= first <= last and 0 < count <= last - first + 1
                     and bool(offsets) and offsets[-1] < size)))
    if not fits or os.fstat(fd).st_size != size or file_crc(fd, size) != crc:
        return None
    seg = Segment(path, base, fd, size, first, last, count, crc=crc)
    seg.idx_seq, seg.idx_off = seqs, offsets
    return seg


def scan_file(fd: int, *, max_length: int, after_seq: int = 0) -> SegmentScan:
    """Read a whole segment file, checking every record; collect good runs and damage."""
    size = os.fstat(fd).st_size
    base = rec.parse_segment_header(os.pread(fd, rec.SEGMENT_HEADER, 0))
    out = SegmentScan(base, size, [], [], [], [])
    if base is None:
        if size:
            out.bad.append((0, size))
        return out
    state = _Run(out, after_seq)
    pos = rec.SEGMENT_HEADER
    state.start = pos
    while pos < size:
        chunk = os.pread(fd, min(_CHUNK, size - pos), pos)
        at_eof = pos + len(chunk) >= size
        found = rec.scan(chunk, 0, max_length=max_length, after_seq=state.last,
                         stride=INDEX_STRIDE)
        state.add(found, pos)
        pos += found.end
        if pos >= size:
            break
        if found.truncated and not at_eof:
            if found.end:
                continue  # the chunk cut a record: read on from its start
            big = _one_big_record(fd, pos, size, max_length, state.last)
            if big:
                state.add(big, pos)
                pos += big.end
                continue
        # damage at pos: close the good run, then look for the next good record
        state.close(pos)
        rest = os.pread(fd, size - pos, pos)
        nxt = rec.resync(rest, 1, max_length=max_length, after_seq=state.last)
        if nxt < 0:
            out.bad.append((pos, size - pos))
            return out
        out.bad.append((pos, nxt))
        pos += nxt
        state.start = pos
    state.close(pos)
    return out


def _one_big_record(
    fd: int, pos: int, size: int, max_length: int, after_seq: int
) -> rec.Scan | None:
    """The scan of a good record at ``pos`` too large for one read chunk, else None."""
    head = os.pread(fd, rec.HEADER, pos)
    if len(head) < rec.HEADER or head[:2] != rec.MAGIC:
        return None
    need = rec.record_length(head, 0)
    if need > max_length + rec.HEADER or pos + need > size:
        return None
    one = rec.scan(os.pread(fd, need, pos), 0, max_length=max_length, after_seq=after_seq,
                   max_bytes=0)
    return one if one.count else None


class _Run:
    """Accumulates a run of consecutive good records into a SegmentScan."""

    def __init__(self, out: SegmentScan, after_seq: int) -> None:
        self.out = out
        self.last = after_seq
        self.start = 0
        self.first = 0
        self.count = 0
        self.last_idx = -INDEX_STRIDE

    def add(self, found: rec.Scan, at: int) -> None:
        """The records of a scan (sparse: one listed per stride) of bytes from offset ``at``."""
        if not found.count:
            return
        index = self.out.index
        for seq, off in zip(found.seqs, found.offsets, strict=True):
            if at + off - self.last_idx >= INDEX_STRIDE:
                self.last_idx = at + off
                index.append((seq, at + off))
        if self.count == 0:
            self.first = found.seqs[0]
        self.count += found.count
        self.last = found.last

    def close(self, end: int) -> None:
        if self.count:
            self.out.good.append((self.start, end, self.count))
            self.out.seqs.append((self.first, self.last))
            self.out.count += self.count
        self.count = 0
