"""What a socket says about itself in DNS-SD: service type, instance name and TXT record.

Pure functions, no I/O. The TXT record follows RFC 6763 section 6: ``key=value`` strings of at
most 255 bytes each (6.1), short lowercase keys (6.4), ``txtvers`` first (6.7), and a small total
(6.2 asks for under 400 bytes so that a record fits a packet with room to spare). A TXT record is
a hint from the network, never a credential: ``decode`` checks every field and refuses what it
cannot use, and the caller logs and ignores such a record.

Keys::

    txtvers=1        this schema's version (RFC 6763 section 6.7)
    pv=1             peermq wire protocol version (wire.VERSION)
    id=<node id>     the node's id (as Message.sender)
    node=<name>      the node's name, truncated to fit
    kind=pub         pub | push | spool-pub | spool-push (what the endpoint speaks; see PeerKind)
    svc=<service>    the service name
    st=<stream>      which socket of the node (as Message.stream)
    topics=a.>,b.*   topic patterns offered, as many as fit; tmore=1 if some were left out
    fp=              the public-key fingerprint (empty until security announces one)
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from .. import wire
from ..errors import DiscoveryError, TopicError
from ..topics import pattern_prefix

__all__ = [
    "SERVICE_TYPE",
    "TXT_BUDGET",
    "Announcement",
    "PeerKind",
    "Service",
    "TxtError",
    "check_service",
    "decode_txt",
    "encode_txt",
    "instance_name",
]

SERVICE_TYPE = "_peermq._tcp.local."
"""The DNS-SD service type (RFC 6763 section 7: ``_name._tcp``, name at most 15 characters)."""
TXT_VERSION = "1"
TXT_BUDGET = 400
"""Bytes the whole TXT record may use (RFC 6763 section 6.2)."""
_MAX_STRING = 255
"""Bytes of one ``key=value`` string (RFC 6763 section 6.1: one length byte)."""
_MAX_LABEL = 63
"""Bytes of a DNS label, so of an instance name (RFC 6763 section 4.1.1)."""
_SERVICE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}\Z")
_NODE_ID = re.compile(r"[0-9a-z][0-9a-z-]{0,63}\Z")
_FINGERPRINT = re.compile(r"[0-9A-Za-z+/=:._-]{0,128}\Z")


class TxtError(DiscoveryError, ValueError):
    """A TXT record that does not follow peermq's schema (from an old, foreign or forged peer)."""


class PeerKind(enum.Enum):
    """The kind of socket behind a DNS-SD instance, and so what its endpoint speaks.

    ``pub`` and ``push`` are ZeroMQ XPUB and PUSH sockets (docs/protocol.md); ``spool-pub`` and
    ``spool-push`` are spooled senders, ROUTER sockets that speak spool links (docs/spool.md).
    A plain receiver and a spool link cannot talk, so they are distinct kinds: a peer that does
    not know the spool kinds refuses the record rather than connect to the wrong socket.
    Receivers' kinds are never announced; they name what a browsing socket is.
    """

    PUBLISHER = "pub"
    PUSHER = "push"
    SUBSCRIBER = "sub"
    PULLER = "pull"
    SPOOL_PUBLISHER = "spool-pub"
    SPOOL_PUSHER = "spool-push"
    SPOOL_SUBSCRIBER = "spool-sub"
    SPOOL_PULLER = "spool-pull"

    @property
    def partner(self) -> PeerKind:
        """The kind this one talks to: a subscriber looks for publishers, and so on."""
        return _PARTNERS[self]

    @property
    def sends(self) -> bool:
        """A sender: it binds and announces (receivers browse and connect)."""
        return self in _SENDERS

    @property
    def spooled(self) -> bool:
        """It speaks spool links (ROUTER), not plain ZeroMQ PUB/SUB or PUSH/PULL."""
        return self.value.startswith("spool-")

    @property
    def twin(self) -> PeerKind:
        """The same pattern over the other transport: ``push`` <-> ``spool-push``..."""
        return _TWINS[self]


_PARTNERS = {
    PeerKind.PUBLISHER: PeerKind.SUBSCRIBER,
    PeerKind.SUBSCRIBER: PeerKind.PUBLISHER,
    PeerKind.PUSHER: PeerKind.PULLER,
    PeerKind.PULLER: PeerKind.PUSHER,
    PeerKind.SPOOL_PUBLISHER: PeerKind.SPOOL_SUBSCRIBER,
    PeerKind.SPOOL_SUBSCRIBER: PeerKind.SPOOL_PUBLISHER,
    PeerKind.SPOOL_PUSHER: PeerKind.SPOOL_PULLER,
    PeerKind.SPOOL_PULLER: PeerKind.SPOOL_PUSHER,
}
_SENDERS = frozenset({PeerKind.PUBLISHER, PeerKind.PUSHER, PeerKind.SPOOL_PUBLISHER,
                      PeerKind.SPOOL_PUSHER})
_TWINS = {k: PeerKind(k.value.removeprefix("spool-") if k.value.startswith("spool-")
                      else "spool-" + k.value) for k in PeerKind}


def check_service(name: object) -> str:
    """A service name: 1-63 ASCII letters, digits, '.', '_' or '-'; the first a letter or digit."""
    if not isinstance(name, str) or not _SERVICE.match(name):
        raise DiscoveryError(
            "a service name is 1-63 ASCII letters, digits, '.', '_' or '-' and starts with a "
            f"letter or digit, got {name!r}"
        )
    return name


