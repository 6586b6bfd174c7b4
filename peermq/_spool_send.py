"""The sending half of spool links: store on the caller's thread, deliver on a link thread.

``send`` encodes the message and appends it to the spool (written before it returns). A thread
of the socket's own then does everything that must go on while the caller does something else:
flush (group commit), deliver what is durable to receivers with credit, take acks, deliver
again after an ack timeout or when a receiver goes away, bury dead letters, checkpoint, and
free segments. After construction, only that thread touches the ZeroMQ socket.

``LinkSending`` is that machinery; ``SpoolSending`` (a Pusher: a queue shared by pullers) and
``SpoolPublishing`` (_spool_pub.py: a Publisher, a log read by subscribers) say what a HELLO, an
ack and a lost link mean, and what to deliver.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable
from typing import TypeVar, cast

import zmq

from . import _zmq
from ._kinds import PusherBase, SenderBase, deadline
from ._spool_link import LINK_KIND, LinkPeers, Peer, identity, setup_router
from .config import Fsync, SocketOptions, SpoolOptions
from .discovery.txt import PeerKind, Service
from .errors import ClosedError, ConfigError, PeermqError, SpoolError, WireError
from .message import SocketStats
from .node import Node
from .spool import link
from .spool.dispatch import dispatch
from .spool.state import Deliveries, LinkState
from .spool.store import Spool, SpoolStats
from .spool.stream import StreamLog

__all__ = ["LinkSending", "SpoolSending"]

_log = logging.getLogger("peermq.spool")
_T = TypeVar("_T")
_INPUT_PER_STEP = 1024
_STALL_WAIT = 0.005
_HOT_MS = 1
"""After a step that did something, the link thread looks again within this many ms rather
than waiting to be woken: under load, senders then never pay for a wake-up (a pipe write)."""

SpoolArg = str | os.PathLike[str] | Spool
Model = Spool | StreamLog


class LinkSending(SenderBase):
    """A sending socket whose messages go through a spool and a link thread."""

    _kind = LINK_KIND
    # the monitor tells when a peer's connection closes, with CURVE on too
    _wants_monitor = True
    _model: Model
    _thread: threading.Thread | None = None
    _mode = link.QUEUE
    """The receivers it serves: pullers (QUEUE) or subscribers (STREAM)."""

    def _init_link(self, model: Model, owns: bool) -> None:
        """Before the socket is made: what the link thread will need."""
        self._model = model
        self._owns_model = owns
        self._sopts: SpoolOptions = model.options
        self._cond = threading.Condition()
        self._stop = False
        self._kicked = False
        self._deep = True
        self._error: BaseException | None = None
        self._busy = False
        self._stalled = False
        self._rr = 0

    def _start_link(self) -> None:
        self._thread = threading.Thread(
            target=self._link_main, name=f"peermq-spool-{self.stream}", daemon=True
        )
        self._thread.start()

    # -- setup (owner thread, before the link thread starts)
    def _setup(self) -> None:
        super()._setup()
        sock = self._live()
        setup_router(sock, identity(self), self._sopts)
        hello = link.Hello(link.SENDER, self.node.id, self.node.name, self._model.id, 0,
                           identity(self).decode(), False)
        self._links = LinkPeers(self, hello, link.RECEIVER, self._mode)
        self._spool_id = self._model.id.encode()

    def _in_thread(self, fn: Callable[[], _T], timeout: float = 10.0) -> _T:
        """Run ``fn`` on the link thread (or here, before it starts) and return its result."""
        thread = self._thread
        if thread is None or threading.current_thread() is thread:
            return fn()
        if not thread.is_alive():
            raise ClosedError(f"{type(self).__name__} is closed")
        done = threading.Event()
        box: list[tuple[bool, object]] = []

        def call() -> None:
            try:
                box.append((True, fn()))
            except BaseException as exc:
                box.append((False, exc))
            finally:
                done.set()

        self.call_soon(call)
        if not done.wait(timeout):
            raise ClosedError(f"{type(self).__name__}: its link thread did not answer")
        ok, value = box[0]
        if not ok:
            assert isinstance(value, BaseException)
            raise value
        return cast(_T, value)

    def bind(self, endpoint: str) -> str:
        return self._in_thread(lambda: SenderBase.bind(self, endpoint))

    def connect(self, endpoint: str) -> None:
        def do() -> None:
            sock = self._live()
            sock.setsockopt(zmq.CONNECT_ROUTING_ID, self._links.alias_for(endpoint))
            SenderBase.connect(self, endpoint)
            self._links.greet(time.monotonic(), force=True)

        self._in_thread(do)

    def disconnect(self, endpoint: str) -> None:
        def do() -> None:
            SenderBase.disconnect(self, endpoint)
            alias = self._links.forget_endpoint(endpoint)
            if alias is not None:
                self._lose(alias, time.monotonic())

        self._in_thread(do)

    # -- the caller's thread
    @property
    def last_seq(self) -> int:
        """Spool seq of the last message stored (by any socket on this spool)."""
        return self._model.log.last_seq

    def _store(self, frames: list[bytes]) -> None:
        """Append to the spool (SpoolFullError if full) and wake the link thread."""
        if self._error is not None:
            raise SpoolError(f"the spool's link thread failed: {self._error}")
        self._model.append(frames)
        self._core.sent += len(frames)
        if self._tap is not None:  # a tap sees spooled messages when they are stored
            for frame in frames:
                self._tap(frame)
        if self._deep and not self._kicked:
            self._kicked = True
            with contextlib.suppress(OSError):  # a full pipe wakes it anyway
                os.write(self._wake_w, b"\x01")

    def _encode_many(self, messages: list[tuple[str, object]], headers: dict[str, str] | None
                     ) -> list[bytes]:
        now = time.time()
        enc = self._core.encoder
        frames: list[bytes] = []
        try:
            for topic, data in messages:
                frames.append(enc.encode(topic, data, headers, now))
        except BaseException:
            for topic, _ in messages[: len(frames)]:
                enc.rewind(topic, 1)
            raise
        return frames

    def _unencode(self, messages: list[tuple[str, object]]) -> None:
        for topic, _ in messages:
            self._core.encoder.rewind(topic, 1)

    def _flush_now(self) -> int:
        self._live()
        return self._model.sync()

    def _notify(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def stats(self) -> SocketStats:
        """Counters so far; after close, the final ones."""
        return SocketStats(sent=self._core.sent, peers=len(self._links.peers),
                           malformed=self._links.malformed)

    def _service(self) -> None:
        """Nothing to read on the caller's thread: the link thread reads the socket."""

    def _read_monitor(self) -> None:
        """Nothing: the link thread reads the monitor."""

    # -- hooks for the kinds
    def _deliveries(self) -> list[Deliveries]:
        raise NotImplementedError

    def _hello(self, peer: Peer, replaced: Peer | None, now: float) -> None:
        """A receiver said HELLO (or a new one replaced it): get ready for it, then answer."""
        raise NotImplementedError

    def _acked(self, rid: bytes, seqs: list[int], name: str) -> None:
        raise NotImplementedError

    def _nacked(self, rid: bytes, pairs: list[tuple[int, bool]], now: float, name: str
                ) -> None:
        raise NotImplementedError

    def _gone(self, rid: bytes, now: float) -> None:
        raise NotImplementedError

    def _deliver(self, now: float) -> int:
        raise NotImplementedError

    def _after_checkpoint(self) -> None:
        self._model.checkpoint()

    # -- the link thread
    def _link_main(self) -> None:
        sock, mon = self._sock, self._monitor
        assert sock is not None
        poller = zmq.Poller()
        poller.register(sock, zmq.POLLIN)
        if mon is not None:
            poller.register(mon, zmq.POLLIN)
        poller.register(self._wake_r, zmq.POLLIN)
        hot = False
        try:
            while not self._stop:
                ms = self._wait_ms()
                if hot and ms > _HOT_MS:
                    ms = _HOT_MS
                elif ms > _HOT_MS:
                    self._deep = True  # from now on a store wakes this thread ...
                    ms = self._wait_ms()  # ... and one made before is seen here
                poller.poll(ms)
                self._deep = False
                self._kicked = False
                self._run_inbox()
                if self._stop or self._sock is None:
                    break
                hot = self._step(time.monotonic())
        except BaseException as exc:  # reported to the caller's thread by its next call
            self._error = exc
            _log.exception("spool.link_thread_failed")
        finally:
            self._notify()

    def _wait_ms(self) -> int:
        """How long the link thread may sleep: until the next thing it must do by itself."""
        model = self._model
        log = model.log
        if self._kicked or self._busy or (log.last_seq > log.durable_seq and log.failed is None):
            return 0
        now = time.monotonic()
        times = [now + 1.0, now + self._sopts.checkpoint_interval]
        upto = model.deliverable
        for d in self._deliveries():
            room = any(li.room > 0 for li in d.links.values())
            if room and d.cursor <= upto:
                times.append(now + _STALL_WAIT if self._stalled else now)
            retry = d.next_retry()
            if room and retry is not None:
                times.append(max(retry, now + _STALL_WAIT) if self._stalled else retry)
            deadline = d.next_deadline()
            if deadline is not None:
                times.append(deadline)
        for when in (self._links.next_greeting(), self._links.probing()):
            if when is not None:
                times.append(min(when, now + 0.01))  # probes: every 10 ms meanwhile
        return max(0, round((min(times) - now) * 1000))

    def _step(self, now: float) -> bool:
        """Do what is due; True if anything moved (stored, delivered, acked)."""
        model = self._model
        ds = self._deliveries()
        before = (model.log.last_seq, model.log.durable_seq,
                  sum(d.cursor + d.acked + d.redelivered for d in ds))
        # input first: acks (and a HELLO) that came before a connection closed count
        self._read_input(now)
        for peer in self._links.drain_monitor(self._monitor) + self._links.probe(now):
            self._gone(peer.rid, now)
        if self._sopts.fsync is Fsync.BATCH and model.log.failed is None:
            # on failure the log is failed: sends raise it; what is durable is still delivered
            with contextlib.suppress(SpoolError):
                model.sync()
        self._rr += 1
        self._stalled = False
        self._busy = self._deliver(now) >= 64
        self._links.greet(now)
        try:
            self._after_checkpoint()
        except SpoolError as exc:
            _log.error("spool.checkpoint_failed path=%s error=%s", model.path, exc)
        self._notify()
        ds = self._deliveries()
        return before != (model.log.last_seq, model.log.durable_seq,
                          sum(d.cursor + d.acked + d.redelivered for d in ds))

    def _read_input(self, now: float) -> None:
        sock = self._sock
        assert sock is not None
        for _ in range(_INPUT_PER_STEP):
            try:
                frames = sock.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return
            if len(frames) < 2:
                continue
            kind = frames[1].bytes
            rid = frames[0].bytes
            try:
                if kind in (link.ACK, link.NACK) and (
                    len(frames) < 4 or frames[2].bytes != self._spool_id
                ):
                    continue  # meant for another spool (or malformed)
                name = frames[4].bytes.decode("utf-8", "replace") if len(frames) > 4 else ""
                if kind == link.ACK:
                    self._acked(rid, list(link.decode_ack(frames[3].buffer)), name)
                elif kind == link.HELLO:
                    peer, replaced = self._links.on_hello(frames)
                    if peer is not None or replaced is not None:
                        self._hello(peer, replaced, now)  # type: ignore[arg-type]
                elif kind == link.NACK:
                    self._nacked(rid, link.decode_nack(frames[3].buffer), now, name)
                elif kind == link.PING:
                    pass
                else:
                    self._links.bad("kind", WireError(f"unknown frame {kind[:4]!r}"))
            except WireError as exc:
                self._links.bad("link", exc)

    def _lose(self, rid: bytes, now: float) -> None:
        self._links.drop(rid)
        self._gone(rid, now)

    def _send(self, link_state: LinkState, parts: list[bytes]) -> bool:
        rid = link_state.key
        assert isinstance(rid, bytes)
        sent = self._links.send(rid, parts)
        if sent is None:
            self._lose(rid, time.monotonic())
        elif not sent:
            self._stalled = True
        return bool(sent)

    # -- closing (caller's thread)
    def close(self) -> int:
        """Stop delivering and close; what is not acknowledged stays in the spool for next time."""
        thread = self._thread
        if thread is not None and thread.is_alive():
            self._stop = True
            with contextlib.suppress(OSError):
                os.write(self._wake_w, b"\x00")
            thread.join(timeout=self.options.linger + 10.0)
            if thread.is_alive():
                _log.error("spool.link_thread_stuck stream=%s", self.stream)
        try:
            return super().close()
        finally:
            if getattr(self, "_owns_model", False):
                try:
                    self._model.close()
                except PeermqError as exc:
                    _log.error("spool.close_failed error=%s", exc)

    def _wait_for(self, ready: Callable[[], bool], timeout: float | None, what: str) -> None:
        """Block until ``ready()`` (checked whenever the link thread steps); TimeoutError if not."""
        end = deadline(timeout)
        with self._cond:
            while not ready():
                if self._error is not None:
                    raise SpoolError(f"the spool's link thread failed: {self._error}")
                if self._sock is None:
                    raise ClosedError(f"{type(self).__name__} is closed")
                left = _zmq.deadline_left(end)
                if left == 0.0:
                    raise TimeoutError(f"{what} after {timeout}s")
                self._cond.wait(0.1 if left is None else min(left, 0.1))


