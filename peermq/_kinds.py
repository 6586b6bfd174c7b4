"""The non-blocking half of each socket kind, shared by the blocking and asyncio shells.

sockets.py and aio.py add only the parts that wait: send under back-pressure, recv, the
``wait_for_*`` readiness calls and consume loops.
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING

import zmq

from . import _zmq, wire
from ._base import Endpoints, SocketBase
from ._core import GapHandler, ReceiveCore, SendCore, token_for
from ._zmq import Kind
from .config import AckMode, HeaderMatch, History, OnFull, SocketOptions, SpoolOptions
from .errors import ClosedError, ConfigError, EncodeError, SendTimeoutError
from .message import Message, SocketStats
from .node import Node
from .security.screen import Screen
from .topics import TopicFilter

if TYPE_CHECKING:
    from .discovery.txt import Service
    from .spool.store import Spool

__all__ = [
    "PublisherBase",
    "PullerBase",
    "PusherBase",
    "ReceiverBase",
    "SenderBase",
    "SubscriberBase",
    "deadline",
]

_SERVICE_EVERY = 1024
SERVICE_MASK = _SERVICE_EVERY - 1
_now = time.time


def _no_spool(cls: type, *given: object) -> None:
    if any(g is not None for g in given):
        raise ConfigError(f"{cls.__name__} has no spool: the spooled sockets are made by "
                          "peermq.Pusher, Puller, Publisher and Subscriber")


def wants_spool(cls: type, exact: type[SocketBase], kwargs: dict[str, object]) -> bool:
    """Should ``exact(**kwargs)`` be its spooled subclass? One rule for both shells.

    ``exact._spool_keys`` names the arguments that ask for a spool (spool=, durable=, ...).
    """
    keys: tuple[str, ...] = getattr(exact, "_spool_keys", ())
    return cls is exact and any(kwargs.get(key) is not None for key in keys)


def check_count(max_count: int) -> None:
    if isinstance(max_count, bool) or not isinstance(max_count, int) or max_count < 1:
        raise ConfigError(f"max_count must be an integer >= 1, got {max_count!r}")


def deadline(timeout: float | None) -> float | None:
    """Absolute monotonic deadline for a relative ``timeout`` (None: no deadline)."""
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout < 0:
        raise ConfigError(f"timeout must be None or >= 0 seconds, got {timeout!r}")
    return time.monotonic() + timeout


class SenderBase(SocketBase):
    """Encoding and non-blocking sends; the shell decides how to wait for room."""

    _incarnation: int | None = None
    """Random per socket, in its welcome and goodbye (docs/protocol.md, section 4)."""

    _core: SendCore
    _default_on_full = OnFull.DROP
    _tap: Callable[[bytes], None] | None = None
    """Set by the node's mirror while a tap is attached: takes a copy of each frame sent."""

    @property
    def on_full(self) -> OnFull:
        """The policy in force: the options' choice, or this kind's default."""
        return self.options.on_full or self._default_on_full

    def _on_full(self) -> OnFull:
        return self.on_full

    def _setup(self) -> None:
        self._core = SendCore(self.node.id, self.stream, self.options)
        self._block = self.on_full is OnFull.BLOCK
        self._flags = 0 if self._block else zmq.NOBLOCK
        self._encode_one = self._core.encoder.encode

    def _welcome(self) -> bytes:
        # random per socket: a subscriber tells this socket's goodbye from an earlier one's
        # with the same (node, stream), e.g. a restart with a fixed node id
        self._incarnation = secrets.randbits(31)
        return wire.encode_welcome(self.node.id, self.stream, self.node.name, self._incarnation)

    def _service(self) -> None:
        """Read what peers told this socket; cheap, done every so often and when asked."""
        self._read_monitor()

    def _encode(self, topic: str, data: object, headers: Mapping[str, str] | None) -> bytes:
        if self._sock is None:
            raise ClosedError(f"{type(self).__name__} is closed")
        return self._core.encoder.encode(
            topic, data, wire.check_headers(headers) if headers else None, time.time()
        )

    def _send_one(
        self, topic: str, data: object, headers: Mapping[str, str] | None, flags: int
    ) -> bool | bytes:
        """The hot path of ``send``: encode and send one message.

        True: sent. False: dropped at a full queue (counted). bytes: the frame, which would
        block (BLOCK policy); its sequence number stays taken until the caller gives up.
        """
        # every attribute read counts here: a closed socket is found by the send itself
        # (ZeroMQ says ENOTSOCK), and posted calls run with the periodic service below
        frame = self._encode_one(
            topic, data, wire.check_headers(headers) if headers else None, _now()
        )
        try:
            self._send_raw(frame, flags)
        except zmq.ZMQError as exc:
            return self._not_sent(topic, frame, exc)
        core = self._core
        core.sent += 1
        if self._tap is not None:
            self._tap(frame)
        if not core.sent & SERVICE_MASK:
            self._service_now()
        return True

    def _not_sent(self, topic: str, frame: bytes, exc: zmq.ZMQError) -> bool | bytes:
        """A single send failed: False if dropped (counted), the frame if it would block
        (BLOCK policy; its number stays taken), else raise."""
        if isinstance(exc, zmq.Again):
            if self._block:
                return frame
            self._core.dropped += 1
            return False
        self._core.encoder.rewind(topic, 1)
        if self._sock is None:
            raise ClosedError(f"{type(self).__name__} is closed") from None
        raise _zmq.translate(exc, "send") from exc

    def _try_send(
        self, frame: bytes, topic: str, count: int, unsent: int, flags: int
    ) -> bool | None:
        """True: sent. False: dropped at a full queue (counted). None: would block (BLOCK)."""
        if self._sock is None:
            raise ClosedError(f"{type(self).__name__} is closed")
        try:
            self._send_raw(frame, flags)
        except zmq.Again:
            if self._block:
                return None
            self._core.dropped += count
            return False
        except zmq.ZMQError as exc:
            self._core.encoder.rewind(topic, unsent)
            raise _zmq.translate(exc, "send") from exc
        core = self._core
        before = core.sent
        core.sent += count
        if self._tap is not None:
            self._tap(frame)
        if (before ^ core.sent) & ~SERVICE_MASK:  # crossed a multiple of _SERVICE_EVERY
            self._service_now()
        return True

    def _service_now(self) -> None:
        if self._inbox:
            self._run_inbox()
        self._service()

    def _timed_out(self, topic: str, unsent: int) -> SendTimeoutError:
        self._core.encoder.rewind(topic, unsent)
        return SendTimeoutError(
            f"no peer took the message within send_timeout={self.options.send_timeout}s; "
            "it was not sent"
        )

    def _batches(
        self, messages: Iterable[tuple[str, object]], headers: Mapping[str, str] | None
    ) -> Iterator[tuple[str, list[tuple[bytes, int]]]]:
        """Runs of one topic, each encoded as ``(frame, count)`` batch frames."""
        if self._sock is None:
            raise ClosedError(f"{type(self).__name__} is closed")
        hdrs = wire.check_headers(headers) if headers else None
        now = time.time()
        enc = self._core.encoder
        max_bytes = min(self.options.batch_max_bytes, self.options.max_message_size)
        run_topic: str | None = None
        run: list[object] = []
        for topic, data in messages:
            if topic != run_topic:
                if run_topic is not None and run:
                    yield run_topic, enc.encode_batch(run_topic, run, hdrs, now, max_bytes)
                run_topic, run = topic, []
            run.append(data)
        if run_topic is not None and run:
            yield run_topic, enc.encode_batch(run_topic, run, hdrs, now, max_bytes)

    def stats(self) -> SocketStats:
        """Counters so far; after close, the final ones."""
        self._service()
        return self._core.stats()


