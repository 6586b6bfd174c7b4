"""A peer for the network tests: one socket using discovery, reporting JSON lines on stdout.

    python -m tests.network.peer pub orders [--interval 0.05] [--interfaces eth1] ...

Senders send ``{"n": i, "t": wall clock}`` on ``<service>.tick`` every interval and report
when they are announced and how many peers they have; receivers report each peer event and
each message. Closing stdin closes the socket cleanly (mDNS goodbyes) and exits 0.
"""

from __future__ import annotations

import argparse
import json
import logging
import select
import sys
import time

import peermq
from peermq.config import DiscoveryOptions, SocketOptions
from peermq.discovery import PeerEvent


def out(event: str, **fields: object) -> None:
    print(json.dumps({"event": event, "t": time.time(), **fields}), flush=True)


def stdin_closed() -> bool:
    ready, _, _ = select.select([sys.stdin], [], [], 0)
    return bool(ready) and sys.stdin.readline() == ""


def on_peer(ev: PeerEvent) -> None:
    out(ev.kind.value, instance=ev.peer.instance, endpoint=ev.peer.endpoint, reason=ev.reason,
        node_id=ev.peer.node_id, source=ev.peer.source.value, interface=ev.peer.interface,
        addresses=list(ev.peer.addresses))


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("role", choices=["pub", "sub", "push", "pull"])
    p.add_argument("service")
    p.add_argument("--interval", type=float, default=0.05)
    p.add_argument("--interfaces", default="")
    p.add_argument("--name")
    p.add_argument("--node-id")
    p.add_argument("--bind", action="append", default=[])
    p.add_argument("--peers", default="")
    p.add_argument("--peers-file")
    p.add_argument("--no-mdns", action="store_true")
    p.add_argument("--no-hints", action="store_true")
    p.add_argument("--no-ipv4", action="store_true")
    p.add_argument("--no-ipv6", action="store_true")
    p.add_argument("--heartbeat", type=float, nargs=2, metavar=("INTERVAL", "TIMEOUT"))
    p.add_argument("--forget-after", type=float, default=30.0)
    p.add_argument("--quiet", action="store_true",
                   help="receivers: report the first message of each sender, not every one")
    p.add_argument("--verbose", action="store_true")
    a = p.parse_args()
    logging.basicConfig(level=logging.DEBUG if a.verbose else logging.WARNING, stream=sys.stderr,
                        format="%(relativeCreated)d %(name)s %(levelname)s %(message)s")
    logging.getLogger("zeroconf").setLevel(logging.WARNING)
    hb = a.heartbeat or (0.5, 2.0)
    opts = DiscoveryOptions(
        mdns=not a.no_mdns, probe_hints=not a.no_hints, ipv4=not a.no_ipv4, ipv6=not a.no_ipv6,
        interfaces=tuple(i for i in a.interfaces.split(",") if i),
        peers=tuple(x for x in a.peers.split(",") if x), peers_file=a.peers_file,
        heartbeat_interval=hb[0], heartbeat_timeout=hb[1], forget_after=a.forget_after,
    )
    kinds = {"pub": peermq.Publisher, "sub": peermq.Subscriber, "push": peermq.Pusher,
             "pull": peermq.Puller}
    out("starting")
    with peermq.Node(name=a.name, node_id=a.node_id, discovery=opts, mirror=None) as node:
        sock = kinds[a.role](service=a.service, node=node, bind=a.bind or None,
                             options=SocketOptions(send_timeout=0.2))
        assert sock.discovery is not None
        out("started", pid=__import__("os").getpid(), endpoints=sock.endpoints,
            node_id=node.id)
        if a.role in ("pub", "push"):
            run_sender(sock, a.service, a.interval)
        else:
            sock.discovery.on_peer(on_peer)
            run_receiver(sock, a.quiet)
        sock.close()
    out("closed")
    return 0


def run_sender(sock: peermq.Publisher | peermq.Pusher, service: str, interval: float) -> None:
    try:
        _send_until_closed(sock, service, interval)
    finally:
        out("summary", sent=_sent[0])


_sent = [0]


def _send_until_closed(
    sock: peermq.Publisher | peermq.Pusher, service: str, interval: float
) -> None:
    assert sock.discovery is not None
    announced = False
    peers = -1
    n = 0
    next_send = time.monotonic()
    while not stdin_closed():
        if not announced and sock.discovery.announced:
            announced = True
            out("announced", instance=sock.discovery.instance)
        count = sock.subscribers if isinstance(sock, peermq.Publisher) else sock.peers
        if count != peers:
            peers = count
            out("peers", n=count)
        now = time.monotonic()
        if now >= next_send:
            next_send = now + interval
            if count:
                try:
                    sock.send(f"{service}.tick", {"n": n, "t": time.time()})
                    n += 1
                    _sent[0] = n
                except peermq.SendTimeoutError:
                    pass
        time.sleep(min(0.01, max(0.0, next_send - time.monotonic())))


def run_receiver(sock: peermq.Subscriber | peermq.Puller, quiet: bool) -> None:
    seen: dict[str, int] = {}
    while not stdin_closed():
        try:
            msgs = sock.recv_many(timeout=0.05)
        except TimeoutError:
            continue
        for msg in msgs:
            data = msg.data if isinstance(msg.data, dict) else {}
            seen[msg.sender] = seen.get(msg.sender, 0) + 1
            if not quiet or seen[msg.sender] == 1:
                out("msg", sender=msg.sender, n=data.get("n"), sent=data.get("t"))
    out("summary", received=sum(seen.values()), senders=len(seen))


if __name__ == "__main__":
    sys.exit(main())
