# generated from peermq/_spooled_aio.py by scripts/unasync.py; do not edit
# (but for the hand-written regions between '# unasync: begin' and 'end')
# unasync: begin doc
"""Blocking shells of the spooled sockets: what ``Pusher(spool=...)``, ``Puller(spool= | ack=)``,
``Publisher(spool=...)`` and ``Subscriber(durable= | history=)`` construct. Only the waiting
is here; the logic is in _spool_send.py, _spool_pub.py, _spool_recv.py and _spool_sub.py,
shared with the asyncio shells. Generated from _spooled_aio.py by scripts/unasync.py, but for
the regions marked hand-written.
"""
# unasync: end doc

# unasync: begin imports
from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from types import TracebackType

from . import _zmq, wire
from ._kinds import deadline
from ._spool_pub import SpoolPublishing
from ._spool_recv import LinkReceiving, SpoolReceiving
from ._spool_send import LinkSending, SpoolSending
from ._spool_sub import SpoolSubscribing
from .config import AckMode
from .errors import SpoolFullError
from .message import Delivery, Message
from .sockets import Publisher, Puller, Pusher, Subscriber, _Closing

# unasync: end imports

__all__ = ["SpooledPublisher", "SpooledPuller", "SpooledPusher", "SpooledSubscriber"]

_CHUNK = 4096
# unasync: begin aliases
_Handler = Callable[[Delivery], object]
# unasync: end aliases


class _Storing(LinkSending):
    """``send`` and friends of a spooled sender."""

    def send(
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
            self._put([(topic, data)], wire.check_headers(headers) if headers else None)
        except BaseException:
            self._core.encoder.rewind(topic, 1)
            raise
        return True

    def send_many(
        self, messages: Iterable[tuple[str, object]], headers: Mapping[str, str] | None = None
    ) -> int:
        """Store ``(topic, data)`` pairs, one write for many; returns how many were stored."""
        hdrs = wire.check_headers(headers) if headers else None
        stored = 0
        chunk: list[tuple[str, object]] = []
        for item in messages:
            chunk.append(item)
            if len(chunk) >= _CHUNK:
                self._put(chunk, hdrs)
                stored += len(chunk)
                chunk = []
        if chunk:
            self._put(chunk, hdrs)
            stored += len(chunk)
        return stored

    def _put(
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
            # unasync: begin pause  (hand-written: the link thread notifies when it frees room)
            with self._cond:
                self._cond.wait(min(0.05, max(0.0, end - time.monotonic())))
            # unasync: end pause

    def flush(self) -> int:
        """Make everything stored so far durable; returns the spool's durable seq."""
        return self._flush_now()

class SpooledPusher(_Storing, SpoolSending, Pusher):
    """``Pusher(spool=...)``: at-least-once delivery; see docs/spool.md."""

    def wait_for_peers(self, n: int = 1, timeout: float = 5.0) -> int:
        """Block until ``n`` pullers are linked (said HELLO); TimeoutError if not."""
        self._wait_for(lambda: self.peers >= n, timeout, f"{self.peers} of {n} pullers")
        return self.peers

    def wait_for_acks(self, timeout: float | None = 5.0) -> None:
        """Block until every message stored so far is acknowledged (or dead-lettered)."""
        self._wait_for(
            lambda: self.pending() == 0, timeout, "messages still unacknowledged"
        )


class SpooledPublisher(_Storing, SpoolPublishing, Publisher):
    """``Publisher(spool=...)``: a log that durable subscribers read; see docs/spool.md."""

    def wait_for_subscribers(self, n: int = 1, timeout: float = 5.0) -> int:
        """Block until ``n`` subscribers are linked (said HELLO); TimeoutError if not."""
        self._wait_for(
            lambda: self.subscribers >= n, timeout, f"{self.subscribers} of {n} subscribers"
        )
        return self.subscribers


class _Taking(LinkReceiving, _Closing):
    """``recv`` and friends of a spooled receiver."""

    def recv(self, timeout: float | None = None) -> Delivery:
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
            if not self._wait_input(end):
                raise TimeoutError(f"no message within {timeout}s")
            msg = self._take()
        return self._hand_out(msg)

    def recv_many(
        self, max_count: int = 1024, timeout: float | None = None
    ) -> list[Message]:
        """Everything ready now, up to ``max_count``; waits like ``recv`` only if nothing is.

        Each item is a Delivery (typed Message, as the plain Puller's).
        """
        out: list[Message] = [self.recv(timeout)]
        while len(out) < max_count:
            msg = self._take()
            if msg is None:
                break
            out.append(self._hand_out(msg))
        return out

    def consume(
        self, handler: _Handler, *, count: int | None = None, timeout: float | None = None
    ) -> int:
        """Call ``handler`` for each message; AckMode.AUTO acks it on return.

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
                msg = self.recv(timeout=0.2 if left is None else min(left, 0.2))
            except TimeoutError:
                continue
            try:
                # unasync: begin handle  (hand-written: a plain call)
                handler(msg)
                # unasync: end handle
            except BaseException:
                msg.nack(requeue=True)
                raise
            if self.ack_mode is AckMode.AUTO:
                msg.ack()
            handled += 1
        return handled

    def _wait_linked(self, n: int, timeout: float, what: str) -> int:
        end = deadline(timeout)
        while True:
            self._pump()
            if len(self._links.peers) >= n:
                return len(self._links.peers)
            self._flush()
            if not self._wait_input(end):
                raise TimeoutError(f"{len(self._links.peers)} of {n} {what} after {timeout}s")

    def flush_acks(self) -> None:
        """Send the acknowledgements gathered so far now (they also go before any wait)."""
        self._live()
        self._flush()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is not None:
            self._auto.clear()  # the block failed: what it was given was not handled
        self.close()


class SpooledPuller(_Taking, SpoolReceiving, Puller):
    """``Puller(spool= | ack=)``: receives from spooled pushers, with acks."""

    def wait_for_peers(self, n: int = 1, timeout: float = 5.0) -> int:
        """Block until ``n`` spooled pushers are linked (said HELLO); TimeoutError if not."""
        return self._wait_linked(n, timeout, "pushers")


class SpooledSubscriber(_Taking, SpoolSubscribing, Subscriber):
    """``Subscriber(durable= | history=)``: reads spooled publishers' logs, with acks."""

    def wait_for_publishers(self, n: int = 1, timeout: float = 5.0) -> int:
        """Block until ``n`` spooled publishers are linked (said HELLO); TimeoutError if not."""
        return self._wait_linked(n, timeout, "publishers")