class PublisherBase(SenderBase):
    """Fan-out: every subscriber whose topics match gets a copy."""

    _spool_keys: tuple[str, ...] = ("spool",)
    """Arguments that make the constructor return the spooled kind."""

    _kind = Kind.PUBLISHER

    def __init__(
        self,
        *,
        bind: Endpoints = None,
        connect: Endpoints = None,
        node: Node | None = None,
        options: SocketOptions | None = None,
        service: str | Service | None = None,
        spool: str | os.PathLike[str] | None = None,
        spool_options: SpoolOptions | None = None,
    ) -> None:
        # spool=...: Publisher.__new__ makes a spooled publisher instead (peermq/_spool_pub.py)
        _no_spool(type(self), spool, spool_options)
        super().__init__(node=node, options=SocketOptions() if options is None else options,
                         bind=bind,
                         connect=connect, service=service)

    def _service(self) -> None:
        sock = self._sock
        if sock is None:
            return
        super()._service()
        upstream = self._core.upstream
        while True:
            try:
                frame = sock.recv(zmq.NOBLOCK)
            except zmq.Again:
                return
            upstream(frame)

    def _farewell(self) -> None:
        """Tell each subscriber this publisher is leaving; best effort, never blocks."""
        sock = self._sock
        if sock is None:
            return
        self._service()
        enc = self._core.encoder
        for token in self._core.subscribers:
            try:
                sock.send(wire.encode_goodbye(token, enc.node, enc.stream, self._incarnation),
                          zmq.NOBLOCK)
            except zmq.ZMQError:
                return  # a full queue: the subscribers' monitors see the connection end

    @property
    def subscribers(self) -> int:
        """Subscribers connected with their subscriptions in force."""
        self._service()
        return len(self._core.subscribers)


