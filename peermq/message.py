"""What receivers hand to the user: messages, gap events and statistics."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import NamedTuple, Protocol

__all__ = ["NO_HEADERS", "Delivery", "Gap", "Message", "SocketStats"]

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


class _Settler(Protocol):
    def _settle(self, msg: Delivery, ack: bool, requeue: bool) -> None: ...


class Delivery(Message):
    """A message from a spooled sender, to acknowledge: ``ack()`` or ``nack(requeue=)``.

    A subclass of Message, so it is one (same fields, same tuple); only spooled pullers make
    it, which keeps the plain receive path a bare tuple. The spool's bookkeeping lives in
    instance attributes, not in the tuple. The first ``ack``/``nack`` settles it; later ones
    do nothing. A pickled Delivery comes back as a plain Message.
    """

    spool_id: str
    """Id of the sender's spool."""
    spool_seq: int
    """Position in the sender's spool: with ``spool_id``, what acks and deduplication use."""
    deliveries: int
    """1 for a first delivery, more when the sender delivered it again."""
    _settler: _Settler | None
    _crc: int
    _link: bytes

    @property
    def redelivered(self) -> bool:
        """True if the sender delivered it before (to this puller or another)."""
        return self.deliveries > 1

    @property
    def settled(self) -> bool:
        """True once acked or nacked."""
        return self._settler is None

    def ack(self) -> None:
        """Done with it: the sender forgets it, and this puller drops copies that come again."""
        settler = self._settler
        if settler is not None:
            settler._settle(self, True, False)

    def nack(self, requeue: bool = True) -> None:
        """Not done: deliver it again later (``requeue``), or send it to the dead letters."""
        settler = self._settler
        if settler is not None:
            settler._settle(self, False, requeue)

    def __reduce__(self) -> tuple[type[Message], tuple[object, ...]]:
        return Message, tuple(self)


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
    duplicates: int = 0
    """Spooled puller: redelivered copies of handled messages, dropped (and acked again)."""
