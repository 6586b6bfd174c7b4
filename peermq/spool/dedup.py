"""A puller's memory of what it handled, so that a redelivered copy does not run the handler again.

Entries are keyed by (sender's spool id, seq) and hold the record's crc32: a copy counts as a
duplicate only if its checksum matches too, so a seq that a sender reused after losing its
tail to a power loss (Fsync.NEVER) is not mistaken for one already handled.

The window forgets by age (``dedup_window`` seconds) and by count (``dedup_max``), a whole
generation at a time: no per-entry timestamps.
"""

from __future__ import annotations

import logging
import os
import time
from collections import deque
from collections.abc import Callable, Iterable

import msgpack

from ..config import Fsync, SpoolOptions
from . import _records as rec
from .log import Log, Recovery
from .store import open_directory

__all__ = ["DedupStore", "DedupWindow"]

_log = logging.getLogger(__name__)
_GENERATIONS = 8


class DedupWindow:
    """In-memory window; ``persist`` (a DedupStore) makes it survive a restart."""

    def __init__(self, window: float, max_entries: int,
                 clock: Callable[[], float] = time.time) -> None:
        self.window = window
        self.max_entries = max_entries
        self._clock = clock
        self._span = max(window / _GENERATIONS, 1e-3)
        self._gen_max = max(1, max_entries // _GENERATIONS)
        self._gens: deque[tuple[float, dict[tuple[str, int], int]]] = deque()
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def seen(self, spool_id: str, seq: int, crc: int) -> bool:
        key = (spool_id, seq)
        for _, gen in self._gens:
            got = gen.get(key)
            if got is not None:
                return got == crc
        return False

    def add(self, spool_id: str, seq: int, crc: int, when: float | None = None) -> None:
        if self.max_entries == 0:
            return
        now = self._clock() if when is None else when
        gens = self._gens
        if (not gens or now - gens[-1][0] >= self._span
                or len(gens[-1][1]) >= self._gen_max):
            gens.append((now, {}))
        gen = gens[-1][1]
        if (spool_id, seq) not in gen:
            self._size += 1
        gen[(spool_id, seq)] = crc
        self._trim(now)

    def _trim(self, now: float) -> None:
        gens = self._gens
        while gens and (
            now - gens[0][0] > self.window + self._span or self._size > self.max_entries
        ):
            _, gen = gens.popleft()
            self._size -= len(gen)


class DedupStore:
    """A puller's spool directory: the dedup window on disk (``dedup/*.seg``), locked."""

    def __init__(self, path: str | os.PathLike[str], options: SpoolOptions) -> None:
        self.options = options
        self.path, self._lock, self.id = open_directory(path, "puller")
        self.window = DedupWindow(options.dedup_window, options.dedup_max)
        segment = max(4096, min(options.segment_bytes, 1024 * 1024))
        self.log = Log(os.path.join(self.path, "dedup"), kind=rec.Kind.DEDUP,
                       segment_bytes=segment, max_record=16 * 1024 * 1024,
                       fsync=options.fsync, quarantine=os.path.join(self.path, "quarantine"))
        try:
            self.recovery: Recovery = self.log.open()
            self._load()
        except BaseException:
            self.log.close()
            self._lock.release()
            raise
        self._closed = False

    def _load(self) -> None:
        horizon = time.time() - self.options.dedup_window
        for seg in self.log.segments():
            if not seg.count or seg.newest < horizon:
                continue
            seq = seg.first
            while seq <= seg.last:
                data, found = self.log.read(seq, seg.last, 1 << 20)
                if not found:
                    break
                for _, off in found:
                    length = rec.record_length(data, off)
                    self._apply(data[off + rec.HEADER : off + length])
                seq = found[-1][0] + 1

    def _apply(self, body: bytes) -> None:
        try:
            spool_id, pairs, when = msgpack.unpackb(body, raw=False)
            add = self.window.add
            for i in range(0, len(pairs) - 1, 2):
                add(spool_id, pairs[i], pairs[i + 1], when)
        except Exception as exc:  # a record that passed its crc but not ours: report, go on
            _log.warning("dedup.record_unreadable path=%s error=%s", self.path, exc)

    def record(self, handled: dict[str, list[tuple[int, int]]]) -> None:
        """Remember handled (seq, crc) per sender spool, durably before returning."""
        now = time.time()
        bodies = []
        for spool_id, items in handled.items():
            flat: list[int] = []
            for seq, crc in items:
                flat.append(seq)
                flat.append(crc)
            bodies.append(msgpack.packb([spool_id, flat, now], use_bin_type=True))
        if not bodies:
            return
        self.log.append(bodies)
        if self.options.fsync is Fsync.BATCH:
            self.log.sync()
        add = self.window.add
        for spool_id, items in handled.items():
            for seq, crc in items:
                add(spool_id, seq, crc, now)
        self._retire(now)

    def _retire(self, now: float) -> None:
        horizon = now - self.options.dedup_window
        old = [s for s in self.log.segments()[:-1] if s.newest < horizon]
        if old:
            self.log.delete(old)
        active = self.log.segments()[-1]
        if active.count and active.newest < horizon:
            self.log.roll()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self.log.close()
        finally:
            self._lock.release()


def merge(entries: Iterable[tuple[str, int, int]]) -> dict[str, list[tuple[int, int]]]:
    out: dict[str, list[tuple[int, int]]] = {}
    for spool_id, seq, crc in entries:
        out.setdefault(spool_id, []).append((seq, crc))
    return out

