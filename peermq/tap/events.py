"""What a tap reports: messages seen, gaps, and nodes that join, report and leave."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass

from .._mirror import SocketStatus

__all__ = [
    "Event",
    "LeaveReason",
    "NodeFound",
    "NodeJoined",
    "NodeLeft",
    "NodeRefused",
    "NodeStatus",
    "SocketStatus",
    "TapGap",
    "TapMessage",
]


@dataclass(frozen=True, slots=True)
class TapMessage:
    """One message a node sent, as a tap saw it on that node's mirror."""

    received: float
    """The tap's wall clock when the copy arrived, seconds since the epoch."""
    topic: str
    data: object
    headers: Mapping[str, str]
    node: str
    """Id of the sending node."""
    stream: int
    """Which socket of that node sent it."""
    seq: int
    sent: float
    """The sender's wall clock at send time."""
    size: int
    """Bytes on the wire: the frame, or for a batch its share of the batch frame."""
    name: str = ""
    """The sending node's name ("" until its first status frame arrives)."""
    kind: str = ""
    """``pub`` or ``push`` ("" while unknown)."""
    service: str = ""


@dataclass(frozen=True, slots=True)
class TapGap:
    """Messages of one sender that the tap never saw: ``first`` .. ``first + lost - 1``.

    The sender dropped them at a full queue, or the mirror could not keep up (then the node's
    status counts them in ``mirror_lost``).
    """

    received: float
    topic: str
    node: str
    stream: int
    first: int
    lost: int
    name: str = ""
    kind: str = ""


@dataclass(frozen=True, slots=True)
class NodeJoined:
    """A node's mirror greeted the tap: from now on its messages are seen."""

    received: float
    node: str
    name: str
    host: str
    pid: int
    sockets: tuple[SocketStatus, ...]


@dataclass(frozen=True, slots=True)
class NodeFound:
    """Discovery found a node's mirror (the tap connects; NodeJoined follows once it answers)."""

    received: float
    node: str
    """"" for a static peer (its id comes with its first status)."""
    name: str
    endpoint: str
    source: str
    """``mdns`` or ``static``."""


@dataclass(frozen=True, slots=True)
class NodeRefused:
    """A node's mirror and this tap could not agree on security: the tap gets nothing there.

    Reported once per endpoint, then at most once a minute (``SecurityOptions.report_interval``)
    while it lasts; a secure tap tries again, backing off, and reads its trust store anew.
    """

    received: float
    endpoint: str
    reason: str
    """One sentence: why, and what to do."""
    node: str = ""
    """The node's id and name when discovery found it ("" for a ``connect`` endpoint)."""
    name: str = ""


class LeaveReason(enum.Enum):
    CLOSED = "closed"
    """The node closed its mirror and said goodbye."""
    SILENT = "silent"
    """Nothing came from the node for several status intervals (crashed, or cut off)."""
    GONE = "gone"
    """Discovery reported the node gone."""


@dataclass(frozen=True, slots=True)
class NodeLeft:
    received: float
    node: str
    name: str
    reason: LeaveReason


@dataclass(frozen=True, slots=True)
class NodeStatus:
    """A node's periodic report: its sending sockets' counters, drops included."""

    received: float
    node: str
    name: str
    sockets: tuple[SocketStatus, ...]

    @property
    def dropped(self) -> int:
        """Messages the node's senders report lost (full queues, subscribers' gap reports)."""
        return sum(s.dropped for s in self.sockets)

    @property
    def mirror_lost(self) -> int:
        """Copies the node's mirror could not take: the taps miss those (seen as gaps)."""
        return sum(s.mirror_lost for s in self.sockets)


Event = TapMessage | TapGap | NodeFound | NodeJoined | NodeLeft | NodeRefused | NodeStatus
