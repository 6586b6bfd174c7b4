"""Sans-I/O codec: messages <-> ZeroMQ frames. docs/protocol.md describes the bytes.

A data frame is ``topic (UTF-8) 0x00 VERSION msgpack-array``; the topic comes first so that
ZeroMQ's prefix subscriptions filter at the publisher. The array is

- single: ``[0, node, stream, seq, time, headers|nil, data]``
- batch:  ``[1, node, stream, first_seq, time, headers|nil, [data, ...]]`` (seqs are consecutive)

Control frames start with 0xFF, a byte that UTF-8 topics never contain.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

import msgpack

from .errors import EncodeError, WireError
from .topics import check_topic

__all__ = [
    "BATCH",
    "CONTROL",
    "DEFAULT_LIMITS",
    "GAP",
    "MARKER",
    "SINGLE",
    "VERSION",
    "WELCOME",
    "Encoder",
    "Limits",
    "check_headers",
    "decode_data",
    "decode_gap",
    "decode_goodbye",
    "decode_welcome",
    "encode_gap",
    "encode_goodbye",
    "encode_welcome",
    "marker_subscription",
]

VERSION = 1
SINGLE = 0
BATCH = 1
CONTROL = 0xFF
WELCOME = b"\xffW"
"""Publisher -> subscriber, sent by ZeroMQ itself on every new connection (XPUB_WELCOME_MSG)."""
GAP = b"\xffG"
"""Subscriber -> publishers (upstream): messages of yours that I never got."""
MARKER = b"\xffS"
"""Subscription that a subscriber makes last: once the publisher sees it, the others are active."""

_HEAD = bytes([0, VERSION])
_CONTAINERS = frozenset((list, dict))
_MAX_TOPICS = 65_536


class Limits(NamedTuple):
    """What a receiver accepts beyond the frame size (which ZeroMQ enforces)."""

    max_topic: int = 1024
    """Bytes of the topic."""
    max_headers: int = 64
    max_header_chars: int = 16_384
    """Characters of all header keys and values."""
    max_depth: int = 100
    """Nesting of lists and maps in the data of one message."""


DEFAULT_LIMITS = Limits()

# msgpack bytes that open an array or a map. Data can nest deeper than a limit only if its frame
# has more of them than the limit, so a frame shorter than that is never walked, a longer one is
# counted in C, and only one that could break the limit is walked in Python.
_NOT_CONTAINER = bytes(
    b for b in range(256) if not (0x80 <= b <= 0x9F or 0xDC <= b <= 0xDF)
)


def _deeper_than(value: Any, limit: int) -> bool:
    """True if lists and maps nest more than ``limit`` levels in ``value`` (a list or dict)."""
    level = [value]
    depth = 1
    while level:
        if depth > limit:
            return True
        below: list[Any] = []
        for obj in level:
            items = obj.values() if type(obj) is dict else obj
            kinds = set(map(type, items))
            if list in kinds or dict in kinds:
                below.extend(x for x in items if type(x) is list or type(x) is dict)
        level = below
        depth += 1
    return False


def _too_deep(value: Any, packed: bytes, limit: int, others: int = 0) -> bool:
    """``_deeper_than`` for ``value`` packed in ``packed``, which holds ``others`` more arrays."""
    bound = limit + others
    return (
        len(packed) > bound
        and len(packed.translate(None, _NOT_CONTAINER)) > bound
        and _deeper_than(value, limit)
    )


def too_deep(payload: Any, frame: bytes, limit: int) -> bool:
    """True if a single message's ``payload`` (a list or dict) in ``frame`` nests too deep."""
    return _too_deep(payload, frame, limit, 1)


def _unpack(buf: bytes) -> Any:
    # unpackb bounds every declared length by the buffer's own size: no allocation bombs
    try:
        # map keys may be any hashable msgpack value (ints, too), as the encoder allows
        return msgpack.unpackb(buf, raw=False, strict_map_key=False, timestamp=0)
    except Exception as exc:  # msgpack raises ValueError, TypeError, its own errors, ...
        raise WireError(f"undecodable msgpack: {exc}") from exc


def check_headers(headers: Mapping[str, str] | None) -> dict[str, str] | None:
    """Validate user headers (``str -> str``) and return a plain dict, or None when empty."""
    if not headers:
        return None
    if not isinstance(headers, Mapping):
        raise EncodeError(f"headers must be a mapping of str to str, got {type(headers).__name__}")
    out = dict(headers)
    for key, value in out.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise EncodeError(f"header {key!r}: {value!r}: headers map str to str")
    return out


