"""Sans-I/O socket logic shared by the blocking (sockets.py) and asyncio (aio.py) shells.

The shells move frames; everything that decides what a frame means lives here.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

import msgpack

from . import wire
from .config import HeaderMatch, SocketOptions
from .errors import WireError
from .message import NO_HEADERS, Gap, Message, SocketStats
from .topics import TopicFilter

__all__ = ["GapHandler", "PeerLedger", "ReceiveCore", "SendCore"]

_log = logging.getLogger("peermq")

GapHandler = Callable[[Gap], None]
_TOPIC_CACHE_MAX = 4096
_V = bytes([wire.VERSION])
_new = tuple.__new__
_unpackb = msgpack.unpackb
_packb = msgpack.packb
_ARRAY4 = b"\x94"
_SINGLE_HEAD = bytes([0, wire.VERSION, 0x97, wire.SINGLE])


class _Bad:
    """Marks a topic that is not valid UTF-8 (counted as malformed, not as filtered)."""


_BAD = _Bad()


class SendCore:
    """Encoding, sequence numbers and what a publisher learns from its subscribers."""

    __slots__ = ("dropped", "dropped_by_peer", "encoder", "options", "sent", "subscribers")

    def __init__(self, node: str, stream: int, options: SocketOptions) -> None:
        self.options = options
        self.encoder = wire.Encoder(
            node,
            stream,
            max_size=options.max_message_size,
            max_topic=options.max_topic_length,
            max_count=options.batch_max_count,
            limits=wire.Limits(options.max_topic_length, options.max_headers,
                               options.max_header_chars, options.max_depth),
        )
        self.sent = 0
        self.dropped = 0
        self.dropped_by_peer: dict[str, int] = {}
        self.subscribers: set[str] = set()

    def upstream(self, frame: bytes) -> None:
        """Handle one frame a publisher's XPUB received: (un)subscriptions and gap reports."""
        if not frame:
            return
        first = frame[0]
        if first in (0, 1) and frame[1:3] == wire.MARKER:
            token = frame[3:].decode("utf-8", "replace")
            if first == 1:
                self.subscribers.add(token)
                _log.debug("subscriber.joined token=%s", token)
            else:
                self.subscribers.discard(token)
                _log.debug("subscriber.left token=%s", token)
        elif frame[:2] == wire.GAP:
            try:
                token, node, stream, lost = wire.decode_gap(frame)
            except WireError as exc:
                _log.debug("gap_report.malformed error=%s", exc)
                return
            enc = self.encoder
            if node == enc.node and stream == enc.stream:
                self.dropped += lost
                self.dropped_by_peer[token] = self.dropped_by_peer.get(token, 0) + lost

    def stats(self) -> SocketStats:
        return SocketStats(
            sent=self.sent,
            dropped=self.dropped,
            dropped_by_peer=dict(self.dropped_by_peer),
            peers=len(self.subscribers),
        )


def _header_matcher(
    wanted: Mapping[str, str] | None, how: HeaderMatch
) -> Callable[[Mapping[str, str]], bool] | None:
    if not wanted:
        return None
    pairs = tuple(dict(wanted).items())
    if how is HeaderMatch.ALL:
        return lambda h: all(h.get(k) == v for k, v in pairs)
    return lambda h: any(h.get(k) == v for k, v in pairs)


