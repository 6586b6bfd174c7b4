# unasync: begin doc
"""asyncio shells of the spooled sockets: what ``peermq.aio.Pusher(spool=...)``,
``Puller(spool= | ack=)``, ``Publisher(spool=...)`` and ``Subscriber(durable= | history=)``
construct. The same non-blocking halves as the
blocking shells (_spool_send.py, _spool_recv.py); only the waiting differs.

The spooled pusher's link thread does the delivering; waits for room, peers and acks here are
short polls of what that thread updates, so nothing blocks the event loop for long.

This file is the source of _spooled_sync.py: scripts/unasync.py derives the blocking shells
from it (docs/design.md, "One source for both shells"). Edit here, then run that script.
"""
# unasync: end doc

# unasync: begin imports
from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from types import TracebackType

import zmq

from . import _zmq, wire
from ._kinds import deadline
from ._spool_pub import SpoolPublishing
from ._spool_recv import IDLE_WAKE, LinkReceiving, SpoolReceiving
from ._spool_send import LinkSending, SpoolSending
from ._spool_sub import SpoolSubscribing
from .aio import Publisher, Puller, Pusher, Subscriber, _Closing
from .config import AckMode
from .errors import ClosedError, SpoolError, SpoolFullError
from .message import Delivery, Message

# unasync: end imports

__all__ = ["SpooledPublisher", "SpooledPuller", "SpooledPusher", "SpooledSubscriber"]

_CHUNK = 4096
# unasync: begin aliases
_POLL = 0.005
_Handler = Callable[[Delivery], "object | Awaitable[object]"]
# unasync: end aliases


class _Storing(LinkSending):
    """``send`` and friends of a spooled sender (asyncio)."""

    async def send(
        self, topic: str, data: object, headers: Mapping[str, str] | None = None
    ) -> bool:
        """Store one message in the spool (written before this returns); always True.

        A full spool (or disk) waits up to ``full_timeout`` for acknowledgements to free room,
        then raises SpoolFullError; nothing was stored then.
        """
        frame = self._encode(topic, data, headers)
        try:
            self._store([frame])
        except SpoolFullError:
            self._core.encoder.rewind(topic, 1)
            await self._put([(topic, data)], wire.check_headers(headers) if headers else None)
        except BaseException:
            self._core.encoder.rewind(topic, 1)
            raise
        return True

    async def send_many(
        self, messages: Iterable[tuple[str, object]], headers: Mapping[str, str] | None = None
    ) -> int:
        """Store ``(topic, data)`` pairs, one write for many; returns how many were stored."""
        hdrs = wire.check_headers(headers) if headers else None
        stored = 0
        chunk: list[tuple[str, object]] = []
        for item in messages:
            chunk.append(item)
            if len(chunk) >= _CHUNK:
                await self._put(chunk, hdrs)
                stored += len(chunk)
                chunk = []
        if chunk:
            await self._put(chunk, hdrs)
            stored += len(chunk)
        return stored

    async def _put(
        self, messages: list[tuple[str, object]], headers: dict[str, str] | None
    ) -> None:
        self._live()
        frames = self._encode_many(messages, headers)
        end = time.monotonic() + self._sopts.full_timeout
        while True:
            try:
                self._store(frames)
                return
            except SpoolFullError:
                if time.monotonic() >= end:
                    self._unencode(messages)
                    raise
            except BaseException:
                self._unencode(messages)
                raise
            # unasync: begin pause  (the link thread frees room: poll for it)
            await asyncio.sleep(_POLL)
            # unasync: end pause

    async def flush(self) -> int:
        """Make everything stored so far durable; returns the spool's durable seq."""
        return self._flush_now()

    # unasync: begin until  (the blocking shells wait on the link thread's condition)
    async def _until(self, ready: Callable[[], bool], timeout: float | None, what: str) -> None:
        end = deadline(timeout)
        while not ready():
            if self._error is not None:
                raise SpoolError(f"the spool's link thread failed: {self._error}")
            if self._sock is None:
                raise ClosedError(f"{type(self).__name__} is closed")
            if _zmq.deadline_left(end) == 0.0:
                raise TimeoutError(f"{what} after {timeout}s")
            await asyncio.sleep(_POLL)
    # unasync: end until


class SpooledPusher(_Storing, SpoolSending, Pusher):
    """``aio.Pusher(spool=...)``: at-least-once delivery; see docs/spool.md."""

    async def wait_for_peers(self, n: int = 1, timeout: float = 5.0) -> int:
        """Wait until ``n`` pullers are linked (said HELLO); TimeoutError if not."""
        await self._until(lambda: self.peers >= n, timeout, f"{self.peers} of {n} pullers")
        return self.peers

    async def wait_for_acks(self, timeout: float | None = 5.0) -> None:
        """Wait until every message stored so far is acknowledged (or dead-lettered)."""
        await self._until(
            lambda: self.pending() == 0, timeout, "messages still unacknowledged"
        )


