"""What both ends of a spool link share: the ROUTER socket setup, peers, HELLO, liveness.

A spool link is a pair of ROUTER sockets (see peermq/spool/link.py for the frames). The side
that connects names the peer with ``CONNECT_ROUTING_ID`` (one alias per endpoint), so both
sides can address the other; the side that binds learns each peer's routing id from its
first message. A peer is gone when a send finds no route to it (``ROUTER_MANDATORY``), which
is how a closed connection is confirmed: after the monitor reports one, the bound peers are
probed with PING for a moment (a file descriptor alone cannot say which peer it was: a new
connection may already have its number); a connected endpoint's peer is matched by it, as
its pipe outlives the connection. ZMTP heartbeats find a silent peer, and TCP_USER_TIMEOUT
one that stops acknowledging what it is sent.
"""

from __future__ import annotations

import dataclasses
import enum
import logging
import time
from dataclasses import dataclass
from typing import cast

import zmq
from zmq.utils.monitor import parse_monitor_message

from ._base import SocketBase
from ._zmq import Kind
from .config import SpoolOptions
from .errors import WireError
from .spool import link

__all__ = ["LINK_KIND", "LinkPeers", "Peer", "setup_router"]

_log = logging.getLogger("peermq.spool")


class _LinkKind(enum.Enum):
    SPOOL_LINK = zmq.ROUTER


LINK_KIND = cast(Kind, _LinkKind.SPOOL_LINK)
"""SocketBase makes its socket from ``_kind.value``; _zmq.Kind has no ROUTER (yet), and
_zmq.configure applies only the options common to every kind to an unknown one."""

HELLO_RETRY = 0.5
"""How often a connecting side says HELLO again to an endpoint that has not answered."""
PROBE_FOR = 0.5
"""After a connection closed: how long bound peers are probed to find which one it was."""


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))


def setup_router(sock: zmq.Socket[bytes], identity: bytes, opts: SpoolOptions) -> None:
    """ROUTER options of a spool link: our routing id, errors for unroutable sends, heartbeats."""
    sock.setsockopt(zmq.ROUTING_ID, identity)
    sock.setsockopt(zmq.ROUTER_MANDATORY, 1)
    # IMMEDIATE stays off: a HELLO sent at connect() waits in the pipe for the connection, so
    # a link comes up without the connecting side's owner calling anything
    sock.setsockopt(zmq.HEARTBEAT_IVL, _ms(opts.heartbeat_interval))
    sock.setsockopt(zmq.HEARTBEAT_TIMEOUT, _ms(opts.heartbeat_timeout))
    sock.setsockopt(zmq.HEARTBEAT_TTL, _ms(opts.heartbeat_timeout))
    # libzmq writes a PING only once its output buffer is empty: deliveries stuck in the
    # buffer of a silently cut TCP connection held it back for good (the partition tests),
    # and the peer was never found gone. TCP_USER_TIMEOUT closes a connection whose sent
    # bytes go unacknowledged this long, PING or not.
    sock.setsockopt(zmq.TCP_MAXRT, _ms(opts.heartbeat_timeout))


@dataclass(slots=True)
class Peer:
    rid: bytes
    hello: link.Hello
    fd: int


