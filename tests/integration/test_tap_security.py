"""The tap and CURVE (issue 6): a tap with a key the node trusts reads a secure node's mirror;
a tap without one is refused at the handshake, says so, and gets nothing.

Every sender is a real process with security on (``tap_peer.py`` under ``PEERMQ_SECURITY``);
keys live in tmp directories: the senders share one ("node"), and "sub", "tap" and
"stranger" have their own. The node trusts "sub" and "tap", not "stranger".
"""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from rich.console import Console

import peermq
from peermq.cli import cli
from peermq.config import DiscoveryOptions, SecurityOptions
from peermq.security import TrustStore, init_keys
from peermq.tap import Event, NodeFound, NodeRefused, Tap, TapGap

from ..network.conftest import REASON, in_private_namespace
from .test_tap import gather, joined, messages, peer, ready, say, seqs_by_sender
from .test_tap_cli import lines_until, tap

N = 300


@pytest.fixture
def keys(tmp_path: Path) -> dict[str, Path]:
    dirs = {name: tmp_path / name for name in ("node", "sub", "tap", "stranger")}
    pairs = {name: init_keys(path) for name, path in dirs.items()}
    node_trust = TrustStore(dirs["node"] / "trusted")
    node_trust.trust(pairs["sub"].public, "sub")
    node_trust.trust(pairs["tap"].public, "tap")
    for name in ("sub", "tap", "stranger"):  # each knows the node's key for this host
        TrustStore(dirs[name] / "trusted").trust(pairs["node"].public, "node,127.0.0.1")
    return dirs


def env(keys: Path) -> dict[str, str]:
    return {"PEERMQ_SECURITY": "curve", "PEERMQ_KEYS": str(keys), "PEERMQ_TRUST": "strict"}


def secure(keys: Path) -> peermq.Node:
    return peermq.Node(mirror=None, security=SecurityOptions(keys_dir=str(keys)))


@contextlib.contextmanager
def secure_peer(keys: Path, *args: str) -> Iterator[tuple[subprocess.Popen[str], str, str]]:
    """A sending process of the secure node; yields it, its mirror and its data endpoint."""
    with peer(*args, env=env(keys)) as proc:
        yield (proc, *ready(proc))


def refused(events: list[Event]) -> list[NodeRefused]:
    return [e for e in events if isinstance(e, NodeRefused)]


def sent(proc: subprocess.Popen[str]) -> int:
    assert proc.stdout is not None
    word, n = proc.stdout.readline().split()
    assert word == "sent"
    return int(n)


def test_a_trusted_tap_sees_every_message_of_secure_senders(keys: dict[str, Path]) -> None:
    with contextlib.ExitStack() as stack:
        pub, pub_mirror, pub_data = stack.enter_context(
            secure_peer(keys["node"], "pub", "prices.eu", str(N)))
        push, push_mirror, push_data = stack.enter_context(
            secure_peer(keys["node"], "push", "jobs.q", str(N)))
        tap_node = stack.enter_context(secure(keys["tap"]))
        watcher = stack.enter_context(Tap(node=tap_node, connect=[pub_mirror, push_mirror]))
        gather(watcher, joined(2))
        sub_node = stack.enter_context(secure(keys["sub"]))
        sub = stack.enter_context(peermq.Subscriber(node=sub_node, connect=pub_data))
        pull = stack.enter_context(peermq.Puller(node=sub_node, connect=push_data))
        say(pub, "go")
        say(push, "go")
        got = [sub.recv(timeout=15.0) for _ in range(N)] + \
            [pull.recv(timeout=15.0) for _ in range(N)]
        assert sent(pub) == sent(push) == N
        events = gather(watcher, lambda ev: len(messages(ev)) >= 2 * N)
        seqs = seqs_by_sender(events)
        assert sorted(topic for _, _, topic in seqs) == ["jobs.q", "prices.eu"]
        assert all(s == list(range(1, N + 1)) for s in seqs.values()), seqs
        assert not [e for e in events if isinstance(e, (TapGap, NodeRefused))]
        # the tap copied; the receivers still got everything, in order
        assert [m.seq for m in got] == [*range(1, N + 1), *range(1, N + 1)]
        assert tap_node.security is not None and tap_node.security.stats().failed_handshakes == 0


