"""One thread per secure node: the ZAP authenticator, and the watch over secure handshakes.

- ZAP (ZeroMQ RFC 27): libzmq asks ``inproc://zeromq.zap.01`` of the node's context about
  every client that completes a CURVE handshake with one of the node's sockets; the answer
  comes from the trust store in memory (and the bans), never from a file per peer.
- Each secure socket's monitor is read here, so a failed handshake is seen even while the
  socket's owner is busy: a connecting socket is paused (``disconnect``) and tried again later,
  backing off, through ``call_soon``; the failure is reported, rate-limited. Peer events are
  passed on to the owner's monitor socket (pushers and pullers count peers with them).
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import logging
import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import zmq
from zmq.utils import z85
from zmq.utils.monitor import parse_monitor_message

from .. import _zmq
from ..config import SecurityOptions, TrustPolicy
from .keys import fingerprint
from .trust import TrustStore

__all__ = ["Guard", "Owner", "Reporter", "SecurityStats", "backoff_delay"]

_log = logging.getLogger("peermq.security")

ZAP_ENDPOINT = "inproc://zeromq.zap.01"
_STOP = object()


class Owner(Protocol):
    """What the guard needs of a socket: a way to run code on its thread, and two actions."""

    def call_soon(self, fn: Callable[[], None]) -> None: ...
    def _pause_endpoint(self, endpoint: str) -> None: ...
    def _resume_endpoint(self, endpoint: str) -> None: ...


def backoff_delay(failures: int, base: float, cap: float) -> float:
    """Seconds to wait after ``failures`` failed handshakes in a row (1, 2, 4 ... x base)."""
    return float(min(cap, base * 2 ** min(max(failures - 1, 0), 30)))


class Reporter:
    """Logs a given report at most once per ``interval`` seconds; counts the rest."""

    def __init__(self, interval: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = interval
        self._clock = clock
        self._last: dict[object, float] = {}
        self._held: dict[object, int] = {}

    def report(self, key: object, level: int, msg: str, *args: object) -> bool:
        """Log ``msg % args`` unless ``key`` was reported less than ``interval`` ago."""
        now = self._clock()
        last = self._last.get(key)
        if last is not None and now - last < self.interval:
            self._held[key] = self._held.get(key, 0) + 1
            return False
        if len(self._last) > 4096:  # bounded: forget the oldest keys
            for old in list(self._last)[:1024]:
                self._last.pop(old, None)
                self._held.pop(old, None)
        self._last[key] = now
        held = self._held.pop(key, 0)
        if held:
            msg += " (%d more like it not logged)"
            args = (*args, held)
        _log.log(level, msg, *args)
        return True


@dataclass
class SecurityStats:
    """Counters of one node's security (read them with ``node.security.stats()``)."""

    accepted: int = 0
    """Clients let in by ZAP."""
    refused: int = 0
    """Clients refused by ZAP: unknown, revoked, changed or banned keys."""
    pinned: int = 0
    """Keys pinned by trust-on-first-use."""
    failed_handshakes: int = 0
    """Handshakes this node's connecting sockets failed (key mismatch, refused by the peer)."""
    backoffs: int = 0
    """Times a connecting socket paused an endpoint after a failure."""
    bad_peers: int = 0
    """Connections cut off for sending malformed frames."""


@dataclass
class _Watch:
    owner: weakref.ref[Owner]
    mon: zmq.Socket[bytes]
    fwd: zmq.Socket[bytes] | None
    connects: dict[str, str] = field(default_factory=dict)
    """monitor endpoint (as libzmq reports it) -> endpoint given to connect()"""
    failures: dict[str, int] = field(default_factory=dict)
    paused: set[str] = field(default_factory=set)
    own: set[str] = field(default_factory=set)
    """endpoints where this node's own key is expected, nothing being pinned for them"""


