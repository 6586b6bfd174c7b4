"""Recordings of what a tap saw, as MCAP files (the indexed log format of rosbag2 and Foxglove).

One MCAP channel per topic, message encoding ``msgpack``, no schema. Each MCAP message holds
one peermq message as the msgpack array::

    [1, node, name, kind, stream, seq, sent, headers|nil, data, service]

with ``log_time`` the tap's receive time and ``publish_time`` the sender's time (nanoseconds
since the epoch), and ``sequence`` the low 32 bits of ``seq``. A recording cut short (the tap
was killed) has no summary; it is still read, up to its last whole chunk.
"""

from __future__ import annotations

import io
import os
import socket
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import IO, Any

import msgpack
from mcap.exceptions import McapError
from mcap.reader import NonSeekingReader, SeekingReader
from mcap.writer import CompressionType, Writer

from .._version import __version__
from ..errors import PeermqError
from ..message import NO_HEADERS
from ..topics import TopicFilter
from .events import TapMessage

__all__ = [
    "ENCODING",
    "ChannelInfo",
    "Recorder",
    "RecordingError",
    "RecordingInfo",
    "read_messages",
    "summarize",
]

ENCODING = "msgpack"
_FORMAT = 1
_CHANNEL_META = {"peermq.format": str(_FORMAT)}
_NS = 1_000_000_000


class RecordingError(PeermqError):
    """A recording cannot be written, or a file is not a readable MCAP recording."""


def _ns(seconds: float) -> int:
    return max(0, round(seconds * _NS))


