"""``--stats``: rates, bandwidth, gaps and reported drops per topic and per node (sans-I/O)."""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

from .events import Event, NodeJoined, NodeLeft, NodeStatus, SocketStatus, TapGap, TapMessage

__all__ = ["NodeRow", "TapStats", "TopicRow"]


class _Meter:
    """Messages and bytes per whole second, kept for a window of seconds."""

    __slots__ = ("buckets", "first", "window")

    def __init__(self, window: float, now: float) -> None:
        self.window = window
        self.first = now
        self.buckets: deque[list[int]] = deque()  # [second, messages, bytes]

    def add(self, now: float, size: int) -> None:
        sec = math.floor(now)
        buckets = self.buckets
        if buckets and buckets[-1][0] == sec:
            last = buckets[-1]
            last[1] += 1
            last[2] += size
        else:
            buckets.append([sec, 1, size])
            while buckets[0][0] <= sec - self.window:
                buckets.popleft()

    def rates(self, now: float) -> tuple[float, float]:
        """(messages/s, bytes/s) over the last ``window`` seconds (or since the first one)."""
        start = now - self.window
        msgs = sum(b[1] for b in self.buckets if b[0] + 1 > start)
        size = sum(b[2] for b in self.buckets if b[0] + 1 > start)
        span = max(min(self.window, now - self.first), 1.0)
        return msgs / span, size / span


@dataclass
class TopicRow:
    node: str
    name: str
    topic: str
    messages: int = 0
    bytes: int = 0
    gaps: int = 0
    """Messages missing by sequence number."""
    last_seq: int = 0
    rate: float = 0.0
    """Messages per second over the window."""
    bandwidth: float = 0.0
    """Bytes per second over the window."""


@dataclass
class NodeRow:
    node: str
    name: str
    state: str = "up"
    """``up``, or why it left: ``closed``, ``silent``, ``gone``."""
    messages: int = 0
    bytes: int = 0
    gaps: int = 0
    rate: float = 0.0
    bandwidth: float = 0.0
    sockets: tuple[SocketStatus, ...] = ()
    sent: int = 0
    """What the node's senders report having sent (all topics, tapped or not)."""
    dropped: int = 0
    """Drops its senders report: full queues, and subscribers' gap reports."""
    mirror_lost: int = 0
    """Copies its mirror could not take (this tap missed them)."""
    kinds: dict[str, int] = field(default_factory=dict)


class TapStats:
    """Feed it every event; ask for rows when drawing the table."""

    def __init__(self, window: float = 5.0) -> None:
        self.window = window
        self._topics: dict[tuple[str, str], TopicRow] = {}
        self._topic_meters: dict[tuple[str, str], _Meter] = {}
        self._nodes: dict[str, NodeRow] = {}
        self._node_meters: dict[str, _Meter] = {}
        self.messages = 0
        self.gaps = 0

    def _node(self, node: str, name: str, now: float) -> NodeRow:
        row = self._nodes.get(node)
        if row is None:
            row = self._nodes[node] = NodeRow(node, name)
            self._node_meters[node] = _Meter(self.window, now)
        if name:
            row.name = name
        return row

    def _topic(self, node: str, name: str, topic: str, now: float) -> TopicRow:
        key = (node, topic)
        row = self._topics.get(key)
        if row is None:
            row = self._topics[key] = TopicRow(node, name, topic)
            self._topic_meters[key] = _Meter(self.window, now)
        if name:
            row.name = name
        return row

    def add(self, event: Event) -> None:
        now = event.received
        if isinstance(event, TapMessage):
            self.messages += 1
            trow = self._topic(event.node, event.name, event.topic, now)
            trow.messages += 1
            trow.bytes += event.size
            trow.last_seq = event.seq
            self._topic_meters[(event.node, event.topic)].add(now, event.size)
            nrow = self._node(event.node, event.name, now)
            nrow.messages += 1
            nrow.bytes += event.size
            self._node_meters[event.node].add(now, event.size)
        elif isinstance(event, TapGap):
            self.gaps += event.lost
            self._topic(event.node, event.name, event.topic, now).gaps += event.lost
            self._node(event.node, event.name, now).gaps += event.lost
        elif isinstance(event, (NodeJoined, NodeStatus)):
            nrow = self._node(event.node, event.name, now)
            nrow.state = "up"
            nrow.sockets = event.sockets
            nrow.sent = sum(s.sent for s in event.sockets)
            nrow.dropped = sum(s.dropped for s in event.sockets)
            nrow.mirror_lost = sum(s.mirror_lost for s in event.sockets)
            kinds: dict[str, int] = {}
            for s in event.sockets:
                kinds[s.kind] = kinds.get(s.kind, 0) + 1
            nrow.kinds = kinds
        elif isinstance(event, NodeLeft):
            self._node(event.node, event.name, now).state = event.reason.value

    def topics(self, now: float) -> list[TopicRow]:
        """One row per (node, topic), busiest first."""
        for key, row in self._topics.items():
            row.rate, row.bandwidth = self._topic_meters[key].rates(now)
        return sorted(self._topics.values(), key=lambda r: (-r.rate, r.topic, r.name, r.node))

    def nodes(self, now: float) -> list[NodeRow]:
        for key, row in self._nodes.items():
            row.rate, row.bandwidth = self._node_meters[key].rates(now)
        return sorted(self._nodes.values(), key=lambda r: (r.name, r.node))
