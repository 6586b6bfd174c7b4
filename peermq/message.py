"""What receivers hand to the user: messages, gap events and statistics."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import NamedTuple

__all__ = ["NO_HEADERS", "Gap", "Message", "SocketStats"]

NO_HEADERS: Mapping[str, str] = MappingProxyType({})


class Message(NamedTuple):
    """One received message. Immutable; cheap to make (a tuple, not a frozen dataclass)."""

    topic: str
    data: object
    """The decoded payload: bytes stay bytes, msgpack values come back as Python values."""
    headers: Mapping[str, str]
    sender: str
    """Node id of the sending process."""
    stream: int
    """Which socket of that node sent it; sequence numbers count per (sender, stream, topic)."""
    seq: int
    timestamp: float
    """Sender's wall clock at send time, seconds since the epoch."""

    @property
    def msg_id(self) -> bytes:
        """Stable id of this message: receivers deduplicate on it."""
        return f"{self.sender}/{self.stream}/{self.seq}/{self.topic}".encode()


@dataclass(frozen=True, slots=True)
class Gap:
    """Messages a receiver never got: sequence numbers ``first`` .. ``first + lost - 1``."""

    sender: str
    stream: int
    topic: str
    first: int
    lost: int


@dataclass(frozen=True, slots=True)
class SocketStats:
    """A snapshot of one socket's counters."""

    sent: int = 0
    """Messages handed to ZeroMQ."""
    received: int = 0
    """Messages handed to the user."""
    dropped: int = 0
    """Messages lost on the way: by this sender at a full queue, or reported by subscribers."""
    dropped_by_peer: Mapping[str, int] = field(default_factory=dict)
    """Publisher: messages each subscriber reported missing, by subscriber token."""
    gaps: int = 0
    """Receiver: messages missing according to sequence numbers."""
    malformed: int = 0
    """Receiver: frames dropped because they could not be decoded."""
    filtered: int = 0
    """Receiver: messages discarded by the exact topic or header filter."""
    peers: int = 0
    """Subscribers (publisher), publishers (subscriber), or connected peers (push/pull)."""