class Recorder:
    """Writes tap messages to an MCAP file; a context manager, ``close()`` finishes the file."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        metadata: Mapping[str, str] | None = None,
        chunk_size: int = 256 * 1024,
    ) -> None:
        self.path = os.fspath(path)
        try:
            self._file: IO[bytes] | None = open(self.path, "wb")  # noqa: SIM115 (closed in close)
        except OSError as exc:
            raise RecordingError(f"cannot write {self.path}: {exc.strerror}") from None
        self._writer = Writer(self._file, chunk_size=chunk_size,
                              compression=CompressionType.ZSTD)
        self._writer.start(profile="", library=f"peermq {__version__}")
        info = {
            "format": str(_FORMAT),
            "started": f"{time.time():.6f}",
            "host": socket.gethostname(),
            **(metadata or {}),
        }
        self._writer.add_metadata("peermq.recording", info)
        self._channels: dict[str, int] = {}
        self._pack = msgpack.Packer(use_bin_type=True, autoreset=True).pack
        self.count = 0

    def write(self, msg: TapMessage) -> None:
        """Append one message (in the order seen)."""
        if self._file is None:
            raise RecordingError(f"recording {self.path} is closed")
        channel = self._channels.get(msg.topic)
        if channel is None:
            channel = self._writer.register_channel(msg.topic, ENCODING, 0, dict(_CHANNEL_META))
            self._channels[msg.topic] = channel
        body = self._pack([_FORMAT, msg.node, msg.name, msg.kind, msg.stream, msg.seq, msg.sent,
                           dict(msg.headers) or None, msg.data, msg.service])
        self._writer.add_message(channel, _ns(msg.received), body, _ns(msg.sent),
                                 msg.seq & 0xFFFFFFFF)
        self.count += 1

    def close(self) -> None:
        """Write the indexes and summary, and close the file. Idempotent."""
        f, self._file = self._file, None
        if f is None:
            return
        try:
            self._writer.finish()  # type: ignore[no-untyped-call]
        finally:
            f.close()

    def __enter__(self) -> Recorder:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _decode(topic: str, log_time: int, data: bytes) -> TapMessage | None:
    try:
        rec = msgpack.unpackb(data, raw=False, strict_map_key=True, timestamp=0)
    except Exception:  # msgpack raises many kinds
        return None
    if type(rec) is not list or len(rec) < 10 or rec[0] != _FORMAT:
        return None
    _, node, name, kind, stream, seq, sent, headers, payload, service = rec[:10]
    if not (type(node) is str and type(name) is str and type(kind) is str
            and type(stream) is int and type(seq) is int and type(sent) in (int, float)
            and (headers is None or type(headers) is dict) and type(service) is str):
        return None
    return TapMessage(log_time / _NS, topic, payload, headers or NO_HEADERS, node, stream, seq,
                      float(sent), len(data), name, kind, service)


_MAGIC = b"\x89MCAP0\r\n"


def _open(path: str | os.PathLike[str]) -> IO[bytes]:
    """The file, checked to start like an MCAP file; the callers close it."""
    try:
        f = open(path, "rb")  # noqa: SIM115
    except OSError as exc:
        raise RecordingError(f"cannot read {os.fspath(path)}: {exc.strerror}") from None
    if f.read(8) != _MAGIC:
        f.close()
        raise RecordingError(f"{os.fspath(path)} is not an MCAP file")
    f.seek(0)
    return f


def _records(f: IO[bytes]) -> Iterator[tuple[Any, Any, Any]]:
    """(schema, channel, message) in file order; stops quietly at a cut-off end."""
    reader = NonSeekingReader(f)
    it = reader.iter_messages(log_time_order=False)
    while True:
        try:
            yield next(it)
        except StopIteration:
            return
        except (McapError, EOFError, ValueError, KeyError):
            return  # a recording cut short: what came before is good


def read_messages(
    path: str | os.PathLike[str], topics: Iterable[str] | None = None
) -> Iterator[TapMessage]:
    """The peermq messages of a recording, in file order; ``topics`` are patterns."""
    wanted = TopicFilter(topics) if topics is not None else None
    with _open(path) as f:
        for _, channel, message in _records(f):
            if channel.message_encoding != ENCODING:
                continue
            if wanted is not None and not wanted.matches(channel.topic):
                continue
            msg = _decode(channel.topic, message.log_time, message.data)
            if msg is not None:
                yield msg


@dataclass
class ChannelInfo:
    topic: str
    encoding: str
    messages: int = 0
    bytes: int = 0
    first: float = 0.0
    last: float = 0.0
    senders: set[tuple[str, int]] = field(default_factory=set)
    gaps: int = 0
    """Messages missing by sequence number (between recorded ones of the same sender)."""


@dataclass
class RecordingInfo:
    path: str
    size: int
    library: str = ""
    profile: str = ""
    complete: bool = False
    """False for a recording that was cut short (no summary at its end)."""
    messages: int = 0
    start: float = 0.0
    end: float = 0.0
    chunks: int = 0
    compression: str = ""
    channels: dict[str, ChannelInfo] = field(default_factory=dict)
    metadata: dict[str, dict[str, str]] = field(default_factory=dict)
    undecodable: int = 0
    """peermq messages that could not be read back."""

    @property
    def duration(self) -> float:
        return max(0.0, self.end - self.start)


def _summary_into(info: RecordingInfo, f: IO[bytes]) -> None:
    try:
        reader = SeekingReader(f)
        header = reader.get_header()
        info.library, info.profile = header.library, header.profile
        summary = reader.get_summary()
        if summary is None:
            return
        info.complete = True
        info.chunks = len(summary.chunk_indexes)
        info.compression = ",".join(sorted({c.compression or "none"
                                            for c in summary.chunk_indexes}))
        for meta in reader.iter_metadata():
            info.metadata[meta.name] = dict(meta.metadata)
    except (McapError, EOFError, ValueError, KeyError, OSError):
        return  # cut short: the scan below still reads what is there
    finally:
        f.seek(0, io.SEEK_SET)


def summarize(path: str | os.PathLike[str]) -> RecordingInfo:
    """What ``peermq info`` shows: counts, times, topics, senders and gaps of a recording."""
    with _open(path) as f:
        info = RecordingInfo(os.fspath(path), os.fstat(f.fileno()).st_size)
        _summary_into(info, f)
        expect: dict[tuple[str, int, str], int] = {}
        for _, channel, message in _records(f):
            ch = info.channels.get(channel.topic)
            if ch is None:
                ch = info.channels[channel.topic] = ChannelInfo(channel.topic,
                                                                channel.message_encoding)
            t = message.log_time / _NS
            if not ch.messages:
                ch.first = t
            ch.messages += 1
            ch.bytes += len(message.data)
            ch.last = t
            info.messages += 1
            info.start = t if info.messages == 1 else min(info.start, t)
            info.end = max(info.end, t)
            if channel.message_encoding != ENCODING:
                continue
            msg = _decode(channel.topic, message.log_time, message.data)
            if msg is None:
                info.undecodable += 1
                continue
            ch.senders.add((msg.node, msg.stream))
            key = (msg.node, msg.stream, msg.topic)
            nxt = expect.get(key)
            if nxt is not None and msg.seq > nxt:
                ch.gaps += msg.seq - nxt
            expect[key] = msg.seq + 1
    return info
