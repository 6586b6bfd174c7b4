"""A node's tap mirror: copies of what its sockets send, only while a tap is attached.

The mirror is one XPUB socket owned by one thread. Sending sockets never touch it: while a tap
is attached, each one's ``_tap`` hook appends the frame it just sent to a bounded deque (a
lock-free handoff: ``deque.append`` is atomic), and the mirror thread sends the copies on. With
no tap attached the hook is None and a send pays one attribute test.

A tap subscribes to topic prefixes, then to ``STATUS`` last: the mirror counts itself attached
while that subscription stands, and answers each new one with a status frame, so a tap that
gets a node's first status knows that its other subscriptions are in force there. Data frames
are the wire frames as sent (see wire.py), alone or, to spare a ZeroMQ call per copy, several
small ones in one bundle frame (``BUNDLE`` then, for each, a 4-byte big-endian length and the
frame; a tap subscribes to ``BUNDLE`` and filters what it holds by topic itself). Control
frames are::

    STATUS + msgpack [1, state, node, name, host, pid, time, interval, [socket, ...]]
    socket = [stream, kind, service, sent, dropped, {subscriber: lost}, peers, mirror_lost,
              [endpoint, ...]]

``state`` is HELLO (answer to a new tap), UPDATE (every ``status_interval``) or BYE (closing).

On a secure node the XPUB is a CURVE server of the node's security, like any bound socket: only
a tap whose key the node trusts (its policy decides) completes the handshake, and its copies
travel encrypted; any other tap is refused before it can subscribe, so it gets nothing.

When the node's discovery runs, the mirror announces itself as a publisher of the reserved
service ``MIRROR_SERVICE`` on the interfaces that reach its endpoints, so that a tap finds it
(with the node's key fingerprint, which a tap only uses to select a key it already trusts).
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

import msgpack
import zmq

from .config import MirrorOptions
from .errors import WireError

if TYPE_CHECKING:
    from .security.service import NodeSecurity

__all__ = [
    "BUNDLE",
    "BYE",
    "HELLO",
    "MIRROR_SERVICE",
    "STATUS",
    "UPDATE",
    "Mirror",
    "MirrorStatus",
    "SocketStatus",
    "decode_status",
    "encode_status",
]

_log = logging.getLogger(__name__)

STATUS = b"\xffT"
"""Prefix of the mirror's control frames; a tap subscribes to it last."""
BUNDLE = b"\xffB"
"""Prefix of a frame that holds several copies."""
_BUNDLE_BYTES = 256 * 1024
"""A bundle closes at this size."""
_ALONE_BYTES = 16 * 1024
"""Copies this big or bigger go alone (ZeroMQ's per-call cost is small next to them)."""
HELLO, UPDATE, BYE = 0, 1, 2
MIRROR_SERVICE = "peermq.mirror"
"""The service name mirrors are announced under (DNS-SD); reserved for them."""
_VERSION = 1
_IDLE_WAIT = 1.0
"""Seconds the thread sleeps between checks while no tap is attached."""


class SocketStatus(NamedTuple):
    """One sending socket, as its node's mirror reports it."""

    stream: int
    kind: str
    """``pub`` or ``push``."""
    service: str
    sent: int
    dropped: int
    """Messages the sender lost: at a full queue, or reported missing by subscribers."""
    dropped_by_peer: dict[str, int]
    peers: int
    mirror_lost: int
    """Copies the mirror could not take (its queue was full): the tap misses them."""
    endpoints: tuple[str, ...]


class MirrorStatus(NamedTuple):
    """A node's status frame: who it is, and its sending sockets' counters."""

    state: int
    node: str
    name: str
    host: str
    pid: int
    time: float
    interval: float
    sockets: tuple[SocketStatus, ...]


def encode_status(status: MirrorStatus) -> bytes:
    body = [_VERSION, status.state, status.node, status.name, status.host, status.pid,
            status.time, status.interval, [list(s) for s in status.sockets]]
    packed: bytes = msgpack.packb(body, use_bin_type=True)
    return STATUS + packed


