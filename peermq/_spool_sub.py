"""The receiving half of durable pub/sub: a Subscriber that reads a spooled publisher's log.

It says HELLO with its topics, its durable name and where to start (``History``); the publisher
delivers every message of those topics from its cursor, and it acks them as a spooled puller
does (_spool_recv.py). A durable subscriber that comes back under the same name gets what it
missed, then the live messages, from the one cursor the publisher kept for it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping

import msgpack
import zmq

from ._core import GapHandler, _header_matcher, token_for
from ._kinds import SubscriberBase
from ._spool_link import identity
from ._spool_recv import LinkReceiving
from .config import AckMode, HeaderMatch, History, SocketOptions, SpoolOptions
from .discovery.txt import PeerKind, Service
from .errors import ConfigError
from .message import Delivery, Gap, SocketStats
from .node import Node
from .spool import link
from .topics import TopicFilter

__all__ = ["SpoolSubscribing"]

_log = logging.getLogger("peermq.spool")


class SpoolSubscribing(LinkReceiving, SubscriberBase):
    """A Subscriber of spooled publishers: durable, with history, with acks."""

    _peer_kind = PeerKind.SPOOL_SUBSCRIBER
    """With ``service=``: it looks for spooled publishers (``spool-pub``) only."""

    def __init__(
        self,
        *,
        connect: str | list[str] | tuple[str, ...] | None = None,
        bind: str | list[str] | tuple[str, ...] | None = None,
        topics: Iterable[str] = (">",),
        headers: Mapping[str, str] | None = None,
        match: HeaderMatch = HeaderMatch.ALL,
        on_gap: GapHandler | None = None,
        node: Node | None = None,
        options: SocketOptions | None = None,
        service: str | Service | None = None,
        durable: str | None = None,
        history: History | None = None,
        spool: str | os.PathLike[str] | None = None,
        spool_options: SpoolOptions | None = None,
        ack: AckMode | None = None,
    ) -> None:
        if durable is not None and (not isinstance(durable, str) or not durable
                                    or len(durable) > 255):
            raise ConfigError(f"durable must be a non-empty name, got {durable!r}")
        if history is not None and not isinstance(history, History):
            raise ConfigError(f"history must be a History, got {history!r}")
        self._durable = durable or ""
        self._history = history or History()
        self._gaps = 0
        self._filtered = 0
        self._init_link(spool, spool_options, ack)
        try:
            super().__init__(connect=connect, bind=bind, topics=topics, headers=headers,
                             match=match, on_gap=on_gap, node=node, options=options,
                             service=service)
        except BaseException:
            self.close()
            raise

    def _setup(self) -> None:
        # not SubscriberBase's: there is no XSUB to subscribe on; the topics go in the HELLO
        self.token = token_for(self.node.id, self.stream)
        self._headers_ok = _header_matcher(self._headers, self._match)
        self._setup_link()

    def _hello(self) -> link.Hello:
        return link.Hello(link.RECEIVER, self.node.id, self.node.name, "", self._sopts.prefetch,
                          identity(self).decode(), False, link.STREAM, self._durable,
                          self._filter.patterns, self._history.spec())

    def _ack_tail(self) -> list[bytes]:
        return [self._durable.encode()] if self._durable else []

    def _resubscribe(self, patterns: tuple[str, ...]) -> None:
        self._live()
        self._filter = TopicFilter(patterns)
        self._links.hello = self._hello()
        self._links.greet(0.0, force=True, everyone=True)  # the publishers filter for us

    @property
    def durable(self) -> str | None:
        return self._durable or None

    @property
    def publishers(self) -> int:
        """Spooled publishers linked now (said HELLO)."""
        self._pump()
        return len(self._links.peers)

    def stats(self) -> SocketStats:
        return SocketStats(received=self.received, gaps=self._gaps, filtered=self._filtered,
                           malformed=self._links.malformed, peers=len(self._links.peers),
                           duplicates=self.duplicates)

    def _accept(self, msg: Delivery) -> bool:
        ok = self._filter.matches(msg.topic) and (
            self._headers_ok is None or self._headers_ok(msg.headers))
        if not ok:
            self._filtered += 1
        return ok

    def _frame(self, kind: bytes, frames: list[zmq.Frame]) -> bool:
        if kind != link.GAP:
            return False
        peer = self._links.peers.get(frames[0].bytes)
        try:
            first, last = msgpack.unpackb(frames[3].bytes) if len(frames) > 3 else (0, -1)
            lost = int(last) - int(first) + 1
        except (ValueError, TypeError, msgpack.UnpackException):
            lost = 0
        if peer is None or lost <= 0:
            return True
        self._gaps += lost
        _log.warning("stream.gap publisher=%s first=%d lost=%d (deleted by its retention)",
                     peer.hello.name, first, lost)
        if self._on_gap is not None:
            try:
                self._on_gap(Gap(peer.hello.node, 0, "", int(first), lost))
            except Exception:
                _log.exception("on_gap handler failed")
        return True
