"""Spooled sockets with discovery: pushers announce ``spool-push``, spooled pullers find them.

Hosts are network namespaces on a bridge (lab.py); each socket is a real process: this module
run as ``python -m tests.network.test_spool_discovery ROLE SERVICE ...`` (see ``main``), which
reports JSON lines on stdout and takes commands on stdin. A puller's process is SIGKILLed and
a pusher restarted on a new port; plain and spooled sockets on one service name skip each
other with a warning. The asyncio shells run once too (``--aio``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import select
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import peermq
from peermq import aio
from peermq.config import SecurityOptions
from peermq.discovery import PeerEvent, PeerEventKind, PeerKind
from peermq.security import TrustStore, init_keys

from .lab import Host, Lab, Proc

T = 15.0
LOOPBACK = peermq.DiscoveryOptions(interfaces=("127.0.0.1",))


# -- the peer process ------------------------------------------------------------------------

def out(event: str, **fields: object) -> None:
    print(json.dumps({"event": event, "t": time.time(), **fields}), flush=True)


def stdin_line() -> str | None:
    """A line from stdin if one is ready ("" once it is closed), else None."""
    ready, _, _ = select.select([sys.stdin], [], [], 0)
    return sys.stdin.readline() if ready else None


def on_peer(ev: PeerEvent) -> None:
    out(ev.kind.value, instance=ev.peer.instance, endpoint=ev.peer.endpoint, reason=ev.reason,
        kind=ev.peer.kind.value)


def run_pusher(a: argparse.Namespace, node: peermq.Node) -> None:
    """Store ``send A B`` commands' messages; report announced, peers and pending changes."""
    with peermq.Pusher(service=a.service, node=node, spool=a.spool) as push:
        assert push.discovery is not None
        out("started", endpoints=push.endpoints, node_id=node.id, kind=push.discovery.kind.value)
        announced, peers, pending = False, -1, -1
        while True:
            line = stdin_line()
            if line == "":
                break
            if line:
                _, first, end = line.split()
                for n in range(int(first), int(end)):
                    push.send(f"{a.service}.job", {"n": n})
                out("sent", end=int(end))
            if not announced and push.discovery.announced:
                announced = True
                out("announced", instance=push.discovery.instance)
            if push.peers != peers:
                peers = push.peers
                out("peers", n=peers)
            if push.pending() != pending:
                pending = push.pending()
                out("pending", n=pending)
            time.sleep(0.01)
        out("closing", pending=push.pending())


def run_puller(a: argparse.Namespace, node: peermq.Node) -> None:
    if a.plain:
        pull: Any = peermq.Puller(service=a.service, node=node)
    else:
        ack = peermq.AckMode.EXPLICIT if a.hold else peermq.AckMode.AUTO
        pull = peermq.Puller(service=a.service, node=node, ack=ack)
    with pull:
        assert pull.discovery is not None
        pull.discovery.on_peer(on_peer)
        out("started", node_id=node.id, kind=pull.discovery.kind.value)
        skipped: set[str] = set()
        while stdin_line() != "":
            try:
                msg = pull.recv(timeout=0.05)
            except TimeoutError:
                pass
            else:
                out("msg", n=msg.data["n"], sender=msg.sender)
            for info in pull.discovery.skipped():
                if info.instance not in skipped:
                    skipped.add(info.instance)
                    out("skipped", instance=info.instance, kind=info.kind.value)


