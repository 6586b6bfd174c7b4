"""What every socket shell has, blocking or asyncio: setup, bind/connect, close, stats."""

from __future__ import annotations

import contextlib
import logging
import os
import warnings
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

import zmq
from zmq.utils.monitor import parse_monitor_message

from . import _zmq
from ._core import PeerLedger
from ._zmq import Kind
from .config import OnFull, SocketOptions
from .errors import ClosedError, ConfigError, PeermqError
from .node import Node

if TYPE_CHECKING:
    from .discovery.attach import SocketDiscovery
    from .discovery.txt import Service
    from .security.service import NodeSecurity

__all__ = ["Endpoints", "SocketBase"]

_log = logging.getLogger("peermq")
_SCHEMES = ("tcp://", "ipc://", "inproc://")


def _check_endpoint(endpoint: str) -> None:
    if not isinstance(endpoint, str) or not endpoint.startswith(_SCHEMES):
        raise ConfigError(
            f"endpoint must start with tcp://, ipc:// or inproc://, got {endpoint!r}"
        )


Endpoints = str | list[str] | tuple[str, ...] | None


def _as_list(value: Endpoints) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if not isinstance(value, (list, tuple)):
        raise ConfigError(f"endpoints must be a str or a list of str, got {value!r}")
    return list(value)