class ReceiveCore:
    """Decoding, exact filtering, gap detection and control frames for one receiving socket."""

    def __init__(
        self,
        *,
        token: str,
        options: SocketOptions,
        topics: TopicFilter | None,
        headers: Mapping[str, str] | None = None,
        match: HeaderMatch = HeaderMatch.ALL,
        on_gap: GapHandler | None = None,
        track_gaps: bool = True,
    ) -> None:
        self.token = token
        self.options = options
        self.topics = topics
        self._headers_ok = _header_matcher(headers, match)
        self.on_gap = on_gap
        self.track_gaps = track_gaps
        self._any_seq = not track_gaps
        self.pending: deque[Message] = deque()
        self.outbox: list[bytes] = []
        """Frames to send upstream (gap reports); the shell flushes them."""
        self.publishers: dict[tuple[str, int], tuple[str, int | None]] = {}
        """(node, stream) -> (name, incarnation) from each publisher's last welcome."""
        self._topic_cache: dict[bytes, str | None] = {}
        self._fast: dict[bytes, list[Any]] = {}
        self._hot: list[Any] | None = None
        """The fast entry used last (pub/sub only): tried first, by the frame's prefix bytes."""
        """raw topic -> [node, stream, next seq, topic]: the stream last seen on that topic."""
        self._next: dict[tuple[str, int, bytes], int] = {}
        self.received = 0
        self.gaps = 0
        self.malformed = 0
        self.filtered = 0
        self._warned = False
        self.limits = wire.Limits(options.max_topic_length, options.max_headers,
                                  options.max_header_chars, options.max_depth)
        self.on_malformed: Callable[[], None] | None = None
        """Called (by the owning thread) right after each malformed frame is counted."""

    def stats(self, peers: int | None = None) -> SocketStats:
        return SocketStats(
            received=self.received,
            gaps=self.gaps,
            malformed=self.malformed,
            filtered=self.filtered,
            peers=len(self.publishers) if peers is None else peers,
        )

    def _bad(self, what: str, exc: Exception) -> None:
        self.malformed += 1
        if not self._warned:
            self._warned = True
            _log.warning("frame.dropped reason=%s error=%s (further ones are logged at DEBUG)",
                         what, exc)
        else:
            _log.debug("frame.dropped reason=%s error=%s", what, exc)
        if self.on_malformed is not None:
            self.on_malformed()

    def _topic(self, raw: bytes) -> str | _Bad | None:
        """The topic if the filter takes it, None if not, _BAD if it is not a topic at all."""
        cache = self._topic_cache
        if len(cache) >= _TOPIC_CACHE_MAX:
            cache.clear()
        try:
            topic: str | None = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            self._bad("topic", exc)
            return _BAD
        if self.topics is not None and topic is not None and not self.topics.matches(topic):
            topic = None
        cache[raw] = topic
        return topic

    def _control(self, frame: bytes) -> None:
        if frame[:2] == wire.WELCOME:
            try:
                node, stream, name, incarnation = wire.decode_welcome(frame)
            except WireError as exc:
                self._bad("welcome", exc)
                return
            if (node, stream) not in self.publishers:
                _log.debug("publisher.welcome node=%s stream=%s name=%s", node, stream, name)
            self.publishers[(node, stream)] = (name, incarnation)
        elif frame[:2] == wire.MARKER:
            left = wire.decode_goodbye(frame)
            if left is None:
                return
            node, stream, incarnation = left
            known = self.publishers.get((node, stream))
            if known is None:
                return
            if incarnation is not None and known[1] is not None and incarnation != known[1]:
                return  # the goodbye of an earlier socket with the same (node, stream)
            del self.publishers[(node, stream)]
            _log.debug("publisher.goodbye node=%s stream=%s", node, stream)
        # other control frames (addressed to other subscribers) are not ours: ignore them

    def _gap(self, node: str, stream: int, raw: bytes, topic: str, first: int, lost: int) -> None:
        self.gaps += lost
        _log.debug("gap node=%s stream=%s topic=%s first=%d lost=%d",
                   node, stream, topic, first, lost)
        self.outbox.append(wire.encode_gap(self.token, node, stream, lost))
        if self.on_gap is not None:
            try:
                self.on_gap(Gap(node, stream, topic, first, lost))
            except Exception:
                _log.exception("on_gap handler failed")

    def accept(self, frame: bytes) -> Message | None:
        """Take one frame; return the first message it yields (more go to ``pending``).

        The fast path serves the common case, the next message of the stream last seen on
        its topic, with no headers: everything it skips (topic decoding and filtering, the
        stream lookup) is what the slow path proved for that stream already.
        """
        hot = self._hot
        if hot is not None and frame.startswith(hot[4]):
            # same topic and stream as last time: the 7-array's first four fields are known,
            # so decode only the other four (the prefix already holds the 0x97 array header)
            try:
                rest = _unpackb(_ARRAY4 + frame[hot[5] :], strict_map_key=False)
            except Exception:
                rest = None
            if rest is not None:
                seq, ts, headers, payload = rest
                if (
                    type(seq) is int
                    and (seq == hot[2] or (self._any_seq and seq > 0))
                    and headers is None
                    and type(ts) is float
                    and not (
                        (type(payload) is list or type(payload) is dict)
                        and wire.too_deep(payload, frame, self.limits.max_depth)
                    )
                ):
                    hot[2] = seq + 1
                    self.received += 1
                    return _new(Message, (hot[3], payload, NO_HEADERS, hot[0], hot[1], seq, ts))
        i = frame.find(0)
        if i > 0:
            fast = self._fast.get(frame[:i])
            if fast is not None and frame[i + 1 : i + 2] == _V:
                try:
                    env = _unpackb(frame[i + 2 :], raw=False, strict_map_key=False, timestamp=0)
                except Exception:
                    env = None
                if type(env) is list and len(env) == 7:
                    kind, node, stream, seq, ts, headers, payload = env
                    if (
                        kind == 0
                        and headers is None
                        and node == fast[0]
                        and stream == fast[1]
                        and type(seq) is int
                        and (seq == fast[2] or (not self.track_gaps and seq > 0))
                        and type(ts) is float
                        and not (
                            (type(payload) is list or type(payload) is dict)
                            and wire.too_deep(payload, frame, self.limits.max_depth)
                        )
                    ):
                        fast[2] = seq + 1
                        self._hot = fast
                        self.received += 1
                        return _new(Message, (fast[3], payload, NO_HEADERS, node, stream, seq, ts))
        return self._accept_slow(frame)

    def _flush_fast(self) -> None:
        """Write the fast path's sequence state back to the slow path's table."""
        for raw, (node, stream, nxt, *_) in self._fast.items():
            self._next[(node, stream, raw)] = nxt
        self._fast.clear()
        self._hot = None

    def _accept_slow(self, frame: bytes) -> Message | None:
        self._hot = None  # the tables below may change under it
        if not frame:
            self._bad("empty", WireError("empty frame"))
            return None
        if frame[0] == wire.CONTROL:
            self._control(frame)
            return None
        try:
            raw, env = wire.decode_data(frame, self.limits)
        except WireError as exc:
            self._bad("decode", exc)
            return None
        cache = self._topic_cache
        topic = cache[raw] if raw in cache else self._topic(raw)
        if topic is _BAD:
            return None
        kind, node, stream, seq, ts, headers, payload = env
        count = 1 if kind == wire.SINGLE else len(payload)
        fastmap = self._fast
        old = fastmap.get(raw)
        if old is not None:  # its sequence state goes back to the table before we read it
            self._next[(old[0], old[1], raw)] = old[2]
        key = (node, stream, raw)
        nxt = self._next
        expected = nxt.get(key)
        if expected is None and len(nxt) >= self.options.max_tracked_streams:
            del nxt[next(iter(nxt))]
        nxt[key] = seq + count
        if self.track_gaps and expected is not None and seq != expected:
            if seq > expected:
                self._gap(node, stream, raw, raw.decode("utf-8", "replace"),
                          expected, seq - expected)
            else:
                _log.debug("stream.restarted node=%s stream=%s seq=%d", node, stream, seq)
        if topic is None:
            fastmap.pop(raw, None)
            self.filtered += count
            return None
        if self._headers_ok is None:
            if len(fastmap) >= _TOPIC_CACHE_MAX:
                self._flush_fast()
            static = raw + _SINGLE_HEAD + _packb(node) + _packb(stream)
            fastmap[raw] = [node, stream, seq + count, topic, static, len(static)]
        else:
            fastmap.pop(raw, None)
        hdrs: Mapping[str, str] = MappingProxyType(headers) if headers else NO_HEADERS
        if self._headers_ok is not None and not self._headers_ok(hdrs):
            self.filtered += count
            return None
        if kind == wire.SINGLE:
            self.received += 1
            return _new(Message, (topic, payload, hdrs, node, stream, seq, ts))
        if not payload:
            return None
        self.received += count
        msgs = [
            _new(Message, (topic, data, hdrs, node, stream, seq + n, ts))
            for n, data in enumerate(payload)
        ]
        self.pending.extend(msgs[1:])
        return msgs[0]

    def stash(self, frame: bytes) -> None:
        """Take one frame and keep all it yields in ``pending`` (in order)."""
        at = len(self.pending)
        msg = self.accept(frame)
        if msg is not None:
            self.pending.insert(at, msg)

    def set_topics(self, topics: TopicFilter) -> None:
        """Change the filter. Streams of topics it no longer matches are forgotten, so that
        subscribing again later does not count what was sent meanwhile as lost."""
        self._flush_fast()
        self.topics = topics
        self._topic_cache.clear()
        keep = {}
        for key, nxt in self._next.items():
            topic = self._topic(key[2])
            if isinstance(topic, str):
                keep[key] = nxt
        self._next = keep

    def drain_outbox(self) -> list[bytes]:
        out, self.outbox = self.outbox, []
        return out


