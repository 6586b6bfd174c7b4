# unasync: begin doc
"""The asyncio API: the same four sockets, names and behaviour as the blocking API.

Waiting is done on ZeroMQ's file descriptor with the running loop; whatever is ready is drained
without yielding to the loop, which is what makes this faster than ``zmq.asyncio``.

This file is the source of sockets.py: scripts/unasync.py derives the blocking shells from it
(docs/design.md, "One source for both shells"). Edit here, then run that script.
"""
# unasync: end doc

# unasync: begin imports
from __future__ import annotations

import asyncio
import inspect
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar, overload

import zmq

from . import _zmq
from ._base import SocketBase
from ._kinds import (
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
    from ._spooled_aio import SpooledPublisher, SpooledPuller, SpooledPusher, SpooledSubscriber
    from .config import AckMode, History
    from .spool.store import Spool
# unasync: end imports

__all__ = ["Publisher", "Puller", "Pusher", "Subscriber"]

_S = TypeVar("_S", bound="_Closing")
# unasync: begin aliases
Handler = Callable[[Message], "object | Awaitable[object]"]
_NAP_FIRST = 0.0005  # a send that finds a full queue behind POLLOUT naps this long, then
_NAP_MAX = 0.05  # doubles up to this
# unasync: end aliases


class _Closing(SocketBase):
    async def __aenter__(self: _S) -> _S:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # unasync: begin aclose  (the blocking shells have SocketBase.close)
    async def aclose(self) -> int:
        """Close (idempotent); returns how many received messages were discarded unread."""
        return self.close()
    # unasync: end aclose

    # unasync: begin wait  (the blocking shells wait with SocketBase._poll)
    async def _ready(self, sock: zmq.Socket[bytes], events: int, end: float | None) -> bool:
        """Wait until ``sock`` has ``events`` or ``end`` passes; False on time-out.

        ZeroMQ's descriptor is edge-triggered: check ``EVENTS`` after every wake-up, and once
        after registering, so that no wake-up is lost between the check and the wait. Calls
        posted with ``call_soon`` run here too.
        """
        loop = asyncio.get_running_loop()
        fd = int(sock.getsockopt(zmq.FD))
        waiter: asyncio.Future[None] | None = None

        def wake() -> None:
            if waiter is not None and not waiter.done():
                waiter.set_result(None)

        loop.add_reader(fd, wake)
        loop.add_reader(self._wake_r, wake)
        try:
            while True:
                if self._inbox:
                    self._run_inbox()
                    self._live()
                try:
                    if int(sock.getsockopt(zmq.EVENTS)) & events:
                        return True
                except zmq.ZMQError as exc:
                    raise _zmq.translate(exc, "wait") from exc
                left = _zmq.deadline_left(end)
                if left == 0.0:
                    return False
                waiter = loop.create_future()
                # at most a second: a quiet one reads the monitor (its queue is unbounded)
                timer = loop.call_later(1.0 if left is None else min(left, 1.0), wake)
                try:
                    await waiter
                finally:
                    timer.cancel()
                if waiter.done() and loop.time() >= timer.when():
                    self._read_monitor()
        finally:
            loop.remove_reader(fd)
            loop.remove_reader(self._wake_r)
    # unasync: end wait

    async def _wait_until(
        self, ready: Callable[[], int], n: int, sock: zmq.Socket[bytes], timeout: float, what: str
    ) -> int:
        """Wait until ``ready() >= n``, waking when ``sock`` has input; TimeoutError if not."""
        end = deadline(timeout)
        while True:
            count = ready()
            if count >= n:
                return count
            if not await self._ready(sock, zmq.POLLIN, end) and ready() < n:
                raise TimeoutError(f"{ready()} of {n} {what} after {timeout}s")


class _Sending(SenderBase, _Closing):
    # unasync: begin send  (the blocking send inlines SenderBase._send_one: its hot path)
    async def _send_frame(self, frame: bytes, topic: str, count: int, unsent: int) -> bool:
        """Send one frame of ``count`` messages, waiting for room up to ``send_timeout``.

        An XPUB says POLLOUT even while a subscriber's queue is full (libzmq's dist_t), so a
        send that still finds no room naps, a little longer each time, until the deadline.
        """
        sent = self._try_send(frame, topic, count, unsent, zmq.NOBLOCK)
        if sent is not None:
            return sent
        end = time.monotonic() + self.options.send_timeout
        nap = _NAP_FIRST
        while await self._ready(self._live(), zmq.POLLOUT, end):
            sent = self._try_send(frame, topic, count, unsent, zmq.NOBLOCK)
            if sent is not None:
                return sent
            left = end - time.monotonic()
            if left <= 0.0:
                break
            await asyncio.sleep(min(nap, left))
            nap = min(nap * 2, _NAP_MAX)
        raise self._timed_out(topic, unsent)

    async def send(
        self, topic: str, data: object, headers: Mapping[str, str] | None = None
    ) -> bool:
        """Send one message; as the blocking ``send``, but waits for room without blocking."""
        sent = self._send_one(topic, data, headers, zmq.NOBLOCK)
        if type(sent) is bytes:  # no room now: wait for it
            return await self._send_frame(sent, topic, 1, 1)
        return sent is True
    # unasync: end send

    async def send_many(
        self, messages: Iterable[tuple[str, object]], headers: Mapping[str, str] | None = None
    ) -> int:
        """Send ``(topic, data)`` pairs, many to a frame; returns how many were not dropped."""
        sent = 0
        for topic, frames in self._batches(messages, headers):
            left = sum(n for _, n in frames)
            for frame, n in frames:
                if await self._send_frame(frame, topic, n, left):
                    sent += n
                left -= n
        return sent


class Publisher(PublisherBase, _Sending):
    """Fan-out (asyncio): every subscriber whose topics match gets a copy. See PublisherBase."""

    @overload
    def __new__(cls, *, spool: None = None, **kwargs: Any) -> Publisher: ...
    @overload
    def __new__(cls, *, spool: str | os.PathLike[str], **kwargs: Any) -> SpooledPublisher: ...
    def __new__(cls, *args: Any, **kwargs: Any) -> Publisher:
        if wants_spool(cls, Publisher, kwargs):
            from ._spooled_aio import SpooledPublisher  # noqa: PLC0415 (it subclasses Publisher)

            return super().__new__(SpooledPublisher)
        return super().__new__(cls)

    async def wait_for_subscribers(self, n: int = 1, timeout: float = 5.0) -> int:
        """Wait until ``n`` subscribers are connected and subscribed; TimeoutError if not.

        A message sent after this returns reaches each of them: no slow-joiner loss.
        """
        return await self._wait_until(
            lambda: self.subscribers, n, self._live(), timeout, "subscribers"
        )


class Pusher(PusherBase, _Sending):
    """Pipeline sender (asyncio): each message goes to one puller. See PusherBase.

    With ``spool="dir"`` it is a spooled pusher: at-least-once delivery (docs/spool.md).
    """

    @overload
    def __new__(cls, *, spool: None = None, **kwargs: Any) -> Pusher: ...
    @overload
    def __new__(cls, *, spool: str | os.PathLike[str] | Spool, **kwargs: Any) -> SpooledPusher: ...
    def __new__(cls, *args: Any, **kwargs: Any) -> Pusher:
        if wants_spool(cls, Pusher, kwargs):
            from ._spooled_aio import SpooledPusher  # noqa: PLC0415 (it subclasses Pusher)

            return super().__new__(SpooledPusher)
        return super().__new__(cls)

    async def wait_for_peers(self, n: int = 1, timeout: float = 5.0) -> int:
        """Wait until ``n`` pullers are connected; TimeoutError if not."""
        self._live()
        assert self._monitor is not None
        return await self._wait_until(self._count_peers, n, self._monitor, timeout, "pullers")


class _Receiving(ReceiverBase, _Closing):
    async def recv(self, timeout: float | None = None) -> Message:
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
                if not await self._ready(sock, zmq.POLLIN, end):
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

    async def recv_many(self, max_count: int = 1024, timeout: float | None = None) -> list[Message]:
        """Everything ready now, up to ``max_count``; waits like ``recv`` only if nothing is."""
        check_count(max_count)
        return self._take_ready(max_count, [await self.recv(timeout)])

    def __aiter__(self) -> AsyncIterator[Message]:
        """Messages until the socket is closed or ``stop()`` is called."""
        return self._messages()

    async def _messages(self) -> AsyncIterator[Message]:
        self._stopping = False
        while self._sock is not None and not self._stopping:
            try:
                yield await self.recv(timeout=0.2)
            except TimeoutError:
                continue
            except ClosedError:
                return

    async def consume(
        self, handler: Handler, *, count: int | None = None, timeout: float | None = None
    ) -> int:
        """Call ``handler`` (plain or async) for each message; returns how many.

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
                msg = await self.recv(timeout=0.2 if left is None else min(left, 0.2))
            except TimeoutError:
                continue
            # unasync: begin handle  (an async handler is awaited)
            result = handler(msg)
            if inspect.isawaitable(result):
                await result
            # unasync: end handle
            handled += 1
        return handled


class Subscriber(SubscriberBase, _Receiving):
    """Topic subscriber (asyncio): receives the topics it asked for from every publisher."""

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
            from ._spooled_aio import SpooledSubscriber  # noqa: PLC0415 (it subclasses Subscriber)

            return super().__new__(SpooledSubscriber)
        return super().__new__(cls)

    async def wait_for_publishers(self, n: int = 1, timeout: float = 5.0) -> int:
        """Wait until connected to ``n`` publishers; TimeoutError if not.

        Messages that arrive meanwhile are kept for ``recv``.
        """
        return await self._wait_until(
            lambda: self.publishers, n, self._live(), timeout, "publishers"
        )


class Puller(PullerBase, _Receiving):
    """Pipeline receiver (asyncio): takes its share of what connected pushers send.

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
            from ._spooled_aio import SpooledPuller  # noqa: PLC0415 (it subclasses Puller)

            return super().__new__(SpooledPuller)
        return super().__new__(cls)

    async def wait_for_peers(self, n: int = 1, timeout: float = 5.0) -> int:
        """Wait until ``n`` pushers are connected; TimeoutError if not."""
        self._live()
        assert self._monitor is not None
        return await self._wait_until(self._count_peers, n, self._monitor, timeout, "pushers")