async def run_puller_aio(a: argparse.Namespace, node: peermq.Node) -> None:
    async with aio.Puller(service=a.service, node=node, ack=peermq.AckMode.AUTO) as pull:
        assert pull.discovery is not None
        pull.discovery.on_peer(on_peer)
        out("started", node_id=node.id, kind=pull.discovery.kind.value)
        while stdin_line() != "":
            try:
                msg = await pull.recv(timeout=0.05)
            except TimeoutError:
                continue
            assert isinstance(msg.data, dict)
            out("msg", n=msg.data["n"], sender=msg.sender)


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("role", choices=["push", "pull"])
    p.add_argument("service")
    p.add_argument("--spool", help="push: the spool directory")
    p.add_argument("--name")
    p.add_argument("--plain", action="store_true", help="pull: a plain Puller")
    p.add_argument("--hold", action="store_true", help="pull: manual acks, never given")
    p.add_argument("--aio", action="store_true", help="pull: the asyncio Puller")
    a = p.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format="%(name)s %(levelname)s %(message)s")
    logging.getLogger("zeroconf").setLevel(logging.ERROR)
    opts = peermq.DiscoveryOptions(heartbeat_interval=0.5, heartbeat_timeout=2.0)
    with peermq.Node(name=a.name, discovery=opts, mirror=None) as node:
        if a.role == "push":
            run_pusher(a, node)
        elif a.aio:
            asyncio.run(run_puller_aio(a, node))
        else:
            run_puller(a, node)
    out("closed", pid=os.getpid())
    return 0


# -- the tests -------------------------------------------------------------------------------

def peer(host: Host, *args: str) -> Proc:
    return host.spawn([sys.executable, "-m", "tests.network.test_spool_discovery", *args])


def pusher(host: Host, spool: Path, *args: str) -> Proc:
    push = peer(host, "push", "jobs", "--spool", str(spool), *args)
    assert push.event("started", T)["kind"] == "spool-push"
    push.event("announced", T)
    return push


def puller(host: Host, *args: str) -> Proc:
    pull = peer(host, "pull", "jobs", *args)
    pull.event("started", T)
    return pull


def send(push: Proc, first: int, end: int, pending: int = 0) -> None:
    """Have it store messages ``first`` to ``end - 1``; wait until ``pending`` are left."""
    push.send(f"send {first} {end}")
    sent = push.event("sent", T, end=end)["t"]
    push.expect(lambda d: d["event"] == "pending" and d["t"] >= sent and d["n"] == pending, T,
                f"pending={pending} after sending")


def finish(proc: Proc) -> list[int]:
    """Close it cleanly; the numbers of the messages it reported, in order."""
    assert proc.quit() == 0, proc.stderr[-8:]
    proc.event("closed", T)  # every line before it is in proc.seen now
    return [line["n"] for line in proc.seen if line.get("event") == "msg"]


def test_two_pullers_find_a_spooled_pusher_by_name_and_ack_everything(
        lab: Lab, tmp_path: Path) -> None:
    h1, h2, h3 = lab.add_host("h1"), lab.add_host("h2"), lab.add_host("h3")
    pulls = [puller(h2), puller(h3, "--aio")]
    push = pusher(h1, tmp_path / "outbox")
    for pull in pulls:
        joined = pull.event("joined", T)
        assert joined["kind"] == "spool-push" and joined["reason"] == "connected", joined
        assert joined["endpoint"].startswith(f"tcp://{h1.addr()}:"), joined
    push.event("peers", T, n=2)
    send(push, 0, 400)  # and every message acknowledged
    assert push.quit() == 0
    for pull in pulls:
        assert pull.event("left", T)["reason"] == "goodbye"
    shares = [finish(pull) for pull in pulls]
    assert sorted(shares[0] + shares[1]) == list(range(400))  # each once
    assert shares[0] and shares[1], "both pullers got work"


def test_a_late_puller_gets_what_waited_in_the_spool(lab: Lab, tmp_path: Path) -> None:
    h1, h2 = lab.add_host("h1"), lab.add_host("h2")
    push = pusher(h1, tmp_path / "outbox")
    send(push, 0, 100, pending=100)  # nobody to take them: stored, not lost
    pull = puller(h2)
    pull.event("joined", T)
    push.event("pending", T, n=0)
    assert push.quit() == 0
    assert sorted(finish(pull)) == list(range(100))


