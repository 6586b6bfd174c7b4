"""One segment file: its in-memory summary, and the scan that rebuilds it (and finds damage).

A segment keeps no per-record objects in memory: a sparse index holds one (seq, offset) pair
per ``INDEX_STRIDE`` bytes, so ten million records cost tens of thousands of index entries.
"""

from __future__ import annotations

import bisect
import os
from array import array
from dataclasses import dataclass, field

from . import _records as rec

__all__ = ["INDEX_STRIDE", "Damage", "Segment", "SegmentScan", "scan_file", "segment_name"]

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
