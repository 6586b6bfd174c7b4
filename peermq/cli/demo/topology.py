"""Who takes part in the demo, what each sends or wants, and how they find each other.

The wiring lives here and only here: senders bind ``BIND`` (the OS picks a loopback port) and
announce themselves by service name (``Role.service``, on loopback: ``DISCOVERY``); receivers
find the senders of their service and connect to each (docs/discovery.md). Publishers and
subscribers meet on "demo", the pipeline on "demo.jobs"; a subscriber's topics choose what it
gets of what each publisher sends.
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TypedDict

from ...config import DiscoveryOptions
from ...topics import TopicFilter

__all__ = [
    "BIND",
    "DISCOVERY",
    "ROLES",
    "ChildSpec",
    "Kind",
    "Role",
    "connect_endpoints",
    "expected",
    "message",
    "readers_of",
]

BIND = "tcp://127.0.0.1:*"
"""Every demo socket that listens does so on loopback, on a port the OS picks."""
DISCOVERY = DiscoveryOptions(interfaces=("127.0.0.1",))
"""Demo processes find each other by service name, announced on loopback only."""


class ChildSpec(TypedDict):
    """What the demo tells one child (as JSON on its command line)."""

    role: str
    connect: list[str]
    """Receivers: endpoints to connect to besides the senders found by service (none)."""
    rate: float
    """Senders: messages per second."""
    report_every: float


class Kind(enum.Enum):
    PUBLISHER = "publisher"
    PUSHER = "pusher"
    SUBSCRIBER = "subscriber"
    WORKER = "worker"

    @property
    def sends(self) -> bool:
        return self in (Kind.PUBLISHER, Kind.PUSHER)


@dataclass(frozen=True)
class Role:
    """One process of the demo."""

    name: str
    kind: Kind
    about: str
    feeds: tuple[str, ...] = ()
    """Receivers: the senders they connect to."""
    topics: tuple[str, ...] = (">",)
    headers: Mapping[str, str] = field(default_factory=dict)

    @property
    def service(self) -> str:
        """The service it sends on or receives from (docs/discovery.md)."""
        return "demo.jobs" if self.kind in (Kind.PUSHER, Kind.WORKER) else "demo"

    def wants(self, topic: str, headers: Mapping[str, str]) -> bool:
        """Whether this receiver's filters let a message through (workers take any job)."""
        if self.kind is Kind.WORKER:
            return True
        ok_headers = all(headers.get(k) == v for k, v in self.headers.items())
        return ok_headers and _topic_filter(self.topics).matches(topic)

    @property
    def filter_text(self) -> str:
        if self.kind is not Kind.SUBSCRIBER:
            return ""
        text = " ".join(self.topics)
        if self.headers:
            text += " " + " ".join(f"{k}={v}" for k, v in self.headers.items())
        return text


@functools.lru_cache(maxsize=64)
def _topic_filter(patterns: tuple[str, ...]) -> TopicFilter:
    return TopicFilter(patterns)


ROLES: tuple[Role, ...] = (
    Role("orders", Kind.PUBLISHER, "orders.created|paid|shipped, maps, header region"),
    Role("metrics", Kind.PUBLISHER, "metrics.cpu|mem, numbers, header host"),
    Role("jobs", Kind.PUSHER, "jobs.resize, bytes; each job goes to one worker"),
    Role("audit", Kind.SUBSCRIBER, "sees everything", feeds=("orders", "metrics")),
    Role("eu-orders", Kind.SUBSCRIBER, "orders from the EU only", feeds=("orders",),
         topics=("orders.>",), headers={"region": "eu"}),
    Role("web1-cpu", Kind.SUBSCRIBER, "CPU load of host web-1", feeds=("metrics",),
         topics=("metrics.cpu",), headers={"host": "web-1"}),
    Role("worker-1", Kind.WORKER, "takes its share of the jobs", feeds=("jobs",)),
    Role("worker-2", Kind.WORKER, "takes its share of the jobs", feeds=("jobs",)),
    Role("worker-3", Kind.WORKER, "takes its share of the jobs", feeds=("jobs",)),
)

_ORDER_TOPICS = ("orders.created", "orders.paid", "orders.shipped")
_REGIONS = ("eu", "us", "ap")
_HOSTS = ("web-1", "web-2")


def message(sender: str, i: int) -> tuple[str, object, dict[str, str]]:
    """The ``i``-th message (from 0) that ``sender`` sends: ``(topic, data, headers)``.

    Deterministic, so that the demo knows how many messages each receiver should get.
    """
    if sender == "orders":
        region = _REGIONS[(i // 3) % 3]
        data = {"order": i, "amount": 5 + (i * 37) % 95, "region": region}
        return _ORDER_TOPICS[i % 3], data, {"region": region}
    if sender == "metrics":
        value = round(0.2 + (i * 7) % 60 / 100, 2)
        return ("metrics.cpu", "metrics.mem")[i % 2], value, {"host": _HOSTS[(i // 2) % 2]}
    if sender == "jobs":
        return "jobs.resize", f"photo-{i}.jpg".encode(), {}
    raise ValueError(f"{sender!r} sends nothing")


def readers_of(sender: str) -> int:
    """How many receivers connect to ``sender`` (those of its service): it waits for them."""
    service = next(r.service for r in ROLES if r.name == sender)
    return sum(1 for r in ROLES if not r.kind.sends and r.service == service)


def connect_endpoints(role: Role, bound: Mapping[str, list[str]]) -> list[str]:
    """Endpoints ``role`` is given: none, it finds its senders by service name."""
    return []


def expected(role: Role, sent: Mapping[str, int]) -> int:
    """How many messages ``role`` should get when its senders sent ``sent[name]`` each.

    For a worker this is the whole pipeline's count: the workers share it.
    """
    total = 0
    for sender in role.feeds:
        for i in range(sent.get(sender, 0)):
            topic, _, headers = message(sender, i)
            total += role.wants(topic, headers)
    return total
