# generated from peermq/aio.py by scripts/unasync.py; do not edit
# (but for the hand-written regions between '# unasync: begin' and 'end')
# unasync: begin doc
"""The blocking API: Publisher, Subscriber, Pusher, Puller.

Each adds to its ``*Base`` (in _kinds.py) only the calls that wait. Generated from aio.py by
scripts/unasync.py, but for the regions marked hand-written.
"""
# unasync: end doc

# unasync: begin imports
from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar, overload

import zmq

from . import _zmq, wire
from ._base import SocketBase
from ._kinds import (
    SERVICE_MASK,
    PublisherBase,
    PullerBase,
    PusherBase,
    ReceiverBase,
    SenderBase,
    SubscriberBase,
    check_count,
    deadline,
    wants_spool,
)
from .errors import ClosedError
from .message import Message

if TYPE_CHECKING:
    from ._spooled_sync import SpooledPublisher, SpooledPuller, SpooledPusher, SpooledSubscriber
    from .config import AckMode, History
    from .spool.store import Spool
# unasync: end imports

__all__ = ["Publisher", "Puller", "Pusher", "Subscriber"]

_S = TypeVar("_S", bound="_Closing")
# unasync: begin aliases
Handler = Callable[[Message], object]
_now = time.time
# unasync: end aliases


class _Closing(SocketBase):
    def __enter__(self: _S) -> _S:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _wait_until(
        self, ready: Callable[[], int], n: int, sock: zmq.Socket[bytes], timeout: float, what: str
    ) -> int:
        """Block until ``ready() >= n``, waking when ``sock`` has input; TimeoutError if not."""
        end = deadline(timeout)
        while True:
            count = ready()
            if count >= n:
                return count
            if not self._poll(sock, zmq.POLLIN, end) and ready() < n:
                raise TimeoutError(f"{ready()} of {n} {what} after {timeout}s")


class _Sending(SenderBase, _Closing):
    # unasync: begin send  (hand-written: the blocking send inlines SenderBase._send_one)
    def _send_frame(self, frame: bytes, topic: str, count: int, unsent: int) -> bool:
        """Send one frame of ``count`` messages; with OnFull.BLOCK ZeroMQ waits for room."""
        sent = self._try_send(frame, topic, count, unsent, self._flags)
        if sent is None:  # blocked for send_timeout
            raise self._timed_out(topic, unsent)
        return sent

    def send(self, topic: str, data: object, headers: Mapping[str, str] | None = None) -> bool:
        """Send one message. Returns False if a full queue dropped it (counted in ``stats()``).

        ``data`` is bytes or any msgpack-serialisable value. Bad input raises TopicError or
        EncodeError and sends nothing; with ``OnFull.BLOCK`` a full queue raises
        SendTimeoutError after ``send_timeout``.
        """
        # SenderBase._send_one inlined: this is the per-message hot path of the blocking API
        frame = self._encode_one(
            topic, data, wire.check_headers(headers) if headers else None, _now()
        )
        try:
            self._send_raw(frame, self._flags)
        except zmq.ZMQError as exc:
            if self._not_sent(topic, frame, exc) is False:
                return False
            raise self._timed_out(topic, 1) from None  # blocked for send_timeout
        core = self._core
        core.sent += 1
        if self._tap is not None:
            self._tap(frame)
        if not core.sent & SERVICE_MASK:
            self._service_now()
        return True
    # unasync: end send

    def send_many(
        self, messages: Iterable[tuple[str, object]], headers: Mapping[str, str] | None = None
    ) -> int:
        """Send ``(topic, data)`` pairs, many to a frame; returns how many were not dropped."""
        sent = 0
        for topic, frames in self._batches(messages, headers):
            left = sum(n for _, n in frames)
            for frame, n in frames:
                if self._send_frame(frame, topic, n, left):
                    sent += n
                left -= n
        return sent


class Publisher(PublisherBase, _Sending):
    """Fan-out: every subscriber whose topics match gets a copy. See PublisherBase."""

    @overload
    def __new__(cls, *, spool: None = None, **kwargs: Any) -> Publisher: ...
    @overload
    def __new__(cls, *, spool: str | os.PathLike[str], **kwargs: Any) -> SpooledPublisher: ...
    def __new__(cls, *args: Any, **kwargs: Any) -> Publisher:
        if wants_spool(cls, Publisher, kwargs):
            from ._spooled_sync import SpooledPublisher  # noqa: PLC0415 (it subclasses Publisher)

            return super().__new__(SpooledPublisher)
        return super().__new__(cls)

    def wait_for_subscribers(self, n: int = 1, timeout: float = 5.0) -> int:
        """Block until ``n`` subscribers are connected and subscribed; TimeoutError if not.

        A message sent after this returns reaches each of them: no slow-joiner loss.
        """
        return self._wait_until(
            lambda: self.subscribers, n, self._live(), timeout, "subscribers"
        )


class Pusher(PusherBase, _Sending):
    """Pipeline sender: each message goes to one puller. See PusherBase.

    With ``spool="dir"`` it is a spooled pusher: at-least-once delivery (docs/spool.md).
    """

    @overload
    def __new__(cls, *, spool: None = None, **kwargs: Any) -> Pusher: ...
    @overload
    def __new__(cls, *, spool: str | os.PathLike[str] | Spool, **kwargs: Any) -> SpooledPusher: ...
    def __new__(cls, *args: Any, **kwargs: Any) -> Pusher:
        if wants_spool(cls, Pusher, kwargs):
            from ._spooled_sync import SpooledPusher  # noqa: PLC0415 (it subclasses Pusher)

            return super().__new__(SpooledPusher)
        return super().__new__(cls)

    def wait_for_peers(self, n: int = 1, timeout: float = 5.0) -> int:
        """Block until ``n`` pullers are connected; TimeoutError if not."""
        self._live()
        assert self._monitor is not None
        return self._wait_until(self._count_peers, n, self._monitor, timeout, "pullers")


