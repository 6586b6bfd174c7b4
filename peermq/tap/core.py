"""Sans-I/O heart of a tap: mirror frames in, events out (no sockets, no clock of its own)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from .. import _mirror, wire
from ..errors import WireError
from ..message import NO_HEADERS
from ..topics import TopicFilter
from .events import (
    Event,
    LeaveReason,
    NodeJoined,
    NodeLeft,
    NodeStatus,
    SocketStatus,
    TapGap,
    TapMessage,
)

__all__ = ["KnownNode", "TapCore"]

_log = logging.getLogger(__name__)


@dataclass
class KnownNode:
    """What a tap knows of one node from its status frames."""

    node: str
    name: str = ""
    host: str = ""
    pid: int = 0
    interval: float = 1.0
    last_heard: float = 0.0
    sockets: dict[int, SocketStatus] = field(default_factory=dict)
    joined: bool = False
    """True once its mirror greeted us (or reported)."""


class TapCore:
    """Decodes mirror frames, tracks sequence numbers for gaps and nodes for joins and leaves.

    ``silence`` intervals without a frame from a node make it leave (``LeaveReason.SILENT``);
    a node that never sent a status is forgotten the same way, silently.
    """

    def __init__(self, *, max_tracked_streams: int = 65_536, silence: float = 3.0,
                 min_silence: float = 2.0, topics: TopicFilter | None = None) -> None:
        self.max_tracked_streams = max_tracked_streams
        self.topics = topics
        """Only these topics (exactly: a mirror filters by prefix, and bundles not at all)."""
        self.silence = silence
        self.min_silence = min_silence
        self.nodes: dict[str, KnownNode] = {}
        self._next: dict[tuple[str, int, bytes], int] = {}
        self._topics: dict[bytes, str | None] = {}
        self.frames = 0
        self.malformed = 0
        self._warned = False

    def _bad(self, what: str, exc: Exception) -> None:
        self.malformed += 1
        level = logging.DEBUG if self._warned else logging.WARNING
        self._warned = True
        _log.log(level, "tap.frame_dropped reason=%s error=%s", what, exc)

    def _known(self, node: str, now: float) -> KnownNode:
        known = self.nodes.get(node)
        if known is None:
            known = self.nodes[node] = KnownNode(node)
        known.last_heard = now
        return known

    def accept(self, frame: bytes, now: float) -> list[Event]:
        """The events one frame from a mirror yields, ``now`` being the tap's wall clock."""
        self.frames += 1
        if frame[:1] == b"\xff":
            if frame.startswith(_mirror.BUNDLE):
                return self._bundle(frame, now)
            return self._control(frame, now)
        return self._data(frame, now)

    def _bundle(self, frame: bytes, now: float) -> list[Event]:
        events: list[Event] = []
        view = memoryview(frame)
        at, end = len(_mirror.BUNDLE), len(frame)
        while at < end:
            n = int.from_bytes(view[at:at + 4], "big")
            if n == 0 or at + 4 + n > end:
                self._bad("bundle", WireError("a bundle's length runs past its end"))
                break
            events += self._data(bytes(view[at + 4:at + 4 + n]), now)
            at += 4 + n
        return events

    def _data(self, frame: bytes, now: float) -> list[Event]:
        if frame[:1] == b"\xff":
            self._bad("bundle", WireError("a control frame inside a bundle"))
            return []
        try:
            raw, env = wire.decode_data(frame)
        except WireError as exc:
            self._bad("decode", exc)
            return []
        kind, node, stream, seq, sent, headers, payload = env
        if raw in self._topics:
            topic = self._topics[raw]
        else:
            try:
                topic = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                self._bad("topic", exc)
                return []
            if self.topics is not None and not self.topics.matches(topic):
                topic = None
            if len(self._topics) >= 4096:
                self._topics.clear()
            self._topics[raw] = topic
        if topic is None:
            return []  # a topic this tap did not ask for
        known = self._known(node, now)
        sock = known.sockets.get(stream)
        skind, service = (sock.kind, sock.service) if sock is not None else ("", "")
        count = 1 if kind == wire.SINGLE else len(payload)
        events: list[Event] = []
        key = (node, stream, raw)
        expected = self._next.get(key)
        if expected is None and len(self._next) >= self.max_tracked_streams:
            del self._next[next(iter(self._next))]
        self._next[key] = seq + count
        if expected is not None and seq > expected:
            events.append(TapGap(now, topic, node, stream, expected, seq - expected,
                                 known.name, skind))
        hdrs = headers if headers else NO_HEADERS
        if kind == wire.SINGLE:
            events.append(TapMessage(now, topic, payload, hdrs, node, stream, seq, float(sent),
                                     len(frame), known.name, skind, service))
        elif count:
            size = len(frame) // count
            events.extend(
                TapMessage(now, topic, data, hdrs, node, stream, seq + i, float(sent), size,
                           known.name, skind, service)
                for i, data in enumerate(payload)
            )
        return events

    def _control(self, frame: bytes, now: float) -> list[Event]:
        if not frame.startswith(_mirror.STATUS):
            return []  # another kind of control frame: not for taps
        try:
            st = _mirror.decode_status(frame)
        except WireError as exc:
            self._bad("status", exc)
            return []
        known = self._known(st.node, now)
        known.name, known.host, known.pid, known.interval = st.name, st.host, st.pid, st.interval
        known.sockets = {s.stream: s for s in st.sockets}
        events: list[Event] = []
        if st.state == _mirror.BYE:
            self._forget(st.node)
            if known.joined:
                events.append(NodeLeft(now, st.node, st.name, LeaveReason.CLOSED))
            return events
        if not known.joined:
            known.joined = True
            events.append(NodeJoined(now, st.node, st.name, st.host, st.pid, st.sockets))
        events.append(NodeStatus(now, st.node, st.name, st.sockets))
        return events

    def _forget(self, node: str) -> None:
        self.nodes.pop(node, None)
        for key in [k for k in self._next if k[0] == node]:
            del self._next[key]

    def expire(self, now: float) -> list[Event]:
        """Nodes silent for too long leave; call this every so often."""
        events: list[Event] = []
        for known in list(self.nodes.values()):
            limit = max(self.silence * known.interval, self.min_silence)
            if now - known.last_heard > limit:
                self._forget(known.node)
                if known.joined:
                    events.append(NodeLeft(now, known.node, known.name, LeaveReason.SILENT))
        return events

    def leave(self, node: str, now: float) -> list[Event]:
        """Discovery says ``node`` is gone."""
        known = self.nodes.get(node)
        if known is None:
            return []
        self._forget(node)
        return [NodeLeft(now, node, known.name, LeaveReason.GONE)] if known.joined else []
