"""A publisher's log: every message kept (by size and age, not by acks), read by consumers that
each have their own cursor. Behind ``Publisher(spool=...)`` and ``Subscriber(durable=...)``.

A consumer is a subscriber's view of the log: its topics, where it is, what it holds unacked.
A durable consumer (named) is checkpointed and found again by name when a subscriber of that
name comes back, which then gets what it missed, then the live messages, from one cursor: there
is no seam between the replay and the live stream. An anonymous consumer lasts as long as its
link. Retention deletes the oldest whole segments past ``max_bytes`` or ``max_age``; a
consumer behind that point is told which seqs it lost (a gap), never given a partial record.

Layout: as a queue spool (store.py), with ``kind`` "log" and consumers in the checkpoint.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .. import wire
from ..errors import WireError
from ..topics import TopicFilter
from .link import Hello
from .state import Deliveries
from .store import SpoolBase

__all__ = ["Consumer", "StreamLog"]

_log = logging.getLogger(__name__)
_TOPIC_CACHE = 4096


@dataclass(eq=False)
class Consumer:
    """One subscriber's cursor over the log."""

    name: str
    """Durable name, or "" (anonymous: forgotten when its link goes)."""
    patterns: tuple[str, ...]
    deliveries: Deliveries
    rid: Hashable | None = None
    gaps: list[tuple[int, int]] = field(default_factory=list)
    """Seq ranges it will never get (deleted by retention before it read them), to tell it."""
    _filter: TopicFilter | None = None
    _cache: dict[bytes, bool] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._filter = TopicFilter(self.patterns or (">",))

    @property
    def durable(self) -> bool:
        return bool(self.name)

    def accept(self, raw_topic: bytes) -> bool:
        cache = self._cache
        got = cache.get(raw_topic)
        if got is None:
            if len(cache) >= _TOPIC_CACHE:
                cache.clear()
            try:
                topic = raw_topic.decode("utf-8")
            except UnicodeDecodeError:
                got = False
            else:
                assert self._filter is not None
                got = self._filter.matches(topic)
            cache[raw_topic] = got
        return got

    def retopic(self, patterns: tuple[str, ...]) -> None:
        if patterns != self.patterns:
            self.patterns = patterns
            self._filter = TopicFilter(patterns or (">",))
            self._cache.clear()


