"""Frozen, validated option groups. Times are float seconds, sizes are bytes."""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

from .errors import ConfigError

__all__ = ["HeaderMatch", "MirrorOptions", "OnFull", "SocketOptions"]


class OnFull(enum.Enum):
    """What a sender does when a peer's queue is full."""

    DROP = "drop"
    """Drop the message for the full peer only, and count it (ZeroMQ PUB, made visible)."""
    BLOCK = "block"
    """Wait up to ``send_timeout`` for room, then raise :class:`SendTimeoutError` (0.0: at once)."""


class HeaderMatch(enum.Enum):
    """How a subscriber's header filter combines its pairs."""

    ALL = "all"
    ANY = "any"


def _check_seconds(name: str, value: float, *, allow_zero: bool = True) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{name} must be a number of seconds, got {value!r}")
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ConfigError(f"{name} must be finite and {bound} seconds, got {value!r}")


def _check_count(name: str, value: int, *, minimum: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{name} must be an integer >= {minimum}, got {value!r}")


@dataclass(frozen=True, slots=True)
class SocketOptions:
    """Options shared by every socket kind. The defaults are safe where ZeroMQ's are not."""

    send_hwm: int = 10_000
    """Messages (or batches) queued per peer before ``on_full`` applies."""
    recv_hwm: int = 10_000
    """Messages (or batches) queued on receipt before ZeroMQ stops reading from a peer."""
    linger: float = 1.0
    """How long ``close()`` may spend delivering what is queued; the rest is dropped and counted."""
    max_message_size: int = 8 * 1024 * 1024
    """Largest frame accepted from a peer; ZeroMQ disconnects a peer that sends a larger one."""
    reconnect_interval: float = 0.1
    reconnect_interval_max: float = 5.0
    """Reconnects back off exponentially from ``reconnect_interval`` up to this cap."""
    heartbeat_interval: float = 0.0
    """ZMTP heartbeats; 0.0 is off. Off by default: see docs/design.md, heartbeats lose messages."""
    heartbeat_timeout: float = 0.0
    """Peer is dropped when silent this long (0.0: three heartbeat intervals)."""
    send_timeout: float = 5.0
    """With ``OnFull.BLOCK``: how long ``send`` waits for room before raising."""
    on_full: OnFull | None = None
    """None: the socket kind's default, DROP for publishers (counted), BLOCK for pushers."""
    batch_max_bytes: int = 256 * 1024
    """``send_many`` closes a batch frame at this many bytes (or max_message_size if smaller)."""
    batch_max_count: int = 4096
    """... or this many messages."""
    max_topic_length: int = 1024
    max_tracked_streams: int = 65_536
    """Receivers keep sequence state for at most this many (sender, topic) pairs."""

    def __post_init__(self) -> None:
        _check_count("send_hwm", self.send_hwm)
        _check_count("recv_hwm", self.recv_hwm)
        _check_seconds("linger", self.linger)
        _check_count("max_message_size", self.max_message_size, minimum=64)
        _check_seconds("reconnect_interval", self.reconnect_interval, allow_zero=False)
        _check_seconds("reconnect_interval_max", self.reconnect_interval_max, allow_zero=False)
        if self.reconnect_interval_max < self.reconnect_interval:
            raise ConfigError("reconnect_interval_max must be >= reconnect_interval")
        _check_seconds("heartbeat_interval", self.heartbeat_interval)
        _check_seconds("heartbeat_timeout", self.heartbeat_timeout)
        _check_seconds("send_timeout", self.send_timeout)
        if self.on_full is not None and not isinstance(self.on_full, OnFull):
            raise ConfigError(f"on_full must be an OnFull, got {self.on_full!r}")
        _check_count("batch_max_bytes", self.batch_max_bytes, minimum=64)
        _check_count("batch_max_count", self.batch_max_count)
        _check_count("max_topic_length", self.max_topic_length)
        _check_count("max_tracked_streams", self.max_tracked_streams)


@dataclass(frozen=True, slots=True)
class MirrorOptions:
    """A node's tap mirror: where it listens, and what it may hold. See docs/tap.md.

    The mirror starts with the node's first sending socket and copies what that node sends
    only while a ``peermq tap`` is attached.
    """

    bind: tuple[str, ...] = ("tcp://127.0.0.1:*",)
    """Endpoints the mirror listens on; loopback by default, so only this host can tap."""
    queue: int = 10_000
    """Frames a sending socket may hand to the mirror thread before copies are dropped (counted)."""
    send_hwm: int = 100_000
    """Frames queued towards the taps before the mirror stops sending and waits."""
    status_interval: float = 1.0
    """Seconds between the status frames (counters, drops) sent while a tap is attached."""
    drain_interval: float = 0.005
    """Seconds between two passes of the mirror thread while a tap is attached."""
    linger: float = 0.2
    """How long closing may spend delivering the last copies and the goodbye to taps."""

    def __post_init__(self) -> None:
        if isinstance(self.bind, str) or not isinstance(self.bind, tuple) or not self.bind:
            raise ConfigError(f"bind must be a non-empty tuple of endpoints, got {self.bind!r}")
        for ep in self.bind:
            if not isinstance(ep, str) or not ep.startswith(("tcp://", "ipc://", "inproc://")):
                raise ConfigError(
                    f"mirror endpoint must start with tcp://, ipc:// or inproc://, got {ep!r}"
                )
        _check_count("queue", self.queue)
        _check_count("send_hwm", self.send_hwm)
        _check_seconds("status_interval", self.status_interval, allow_zero=False)
        _check_seconds("drain_interval", self.drain_interval, allow_zero=False)
        _check_seconds("linger", self.linger)
