"""A secure peer for the network tests: one socket using discovery and CURVE, JSON lines out.

    python -m tests.network.secure_peer pub|sub SERVICE KEYS_DIR [--name NAME]

A publisher sends ``{"n": i}`` on ``<service>.tick`` every 50 ms and reports its subscriber
count; a subscriber reports each message with its sender and stats. Closing stdin ends it.
"""

from __future__ import annotations

import argparse
import json
import logging
import select
import sys
import time

import peermq
from peermq.config import DiscoveryOptions, SecurityOptions, SocketOptions


def out(event: str, **fields: object) -> None:
    print(json.dumps({"event": event, "t": time.time(), **fields}), flush=True)


def stdin_closed() -> bool:
    ready, _, _ = select.select([sys.stdin], [], [], 0)
    return bool(ready) and sys.stdin.readline() == ""


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("role", choices=["pub", "sub"])
    p.add_argument("service")
    p.add_argument("keys")
    p.add_argument("--name")
    a = p.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format="%(relativeCreated)d %(name)s %(levelname)s %(message)s")
    logging.getLogger("zeroconf").setLevel(logging.ERROR)
    node = peermq.Node(name=a.name, mirror=None, security=SecurityOptions(keys_dir=a.keys),
                       discovery=DiscoveryOptions(heartbeat_interval=0.5, heartbeat_timeout=2.0))
    with node:
        assert node.security is not None
        opts = SocketOptions(send_timeout=0.2)
        if a.role == "pub":
            with peermq.Publisher(service=a.service, node=node, options=opts) as pub:
                out("started", node_id=node.id, endpoints=pub.endpoints)
                n, subs = 0, -1
                while not stdin_closed():
                    if pub.subscribers != subs:
                        subs = pub.subscribers
                        out("peers", n=subs)
                    pub.send(f"{a.service}.tick", {"n": n})
                    n += 1
                    time.sleep(0.05)
        else:
            with peermq.Subscriber(service=a.service, node=node, options=opts) as sub:
                out("started", node_id=node.id)
                while not stdin_closed():
                    try:
                        msg = sub.recv(timeout=0.05)
                    except TimeoutError:
                        continue
                    out("msg", sender=msg.sender, n=msg.data.get("n")  # type: ignore[union-attr]
                        if isinstance(msg.data, dict) else None)
                assert sub.discovery is not None
                out("known", peers=[{"endpoint": info.endpoint, "node_id": info.node_id,
                                     "state": state} for info, state in sub.discovery.known()])
        out("stats", **{k: v for k, v in vars(node.security.stats()).items()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
