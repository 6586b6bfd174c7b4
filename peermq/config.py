"""Frozen, validated option groups. Times are float seconds, sizes are bytes."""

from __future__ import annotations

import enum
import math
import os
from dataclasses import dataclass

from .errors import ConfigError

__all__ = [
    "AckMode",
    "DiscoveryOptions",
    "Fsync",
    "HeaderMatch",
    "History",
    "MirrorOptions",
    "OnFull",
    "SecurityOptions",
    "SocketOptions",
    "SpoolOptions",
    "TrustPolicy",
]


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
    """How long a sender's ``close()`` may spend delivering what is queued (then dropped).

    Receivers close at once: what they would deliver is only control traffic."""
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
    max_headers: int = 64
    """A received frame with more headers than this is dropped (counted as malformed)."""
    max_header_chars: int = 16_384
    """... or whose header keys and values hold more characters than this in all."""
    max_depth: int = 100
    """... or whose data nests lists and maps deeper than this (each message of a batch)."""
    max_bad_frames: int = 10
    """A peer connection that sends this many malformed frames is cut off (0: never)."""
    handshake_timeout: float = 10.0
    """A connection that has not finished the ZeroMQ handshake after this long is closed."""

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
        _check_count("max_headers", self.max_headers, minimum=0)
        _check_count("max_header_chars", self.max_header_chars, minimum=0)
        _check_count("max_depth", self.max_depth)
        _check_count("max_bad_frames", self.max_bad_frames, minimum=0)
        _check_seconds("handshake_timeout", self.handshake_timeout, allow_zero=False)


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


class Fsync(enum.Enum):
    """When a spool makes what it wrote durable (survive a power loss), not just written."""

    ALWAYS = "always"
    """``fdatasync`` before ``send`` returns: durable on return, one flush per call."""
    BATCH = "batch"
    """Group commit: a background flush covers every write made before it started; a message is
    reported durable (and delivered) only after its flush. Written before ``send`` returns."""
    NEVER = "never"
    """Never flush: written before ``send`` returns, so safe against the death of the process
    (kill -9) but not against a power loss or a kernel crash."""


class AckMode(enum.Enum):
    """How a spooled puller acknowledges what it received."""

    AUTO = "auto"
    """After the handler returns (``consume``), or when the next message is asked for."""
    EXPLICIT = "explicit"
    """Only by ``msg.ack()`` / ``msg.nack()``; unacknowledged ones come back after ack_timeout."""