@dataclass(frozen=True, slots=True)
class Service:
    """A service name with what a sender offers on it: ``Publisher(service=Service(...))``.

    A plain string is the same as ``Service(name)``. ``topics`` are patterns announced in the
    TXT record for people and tools (``peermq peers``); receivers do not filter on them.
    """

    name: str
    topics: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        check_service(self.name)
        if isinstance(self.topics, str) or not isinstance(self.topics, tuple):
            object.__setattr__(self, "topics", tuple(_as_patterns(self.topics)))
        for pattern in self.topics:
            try:
                pattern_prefix(pattern)
            except TopicError as exc:
                raise DiscoveryError(f"service {self.name!r}: {exc}") from None

    @classmethod
    def of(cls, value: object) -> Service:
        """``Service`` from what a constructor was given: a Service or a service name."""
        if isinstance(value, Service):
            return value
        return cls(check_service(value))


def _as_patterns(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if not isinstance(value, Iterable):
        raise DiscoveryError(f"topics must be an iterable of patterns, got {value!r}")
    return list(value)


@dataclass(frozen=True, slots=True)
class Announcement:
    """What one socket announces about itself."""

    service: str
    kind: PeerKind
    node_id: str
    node_name: str
    stream: int
    topics: tuple[str, ...] = ()
    fingerprint: str = ""
    protocol: int = wire.VERSION


def _utf8_prefix(text: str, limit: int) -> str:
    """The longest prefix of ``text`` whose UTF-8 form fits ``limit`` bytes."""
    raw = text.encode("utf-8")
    if len(raw) <= limit:
        return text
    return raw[:limit].decode("utf-8", "ignore")


def instance_name(a: Announcement, rename: int = 1) -> str:
    """The DNS-SD instance name: ``<node name> <kind> <service> #<stream>``, at most 63 bytes.

    Readable first (RFC 6763 section 4.1.1: instance names are for people); the node name is
    cut to fit. ``rename`` > 1 appends `` (2)``, `` (3)``... after a name clash (RFC 6762
    section 9), as avahi and Apple's responder do.
    """
    tail = f" {a.kind.value} {a.service} #{a.stream}"
    if rename > 1:
        tail += f" ({rename})"
    head = _utf8_prefix(a.node_name, max(0, _MAX_LABEL - len(tail.encode("utf-8"))))
    name = (head + tail).strip()
    # a DNS label may hold any byte, but a '.' would split the name for many tools
    return _utf8_prefix(name.replace(".", "_"), _MAX_LABEL)


def encode_txt(a: Announcement) -> dict[str, str]:
    """The TXT record as an ordered mapping, ``txtvers`` first; topics are cut to fit."""
    txt: dict[str, str] = {
        "txtvers": TXT_VERSION,
        "pv": str(a.protocol),
        "id": a.node_id,
        "node": _utf8_prefix(a.node_name, _MAX_STRING - len("node=")),
        "kind": a.kind.value,
        "svc": a.service,
        "st": str(a.stream),
        "fp": a.fingerprint,
    }
    used = sum(len(k) + 1 + len(v.encode("utf-8")) + 1 for k, v in txt.items())
    room = min(_MAX_STRING - len("topics="), TXT_BUDGET - used - len("topics=") - 1
               - len("tmore=1") - 1)
    shown: list[str] = []
    size = 0
    for pattern in a.topics:
        need = len(pattern.encode("utf-8")) + (1 if shown else 0)
        if size + need > room:
            break
        shown.append(pattern)
        size += need
    txt["topics"] = ",".join(shown)
    if len(shown) < len(a.topics):
        txt["tmore"] = "1"
    return txt


def _text(props: Mapping[bytes, bytes | None], key: str, *, required: bool = True) -> str:
    value = props.get(key.encode("ascii"))
    if value is None:
        if required:
            raise TxtError(f"TXT has no {key}=")
        return ""
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        raise TxtError(f"TXT {key}= is not UTF-8") from None


def _int(props: Mapping[bytes, bytes | None], key: str, low: int, high: int) -> int:
    text = _text(props, key)
    if not text.isdigit() or not low <= int(text) <= high:
        raise TxtError(f"TXT {key}={text[:20]!r} is not an integer in {low}..{high}")
    return int(text)


def decode_txt(props: Mapping[bytes, bytes | None]) -> Announcement:
    """Check and read a received TXT record (keys as bytes, as python-zeroconf gives them).

    Unknown keys are ignored (a newer peer may add some); a missing, malformed or unsupported
    field raises TxtError.
    """
    if _text(props, "txtvers") != TXT_VERSION:
        raise TxtError(f"TXT txtvers={_text(props, 'txtvers')[:20]!r} is not {TXT_VERSION}")
    protocol = _int(props, "pv", 1, 255)
    node_id = _text(props, "id")
    if not _NODE_ID.match(node_id):
        raise TxtError(f"TXT id={node_id[:70]!r} is not a node id")
    try:
        kind = PeerKind(_text(props, "kind"))
    except ValueError:
        raise TxtError(f"TXT kind={_text(props, 'kind')[:20]!r} is unknown") from None
    try:
        service = check_service(_text(props, "svc"))
    except DiscoveryError as exc:
        raise TxtError(f"TXT svc=: {exc}") from None
    name = _text(props, "node")
    if not name or any(ord(c) < 0x20 for c in name):
        raise TxtError("TXT node= is empty or holds control characters")
    topics_text = _text(props, "topics", required=False)
    topics = tuple(p for p in topics_text.split(",") if p)
    for pattern in topics:
        try:
            pattern_prefix(pattern)
        except TopicError as exc:
            raise TxtError(f"TXT topics=: {exc}") from None
    fingerprint = _text(props, "fp", required=False)
    if not _FINGERPRINT.match(fingerprint):
        raise TxtError("TXT fp= is not a fingerprint")
    return Announcement(
        service=service,
        kind=kind,
        node_id=node_id,
        node_name=name,
        stream=_int(props, "st", 0, 2**31),
        topics=topics,
        fingerprint=fingerprint,
        protocol=protocol,
    )