class StreamLog(SpoolBase):
    """The log of a spooled publisher, and its consumers. Threads: as Spool (store.py)."""

    KIND = "log"
    EVENT = "stream"
    DEAD_FLUSHED = False  # a dead letter here is a copy: the message stays in the log

    def _resume_seq(self, saved: dict[str, Any]) -> int:
        return int(saved.get("next", 1))

    def _restore(self, saved: dict[str, Any]) -> None:
        consumers = saved.get("consumers")
        self.consumers: dict[str, Consumer] = {}
        """Durable consumers, linked or not, by name."""
        self._linked: dict[Hashable, Consumer] = {}
        now = self._clock()
        first = self.log.first_seq()
        for name, st in (consumers if isinstance(consumers, dict) else {}).items():
            d, cursor = self._restored(st, now)
            c = Consumer(str(name), tuple(str(t) for t in st.get("topics", ())), d)
            if cursor < first:
                c.gaps.append((cursor, first - 1))
            self.consumers[name] = c

    def attach(self, rid: Hashable, hello: Hello, now: float) -> Consumer:
        """A subscriber said HELLO on ``rid``: its consumer, found by name or made anew.

        HELLO again from the same link (after any reconnection it says it to all) changes only
        its credit and topics."""
        c = self._linked.get(rid)
        if c is not None:
            c.retopic(hello.topics)
            c.deliveries.link_up(rid, hello.credit)
            return c
        c = self.consumers.get(hello.consumer) if hello.consumer else None
        if c is not None:
            c.retopic(hello.topics)
            if c.rid is not None and c.rid != rid:
                # the same durable name from another link: the newest one takes it over
                self._linked.pop(c.rid, None)
                c.deliveries.link_down(c.rid, now)
            c.deliveries.rush(now)  # what it missed comes first, in order, then the rest
        else:
            c = Consumer(hello.consumer, hello.topics, self._start(hello, now))
            if c.durable:
                self.consumers[c.name] = c
        c.rid = rid
        c.deliveries.link_up(rid, hello.credit)
        self._linked[rid] = c
        return c

    def _start(self, hello: Hello, now: float) -> Deliveries:
        how, value = hello.start
        first, nxt = self.log.first_seq(), self.log.next_seq
        if how == "seq":
            return Deliveries(self.options, cursor=max(int(value), first), now=now)
        if how == "time":
            return Deliveries(self.options, cursor=self._seq_since(value), now=now)
        if how == "last":
            probe = Consumer("", hello.topics, Deliveries(self.options))
            seqs = self._last_per_topic(int(value), probe)
            return Deliveries(self.options, cursor=nxt, unacked=[(s, 0) for s in seqs], now=now)
        return Deliveries(self.options, cursor=nxt, now=now)

    def _records(self, start: int) -> Sequence[tuple[int, bytes]]:
        """(seq, body) from ``start`` to the durable end (a generator would hold the lock)."""
        return list(self.log.bodies(start, self.log.durable_seq))

    def _seq_since(self, t: float) -> int:
        """First seq whose message was sent at or after wall time ``t``."""
        for seg in self.log.segments():
            if not seg.count or seg.newest < t:
                continue
            for seq, body in self._records(seg.first):
                try:
                    _, env = wire.decode_data(body)
                except WireError:
                    continue
                if env[4] >= t:
                    return seq
            break
        return self.log.next_seq

    def _last_per_topic(self, n: int, probe: Consumer) -> list[int]:
        last: dict[bytes, deque[int]] = {}
        for seq, body in self._records(self.log.first_seq()):
            nul = body.find(b"\x00")
            if nul <= 0 or not probe.accept(body[:nul]):
                continue
            q = last.get(body[:nul])
            if q is None:
                q = last[body[:nul]] = deque(maxlen=n)
            q.append(seq)
        return sorted(s for q in last.values() for s in q)

    def detach(self, rid: Hashable, now: float) -> list[int]:
        """The link ``rid`` went: its consumer's deliveries come back (to it, later, if it is
        durable); an anonymous consumer ends. Returns seqs now dead."""
        c = self._linked.pop(rid, None)
        if c is None:
            return []
        c.rid = None
        return c.deliveries.link_down(rid, now) if c.durable else []

    def consumer_of(self, rid: Hashable) -> Consumer | None:
        return self._linked.get(rid)

    def linked(self) -> list[Consumer]:
        return list(self._linked.values())

    def bury(self, c: Consumer, seqs: list[int], reason: str) -> int:
        """Give up on ``seqs`` for consumer ``c``: kept in the dead letters with its name."""
        return self._bury(c.deliveries, seqs, f"{reason} ({c.name or 'anonymous'})")

    def checkpoint(self, *, force: bool = False) -> list[Consumer]:
        """Write durable consumers' state (atomically) when due; retain; returns the linked
        consumers that have a gap to be told of."""
        if not self._due(force):
            return []
        try:
            state = {name: {"cursor": c.deliveries.cursor, "topics": list(c.patterns),
                            "unacked": c.deliveries.snapshot()[1]}
                     for name, c in self.consumers.items()}
            self._save(state, {"next": self.log.next_seq, "consumers": state})
        finally:
            self.retain()
        return [c for c in self._linked.values() if c.gaps]

    def retain(self) -> int:
        """Delete the oldest sealed segments past ``max_bytes`` or older than ``max_age``."""
        opts = self.options
        segments = self.log.segments()[:-1]
        size = self.log.size
        horizon = None if opts.max_age is None else time.time() - opts.max_age
        doomed = []
        for seg in segments:
            if size > opts.max_bytes or (horizon is not None and seg.newest < horizon):
                doomed.append(seg)
                size -= seg.size
            else:
                break
        if not doomed:
            return 0
        freed = self.log.delete(doomed)
        first = self.log.first_seq()
        everyone = list(self.consumers.values()) + [c for c in self._linked.values()
                                                     if not c.durable]
        for c in everyone:
            d = c.deliveries
            # delivered but not acknowledged, now deleted: it may never have arrived, so it is
            # reported lost too (before the never-delivered range, which starts at the cursor)
            gone = sorted(s for s in d.attempts if s < first)
            if gone:
                d.forget(gone)
                c.gaps.extend(_ranges(gone))
            if d.cursor < first:
                c.gaps.append((d.cursor, first - 1))
                d.skip_to(first)
        return freed

    def stats(self) -> dict[str, object]:
        segs = self.log.segments()
        return {
            "messages": sum(s.count for s in segs), "bytes": self.log.size,
            "segments": len(segs), "first_seq": self.log.first_seq(),
            "last_seq": self.log.last_seq, "durable_seq": self.log.durable_seq,
            "consumers": {name: {"cursor": c.deliveries.cursor, "unacked":
                                 len(c.deliveries.attempts), "linked": c.rid is not None}
                          for name, c in self.consumers.items()},
            "dead": self.dead_count,
        }


def _ranges(seqs: list[int]) -> list[tuple[int, int]]:
    """Sorted seqs as (first, last) runs."""
    out: list[tuple[int, int]] = []
    for seq in seqs:
        if out and out[-1][1] == seq - 1:
            out[-1] = (out[-1][0], seq)
        else:
            out.append((seq, seq))
    return out
