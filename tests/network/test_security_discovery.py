"""Discovery is advisory under CURVE: a rogue that announces the same service is never joined."""

from __future__ import annotations

import sys
from pathlib import Path

from peermq.security import TrustStore, init_keys

from .lab import Host, Lab, Proc

T = 15.0


def secure_peer(host: Host, *args: str) -> Proc:
    return host.spawn([sys.executable, "-m", "tests.network.secure_peer", *args])


def test_a_rogue_announcing_the_service_from_another_host_is_refused_by_pinning(
    lab: Lab, tmp_path: Path
) -> None:
    h1, h2, h3 = lab.add_host("h1"), lab.add_host("h2"), lab.add_host("h3")
    keys = {h: init_keys(tmp_path / h) for h in ("h1", "h2", "h3")}
    # h2 pins h1's key under h1's address; h1 trusts h2; h3's key is known to nobody
    TrustStore(tmp_path / "h2" / "trusted").trust(keys["h1"].public, f"h1,{h1.addr()}")
    TrustStore(tmp_path / "h1" / "trusted").trust(keys["h2"].public, "h2")

    sub = secure_peer(h2, "sub", "orders", str(tmp_path / "h2"))
    sub.event("started", T)
    # the rogue announces the same service under the legitimate publisher's name
    rogue = secure_peer(h3, "pub", "orders", str(tmp_path / "h3"), "--name", "orders-server")
    rogue_id = rogue.event("started", T)["node_id"]
    legit = secure_peer(h1, "pub", "orders", str(tmp_path / "h1"), "--name", "orders-server")
    legit_id = legit.event("started", T)["node_id"]
    legit.event("peers", T, n=1)
    for _ in range(20):
        assert sub.event("msg", T)["sender"] == legit_id
    for p in (sub, rogue, legit):  # the subscriber first: it still knows the rogue
        assert p.quit() == 0
    known = {p["node_id"]: p for p in sub.event("known", T)["peers"]}
    assert known[rogue_id]["endpoint"].startswith(f"tcp://{h3.addr()}:")  # it was found ...
    assert known[rogue_id]["state"] != "up", known  # ... and never joined
    rogue_stats = rogue.event("stats", T)
    # the subscriber never even tried: nothing is pinned for h3's address
    assert rogue_stats["accepted"] == 0 and rogue_stats["refused"] == 0, rogue_stats
    rogue_peers = [line["n"] for line in rogue.seen if line.get("event") == "peers"]
    assert rogue_peers == [0], rogue_peers
    assert not any(line.get("sender") == rogue_id for line in sub.seen)
