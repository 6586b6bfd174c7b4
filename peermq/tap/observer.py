"""The tap's I/O shell: one socket connected to the mirrors of the nodes it watches.

A secure node's mirror is a CURVE server: a tap made on a secure node connects as a CURVE
client, with the key pinned for each endpoint, as any socket does. A failed handshake (its key
not trusted there, or no security on one side) becomes a ``NodeRefused`` event, so that a tap
that gets nothing says why.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING

import zmq
from zmq.utils.monitor import parse_monitor_message

from .. import _mirror, _zmq
from .._base import Endpoints, SocketBase
from .._zmq import Kind
from ..config import SocketOptions
from ..errors import ClosedError, ConfigError, PeermqError
from ..node import Node
from ..topics import TopicFilter
from .core import KnownNode, TapCore
from .events import Event, NodeFound, NodeRefused

if TYPE_CHECKING:
    from ..discovery.peers import PeerInfo
    from ..discovery.service import Discovery, Watch

__all__ = ["Tap"]

_SLICE = 0.25
"""Longest single wait: bounds how late a silent node is noticed and how late stop() acts."""
_BURST = 4096
"""Frames taken in one go before events are handed out."""
_REPORT_INTERVAL = 60.0
"""Seconds between two reports of one endpoint's refusal (a secure tap: its security's)."""
_NOT_TRUSTED = ("the handshake failed: this tap's key is not trusted there (on that node: "
                "peermq keys trust NAME KEY, KEY being this tap's 'peermq keys show --public'), "
                "the node there does not hold the key pinned for it here, or it has no "
                "security on (peermq.security's warning says which)")
_NO_SECURITY = ("the handshake failed: the node there has security on (CURVE) and this tap "
                "has none; run the tap with PEERMQ_SECURITY=curve and a key that node trusts")


def _tap_options() -> SocketOptions:
    # a tap must keep up with many senders at once: deep queue, no drop of its own
    return SocketOptions(recv_hwm=200_000, linger=0.0)


class Tap(SocketBase):
    """Watches what nodes send, through their mirrors; used by one thread, like any socket.

    ``connect`` takes mirror endpoints (``node.mirror.endpoints``, or found by discovery).
    ``topics`` are patterns the mirrors filter on before anything is copied to this tap.
    """

    _kind = Kind.SUBSCRIBER

    def __init__(
        self,
        *,
        connect: Endpoints = None,
        topics: Iterable[str] = (">",),
        node: Node | None = None,
        options: SocketOptions | None = None,
        silence: float = 3.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if isinstance(topics, str):
            topics = (topics,)
        self._filter = TopicFilter(topics)
        if isinstance(silence, bool) or not isinstance(silence, (int, float)) or silence <= 0:
            raise ConfigError(f"silence must be a number of status intervals > 0, got {silence!r}")
        opts = options or _tap_options()
        self._tcore = TapCore(max_tracked_streams=opts.max_tracked_streams, silence=silence,
                              topics=self._filter)
        self._clock = clock
        self._next_expire = 0.0
        self._stopping = False
        self._pending: list[Event] = []
        self._watches: list[tuple[Discovery, Watch]] = []
        self._found: dict[str, PeerInfo] = {}
        """Mirrors discovery found, by DNS-SD instance."""
        self._refused_at: dict[str, float] = {}
        """Endpoints refused, and when that was last reported (monotonic seconds)."""
        self._handshakes: zmq.Socket[bytes] | None = None
        """Without security: this tap's own watch over failed handshakes."""
        super().__init__(node=node, options=opts, bind=None, connect=connect)

    def _setup(self) -> None:
        sock = self._live()
        if self._security is None:
            # a secure tap's handshakes are watched by its node's security (see _pause_endpoint)
            self._handshakes = _zmq.monitor_pair(
                self.node.context, sock, f"inproc://peermq-tap-monitor-{id(self)}",
                _zmq.HANDSHAKE_FAILED)
        for prefix in self._filter.prefixes:
            sock.send(b"\x01" + prefix)
        sock.send(b"\x01" + _mirror.BUNDLE)
        # last: a mirror that answers it has every subscription above in force
        sock.send(b"\x01" + _mirror.STATUS)

    @property
    def topics(self) -> tuple[str, ...]:
        return self._filter.patterns

    @property
    def nodes(self) -> dict[str, KnownNode]:
        """The nodes heard from, by node id."""
        return dict(self._tcore.nodes)

    @property
    def malformed(self) -> int:
        """Frames that could not be decoded (dropped)."""
        return self._tcore.malformed

    def node_gone(self, node: str) -> list[Event]:
        """Tell the tap that discovery saw ``node`` leave; returns the NodeLeft, if it was known."""
        return self._tcore.leave(node, self._clock())

    def discover(self, discovery: Discovery) -> None:
        """Also watch every mirror ``discovery`` finds (announced or static), as they come and go.

        Call it from the owning thread; the discovery thread only posts to this tap.
        """
        from .._mirror import MIRROR_SERVICE  # noqa: PLC0415 (discovery is optional)
        from ..discovery.service import Watch  # noqa: PLC0415
        from ..discovery.txt import PeerKind  # noqa: PLC0415

        def found(info: PeerInfo) -> None:  # on the discovery thread
            self.call_soon(lambda: self._mirror_found(info))

        def lost(instance: str, reason: str) -> None:  # on the discovery thread
            self.call_soon(lambda: self._mirror_lost(instance))

        discovery.start()
        watch = Watch(MIRROR_SERVICE, PeerKind.PUBLISHER, found, lost, probes=False)
        discovery.add_watch(watch)
        self._watches.append((discovery, watch))

    def _mirror_found(self, info: PeerInfo) -> None:
        old = self._found.get(info.instance)
        if old is not None and old.endpoint == info.endpoint:
            return
        if old is not None:
            self.disconnect(old.endpoint)
        self._found[info.instance] = info
        self._pending.append(NodeFound(self._clock(), info.node_id, info.node_name,
                                       info.endpoint, info.source.value))
        try:
            self._expect_key(info)
            self.connect(info.endpoint)
        except PeermqError as exc:  # no trusted key for it: nothing to connect with
            self._refused(info.endpoint, str(exc))

    def _expect_key(self, info: PeerInfo) -> None:
        """With security on: the key pinned for this mirror's node (its TXT ``fp=`` only
        selects a key already trusted, never brings one in)."""
        security = self._security
        if security is not None:
            security.expect_found(info.endpoint, (info.instance, info.node_name, info.node_id),
                                  info.fingerprint)

    def _pause_endpoint(self, endpoint: str) -> None:
        """The security thread saw a handshake with ``endpoint`` fail: say so, then back off."""
        super()._pause_endpoint(endpoint)
        self._refused(endpoint, _NOT_TRUSTED)

    def _refused(self, endpoint: str, reason: str) -> None:
        """A ``NodeRefused`` for ``endpoint``, unless one was reported lately."""
        now = time.monotonic()
        last = self._refused_at.get(endpoint)
        interval = (self._security.options.report_interval if self._security is not None
                    else _REPORT_INTERVAL)
        if last is not None and now - last < interval:
            return
        if len(self._refused_at) > 1024:  # bounded: many endpoints come and go by discovery
            self._refused_at.clear()
        self._refused_at[endpoint] = now
        info = next((i for i in self._found.values() if i.endpoint == endpoint), None)
        self._pending.append(NodeRefused(
            self._clock(), endpoint, reason, info.node_id if info else "",
            info.node_name if info else "",
        ))

    def _read_handshakes(self) -> None:
        mon = self._handshakes
        if mon is None:
            return
        while True:
            try:
                event = parse_monitor_message(mon.recv_multipart(zmq.NOBLOCK))
            except zmq.Again:
                return
            if int(event["event"]) & _zmq.HANDSHAKE_FAILED:
                self._refused(event["endpoint"].decode("utf-8", "replace"), _NO_SECURITY)

    def _mirror_lost(self, instance: str) -> None:
        info = self._found.pop(instance, None)
        if info is None:
            return
        self.disconnect(info.endpoint)
        if info.node_id:
            self._pending.extend(self.node_gone(info.node_id))

    def close(self) -> int:
        for discovery, watch in self._watches:
            discovery.remove_watch(watch)
        self._watches.clear()
        mon, self._handshakes = self._handshakes, None
        if mon is not None:
            if self._sock is not None:
                with contextlib.suppress(zmq.ZMQError):
                    self._sock.disable_monitor()
            mon.close(0)
        return super().close()

    def _take(self, sock: zmq.Socket[bytes]) -> list[Event]:
        accept, clock = self._tcore.accept, self._clock
        if self._handshakes is not None:
            self._read_handshakes()
        events, self._pending = self._pending, []
        for _ in range(_BURST):
            try:
                frame = sock.recv(zmq.NOBLOCK)
            except zmq.Again:
                break
            except zmq.ZMQError as exc:
                raise _zmq.translate(exc, "recv") from exc
            events.extend(accept(frame, clock()))
        now = clock()
        if now >= self._next_expire:
            self._next_expire = now + _SLICE
            events.extend(self._tcore.expire(now))
        return events

    def poll(self, timeout: float | None = None) -> list[Event]:
        """The events ready now, waiting up to ``timeout`` seconds for one (None: for ever).

        Returns ``[]`` when the time runs out.
        """
        if timeout is not None and (isinstance(timeout, bool) or timeout < 0):
            raise ConfigError(f"timeout must be None or >= 0 seconds, got {timeout!r}")
        end = None if timeout is None else time.monotonic() + timeout
        while True:
            sock = self._live()
            events = self._take(sock)
            if events:
                return events
            left = _zmq.deadline_left(end)
            if left == 0.0:
                return []
            wait = _SLICE if left is None else min(left, _SLICE)
            self._poll(sock, zmq.POLLIN, time.monotonic() + wait)

    def __iter__(self) -> Iterator[Event]:
        """Events until the tap is closed or ``stop()`` is called."""
        self._stopping = False
        while not self._stopping:
            try:
                events = self.poll(_SLICE)
            except ClosedError:
                return
            yield from events

    def stop(self) -> None:
        """End iteration after the current event (from a handler, or through call_soon)."""
        self._stopping = True

    def __enter__(self) -> Tap:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
