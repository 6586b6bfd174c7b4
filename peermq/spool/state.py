"""Who holds which message: the sender's half of at-least-once delivery. No I/O.

Memory is bounded by what is *in flight*, not by what is stored: everything below ``cursor``
that is not in ``attempts`` has been acknowledged, so a spool of ten million messages that are
waiting for a puller costs two integers here.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field

from ..config import SpoolOptions

__all__ = ["Deliveries", "LinkState"]


@dataclass(eq=False, slots=True)
class LinkState:
    """One receiving peer: its credit and what it holds (seq -> ack deadline, oldest first)."""

    key: Hashable
    credit: int
    inflight: dict[int, float] = field(default_factory=dict)

    @property
    def room(self) -> int:
        return self.credit - len(self.inflight)


class Deliveries:
    """Cursor, in-flight set, redelivery schedule and delivery counts of one queue."""

    def __init__(
        self,
        options: SpoolOptions,
        *,
        cursor: int = 1,
        unacked: Iterable[tuple[int, int]] = (),
        rng: random.Random | None = None,
        now: float = 0.0,
    ) -> None:
        self.options = options
        self.cursor = cursor
        """Next seq never delivered: every seq below it was delivered at least once."""
        self.attempts: dict[int, int] = {}
        """Delivered and not acknowledged: seq -> deliveries so far."""
        self.owner: dict[int, LinkState] = {}
        self.links: dict[Hashable, LinkState] = {}
        self._retry: list[tuple[float, int]] = []
        self._waiting: set[int] = set()
        self._rng = rng or random.Random()
        self.acked = 0
        self.redelivered = 0
        self.dead = 0
        for seq, count in unacked:
            if seq < cursor:
                self.attempts[seq] = count
                self._schedule(seq, now)

    # -- links
    def link_up(self, key: Hashable, credit: int) -> LinkState:
        link = self.links.get(key)
        if link is None:
            link = self.links[key] = LinkState(key, credit)
        link.credit = credit
        return link

    def link_down(self, key: Hashable, now: float) -> list[int]:
        """The peer is gone: what it held is delivered again. Returns seqs now dead."""
        link = self.links.pop(key, None)
        if link is None:
            return []
        return self._requeue(list(link.inflight), now)

    # -- acknowledgements
    def ack(self, seqs: Iterable[int]) -> int:
        """Mark ``seqs`` done (from any link, late or not); returns how many were pending."""
        done = 0
        attempts, owner = self.attempts, self.owner
        for seq in seqs:
            if attempts.pop(seq, None) is None:
                continue
            done += 1
            link = owner.pop(seq, None)
            if link is not None:
                link.inflight.pop(seq, None)
            self._waiting.discard(seq)
        self.acked += done
        return done

    def nack(self, seq: int, requeue: bool, now: float) -> list[int]:
        """The receiver gave it back: again later, or (``requeue`` False) to the dead letters."""
        if seq not in self.attempts:
            return []
        if not requeue:
            self._release(seq)
            return [seq]
        return self._requeue([seq], now)

    def expire(self, now: float) -> list[int]:
        """Deliveries past their ack deadline go back to the schedule; returns seqs now dead."""
        late: list[int] = []
        for link in self.links.values():
            for seq, deadline in link.inflight.items():
                if deadline > now:
                    break
                late.append(seq)
        return self._requeue(late, now) if late else []

    def forget(self, seqs: Iterable[int]) -> None:
        """Stop tracking ``seqs`` (moved to the dead letters, or lost): they count as done."""
        for seq in seqs:
            self._release(seq)
            self.attempts.pop(seq, None)
            self._waiting.discard(seq)

    def _release(self, seq: int) -> None:
        link = self.owner.pop(seq, None)
        if link is not None:
            link.inflight.pop(seq, None)

    def _requeue(self, seqs: list[int], now: float) -> list[int]:
        dead: list[int] = []
        limit = self.options.max_deliver
        for seq in seqs:
            self._release(seq)
            count = self.attempts.get(seq)
            if count is None:
                continue
            if count >= limit:
                dead.append(seq)
            else:
                self._schedule(seq, now + self.backoff(count))
        return dead

    def backoff(self, deliveries: int) -> float:
        """Delay before delivery ``deliveries + 1``: doubling, capped, then jittered down."""
        opts = self.options
        base = min(opts.backoff_max, opts.backoff * 2.0 ** min(deliveries - 1, 62))
        return base * (0.5 + 0.5 * self._rng.random())

    def _schedule(self, seq: int, due: float) -> None:
        if seq not in self._waiting:
            self._waiting.add(seq)
            heapq.heappush(self._retry, (due, seq))

    # -- sending
    def due(self, now: float, limit: int) -> list[int]:
        """Up to ``limit`` seqs whose redelivery is due, oldest due first."""
        out: list[int] = []
        heap = self._retry
        while heap and len(out) < limit and heap[0][0] <= now:
            _, seq = heapq.heappop(heap)
            if seq in self._waiting:
                self._waiting.discard(seq)
                if seq in self.attempts:
                    out.append(seq)
        return out

    def rush(self, now: float) -> None:
        """Make every scheduled redelivery due now (in seq order): its receiver is back."""
        self._retry = [(now, s) for s in sorted(self._waiting)]

    def undue(self, seqs: Iterable[int], now: float) -> None:
        """Put back seqs taken with ``due`` that could not be sent."""
        for seq in seqs:
            if seq in self.attempts:
                self._schedule(seq, now)

    def sent_new(self, link: LinkState, seqs: list[int], now: float) -> None:
        """First deliveries of ``seqs`` (from the cursor on) went to ``link``: as ``sent``."""
        deadline = now + self.options.ack_timeout
        self.attempts.update(dict.fromkeys(seqs, 1))
        self.owner.update(dict.fromkeys(seqs, link))
        link.inflight.update(dict.fromkeys(seqs, deadline))
        self.cursor = max(self.cursor, seqs[-1] + 1)

    def sent(self, link: LinkState, seqs: Iterable[int], now: float) -> None:
        """``seqs`` went to ``link``: in flight until acked or ``ack_timeout``."""
        deadline = now + self.options.ack_timeout
        attempts, owner, inflight = self.attempts, self.owner, link.inflight
        for seq in seqs:
            count = attempts.get(seq, 0)
            if count:
                self.redelivered += 1
            else:
                self.cursor = max(self.cursor, seq + 1)
            attempts[seq] = count + 1
            owner[seq] = link
            inflight[seq] = deadline

    def skip_to(self, seq: int) -> None:
        """Seqs below ``seq`` that were never delivered no longer exist (lost to damage)."""
        self.cursor = max(self.cursor, seq)

    # -- state
    @property
    def retrying(self) -> int:
        return len(self._waiting)

    @property
    def in_flight(self) -> int:
        return len(self.owner)

    def floor(self) -> int:
        """Lowest seq still needed: every seq below it is done."""
        return min(self.attempts) if self.attempts else self.cursor

    def next_retry(self) -> float | None:
        """When the earliest scheduled redelivery falls due (None: none scheduled)."""
        return self._retry[0][0] if self._retry else None

    def next_deadline(self) -> float | None:
        """When the earliest ack deadline passes (None: nothing in flight)."""
        times = []
        for link in self.links.values():
            for deadline in link.inflight.values():
                times.append(deadline)
                break
        return min(times) if times else None

    def snapshot(self) -> tuple[int, list[tuple[int, int]]]:
        """(cursor, [(seq, deliveries)]) for a checkpoint."""
        return self.cursor, sorted(self.attempts.items())