def test_a_killed_puller_s_work_goes_to_the_next_one(lab: Lab, tmp_path: Path) -> None:
    h1, h2, h3 = lab.add_host("h1"), lab.add_host("h2"), lab.add_host("h3")
    push = pusher(h1, tmp_path / "outbox")
    holder = puller(h2, "--hold")  # takes messages and never acks them
    holder.event("joined", T)
    push.event("peers", T, n=1)
    send(push, 0, 50, pending=50)
    held = holder.event("msg", T)["n"]
    holder.kill()
    push.event("peers", T, n=0)  # the link is found gone; its messages wait for another
    late = puller(h3)
    late.event("joined", T)
    push.event("pending", T, n=0)
    assert push.quit() == 0
    got = finish(late)
    assert sorted(got) == list(range(50)) and held in got  # what it held, redelivered


def test_a_pusher_restarted_on_a_new_port_is_followed(lab: Lab, tmp_path: Path) -> None:
    h1, h2 = lab.add_host("h1"), lab.add_host("h2")
    pull = puller(h2)
    first = pusher(h1, tmp_path / "outbox")
    old = pull.event("joined", T)
    send(first, 0, 20)
    first.kill()  # no goodbye: the link breaks
    assert pull.event("left", T)["reason"] == "disconnected"
    second = pusher(h1, tmp_path / "outbox")  # the same spool, a new process and port
    new = pull.event("joined", T)
    assert new["endpoint"] != old["endpoint"], (old, new)
    send(second, 20, 40)
    assert second.quit() == 0
    got = finish(pull)
    assert sorted(set(got)) == list(range(40)), (got, pull.seen)


def test_plain_and_spooled_pullers_on_one_name_a_plain_one_skips_with_a_warning(
        lab: Lab, tmp_path: Path) -> None:
    h1, h2, h3 = lab.add_host("h1"), lab.add_host("h2"), lab.add_host("h3")
    plain = puller(h2, "--plain")
    spooled = puller(h3)
    push = pusher(h1, tmp_path / "outbox")
    assert plain.event("skipped", T)["kind"] == "spool-push"
    spooled.event("joined", T)
    send(push, 0, 10)
    plain.none("joined", 1.0)  # it never connected to the spooled pusher's ROUTER
    assert push.quit() == 0
    assert finish(plain) == []
    assert sorted(finish(spooled)) == list(range(10))
    warnings = [line for line in plain.stderr if "discovery.skipped" in line]
    assert len(warnings) == 1 and "ack= or spool=" in warnings[0], plain.stderr


def test_a_spooled_puller_skips_a_plain_pusher_of_its_service() -> None:
    with peermq.Node(name="a", discovery=LOOPBACK) as na, \
            peermq.Node(name="b", discovery=LOOPBACK) as nb, \
            peermq.Pusher(service="jobs", node=na) as push, \
            peermq.Puller(service="jobs", node=nb, ack=peermq.AckMode.AUTO) as pull:
        assert pull.discovery is not None
        end = time.monotonic() + T
        while not pull.discovery.skipped():
            assert time.monotonic() < end, "the plain pusher was never reported"
            with pytest.raises(TimeoutError):
                pull.recv(timeout=0.05)
        [info] = pull.discovery.skipped()
        assert info.kind is PeerKind.PUSHER and info.node_id == na.id
        assert pull.discovery.known() == [] and push.peers == 0


def test_a_durable_subscriber_finds_a_spooled_publisher_by_name(tmp_path: Path) -> None:
    with peermq.Node(name="a", discovery=LOOPBACK) as na, \
            peermq.Node(name="b", discovery=LOOPBACK) as nb, \
            peermq.Publisher(service="prices", node=na, spool=tmp_path / "log") as pub, \
            peermq.Subscriber(service="prices", node=nb, durable="ledger",
                              topics=["prices.>"]) as sub:
        assert pub.discovery is not None and sub.discovery is not None
        sub.wait_for_publishers(1, timeout=T)
        pub.wait_for_subscribers(1, timeout=T)
        for i in range(20):
            pub.send("prices.eur", i)
        assert [sub.recv(timeout=T).data for _ in range(20)] == list(range(20))
        [found] = sub.discovery.peers()
        assert found.kind is PeerKind.SPOOL_PUBLISHER and found.node_id == na.id
        end = time.monotonic() + T
        while not pub.discovery.announced:  # found by its probe, before it announced
            assert time.monotonic() < end, "never announced"
            time.sleep(0.01)
        assert pub.discovery.instance == f"a spool-pub prices #{pub.stream}"