class PusherBase(SenderBase):
    """Pipeline: each message goes to one puller, round-robin; waits when all are full."""

    _spool_keys: tuple[str, ...] = ("spool",)
    """Arguments that make the constructor return the spooled kind."""

    _kind = Kind.PUSHER
    _default_on_full = OnFull.BLOCK

    def __init__(
        self,
        *,
        bind: Endpoints = None,
        connect: Endpoints = None,
        node: Node | None = None,
        options: SocketOptions | None = None,
        spool: str | os.PathLike[str] | Spool | None = None,
        spool_options: SpoolOptions | None = None,
        service: str | Service | None = None,
    ) -> None:
        # spool=...: Pusher.__new__ makes a spooled pusher instead (peermq/_spool_send.py)
        _no_spool(type(self), spool, spool_options)
        super().__init__(node=node, options=SocketOptions() if options is None else options,
                         bind=bind,
                         connect=connect, monitor=True, service=service)

    @property
    def peers(self) -> int:
        """Pullers connected now."""
        return self._count_peers()

    def stats(self) -> SocketStats:
        s = super().stats()
        return SocketStats(sent=s.sent, dropped=s.dropped, peers=self._count_peers())


class ReceiverBase(SocketBase):
    """Decoding and non-blocking receipt; the shell decides how to wait for messages."""

    _rcore: ReceiveCore
    _stopping = False
    _dry = False
    """The last receive found the queue empty: the next one polls before it reads."""
    _drys = 0
    """Times the queue ran dry: every 64th, the monitor is read (its queue is unbounded)."""

    def _ran_dry(self) -> None:
        self._dry = True
        self._drys = drys = self._drys + 1
        if not drys & 63:
            self._read_monitor()

    def _discard_unread(self) -> int:
        core, sock = getattr(self, "_rcore", None), self._sock
        if core is None:  # closing a socket whose construction failed
            return 0
        count = len(core.pending)
        core.pending.clear()
        if sock is not None:
            before = core.received
            while True:
                try:
                    frame = sock.recv(zmq.NOBLOCK)
                except zmq.Again:
                    break
                core.stash(frame)
            count += core.received - before
            core.received = before  # discarded, not handed to the user
            core.pending.clear()
        return count

    def _screen_frames(self) -> None:
        """Find and cut off a peer that keeps sending malformed frames (security/screen.py)."""
        if self.options.max_bad_frames > 0:
            self._rcore.on_malformed = Screen(self, self.options.max_bad_frames).on_malformed

    def _flush_outbox(self) -> None:
        sock = self._sock
        for frame in self._rcore.drain_outbox():
            if sock is None:
                return
            try:
                sock.send(frame, zmq.NOBLOCK)
            except zmq.ZMQError:
                return  # reports are advice: never block a receiver on them

    def _pump(self) -> None:
        """Take in every frame that is ready, keeping the messages for later."""
        sock = self._live()
        stash = self._rcore.stash
        while True:
            try:
                frame = sock.recv(zmq.NOBLOCK)
            except zmq.Again:
                break
            except zmq.ZMQError as exc:
                raise _zmq.translate(exc, "recv") from exc
            stash(frame)
        self._flush_outbox()

    def _take_ready(self, max_count: int, out: list[Message]) -> list[Message]:
        """Append to ``out`` what is ready now, up to ``max_count`` messages in all."""
        core = self._rcore
        pending = core.pending
        self._live()
        accept = core.accept
        recv = self._recv_raw
        while len(out) < max_count:
            if pending:
                out.append(pending.popleft())
                continue
            try:
                frame = recv(zmq.NOBLOCK)
            except zmq.Again:
                break
            msg = accept(frame)
            if msg is not None:
                out.append(msg)
            else:
                # a malformed frame may have started screening, which swaps the receive
                recv = self._recv_raw
        if core.outbox:
            self._flush_outbox()
        return out

    def stop(self) -> None:
        """Make ``consume`` and iteration return after the current message."""
        self._stopping = True

    def stats(self) -> SocketStats:
        return self._rcore.stats()


