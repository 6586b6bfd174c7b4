"""peermq: brokerless peer-to-peer messaging over ZeroMQ."""

from __future__ import annotations

import logging

from ._version import __version__
from .config import (
    HeaderMatch,
    MirrorOptions,
    OnFull,
    SecurityOptions,
    SocketOptions,
    TrustPolicy,
)
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
    TopicError,
    WireError,
)
from .message import Gap, Message, SocketStats
from .node import Node
from .sockets import Publisher, Puller, Pusher, Subscriber
from .topics import topic_matches

__all__ = [
    "ClosedError",
    "ConfigError",
    "DiscoveryError",
    "EncodeError",
    "Gap",
    "HeaderMatch",
    "Message",
    "MirrorOptions",
    "Node",
    "OnFull",
    "PeerError",
    "PeermqError",
    "Publisher",
    "Puller",
    "Pusher",
    "SecurityError",
    "SecurityOptions",
    "SendTimeoutError",
    "SocketOptions",
    "SocketStats",
    "SpoolError",
    "SpoolFullError",
    "Subscriber",
    "TopicError",
    "TrustPolicy",
    "WireError",
    "__version__",
    "topic_matches",
]

logging.getLogger(__name__).addHandler(logging.NullHandler())