def _socket_status(raw: Any) -> SocketStatus:
    if type(raw) is not list or len(raw) < 9:
        raise WireError("malformed socket entry in a mirror status")
    stream, kind, service, sent, dropped, by_peer, peers, lost, endpoints = raw[:9]
    if not (
        type(stream) is int and type(kind) is str and type(service) is str
        and type(sent) is int and type(dropped) is int and type(by_peer) is dict
        and type(peers) is int and type(lost) is int and type(endpoints) is list
        and all(type(k) is str and type(v) is int for k, v in by_peer.items())
        and all(type(e) is str for e in endpoints)
    ):
        raise WireError("malformed socket entry in a mirror status")
    return SocketStatus(stream, kind, service, sent, dropped, by_peer, peers, lost,
                        tuple(endpoints))


def decode_status(frame: bytes) -> MirrorStatus:
    """Read a status frame; WireError if it is not one of this version."""
    if not frame.startswith(STATUS):
        raise WireError("not a mirror status frame")
    try:
        raw = msgpack.unpackb(frame[len(STATUS):], raw=False, strict_map_key=True)
    except Exception as exc:  # msgpack raises many kinds
        raise WireError(f"undecodable mirror status: {exc}") from exc
    if type(raw) is not list or len(raw) < 9 or raw[0] != _VERSION:
        raise WireError("malformed mirror status")
    _, state, node, name, host, pid, ts, interval, socks = raw[:9]
    if not (
        state in (HELLO, UPDATE, BYE) and type(node) is str and type(name) is str
        and type(host) is str and type(pid) is int and type(ts) in (int, float)
        and type(interval) in (int, float) and type(socks) is list
    ):
        raise WireError("malformed mirror status")
    return MirrorStatus(state, node, name, host, pid, float(ts), float(interval),
                        tuple(_socket_status(s) for s in socks))


def _bundle(parts: list[bytes]) -> bytes:
    """One copy alone as it is; more as a bundle (``parts`` alternates lengths and frames)."""
    if len(parts) == 2:
        return parts[1]
    return BUNDLE + b"".join(parts)


class _Port:
    """One sending socket's way into the mirror; only that socket's thread calls ``offer``."""

    __slots__ = ("__weakref__", "cap", "kind", "lost", "queue", "sock", "stream")

    def __init__(self, sock: Any, stream: int, queue: deque[bytes], cap: int) -> None:
        self.sock: weakref.ref[Any] = weakref.ref(sock)
        self.stream = stream
        bases = {c.__name__ for c in type(sock).__mro__}  # (the kinds module imports this one)
        kind = getattr(getattr(sock, "_kind", None), "name", "").lower()
        self.kind = "pub" if "PublisherBase" in bases else "push" if "PusherBase" in bases \
            else kind
        self.queue = queue
        self.cap = cap
        self.lost = 0

    def offer(self, frame: bytes) -> None:
        """The hook a socket calls after each successful send while a tap is attached."""
        queue = self.queue
        if len(queue) < self.cap:
            queue.append(frame)
        else:
            self.lost += 1

    def status(self) -> SocketStatus | None:
        sock = self.sock()
        if sock is None or getattr(sock, "closed", True):
            return None
        core = getattr(sock, "_core", None)
        if core is None:
            return None
        # ints and a dict copy: safe to read from this thread while the owner writes them
        peers = len(core.subscribers) if self.kind == "pub" else int(getattr(sock, "_peers", 0))
        service = getattr(getattr(sock, "discovery", None), "service", "")  # with service=
        return SocketStatus(
            self.stream, self.kind, service if isinstance(service, str) else "", core.sent,
            core.dropped, dict(core.dropped_by_peer), peers, self.lost,
            tuple(sock.endpoints),
        )


