"""CURVE between real sockets and processes: who gets in, who is refused, and what a spy sees."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import zmq
from zmq.utils.monitor import parse_monitor_message

import peermq
import peermq.aio
from peermq.config import SecurityOptions, TrustPolicy
from peermq.security import TrustStore, generate, init_keys

from ..helpers import python, readline


def secure(keys: Path, policy: TrustPolicy = TrustPolicy.STRICT, **kw: float) -> peermq.Node:
    return peermq.Node(security=SecurityOptions(keys_dir=str(keys), policy=policy, **kw))


@pytest.fixture
def dirs(tmp_path: Path) -> dict[str, Path]:
    """Key directories of alice, bob and mallory; alice and bob trust each other."""
    d = {name: tmp_path / name for name in ("alice", "bob", "mallory")}
    keys = {name: init_keys(path) for name, path in d.items()}
    TrustStore(d["alice"] / "trusted").trust(keys["bob"].public, "bob")
    TrustStore(d["bob"] / "trusted").trust(keys["alice"].public, "alice,127.0.0.1")
    return d


def public(keys: Path) -> str:
    return (keys / "node.pub").read_text().strip()


class Spy:
    """A TCP relay that keeps every byte it passes on: what someone on the network sees."""

    def __init__(self, upstream: str) -> None:
        host, port = upstream.removeprefix("tcp://").rsplit(":", 1)
        self.upstream = (host, int(port))
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.endpoint = f"tcp://127.0.0.1:{self.listener.getsockname()[1]}"
        self.seen = bytearray()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        self.listener.settimeout(0.1)
        while not self._stop.is_set():
            try:
                client, _ = self.listener.accept()
            except TimeoutError:
                continue
            with client, socket.create_connection(self.upstream) as server:
                client.settimeout(0.05)
                server.settimeout(0.05)
                while not self._stop.is_set():
                    for a, b in ((client, server), (server, client)):
                        try:
                            data = a.recv(65536)
                        except TimeoutError:
                            continue
                        except OSError:
                            return
                        if not data:
                            return
                        self.seen += data
                        b.sendall(data)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.listener.close()


@pytest.mark.parametrize("secured", [True, False])
def test_trusted_peers_talk_and_a_spy_sees_no_plaintext(dirs: dict[str, Path],
                                                        secured: bool) -> None:
    nodes = (secure(dirs["alice"]), secure(dirs["bob"])) if secured else (
        peermq.Node(), peermq.Node())
    with nodes[0] as a, nodes[1] as b, peermq.Publisher(bind="tcp://127.0.0.1:*", node=a) as pub:
        spy = Spy(pub.endpoints[0])
        try:
            if secured:
                assert b.security is not None
                b.security.expect(spy.endpoint, public(dirs["alice"]))
            with peermq.Subscriber(connect=spy.endpoint, node=b) as sub:
                pub.wait_for_subscribers(1, timeout=5.0)
                pub.send("orders.secret", "SECRET-PAYLOAD-4711", headers={"who": "HIDDEN-HDR"})
                msg = sub.recv(timeout=5.0)
                assert msg.data == "SECRET-PAYLOAD-4711"
                assert msg.headers == {"who": "HIDDEN-HDR"}
        finally:
            spy.close()
    leaked = b"SECRET-PAYLOAD" in spy.seen or b"HIDDEN-HDR" in spy.seen
    assert leaked is not secured, bytes(spy.seen[:200])


CHILD = """
import json, sys, time, peermq
from peermq.config import SecurityOptions
keys, pub_ep, pull_ep, server_key = sys.argv[1:5]
node = peermq.Node(security=SecurityOptions(keys_dir=keys))
node.security.expect(pub_ep, server_key)
node.security.expect(pull_ep, server_key)
with node, peermq.Subscriber(connect=pub_ep, node=node) as sub, \\
        peermq.Pusher(connect=pull_ep, node=node) as push:
    print("ready", flush=True)
    got = []
    end = time.monotonic() + float(sys.argv[5])
    while time.monotonic() < end:
        try:
            push.send("inject", "from-" + sys.argv[6], )
        except peermq.SendTimeoutError:
            pass
        try:
            got.append(sub.recv(timeout=0.1).data)
        except TimeoutError:
            pass
    print(json.dumps({"got": len(got), "stats": node.security.stats().failed_handshakes}),
          flush=True)
