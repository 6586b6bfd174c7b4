"""Peers a receiving socket found, and the bookkeeping that links them (sans-I/O).

A :class:`PeerTable` belongs to one discovering socket. It is told what discovery found
(``offer``) and lost (``withdraw``), and what the socket's monitor saw on each endpoint
(``link_up`` / ``link_down``). It answers with what to do (connect or disconnect an endpoint)
and what to tell the user (:class:`PeerEvent`). One endpoint per peer and one peer per endpoint:
two peers never share a connection, and a peer is never connected twice, which is what keeps a
subscriber from receiving each message twice.
"""

from __future__ import annotations

import enum
import threading
from dataclasses import dataclass, field

from .txt import PeerKind

__all__ = [
    "Action",
    "Connect",
    "Disconnect",
    "PeerEvent",
    "PeerEventKind",
    "PeerInfo",
    "PeerSource",
    "PeerTable",
]


class PeerSource(enum.Enum):
    """Where a peer was learned from."""

    MDNS = "mdns"
    """Announced with DNS-SD over multicast DNS."""
    PROBE = "probe"
    """Seen probing for its name (RFC 6762 section 8.1), before it may announce: a hint."""
    STATIC = "static"
    """Listed in the static peers (an option, ``PEERMQ_PEERS`` or a peers file)."""


@dataclass(frozen=True, slots=True)
class PeerInfo:
    """A remote socket found by discovery."""

    service: str
    kind: PeerKind
    endpoint: str
    """Where this socket connects to it (one address chosen among those announced)."""
    instance: str
    """DNS-SD instance name, or ``static <endpoint>`` for a static peer."""
    source: PeerSource
    node_id: str = ""
    """Empty for a static peer (its identity is not known before it is connected)."""
    node_name: str = ""
    stream: int = 0
    topics: tuple[str, ...] = ()
    addresses: tuple[str, ...] = ()
    """Every address the peer announced on the interface it was seen on."""
    port: int = 0
    interface: str = ""
    """The local interface it was seen on (empty for a static peer)."""
    fingerprint: str = ""
    protocol: int = 0

    def as_dict(self) -> dict[str, object]:
        """Plain values (for JSON)."""
        return {
            "service": self.service,
            "kind": self.kind.value,
            "instance": self.instance,
            "node_id": self.node_id,
            "node_name": self.node_name,
            "stream": self.stream,
            "endpoint": self.endpoint,
            "addresses": list(self.addresses),
            "port": self.port,
            "interface": self.interface,
            "topics": list(self.topics),
            "source": self.source.value,
            "fingerprint": self.fingerprint,
            "protocol": self.protocol,
        }


class PeerEventKind(enum.Enum):
    JOINED = "joined"
    """Connected (the ZeroMQ handshake succeeded), first time or again."""
    LEFT = "left"
    """Said goodbye, or its connection broke (crash, cable, silence past the heartbeat timeout)."""


@dataclass(frozen=True, slots=True)
class PeerEvent:
    kind: PeerEventKind
    peer: PeerInfo
    reason: str
    """``connected``, ``reconnected``, ``goodbye``, ``disconnected``, ``replaced``, ``moved``."""
    time: float
    """Monotonic seconds (``time.monotonic()``) when it was noticed."""


@dataclass(frozen=True, slots=True)
class Connect:
    endpoint: str
    peer: PeerInfo | None = None


@dataclass(frozen=True, slots=True)
class Disconnect:
    endpoint: str


Action = Connect | Disconnect


class _State(enum.Enum):
    DIALING = "dialing"
    UP = "up"
    DOWN = "down"


@dataclass
class _Entry:
    info: PeerInfo
    state: _State
    since: float
    """When it entered its state: a peer not UP for ``forget_after`` is dropped."""
    joined_before: bool = False


