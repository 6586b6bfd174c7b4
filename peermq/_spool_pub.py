"""The sending half of durable pub/sub: a Publisher whose messages go to a log (spool/stream.py)
that subscribers read with their own cursors, over spool links, with acks.

Each subscriber's HELLO names its topics, its durable name (if any) and where a new one starts
(new messages only, a seq, a time, or the last N per topic). Delivery, acks and redelivery are
those of a spooled pusher (_spool_send.py), per subscriber instead of shared.
"""

from __future__ import annotations

import logging
import os

import msgpack

from ._kinds import PublisherBase
from ._spool_link import Peer
from ._spool_send import LinkSending
from .config import SocketOptions, SpoolOptions
from .discovery.txt import PeerKind, Service
from .errors import ConfigError
from .node import Node
from .spool import link
from .spool.dispatch import dispatch
from .spool.state import Deliveries
from .spool.stream import Consumer, StreamLog

__all__ = ["SpoolPublishing"]

_log = logging.getLogger("peermq.spool")


class SpoolPublishing(LinkSending, PublisherBase):
    """A Publisher that keeps a log: durable subscribers miss nothing while away."""

    _model: StreamLog
    _mode = link.STREAM
    _peer_kind = PeerKind.SPOOL_PUBLISHER
    """What discovery announces (``service=``): its endpoint speaks spool links."""

    def __init__(
        self,
        *,
        bind: str | list[str] | tuple[str, ...] | None = None,
        connect: str | list[str] | tuple[str, ...] | None = None,
        node: Node | None = None,
        options: SocketOptions | None = None,
        spool: str | os.PathLike[str] | StreamLog,
        spool_options: SpoolOptions | None = None,
        service: str | Service | None = None,
    ) -> None:
        if isinstance(spool, StreamLog):
            if spool_options is not None:
                raise ConfigError("give spool_options to the StreamLog, not with an open one")
            self._init_link(spool, False)
        elif isinstance(spool, (str, os.PathLike)):
            size = (options or SocketOptions()).max_message_size
            self._init_link(StreamLog(spool, spool_options, max_record=size), True)
        else:
            raise ConfigError(f"spool must be a directory path, got {spool!r}")
        try:
            super().__init__(bind=bind, connect=connect, node=node, options=options,
                             service=service)
            self._start_link()
        except BaseException:
            self.close()
            raise

    @property
    def log(self) -> StreamLog:
        return self._model

    @property
    def subscribers(self) -> int:
        """Subscribers linked now (said HELLO on a live connection)."""
        return len(self._links.peers)

    def spool_stats(self) -> dict[str, object]:
        """Counts of the log and, per durable subscriber, where it is."""
        return self._model.stats()

    # -- the link thread: one consumer per subscriber
    def _deliveries(self) -> list[Deliveries]:
        return [c.deliveries for c in self._model.linked()]

    def _hello(self, peer: Peer, replaced: Peer | None, now: float) -> None:
        model = self._model
        if replaced is not None:
            self._bury_all(model.consumer_of(replaced.rid), model.detach(replaced.rid, now))
        if peer is None:
            return
        c = model.attach(peer.rid, peer.hello, now)
        self._links.answer(peer)  # linked now: the subscriber misses nothing sent after this
        self._tell_gaps(c)

    def _tell_gaps(self, c: Consumer) -> None:
        rid = c.rid
        if not c.gaps or not isinstance(rid, bytes):
            return
        for first, last in c.gaps:
            body: bytes = msgpack.packb([first, last])
            self._links.send(rid, [link.GAP, self._spool_id, body])
        c.gaps.clear()

    def _bury_all(self, c: Consumer | None, seqs: list[int]) -> None:
        if c is not None and seqs:
            self._model.bury(c, seqs, "max_deliver")

    def _consumer(self, rid: bytes, name: str) -> Consumer | None:
        """By link, or by durable name (acks that come after their link was found gone)."""
        c = self._model.consumer_of(rid)
        return c if c is not None else self._model.consumers.get(name) if name else None

    def _acked(self, rid: bytes, seqs: list[int], name: str) -> None:
        c = self._consumer(rid, name)
        if c is not None:
            c.deliveries.ack(seqs)

    def _nacked(self, rid: bytes, pairs: list[tuple[int, bool]], now: float, name: str
                ) -> None:
        c = self._consumer(rid, name)
        if c is None:
            return
        for seq, requeue in pairs:
            dead = c.deliveries.nack(seq, requeue, now)
            if dead:
                self._model.bury(c, dead, "max_deliver" if requeue else "rejected")

    def _gone(self, rid: bytes, now: float) -> None:
        model = self._model
        c = model.consumer_of(rid)
        self._bury_all(c, model.detach(rid, now))

    def _deliver(self, now: float) -> int:
        model = self._model
        frames = 0
        upto = model.deliverable
        for c in model.linked():
            self._bury_all(c, c.deliveries.expire(now))
            frames += dispatch(c.deliveries, model.read, self._send, upto, now,
                               accept=c.accept)
        return frames

    def _after_checkpoint(self) -> None:
        for c in self._model.checkpoint():
            self._tell_gaps(c)