def token_for(node: str, stream: int) -> str:
    """The name a subscriber goes by at its publishers."""
    return f"{node}/{stream}"




class _Book:
    """One endpoint's connections, as the monitor tells of them (see PeerLedger)."""

    __slots__ = ("counted", "failed", "losses", "open", "wins")

    def __init__(self) -> None:
        self.open: dict[int, None] = {}
        """Connections (by fd) whose handshake outcome is not tied to them yet, oldest first."""
        self.counted: set[int] = set()
        self.failed: set[int] = set()
        self.wins = 0
        """Handshakes that succeeded, not tied to a connection yet: they count as peers."""
        self.losses = 0
        """Handshakes that failed, not tied to a connection yet."""


class PeerLedger:
    """Peers whose handshake succeeded and that have not left, from a socket's monitor events.

    libzmq's monitor names a connection (its fd) when it opens and closes, but not when its
    handshake succeeds or fails. So outcomes are tied to connections when that is certain:
    when as many outcomes of one kind are untied as there are open connections. A connection
    that closes untied is taken as a failed one while failures are untied (libzmq reports a
    failure before the close), else as a success while successes are untied, else as one that
    closed without an outcome. A peer counts up only on a success and down only for a
    connection that counted: refused and garbage-sending clients never move the count, and it
    is never negative.
    Without open/close fds (events filtered upstream) it counts successes minus closes.
    """

    __slots__ = ("_books", "_where", "manual")

    def __init__(self) -> None:
        self._books: dict[str, _Book] = {}
        self._where: dict[int, str] = {}
        self.manual = 0
        """Peers counted by the socket itself (inproc connects: the monitor reports none)."""

    @property
    def peers(self) -> int:
        return self.manual + sum(len(b.counted) + b.wins for b in self._books.values())

    def _book(self, endpoint: str) -> _Book:
        book = self._books.get(endpoint)
        if book is None:
            book = self._books[endpoint] = _Book()
        return book

    def opened(self, endpoint: str, fd: int) -> None:
        """A connection was accepted or made (before its handshake)."""
        old = self._where.get(fd)
        if old is not None:  # the fd was reused: its close event was lost
            self.closed(old, fd)
        self._where[fd] = endpoint
        self._book(endpoint).open[fd] = None

    def succeeded(self, endpoint: str) -> None:
        book = self._book(endpoint)
        book.wins += 1
        self._settle(book)

    def failed(self, endpoint: str) -> None:
        book = self._book(endpoint)
        book.losses += 1
        self._settle(book)

    def closed(self, endpoint: str, fd: int) -> bool:
        """A connection ended; True if it was a peer (the count went down)."""
        if self._where.get(fd) == endpoint:
            del self._where[fd]
        book = self._book(endpoint)
        if fd in book.counted:
            book.counted.discard(fd)
            return True
        if fd in book.failed:
            book.failed.discard(fd)
            return False
        if fd not in book.open:  # never seen open (filtered events): successes minus closes
            if book.wins:
                book.wins -= 1
                return True
            return False
        del book.open[fd]
        down = False
        # libzmq reports a failed handshake (garbage, a timeout, a refused key) before the
        # close, so an untied failure is this one's; else an untied success is; else it closed
        # without an outcome (a wrong socket type, the one case libzmq says nothing about)
        if book.losses:
            book.losses -= 1
        elif book.wins:
            book.wins -= 1
            down = True
        if not book.open:
            book.wins = book.losses = 0  # nothing left to tie them to
        self._settle(book)
        return down

    @staticmethod
    def _settle(book: _Book) -> None:
        n = len(book.open)
        if not n:
            return
        excess = book.wins + book.losses - n
        if excess > 0:  # an earlier close was misread: each open connection has one outcome
            cut = min(excess, book.losses)
            book.losses -= cut
            book.wins -= excess - cut
        if book.wins == n:
            book.counted.update(book.open)
            book.open.clear()
            book.wins = 0
        elif book.losses == n:
            book.failed.update(book.open)
            book.open.clear()
            book.losses = 0
