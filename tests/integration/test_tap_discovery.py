"""A tap finds mirrors by discovery: static peers anywhere, mDNS in a private namespace only."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

import peermq
from peermq.config import DiscoveryOptions
from peermq.tap import NodeFound, NodeJoined, NodeLeft, Tap, TapMessage

from ..helpers import REPO
from ..network.conftest import REASON, in_private_namespace
from .test_tap import gather, joined, messages, peer, ready, say

NO_MDNS = DiscoveryOptions(mdns=False)


def test_a_static_mirror_peer_is_found_and_watched() -> None:
    with peer("pub", "static.t", "50") as proc:
        mirror, data = ready(proc)
        options = DiscoveryOptions(mdns=False, peers=(f"peermq.mirror={mirror}",))
        with peermq.Node(mirror=None, discovery=options) as node, \
                Tap(node=node) as tap:  # no endpoint given: discovery supplies it
            tap.discover(node.discovery)
            events = gather(tap, joined(1))
            (found,) = [e for e in events if isinstance(e, NodeFound)]
            assert (found.endpoint, found.source) == (mirror, "static")
            with peermq.Subscriber(connect=data):
                say(proc, "go")
                events = gather(tap, lambda ev: len(messages(ev)) >= 50)
    assert [m.seq for m in messages(events)] == list(range(1, 51))


def test_the_cli_finds_mirrors_without_connect() -> None:
    with peer("push", "jobs.found", "20") as proc:
        mirror, data = ready(proc)
        env = {**os.environ, "PEERMQ_MDNS": "off", "PEERMQ_PEERS": f"peermq.mirror={mirror}"}
        tap = subprocess.Popen([sys.executable, "-m", "peermq", "tap", "--json", "--count", "20"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               cwd=REPO, env=env)
        try:
            assert tap.stdout is not None
            first = json.loads(tap.stdout.readline())
            assert (first["event"], first["endpoint"], first["source"]) == (
                "found", mirror, "static")
            assert json.loads(tap.stdout.readline())["event"] == "joined"
            with peermq.Puller(connect=data) as pull:
                say(proc, "go")
                assert [pull.recv(timeout=10.0).seq for _ in range(20)] == list(range(1, 21))
                out, err = tap.communicate(timeout=30)
        finally:
            if tap.poll() is None:
                tap.kill()
                tap.communicate(timeout=10)
    assert tap.returncode == 0, err
    assert "static peers only" in err
    seqs = [r["seq"] for r in map(json.loads, out.splitlines()) if r["type"] == "message"]
    assert seqs == list(range(1, 21))


@pytest.mark.network
@pytest.mark.skipif(not in_private_namespace(), reason=REASON)
def test_mirrors_announced_by_mdns_are_found_and_seen_leaving() -> None:
    """Inside the test namespace only loopback exists: discovery and the mirror both use it."""
    with peer("pub", "mdns.t", "30", "--service", "prices") as proc:
        mirror, data = ready(proc)
        with peermq.Node(mirror=None, discovery=DiscoveryOptions()) as node, \
                Tap(node=node) as tap:
            tap.discover(node.discovery)
            events = gather(tap, joined(1), timeout=20.0)
            (found,) = [e for e in events if isinstance(e, NodeFound)]
            assert found.source == "mdns" and found.endpoint == mirror
            assert found.node and found.node == next(
                e.node for e in events if isinstance(e, NodeJoined))
            with peermq.Subscriber(connect=data):
                say(proc, "go")
                events = gather(tap, lambda ev: len(messages(ev)) >= 30)
                assert proc.stdout is not None and proc.stdout.readline().split()[0] == "sent"
            assert proc.stdin is not None
            proc.stdin.close()  # it closes: mDNS goodbyes and the mirror's own
            left = gather(tap, lambda ev: any(isinstance(e, NodeLeft) for e in ev))
    assert [m.seq for m in messages(events) if isinstance(m, TapMessage)] == list(range(1, 31))
    assert next(e.reason.value for e in left if isinstance(e, NodeLeft)) in ("gone", "closed")


def test_messages_carry_the_service_of_their_socket() -> None:
    with peermq.Node(name="svc", discovery=NO_MDNS) as node, \
            peermq.Publisher(node=node, service="orders", bind="tcp://127.0.0.1:*") as pub:
        assert node.mirror is not None
        with Tap(connect=node.mirror.endpoints) as tap:
            (hello,) = [e for e in gather(tap, joined(1)) if isinstance(e, NodeJoined)]
            pub.send("orders.created", 1)
            (msg,) = messages(gather(tap, lambda ev: len(messages(ev)) >= 1))
    assert [(s.kind, s.service) for s in hello.sockets] == [("pub", "orders")]
    assert (msg.service, msg.kind, msg.name) == ("orders", "pub", "svc")