class Encoder:
    """Turns messages into frames for one sending socket; owns its per-topic sequence numbers."""

    __slots__ = (
        "_batch_static",
        "_pack",
        "_packer",
        "_single_static",
        "_topics",
        "limits",
        "max_count",
        "max_size",
        "max_topic",
        "node",
        "stream",
    )

    def __init__(
        self,
        node: str,
        stream: int,
        *,
        max_size: int,
        max_topic: int = 1024,
        max_count: int = 4096,
        limits: Limits = DEFAULT_LIMITS,
    ) -> None:
        self.limits = limits
        self.node = node
        self.stream = stream
        self.max_size = max_size
        self.max_topic = max_topic
        self.max_count = max_count
        self._packer = msgpack.Packer(use_bin_type=True, autoreset=True)
        self._pack = self._packer.pack
        pk = self._packer.pack
        self._single_static = b"\x97" + pk(SINGLE) + pk(node) + pk(stream)
        self._batch_static = b"\x97" + pk(BATCH) + pk(node) + pk(stream)
        self._topics: dict[str, list[Any]] = {}
        """topic -> [frame prefix, last sequence number]: one lookup per send."""

    def _new_entry(self, topic: str) -> list[Any]:
        raw = check_topic(topic, self.max_topic)
        if len(self._topics) >= _MAX_TOPICS:  # forget the oldest: its numbering restarts at 1
            del self._topics[next(iter(self._topics))]
        entry: list[Any] = [raw + _HEAD + self._single_static, 0]
        self._topics[topic] = entry
        return entry

    def encode(
        self, topic: str, data: object, headers: dict[str, str] | None, now: float
    ) -> bytes:
        """One message as one frame. Takes the next sequence number only if encoding succeeds."""
        entry = self._topics.get(topic)
        if entry is None:
            entry = self._new_entry(topic)
        seq = entry[1] + 1
        try:
            body = self._pack((seq, now, headers, data))
        except Exception as exc:
            raise EncodeError(f"data is not msgpack-serialisable: {exc}") from exc
        if headers or type(data) in _CONTAINERS:
            self._check_limits(headers, data, body)
        frame: bytes = entry[0] + body[1:]
        if len(frame) > self.max_size:
            raise EncodeError(
                f"message is {len(frame)} bytes, more than max_message_size={self.max_size}"
            )
        entry[1] = seq
        return frame

    def encode_batch(
        self, topic: str, items: Iterable[object], headers: dict[str, str] | None, now: float,
        max_bytes: int,
    ) -> list[tuple[bytes, int]]:
        """Many messages of one topic as few ``(frame, count)``; nothing if any item fails."""
        entry = self._topics.get(topic) or self._new_entry(topic)
        pk = self._packer.pack
        head = topic.encode() + _HEAD + self._batch_static
        items = items if isinstance(items, list) else list(items)
        try:
            packed = [pk(item) for item in items]
        except Exception as exc:
            raise EncodeError(f"data is not msgpack-serialisable: {exc}") from exc
        if headers:
            self._check_limits(headers, None, b"")
        for item, body in zip(items, packed, strict=True):
            if type(item) is list or type(item) is dict:
                self._check_limits(None, item, body)
        frames: list[tuple[bytes, int]] = []
        seq = entry[1]
        hdr = pk(headers)
        overhead = len(head) + 9 + 9 + len(hdr) + 5
        start = 0
        while start < len(packed):
            size = overhead
            end = start
            while end < len(packed) and end - start < self.max_count:
                if end > start and size + len(packed[end]) > max_bytes:
                    break
                size += len(packed[end])
                end += 1
            if size > self.max_size:
                raise EncodeError(
                    f"message is {size} bytes, more than max_message_size={self.max_size}"
                )
            frames.append((
                b"".join(
                    (
                        head,
                        pk(seq + 1),
                        pk(now),
                        hdr,
                        self._packer.pack_array_header(end - start),
                        *packed[start:end],
                    )
                ),
                end - start,
            ))
            seq += end - start
            start = end
        entry[1] = seq
        return frames

    def _check_limits(self, headers: dict[str, str] | None, data: object, packed: bytes) -> None:
        """Refuse to send what receivers with the same limits would drop as malformed."""
        limits = self.limits
        if headers:
            if len(headers) > limits.max_headers:
                raise EncodeError(f"{len(headers)} headers, more than the limit of "
                                  f"{limits.max_headers}")
            chars = sum(map(len, headers)) + sum(map(len, headers.values()))
            if chars > limits.max_header_chars:
                raise EncodeError(f"headers hold {chars} characters, more than the limit of "
                                  f"{limits.max_header_chars}")
        if (type(data) is list or type(data) is dict) and _too_deep(data, packed,
                                                                     limits.max_depth):
            raise EncodeError(f"data nests deeper than the limit of {limits.max_depth}")

    def rewind(self, topic: str, count: int) -> None:
        """Give back the last ``count`` sequence numbers of ``topic`` (frames not sent)."""
        self._topics[topic][1] -= count

    def last_seq(self, topic: str) -> int:
        entry = self._topics.get(topic)
        return entry[1] if entry else 0


