"""Discovery across hosts: network namespaces on bridges (lab.py), real processes (peer.py).

Deadlines here are generous (a loaded CI machine); the figures themselves are measured by
bench/discovery.py. What must be fast by design is asserted with its design bound: a crash
or a pulled cable is noticed within heartbeat interval + timeout (0.5 + 2.0 s), with slack.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest

from .lab import Lab

T = 10.0
LIVENESS = 3.0
"""A crash or a pulled cable must be noticed within this (the issue's bound)."""


def test_a_subscriber_finds_a_publisher_on_another_host_and_sees_it_leave(lab: Lab) -> None:
    h1, h2 = lab.add_host("h1"), lab.add_host("h2")
    sub = h2.peer("sub", "orders")
    sub.event("started", T)
    pub = h1.peer("pub", "orders")
    joined = sub.event("joined", T)
    assert joined["endpoint"].startswith(f"tcp://{h1.addr()}:"), joined
    assert joined["interface"] == "eth0"
    sub.event("msg", T)
    pub.event("announced", T)
    pub.event("peers", T, n=1)
    assert pub.quit() == 0
    left = sub.event("left", T)
    assert left["reason"] == "goodbye"  # the mDNS goodbye came before anything else
    assert sub.quit() == 0


def test_a_late_subscriber_finds_a_running_publisher(lab: Lab) -> None:
    h1, h2 = lab.add_host("h1"), lab.add_host("h2")
    pub = h1.peer("pub", "orders")
    pub.event("announced", T)
    sub = h2.peer("sub", "orders")
    started = sub.event("started", T)
    joined = sub.event("joined", T)
    assert joined["source"] == "mdns"
    # an announced service answers a new browser's query at once (RFC 6762 section 6)
    assert joined["t"] - started["t"] < 2.0
    sub.event("msg", T)


def test_discovery_over_ipv6_only(lab: Lab) -> None:
    h1 = lab.add_host("h1", v4=False)
    h2 = lab.add_host("h2", v4=False)
    sub = h2.peer("sub", "orders")
    sub.event("started", T)
    h1.peer("pub", "orders").event("announced", T)
    joined = sub.event("joined", T)
    assert joined["endpoint"].startswith(f"tcp://[{h1.addr(v6=True)}]:"), joined
    sub.event("msg", T)


def test_dual_stack_hosts_announce_both_families(lab: Lab) -> None:
    h1, h2 = lab.add_host("h1"), lab.add_host("h2")
    sub = h2.peer("sub", "orders", "--no-hints")
    sub.event("started", T)
    h1.peer("pub", "orders")
    joined = sub.event("joined", T)
    assert set(joined["addresses"]) == {h1.addr(), h1.addr(v6=True)}
    assert joined["endpoint"].startswith(f"tcp://{h1.addr()}:")  # IPv4 first on the link


def test_a_killed_publisher_is_noticed_within_the_liveness_bound(lab: Lab) -> None:
    h1, h2 = lab.add_host("h1"), lab.add_host("h2")
    sub = h2.peer("sub", "orders")
    pub = h1.peer("pub", "orders")
    sub.event("joined", T)
    pub.event("announced", T)
    killed = time.time()
    pub.kill()  # SIGKILL: no goodbye; mDNS caches keep its records for many minutes
    left = sub.event("left", T)
    assert left["reason"] == "disconnected"
    assert left["t"] - killed < LIVENESS


def test_a_pulled_cable_is_noticed_and_the_peer_comes_back(lab: Lab) -> None:
    h1, h2 = lab.add_host("h1"), lab.add_host("h2")
    sub = h2.peer("sub", "orders")
    pub = h1.peer("pub", "orders")
    sub.event("joined", T)
    pub.event("peers", T, n=1)
    h1.cable(False)
    pulled = time.time()
    left = sub.event("left", T)
    assert left["reason"] == "disconnected"
    assert left["t"] - pulled < LIVENESS
    pub.event("peers", T, n=0)  # the publisher's heartbeats gave up on the subscriber too
    h1.cable(True)
    back = sub.event("joined", T)
    assert back["reason"] == "reconnected" and back["instance"] == left["instance"]
    pub.event("peers", T, n=1)
    # messages flow again
    sub.expect(lambda d: d["event"] == "msg" and d["t"] > back["t"], T, "a message after")


def test_after_a_long_outage_the_publisher_announces_again_and_is_found(lab: Lab) -> None:
    h1, h2 = lab.add_host("h1"), lab.add_host("h2")
    # the subscriber gives up on a silent peer after 1 s (30 s by default)
    sub = h2.peer("sub", "orders", "--forget-after", "1.0")
    pub = h1.peer("pub", "orders")
    joined = sub.event("joined", T)
    pub.event("announced", T)
    h1.cable(False)
    sub.event("left", T, reason="disconnected")
    time.sleep(2.5)  # forgotten by now: no more reconnection attempts
    h1.cable(True)
    # the link came back: the publisher probes and announces again (RFC 6762 section 8)
    back = sub.event("joined", T)
    assert back["instance"] == joined["instance"] and back["reason"] == "connected"
    sub.expect(lambda d: d["event"] == "msg" and d["t"] > back["t"], T, "a message after")


def test_a_publisher_restarting_on_a_new_port_is_followed(lab: Lab) -> None:
    h1, h2 = lab.add_host("h1"), lab.add_host("h2")
    sub = h2.peer("sub", "orders")
    first = h1.peer("pub", "orders", "--name", "api")
    joined = sub.event("joined", T)
    first.event("announced", T)
    first.kill()
    sub.event("left", T, reason="disconnected")
    second = h1.peer("pub", "orders", "--name", "api")  # same instance name, new port
    again = sub.event("joined", T)
    assert again["instance"] == joined["instance"]
    assert again["endpoint"] != joined["endpoint"]
    new_id = second.event("started", T)["node_id"]
    sub.expect(lambda d: d["event"] == "msg" and d["sender"] == new_id, T, "the new sender")
    second.event("announced", T)
    assert second.quit() == 0
    sub.event("left", T, reason="goodbye")


def test_two_interfaces_announce_only_their_own_addresses_and_one_can_be_chosen(
    lab: Lab,
) -> None:
    h1 = lab.add_host("h1", switches=("lan1", "lan2"))
    on1 = lab.add_host("h2", switches=("lan1",))
    on2 = lab.add_host("h3", switches=("lan2",))
    subs = [h.peer("sub", "orders") for h in (on1, on2)]
    for s in subs:
        s.event("started", T)
    everywhere = h1.peer("pub", "orders", "--name", "all")
    seen1 = subs[0].event("joined", T, instance="all pub orders #1")
    seen2 = subs[1].event("joined", T, instance="all pub orders #1")
    # each link hears only the addresses it can reach
    assert set(seen1["addresses"]) == {h1.addr("lan1"), h1.addr("lan1", v6=True)}
    assert set(seen2["addresses"]) == {h1.addr("lan2"), h1.addr("lan2", v6=True)}
    everywhere.quit()
    chosen = h1.peer("pub", "orders", "--name", "eth1only", "--interfaces", "eth1")
    got = subs[1].event("joined", T, instance="eth1only pub orders #1")
    assert got["endpoint"].startswith(f"tcp://{h1.addr('lan2')}:")
    chosen.event("announced", T)
    subs[0].none("joined", 2.0)  # lan1 never hears of it


def test_static_peers_without_multicast(lab: Lab, tmp_path: Path) -> None:
    h1, h2 = lab.add_host("h1"), lab.add_host("h2")
    a = h1.peer("pub", "orders", "--no-mdns", "--bind", "tcp://*:5601")
    b = h1.peer("pub", "orders", "--no-mdns", "--bind", "tcp://*:5602")
    for p in (a, b):
        p.event("started", T)
    peers = tmp_path / "peers"
    peers.write_text(f"# static peers\norders {h1.addr()}:5601\n")
    sub = h2.peer("sub", "orders", "--no-mdns", "--peers-file", str(peers))
    joined = sub.event("joined", T)
    assert joined["endpoint"] == f"tcp://{h1.addr()}:5601" and joined["source"] == "static"
    # the file is read again when it changes
    peers.write_text(f"orders {h1.addr()}:5601\norders=tcp://{h1.addr()}:5602\n")
    second = sub.event("joined", T)
    assert second["endpoint"] == f"tcp://{h1.addr()}:5602"
    peers.write_text(f"orders {h1.addr()}:5601\n")
    assert sub.event("left", T)["reason"] == "removed"
    # and from the command line / environment form, alongside the file
    env_sub = h2.peer("sub", "orders", "--no-mdns", "--peers", f"orders={h1.addr()}:5602")
    env_sub.event("joined", T, endpoint=f"tcp://{h1.addr()}:5602")


def test_malformed_txt_from_a_forged_responder_is_ignored_with_one_warning(lab: Lab) -> None:
    h1, h2, h3 = lab.add_host("h1"), lab.add_host("h2"), lab.add_host("h3")
    sub = h2.peer("sub", "orders")
    sub.event("started", T)
    forger = h3.spawn([__import__("sys").executable, "-m", "tests.network.forger"])
    forger.event("registered", T)
    pub = h1.peer("pub", "orders")
    pub.event("announced", T)
    joined = sub.event("joined", T)
    assert joined["instance"] != "forged"
    sub.event("msg", T)
    forger.quit()
    assert sub.quit() == 0
    warnings = [line for line in sub.stderr if "discovery.bad_txt" in line]
    assert len(warnings) == 1, sub.stderr  # three forged records, one warning
    assert "WARNING" in warnings[0]


def test_an_instance_name_clash_is_resolved_by_renaming(lab: Lab) -> None:
    h1, h2, h3 = lab.add_host("h1"), lab.add_host("h2"), lab.add_host("h3")
    sub = h3.peer("sub", "orders")
    sub.event("started", T)
    first = h1.peer("pub", "orders", "--name", "same")
    assert first.event("announced", T)["instance"] == "same pub orders #1"
    second = h2.peer("pub", "orders", "--name", "same")
    assert second.event("announced", T)["instance"] == "same pub orders #1 (2)"
    assert any("discovery.renamed" in line for line in second.stderr)
    ends = {sub.event("joined", T)["endpoint"] for _ in range(2)}
    assert {e.split("//")[1].split(":")[0] for e in ends} == {h1.addr(), h2.addr()}


def test_pushers_and_pullers_find_each_other(lab: Lab) -> None:
    h1, h2, h3 = lab.add_host("h1"), lab.add_host("h2"), lab.add_host("h3")
    pullers = [h.peer("pull", "jobs") for h in (h2, h3)]
    for p in pullers:
        p.event("started", T)
    push = h1.peer("push", "jobs")
    push.event("peers", T, n=2)
    for p in pullers:
        p.event("joined", T)
        p.event("msg", T)  # each puller takes a share


@pytest.mark.parametrize("kind", ["sub"])
def test_receivers_ignore_other_services_and_kinds(lab: Lab, kind: str) -> None:
    h1, h2 = lab.add_host("h1"), lab.add_host("h2")
    sub = h2.peer(kind, "orders")
    sub.event("started", T)
    h1.peer("pub", "billing").event("announced", T)
    h1.peer("push", "orders").event("announced", T)
    sub.none("joined", 1.5)


def test_peermq_peers_json_lists_the_services_of_other_hosts(lab: Lab) -> None:
    h1, h2 = lab.add_host("h1"), lab.add_host("h2")
    pub = h1.peer("pub", "orders", "--name", "api")
    push = h1.peer("push", "jobs", "--name", "api")
    ids = {p.event("started", T)["node_id"] for p in (pub, push)}
    for p in (pub, push):
        p.event("announced", T)
    out = h2.sh(sys.executable, "-m", "peermq", "peers", "--json", "--timeout", "3")
    rows = [json.loads(line) for line in out.splitlines()]
    assert [(r["type"], r["service"], r["kind"], r["instance"]) for r in rows] == [
        ("peer", "jobs", "push", "api push jobs #1"),
        ("peer", "orders", "pub", "api pub orders #1"),
    ]
    assert {r["node_id"] for r in rows} == ids
    assert all(r["endpoint"].startswith(f"tcp://{h1.addr()}:") for r in rows)
    # --watch: a peer that leaves is reported
    watch = h2.spawn([sys.executable, "-m", "peermq", "peers", "--watch", "--json", "orders"])
    joined = watch.expect(lambda d: d.get("type") == "joined", T, "joined")
    assert joined["instance"] == "api pub orders #1"
    pub.quit()
    left = watch.expect(lambda d: d.get("type") == "left", T, "left")
    assert left["instance"] == "api pub orders #1" and left["reason"] == "goodbye"


def test_peermq_peers_shows_only_live_peers_after_a_crash(lab: Lab) -> None:
    h1, h2 = lab.add_host("h1"), lab.add_host("h2")
    pub = h1.peer("pub", "orders", "--name", "doomed")
    pub.event("started", T)
    pub.event("announced", T)
    watch = h2.spawn([sys.executable, "-m", "peermq", "peers", "--watch", "--json", "orders"])
    joined = watch.expect(lambda d: d.get("type") == "joined", T, "joined")
    assert joined["instance"] == "doomed pub orders #1"
    pub.kill()  # SIGKILL: no goodbye; mDNS would keep its records for minutes
    left = watch.expect(lambda d: d.get("type") == "left", T, "left")
    assert left["instance"] == "doomed pub orders #1" and left["reason"] == "unreachable"
    out = h2.sh(sys.executable, "-m", "peermq", "peers", "--json", "--timeout", "2")
    assert [json.loads(line)["instance"] for line in out.splitlines()] == []