class SubscriberBase(ReceiverBase):
    """Receives the messages of the topics it asked for, from every publisher it connects to."""

    _spool_keys: tuple[str, ...] = ("durable", "history", "spool", "ack")
    """Arguments that make the constructor return the spooled kind."""

    _kind = Kind.SUBSCRIBER

    def __init__(
        self,
        *,
        connect: Endpoints = None,
        bind: Endpoints = None,
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
        # durable=, history=, spool= or ack=: Subscriber.__new__ makes a spooled subscriber
        _no_spool(type(self), durable, history, spool, spool_options, ack)
        if isinstance(topics, str):
            topics = (topics,)
        self._filter = TopicFilter(topics)
        if headers is not None:
            try:
                wire.check_headers(headers)
            except EncodeError as exc:
                raise ConfigError(f"header filter: {exc}") from None
        if not isinstance(match, HeaderMatch):
            raise ConfigError(f"match must be a HeaderMatch, got {match!r}")
        if on_gap is not None and not callable(on_gap):
            raise ConfigError("on_gap must be callable")
        self._headers, self._match, self._on_gap = headers, match, on_gap
        super().__init__(node=node, options=SocketOptions() if options is None else options,
                         bind=bind,
                         connect=connect, service=service)

    def _setup(self) -> None:
        self.token = token_for(self.node.id, self.stream)
        self._rcore = ReceiveCore(
            token=self.token, options=self.options, topics=self._filter,
            headers=self._headers, match=self._match, on_gap=self._on_gap,
        )
        sock = self._live()
        for prefix in self._filter.prefixes:
            sock.send(b"\x01" + prefix)
        # last, so that a publisher that sees it knows the subscriptions above are in force
        sock.send(b"\x01" + wire.marker_subscription(self.token))
        self._screen_frames()

    @property
    def topics(self) -> tuple[str, ...]:
        return self._filter.patterns

    def subscribe(self, *patterns: str) -> None:
        """Add topic patterns."""
        self._resubscribe((*self._filter.patterns, *patterns))

    def unsubscribe(self, *patterns: str) -> None:
        """Remove topic patterns."""
        self._resubscribe(tuple(p for p in self._filter.patterns if p not in patterns))

    def _resubscribe(self, patterns: tuple[str, ...]) -> None:
        new = TopicFilter(patterns)
        sock = self._live()
        old = set(self._filter.prefixes)
        for prefix in new.prefixes:
            if prefix not in old:
                sock.send(b"\x01" + prefix)
        for prefix in old - set(new.prefixes):
            sock.send(b"\x00" + prefix)
        self._filter = new
        self._rcore.set_topics(new)

    @property
    def publishers(self) -> int:
        """Publishers that have welcomed this subscriber and not said goodbye."""
        self._pump()
        return len(self._rcore.publishers)

    @property
    def publisher_names(self) -> dict[str, str]:
        """Node id -> node name of the publishers counted in ``publishers``.

        Keyed by node: two publishers of one node are one entry here and two in ``publishers``.
        """
        self._pump()
        return {node: name for (node, _), (name, _) in self._rcore.publishers.items()}


class PullerBase(ReceiverBase):
    """Takes its share of the messages of the pushers it is connected to."""

    _spool_keys: tuple[str, ...] = ("spool", "ack")
    """Arguments that make the constructor return the spooled kind."""

    _kind = Kind.PULLER

    def __init__(
        self,
        *,
        bind: Endpoints = None,
        connect: Endpoints = None,
        node: Node | None = None,
        options: SocketOptions | None = None,
        spool: str | os.PathLike[str] | None = None,
        spool_options: SpoolOptions | None = None,
        ack: AckMode | None = None,
        service: str | Service | None = None,
    ) -> None:
        # spool=... or ack=...: Puller.__new__ makes a spooled puller (peermq/_spool_recv.py)
        _no_spool(type(self), spool, spool_options, ack)
        super().__init__(node=node, options=SocketOptions() if options is None else options,
                         bind=bind,
                         connect=connect, monitor=True, service=service)

    def _setup(self) -> None:
        # Load balancing gives each puller a share of the sequence: its gaps are not losses.
        self._rcore = ReceiveCore(
            token=token_for(self.node.id, self.stream), options=self.options, topics=None,
            track_gaps=False,
        )
        self._screen_frames()

    @property
    def peers(self) -> int:
        """Pushers connected now."""
        return self._count_peers()

    def stats(self) -> SocketStats:
        return self._rcore.stats(peers=self._count_peers())


Handler = Callable[[Message], object]