def decode_data(frame: bytes, limits: Limits = DEFAULT_LIMITS) -> tuple[bytes, list[Any]]:
    """Split and check a data frame.

    Returns ``(topic bytes, [kind, node, stream, seq, time, headers, payload])``.

    Raises WireError for anything that is not a well-formed data frame of this version, or
    that breaks ``limits``.
    """
    i = frame.find(0)
    if i <= 0:
        raise WireError("not a data frame: no topic terminator")
    if i > limits.max_topic:
        raise WireError(f"topic is {i} bytes, more than the limit of {limits.max_topic}")
    if len(frame) < i + 3:
        raise WireError("truncated frame")
    if frame[i + 1] != VERSION:
        raise WireError(f"unsupported protocol version {frame[i + 1]} (this is {VERSION})")
    env = _unpack(frame[i + 2 :])
    if type(env) is not list or len(env) != 7:
        raise WireError("envelope is not a 7-element array")
    kind, node, stream, seq, ts, headers, payload = env
    if (
        type(node) is not str
        or type(stream) is not int
        or type(seq) is not int
        or seq < 1
        or type(ts) not in (float, int)
    ):
        raise WireError("envelope fields have the wrong types")
    if headers is not None:
        if type(headers) is not dict:
            raise WireError("headers are not a map")
        if len(headers) > limits.max_headers:
            raise WireError(f"{len(headers)} headers, more than the limit of {limits.max_headers}")
        for key, value in headers.items():
            if type(key) is not str or type(value) is not str:
                raise WireError("header keys and values must be strings")
        chars = sum(map(len, headers)) + sum(map(len, headers.values()))
        if chars > limits.max_header_chars:
            raise WireError(f"headers hold {chars} characters, more than the limit of "
                            f"{limits.max_header_chars}")
    depth = limits.max_depth
    if kind == BATCH:
        if type(payload) is not list:
            raise WireError("batch payload is not an array")
        depth += 1  # the batch's own array
    elif kind != SINGLE:
        raise WireError(f"unknown envelope kind {kind!r}")
    shape = type(payload)
    # others=1: the envelope's own array is in the frame too
    if (shape is list or shape is dict) and _too_deep(payload, frame, depth, 1):
        raise WireError(f"data nests deeper than the limit of {limits.max_depth}")
    return frame[:i], env


def encode_welcome(node: str, stream: int, name: str, incarnation: int | None = None) -> bytes:
    """A publisher's welcome; ``incarnation`` tells this socket from another with the same
    (node, stream), e.g. the same fixed node id after a restart (docs/protocol.md, section 4)."""
    fields: list[object] = [VERSION, node, stream, name]
    if incarnation is not None:
        fields.append(incarnation)
    packed: bytes = msgpack.packb(fields)
    return WELCOME + packed


def decode_welcome(frame: bytes) -> tuple[str, int, str, int | None]:
    """``(node, stream, name, incarnation)`` of the publisher that sent the welcome.

    ``incarnation`` is None from a publisher that sends none (or one that is not an int).
    """
    fields = _unpack(frame[2:])
    if (
        type(fields) is not list
        or len(fields) < 4
        or fields[0] != VERSION
        or type(fields[1]) is not str
        or type(fields[2]) is not int
        or type(fields[3]) is not str
    ):
        raise WireError("malformed welcome")
    incarnation = fields[4] if len(fields) > 4 and type(fields[4]) is int else None
    return fields[1], fields[2], fields[3], incarnation


def marker_subscription(token: str) -> bytes:
    """The subscription a subscriber makes after its topics; ``token`` names the subscriber."""
    return MARKER + token.encode()


def encode_goodbye(token: str, node: str, stream: int, incarnation: int | None = None) -> bytes:
    """A closing publisher's goodbye to the subscriber ``token`` (docs/protocol.md, section 4).

    It starts with that subscriber's marker subscription, so the XPUB passes it to them.
    """
    fields: list[object] = [VERSION, node, stream]
    if incarnation is not None:
        fields.append(incarnation)
    packed: bytes = msgpack.packb(fields)
    return marker_subscription(token) + b"\x00" + packed


def decode_goodbye(frame: bytes) -> tuple[str, int, int | None] | None:
    """The (node, stream, incarnation) that says goodbye, or None if ``frame`` is not one."""
    cut = frame.find(0, 2)
    if cut < 0:
        return None
    try:
        fields = _unpack(frame[cut + 1 :])
    except WireError:
        return None
    if (type(fields) is not list or len(fields) < 3 or fields[0] != VERSION
            or type(fields[1]) is not str or type(fields[2]) is not int):
        return None
    incarnation = fields[3] if len(fields) > 3 and type(fields[3]) is int else None
    return fields[1], fields[2], incarnation


def encode_gap(token: str, node: str, stream: int, lost: int) -> bytes:
    packed: bytes = msgpack.packb([VERSION, token, node, stream, lost])
    return GAP + packed


def decode_gap(frame: bytes) -> tuple[str, str, int, int]:
    """``(subscriber token, publisher node, publisher stream, messages lost)``."""
    fields = _unpack(frame[2:])
    if (
        type(fields) is not list
        or len(fields) < 5
        or fields[0] != VERSION
        or type(fields[1]) is not str
        or type(fields[2]) is not str
        or type(fields[3]) is not int
        or type(fields[4]) is not int
        or fields[4] < 1
    ):
        raise WireError("malformed gap report")
    return fields[1], fields[2], fields[3], fields[4]

