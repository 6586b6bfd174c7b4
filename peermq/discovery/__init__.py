"""Discovery by service name: DNS-SD over multicast DNS (python-zeroconf) and static peers.

``Publisher(service="orders")`` binds and announces itself; ``Subscriber(service="orders")``
finds every publisher of "orders" and stays connected to them as they come and go. Pushers
announce and pullers connect the same way. docs/discovery.md has the whole story.

Importing this package is cheap; python-zeroconf is loaded when a node first uses discovery.
"""

from __future__ import annotations

from collections.abc import Mapping

from ..config import DiscoveryOptions
from .peers import PeerEvent, PeerEventKind, PeerInfo, PeerSource
from .txt import SERVICE_TYPE, PeerKind, Service

__all__ = [
    "SERVICE_TYPE",
    "PeerEvent",
    "PeerEventKind",
    "PeerInfo",
    "PeerKind",
    "PeerSource",
    "Service",
    "options_from_env",
]

_OFF = ("0", "off", "no", "false")


def options_from_env(env: Mapping[str, str]) -> DiscoveryOptions:
    """The default node's (and the CLI's) discovery options from ``PEERMQ_*`` variables.

    ``PEERMQ_PEERS`` (``svc=tcp://host:port,...``), ``PEERMQ_PEERS_FILE`` (a path),
    ``PEERMQ_INTERFACES`` (names or addresses, comma-separated) and ``PEERMQ_MDNS`` (``off``
    for static peers only).
    """
    from .static import parse_list  # noqa: PLC0415 (keeps this module's imports light)

    peers = tuple(f"{p.service}={p.endpoint}" for p in parse_list(env.get("PEERMQ_PEERS", "")))
    interfaces = tuple(i.strip() for i in env.get("PEERMQ_INTERFACES", "").split(",")
                       if i.strip())
    mdns = env.get("PEERMQ_MDNS", "").strip().lower() not in _OFF
    return DiscoveryOptions(mdns=mdns, interfaces=interfaces, peers=peers,
                            peers_file=env.get("PEERMQ_PEERS_FILE") or None)