class _Receiving(ReceiverBase, _Closing):
    def recv(self, timeout: float | None = None) -> Message:
        """The next message; waits up to ``timeout`` seconds (None: for ever), then TimeoutError."""
        core = self._rcore
        if self._inbox:
            self._run_inbox()
        if core.pending:
            return core.pending.popleft()
        accept = core.accept
        recv = self._recv_raw
        end: float | None = None
        started = False
        while True:
            sock = self._sock  # looked at again after each wait: a posted call may close it
            if sock is None:
                raise ClosedError(f"{type(self).__name__} is closed")
            if self._dry:
                # the queue was empty last time: wait first, an empty recv raises (~3 us)
                if not started:
                    started, end = True, deadline(timeout)
                if not self._poll(sock, zmq.POLLIN, end):
                    raise TimeoutError(f"no message within {timeout}s")
                self._dry = False
            try:
                frame = recv(zmq.NOBLOCK)
            except zmq.Again:
                self._ran_dry()
                continue
            except zmq.ZMQError as exc:
                raise _zmq.translate(exc, "recv") from exc
            msg = accept(frame)
            if core.outbox:
                self._flush_outbox()
            if msg is not None:
                return msg
            recv = self._recv_raw  # a bad frame may have switched on screening (security)

    def recv_many(self, max_count: int = 1024, timeout: float | None = None) -> list[Message]:
        """Everything ready now, up to ``max_count``; waits like ``recv`` only if nothing is."""
        check_count(max_count)
        return self._take_ready(max_count, [self.recv(timeout)])

    def __iter__(self) -> Iterator[Message]:
        """Messages until the socket is closed or ``stop()`` is called."""
        return self._messages()

    def _messages(self) -> Iterator[Message]:
        self._stopping = False
        while self._sock is not None and not self._stopping:
            try:
                yield self.recv(timeout=0.2)
            except TimeoutError:
                continue
            except ClosedError:
                return

    def consume(
        self, handler: Handler, *, count: int | None = None, timeout: float | None = None
    ) -> int:
        """Call ``handler`` for each message; returns how many.

        As RabbitMQ's basic_consume: runs until ``stop()``, ``count`` messages or ``timeout``
        seconds. An exception from the handler stops the loop and propagates.
        """
        end = deadline(timeout)
        handled = 0
        self._stopping = False
        while not self._stopping and (count is None or handled < count):
            left = _zmq.deadline_left(end)
            if left == 0.0:
                break
            try:
                msg = self.recv(timeout=0.2 if left is None else min(left, 0.2))
            except TimeoutError:
                continue
            # unasync: begin handle  (hand-written: a plain call)
            handler(msg)
            # unasync: end handle
            handled += 1
        return handled


class Subscriber(SubscriberBase, _Receiving):
    """Topic subscriber: receives the topics it asked for from every publisher."""

    @overload
    def __new__(cls, *, durable: None = None, history: None = None, spool: None = None,
                ack: None = None, **kwargs: Any) -> Subscriber: ...
    @overload
    def __new__(cls, *, durable: str, **kwargs: Any) -> SpooledSubscriber: ...
    @overload
    def __new__(cls, *, history: History, **kwargs: Any) -> SpooledSubscriber: ...
    @overload
    def __new__(cls, *, ack: AckMode, **kwargs: Any) -> SpooledSubscriber: ...
    def __new__(cls, *args: Any, **kwargs: Any) -> Subscriber:
        if wants_spool(cls, Subscriber, kwargs):
            from ._spooled_sync import SpooledSubscriber  # noqa: PLC0415 (it subclasses Subscriber)

            return super().__new__(SpooledSubscriber)
        return super().__new__(cls)

    def wait_for_publishers(self, n: int = 1, timeout: float = 5.0) -> int:
        """Block until connected to ``n`` publishers; TimeoutError if not.

        Messages that arrive meanwhile are kept for ``recv``.
        """
        return self._wait_until(
            lambda: self.publishers, n, self._live(), timeout, "publishers"
        )


class Puller(PullerBase, _Receiving):
    """Pipeline receiver: takes its share of what connected pushers send.

    With ``spool="dir"`` or ``ack=AckMode...`` it receives from spooled pushers and
    acknowledges what it handled (docs/spool.md).
    """

    @overload
    def __new__(cls, *, spool: None = None, ack: None = None, **kwargs: Any) -> Puller: ...
    @overload
    def __new__(cls, *, spool: str | os.PathLike[str], **kwargs: Any) -> SpooledPuller: ...
    @overload
    def __new__(cls, *, ack: AckMode, **kwargs: Any) -> SpooledPuller: ...
    def __new__(cls, *args: Any, **kwargs: Any) -> Puller:
        if wants_spool(cls, Puller, kwargs):
            from ._spooled_sync import SpooledPuller  # noqa: PLC0415 (it subclasses Puller)

            return super().__new__(SpooledPuller)
        return super().__new__(cls)

    def wait_for_peers(self, n: int = 1, timeout: float = 5.0) -> int:
        """Block until ``n`` pushers are connected; TimeoutError if not."""
        self._live()
        assert self._monitor is not None
        return self._wait_until(self._count_peers, n, self._monitor, timeout, "pushers")
