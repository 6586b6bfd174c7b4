"""What discovery does for one socket: announce a sender, or connect a receiver to its peers.

Senders (publishers, pushers) bind and announce; receivers (subscribers, pullers) browse and
connect, one connection per peer; docs/discovery.md says why. Spooled sockets do the same
under kinds of their own (``spool-push``...), as their endpoints speak spool links.
Everything that touches the ZeroMQ socket runs on the socket's own thread, posted with
``call_soon``; events (a peer joined or left) are delivered there too, to a callback and to an
iterator.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import select
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import replace
from typing import TYPE_CHECKING, Protocol

import zmq

from .._zmq import Kind
from ..config import DiscoveryOptions, SocketOptions
from ..errors import ConfigError, DiscoveryError, PeermqError
from ._mdns import Registration
from .interfaces import Interface, announced_on, host_port
from .peers import Action, Connect, PeerEvent, PeerInfo, PeerTable
from .service import Discovery, Watch
from .txt import Announcement, PeerKind, Service

if TYPE_CHECKING:
    from ..node import Node

__all__ = ["PeerHandler", "SocketDiscovery", "attach", "checked_service", "liveness_options"]

_log = logging.getLogger("peermq.discovery")
_announced_on = announced_on  # the tap mirror imports it by this name

PeerHandler = Callable[[PeerEvent], object]
_FIRST_GOODBYE_WAIT = 0.2
_GOODBYE_GRACE = 0.2
"""How long a spool link's loss waits for the sender's goodbye before it is reported."""
_EVENTS_KEPT = 1024


class DiscoverableSocket(Protocol):
    """The part of SocketBase that discovery uses (SocketBase cannot be imported here)."""

    node: Node
    stream: int
    _kind: Kind
    endpoints: list[str]
    _monitor: zmq.Socket[bytes] | None
    _wake_r: int
    _inbox: deque[Callable[[], None]]

    def _live(self) -> zmq.Socket[bytes]: ...
    def bind(self, endpoint: str) -> str: ...
    def connect(self, endpoint: str) -> None: ...
    def disconnect(self, endpoint: str) -> None: ...
    def call_soon(self, fn: Callable[[], None]) -> None: ...
    def _count_peers(self) -> int: ...
    def _run_inbox(self) -> None: ...


_KINDS = {
    Kind.PUBLISHER: PeerKind.PUBLISHER,
    Kind.SUBSCRIBER: PeerKind.SUBSCRIBER,
    Kind.PUSHER: PeerKind.PUSHER,
    Kind.PULLER: PeerKind.PULLER,
}

_MISMATCH = {
    PeerKind.PULLER: "a plain Puller cannot take work from a spooled Pusher: give the Puller "
                     "ack= or spool=",
    PeerKind.SUBSCRIBER: "a plain Subscriber cannot read a spooled Publisher: give the "
                         "Subscriber durable= or history=",
    PeerKind.SPOOL_PULLER: "a spooled Puller cannot take work from a plain Pusher: give the "
                           "Pusher spool=",
    PeerKind.SPOOL_SUBSCRIBER: "a durable Subscriber cannot read a plain Publisher: give the "
                               "Publisher spool=",
}
"""Why a receiver skips a sender of its service (docs/spool.md: they do not interoperate)."""


def checked_service(service: object) -> Service:
    """A constructor's ``service=`` argument as a Service; ConfigError if it is not one."""
    try:
        return Service.of(service)
    except DiscoveryError as exc:
        raise ConfigError(str(exc)) from None


def attach(sock: DiscoverableSocket, service: Service) -> SocketDiscovery:
    """Start discovery for a socket at the end of its constructor (owner thread).

    A socket whose ``_kind`` is not a plain ZeroMQ kind (a spool link's ROUTER) names its
    discovery kind in ``_peer_kind``.
    """
    kind = getattr(sock, "_peer_kind", None)
    if not isinstance(kind, PeerKind):
        kind = _KINDS[sock._kind]
    found = SocketDiscovery(sock, sock.node.discovery, service, kind)
    found.start()
    return found


def liveness_options(options: SocketOptions, discovery: DiscoveryOptions) -> SocketOptions:
    """Socket options with discovery's heartbeats, unless the socket chose its own."""
    if options.heartbeat_interval > 0 or discovery.heartbeat_interval == 0:
        return options
    return replace(options, heartbeat_interval=discovery.heartbeat_interval,
                   heartbeat_timeout=discovery.heartbeat_timeout)


