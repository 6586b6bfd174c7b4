"""Finding the peer connection that sends malformed frames, and cutting it off.

A receiver normally takes frames as bytes, which carry no sender. From the receive call after
its first malformed frame it *screens*: for a while (``SCREEN_TIME`` after the last bad frame)
its socket's receive also keeps the ZeroMQ frame, whose properties name the connection
(``SRCFD``, checked against ``Peer-Address``) and, under CURVE, the peer's key (``User-Id``);
they are read only when a frame turns out bad. A connection that sends ``max_bad_frames`` bad
frames while screened is cut off:

- one this socket connected to: ``disconnect(endpoint)``; it is not retried;
- one this socket accepted (ZeroMQ has no call for that): its TCP or IPC connection is shut
  down, which libzmq sees as the peer leaving; under CURVE its key is also refused at the
  handshake for ``SecurityOptions.ban_time``, so it cannot come straight back.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import time
import weakref
from collections.abc import Callable
from typing import Any, Protocol

import zmq

from .service import NodeSecurity, reported_endpoint

__all__ = ["SCREEN_TIME", "Screen"]

_log = logging.getLogger("peermq.security")

SCREEN_TIME = 30.0
"""Seconds a receiver keeps screening after its last malformed frame."""
_CHECK_EVERY = 4096


class Receiver(Protocol):
    _sock: zmq.Socket[bytes] | None
    _recv_raw: Callable[[int], bytes]
    _security: NodeSecurity | None
    _connects: set[str]

    def disconnect(self, endpoint: str) -> None: ...


class Screen:
    """One receiving socket's screening; ``on_malformed`` is its ReceiveCore's hook."""

    def __init__(self, owner: Receiver, limit: int, clock: Callable[[], float] = time.monotonic
                 ) -> None:
        self._owner = weakref.ref(owner)  # the socket holds this screen, not the reverse
        self.limit = limit
        self._clock = clock
        self._frame: zmq.Frame | None = None
        self._saved: Callable[[int], bytes] | None = None
        """The socket's own fast receive, while screening replaces it."""
        self._until = 0.0
        self._seen = 0
        self._counts: dict[tuple[int, int], int] = {}
        self._done: set[tuple[int, int]] = set()
        """Connections cut off already: their frames still queued are not blamed again."""
        self.cut = 0
        """Connections cut off so far."""

    def _sock(self) -> zmq.Socket[bytes] | None:
        owner = self._owner()
        return None if owner is None else owner._sock

    @property
    def screening(self) -> bool:
        return self._saved is not None

    def on_malformed(self) -> None:
        owner = self._owner()
        sock = None if owner is None else owner._sock
        if owner is None or sock is None:
            return
        self._until = self._clock() + SCREEN_TIME
        if self._saved is None:
            # from now on (and only now) every read keeps its ZeroMQ frame: the socket's
            # fast receive (what the shells call) and pyzmq's recv (what the rest calls)
            real = type(sock).recv.__get__(sock)

            def recv(flags: int = 0, copy: bool = True, track: bool = False) -> Any:
                frame = real(flags, copy=False, track=track)
                self._frame = frame
                self._seen += 1
                if self._seen % _CHECK_EVERY == 0 and self._clock() > self._until:
                    self.stop()
                return frame.bytes if copy else frame

            self._saved = owner._recv_raw
            owner._recv_raw = recv
            object.__setattr__(sock, "recv", recv)
            _log.debug("screen.on")
            return
        frame, self._frame = self._frame, None
        if frame is not None:
            self._blame(frame)

    def stop(self) -> None:
        owner = self._owner()
        if owner is not None and self._saved is not None:
            owner._recv_raw = self._saved
            if owner._sock is not None:
                owner._sock.__dict__.pop("recv", None)
        self._saved = None
        self._frame = None
        self._counts.clear()
        self._done.clear()
        _log.debug("screen.off")

    def _blame(self, frame: zmq.Frame) -> None:
        try:
            fd = int(frame.get(zmq.SRCFD))
        except zmq.ZMQError:
            return  # inproc: no connection to cut, and no stranger on the other end
        if fd < 0:
            return
        try:
            inode = os.fstat(fd).st_ino
        except OSError:
            return  # the connection is gone already
        source = (fd, inode)
        if source in self._done:
            return
        count = self._counts.get(source, 0) + 1
        if len(self._counts) > 1024:
            self._counts.clear()
        self._counts[source] = count
        if count >= self.limit:
            del self._counts[source]
            if len(self._done) > 1024:
                self._done.clear()
            self._done.add(source)
            self._cut(frame, fd, inode, count)

    def _cut(self, frame: zmq.Frame, fd: int, inode: int, count: int) -> None:
        address = _prop(frame, "Peer-Address")
        user = _prop(frame, "User-Id")
        try:
            dup = os.dup(fd)
        except OSError:
            return
        try:
            conn = socket.socket(fileno=dup)
        except OSError:
            os.close(dup)
            return
        with conn:
            if os.fstat(conn.fileno()).st_ino != inode:
                return  # the descriptor was reused for another connection: not this one
            peer = _peer(conn)
            if conn.family in (socket.AF_INET, socket.AF_INET6) and address and peer and \
                    not peer.startswith(f"tcp://{address}:") and \
                    not peer.startswith(f"tcp://[{address}]:"):
                return
            endpoint = self._connected_to(peer)
            if endpoint is not None:
                action = "disconnected"
            else:
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
                action = "closed"
        owner = self._owner()
        if owner is None:
            return
        if endpoint is not None:
            with contextlib.suppress(Exception):
                owner.disconnect(endpoint)
        sec = owner._security
        banned = ""
        if endpoint is None and sec is not None and user:
            sec.ban(key=user.encode())
            banned = f", key refused for {sec.options.ban_time:g}s"
        if sec is not None:
            sec.guard.stats.bad_peers += 1
        self.cut += 1
        _log.warning("peer.cut_off peer=%s malformed=%d action=%s%s: it keeps sending frames "
                     "that break the protocol or the limits", endpoint or peer or address,
                     count, action, banned)

    def _connected_to(self, peer: str | None) -> str | None:
        if not peer:
            return None
        owner = self._owner()
        for endpoint in owner._connects if owner is not None else ():
            if endpoint == peer or reported_endpoint(endpoint) == peer:
                return endpoint
        return None


def _prop(frame: zmq.Frame, name: str) -> str:
    try:
        return str(frame.get(name))
    except (zmq.ZMQError, UnicodeDecodeError):
        return ""


def _peer(conn: socket.socket) -> str | None:
    """The other end as an endpoint: ``tcp://host:port``, or ``ipc://path`` if it has one."""
    try:
        name = conn.getpeername()
    except OSError:
        return None
    if conn.family == socket.AF_INET:
        return f"tcp://{name[0]}:{name[1]}"
    if conn.family == socket.AF_INET6:
        return f"tcp://[{name[0]}]:{name[1]}"
    if isinstance(name, bytes):
        name = name.decode("utf-8", "replace")
    return f"ipc://{name}" if name else None
