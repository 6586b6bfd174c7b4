"""The blocking API: Publisher, Subscriber, Pusher, Puller."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from types import TracebackType
from typing import TypeVar

import zmq

from . import _zmq, wire
from ._base import SocketBase
from ._core import GapHandler, ReceiveCore, SendCore, token_for
from ._zmq import Kind
from .config import HeaderMatch, OnFull, SocketOptions
from .errors import ClosedError, ConfigError, SendTimeoutError
from .message import Message, SocketStats
from .node import Node
from .topics import TopicFilter

__all__ = ["Publisher", "Puller", "Pusher", "Subscriber"]

_Endpoints = str | list[str] | tuple[str, ...] | None
_S = TypeVar("_S", bound="_Shell")
_SERVICE_EVERY = 1024
_PUSH_DEFAULTS = SocketOptions(on_full=OnFull.BLOCK)


def _deadline(timeout: float | None) -> float | None:
    if timeout is None:
        return None
    if timeout < 0:
        raise ConfigError(f"timeout must be >= 0 seconds, got {timeout!r}")
    return time.monotonic() + timeout


def _wait(sock: zmq.Socket[bytes], events: int, deadline: float | None, what: str) -> None:
    if not _zmq.poll(sock, events, _zmq.deadline_left(deadline)):
        raise TimeoutError(what)


class _Shell(SocketBase):
    def __enter__(self: _S) -> _S:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class _Sender(_Shell):
    """Shared send path of Publisher and Pusher."""

    def __init__(
        self, *, node: Node | None, options: SocketOptions, bind: _Endpoints,
        connect: _Endpoints, monitor: bool,
    ) -> None:
        self._core: SendCore | None = None
        self._since_service = 0
        super().__init__(node=node, options=options, bind=bind, connect=connect, monitor=monitor)

    def _setup(self) -> None:
        self._core = SendCore(self.node.id, self.stream, self.options)
        self._block = self.options.on_full is OnFull.BLOCK
        self._flags = 0 if self._block else zmq.NOBLOCK

    def _welcome(self) -> bytes:
        return wire.encode_welcome(self.node.id, self.stream, self.node.name)

    def _service(self) -> None:
        """Read what peers told us (subscriptions, gap reports); cheap, done now and then."""

    def _sendout(self, frame: bytes, topic: str, count: int, unsent: int) -> bool:
        """Send one frame of ``count`` messages; ``unsent`` numbers go back if it times out."""
        sock = self._sock
        core = self._core
        if sock is None or core is None:
            raise ClosedError(f"{type(self).__name__} is closed")
        try:
            sock.send(frame, self._flags)
        except zmq.Again:
            if self._block:
                core.encoder.rewind(topic, unsent)
                raise SendTimeoutError(
                    f"no peer took the message within send_timeout={self.options.send_timeout}s"
                ) from None
            core.dropped += count
            return False
        except zmq.ZMQError as exc:
            core.encoder.rewind(topic, unsent)
            raise _zmq.translate(exc, "send") from exc
        core.sent += count
        self._since_service += count
        if self._since_service >= _SERVICE_EVERY:
            self._since_service = 0
            self._service()
        return True

    def send(self, topic: str, data: object, headers: Mapping[str, str] | None = None) -> bool:
        """Send one message. Returns False if it was dropped at a full queue (and counted).

        ``data`` is bytes or any msgpack-serialisable value. Raises TopicError or EncodeError for
        bad input (nothing is sent), SendTimeoutError with ``OnFull.BLOCK``.
        """
        core = self._core
        if core is None or self._sock is None:
            raise ClosedError(f"{type(self).__name__} is closed")
        frame = core.encoder.encode(
            topic, data, wire.check_headers(headers) if headers else None, time.time()
        )
        return self._sendout(frame, topic, 1, 1)

    def send_many(
        self,
        messages: Iterable[tuple[str, object]],
        headers: Mapping[str, str] | None = None,
    ) -> int:
        """Send many ``(topic, data)`` pairs, packed several to a frame; returns how many went.

        Consecutive pairs with the same topic share frames of up to ``batch_max_bytes``.
        """
        core = self._core
        if core is None or self._sock is None:
            raise ClosedError(f"{type(self).__name__} is closed")
        hdrs = wire.check_headers(headers) if headers else None
        now = time.time()
        sent = 0
        run_topic: str | None = None
        run: list[object] = []

        def flush() -> None:
            nonlocal sent
            if run_topic is None or not run:
                return
            frames = core.encoder.encode_batch(
                run_topic, run, hdrs, now, self.options.batch_max_bytes
            )
            # frames were numbered as a block: a timeout gives back the numbers of those not sent
            left = len(run)
            run.clear()
            for frame, n in frames:
                if self._sendout(frame, run_topic, n, left):
                    sent += n
                left -= n

        for topic, data in messages:
            if topic != run_topic:
                flush()
                run_topic = topic
            run.append(data)
        flush()
        return sent

    def stats(self) -> SocketStats:
        core = self._core
        if core is None:
            raise ClosedError(f"{type(self).__name__} is closed")
        self._service()
        return core.stats()


class Publisher(_Sender):
    """Fan-out: every subscriber whose topics match gets a copy."""

    _kind = Kind.PUBLISHER

    def __init__(
        self,
        *,
        bind: _Endpoints = None,
        connect: _Endpoints = None,
        node: Node | None = None,
        options: SocketOptions | None = None,
    ) -> None:
        super().__init__(node=node, options=options or SocketOptions(), bind=bind,
                         connect=connect, monitor=False)

    def _service(self) -> None:
        sock, core = self._sock, self._core
        if sock is None or core is None:
            return
        while True:
            try:
                frame = sock.recv(zmq.NOBLOCK)
            except zmq.Again:
                return
            core.upstream(frame)

    @property
    def subscribers(self) -> int:
        """How many subscribers are connected with their subscriptions in force."""
        self._service()
        return len(self._core.subscribers) if self._core else 0

    def wait_for_subscribers(self, n: int = 1, timeout: float = 5.0) -> int:
        """Block until ``n`` subscribers are connected and subscribed; raise TimeoutError if not.

        A message sent after this returns reaches each of them (no slow-joiner loss).
        """
        deadline = _deadline(timeout)
        while True:
            count = self.subscribers
            if count >= n:
                return count
            try:
                _wait(self._live(), zmq.POLLIN, deadline,
                      f"{count} of {n} subscribers after {timeout}s")
            except zmq.ZMQError as exc:
                raise _zmq.translate(exc, "wait_for_subscribers") from exc


class Pusher(_Sender):
    """Pipeline: each message goes to one puller, round-robin. Blocks when all are full."""

    _kind = Kind.PUSHER

    def __init__(
        self,
        *,
        bind: _Endpoints = None,
        connect: _Endpoints = None,
        node: Node | None = None,
        options: SocketOptions | None = None,
    ) -> None:
        super().__init__(node=node, options=options or _PUSH_DEFAULTS, bind=bind,
                         connect=connect, monitor=True)

    @property
    def peers(self) -> int:
        return self._count_peers()

    def wait_for_peers(self, n: int = 1, timeout: float = 5.0) -> int:
        """Block until ``n`` pullers are connected; raise TimeoutError if not."""
        return _wait_peers(self, n, timeout)

    def stats(self) -> SocketStats:
        s = super().stats()
        return SocketStats(sent=s.sent, dropped=s.dropped, peers=self._count_peers())


def _wait_peers(sock: SocketBase, n: int, timeout: float) -> int:
    deadline = _deadline(timeout)
    mon = sock._monitor
    assert mon is not None
    while True:
        count = sock._count_peers()
        if count >= n:
            return count
        _wait(mon, zmq.POLLIN, deadline, f"{count} of {n} peers after {timeout}s")


class _Receiver(_Shell):
    """Shared receive path of Subscriber and Puller."""

    _rcore: ReceiveCore

    def _discard_unread(self) -> int:
        core, sock = self._rcore, self._sock
        n = len(core.pending)
        core.pending.clear()
        if sock is not None:
            before = core.received
            while True:
                try:
                    frame = sock.recv(zmq.NOBLOCK)
                except zmq.Again:
                    break
                core.stash(frame)
            n += core.received - before
            core.pending.clear()
        return n

    def _flush_outbox(self) -> None:
        sock = self._sock
        if sock is None:
            return
        for frame in self._rcore.drain_outbox():
            try:
                sock.send(frame, zmq.NOBLOCK)
            except zmq.ZMQError:
                break

    def recv(self, timeout: float | None = None) -> Message:
        """The next message; waits up to ``timeout`` seconds (None: for ever), then TimeoutError."""
        core = self._rcore
        if core.pending:
            return core.pending.popleft()
        sock = self._sock
        if sock is None:
            raise ClosedError(f"{type(self).__name__} is closed")
        accept = core.accept
        deadline: float | None = None
        while True:
            try:
                frame = sock.recv(zmq.NOBLOCK)
            except zmq.Again:
                if deadline is None:
                    deadline = _deadline(timeout) if timeout is not None else None
                if timeout is not None and deadline is not None and time.monotonic() >= deadline:
                    raise TimeoutError(f"no message within {timeout}s") from None
                try:
                    _wait(sock, zmq.POLLIN, deadline, f"no message within {timeout}s")
                except zmq.ZMQError as exc:
                    raise _zmq.translate(exc, "recv") from exc
                continue
            except zmq.ZMQError as exc:
                raise _zmq.translate(exc, "recv") from exc
            msg = accept(frame)
            if core.outbox:
                self._flush_outbox()
            if msg is not None:
                return msg

    def recv_many(self, max_count: int = 1024, timeout: float | None = None) -> list[Message]:
        """Everything ready now (up to ``max_count``); waits like ``recv`` only if nothing is."""
        out = [self.recv(timeout)]
        core = self._rcore
        sock = self._live()
        while len(out) < max_count:
            if core.pending:
                out.append(core.pending.popleft())
                continue
            try:
                frame = sock.recv(zmq.NOBLOCK)
            except zmq.Again:
                break
            msg = core.accept(frame)
            if msg is not None:
                out.append(msg)
        if core.outbox:
            self._flush_outbox()
        return out

    def __iter__(self) -> Iterator[Message]:
        """Messages until the socket is closed (by you, or by ``stop()`` from a handler)."""
        while self._sock is not None and not self._stopping:
            try:
                yield self.recv(timeout=0.25)
            except TimeoutError:
                continue
            except ClosedError:
                return

    _stopping = False

    def stop(self) -> None:
        """Make ``consume`` and iteration return after the current message."""
        self._stopping = True

    def consume(
        self,
        handler: Callable[[Message], object],
        *,
        count: int | None = None,
        timeout: float | None = None,
    ) -> int:
        """Call ``handler`` for each message (RabbitMQ's basic_consume); returns how many.

        Runs in this thread until ``stop()``, ``count`` messages, or ``timeout`` seconds of
        running. An exception from the handler propagates; the message it got is not redone.
        """
        deadline = _deadline(timeout)
        handled = 0
        self._stopping = False
        while not self._stopping and (count is None or handled < count):
            left = _zmq.deadline_left(deadline)
            if left == 0.0:
                break
            try:
                msg = self.recv(timeout=0.25 if left is None else min(left, 0.25))
            except TimeoutError:
                continue
            handler(msg)
            handled += 1
        return handled

    def stats(self) -> SocketStats:
        return self._rcore.stats()


class Subscriber(_Receiver):
    """Receives the messages of the topics it asked for, from every publisher it connects to."""

    _kind = Kind.SUBSCRIBER

    def __init__(
        self,
        *,
        connect: _Endpoints = None,
        bind: _Endpoints = None,
        topics: Iterable[str] = (">",),
        headers: Mapping[str, str] | None = None,
        match: HeaderMatch = HeaderMatch.ALL,
        on_gap: GapHandler | None = None,
        node: Node | None = None,
        options: SocketOptions | None = None,
    ) -> None:
        if isinstance(topics, str):
            topics = (topics,)
        self._filter = TopicFilter(topics)
        if headers is not None:
            wire.check_headers(headers)
        if not isinstance(match, HeaderMatch):
            raise ConfigError(f"match must be a HeaderMatch, got {match!r}")
        self._headers, self._match, self._on_gap = headers, match, on_gap
        super().__init__(node=node, options=options or SocketOptions(), bind=bind,
                         connect=connect)

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
        """How many publishers have welcomed this subscriber (connections made)."""
        self._pump()
        return len(self._rcore.publishers)

    def _pump(self) -> None:
        sock = self._sock
        if sock is None:
            return
        while True:
            try:
                frame = sock.recv(zmq.NOBLOCK)
            except zmq.Again:
                break
            self._rcore.stash(frame)
        self._flush_outbox()

    def wait_for_publishers(self, n: int = 1, timeout: float = 5.0) -> int:
        """Block until connected to ``n`` publishers; raise TimeoutError if not.

        Messages that arrive meanwhile are kept for ``recv``.
        """
        deadline = _deadline(timeout)
        while True:
            count = self.publishers
            if count >= n:
                return count
            _wait(self._live(), zmq.POLLIN, deadline, f"{count} of {n} publishers after {timeout}s")


class Puller(_Receiver):
    """Takes its share of the messages of the pushers it is connected to."""

    _kind = Kind.PULLER

    def __init__(
        self,
        *,
        bind: _Endpoints = None,
        connect: _Endpoints = None,
        node: Node | None = None,
        options: SocketOptions | None = None,
    ) -> None:
        super().__init__(node=node, options=options or SocketOptions(), bind=bind,
                         connect=connect, monitor=True)

    def _setup(self) -> None:
        # Load balancing means each puller sees a share of the sequence: gaps are not losses.
        self._rcore = ReceiveCore(
            token=token_for(self.node.id, self.stream), options=self.options, topics=None,
            track_gaps=False,
        )

    @property
    def peers(self) -> int:
        return self._count_peers()

    def wait_for_peers(self, n: int = 1, timeout: float = 5.0) -> int:
        """Block until ``n`` pushers are connected; raise TimeoutError if not."""
        return _wait_peers(self, n, timeout)

    def stats(self) -> SocketStats:
        return self._rcore.stats(peers=self._count_peers())