class Mirror:
    """The XPUB a tap connects to, and the thread that feeds it. Made by Node, lazily."""

    def __init__(
        self,
        context: zmq.Context[zmq.Socket[bytes]],
        *,
        node: str,
        name: str,
        options: MirrorOptions,
        alive: Callable[[], object] = lambda: True,
        discovery: Callable[[], Any] = lambda: None,
        security: NodeSecurity | None = None,
    ) -> None:
        self.node, self.name, self.options = node, name, options
        self.fingerprint = security.fingerprint if security is not None else ""
        """The node's key fingerprint when its mirror is a CURVE server, else ""."""
        self._alive = alive
        self._discovery = discovery
        """The node's Discovery once made, else None: the mirror announces itself there."""
        self._registration: Any = None
        self._announced = False
        self._queue: deque[bytes] = deque()
        self._unsent: deque[bytes] = deque()
        """Frames made from copies (bundles or single ones) that ZeroMQ did not take yet."""
        self._ports: tuple[_Port, ...] = ()
        self._lock = threading.Lock()
        self._attached = threading.Event()
        self._closing = False
        self._prefixes: set[bytes] = set()
        self._wanted: tuple[bytes, ...] | None = None
        """Topic prefixes some tap asked for; None: every topic."""
        self.endpoints: list[str] = []
        xpub = context.socket(zmq.XPUB)
        try:
            xpub.setsockopt(zmq.XPUB_VERBOSE, 1)  # every tap's subscription, so each is greeted
            xpub.setsockopt(zmq.XPUB_NODROP, 1)  # a full tap is seen here, not lost unseen
            xpub.setsockopt(zmq.SNDHWM, options.send_hwm)
            xpub.setsockopt(zmq.LINGER, round(options.linger * 1000))
            for ep in options.bind:
                if security is not None:
                    # a CURVE server: only taps whose keys the node trusts get in (ZAP)
                    security.prepare_bind(xpub, ep)
                xpub.bind(ep)
                self.endpoints.append(xpub.getsockopt_string(zmq.LAST_ENDPOINT))
        except zmq.ZMQError:
            xpub.close(0)
            raise
        self._xpub = xpub
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        self._thread = threading.Thread(target=self._run, name=f"peermq-mirror-{node}",
                                        daemon=True)
        self._thread.start()
        _log.info("mirror.bound node=%s endpoints=%s%s", node, ",".join(self.endpoints),
                  " curve=on" if security is not None else "")

    # -- any thread
    @property
    def attached(self) -> bool:
        """True while at least one tap is attached."""
        return self._attached.is_set()

    def wait_attached(self, timeout: float) -> bool:
        """Wait until a tap is attached (copies flow from then on); False after ``timeout``."""
        return self._attached.wait(timeout)

    def adopt(self, sock: Any, stream: int) -> None:
        """Take a sending socket in: from now on it is copied whenever a tap is attached."""
        port = _Port(sock, stream, self._queue, self.options.queue)
        with self._lock:
            self._ports = (*(p for p in self._ports if p.sock() is not None), port)
            # an instance attribute either way: the send path's test of it is then cheapest
            sock._tap = port.offer if self._attached.is_set() else None

    def close(self) -> None:
        """Stop the thread: last copies and a goodbye go out within ``linger``. Idempotent."""
        if self._closing:
            return
        self._closing = True
        with self._lock:
            if self._wake_w >= 0:
                with contextlib.suppress(OSError):
                    os.write(self._wake_w, b"\x00")
        if threading.current_thread() is not self._thread:
            self._thread.join(self.options.linger + 5.0)
            if self._thread.is_alive():
                _log.error("mirror.close_timeout node=%s", self.node)

    # -- the mirror thread
    def _set_attached(self, attached: bool) -> None:
        with self._lock:
            for port in self._ports:
                sock = port.sock()
                if sock is not None:
                    sock._tap = port.offer if attached else None
            if attached:
                self._attached.set()
            else:
                self._attached.clear()
                self._queue.clear()
                self._unsent.clear()
        _log.debug("mirror.%s node=%s", "attached" if attached else "detached", self.node)

    def _read_subscriptions(self) -> bool:
        """Apply what taps asked for; True if a new tap came (it gets a hello)."""
        greet = False
        while True:
            try:
                msg = self._xpub.recv(zmq.NOBLOCK)
            except zmq.Again:
                break
            if msg[:1] == b"\x01":
                self._prefixes.add(msg[1:])
                greet = greet or msg[1:] == STATUS
            elif msg[:1] == b"\x00":
                self._prefixes.discard(msg[1:])
        topics = tuple(p for p in self._prefixes if p[:1] != b"\xff")
        self._wanted = None if b"" in topics else topics
        attached = STATUS in self._prefixes
        if attached != self._attached.is_set():
            self._set_attached(attached)
        return greet

    def _pack(self) -> None:
        """Move copies from the queue to ``_unsent``: small ones bundled, big ones alone."""
        queue, unsent, wanted = self._queue, self._unsent, self._wanted
        parts: list[bytes] = []
        size = 0
        while queue and size < _BUNDLE_BYTES:
            frame = queue.popleft()
            if wanted is not None and not frame.startswith(wanted):
                continue  # no tap wants it
            n = len(frame)
            if n >= _ALONE_BYTES:
                if parts:
                    unsent.append(_bundle(parts))
                    parts, size = [], 0
                unsent.append(frame)
                continue
            parts += (n.to_bytes(4, "big"), frame)
            size += n + 4
        if parts:
            unsent.append(_bundle(parts))

    def _drain(self) -> None:
        queue, unsent, send = self._queue, self._unsent, self._xpub.send
        while True:
            if not unsent:
                if not queue:
                    return
                self._pack()
                continue
            try:
                send(unsent[0], zmq.NOBLOCK)
            except zmq.Again:
                return  # a tap is full: keep the rest; senders count what no longer fits
            unsent.popleft()

    def _status(self, state: int) -> None:
        ports = self._ports
        socks = tuple(s for s in (p.status() for p in ports) if s is not None)
        frame = encode_status(MirrorStatus(
            state, self.node, self.name, socket.gethostname(), os.getpid(), time.time(),
            self.options.status_interval, socks,
        ))
        with contextlib.suppress(zmq.Again):
            self._xpub.send(frame, zmq.NOBLOCK)

    def _announce(self) -> None:
        """Once the node's discovery runs: announce this mirror where its endpoints reach."""
        discovery = self._discovery()
        if discovery is None or not discovery.running:
            return
        self._announced = True
        from .discovery.interfaces import announced_on  # noqa: PLC0415 (discovery is optional)
        from .discovery.txt import Announcement, PeerKind  # noqa: PLC0415

        bound = {}
        for itf in discovery.interfaces:
            where = announced_on(itf, self.endpoints)
            if where is not None:
                bound[itf.name] = where
        if not bound:
            if discovery.interfaces:
                _log.info("mirror.not_announced node=%s endpoints=%s: no discovery interface "
                          "reaches them (PEERMQ_MIRROR=tcp://0.0.0.0:* makes it tappable from "
                          "other hosts)", self.node, ",".join(self.endpoints))
            return
        self._registration = discovery.announce(
            Announcement(service=MIRROR_SERVICE, kind=PeerKind.PUBLISHER, node_id=self.node,
                         node_name=self.name, stream=0, topics=(">",),
                         fingerprint=self.fingerprint),
            bound,
        )
        _log.debug("mirror.announced node=%s interfaces=%s", self.node, ",".join(bound))

    def _run(self) -> None:
        poller = zmq.Poller()
        poller.register(self._xpub, zmq.POLLIN)
        poller.register(self._wake_r, zmq.POLLIN)
        interval = self.options.status_interval
        next_status = 0.0
        try:
            while not self._closing and self._alive():
                attached = self._attached.is_set()
                wait = self.options.drain_interval if attached else _IDLE_WAIT
                ready = dict(poller.poll(round(wait * 1000)))
                if not self._announced:
                    self._announce()
                if self._wake_r in ready:
                    with contextlib.suppress(OSError):
                        os.read(self._wake_r, 4096)
                greet = self._xpub in ready and self._read_subscriptions()
                if not self._attached.is_set():
                    continue
                now = time.monotonic()
                if greet:
                    self._status(HELLO)
                self._drain()
                if greet or now >= next_status:
                    if not greet:
                        self._status(UPDATE)
                    next_status = now + interval
        except zmq.ZMQError as exc:
            _log.debug("mirror.stopped node=%s error=%s", self.node, exc)
        finally:
            self._finish()

    def _finish(self) -> None:
        discovery = self._discovery()
        if self._registration is not None and discovery is not None:
            with contextlib.suppress(RuntimeError):  # its loop closed meanwhile: goodbyes sent
                discovery.withdraw(self._registration, self.options.linger)
        with contextlib.suppress(zmq.ZMQError):
            if self._attached.is_set():
                self._drain()
                self._status(BYE)
        self._set_attached(False)
        self._prefixes.clear()
        self._xpub.close()
        with self._lock:
            os.close(self._wake_r)
            os.close(self._wake_w)
            self._wake_r = self._wake_w = -1
        _log.debug("mirror.closed node=%s", self.node)
