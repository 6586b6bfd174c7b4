"""peermq: brokerless peer-to-peer messaging over ZeroMQ."""

from __future__ import annotations

import logging

from ._version import __version__
from .config import (
    AckMode,
    DiscoveryOptions,
    Fsync,
    HeaderMatch,
    History,
    MirrorOptions,
    OnFull,
    SecurityOptions,
    SocketOptions,
    SpoolOptions,
    TrustPolicy,
)
from .discovery import PeerEvent, PeerEventKind, PeerInfo, Service
from .errors import (
    ClosedError,
    ConfigError,
    DiscoveryError,
    EncodeError,
    PeerError,
    PeermqError,
    SecurityError,
    SendTimeoutError,
    SpoolError,
    SpoolFullError,
    SpoolLockedError,
    TopicError,
    WireError,
)
from .message import Delivery, Gap, Message, SocketStats
from .node import Node
from .sockets import Publisher, Puller, Pusher, Subscriber
from .topics import topic_matches

__all__ = [
    "AckMode",
    "ClosedError",
    "ConfigError",
    "Delivery",
    "DiscoveryError",
    "DiscoveryOptions",
    "EncodeError",
    "Fsync",
    "Gap",
    "HeaderMatch",
    "History",
    "Message",
    "MirrorOptions",
    "Node",
    "OnFull",
    "PeerError",
    "PeerEvent",
    "PeerEventKind",
    "PeerInfo",
    "PeermqError",
    "Publisher",
    "Puller",
    "Pusher",
    "SecurityError",
    "SecurityOptions",
    "SendTimeoutError",
    "Service",
    "SocketOptions",
    "SocketStats",
    "SpoolError",
    "SpoolFullError",
    "SpoolLockedError",
    "SpoolOptions",
    "Subscriber",
    "TopicError",
    "TrustPolicy",
    "WireError",
    "__version__",
    "topic_matches",
]

logging.getLogger(__name__).addHandler(logging.NullHandler())