class SpoolSending(LinkSending, PusherBase):
    """A Pusher whose messages wait in a spool until a puller acknowledges them."""

    _model: Spool
    _peer_kind = PeerKind.SPOOL_PUSHER
    """What discovery announces (``service=``): its endpoint speaks spool links."""

    def __init__(
        self,
        *,
        bind: str | list[str] | tuple[str, ...] | None = None,
        connect: str | list[str] | tuple[str, ...] | None = None,
        node: Node | None = None,
        options: SocketOptions | None = None,
        spool: SpoolArg,
        spool_options: SpoolOptions | None = None,
        service: str | Service | None = None,
    ) -> None:
        if isinstance(spool, Spool):
            if spool_options is not None:
                raise ConfigError("give spool_options to the Spool, not with an open Spool")
            self._init_link(spool, False)
        elif isinstance(spool, (str, os.PathLike)):
            size = (options or SocketOptions()).max_message_size
            self._init_link(Spool(spool, spool_options, max_record=size), True)
        else:
            raise ConfigError(f"spool must be a directory path or a Spool, got {spool!r}")
        try:
            super().__init__(bind=bind, connect=connect, node=node, options=options,
                             service=service)
            self._start_link()
        except BaseException:
            self.close()
            raise

    @property
    def spool(self) -> Spool:
        return self._model

    def pending(self) -> int:
        """Messages stored and not acknowledged yet (nor dead-lettered)."""
        return self._model.stats().pending

    def spool_stats(self) -> SpoolStats:
        return self._model.stats()

    @property
    def peers(self) -> int:
        """Pullers that have said HELLO on a live connection."""
        return len(self._links.peers)

    # -- the link thread: a queue shared by the pullers
    def _deliveries(self) -> list[Deliveries]:
        return [self._model.deliveries]

    def _bury(self, seqs: list[int], reason: str) -> None:
        if seqs:
            self._model.bury(seqs, reason)

    def _hello(self, peer: Peer, replaced: Peer | None, now: float) -> None:
        d = self._model.deliveries
        if replaced is not None:
            self._bury(d.link_down(replaced.rid, now), "max_deliver")
        if peer is not None:
            d.link_up(peer.rid, peer.hello.credit)
            self._links.answer(peer)

    def _acked(self, rid: bytes, seqs: list[int], name: str) -> None:
        self._model.deliveries.ack(seqs)

    def _nacked(self, rid: bytes, pairs: list[tuple[int, bool]], now: float, name: str
                ) -> None:
        d = self._model.deliveries
        for seq, requeue in pairs:
            self._bury(d.nack(seq, requeue, now), "max_deliver" if requeue else "rejected")

    def _gone(self, rid: bytes, now: float) -> None:
        self._bury(self._model.deliveries.link_down(rid, now), "max_deliver")

    def _deliver(self, now: float) -> int:
        model = self._model
        self._bury(model.deliveries.expire(now), "max_deliver")
        return dispatch(model.deliveries, model.read, self._send, model.deliverable, now,
                        turn=self._rr)
