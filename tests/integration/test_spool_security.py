"""CURVE on spool links: a trusted receiver gets everything and acks it; an untrusted one is
refused at the handshake, gets nothing, and what it would have taken stays in the spool."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest

import peermq
from peermq import aio
from peermq.config import SecurityOptions, TrustPolicy
from peermq.security import TrustStore, init_keys

from ..helpers import python, readline
from .test_security import Spy, public

T = 10.0


def secure(keys: Path, name: str) -> peermq.Node:
    return peermq.Node(name=name, mirror=None, security=SecurityOptions(
        keys_dir=str(keys), policy=TrustPolicy.STRICT))


@pytest.fixture
def dirs(tmp_path: Path) -> dict[str, Path]:
    """Key directories: alice (the sender) and bob trust each other; mallory trusts alice,
    knows her key and endpoint, but alice has never heard of mallory."""
    d = {name: tmp_path / name for name in ("alice", "bob", "mallory")}
    keys = {name: init_keys(path) for name, path in d.items()}
    TrustStore(d["alice"] / "trusted").trust(keys["bob"].public, "bob")
    for who in ("bob", "mallory"):
        TrustStore(d[who] / "trusted").trust(keys["alice"].public, "alice,127.0.0.1")
    return d


PULLER = """
import json, sys, time, peermq
from peermq.config import SecurityOptions
keys, endpoint, want, wait = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
with peermq.Node(mirror=None, security=SecurityOptions(keys_dir=keys)) as node, \\
        peermq.Puller(connect=endpoint, node=node, ack=peermq.AckMode.AUTO) as pull:
    print("ready", flush=True)
    got = []
    end = time.monotonic() + wait
    while len(got) < want and time.monotonic() < end:
        try:
            got.append(pull.recv(timeout=0.05).data)
        except TimeoutError:
            pass
    linked = pull.peers
# closed: what AUTO mode handed out is acknowledged
print(json.dumps({"got": got, "linked": linked}), flush=True)
"""


def run_puller(keys: Path, endpoint: str, want: int, wait: float) -> dict[str, object]:
    with python(PULLER, str(keys), endpoint, str(want), str(wait), stdin=False) as proc:
        assert readline(proc) == "ready"
        result: dict[str, object] = json.loads(readline(proc))
        return result


def test_an_untrusted_puller_gets_nothing_and_the_messages_wait_for_a_trusted_one(
        dirs: dict[str, Path], tmp_path: Path) -> None:
    with secure(dirs["alice"], "alice") as a, \
            peermq.Pusher(bind="tcp://127.0.0.1:*", node=a, spool=tmp_path / "out") as push:
        assert a.security is not None
        for i in range(20):
            push.send("jobs.x", i)
        mallory = run_puller(dirs["mallory"], push.endpoints[0], 1, 2.0)
        assert mallory == {"got": [], "linked": 0}
        assert a.security.stats().refused >= 1  # at the handshake: her key is not trusted
        stats = push.spool_stats()
        assert (stats.pending, stats.dead, push.peers) == (20, 0, 0)  # not lost, not buried
        bob = run_puller(dirs["bob"], push.endpoints[0], 20, T)
        assert bob == {"got": list(range(20)), "linked": 1}
        push.wait_for_acks(timeout=T)
        assert push.spool_stats().dead == 0


def test_a_spool_link_is_encrypted_end_to_end(dirs: dict[str, Path], tmp_path: Path) -> None:
    """What goes over the link is not readable by someone who copies the bytes."""
    with secure(dirs["alice"], "alice") as a, secure(dirs["bob"], "bob") as b, \
            peermq.Pusher(bind="tcp://127.0.0.1:*", node=a, spool=tmp_path / "out") as push:
        assert b.security is not None
        spy = Spy(push.endpoints[0])
        try:
            b.security.expect(spy.endpoint, public(dirs["alice"]))
            with peermq.Puller(connect=spy.endpoint, node=b, ack=peermq.AckMode.AUTO) as pull:
                push.send("jobs.secret", "plaintext-marker-123")
                assert pull.recv(timeout=T).data == "plaintext-marker-123"
        finally:
            spy.close()
        assert spy.seen and b"plaintext-marker-123" not in spy.seen


def test_asyncio_durable_subscriber_under_curve_trusted_reads_untrusted_is_refused(
        dirs: dict[str, Path], tmp_path: Path) -> None:
    async def run() -> tuple[list[object], list[object], dict[str, object]]:
        with secure(dirs["alice"], "alice") as a, secure(dirs["bob"], "bob") as b, \
                secure(dirs["mallory"], "mallory") as m:
            async with aio.Publisher(bind="tcp://127.0.0.1:*", node=a,
                                     spool=tmp_path / "log") as pub:
                ep = pub.endpoints[0]
                async with aio.Subscriber(connect=ep, node=m, durable="spy",
                                          history=peermq.History(from_seq=1)) as spy, \
                        aio.Subscriber(connect=ep, node=b, durable="ledger",
                                       history=peermq.History(from_seq=1)) as sub:
                    await sub.wait_for_publishers(1, timeout=T)
                    for i in range(10):
                        await pub.send("prices.eur", i)
                    got = [(await sub.recv(timeout=T)).data for _ in range(10)]
                    stolen: list[object] = []
                    end = time.monotonic() + 1.0
                    while time.monotonic() < end:
                        try:
                            stolen.append((await spy.recv(timeout=0.1)).data)
                        except TimeoutError:
                            pass
                    assert pub.subscribers == 1  # the trusted one only
                return got, stolen, pub.spool_stats()

    got, stolen, stats = asyncio.run(run())
    assert got == list(range(10)) and stolen == []
    consumers = stats["consumers"]
    assert isinstance(consumers, dict) and set(consumers) == {"ledger"}, stats  # no "spy"


def test_a_durable_subscriber_under_curve_relinks_to_a_publisher_restarted_in_place(
        dirs: dict[str, Path], tmp_path: Path) -> None:
    with secure(dirs["alice"], "alice") as a, secure(dirs["bob"], "bob") as b:
        with peermq.Publisher(bind="tcp://127.0.0.1:*", node=a, spool=tmp_path / "log") as pub:
            ep = pub.endpoints[0]
        with peermq.Subscriber(connect=ep, node=b, durable="ledger",
                               history=peermq.History(from_seq=1)) as sub:
            for n in range(2):  # the same endpoint, a new socket each time
                with peermq.Publisher(bind=ep, node=a, spool=tmp_path / "log") as pub:
                    sub.wait_for_publishers(1, timeout=3.0)
                    pub.send("prices.eur", n)
                    assert sub.recv(timeout=3.0).data == n