class SpooledPublisher(_Storing, SpoolPublishing, Publisher):
    """``aio.Publisher(spool=...)``: a log that durable subscribers read; see docs/spool.md."""

    async def wait_for_subscribers(self, n: int = 1, timeout: float = 5.0) -> int:
        """Wait until ``n`` subscribers are linked (said HELLO); TimeoutError if not."""
        await self._until(
            lambda: self.subscribers >= n, timeout, f"{self.subscribers} of {n} subscribers"
        )
        return self.subscribers


class _Taking(LinkReceiving, _Closing):
    """``recv`` and friends of a spooled receiver (asyncio)."""

    # unasync: begin input  (the blocking shells have LinkReceiving._wait_input)
    async def _ready_input(self, end: float | None) -> bool:
        """Wait for input, at most IDLE_WAKE seconds; False if ``end`` has passed."""
        left = _zmq.deadline_left(end)
        if left == 0.0:
            return False
        wake = time.monotonic() + (IDLE_WAKE if left is None else min(left, IDLE_WAKE))
        self._waiting = True
        try:
            await self._ready(self._live(), zmq.POLLIN, wake)
        finally:
            self._waiting = False
        return True
    # unasync: end input

    async def recv(self, timeout: float | None = None) -> Delivery:
        """The next message; waits up to ``timeout`` seconds (None: for ever), then TimeoutError.

        In AckMode.AUTO the message handed out by the previous call is acknowledged first.
        """
        if self._inbox:
            self._run_inbox()
        self._ack_auto()
        msg = self._take()
        end: float | None = None
        started = False
        while msg is None:
            self._flush()
            if not started:
                started, end = True, deadline(timeout)
            if not await self._ready_input(end):
                raise TimeoutError(f"no message within {timeout}s")
            msg = self._take()
        return self._hand_out(msg)

    async def recv_many(
        self, max_count: int = 1024, timeout: float | None = None
    ) -> list[Message]:
        """Everything ready now, up to ``max_count``; waits like ``recv`` only if nothing is.

        Each item is a Delivery (typed Message, as the plain Puller's).
        """
        out: list[Message] = [await self.recv(timeout)]
        while len(out) < max_count:
            msg = self._take()
            if msg is None:
                break
            out.append(self._hand_out(msg))
        return out

    async def consume(
        self, handler: _Handler, *, count: int | None = None, timeout: float | None = None
    ) -> int:
        """Call ``handler`` (plain or async) for each message; AckMode.AUTO acks it on return.

        A handler's exception nacks the message (it comes again after a backoff, and after
        ``max_deliver`` deliveries goes to the dead letters) and propagates.
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
            try:
                # unasync: begin handle  (an async handler is awaited)
                result = handler(msg)
                if inspect.isawaitable(result):
                    await result
                # unasync: end handle
            except BaseException:
                msg.nack(requeue=True)
                raise
            if self.ack_mode is AckMode.AUTO:
                msg.ack()
            handled += 1
        return handled

    async def _wait_linked(self, n: int, timeout: float, what: str) -> int:
        end = deadline(timeout)
        while True:
            self._pump()
            if len(self._links.peers) >= n:
                return len(self._links.peers)
            self._flush()
            if not await self._ready_input(end):
                raise TimeoutError(f"{len(self._links.peers)} of {n} {what} after {timeout}s")

    async def flush_acks(self) -> None:
        """Send the acknowledgements gathered so far now (they also go before any wait)."""
        self._live()
        self._flush()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is not None:
            self._auto.clear()  # the block failed: what it was given was not handled
        await self.aclose()


class SpooledPuller(_Taking, SpoolReceiving, Puller):
    """``aio.Puller(spool= | ack=)``: receives from spooled pushers, with acks."""

    async def wait_for_peers(self, n: int = 1, timeout: float = 5.0) -> int:
        """Wait until ``n`` spooled pushers are linked (said HELLO); TimeoutError if not."""
        return await self._wait_linked(n, timeout, "pushers")


class SpooledSubscriber(_Taking, SpoolSubscribing, Subscriber):
    """``aio.Subscriber(durable= | history=)``: reads spooled publishers' logs, with acks."""

    async def wait_for_publishers(self, n: int = 1, timeout: float = 5.0) -> int:
        """Wait until ``n`` spooled publishers are linked (said HELLO); TimeoutError if not."""
        return await self._wait_linked(n, timeout, "publishers")