def _check_bytes(name: str, value: int, *, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{name} must be an integer of at least {minimum} bytes, got {value!r}")


@dataclass(frozen=True, slots=True)
class SpoolOptions:
    """Durable delivery: the sender's spool, redelivery, and the puller's side of acks.

    A field marked *puller* matters to a puller, *sender* to a spooled pusher; the others to both.
    """

    fsync: Fsync = Fsync.BATCH
    """Durability policy; the strings "always", "batch" and "never" are accepted too."""
    segment_bytes: int = 64 * 1024 * 1024
    """A segment file is sealed and a new one started past this size; retention frees whole
    segments."""
    max_bytes: int = 1024 * 1024 * 1024
    """*sender*: bound on the spool's size on disk; past it ``send`` waits or raises."""
    full_timeout: float = 5.0
    """*sender*: how long ``send`` waits for acknowledgements to free room in a full spool (or a
    full disk) before it raises SpoolFullError; 0.0 raises at once."""
    ack_timeout: float = 30.0
    """*sender*: a delivery not acknowledged this long is delivered again (JetStream ack_wait)."""
    max_deliver: int = 10
    """*sender*: after this many deliveries without an ack, a message goes to the dead letters."""
    backoff: float = 0.1
    """*sender*: first redelivery delay; doubles with each delivery, up to ``backoff_max``, then
    is jittered down by up to a half."""
    backoff_max: float = 30.0
    max_age: float | None = None
    """*sender*: an unacknowledged message older than this goes to the dead letters (None: no
    limit)."""
    prefetch: int = 1024
    """*puller*: messages it may hold unacknowledged (its credit at each sender)."""
    checkpoint_interval: float = 1.0
    """How often acknowledgement state is written (atomically); acks newer than the last
    checkpoint are lost by a crash, which means redelivery, never loss."""
    dedup_window: float = 120.0
    """*puller*: how long it remembers the messages it handled, to drop redelivered copies."""
    dedup_max: int = 100_000
    """*puller*: ... and how many at most."""
    heartbeat_interval: float = 1.0
    """ZMTP heartbeats on spool links: a silent peer is dropped after ``heartbeat_timeout``
    and what it held is delivered again."""
    heartbeat_timeout: float = 5.0

    def __post_init__(self) -> None:
        fsync = self.fsync
        if isinstance(fsync, str):
            try:
                object.__setattr__(self, "fsync", Fsync(fsync))
            except ValueError:
                raise ConfigError(
                    f"fsync must be one of 'always', 'batch', 'never', got {fsync!r}"
                ) from None
        elif not isinstance(fsync, Fsync):
            raise ConfigError(f"fsync must be a Fsync, got {fsync!r}")
        _check_bytes("segment_bytes", self.segment_bytes, minimum=4096)
        _check_bytes("max_bytes", self.max_bytes, minimum=self.segment_bytes)
        _check_seconds("full_timeout", self.full_timeout)
        _check_seconds("ack_timeout", self.ack_timeout, allow_zero=False)
        _check_count("max_deliver", self.max_deliver)
        _check_seconds("backoff", self.backoff)
        _check_seconds("backoff_max", self.backoff_max)
        if self.backoff_max < self.backoff:
            raise ConfigError("backoff_max must be >= backoff")
        if self.max_age is not None:
            _check_seconds("max_age", self.max_age, allow_zero=False)
        _check_count("prefetch", self.prefetch)
        _check_seconds("checkpoint_interval", self.checkpoint_interval, allow_zero=False)
        _check_seconds("dedup_window", self.dedup_window)
        _check_count("dedup_max", self.dedup_max, minimum=0)
        _check_seconds("heartbeat_interval", self.heartbeat_interval, allow_zero=False)
        _check_seconds("heartbeat_timeout", self.heartbeat_timeout, allow_zero=False)
        if self.heartbeat_timeout < self.heartbeat_interval:
            raise ConfigError("heartbeat_timeout must be >= heartbeat_interval")


class TrustPolicy(enum.Enum):
    """Which peers' keys a secure node accepts. docs/security.md explains each."""

    STRICT = "strict"
    """Only keys in the trust store."""
    TOFU = "tofu"
    """Trust on first use: an unknown key is pinned to the address it came from; a later,
    different key from that address is refused with a loud warning."""
    OPEN = "open"
    """Any key (encrypted, not authenticated): for development only, warned about at start."""


@dataclass(frozen=True, slots=True)
class SecurityOptions:
    """CURVE encryption and authentication for every socket of a node.

    ``Node(security=SecurityOptions())`` switches it on; so does ``PEERMQ_SECURITY=curve`` for
    the default node and the CLI.
    """

    keys_dir: str | os.PathLike[str] | None = None
    """Where the key pair and the trust store live (None: ``~/.config/peermq``)."""
    policy: TrustPolicy = TrustPolicy.STRICT
    """Which peers' keys are accepted; the strings "strict", "tofu" and "open" are accepted too."""
    create_keys: bool = True
    """Make the node's key pair in ``keys_dir`` if there is none yet (as ``peermq keys init``)."""
    auth_backoff: float = 1.0
    """After a failed handshake, a connecting socket waits this long before it tries again ..."""
    auth_backoff_max: float = 30.0
    """... doubling with each failure in a row, up to this."""
    report_interval: float = 60.0
    """A given failure (a key mismatch at one address, a refused key) is logged at WARNING at
    most once per this many seconds; the rest are counted."""
    ban_time: float = 60.0
    """A peer cut off for sending malformed frames is refused at the handshake this long."""

    def __post_init__(self) -> None:
        if self.keys_dir is not None:
            if not isinstance(self.keys_dir, (str, os.PathLike)) or not os.fspath(self.keys_dir):
                raise ConfigError(f"keys_dir must be a path or None, got {self.keys_dir!r}")
            object.__setattr__(self, "keys_dir", os.fspath(self.keys_dir))
        policy = self.policy
        if isinstance(policy, str):
            try:
                object.__setattr__(self, "policy", TrustPolicy(policy))
            except ValueError:
                raise ConfigError(
                    f"policy must be one of 'strict', 'tofu', 'open', got {policy!r}"
                ) from None
        elif not isinstance(policy, TrustPolicy):
            raise ConfigError(f"policy must be a TrustPolicy, got {policy!r}")
        if not isinstance(self.create_keys, bool):
            raise ConfigError(f"create_keys must be a bool, got {self.create_keys!r}")
        _check_seconds("auth_backoff", self.auth_backoff, allow_zero=False)
        _check_seconds("auth_backoff_max", self.auth_backoff_max, allow_zero=False)
        if self.auth_backoff_max < self.auth_backoff:
            raise ConfigError("auth_backoff_max must be >= auth_backoff")
        _check_seconds("report_interval", self.report_interval)
        _check_seconds("ban_time", self.ban_time)


@dataclass(frozen=True, slots=True)
class DiscoveryOptions:
    """How a node finds peers by service name: mDNS (DNS-SD) and static peers. docs/discovery.md.

    ``Node(discovery=DiscoveryOptions(...))``; the default node reads ``PEERMQ_PEERS``,
    ``PEERMQ_PEERS_FILE``, ``PEERMQ_INTERFACES`` and ``PEERMQ_MDNS`` instead.
    """

    mdns: bool = True
    """Announce and browse with multicast DNS; False leaves the static peers only."""
    interfaces: tuple[str, ...] = ()
    """Interface names or addresses to use; empty: every multicast interface but loopback
    (the loopback alone if there is no other)."""
    ipv4: bool = True
    ipv6: bool = True
    peers: tuple[str, ...] = ()
    """Static peers, ``"service=tcp://host:port"``, connected to as if announced."""
    peers_file: str | None = None
    """A file of static peers (one ``service endpoint`` a line), read again when it changes."""
    probe_hints: bool = True
    """Connect to a sender as soon as it probes for its name, before it may announce it."""
    heartbeat_interval: float = 0.5
    heartbeat_timeout: float = 2.0
    """ZeroMQ heartbeats on the sockets that use discovery, unless their SocketOptions set
    some: a crashed or cut-off peer is noticed within interval + timeout. 0.0 turns them off."""
    forget_after: float = 30.0
    """A discovered peer not connected for this long is dropped (it comes back if announced)."""
    resolve_timeout: float = 3.0
    """How long to wait for a service's SRV, TXT and address records once it is seen."""
    file_poll_interval: float = 1.0
    """How often the peers file is checked for changes."""
    goodbye_wait: float = 0.5
    """How long closing a node may spend sending mDNS goodbyes (RFC 6762 section 10.1)."""

    def __post_init__(self) -> None:
        for name in ("mdns", "ipv4", "ipv6", "probe_hints"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{name} must be a bool, got {getattr(self, name)!r}")
        if not (self.ipv4 or self.ipv6):
            raise ConfigError("at least one of ipv4 and ipv6 must be on")
        for name in ("interfaces", "peers"):
            value = getattr(self, name)
            if isinstance(value, str) or not all(isinstance(v, str) and v for v in value):
                raise ConfigError(f"{name} must be a sequence of non-empty str, got {value!r}")
            object.__setattr__(self, name, tuple(value))
        from .discovery.static import parse_entry  # noqa: PLC0415 (config is below discovery)

        for entry in self.peers:
            parse_entry(entry)
        path = self.peers_file
        if path is not None:
            if hasattr(path, "__fspath__"):  # a pathlib.Path
                path = path.__fspath__()
            if not isinstance(path, str) or not path:
                raise ConfigError(f"peers_file must be a path or None, got {self.peers_file!r}")
            object.__setattr__(self, "peers_file", path)
        _check_seconds("heartbeat_interval", self.heartbeat_interval)
        _check_seconds("heartbeat_timeout", self.heartbeat_timeout)
        if self.heartbeat_interval and self.heartbeat_timeout < self.heartbeat_interval:
            raise ConfigError("heartbeat_timeout must be >= heartbeat_interval")
        _check_seconds("forget_after", self.forget_after, allow_zero=False)
        _check_seconds("resolve_timeout", self.resolve_timeout, allow_zero=False)
        _check_seconds("file_poll_interval", self.file_poll_interval, allow_zero=False)
        _check_seconds("goodbye_wait", self.goodbye_wait)


@dataclass(frozen=True, slots=True)
class History:
    """Where a new subscriber of a spooled publisher starts; give one field (none: only new
    messages). A durable subscriber uses it the first time its name is seen, and then goes on
    from where it was."""

    from_seq: int | None = None
    """From this spool seq on (or the oldest kept, if it is gone)."""
    since: float | None = None
    """From the first message sent at or after this wall-clock time (seconds since the epoch)."""
    last: int | None = None
    """The last ``last`` messages of each of its topics, then new ones."""

    def __post_init__(self) -> None:
        given = [f for f in ("from_seq", "since", "last") if getattr(self, f) is not None]
        if len(given) > 1:
            raise ConfigError(f"History takes one of from_seq, since, last; got {given}")
        if self.from_seq is not None:
            _check_count("from_seq", self.from_seq)
        if self.last is not None:
            _check_count("last", self.last)
        if self.since is not None:
            _check_seconds("since", self.since)

    def spec(self) -> tuple[str, float]:
        """As a spool link's HELLO carries it."""
        if self.from_seq is not None:
            return ("seq", float(self.from_seq))
        if self.since is not None:
            return ("time", float(self.since))
        if self.last is not None:
            return ("last", float(self.last))
        return ("new", 0.0)
