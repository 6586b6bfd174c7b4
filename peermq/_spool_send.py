"""The sending half of a spooled Pusher: store on the caller's thread, deliver on a link thread.

``send`` encodes the message and appends it to the spool (written before it returns). A thread
of the socket's own then does everything that must go on while the caller does something else:
flush (group commit), deliver what is durable to pullers with credit, take acks, deliver again
after an ack timeout or when a puller goes away, bury dead letters, checkpoint, and free
segments. After construction, only that thread touches the ZeroMQ socket.
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
from ._kinds import PusherBase
from ._spool_link import LINK_KIND, LinkPeers, identity, setup_router
from .config import Fsync, SocketOptions, SpoolOptions
from .errors import ClosedError, ConfigError, PeermqError, SpoolError, WireError
from .message import SocketStats
from .node import Node
from .spool import link
from .spool.state import LinkState
from .spool.store import Spool, SpoolStats

__all__ = ["SpoolSending"]

_log = logging.getLogger("peermq.spool")
_T = TypeVar("_T")
_BATCH_BYTES = 256 * 1024
_BATCH_COUNT = 4096
_FRAMES_PER_STEP = 64
_INPUT_PER_STEP = 1024
_STALL_WAIT = 0.005
_HOT_MS = 1
"""After a step that did something, the link thread looks again within this many ms rather
than waiting to be woken: under load, senders then never pay for a wake-up (a pipe write)."""

SpoolArg = str | os.PathLike[str] | Spool


class SpoolSending(PusherBase):
    """A Pusher whose messages wait in a spool until a puller acknowledges them."""

    _kind = LINK_KIND

    def __init__(
        self,
        *,
        bind: str | list[str] | tuple[str, ...] | None = None,
        connect: str | list[str] | tuple[str, ...] | None = None,
        node: Node | None = None,
        options: SocketOptions | None = None,
        spool: SpoolArg,
        spool_options: SpoolOptions | None = None,
        service: object = None,
    ) -> None:
        self._thread: threading.Thread | None = None
        if service is not None:
            raise ConfigError("service= (discovery) does not work with spool= yet: give "
                              "bind= or connect= endpoints")
        self._owns_spool = not isinstance(spool, Spool)
        if isinstance(spool, Spool):
            if spool_options is not None:
                raise ConfigError("give spool_options to the Spool, not with an open Spool")
            self._spool = spool
        elif isinstance(spool, (str, os.PathLike)):
            size = (options or SocketOptions()).max_message_size
            self._spool = Spool(spool, spool_options, max_record=size)
        else:
            raise ConfigError(f"spool must be a directory path or a Spool, got {spool!r}")
        self._sopts: SpoolOptions = self._spool.options
        self._cond = threading.Condition()
        self._stop = False
        self._kicked = False
        self._deep = True
        self._error: BaseException | None = None
        self._busy = False
        self._stalled = False
        self._rr = 0
        try:
            super().__init__(bind=bind, connect=connect, node=node, options=options)
            self._thread = threading.Thread(
                target=self._link_main, name=f"peermq-spool-{self.stream}", daemon=True
            )
            self._thread.start()
        except BaseException:
            self.close()
            raise

    # -- setup (owner thread, before the link thread starts)
    def _setup(self) -> None:
        super()._setup()
        sock = self._live()
        setup_router(sock, identity(self), self._sopts)
        hello = link.Hello(link.SENDER, self.node.id, self.node.name, self._spool.id, 0,
                           identity(self).decode(), False)
        self._links = LinkPeers(self, hello, link.RECEIVER)
        self._spool_id = self._spool.id.encode()

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
        return self._in_thread(lambda: PusherBase.bind(self, endpoint))

    def connect(self, endpoint: str) -> None:
        def do() -> None:
            sock = self._live()
            sock.setsockopt(zmq.CONNECT_ROUTING_ID, self._links.alias_for(endpoint))
            PusherBase.connect(self, endpoint)
            self._links.greet(time.monotonic(), force=True)

        self._in_thread(do)

    def disconnect(self, endpoint: str) -> None:
        def do() -> None:
            PusherBase.disconnect(self, endpoint)
            alias = self._links.forget_endpoint(endpoint)
            if alias is not None:
                self._lose(alias, time.monotonic())

        self._in_thread(do)

    # -- the caller's thread
    @property
    def spool(self) -> Spool:
        return self._spool

    @property
    def last_seq(self) -> int:
        """Spool seq of the last message stored (by any socket on this spool)."""
        return self._spool.log.last_seq

    def _store(self, frames: list[bytes]) -> None:
        """Append to the spool (SpoolFullError if full) and wake the link thread."""
        if self._error is not None:
            raise SpoolError(f"the spool's link thread failed: {self._error}")
        self._spool.append(frames)
        self._core.sent += len(frames)
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

    def pending(self) -> int:
        """Messages stored and not acknowledged yet (nor dead-lettered)."""
        return self._spool.stats().pending

    def _flush_now(self) -> int:
        self._live()
        return self._spool.sync()

    def _notify(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def spool_stats(self) -> SpoolStats:
        return self._spool.stats()

    def stats(self) -> SocketStats:
        self._live()
        return SocketStats(sent=self._core.sent, peers=len(self._links.peers),
                           malformed=self._links.malformed)

    @property
    def peers(self) -> int:
        """Pullers that have said HELLO on a live connection."""
        return len(self._links.peers)

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
        spool = self._spool
        d = spool.deliveries
        log = spool.log
        if self._kicked or self._busy or (log.last_seq > log.durable_seq and log.failed is None):
            return 0
        room = any(li.room > 0 for li in d.links.values())
        now = time.monotonic()
        times = [now + 1.0, now + self._sopts.checkpoint_interval]
        if room and d.cursor <= spool.deliverable:
            times.append(now + _STALL_WAIT if self._stalled else now)
        retry = d.next_retry()
        if room and retry is not None:
            times.append(max(retry, now + _STALL_WAIT) if self._stalled else retry)
        for when in (d.next_deadline(), self._links.next_greeting()):
            if when is not None:
                times.append(when)
        return max(0, round((min(times) - now) * 1000))

    def _step(self, now: float) -> bool:
        """Do what is due; True if anything moved (stored, delivered, acked)."""
        spool = self._spool
        d = spool.deliveries
        before = (spool.log.last_seq, spool.log.durable_seq, d.cursor, d.acked, d.redelivered)
        for peer in self._links.drain_monitor(self._monitor):
            self._bury(spool.deliveries.link_down(peer.rid, now), "max_deliver")
        self._read_input(now)
        if self._sopts.fsync is Fsync.BATCH and spool.log.failed is None:
            # on failure the log is failed: sends raise it; what is durable is still delivered
            with contextlib.suppress(SpoolError):
                spool.sync()
        self._bury(spool.deliveries.expire(now), "max_deliver")
        self._dispatch(now)
        self._links.greet(now)
        try:
            spool.checkpoint()
        except SpoolError as exc:
            _log.error("spool.checkpoint_failed path=%s error=%s", spool.path, exc)
        self._notify()
        return before != (spool.log.last_seq, spool.log.durable_seq, d.cursor, d.acked,
                          d.redelivered)

    def _read_input(self, now: float) -> None:
        sock = self._sock
        assert sock is not None
        d = self._spool.deliveries
        for _ in range(_INPUT_PER_STEP):
            try:
                frames = sock.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return
            if len(frames) < 2:
                continue
            kind = frames[1].bytes
            try:
                if kind in (link.ACK, link.NACK) and (
                    len(frames) < 4 or frames[2].bytes != self._spool_id
                ):
                    continue  # meant for another spool (or malformed)
                if kind == link.ACK:
                    d.ack(link.decode_ack(frames[3].buffer))
                elif kind == link.HELLO:
                    peer, replaced = self._links.on_hello(frames)
                    if replaced is not None:
                        self._bury(d.link_down(replaced.rid, now), "max_deliver")
                    if peer is not None:
                        d.link_up(peer.rid, peer.hello.credit)
                elif kind == link.NACK:
                    for seq, requeue in link.decode_nack(frames[3].buffer):
                        dead = d.nack(seq, requeue, now)
                        self._bury(dead, "max_deliver" if requeue else "rejected")
                else:
                    self._links.bad("kind", WireError(f"unknown frame {kind[:4]!r}"))
            except WireError as exc:
                self._links.bad("link", exc)

    def _bury(self, seqs: list[int], reason: str) -> None:
        if seqs:
            self._spool.bury(seqs, reason)

    def _lose(self, rid: bytes, now: float) -> None:
        self._links.drop(rid)
        self._bury(self._spool.deliveries.link_down(rid, now), "max_deliver")

    def _send(self, link_state: LinkState, parts: list[bytes], now: float) -> bool:
        rid = link_state.key
        assert isinstance(rid, bytes)
        sent = self._links.send(rid, parts)
        if sent is None:
            self._lose(rid, now)
        elif not sent:
            self._stalled = True
        return bool(sent)

    def _dispatch(self, now: float) -> None:
        """Give pullers with credit what is due again, then what was never delivered."""
        spool = self._spool
        d = spool.deliveries
        links = [li for li in d.links.values() if li.room > 0]
        self._busy = False
        if not links:
            return
        self._rr = (self._rr + 1) % len(links)
        links = links[self._rr :] + links[: self._rr]
        frames = 0
        progress = True
        self._stalled = False
        while progress and frames < _FRAMES_PER_STEP:
            progress = False
            upto = spool.deliverable
            for li in links:
                if li.room <= 0 or li.key not in d.links:
                    continue
                due = d.due(now, min(li.room, _BATCH_COUNT))
                if due:
                    if not self._redeliver(li, due, now):
                        continue
                    frames += 1
                    progress = True
                if li.room <= 0 or d.cursor > upto:
                    continue
                backlog = upto - d.cursor + 1
                share = min(li.room, _BATCH_COUNT, max(1, -(-backlog // len(links))))
                try:
                    data, found = spool.read(d.cursor, min(upto, d.cursor + share - 1),
                                             _BATCH_BYTES)
                except SpoolError as exc:
                    _log.error("spool.read_failed seq=%d error=%s", d.cursor, exc)
                    d.skip_to(d.cursor + 1)
                    continue
                if not found:
                    d.skip_to(upto + 1)
                    continue
                seqs = [s for s, _ in found]
                if seqs[0] > d.cursor:
                    d.skip_to(seqs[0])
                if not self._send(li, [link.DELIVER, b"", data], now):
                    continue
                d.sent_new(li, seqs, now)
                frames += 1
                progress = True
        self._busy = frames >= _FRAMES_PER_STEP

    def _redeliver(self, li: LinkState, seqs: list[int], now: float) -> bool:
        spool = self._spool
        d = spool.deliveries
        parts: list[bytes] = []
        kept: list[int] = []
        for seq in seqs:
            try:
                data, found = spool.read(seq, seq, 0)
            except SpoolError as exc:
                _log.error("spool.read_failed seq=%d error=%s", seq, exc)
                found = []
            if not found or found[0][0] != seq:
                d.forget([seq])  # gone with a damaged segment: reported by recovery
                continue
            parts.append(data)
            kept.append(seq)
        if not kept:
            return False
        counts = link.encode_deliveries(d.attempts.get(s, 0) + 1 for s in kept)
        if not self._send(li, [link.DELIVER, counts, b"".join(parts)], now):
            d.undue(kept, now)
            return False
        d.sent(li, kept, now)
        return True

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
            if self._owns_spool and hasattr(self, "_spool"):
                try:
                    self._spool.close()
                except PeermqError as exc:
                    _log.error("spool.close_failed error=%s", exc)

    def _wait_for(self, ready: Callable[[], bool], timeout: float | None, what: str) -> None:
        """Block until ``ready()`` (checked whenever the link thread steps); TimeoutError if not."""
        end = None if timeout is None else time.monotonic() + timeout
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
