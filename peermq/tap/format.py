"""Tap output that is not rich text: templates, raw payloads, hex dumps (no click, no rich)."""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Mapping

import msgpack

from ..errors import ConfigError
from .events import TapMessage
from .where import Expression, Undefined

__all__ = ["Template", "hexdump", "payload_bytes", "value_text"]

_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "0": "\0", "\\": "\\"}


def _plain(value: object) -> object:
    """A JSON-able copy: bytes as UTF-8 text or 0x-hex, odd keys as text, NaN as a string."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        raw = bytes(value)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return "0x" + raw.hex()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {k if isinstance(k, str) else str(_plain(k)): _plain(v) for k, v in value.items()}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return repr(value)


def value_text(value: object) -> str:
    """One value as text: strings as they are, everything else as compact JSON."""
    if isinstance(value, str):
        return value
    plain = _plain(value)
    if isinstance(plain, str):
        return plain
    try:
        return json.dumps(plain, ensure_ascii=False, separators=(",", ":"))
    except (ValueError, RecursionError):
        return repr(value)


def payload_bytes(data: object) -> bytes:
    """The payload as bytes: bytes as sent, text as UTF-8, other values as their msgpack."""
    if isinstance(data, (bytes, bytearray, memoryview)):
        return bytes(data)
    if isinstance(data, str):
        return data.encode("utf-8", "surrogateescape")
    packed: bytes = msgpack.packb(data, use_bin_type=True)
    return packed


def hexdump(raw: bytes, limit: int | None = None) -> list[str]:
    """``offset  16 bytes in hex  |ascii|`` lines; past ``limit`` bytes, one line saying so."""
    shown = raw if limit is None else raw[:limit]
    lines = []
    for off in range(0, len(shown), 16):
        row = shown[off:off + 16]
        hexes = " ".join(f"{b:02x}" for b in row[:8]) + "  " + " ".join(f"{b:02x}" for b in row[8:])
        text = "".join(chr(b) if 32 <= b < 127 else "." for b in row)
        lines.append(f"{off:08x}  {hexes:<49} |{text}|")
    if len(shown) < len(raw):
        lines.append(f"... {len(raw) - len(shown)} more bytes")
    return lines


class Template:
    """``--template``: text with ``{expression}`` fields (see where.py), ``{{``/``}}`` for braces
    and ``\\n \\t \\0 \\\\`` escapes. A field without a value renders as nothing."""

    __slots__ = ("_parts", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self._parts: list[str | Expression] = []
        buf: list[str] = []
        i, n = 0, len(text)
        while i < n:
            c = text[i]
            if c == "\\" and i + 1 < n and text[i + 1] in _ESCAPES:
                buf.append(_ESCAPES[text[i + 1]])
                i += 2
            elif c in "{}" and text[i:i + 2] in ("{{", "}}"):
                buf.append(c)
                i += 2
            elif c == "{":
                end = _closing(text, i + 1)
                if buf:
                    self._parts.append("".join(buf))
                    buf = []
                self._parts.append(Expression(text[i + 1:end]))
                i = end + 1
            elif c == "}":
                raise ConfigError(f"template {text!r}: '}}' at column {i + 1} closes nothing "
                                  "(write '}}}}' for a brace)")
            else:
                buf.append(c)
                i += 1
        if buf:
            self._parts.append("".join(buf))

    def render(self, msg: TapMessage) -> str:
        out = []
        for part in self._parts:
            if isinstance(part, str):
                out.append(part)
                continue
            with contextlib.suppress(Undefined):
                out.append(value_text(part.value(msg)))
        return "".join(out)


def _closing(text: str, start: int) -> int:
    """Index of the ``}`` that ends the field opened before ``start`` (quotes respected)."""
    quote = ""
    i = start
    while i < len(text):
        c = text[i]
        if quote:
            if c == "\\":
                i += 1
            elif c == quote:
                quote = ""
        elif c in "\"'":
            quote = c
        elif c == "}":
            return i
        i += 1
    raise ConfigError(f"template {text!r}: '{{' at column {start} is never closed "
                      "(write '{{{{' for a brace)")
