"""The receiving half of spool links: a Puller (or Subscriber) that acks and drops duplicates.

No thread of its own: like a plain Puller, it works when its owner calls ``recv``. What arrives
is checked (each record's crc32), deduplicated against the window of handled messages, and
handed out as ``Delivery`` objects; acknowledgements are batched and sent before the owner
waits, so a puller that keeps receiving keeps its senders' windows moving.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections import deque
from collections.abc import Mapping
from typing import Any

import zmq

from . import _zmq, wire
from ._kinds import PullerBase, ReceiverBase
from ._spool_link import LINK_KIND, LinkPeers, Peer, identity, setup_router
from .config import AckMode, SocketOptions, SpoolOptions
from .discovery.txt import PeerKind, Service
from .errors import ConfigError, PeermqError, WireError
from .message import NO_HEADERS, Delivery, SocketStats
from .node import Node
from .spool import _records as rec
from .spool import link
from .spool.dedup import DedupStore, DedupWindow

__all__ = ["IDLE_WAKE", "LinkReceiving", "SpoolReceiving"]

_log = logging.getLogger("peermq.spool")
_INPUT_PER_PUMP = 256
FLUSH_EVERY = 0.05
"""Acks (and the window, with a spool) are written at least this often while messages flow,
or every 256, or before waiting: what a killed puller handled and had not recorded is at most
that much, and comes back (the one window no puller closes)."""
IDLE_WAKE = 0.5
"""Longest wait between looks at the monitor and HELLO retries while the owner waits."""

# kinds of settled entries queued for the next flush
_ACK, _ACK_AGAIN, _REQUEUE, _REJECT = 0, 1, 2, 3


class LinkReceiving(ReceiverBase):
    """What a spooled puller and a durable subscriber share: acks, credit, the window."""

    _kind = LINK_KIND
    # the monitor tells when a peer's connection closes, with CURVE on too
    _wants_monitor = True

    def _init_link(self, spool: str | os.PathLike[str] | None,
                   spool_options: SpoolOptions | None, ack: AckMode | None) -> None:
        """Before the socket is made (raises ConfigError or SpoolError, nothing to undo)."""
        if ack is not None and not isinstance(ack, AckMode):
            raise ConfigError(f"ack must be an AckMode, got {ack!r}")
        if spool_options is not None and not isinstance(spool_options, SpoolOptions):
            raise ConfigError("spool_options must be a SpoolOptions")
        self._sopts = spool_options or SpoolOptions()
        self.ack_mode = ack or AckMode.AUTO
        self._store: DedupStore | None = None
        if spool is not None:
            if not isinstance(spool, (str, os.PathLike)):
                raise ConfigError(f"spool must be a directory path, got {spool!r}")
            self._store = DedupStore(spool, self._sopts)
        self.window: DedupWindow = (
            self._store.window if self._store is not None
            else DedupWindow(self._sopts.dedup_window, self._sopts.dedup_max)
        )
        self._queue: deque[Delivery] = deque()
        self._held: dict[tuple[str, int], int] = {}
        self._settled: deque[tuple[int, str, int, int]] = deque()
        self._auto: list[Delivery] = []
        self._spools: dict[str, bytes] = {}
        self._topics: dict[bytes, str] = {}
        self._waiting = False
        self._flush_by = 0.0
        self.received = 0
        self.duplicates = 0

    def _hello(self) -> link.Hello:
        """What this receiver says it is, wants and can hold."""
        return link.Hello(link.RECEIVER, self.node.id, self.node.name, "",
                          self._sopts.prefetch, identity(self).decode(), False)

    def _setup_link(self) -> None:
        setup_router(self._live(), identity(self), self._sopts)
        self._links = LinkPeers(self, self._hello(), link.SENDER)

    def _frame(self, kind: bytes, frames: list[zmq.Frame]) -> bool:
        """A frame kind other than DELIVER and HELLO; False if it is not one either."""
        return False

    def _accept(self, msg: Delivery) -> bool:
        """False: filtered out here (it is acked at once, never handed out)."""
        return True

    def _ack_tail(self) -> list[bytes]:
        """What follows the ranges of an ACK or NACK (a durable subscriber's name)."""
        return []


    def connect(self, endpoint: str) -> None:
        sock = self._live()
        sock.setsockopt(zmq.CONNECT_ROUTING_ID, self._links.alias_for(endpoint))
        super().connect(endpoint)
        self._links.greet(time.monotonic(), force=True)

    def disconnect(self, endpoint: str) -> None:
        super().disconnect(endpoint)
        alias = self._links.forget_endpoint(endpoint)
        if alias is not None:
            peer = self._links.drop(alias)
            if peer is not None:
                self._lost(peer)

    @property
    def peers(self) -> int:
        """Senders that have said HELLO on a live connection."""
        self._pump()
        return len(self._links.peers)

    def stats(self) -> SocketStats:
        return SocketStats(received=self.received, malformed=self._links.malformed,
                           peers=len(self._links.peers), duplicates=self.duplicates)

    # -- taking frames in
    def _pump(self) -> None:
        """Take in what is ready on the socket and the monitor; never waits."""
        sock = self._live()
        for peer in self._links.drain_monitor(self._monitor) + self._links.probe(
                time.monotonic()):
            self._lost(peer)
        for _ in range(_INPUT_PER_PUMP):
            try:
                frames = sock.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                break
            except zmq.ZMQError as exc:
                raise _zmq.translate(exc, "recv") from exc
            if len(frames) < 2:
                continue
            kind = frames[1].bytes
            if kind == link.DELIVER and len(frames) > 3:
                self._deliveries(frames)
            elif kind == link.HELLO:
                new, replaced = self._links.on_hello(frames)
                if replaced is not None:
                    self._lost(replaced)
                if new is not None:
                    self._spools[new.hello.spool] = new.rid
                    self._links.answer(new)
                    self._linked(new, True)
            elif kind == link.PING:
                pass
            elif not self._frame(kind, frames):
                self._links.bad("kind", WireError(f"unknown frame {kind[:4]!r}"))
        self._links.greet(time.monotonic())

    def _lost(self, peer: Peer) -> None:
        """A sender went away: acks for its spool wait for a link to it again.

        What it sent and was not handed out yet is still handed out: if it comes again from a
        successor on the same spool, the window drops the copy; dropping it here instead would
        leave it unacknowledged until the sender's ack timeout if the loss was a false alarm.
        """
        spool = peer.hello.spool
        if self._spools.get(spool) == peer.rid:
            del self._spools[spool]
        self._linked(peer, False)

    def _linked(self, peer: Peer, up: bool) -> None:
        """Tell discovery a link to an endpoint it connected is up (HELLO said) or down.

        For a spool link, a peer joins when it says HELLO, not at the ZeroMQ handshake: a
        sender that does not speak the link never joins.
        """
        endpoint = self._links.aliases.get(peer.rid)
        if self.discovery is not None and endpoint is not None:
            self.discovery.on_link(endpoint, up)

    def _count_peers(self) -> int:
        """The link reads the monitor (discovery's wake-ups land here): linked senders."""
        self._pump()
        return len(self._links.peers)

    def _deliveries(self, frames: list[zmq.Frame]) -> None:
        rid = frames[0].bytes
        peer = self._links.peers.get(rid)
        if peer is None:
            return  # from a connection that has not said HELLO (or is gone): it is resent
        data = frames[3].buffer
        try:
            records = rec.split(data)
            counts = link.decode_deliveries(frames[2].buffer, len(records))
        except (ValueError, WireError) as exc:
            self._links.bad("deliver", exc)
            return
        spool = peer.hello.spool
        held, seen = self._held, self.window.seen
        for (kind, seq, start, end), count in zip(records, counts, strict=True):
            crc = int.from_bytes(data[start - rec.HEADER + 2 : start - rec.HEADER + 6], "little")
            key = (spool, seq)
            if key in held:
                continue  # already here, not settled yet: its ack will cover this copy
            if seen(spool, seq, crc):
                self.duplicates += 1
                self._settled.append((_ACK_AGAIN, spool, seq, crc))
                continue
            msg = self._decode(bytes(data[start:end]), kind)
            if msg is None:
                # it can never be handled here: to the sender's dead letters with it
                self._settled.append((_REJECT, spool, seq, crc))
                continue
            msg.spool_id, msg.spool_seq, msg.deliveries = spool, seq, count
            msg._settler, msg._crc, msg._link = self, crc, rid
            held[key] = crc
            if self._accept(msg):
                self._queue.append(msg)
            else:
                msg.ack()  # filtered out here: done with, as far as the sender goes

    def _decode(self, frame: bytes, kind: int) -> Delivery | None:
        if kind != rec.Kind.MESSAGE:
            self._links.bad("record", WireError(f"record kind {kind} on a link"))
            return None
        try:
            raw, env = wire.decode_data(frame)
        except WireError as exc:
            self._links.bad("decode", exc)
            return None
        _kind, node, stream, seq, ts, headers, payload = env
        if _kind != wire.SINGLE:
            self._links.bad("decode", WireError("a batch frame in a spool record"))
            return None
        topic = self._topics.get(raw)
        if topic is None:
            try:
                topic = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                self._links.bad("topic", exc)
                return None
            if len(self._topics) < 4096:
                self._topics[raw] = topic
        hdrs: Mapping[str, str] = headers if headers else NO_HEADERS
        return Delivery(topic, payload, hdrs, node, stream, seq, ts)

    # -- handing out and settling
    def _take(self) -> Delivery | None:
        """The next message if one is ready (after taking in what arrived)."""
        if not self._queue:
            self._pump()
        if not self._queue:
            return None
        msg = self._queue.popleft()
        self.received += 1
        return msg

    def _settle(self, msg: Delivery, ack: bool, requeue: bool) -> None:
        """Called by ``msg.ack()``/``msg.nack()``, from any thread."""
        if msg._settler is None:
            return
        msg._settler = None
        # it stays in _held until _flush has put it in the window: a copy that arrives
        # meanwhile is dropped, not handed out again
        kind = _ACK if ack else (_REQUEUE if requeue else _REJECT)
        self._settled.append((kind, msg.spool_id, msg.spool_seq, msg._crc))
        if self._waiting:
            with contextlib.suppress(OSError):
                os.write(self._wake_w, b"\x02")

    def _ack_auto(self) -> None:
        """AUTO mode: what was handed out before counts as handled now."""
        auto = self._auto
        if auto:
            for msg in auto:
                msg.ack()
            auto.clear()

    def _hand_out(self, msg: Delivery) -> Delivery:
        if self.ack_mode is AckMode.AUTO:
            self._auto.append(msg)
        settled = self._settled
        if settled and (len(settled) >= max(1, min(256, self._sopts.prefetch // 4))
                        or time.monotonic() >= self._flush_by):
            self._flush()
        return msg

    def _flush(self) -> None:
        """Record handled messages (durably, with a spool), then send acks and nacks."""
        settled = self._settled
        self._flush_by = time.monotonic() + FLUSH_EVERY
        if not settled:
            return
        items: list[tuple[int, str, int, int]] = []
        while settled:
            items.append(settled.popleft())
        handled: dict[str, list[tuple[int, int]]] = {}
        acks: dict[str, list[int]] = {}
        nacks: dict[str, list[tuple[int, bool]]] = {}
        for kind, spool, seq, crc in items:
            if kind in (_ACK, _REJECT):
                handled.setdefault(spool, []).append((seq, crc))
            if kind in (_ACK, _ACK_AGAIN):
                acks.setdefault(spool, []).append(seq)
            else:
                nacks.setdefault(spool, []).append((seq, kind == _REQUEUE))
        if handled:
            if self._store is not None:
                self._store.record(handled)  # durable before any ack leaves
            else:
                add = self.window.add
                for spool, pairs in handled.items():
                    for seq, crc in pairs:
                        add(spool, seq, crc)
        held = self._held
        for kind, spool, seq, _ in items:
            if kind != _ACK_AGAIN:
                held.pop((spool, seq), None)
        tail = self._ack_tail()
        for spool, seqs in acks.items():
            rid = self._spools.get(spool)
            if rid is not None:
                self._links.send(rid, [link.ACK, spool.encode(), link.encode_ack(seqs), *tail])
        for spool, back in nacks.items():
            rid = self._spools.get(spool)
            if rid is not None:
                self._links.send(rid, [link.NACK, spool.encode(), link.encode_nack(back),
                                       *tail])
        # an ack that found no sender is not lost: the message comes again, is found in
        # the window as handled, and is acked again

    def _wait_input(self, end: float | None) -> bool:
        """Wait for input on the socket, the monitor or the wake pipe; False if ``end`` passed."""
        sock = self._live()
        left = _zmq.deadline_left(end)
        if left == 0.0:
            return False
        wait = IDLE_WAKE if left is None else min(left, IDLE_WAKE)
        if self._links.probing() is not None:
            wait = min(wait, 0.01)  # a connection closed: look again soon to find whose
        poller = zmq.Poller()
        poller.register(sock, zmq.POLLIN)
        if self._monitor is not None:
            poller.register(self._monitor, zmq.POLLIN)
        poller.register(self._wake_r, zmq.POLLIN)
        self._waiting = True
        try:
            ready: Any = poller.poll(round(wait * 1000))
        finally:
            self._waiting = False
        if ready:
            self._run_inbox()
        return True

    def _discard_unread(self) -> int:
        count = len(self._queue)
        self._queue.clear()
        return count

    def close(self) -> int:
        """Close; in AUTO mode what was handed out counts as handled (see ``__exit__``)."""
        if getattr(self, "_sock", None) is not None and hasattr(self, "_links"):
            try:
                self._ack_auto()
                self._flush()
            except PeermqError as exc:
                _log.error("spool.ack_flush_failed error=%s", exc)
        try:
            return super().close()
        finally:
            store, self._store = getattr(self, "_store", None), None
            if store is not None:
                store.close()


class SpoolReceiving(LinkReceiving, PullerBase):
    """A Puller on spool links: acks, credit, redelivery and a dedup window."""

    _peer_kind = PeerKind.SPOOL_PULLER
    """With ``service=``: it looks for spooled pushers (``spool-push``) only."""

    def __init__(
        self,
        *,
        bind: str | list[str] | tuple[str, ...] | None = None,
        connect: str | list[str] | tuple[str, ...] | None = None,
        node: Node | None = None,
        options: SocketOptions | None = None,
        spool: str | os.PathLike[str] | None = None,
        spool_options: SpoolOptions | None = None,
        ack: AckMode | None = None,
        service: str | Service | None = None,
    ) -> None:
        self._init_link(spool, spool_options, ack)
        try:
            super().__init__(bind=bind, connect=connect, node=node, options=options,
                             service=service)
        except BaseException:
            self.close()
            raise

    def _setup(self) -> None:
        super()._setup()
        self._setup_link()