class SocketBase:
    """A ZeroMQ socket with peermq's defaults, owned by one thread (or one event loop)."""

    _kind: Kind
    _wants_monitor = False
    """True: every socket of the class watches its connections (the spool links do)."""

    def __init__(
        self,
        *,
        node: Node | None,
        options: SocketOptions,
        bind: Endpoints,
        connect: Endpoints,
        welcome: bytes = b"",
        monitor: bool = False,
        service: str | Service | None = None,
    ) -> None:
        if not isinstance(options, SocketOptions):
            raise ConfigError(f"options must be a SocketOptions, got {type(options).__name__}")
        monitor = monitor or self._wants_monitor
        binds, connects = _as_list(bind), _as_list(connect)
        for ep in (*binds, *connects):
            _check_endpoint(ep)
        self.node = node if node is not None else Node.default()
        self.discovery: SocketDiscovery | None = None
        """With ``service=``: this socket's announcement or discovered peers (docs/discovery.md)."""
        if service is not None:
            from .discovery.attach import checked_service, liveness_options  # noqa: PLC0415

            service = checked_service(service)
            options = liveness_options(options, self.node.discovery_options)
            # a receiver sees its peers join and leave on the monitor
            monitor = monitor or self._kind in (Kind.SUBSCRIBER, Kind.PULLER)
        self.options = options
        self.stream = self.node._attach(self)
        self._security: NodeSecurity | None = self.node.security  # None: plain ZeroMQ
        self._connects: set[str] = set()
        """Endpoints connected to (and not disconnected): a peer cut off is found here."""
        self.endpoints: list[str] = []
        self._sock: zmq.Socket[bytes] | None = None
        self._inbox: deque[Callable[[], None]] = deque()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        sock = self.node.context.socket(self._kind.value)
        try:
            _zmq.configure(sock, self._kind, options, welcome or self._welcome(),
                           self._on_full())
            self._sock = sock
            self._send_raw = _zmq.raw_send(sock)
            self._recv_raw = _zmq.raw_recv(sock)
            self._monitor: zmq.Socket[bytes] | None = None
            self._ledger = PeerLedger()
            self._peers = 0
            """The count last read: the tap mirror reads this int from its thread."""
            if self._security is not None:
                # the node's security thread reads the monitor; peer events are passed on
                self._monitor = self._security.watch(self, sock, forward=monitor)
            elif monitor:
                self._monitor = _zmq.monitor_pair(
                    self.node.context, sock, f"inproc://peermq-monitor-{id(self)}",
                    _zmq.PEER_EVENTS)
            self._setup()
            for ep in binds:
                self.bind(ep)
            for ep in connects:
                self.connect(ep)
            if service is not None:
                from .discovery.attach import attach  # noqa: PLC0415

                self.discovery = attach(self, service)
        except BaseException:
            self.close()
            sock.close(0)
            raise

    # -- hooks for subclasses
    def _welcome(self) -> bytes:
        return b""

    def _on_full(self) -> OnFull:
        return self.options.on_full or OnFull.DROP

    def _setup(self) -> None:
        """Socket-kind specific setup before any bind or connect."""

    def _farewell(self) -> None:
        """Last words to the peers before the socket closes (publishers say goodbye)."""

    def _discard_unread(self) -> int:
        """Drop what was received but not read; return how many messages that was."""
        return 0

    # -- plumbing
    @property
    def closed(self) -> bool:
        return self._sock is None

    def _live(self) -> zmq.Socket[bytes]:
        sock = self._sock
        if sock is None:
            raise ClosedError(f"{type(self).__name__} is closed")
        return sock

    def bind(self, endpoint: str) -> str:
        """Listen on ``endpoint``; returns the real endpoint (``tcp://127.0.0.1:*`` gets a port)."""
        _check_endpoint(endpoint)
        sock = self._live()
        if self._security is not None:
            self._security.prepare_bind(sock, endpoint)
        try:
            sock.bind(endpoint)
        except zmq.ZMQError as exc:
            raise _zmq.translate(exc, f"bind {endpoint}") from exc
        real = _zmq.last_endpoint(sock)
        self.endpoints.append(real)
        _log.debug("socket.bound kind=%s endpoint=%s", self._kind.name, real)
        return real

    def connect(self, endpoint: str) -> None:
        """Connect to ``endpoint``; ZeroMQ reconnects with capped backoff if the peer goes away.

        With security on, the peer there must hold the key pinned for ``endpoint`` (see
        ``NodeSecurity.server_key``); SecurityError if there is none.
        """
        _check_endpoint(endpoint)
        sock = self._live()
        if self._security is not None:
            self._security.prepare_connect(self, sock, endpoint)
        try:
            sock.connect(endpoint)
        except zmq.ZMQError as exc:
            raise _zmq.translate(exc, f"connect {endpoint}") from exc
        self._connects.add(endpoint)
        if endpoint.startswith("inproc://"):
            # ZeroMQ's monitor reports no handshake for inproc: the connect side counts it
            self._ledger.manual += 1
        _log.debug("socket.connected kind=%s endpoint=%s", self._kind.name, endpoint)

    def disconnect(self, endpoint: str) -> None:
        sock = self._live()
        if self._security is not None:
            self._security.forget(self, endpoint)
        try:
            sock.disconnect(endpoint)
        except zmq.ZMQError as exc:
            raise _zmq.translate(exc, f"disconnect {endpoint}") from exc
        if endpoint in self._connects and endpoint.startswith("inproc://"):
            self._ledger.manual = max(0, self._ledger.manual - 1)
        self._connects.discard(endpoint)

    def _pause_endpoint(self, endpoint: str) -> None:
        """After a failed handshake (the security thread asks): stop retrying for now."""
        if self._sock is not None:
            with contextlib.suppress(zmq.ZMQError):
                self._sock.disconnect(endpoint)

    def _resume_endpoint(self, endpoint: str) -> None:
        """... and try again, with the key pinned now (it may have been rotated meanwhile)."""
        if self._sock is None:
            return
        self._pause_endpoint(endpoint)  # libzmq gave it up; clear what is left of it
        try:
            self.connect(endpoint)
        except PeermqError as exc:
            _log.warning("security.reconnect_failed endpoint=%s error=%s", endpoint, exc)

    def call_soon(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` on the thread (or loop) that owns this socket, at its next wait or receive.

        Thread-safe: this is how other threads (discovery, for one) change a socket that only
        its owner may touch. Calls posted after close are dropped.
        """
        if self._sock is None:
            return
        self._inbox.append(fn)
        # a full pipe means a wake-up is pending anyway
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"\x00")

    def _run_inbox(self) -> None:
        """Run what other threads posted; called only by the owning thread."""
        try:
            while os.read(self._wake_r, 4096):
                pass
        except (BlockingIOError, OSError):
            pass
        inbox = self._inbox
        while inbox and self._sock is not None:
            fn = inbox.popleft()
            try:
                fn()
            except Exception:
                _log.exception("socket.posted_call_failed kind=%s", self._kind.name)

    def _poll(self, sock: zmq.Socket[bytes], events: int, end: float | None) -> bool:
        """Wait until ``sock`` has ``events`` (True) or ``end`` passes (False).

        Runs calls posted with ``call_soon`` while it waits.
        """
        while True:
            if self._inbox:
                self._run_inbox()
            try:
                ready, woke = _zmq.poll_with(sock, events, self._wake_r, _zmq.deadline_left(end))
            except zmq.ZMQError as exc:
                raise _zmq.translate(exc, "wait") from exc
            if ready:
                return True
            if woke:
                self._run_inbox()
                if self._sock is None:
                    raise ClosedError(f"{type(self).__name__} is closed")
                continue
            if end is not None and _zmq.deadline_left(end) == 0.0:
                return False
            self._read_monitor()  # a quiet second

    def _read_monitor(self) -> None:
        """Take the monitor's news now: its queue is unbounded (``_zmq.monitor_pair``)."""
        if self._monitor is not None:
            self._count_peers()

    def _count_peers(self) -> int:
        """Peers whose handshake succeeded and that are still connected (PeerLedger)."""
        mon = self._monitor
        ledger = self._ledger
        if mon is None:
            self._peers = peers = ledger.peers
            return peers
        while True:
            try:
                parts = mon.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                self._peers = peers = ledger.peers
                return peers
            msg = parse_monitor_message(parts)
            event = msg["event"]
            endpoint = msg["endpoint"].decode("utf-8", "replace")
            if event == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                ledger.succeeded(endpoint)
            elif event == zmq.EVENT_DISCONNECTED:
                if not ledger.closed(endpoint, int(msg["value"])):
                    continue  # the close of a failed handshake: no peer left
            elif event & _zmq.OPENED:
                ledger.opened(endpoint, int(msg["value"]))
            elif event & _zmq.HANDSHAKE_FAILED:
                ledger.failed(endpoint)
                continue
            else:
                continue
            if self.discovery is not None and not event & _zmq.OPENED:
                self.discovery.on_monitor(event, endpoint)

    def close(self) -> int:
        """Close (idempotent). Returns how many received messages were discarded unread.

        Queued outgoing messages get up to ``options.linger`` seconds to leave.
        """
        sock = self._sock
        if sock is None:
            return 0
        if self.discovery is not None:
            self.discovery.close()  # goodbyes; stop watching the monitor before it closes
        discarded = 0
        try:
            self._farewell()
            discarded = self._discard_unread()
        finally:
            self._sock = None
            if self._monitor is not None:
                try:
                    sock.disable_monitor()
                finally:
                    self._monitor.close(0)
                    self._monitor = None
            if self._security is not None:
                self._security.unwatch(self, sock)
            sock.close()
            self._inbox.clear()
            self._close_pipe()
        if discarded:
            _log.info("socket.closed kind=%s discarded=%d", self._kind.name, discarded)
        return discarded

    def __del__(self) -> None:
        if getattr(self, "_sock", None) is not None:
            warnings.warn(
                f"unclosed {type(self).__name__}; use it as a context manager or call close()",
                ResourceWarning,
                stacklevel=2,
            )
            # nobody can use it any more: drop what is queued rather than linger at exit
            for sock in (getattr(self, "_monitor", None), self._sock):
                if sock is not None:
                    sock.close(linger=0)
            self._close_pipe()

    def _close_pipe(self) -> None:
        for name in ("_wake_r", "_wake_w"):
            fd = getattr(self, name, -1)
            setattr(self, name, -1)
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)

    def __repr__(self) -> str:
        state = "closed" if self.closed else ",".join(self.endpoints) or "open"
        return f"<{type(self).__name__} {self.node.name}/{self.stream} {state}>"

