"""The spool: durable, acknowledged delivery with no broker.

``Pusher(spool="dir")`` stores every message in a segment log before ``send`` returns and keeps
it until a puller acknowledges it; see docs/spool.md for what is guaranteed and what is not.
This package is the storage and the bookkeeping; the sockets that use it are in peermq.
"""

from __future__ import annotations

from .dedup import DedupStore, DedupWindow
from .log import Damage, Recovery
from .store import Spool, SpoolStats

__all__ = ["Damage", "DedupStore", "DedupWindow", "Recovery", "Spool", "SpoolStats"]