@dataclass
class PeerTable:
    """The peers of one discovering socket. Thread-safe: discovery and the socket's owner call it.

    ``forget_after``: a peer that is not connected (never was, or lost its connection) for this
    many seconds is disconnected and dropped, so that a dead peer whose records linger in mDNS
    caches (python-zeroconf keeps a PTR for many minutes) is not redialled for ever, and an
    address reused by someone else is not connected to on its behalf. Static peers are kept.
    """

    forget_after: float
    _by_key: dict[str, _Entry] = field(default_factory=dict)
    _by_endpoint: dict[str, str] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def offer(self, info: PeerInfo, now: float) -> tuple[list[Action], list[PeerEvent]]:
        """Discovery found ``info`` (new, refreshed or moved)."""
        with self._lock:
            actions: list[Action] = []
            events: list[PeerEvent] = []
            entry = self._by_key.get(info.instance)
            if entry is not None and entry.info.endpoint == info.endpoint:
                if info.source is PeerSource.PROBE and entry.info.source is not PeerSource.PROBE:
                    return actions, events  # a re-probe says nothing new about a known peer
                entry.info = info
                return actions, events
            if entry is not None:
                # same instance, new endpoint: it restarted elsewhere, or chose another address
                self._drop(entry, actions, events, "moved", now)
            other_key = self._by_endpoint.get(info.endpoint)
            if other_key is not None:
                # its endpoint was someone else's: that one is gone and the connection we have
                # (or are retrying) now reaches this peer
                other = self._by_key.pop(other_key)
                if other.state is _State.UP:
                    events.append(PeerEvent(PeerEventKind.LEFT, other.info, "replaced", now))
                    events.append(PeerEvent(PeerEventKind.JOINED, info, "connected", now))
                self._by_key[info.instance] = _Entry(info, other.state, now,
                                                    other.state is _State.UP)
                self._by_endpoint[info.endpoint] = info.instance
                return actions, events
            self._by_key[info.instance] = _Entry(info, _State.DIALING, now)
            self._by_endpoint[info.endpoint] = info.instance
            actions.append(Connect(info.endpoint, info))
            return actions, events

    def withdraw(
        self, instance: str, reason: str, now: float
    ) -> tuple[list[Action], list[PeerEvent]]:
        """Discovery lost ``instance`` (goodbye, expired record, removed static peer)."""
        with self._lock:
            actions: list[Action] = []
            events: list[PeerEvent] = []
            entry = self._by_key.get(instance)
            if entry is not None:
                self._drop(entry, actions, events, reason, now)
            return actions, events

    def _drop(
        self, entry: _Entry, actions: list[Action], events: list[PeerEvent], reason: str,
        now: float,
    ) -> None:
        del self._by_key[entry.info.instance]
        if self._by_endpoint.get(entry.info.endpoint) == entry.info.instance:
            del self._by_endpoint[entry.info.endpoint]
            actions.append(Disconnect(entry.info.endpoint))
        if entry.state is _State.UP:
            events.append(PeerEvent(PeerEventKind.LEFT, entry.info, reason, now))

    def link_up(self, endpoint: str, now: float) -> list[PeerEvent]:
        """The socket's monitor saw a handshake succeed on ``endpoint``."""
        with self._lock:
            entry = self._entry_at(endpoint)
            if entry is None or entry.state is _State.UP:
                return []
            reason = "reconnected" if entry.joined_before else "connected"
            entry.state, entry.since, entry.joined_before = _State.UP, now, True
            return [PeerEvent(PeerEventKind.JOINED, entry.info, reason, now)]

    def link_down(self, endpoint: str, now: float) -> list[PeerEvent]:
        """The socket's monitor saw the connection on ``endpoint`` close."""
        with self._lock:
            entry = self._entry_at(endpoint)
            if entry is None or entry.state is not _State.UP:
                return []
            entry.state, entry.since = _State.DOWN, now
            return [PeerEvent(PeerEventKind.LEFT, entry.info, "disconnected", now)]

    def expire(self, now: float) -> list[Action]:
        """Drop the peers that have not been connected for ``forget_after`` seconds."""
        with self._lock:
            actions: list[Action] = []
            events: list[PeerEvent] = []
            for entry in list(self._by_key.values()):
                if (entry.state is not _State.UP and entry.info.source is not PeerSource.STATIC
                        and now - entry.since >= self.forget_after):
                    self._drop(entry, actions, events, "forgotten", now)
            return actions

    def _entry_at(self, endpoint: str) -> _Entry | None:
        key = self._by_endpoint.get(endpoint)
        return None if key is None else self._by_key.get(key)

    def connected(self) -> list[PeerInfo]:
        """The peers connected now."""
        with self._lock:
            return [e.info for e in self._by_key.values() if e.state is _State.UP]

    def known(self) -> list[tuple[PeerInfo, str]]:
        """Every peer with its state (``dialing``, ``up``, ``down``)."""
        with self._lock:
            return [(e.info, e.state.value) for e in self._by_key.values()]

    def waiting(self) -> bool:
        """Whether some peer may be dropped by ``expire`` later."""
        with self._lock:
            return any(e.state is not _State.UP and e.info.source is not PeerSource.STATIC
                       for e in self._by_key.values())

    def clear(self) -> list[str]:
        """Forget everything; returns the endpoints to disconnect."""
        with self._lock:
            endpoints = list(self._by_endpoint)
            self._by_key.clear()
            self._by_endpoint.clear()
            return endpoints