@pytest.mark.parametrize(("stranger", "why"), [
    ("stranger", "this tap's key is not trusted there"),  # a key the node does not trust
    (None, "has security on (CURVE) and this tap has none"),  # no security at all
], ids=["untrusted-key", "no-security"])
def test_a_tap_the_node_does_not_trust_is_refused_and_gets_nothing(
    keys: dict[str, Path], stranger: str | None, why: str,
) -> None:
    with contextlib.ExitStack() as stack:
        pub, mirror, data = stack.enter_context(
            secure_peer(keys["node"], "pub", "prices.eu", str(N)))
        # a trusted tap too, so the mirror really sends copies while the stranger knocks
        trusted = stack.enter_context(Tap(node=stack.enter_context(secure(keys["tap"])),
                                          connect=mirror))
        gather(trusted, joined(1))
        stranger_node = stack.enter_context(
            secure(keys[stranger]) if stranger else peermq.Node(mirror=None))
        intruder = stack.enter_context(Tap(node=stranger_node, connect=mirror))
        events = gather(intruder, lambda ev: bool(refused(ev)))
        (refusal,) = refused(events)
        assert refusal.endpoint == mirror and why in refusal.reason
        # the node's trusted subscriber is unaffected: every message, in order
        sub = stack.enter_context(peermq.Subscriber(node=stack.enter_context(
            secure(keys["sub"])), connect=data))
        say(pub, "go")
        assert [sub.recv(timeout=15.0).seq for _ in range(N)] == list(range(1, N + 1))
        assert sent(pub) == N
        assert len(messages(gather(trusted, lambda ev: len(messages(ev)) >= N))) == N
        # the stranger got nothing at all (no greeting, no copy) though it is tried again
        # meanwhile; its refusal is said once
        end = time.monotonic() + 2.0
        while time.monotonic() < end:
            events += intruder.poll(0.2)
        assert [type(e) for e in events] == [NodeRefused], events
        if stranger_node.security is not None:
            assert stranger_node.security.stats().failed_handshakes >= 1


def test_the_cli_tap_reads_a_secure_node_with_keys_from_the_environment(
    keys: dict[str, Path],
) -> None:
    n = 50
    with contextlib.ExitStack() as stack:
        pub, mirror, data = stack.enter_context(secure_peer(keys["node"], "pub", "t.s", str(n)))
        sub = stack.enter_context(peermq.Subscriber(node=stack.enter_context(
            secure(keys["sub"])), connect=data))
        # a key the node does not trust: one JSON line says so
        with tap("-c", mirror, "--json", env=env(keys["stranger"])) as proc:
            (line,) = lines_until(proc, '"refused"')
            record = json.loads(line)
            assert record["type"] == "node" and record["event"] == "refused"
            assert record["endpoint"] == mirror and "not trusted" in record["reason"]
        # a trusted key: every message, in order
        proc = stack.enter_context(tap("-c", mirror, "--json", "--count", str(n),
                                       env=env(keys["tap"])))
        lines_until(proc, '"joined"')
        say(pub, "go")
        assert len([sub.recv(timeout=15.0) for _ in range(n)]) == n
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
        records = [json.loads(x) for x in out.splitlines()]
        assert [r["seq"] for r in records if r["type"] == "message"] == list(range(1, n + 1))
        assert not [r for r in records if r.get("event") == "refused"]
        assert sent(pub) == n


def test_a_secure_cli_tap_with_no_key_pinned_for_a_remote_mirror_says_so(
    keys: dict[str, Path],
) -> None:
    # nothing is pinned for this (documentation) address, and it is not this host: the tap
    # does not connect at all, and exits 1 with what to do
    args = ["tap", "-c", "tcp://192.0.2.1:7000", "--json", "--timeout", "5"]
    result = CliRunner().invoke(cli, args,
                                obj=Console(file=io.StringIO(), width=100),
                                env={**env(keys["tap"]), "PEERMQ_MDNS": "off"})
    assert result.exit_code == 1, result.output
    assert "no trusted key for tcp://192.0.2.1:7000" in result.stderr
    assert "peermq keys trust" in result.stderr


@pytest.mark.network
@pytest.mark.skipif(not in_private_namespace(), reason=REASON)
def test_a_mirror_found_by_mdns_is_reached_with_the_key_its_fingerprint_selects(
    keys: dict[str, Path], tmp_path: Path,
) -> None:
    """The finder trusts the node's key under a name only, for no address: the fingerprint in
    the mirror's TXT record selects that key; without it the tap would expect its own."""
    finder = tmp_path / "finder"
    pair = init_keys(finder)
    TrustStore(keys["node"] / "trusted").trust(pair.public, "finder")
    TrustStore(finder / "trusted").trust((keys["node"] / "node.pub").read_text().strip(), "api")
    with contextlib.ExitStack() as stack:
        pub, mirror, data = stack.enter_context(
            secure_peer(keys["node"], "pub", "mdns.s", "30", "--service", "prices"))
        node = stack.enter_context(peermq.Node(
            mirror=None, discovery=DiscoveryOptions(),
            security=SecurityOptions(keys_dir=str(finder))))
        watcher = stack.enter_context(Tap(node=node))
        watcher.discover(node.discovery)
        events = gather(watcher, joined(1), timeout=20.0)
        (found,) = [e for e in events if isinstance(e, NodeFound)]
        assert found.endpoint == mirror and not refused(events)
        sub = stack.enter_context(peermq.Subscriber(node=stack.enter_context(
            secure(keys["sub"])), connect=data))
        say(pub, "go")
        assert len([sub.recv(timeout=15.0) for _ in range(30)]) == 30
        events = gather(watcher, lambda ev: len(messages(ev)) >= 30)
        assert [m.seq for m in messages(events)] == list(range(1, 31))
