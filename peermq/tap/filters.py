"""Which of the events a tap sees are shown: topics, headers, nodes and ``--where``."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from ..errors import ConfigError
from ..topics import TopicFilter
from .events import Event, NodeFound, NodeJoined, NodeLeft, NodeStatus, TapGap, TapMessage
from .where import Expression

__all__ = ["HeaderTest", "TapFilter", "parse_header_test"]


@dataclass(frozen=True, slots=True)
class HeaderTest:
    """One header predicate: ``key=value``, ``key!=value``, ``key`` (present), ``!key`` (absent)."""

    key: str
    value: str | None = None
    negate: bool = False

    def __call__(self, headers: Mapping[str, str]) -> bool:
        if self.value is None:
            return (self.key in headers) != self.negate
        return (headers.get(self.key) == self.value) != self.negate

    def __str__(self) -> str:
        if self.value is None:
            return f"!{self.key}" if self.negate else self.key
        return f"{self.key}{'!=' if self.negate else '='}{self.value}"


def parse_header_test(text: str) -> HeaderTest:
    """``key=value``, ``key!=value``, ``key`` or ``!key``; ConfigError if none of these."""
    key, sep, value = text.partition("=")
    if sep:
        negate = key.endswith("!")
        key = key.removesuffix("!")
        if not key:
            raise ConfigError(f"header test {text!r} has no key")
        return HeaderTest(key, value, negate)
    negate = text.startswith("!")
    key = text.removeprefix("!")
    if not key:
        raise ConfigError(f"header test {text!r} has no key")
    return HeaderTest(key, None, negate)


class TapFilter:
    """All conditions must hold for a message to be shown; gaps and node events pass the topic
    and node conditions only."""

    def __init__(
        self,
        *,
        topics: Iterable[str] = (">",),
        exclude: Iterable[str] = (),
        headers: Iterable[HeaderTest] = (),
        nodes: Iterable[str] = (),
        where: str | None = None,
    ) -> None:
        self._include = TopicFilter(topics)
        excluded = tuple(exclude)
        self._exclude = TopicFilter(excluded) if excluded else None
        self._headers = tuple(headers)
        self._nodes = tuple(nodes)
        for n in self._nodes:
            if not isinstance(n, str) or not n:
                raise ConfigError(f"a node pattern must be a non-empty str, got {n!r}")
        self._where = Expression(where) if where is not None else None
        self._topic_cache: dict[str, bool] = {}

    @property
    def topics(self) -> tuple[str, ...]:
        return self._include.patterns

    def topic_ok(self, topic: str) -> bool:
        ok = self._topic_cache.get(topic)
        if ok is None:
            ok = self._include.matches(topic) and not (
                self._exclude is not None and self._exclude.matches(topic)
            )
            if len(self._topic_cache) >= 4096:
                self._topic_cache.clear()
            self._topic_cache[topic] = ok
        return ok

    def node_ok(self, node: str, name: str) -> bool:
        """``--node``: a glob on the node's name, or a prefix of its id."""
        if not self._nodes:
            return True
        return any(node.startswith(p) or fnmatch.fnmatchcase(name, p) for p in self._nodes)

    def message_ok(self, msg: TapMessage) -> bool:
        if not self.topic_ok(msg.topic) or not self.node_ok(msg.node, msg.name):
            return False
        if self._headers and not all(test(msg.headers) for test in self._headers):
            return False
        return self._where is None or self._where.matches(msg)

    def __call__(self, event: Event) -> bool:
        if isinstance(event, TapMessage):
            return self.message_ok(event)
        if isinstance(event, TapGap):
            return self.topic_ok(event.topic) and self.node_ok(event.node, event.name)
        if isinstance(event, (NodeFound, NodeJoined, NodeLeft, NodeStatus)):
            return self.node_ok(event.node, event.name)
        return True