def test_asyncio_spooled_pusher_and_puller_by_name(tmp_path: Path) -> None:
    async def run() -> list[object]:
        with peermq.Node(name="a", discovery=LOOPBACK) as na, \
                peermq.Node(name="b", discovery=LOOPBACK) as nb:
            async with aio.Pusher(service="jobs", node=na, spool=tmp_path / "out") as push, \
                    aio.Puller(service="jobs", node=nb, ack=peermq.AckMode.EXPLICIT) as pull:
                assert pull.discovery is not None
                await asyncio.gather(push.wait_for_peers(1, timeout=T),
                                     pull.wait_for_peers(1, timeout=T))
                for i in range(5):
                    await push.send("jobs.x", i)
                got = []
                for _ in range(5):
                    msg = await pull.recv(timeout=T)
                    got.append(msg.data)
                    msg.ack()
                await pull.flush_acks()
                await push.wait_for_acks(timeout=T)
                kinds = [ev.kind async for ev in pull.discovery.aevents(timeout=0.5)]
                assert kinds == [PeerEventKind.JOINED]
                return got

    assert asyncio.run(run()) == [0, 1, 2, 3, 4]


def test_with_curve_a_discovered_spooled_pusher_is_reached_with_its_pinned_key(
        tmp_path: Path) -> None:
    keys = {who: init_keys(tmp_path / who) for who in ("alice", "bob")}
    TrustStore(tmp_path / "alice" / "trusted").trust(keys["bob"].public, "bob")
    TrustStore(tmp_path / "bob" / "trusted").trust(keys["alice"].public, "alice")

    def node(who: str) -> peermq.Node:
        return peermq.Node(name=who, discovery=LOOPBACK, mirror=None,
                           security=SecurityOptions(keys_dir=str(tmp_path / who)))

    with node("alice") as a, node("bob") as b, \
            peermq.Pusher(service="jobs", node=a, spool=tmp_path / "out") as push, \
            peermq.Puller(service="jobs", node=b, ack=peermq.AckMode.EXPLICIT) as pull:
        assert a.security is not None
        pull.wait_for_peers(1, timeout=T)
        for i in range(10):
            push.send("jobs.x", i)
        got = []
        for _ in range(10):
            msg = pull.recv(timeout=T)
            got.append(msg.data)
            msg.ack()
        assert got == list(range(10))
        pull.flush_acks()
        push.wait_for_acks(timeout=T)
        assert a.security.stats().accepted >= 1  # over CURVE, bob's key checked


if __name__ == "__main__":
    sys.exit(main())


def test_a_spooled_pusher_that_leaves_is_reported_and_forgotten(tmp_path: Path) -> None:
    """Its link's bookkeeping goes with it: endpoints that come and go leave nothing behind."""
    with peermq.Node(name="a", discovery=LOOPBACK) as na, \
            peermq.Node(name="b", discovery=LOOPBACK) as nb, \
            peermq.Puller(service="jobs", node=nb, ack=peermq.AckMode.EXPLICIT) as pull:
        assert pull.discovery is not None
        for round_ in range(2):
            with peermq.Pusher(service="jobs", node=na, spool=tmp_path / f"out{round_}") as push:
                # one thread owns both: the puller connects when its owner calls it
                pull.wait_for_peers(1, timeout=T)
                push.wait_for_peers(1, timeout=T)
                push.send("jobs.x", round_)
                msg = pull.recv(timeout=T)
                assert msg.data == round_
                msg.ack()
                pull.flush_acks()
                push.wait_for_acks(timeout=T)
            kinds = []
            for ev in pull.discovery.events(timeout=3.0):
                kinds.append(ev.kind)
                if ev.kind is PeerEventKind.LEFT:
                    break
            assert kinds == [PeerEventKind.JOINED, PeerEventKind.LEFT]
            assert pull.discovery._links_up == {}, "a gone link's endpoint was kept"
