"""Topic names and patterns (pure functions).

A topic is one or more dot-separated segments: ``orders.created.eu``. A pattern may use ``*`` for
exactly one segment and ``>`` (last only) for one or more remaining segments, as NATS does:
``orders.*`` matches ``orders.created`` but not ``orders.created.eu``; ``orders.>`` matches both;
``>`` matches every topic.

Each pattern yields a ZeroMQ subscription prefix, so the publisher drops what no subscriber wants
before it crosses the wire; the receiver then matches exactly. A pattern without wildcards
subscribes to ``topic + "\\0"``, which the publisher can match exactly on its own.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from .errors import TopicError

__all__ = ["TopicFilter", "check_topic", "pattern_prefix", "topic_matches"]

ONE = "*"
REST = ">"
_BAD_CHAR = re.compile(r"[\x00-\x20\x7f*>]")


def _check_segments(text: str, what: str, *, wildcards: bool) -> list[str]:
    if not isinstance(text, str):
        raise TopicError(f"a {what} must be a str, got {type(text).__name__}")
    if not text:
        raise TopicError(f"a {what} must not be empty")
    segments = text.split(".")
    for i, seg in enumerate(segments):
        if not seg:
            raise TopicError(f"{what} {text!r} has an empty segment (leading, trailing or '..')")
        if wildcards and seg == ONE:
            continue
        if wildcards and seg == REST:
            if i != len(segments) - 1:
                raise TopicError(f"pattern {text!r}: '>' may only be the last segment")
            continue
        bad = _BAD_CHAR.search(seg)
        if bad:
            raise TopicError(
                f"{what} {text!r} contains {bad.group()!r}: topics may not contain whitespace, "
                "control characters, '*' or '>'"
            )
    return segments


def check_topic(topic: str, max_length: int = 1024) -> bytes:
    """Validate a concrete topic and return its UTF-8 bytes."""
    _check_segments(topic, "topic", wildcards=False)
    raw = topic.encode("utf-8")
    if len(raw) > max_length:
        raise TopicError(f"topic is {len(raw)} bytes, more than the limit of {max_length}")
    return raw


def pattern_prefix(pattern: str) -> bytes:
    """The ZeroMQ subscription prefix for ``pattern`` (a superset of what it matches)."""
    segments = _check_segments(pattern, "pattern", wildcards=True)
    literal: list[str] = []
    for seg in segments:
        if seg in (ONE, REST):
            return ".".join([*literal, ""]).encode() if literal else b""
        literal.append(seg)
    return pattern.encode("utf-8") + b"\x00"


def _compile(pattern: str) -> re.Pattern[str]:
    parts = []
    for seg in _check_segments(pattern, "pattern", wildcards=True):
        if seg == ONE:
            parts.append(r"[^.]+")
        elif seg == REST:
            parts.append(r"[^.]+(?:\.[^.]+)*")
        else:
            parts.append(re.escape(seg))
    return re.compile(r"\.".join(parts) + r"\Z")


def topic_matches(pattern: str, topic: str) -> bool:
    """True if ``topic`` matches ``pattern``."""
    return _compile(pattern).match(topic) is not None


class TopicFilter:
    """A set of patterns: the union of what they match."""

    __slots__ = ("_regex", "patterns", "prefixes")

    def __init__(self, patterns: Iterable[str]) -> None:
        pats = tuple(dict.fromkeys(patterns))
        for p in pats:
            _check_segments(p, "pattern", wildcards=True)
        self.patterns = pats
        self.prefixes: tuple[bytes, ...] = tuple(dict.fromkeys(pattern_prefix(p) for p in pats))
        body = "|".join(f"(?:{_compile(p).pattern})" for p in pats)
        self._regex = re.compile(body) if pats else None

    def matches(self, topic: str) -> bool:
        return self._regex is not None and self._regex.match(topic) is not None

    def __repr__(self) -> str:
        return f"TopicFilter({list(self.patterns)!r})"