class Guard:
    """The node's security thread. Made (and its ZAP socket bound) before any secure socket."""

    def __init__(
        self,
        ctx: zmq.Context[zmq.Socket[bytes]],
        store: TrustStore,
        options: SecurityOptions,
        *,
        own_key: bytes,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.own_key = own_key
        """Whoever holds this node's secret key is this node (another process sharing its keys)."""
        self.options = options
        self.stats = SecurityStats()
        self._ctx = ctx
        self._clock = clock
        self.reporter = Reporter(options.report_interval, clock)
        self._bans: dict[object, float] = {}
        self._bans_lock = threading.Lock()
        self._commands: deque[object] = deque()
        self._watches: dict[int, _Watch] = {}
        self._timers: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()
        self._monitor_ids = itertools.count(1)
        # Bound here, before any secure socket exists: without a ZAP handler libzmq would let
        # every client in (ZAP_ENFORCE_DOMAIN on our sockets refuses them too, as a second lock).
        zap = ctx.socket(zmq.ROUTER)
        zap.setsockopt(zmq.LINGER, 0)
        try:
            zap.bind(ZAP_ENDPOINT)
        except zmq.ZMQError:
            zap.close(0)
            raise
        self._zap = zap
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._thread = threading.Thread(target=self._run, name="peermq-security", daemon=True)
        self._thread.start()

    # -- called from any thread
    def _post(self, command: object) -> None:
        self._commands.append(command)
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"\x00")

    def watch(self, owner: Owner, sock: zmq.Socket[bytes], *, forward: bool) -> (
        zmq.Socket[bytes] | None
    ):
        """Watch ``sock``'s handshakes (call from its owner); returns the owner's monitor.

        With ``forward``, the returned PAIR socket gets every monitor event (``PEER_EVENTS``),
        for the owner's peer count, as ``_zmq.monitor_pair`` would.
        """
        n = next(self._monitor_ids)
        addr = f"inproc://peermq-security-monitor-{id(self)}-{n}"
        # every event, openings too: the owner's PeerLedger ties each outcome to its connection
        mon = _zmq.monitor_pair(self._ctx, sock, addr, _zmq.PEER_EVENTS)
        fwd = mine = None
        if forward:
            # no high-water mark on the owner's side either: an event dropped here would
            # leave the owner's peer count wrong for good
            fwd = self._ctx.socket(zmq.PAIR)
            fwd.setsockopt(zmq.LINGER, 0)
            fwd.setsockopt(zmq.SNDHWM, 0)
            fwd.bind(addr + "-peers")
            mine = self._ctx.socket(zmq.PAIR)
            mine.setsockopt(zmq.LINGER, 0)
            mine.setsockopt(zmq.RCVHWM, 0)
            mine.connect(addr + "-peers")
        # the two sockets move to the guard's thread: the queue hand-off is the memory barrier
        self._post(("watch", id(owner), _Watch(weakref.ref(owner), mon, fwd)))
        return mine

    def unwatch(self, owner: Owner) -> None:
        self._post(("unwatch", id(owner)))

    def connecting(self, owner: Owner, endpoint: str, reported_as: str, *, own: bool = False
                   ) -> None:
        """``owner`` connects to ``endpoint``, which its monitor reports as ``reported_as``;
        ``own``: it expects this node's own key there (nothing else is pinned for it)."""
        self._post(("connect", id(owner), endpoint, reported_as, own))

    def forget(self, owner: Owner, endpoint: str) -> None:
        """``owner`` disconnected ``endpoint`` itself: no retry."""
        self._post(("forget", id(owner), endpoint))

    def ban(self, what: object, seconds: float) -> None:
        """Refuse a key (Z85 bytes) or an address (str) at the handshake for ``seconds``."""
        if seconds > 0:
            with self._bans_lock:
                self._bans[what] = self._clock() + seconds

    def close(self, timeout: float = 5.0) -> None:
        if self._thread.is_alive():
            self._post(_STOP)
            self._thread.join(timeout)
        for fd in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)
        self._wake_r = self._wake_w = -1

    # -- the thread
    def _run(self) -> None:
        poller = zmq.Poller()
        poller.register(self._zap, zmq.POLLIN)
        poller.register(self._wake_r, zmq.POLLIN)
        by_mon: dict[zmq.Socket[bytes], _Watch] = {}
        try:
            while True:
                timeout = 1000.0
                if self._timers:
                    timeout = max(0.0, (self._timers[0][0] - self._clock()) * 1000)
                try:
                    ready = dict(poller.poll(int(timeout) + 1 if self._timers else 1000))
                except zmq.ZMQError as exc:
                    if exc.errno == zmq.ETERM:
                        return
                    raise
                if self._wake_r in ready:
                    with contextlib.suppress(OSError):
                        while os.read(self._wake_r, 4096):
                            pass
                while self._commands:
                    cmd = self._commands.popleft()
                    if cmd is _STOP:
                        return
                    self._command(cmd, poller, by_mon)
                if self._zap in ready:
                    self._answer()
                for sock, watch in list(by_mon.items()):
                    if sock in ready:
                        self._events(watch)
                self._fire_timers()
        except Exception:
            _log.exception("security.thread_failed")
        finally:
            for watch in self._watches.values():
                _close(watch)
            self._watches.clear()
            self._zap.close(0)

    def _command(
        self, cmd: object, poller: zmq.Poller, by_mon: dict[zmq.Socket[bytes], _Watch]
    ) -> None:
        assert isinstance(cmd, tuple)
        kind, key = cmd[0], cmd[1]
        if kind == "watch":
            old = self._watches.pop(key, None)
            if old is not None:
                self._drop(old, poller, by_mon)
            watch = cmd[2]
            self._watches[key] = watch
            by_mon[watch.mon] = watch
            poller.register(watch.mon, zmq.POLLIN)
            return
        watch = self._watches.get(key)
        if watch is None:
            return
        if kind == "unwatch":
            del self._watches[key]
            self._drop(watch, poller, by_mon)
        elif kind == "connect":
            endpoint, reported = cmd[2], cmd[3]
            if cmd[4]:
                watch.own.add(endpoint)
            else:
                watch.own.discard(endpoint)
            watch.connects[reported] = endpoint
            watch.connects[endpoint] = endpoint
            watch.paused.discard(endpoint)
        elif kind == "forget":
            endpoint = cmd[2]
            for k in [k for k, v in watch.connects.items() if v == endpoint]:
                del watch.connects[k]
            watch.failures.pop(endpoint, None)
            watch.paused.discard(endpoint)

    def _drop(self, watch: _Watch, poller: zmq.Poller, by_mon: dict[zmq.Socket[bytes], _Watch]
              ) -> None:
        poller.unregister(watch.mon)
        by_mon.pop(watch.mon, None)
        _close(watch)

    def _later(self, delay: float, fn: Callable[[], None]) -> None:
        heapq.heappush(self._timers, (self._clock() + delay, next(self._seq), fn))

    def _fire_timers(self) -> None:
        now = self._clock()
        while self._timers and self._timers[0][0] <= now:
            _, _, fn = heapq.heappop(self._timers)
            fn()

    # -- ZAP
    def _banned(self, key: bytes, address: str) -> bool:
        now = self._clock()
        with self._bans_lock:
            for what in (key, address):
                until = self._bans.get(what)
                if until is not None:
                    if until > now:
                        return True
                    del self._bans[what]
        return False

    def _answer(self) -> None:
        while True:
            try:
                frames = self._zap.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            if len(frames) < 9 or frames[1] != b"":
                _log.debug("zap.malformed_request frames=%d", len(frames))
                continue
            request_id, address = frames[3], frames[5].decode("utf-8", "replace")
            code, text, user = self._decide(frames[7], frames[8:], address, frames[2])
            self._zap.send_multipart(
                [frames[0], b"", b"1.0", request_id, code, text, user, b""]
            )

    def _decide(
        self, mechanism: bytes, credentials: list[bytes], address: str, version: bytes
    ) -> tuple[bytes, bytes, bytes]:
        """ZAP status, status text and user id for one request."""
        if version != b"1.0":
            return b"500", b"unsupported ZAP version", b""
        if mechanism != b"CURVE" or len(credentials) != 1 or len(credentials[0]) != 32:
            self.stats.refused += 1
            self.reporter.report(("mechanism", address), logging.WARNING,
                                 "security.refused address=%s reason=not CURVE (%s)",
                                 address, mechanism.decode("ascii", "replace"))
            return b"400", b"CURVE required", b""
        key = z85.encode(credentials[0])
        fp = fingerprint(key)
        if self._banned(key, address):
            self.stats.refused += 1
            self.reporter.report(("banned", key), logging.WARNING,
                                 "security.refused address=%s key=%s reason=banned for "
                                 "sending malformed frames", address, fp)
            return b"400", b"banned", b""
        if key == self.own_key:
            self.stats.accepted += 1
            _log.debug("security.accepted address=%s key=%s name=(this node's key)", address, fp)
            return b"200", b"OK", key
        verdict = self.store.admit(key, address, self.options.policy)
        if not verdict.allowed:
            self.stats.refused += 1
            if verdict.reason == "changed":
                self.reporter.report(
                    ("changed", address, key), logging.ERROR,
                    "KEY CHANGED: %s presented key %s, but %s is pinned to another key "
                    "(trust on first use): refused; someone may be impersonating it. If the "
                    "peer really has a new key: peermq keys revoke %s, then peermq keys trust",
                    address, fp, address, verdict.name,
                )
            else:
                self.reporter.report(("refused", verdict.reason, key), logging.WARNING,
                                     "security.refused address=%s key=%s reason=%s",
                                     address, fp, verdict.reason)
            return b"400", verdict.reason.encode(), b""
        self.stats.accepted += 1
        if verdict.reason == "pinned":
            self.stats.pinned += 1
            _log.warning("security.pinned address=%s key=%s (trust on first use: this key is "
                         "now the only one accepted from %s)", address, fp, address)
        elif verdict.reason == "open" and self.options.policy is TrustPolicy.OPEN:
            self.reporter.report(("open", key), logging.INFO,
                                 "security.open_accept address=%s key=%s", address, fp)
        else:
            _log.debug("security.accepted address=%s key=%s name=%s", address, fp, verdict.name)
        return b"200", b"OK", key

    # -- monitors
    def _events(self, watch: _Watch) -> None:
        while True:
            try:
                parts = watch.mon.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            try:
                event = parse_monitor_message(parts)
            except Exception:  # a malformed event would be libzmq's bug: skip it
                continue
            if watch.fwd is not None:
                with contextlib.suppress(zmq.ZMQError):
                    watch.fwd.send_multipart(parts, zmq.NOBLOCK)
            what = int(event["event"])
            endpoint = event["endpoint"].decode("utf-8", "replace")
            if what & _zmq.HANDSHAKE_FAILED:
                self._failed(watch, what, int(event["value"]), endpoint)
            elif what == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                given = watch.connects.get(endpoint)
                if given is not None and watch.failures.pop(given, 0):
                    _log.info("security.handshake_recovered endpoint=%s", given)

    def _failed(self, watch: _Watch, what: int, value: int, endpoint: str) -> None:
        given = watch.connects.get(endpoint)
        if given is None:
            # an incoming connection failed; ZAP (or libzmq) has said why, if it got that far
            _log.debug("security.incoming_handshake_failed endpoint=%s event=%s value=%s",
                       endpoint, what, value)
            return
        self.stats.failed_handshakes += 1
        if what == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
            self.reporter.report(
                ("refused-by", given), logging.WARNING,
                "security.refused_by_peer endpoint=%s status=%s: this node's key is not "
                "trusted there (give it: peermq keys show)", given, value,
            )
        elif what == zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL and value in _MECHANISM_ERRORS:
            self.reporter.report(("mechanism", given), logging.WARNING,
                                 "security.peer_not_curve endpoint=%s: it does not use CURVE",
                                 given)
        else:
            hint = ("nothing is pinned for it, so this node's own key was expected: pin the "
                    "peer's key with 'peermq keys trust'" if given in watch.own else
                    "the peer there does not hold the key pinned for it")
            self.reporter.report(
                ("mismatch", given), logging.WARNING,
                "server key mismatch at %s, possible spoofing (%s)", given, hint,
            )
        if given in watch.paused:
            return
        failures = watch.failures.get(given, 0) + 1
        watch.failures[given] = failures
        delay = backoff_delay(failures, self.options.auth_backoff, self.options.auth_backoff_max)
        watch.paused.add(given)
        self.stats.backoffs += 1
        owner = watch.owner()
        if owner is None:
            return
        _log.debug("security.backoff endpoint=%s failures=%d delay=%.1f", given, failures, delay)
        owner.call_soon(lambda: owner._pause_endpoint(given))
        self._later(delay, lambda: self._resume(watch, given))

    def _resume(self, watch: _Watch, endpoint: str) -> None:
        if endpoint not in watch.paused or watch not in self._watches.values():
            return  # forgotten (disconnected by its owner) or closed meanwhile
        watch.paused.discard(endpoint)
        owner = watch.owner()
        if owner is not None:
            owner.call_soon(lambda: owner._resume_endpoint(endpoint))


_MECHANISM_ERRORS = {
    getattr(zmq, name)
    for name in ("PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH", "PROTOCOL_ERROR_ZMTP_UNEXPECTED_COMMAND")
    if hasattr(zmq, name)
}


def _close(watch: _Watch) -> None:
    watch.mon.close(0)
    if watch.fwd is not None:
        watch.fwd.close(0)