class LinkPeers:
    """The peers of one link socket and the endpoints it connects to. Owner thread only."""

    def __init__(self, owner: SocketBase, hello: link.Hello, want_role: str,
                 want_mode: str | None = None) -> None:
        self.owner = owner
        self.hello = hello
        self.want_role = want_role
        self.want_mode = want_mode
        """A sender's: the receivers it serves (QUEUE: pullers, STREAM: subscribers)."""
        self.peers: dict[bytes, Peer] = {}
        self.aliases: dict[bytes, str] = {}
        self._fds: dict[int, bytes] = {}
        self._next_hello = 0.0
        self._probe_until = 0.0
        self.malformed = 0
        self._warned = False

    def alias_for(self, endpoint: str) -> bytes:
        alias = b"ep:" + endpoint.encode()
        self.aliases[alias] = endpoint
        return alias

    def forget_endpoint(self, endpoint: str) -> bytes | None:
        for alias, ep in list(self.aliases.items()):
            if ep == endpoint:
                del self.aliases[alias]
                return alias
        return None

    def bad(self, what: str, exc: Exception) -> None:
        self.malformed += 1
        if not self._warned:
            self._warned = True
            _log.warning("link.frame_dropped reason=%s error=%s (further ones at DEBUG)",
                         what, exc)
        else:
            _log.debug("link.frame_dropped reason=%s error=%s", what, exc)

    def on_hello(self, frames: list[zmq.Frame]) -> tuple[Peer | None, Peer | None]:
        """A HELLO arrived: returns (new peer, replaced peer). The caller ``answer``s it once
        it is ready for the peer (a sender: once its consumer exists, so that the peer, told
        it is linked, misses nothing it is sent after)."""
        rid = frames[0].bytes
        try:
            h = link.decode_hello(frames[2].bytes if len(frames) > 2 else b"")
        except WireError as exc:
            self.bad("hello", exc)
            return None, None
        if h.role != self.want_role or (self.want_mode and h.mode != self.want_mode):
            if not self._warned:
                self._warned = True
                _log.warning(
                    "link.refused peer=%s role=%s mode=%s: a spooled Pusher serves Pullers, a "
                    "spooled Publisher Subscribers", h.name, h.role, h.mode,
                )
            return None, None
        try:
            fd = int(frames[0].get(zmq.SRCFD))
        except (zmq.ZMQError, TypeError, ValueError):
            fd = -1
        old = self.peers.get(rid)
        peer = Peer(rid, h, fd)
        self.peers[rid] = peer
        if fd >= 0:
            self._fds[fd] = rid
        replaced = old if old is not None and old.hello.instance != h.instance else None
        if old is None or replaced is not None:
            _log.info("link.up peer=%s node=%s", h.name, h.node)
        return peer, replaced

    def answer(self, peer: Peer) -> None:
        """Reply to a peer's HELLO (not to a reply)."""
        if not peer.hello.reply:
            self.send_hello(peer.rid, reply=True)

    def send_hello(self, rid: bytes, *, reply: bool) -> bool:
        body = link.encode_hello(dataclasses.replace(self.hello, reply=reply))
        return self.send(rid, [link.HELLO, body]) is not None

    def send(self, rid: bytes, parts: list[bytes]) -> bool | None:
        """True: sent. False: the peer's queue is full. None: no route (the peer is gone)."""
        sock = self.owner._sock
        if sock is None:
            return None
        try:
            sock.send_multipart([rid, *parts], zmq.NOBLOCK, copy=False)
        except zmq.Again:
            return False
        except zmq.ZMQError as exc:
            if exc.errno == zmq.EHOSTUNREACH:
                return None
            raise
        return True

    def greet(self, now: float, *, force: bool = False, everyone: bool = False) -> None:
        """Say HELLO to connected endpoints that have no peer yet (or to all, ``everyone``)."""
        if not force and now < self._next_hello:
            return
        self._next_hello = now + HELLO_RETRY
        for alias in self.aliases:
            if everyone or alias not in self.peers:
                self.send_hello(alias, reply=False)

    def next_greeting(self) -> float | None:
        if any(a not in self.peers for a in self.aliases):
            return self._next_hello
        return None

    def drain_monitor(self, mon: zmq.Socket[bytes] | None) -> list[Peer]:
        """Read connection events; returns the peers whose connection closed."""
        gone: list[Peer] = []
        if mon is None:
            return gone
        handshake = False
        while True:
            try:
                parts = mon.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                break
            event = parse_monitor_message(parts)
            if event["event"] == zmq.EVENT_DISCONNECTED:
                rid = self._fds.get(int(event["value"]))
                if rid is not None and rid in self.aliases:
                    peer = self.drop(rid)
                    if peer is not None:
                        gone.append(peer)
                self._probe_until = time.monotonic() + PROBE_FOR
            elif event["event"] == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                handshake = True
        if handshake:
            # a new connection: to a new peer, perhaps one whose predecessor's HELLO was read
            # after its disconnection (a stale peer); HELLO again to all, it is idempotent
            self.greet(time.monotonic(), force=True, everyone=True)
        return gone

    def probe(self, now: float) -> list[Peer]:
        """For a moment after a connection closed: the bound peers it left unreachable."""
        if now >= self._probe_until:
            return []
        gone = []
        for rid in [r for r in self.peers if r not in self.aliases]:
            if self.send(rid, [link.PING]) is None:
                peer = self.drop(rid)
                if peer is not None:
                    gone.append(peer)
        return gone

    def probing(self) -> float | None:
        """Until when the link thread must look again (probes pending), or None."""
        return self._probe_until if self._probe_until > time.monotonic() else None

    def drop(self, rid: bytes) -> Peer | None:
        """Forget a peer found gone by a failed send."""
        peer = self.peers.pop(rid, None)
        if peer is not None:
            if self._fds.get(peer.fd) == rid:
                del self._fds[peer.fd]
            _log.info("link.down peer=%s node=%s (no route)", peer.hello.name, peer.hello.node)
        return peer


def identity(owner: SocketBase) -> bytes:
    """A routing id unique to this socket (node ids are random per process)."""
    return f"{owner.node.id}/{owner.stream}".encode()
