"""Discovery within one host (the test namespace's loopback): the asyncio API, the event
iterators, readiness, and closing without leaks. Cheap: no lab hosts."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

import peermq
from peermq import aio
from peermq.discovery import PeerEventKind, PeerSource

LOOPBACK = peermq.DiscoveryOptions(interfaces=("127.0.0.1",))


def test_asyncio_sockets_find_each_other_and_report_events() -> None:
    async def main() -> list[tuple[PeerEventKind, str]]:
        with peermq.Node(name="a", discovery=LOOPBACK) as na, \
                peermq.Node(name="b", discovery=LOOPBACK) as nb:
            async with aio.Subscriber(service="s", node=nb) as sub:
                assert sub.discovery is not None
                async with aio.Publisher(service="s", node=na) as pub:
                    await asyncio.gather(pub.wait_for_subscribers(1, timeout=10.0),
                                         sub.wait_for_publishers(1, timeout=10.0))
                    await pub.send("s.x", 1)
                    assert (await sub.recv(timeout=5.0)).data == 1
                    [peer] = sub.discovery.peers()
                    assert peer.node_id == na.id and peer.source in (PeerSource.PROBE,
                                                                     PeerSource.MDNS)
                got = []
                async for ev in sub.discovery.aevents(timeout=5.0):
                    got.append((ev.kind, ev.peer.instance))
                    if ev.kind is PeerEventKind.LEFT:
                        break
                return got

    assert asyncio.run(main()) == [(PeerEventKind.JOINED, "a pub s #1"),
                                   (PeerEventKind.LEFT, "a pub s #1")]


def test_pullers_count_discovered_pushers_and_events_reach_handlers() -> None:
    seen: list[str] = []
    with peermq.Node(name="w", discovery=LOOPBACK) as nw, \
            peermq.Node(name="v", discovery=LOOPBACK) as nv, \
            peermq.Puller(service="jobs", node=nw) as pull:
        assert pull.discovery is not None
        pull.discovery.on_peer(lambda ev: seen.append(ev.kind.value))
        done = threading.Event()

        def ventilator() -> None:
            with peermq.Pusher(service="jobs", node=nv) as push:
                push.wait_for_peers(1, timeout=10.0)
                push.send("jobs.x", b"job")
                done.wait(10.0)

        t = threading.Thread(target=ventilator)
        t.start()
        try:
            assert pull.recv(timeout=10.0).data == b"job"
            assert pull.peers == 1 and seen == ["joined"]
        finally:
            done.set()
            t.join()
        for ev in pull.discovery.events(timeout=5.0):
            if ev.kind is PeerEventKind.LEFT:
                break
        assert seen == ["joined", "left"]


def test_a_bad_service_or_interface_is_a_config_error_before_any_io() -> None:
    with pytest.raises(peermq.ConfigError):
        peermq.Subscriber(service="no spaces")
    with peermq.Node(discovery=peermq.DiscoveryOptions(interfaces=("nope0",))) as node, \
            pytest.raises(peermq.DiscoveryError, match="nope0"):
        peermq.Publisher(service="s", node=node)


def test_many_sockets_started_at_once_on_one_node_all_announce() -> None:
    with peermq.Node(name="n", discovery=LOOPBACK) as node:
        pubs: list[peermq.Publisher] = []
        lock = threading.Lock()

        def make(i: int) -> None:
            p = peermq.Publisher(service=f"s{i}", node=node)
            with lock:
                pubs.append(p)

        threads = [threading.Thread(target=make, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        end = time.monotonic() + 10.0
        while not all(p.discovery is not None and p.discovery.announced for p in pubs):
            assert time.monotonic() < end, "not every publisher was announced"
            time.sleep(0.02)
        names = {p.discovery.instance for p in pubs if p.discovery is not None}
        assert names == {f"n pub s{i} #{p.stream}" for i, p in
                         ((int(p.discovery.service[1:]), p) for p in pubs if p.discovery)}
        for p in pubs:
            p.close()
