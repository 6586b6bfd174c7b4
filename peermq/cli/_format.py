"""Plain-text and JSON renderings of messages, gaps and payloads (no click, no rich).

``--json`` output is one JSON object per line, ASCII only, keys in a fixed order::

    {"type":"message","topic":"orders.created","seq":7,"sender":"<node id>","stream":1,
     "time":1712345678.5,"headers":{"region":"eu"},"encoding":"json","data":{"id":7}}
    {"type":"gap","topic":"orders.created","sender":"<node id>","stream":1,"first":8,"lost":3}

``encoding`` says how to read ``data`` back, exactly:

- ``json``: ``data`` is the payload itself (it held only JSON types: no bytes, no NaN);
- ``base64``: the payload was bytes; ``data`` is their standard base64 (padded);
- ``msgpack+base64``: a structure JSON cannot hold (nested bytes, non-str keys, NaN, ext
  types, very deep nesting); ``data`` is the base64 of its msgpack encoding.
"""

from __future__ import annotations

import base64
import json
import math
import time
from collections.abc import Mapping

import msgpack

from ..message import Gap, Message

__all__ = [
    "dumps",
    "gap_json",
    "headers_text",
    "message_json",
    "payload_json",
    "payload_text",
    "time_text",
]

PAYLOAD_LIMIT = 200
"""Characters of payload a pretty line shows before it truncates (``--full`` shows all)."""
_HEX_LIMIT = 32


def dumps(obj: object) -> str:
    """One machine-stable JSON line (ASCII, compact, no NaN)."""
    return json.dumps(obj, ensure_ascii=True, separators=(",", ":"), allow_nan=False)


def _json_native(value: object) -> bool:
    """True if ``json`` can carry ``value`` exactly (walked without recursion)."""
    stack = [value]
    while stack:
        v = stack.pop()
        if v is None or isinstance(v, (bool, int, str)):
            continue
        if isinstance(v, float):
            if not math.isfinite(v):
                return False
        elif isinstance(v, (list, tuple)):
            stack.extend(v)
        elif isinstance(v, dict):
            if not all(isinstance(k, str) for k in v):
                return False
            stack.extend(v.values())
        else:
            return False
    return True


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def payload_json(data: object) -> tuple[str, object]:
    """``(encoding, data)`` for a JSON line; see the module docstring."""
    if isinstance(data, (bytes, bytearray, memoryview)):
        return "base64", _b64(bytes(data))
    if _json_native(data):
        try:
            dumps(data)
        except (RecursionError, ValueError):
            pass  # too deep for the json module: fall through to msgpack
        else:
            return "json", data
    packed: bytes = msgpack.packb(data, use_bin_type=True)
    return "msgpack+base64", _b64(packed)


def message_json(msg: Message) -> dict[str, object]:
    encoding, data = payload_json(msg.data)
    return {
        "type": "message",
        "topic": msg.topic,
        "seq": msg.seq,
        "sender": msg.sender,
        "stream": msg.stream,
        "time": msg.timestamp,
        "headers": dict(msg.headers),
        "encoding": encoding,
        "data": data,
    }


def gap_json(gap: Gap) -> dict[str, object]:
    return {
        "type": "gap",
        "topic": gap.topic,
        "sender": gap.sender,
        "stream": gap.stream,
        "first": gap.first,
        "lost": gap.lost,
    }


def time_text(timestamp: float) -> str:
    """Local wall-clock time with milliseconds, ``HH:MM:SS.mmm``."""
    try:
        t = time.localtime(timestamp)
    except (OverflowError, OSError, ValueError):
        return "??:??:??.???"
    ms = int((timestamp % 1) * 1000)
    return time.strftime("%H:%M:%S", t) + f".{ms:03d}"


def _escape(text: str) -> str:
    """One printable line: control characters and line breaks shown as escapes."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _clip(text: str, limit: int | None) -> str:
    if limit is None or len(text) <= limit:
        return text
    return f"{text[:limit]}... (+{len(text) - limit} chars)"


def _hex(raw: bytes, limit: int | None) -> str:
    if limit is not None and len(raw) > _HEX_LIMIT:
        return f"<{len(raw)} bytes> {raw[:_HEX_LIMIT].hex(' ')} ..."
    return f"<{len(raw)} bytes> {raw.hex(' ')}"


def _for_display(value: object) -> object:
    """A JSON-able copy for display: bytes as text (or 0x-hex), odd keys and types as str."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        raw = bytes(value)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return "0x" + raw.hex()
    if isinstance(value, (list, tuple)):
        return [_for_display(v) for v in value]
    if isinstance(value, dict):
        return {k if isinstance(k, str) else str(_for_display(k)): _for_display(v)
                for k, v in value.items()}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return repr(value)


def payload_text(data: object, limit: int | None = PAYLOAD_LIMIT) -> tuple[str, str]:
    """``(kind, text)`` for a pretty line; kind is ``text``, ``binary`` or ``value``."""
    if isinstance(data, str):
        return "text", _clip(_escape(data), limit)
    if isinstance(data, (bytes, bytearray, memoryview)):
        raw = bytes(data)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            return "binary", _hex(raw, limit)
        if text.isprintable() or not any(c < " " and c not in "\t\n\r" for c in text):
            return "text", _clip(_escape(text), limit)
        return "binary", _hex(raw, limit)
    try:
        text = json.dumps(_for_display(data), ensure_ascii=False)
    except (RecursionError, ValueError, TypeError):
        text = repr(data)
    return "value", _clip(_escape(text), limit)


def headers_text(headers: Mapping[str, str]) -> str:
    return " ".join(f"{_escape(k)}={_escape(v)}" for k, v in headers.items())
