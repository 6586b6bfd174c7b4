"""CURVE encryption and authentication for peermq nodes; docs/security.md tells the story.

- ``keys``: a node's key pair and its files (the secret one mode 0600, refused otherwise);
- ``trust``: the trust store of peers' public keys, like ssh's known_hosts;
- ``guard``: one thread per secure node: the ZAP authenticator over the trust store in memory,
  and the watch over handshakes (backoff after a failure, rate-limited reports);
- ``service``: ``NodeSecurity``, what ``Node.security`` is, and what sockets call;
- ``screen``: finding and cutting off a peer that keeps sending malformed frames.

Switch it on with ``Node(security=SecurityOptions())`` or ``PEERMQ_SECURITY=curve``.
"""

from __future__ import annotations

from ..config import SecurityOptions, TrustPolicy
from .guard import SecurityStats
from .keys import KeyPair, default_keys_dir, fingerprint, generate, init_keys, load_keys, parse_key
from .service import NodeSecurity
from .trust import TrustEntry, TrustStore, Verdict

__all__ = [
    "KeyPair",
    "NodeSecurity",
    "SecurityOptions",
    "SecurityStats",
    "TrustEntry",
    "TrustPolicy",
    "TrustStore",
    "Verdict",
    "default_keys_dir",
    "fingerprint",
    "generate",
    "init_keys",
    "load_keys",
    "parse_key",
]