"""


def test_a_process_without_a_trusted_key_receives_nothing_and_injects_nothing(
    dirs: dict[str, Path],
) -> None:
    """mallory knows alice's public key (it is public), but alice does not trust mallory's."""
    with secure(dirs["alice"]) as a, peermq.Publisher(bind="tcp://127.0.0.1:*", node=a) as pub, \
            peermq.Puller(bind="tcp://127.0.0.1:*", node=a) as pull:
        server_key = public(dirs["alice"])
        runs = {who: python(CHILD, str(dirs[who]), pub.endpoints[0], pull.endpoints[0],
                            server_key, "3.0", who, stdin=False) for who in ("bob", "mallory")}
        procs = {who: r.__enter__() for who, r in runs.items()}
        try:
            for p in procs.values():
                assert readline(p) == "ready"
            injected: list[object] = []
            end = time.monotonic() + 3.5
            while time.monotonic() < end:
                pub.send("news", "for-trusted-eyes")
                with contextlib.suppress(TimeoutError):
                    injected.append(pull.recv(timeout=0.05).data)
            results = {who: readline(p) for who, p in procs.items()}
        finally:
            for r in runs.values():
                r.__exit__(None, None, None)
        assert '"got": 0' not in results["bob"], results  # the control: a trusted peer gets in
        assert "from-bob" in injected
        assert '"got": 0' in results["mallory"], results
        assert "from-mallory" not in injected
        assert a.security is not None and a.security.stats().refused >= 2


def test_a_plain_zeromq_client_gets_nothing_from_a_secure_node(dirs: dict[str, Path]) -> None:
    with secure(dirs["alice"]) as a, peermq.Puller(bind="tcp://127.0.0.1:*", node=a) as pull:
        ctx = zmq.Context()
        push = ctx.socket(zmq.PUSH)
        push.setsockopt(zmq.LINGER, 0)
        push.connect(pull.endpoints[0])
        try:
            push.send(b"t\x00\x01" + b"\x97\x00\xa1n\x01\x01\x00\xc0\x01", zmq.NOBLOCK)
        except zmq.Again:
            pass  # never connected: that is the point
        with pytest.raises(TimeoutError):
            pull.recv(timeout=1.0)
        push.close(0)
        ctx.term()


def test_revoke_takes_effect_for_new_connections(dirs: dict[str, Path]) -> None:
    with secure(dirs["alice"]) as a, secure(dirs["bob"]) as b, \
            peermq.Publisher(bind="tcp://127.0.0.1:*", node=a) as pub:
        with peermq.Subscriber(connect=pub.endpoints[0], node=b) as before:
            pub.wait_for_subscribers(1, timeout=5.0)
            # what `peermq keys revoke bob` does, from another process, to alice's store
            TrustStore(dirs["alice"] / "trusted").revoke("bob")
            with peermq.Subscriber(connect=pub.endpoints[0], node=b) as after:
                end = time.monotonic() + 2.0
                while time.monotonic() < end:
                    pub.send("news", 1)
                    time.sleep(0.02)
                assert before.recv(timeout=1.0).data == 1  # an existing connection stays
                with pytest.raises(TimeoutError):
                    after.recv(timeout=0.5)
        assert a.security is not None
        assert a.security.stats().refused >= 1


def test_trust_on_first_use_pins_then_refuses_a_changed_key(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    server, first, second = (tmp_path / n for n in ("server", "first", "second"))
    for d in (server, first, second):
        init_keys(d)
    with secure(server, TrustPolicy.TOFU) as s, secure(first) as f, secure(second) as c, \
            peermq.Publisher(bind="tcp://127.0.0.1:*", node=s) as pub, \
            caplog.at_level(logging.WARNING, logger="peermq.security"):
        ep = pub.endpoints[0]
        for n in (f, c):
            assert n.security is not None
            n.security.expect(ep, public(server))
        with peermq.Subscriber(connect=ep, node=f):
            pub.wait_for_subscribers(1, timeout=5.0)
        pinned = TrustStore(server / "trusted").find("127.0.0.1")
        assert pinned is not None and pinned.source == "tofu"
        assert pinned.key.decode() == public(first)
        with peermq.Subscriber(connect=ep, node=c) as impostor:
            end = time.monotonic() + 1.5
            while time.monotonic() < end:
                pub.send("x", 0)
                with pytest.raises(TimeoutError):
                    impostor.recv(timeout=0.05)
        assert s.security is not None
        assert s.security.stats().refused >= 1
        with peermq.Subscriber(connect=ep, node=f) as again:
            pub.wait_for_subscribers(1, timeout=5.0)
            pub.send("x", 1)
            assert again.recv(timeout=5.0).data == 1
    assert any("KEY CHANGED" in r.getMessage() and r.levelno == logging.ERROR
               for r in caplog.records)
    assert any("security.pinned" in r.getMessage() for r in caplog.records)


@contextlib.contextmanager
def curve_server(key: tuple[bytes, bytes]) -> Iterator[tuple[str, list[int]]]:
    """A raw CURVE XPUB (no ZAP of ours): yields its endpoint and the live count of accepts."""
    ctx = zmq.Context()
    srv = ctx.socket(zmq.XPUB)
    srv.setsockopt(zmq.LINGER, 0)
    srv.curve_publickey, srv.curve_secretkey = key
    srv.curve_server = True
    mon = srv.get_monitor_socket(zmq.EVENT_ACCEPTED)
    port = srv.bind_to_random_port("tcp://127.0.0.1")
    accepted = [0]
    stop = threading.Event()

    def count() -> None:
        while not stop.is_set():
            if mon.poll(50):
                parse_monitor_message(mon.recv_multipart())
                accepted[0] += 1

    t = threading.Thread(target=count)
    t.start()
    try:
        yield f"tcp://127.0.0.1:{port}", accepted
    finally:
        stop.set()
        t.join()
        srv.disable_monitor()
        mon.close(0)
        srv.close(0)
        ctx.term()


def test_a_server_key_mismatch_backs_off_and_is_reported_once(
    dirs: dict[str, Path], caplog: pytest.LogCaptureFixture
) -> None:
    rogue = generate()
    with curve_server((rogue.public, rogue.secret)) as (ep, accepted), \
            secure(dirs["bob"]) as b, caplog.at_level(logging.WARNING, logger="peermq.security"):
        assert b.security is not None
        b.security.expect(ep, public(dirs["alice"]))  # the key pinned for it: not the rogue's
        with peermq.Subscriber(connect=ep, node=b) as sub:
            with pytest.raises(TimeoutError):
                sub.recv(timeout=3.2)
        attempts = accepted[0]
    # plain ZeroMQ retries every 0.1 s (about 30 times here); backing off 1, 2, 4 s: 3
    assert 1 <= attempts <= 4, attempts
    reports = [r for r in caplog.records
               if f"server key mismatch at {ep}, possible spoofing" in r.getMessage()]
    assert len(reports) == 1


def test_a_refused_client_backs_off_then_gets_in_once_trusted(dirs: dict[str, Path]) -> None:
    with secure(dirs["alice"]) as a, secure(dirs["mallory"], auth_backoff=0.2) as m, \
            peermq.Publisher(bind="tcp://127.0.0.1:*", node=a) as pub:
        assert m.security is not None and a.security is not None
        m.security.expect(pub.endpoints[0], public(dirs["alice"]))
        with peermq.Subscriber(connect=pub.endpoints[0], node=m) as sub:
            with pytest.raises(TimeoutError):
                sub.recv(timeout=1.0)
            refused = a.security.stats().refused
            assert 2 <= refused <= 4, refused  # 0.2, 0.4 s ... not once and not never
            a.security.trust.trust(public(dirs["mallory"]), "mallory")
            end = time.monotonic() + 5.0
            while not pub.subscribers and time.monotonic() < end:
                with contextlib.suppress(TimeoutError):
                    sub.recv(timeout=0.1)
            pub.send("x", "welcome")
            assert sub.recv(timeout=5.0).data == "welcome"


def test_secure_pipeline_counts_peers_and_a_failed_handshake_is_not_a_peer(
    dirs: dict[str, Path],
) -> None:
    with secure(dirs["alice"]) as a, secure(dirs["bob"]) as b, secure(dirs["mallory"]) as m, \
            peermq.Pusher(bind="tcp://127.0.0.1:*", node=a) as push:
        for n in (b, m):
            assert n.security is not None
            n.security.expect(push.endpoints[0], public(dirs["alice"]))
        with peermq.Puller(connect=push.endpoints[0], node=b) as pull:
            assert push.wait_for_peers(1, timeout=5.0) == 1
            assert pull.wait_for_peers(1, timeout=5.0) == 1
            with peermq.Puller(connect=push.endpoints[0], node=m) as bad:
                with pytest.raises(TimeoutError):
                    bad.wait_for_peers(1, timeout=1.0)
                assert push.peers == 1
            push.send("job", 7)
            assert pull.recv(timeout=5.0).data == 7


def test_nodes_sharing_a_key_directory_need_no_setup_on_one_host(dirs: dict[str, Path]) -> None:
    with secure(dirs["alice"]) as a1, secure(dirs["alice"]) as a2, \
            peermq.Publisher(bind="tcp://127.0.0.1:*", node=a1) as pub, \
            peermq.Subscriber(connect=pub.endpoints[0], node=a2) as sub:
        pub.wait_for_subscribers(1, timeout=5.0)
        pub.send("x", 1)
        assert sub.recv(timeout=5.0).data == 1


def test_ipc_and_asyncio_sockets_are_secured_too(dirs: dict[str, Path], tmp_path: Path) -> None:
    ep = f"ipc://{tmp_path}/sock"

    async def main() -> None:
        with secure(dirs["alice"]) as a, secure(dirs["bob"]) as b, secure(dirs["mallory"]) as m:
            for n in (b, m):
                assert n.security is not None
                n.security.expect(ep, public(dirs["alice"]))
            async with peermq.aio.Publisher(bind=ep, node=a) as pub, \
                    peermq.aio.Subscriber(connect=ep, node=b) as sub, \
                    peermq.aio.Subscriber(connect=ep, node=m) as spy:
                await pub.wait_for_subscribers(1, timeout=5.0)
                await pub.send("x", "hello")
                assert (await sub.recv(timeout=5.0)).data == "hello"
                with pytest.raises(TimeoutError):
                    await spy.recv(timeout=1.0)

    asyncio.run(main())


def test_a_secure_node_refuses_a_secret_key_open_to_others(tmp_path: Path) -> None:
    init_keys(tmp_path)
    (tmp_path / "node.key").chmod(0o644)
    with secure(tmp_path) as n, pytest.raises(peermq.SecurityError, match="chmod 600"):
        peermq.Publisher(bind="tcp://127.0.0.1:*", node=n)


def test_connecting_without_a_pinned_key_is_an_error(dirs: dict[str, Path]) -> None:
    with secure(dirs["bob"]) as b, peermq.Subscriber(node=b) as sub, \
            pytest.raises(peermq.SecurityError, match=r"no trusted key for tcp://10\.9\.9\.9:1"):
        sub.connect("tcp://10.9.9.9:1")


def test_discovery_hook_selects_only_pinned_keys(dirs: dict[str, Path],
                                                 caplog: pytest.LogCaptureFixture) -> None:
    alice = TrustStore(dirs["bob"] / "trusted").find("alice")
    assert alice is not None
    stranger = generate()
    with secure(dirs["bob"]) as b, caplog.at_level(logging.WARNING, logger="peermq.security"):
        sec = b.security
        assert sec is not None
        # a pinned name wins; an advertised fingerprint that differs is reported, not followed
        assert sec.key_for_peer(["alice"], advertised=stranger.fingerprint) == alice.key
        assert any("advertised_key_differs" in r.getMessage() for r in caplog.records)
        # a fingerprint can select a key already trusted, never bring a new one in
        assert sec.key_for_peer(["unknown-instance"], advertised=alice.fingerprint) == alice.key
        assert sec.key_for_peer(["unknown-instance"], advertised=stranger.fingerprint) is None
        sec.trust.revoke("alice")
        assert sec.key_for_peer(["alice"], advertised=alice.fingerprint) is None
        with pytest.raises(peermq.SecurityError, match="revoked"):
            sec.expect("tcp://10.0.0.1:1", alice.key)
