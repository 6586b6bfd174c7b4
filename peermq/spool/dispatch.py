"""Handing stored records to links with credit: what is due again first, then what was never
delivered. No I/O of its own: it reads through ``read`` (Log.read) and sends through ``send``.

A queue (spooled pusher) runs it over one Deliveries with many links, sharing the backlog out;
a stream (spooled publisher) runs it per consumer, one link each, with a topic filter.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from ..errors import SpoolError
from . import _records as rec
from . import link
from .state import Deliveries, LinkState

__all__ = ["BATCH_BYTES", "BATCH_COUNT", "Reader", "Sender", "TopicTest", "dispatch"]

_log = logging.getLogger("peermq.spool")

BATCH_BYTES = 256 * 1024
BATCH_COUNT = 4096
FRAMES_PER_STEP = 64

Reader = Callable[[int, int, int], tuple[bytes, list[tuple[int, int]]]]
Sender = Callable[[LinkState, list[bytes]], bool]
"""Send DELIVER parts to a link; False if not sent (its queue is full, or it is gone: the
sender has then called ``link_down`` itself)."""
TopicTest = Callable[[bytes], bool]


def dispatch(d: Deliveries, read: Reader, send: Sender, upto: int, now: float,
             accept: TopicTest | None = None, turn: int = 0) -> int:
    """Deliver to ``d``'s links with room; returns how many frames went out.

    ``upto``: the last seq that may be delivered (durable). ``accept``: a topic filter (the
    raw topic of each record); records it refuses are passed over, as if acknowledged.
    ``turn``: which link goes first (the caller rotates it, for fairness).
    """
    links = [li for li in d.links.values() if li.room > 0]
    if not links:
        return 0
    turn %= len(links)
    links = links[turn:] + links[:turn]
    frames = 0
    progress = True
    while progress and frames < FRAMES_PER_STEP:
        progress = False
        for li in links:
            if li.room <= 0 or li.key not in d.links:
                continue
            due = d.due(now, min(li.room, BATCH_COUNT))
            if due:
                if not _redeliver(d, read, send, li, due, now):
                    continue
                frames += 1
                progress = True
            if li.room <= 0 or d.cursor > upto:
                continue
            backlog = upto - d.cursor + 1
            share = min(li.room, BATCH_COUNT, max(1, -(-backlog // len(links))))
            try:
                data, found = read(d.cursor, min(upto, d.cursor + share - 1), BATCH_BYTES)
            except SpoolError as exc:
                _log.error("spool.read_failed seq=%d error=%s", d.cursor, exc)
                d.skip_to(d.cursor + 1)
                continue
            if not found:
                d.skip_to(upto + 1)  # nothing held up to there: lost to damage (reported)
                continue
            seqs = [s for s, _ in found]
            if accept is not None:
                data, seqs = _filter(data, found, accept)
                if not seqs:
                    d.skip_to(found[-1][0] + 1)
                    progress = True
                    continue
            if seqs[0] > d.cursor:
                d.skip_to(seqs[0])
            if not send(li, [link.DELIVER, b"", data]):
                continue
            d.sent_new(li, seqs, now)
            d.skip_to(found[-1][0] + 1)
            frames += 1
            progress = True
    return frames


def _filter(data: bytes, found: list[tuple[int, int]], accept: TopicTest
            ) -> tuple[bytes, list[int]]:
    """The records of ``data`` whose topic ``accept`` takes, and their seqs."""
    parts: list[bytes] = []
    seqs: list[int] = []
    ends = [off for _, off in found[1:]] + [len(data)]
    for (seq, off), end in zip(found, ends, strict=True):
        body = off + rec.HEADER
        nul = data.find(b"\x00", body, end)
        if nul > body and accept(data[body:nul]):
            parts.append(data[off:end])
            seqs.append(seq)
    return b"".join(parts), seqs


def _redeliver(d: Deliveries, read: Reader, send: Sender, li: LinkState, seqs: list[int],
               now: float) -> bool:
    parts: list[bytes] = []
    kept: list[int] = []
    for seq in seqs:
        try:
            data, found = read(seq, seq, 0)
        except SpoolError as exc:
            _log.error("spool.read_failed seq=%d error=%s", seq, exc)
            found = []
        if not found or found[0][0] != seq:
            d.forget([seq])  # gone: deleted by retention or lost to damage (reported)
            continue
        parts.append(data)
        kept.append(seq)
    if not kept:
        return False
    counts = link.encode_deliveries(d.attempts.get(s, 0) + 1 for s in kept)
    if not send(li, [link.DELIVER, counts, b"".join(parts)]):
        d.undue(kept, now)
        return False
    d.sent(li, kept, now)
    return True
