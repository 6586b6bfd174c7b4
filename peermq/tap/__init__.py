"""Watching a live system: observe what nodes send, filter it, count it and record it.

``Tap`` connects to the mirrors of nodes (each node has one; see docs/tap.md) and yields
events; ``TapFilter``, ``TapStats``, ``Template`` and ``Recorder`` are what ``peermq tap``
builds on, usable on their own.
"""

from __future__ import annotations

from .core import KnownNode, TapCore
from .events import (
    Event,
    LeaveReason,
    NodeFound,
    NodeJoined,
    NodeLeft,
    NodeRefused,
    NodeStatus,
    SocketStatus,
    TapGap,
    TapMessage,
)
from .filters import HeaderTest, TapFilter, parse_header_test
from .format import Template, hexdump, payload_bytes, value_text
from .observer import Tap
from .record import Recorder, RecordingError, RecordingInfo, read_messages, summarize
from .stats import NodeRow, TapStats, TopicRow
from .where import Expression

__all__ = [
    "Event",
    "Expression",
    "HeaderTest",
    "KnownNode",
    "LeaveReason",
    "NodeFound",
    "NodeJoined",
    "NodeLeft",
    "NodeRefused",
    "NodeRow",
    "NodeStatus",
    "Recorder",
    "RecordingError",
    "RecordingInfo",
    "SocketStatus",
    "Tap",
    "TapCore",
    "TapFilter",
    "TapGap",
    "TapMessage",
    "TapStats",
    "Template",
    "TopicRow",
    "hexdump",
    "parse_header_test",
    "payload_bytes",
    "read_messages",
    "summarize",
    "value_text",
]