class SocketDiscovery:
    """``sock.discovery``: a socket's service, its announcement or its peers, and peer events."""

    def __init__(
        self, sock: DiscoverableSocket, discovery: Discovery, service: Service, kind: PeerKind
    ) -> None:
        self.service = service.name
        self.kind = kind
        self._sock = sock
        self._discovery = discovery
        self._service = service
        self._registration: Registration | None = None
        self._watch: Watch | None = None
        self._table: PeerTable | None = None
        self._handlers: list[PeerHandler] = []
        self._events: deque[PeerEvent] = deque(maxlen=_EVENTS_KEPT)
        self._undelivered: deque[PeerEvent] = deque()
        self._fd: int | None = None
        self._armed = False
        self._closed = False
        self._mismatched: dict[str, PeerInfo] = {}
        self._links_up: dict[str, bool] = {}

    @property
    def sends(self) -> bool:
        return self.kind.sends

    # -- start (owner thread, end of the socket's constructor)
    def start(self) -> None:
        self._discovery.start()
        if self.sends:
            self._announce()
        else:
            self._browse()

    def _announce(self) -> None:
        sock = self._sock
        opts = self._discovery.options
        interfaces = self._discovery.interfaces
        if not any(ep.startswith("tcp://") for ep in sock.endpoints):
            if opts.interfaces:
                self._bind_each(interfaces)
            else:
                self._bind("tcp://*:*" if opts.ipv6 else "tcp://0.0.0.0:*")
        bound: dict[str, tuple[int, tuple[str, ...]]] = {}
        for itf in interfaces:
            where = announced_on(itf, sock.endpoints)
            if where is not None:
                bound[itf.name] = where
        if not interfaces:
            _log.info("discovery.not_announced service=%s endpoints=%s: no mDNS here; receivers "
                      "need these endpoints as static peers", self.service,
                      ",".join(sock.endpoints))
            return
        if not bound:
            _log.warning("discovery.not_announced service=%s endpoints=%s: no chosen interface "
                         "reaches them", self.service, ",".join(sock.endpoints))
            return
        security = sock.node.security
        ann = Announcement(
            service=self.service, kind=self.kind, node_id=sock.node.id,
            node_name=sock.node.name, stream=sock.stream, topics=self._service.topics,
            fingerprint=security.fingerprint if security is not None else "",
        )
        self._registration = self._discovery.announce(ann, bound)

    def _bind_each(self, interfaces: list[Interface]) -> None:
        """Bind every address of the chosen interfaces, all on one port (the OS picks it)."""
        addresses = [a for itf in interfaces for a in itf.announced()]
        if not addresses:
            raise DiscoveryError("the chosen interfaces have no address to bind")
        port = 0
        for addr in addresses:
            host = f"[{addr}]" if ":" in addr else addr
            real = self._bind(f"tcp://{host}:{port or '*'}")
            hp = host_port(real)
            if hp is not None:
                port = hp[1]

    def _family(self, endpoint: str) -> None:
        """IPv6 on for IPv6 and wildcard endpoints only: an IPv4 address bound by a socket
        with IPv6 on becomes ``::ffff:a.b.c.d``, which IPv4 peers cannot reach."""
        host = endpoint[len("tcp://"):].rpartition(":")[0]
        v6 = self._discovery.options.ipv6 and (host.startswith("[") or host == "*")
        with contextlib.suppress(zmq.ZMQError):
            self._sock._live().setsockopt(zmq.IPV6, int(v6))

    def _bind(self, endpoint: str) -> str:
        self._family(endpoint)
        return self._sock.bind(endpoint)

    def _browse(self) -> None:
        self._table = PeerTable(self._discovery.options.forget_after)
        mon = self._sock._monitor
        if mon is not None:
            self._fd = int(mon.getsockopt(zmq.FD))
        self._watch = Watch(self.service, self.kind.partner, self._found, self._lost, self._tick,
                            mismatch=self._mismatch)
        self._discovery.add_watch(self._watch)
        # ZeroMQ's descriptor signals only new activity after a read found the monitor empty
        self._sock._count_peers()
        self._arm()

    # -- the discovery loop's side
    def _found(self, info: PeerInfo) -> None:
        table = self._table
        if table is None or self._closed:
            return
        actions, events = table.offer(info, time.monotonic())
        if actions or events:
            self._post(actions, events)

    def _mismatch(self, info: PeerInfo) -> None:
        """A sender of the service that this socket cannot talk to: skipped, with a warning."""
        if self._closed or info.instance in self._mismatched:
            return
        if len(self._mismatched) >= _EVENTS_KEPT:  # bounded: a peer restarting for ever
            _log.debug("discovery.skipped service=%s instance=%r kind=%s", self.service,
                       info.instance, info.kind.value)
            return
        self._mismatched[info.instance] = info
        _log.warning("discovery.skipped service=%s instance=%r kind=%s: not connected, %s",
                     self.service, info.instance, info.kind.value, _MISMATCH[self.kind])

    def _lost(self, instance: str, reason: str) -> None:
        table = self._table
        if table is None or self._closed:
            return
        actions, events = table.withdraw(instance, reason, time.monotonic())
        if actions or events:
            self._post(actions, events)

    def _tick(self, now: float) -> None:
        table = self._table
        if table is None or self._closed or not table.waiting():
            return
        actions = table.expire(now)
        if actions:
            self._post(actions, [])

    def _post(self, actions: list[Action], events: list[PeerEvent]) -> None:
        def apply() -> None:
            for action in actions:
                endpoint = action.endpoint
                try:
                    if isinstance(action, Connect):
                        self._family(endpoint)
                        if action.peer is not None:
                            self._expect_key(action.peer)
                        self._sock.connect(endpoint)
                    else:
                        self._sock.disconnect(endpoint)
                except PeermqError as exc:
                    _log.debug("discovery.action_failed action=%s endpoint=%s error=%s",
                               type(action).__name__, endpoint, exc)
            self._queue(events)
            self._deliver()

        self._sock.call_soon(apply)

    def _expect_key(self, peer: PeerInfo) -> None:
        """With security on: the key pinned for this peer (its TXT fingerprint only selects)."""
        security = self._sock.node.security
        if security is not None:
            security.expect_found(peer.endpoint, (peer.instance, peer.node_name, peer.node_id),
                                  peer.fingerprint)

    def _arm(self) -> None:
        """Watch the monitor's descriptor from the loop; wake the owner when it has news."""
        fd = self._fd
        loop = self._discovery._loop
        if fd is None or loop is None or self._closed:
            return

        def ready() -> None:
            with contextlib.suppress(ValueError, OSError):
                loop.remove_reader(fd)
            self._armed = False
            self._sock.call_soon(self._drain)

        def arm() -> None:
            if self._closed or self._armed:
                return
            self._armed = True
            loop.add_reader(fd, ready)

        with contextlib.suppress(RuntimeError):  # the node's discovery closed meanwhile
            loop.call_soon_threadsafe(arm)

    def _drain(self) -> None:
        """Owner thread: read the monitor (peer counts and our hook), then watch it again."""
        self._sock._count_peers()
        self._deliver()
        self._arm()

    # -- the owner's side
    def on_monitor(self, event: int, endpoint: str) -> None:
        """Called by the socket for each monitor event it reads (owner thread)."""
        if event == zmq.EVENT_HANDSHAKE_SUCCEEDED:
            self._link(endpoint, True)
        elif event == zmq.EVENT_DISCONNECTED:
            self._link(endpoint, False)

    def on_link(self, endpoint: str, up: bool) -> None:
        """A spool link to ``endpoint`` came up (HELLO) or went down (owner thread).

        A link's owner learns that its connection closed at once, before discovery has read
        the sender's mDNS goodbye, which went out just before: a link down is reported after
        ``_GOODBYE_GRACE`` (if it is still down then), so that a clean close says ``goodbye``
        and a crash ``disconnected``, as with plain sockets, whose monitor discovery reads.
        """
        self._links_up[endpoint] = up
        if up:
            self._link(endpoint, True)
            return

        def report() -> None:
            if self._links_up.get(endpoint) is False:
                del self._links_up[endpoint]  # only live links stay: endpoints come and go
                self._link(endpoint, False)

        loop = self._discovery._loop
        if loop is None:  # discovery closed: nothing can say goodbye any more
            report()
            return
        try:
            loop.call_soon_threadsafe(loop.call_later, _GOODBYE_GRACE, self._sock.call_soon,
                                      report)
        except RuntimeError:  # closed meanwhile
            report()

    def _link(self, endpoint: str, up: bool) -> None:
        table = self._table
        if table is None:
            return
        now = time.monotonic()
        self._queue(table.link_up(endpoint, now) if up else table.link_down(endpoint, now))
        # the owner may read the monitor itself (Puller.peers, wait_for_peers): deliver now
        self._deliver()

    def _queue(self, events: list[PeerEvent]) -> None:
        for ev in events:
            _log.info("peer.%s service=%s instance=%r endpoint=%s reason=%s", ev.kind.value,
                      ev.peer.service, ev.peer.instance, ev.peer.endpoint, ev.reason)
        self._undelivered.extend(events)

    def _deliver(self) -> None:
        while self._undelivered:
            ev = self._undelivered.popleft()
            self._events.append(ev)
            for handler in list(self._handlers):
                try:
                    handler(ev)
                except Exception:
                    _log.exception("peer handler failed")

    # -- public
    @property
    def instance(self) -> str | None:
        """A sender's DNS-SD instance name once announced (renamed after a clash), else None."""
        reg = self._registration
        return reg.name if reg is not None and reg.announced.is_set() else None

    @property
    def announced(self) -> bool:
        reg = self._registration
        return reg is not None and reg.announced.is_set()

    def peers(self) -> list[PeerInfo]:
        """Receivers: the discovered peers connected now."""
        return [] if self._table is None else self._table.connected()

    def skipped(self) -> list[PeerInfo]:
        """Receivers: senders of the service it cannot talk to (plain vs spooled), not connected."""
        return list(self._mismatched.values())

    def known(self) -> list[tuple[PeerInfo, str]]:
        """Receivers: every discovered peer with its state (dialing, up, down)."""
        return [] if self._table is None else self._table.known()

    def on_peer(self, handler: PeerHandler) -> None:
        """Call ``handler(event)`` for each peer joined or left, on the socket's thread."""
        if not callable(handler):
            raise DiscoveryError("on_peer needs a callable")
        self._handlers.append(handler)

    def events(self, timeout: float | None = None) -> Iterator[PeerEvent]:
        """Peer events as they come, until ``timeout`` seconds pass without one (None: never).

        Runs the socket's posted work while it waits: call it on the socket's own thread.
        """
        end = None if timeout is None else time.monotonic() + timeout
        while True:
            if self._events:
                end = None if timeout is None else time.monotonic() + timeout
                yield self._events.popleft()
                continue
            left = 0.2 if end is None else min(0.2, end - time.monotonic())
            if self._closed or left <= 0:
                return
            select.select([self._sock._wake_r], [], [], left)
            self._sock._run_inbox()

    async def aevents(self, timeout: float | None = None) -> AsyncIterator[PeerEvent]:
        """``events()`` for asyncio sockets (polls the socket's posted work every 50 ms)."""
        end = None if timeout is None else time.monotonic() + timeout
        while True:
            if self._events:
                end = None if timeout is None else time.monotonic() + timeout
                yield self._events.popleft()
                continue
            if self._closed or (end is not None and time.monotonic() >= end):
                return
            if self._sock._inbox:
                self._sock._run_inbox()
                continue
            await asyncio.sleep(0.05)

    def close(self) -> None:
        """Owner thread, before the socket closes: goodbyes, or stop watching."""
        if self._closed:
            return
        self._closed = True
        if self._registration is not None:
            self._discovery.withdraw(self._registration, _FIRST_GOODBYE_WAIT)
        if self._watch is not None:
            self._discovery.remove_watch(self._watch)
        loop, fd = self._discovery._loop, self._fd
        if loop is not None and fd is not None and not loop.is_closed():
            done = threading.Event()

            def unwatch() -> None:
                with contextlib.suppress(ValueError, OSError):
                    loop.remove_reader(fd)
                done.set()

            try:
                loop.call_soon_threadsafe(unwatch)
            except RuntimeError:  # the loop closed meanwhile: nothing watches any more
                return
            # the descriptor closes with the monitor right after this: stop watching it first
            if threading.current_thread() is not self._discovery._thread:
                done.wait(2.0)

