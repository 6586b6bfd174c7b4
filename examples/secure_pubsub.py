"""CURVE on: a trusted subscriber reads, an untrusted one is refused at the handshake.

Three key directories stand for three machines: alice publishes, bob trusts alice and alice
trusts bob; mallory has keys of her own (and alice's public key: it is public) but alice
does not trust her. On a LAN the same is set up with `peermq keys init` on each machine and
`peermq keys trust NAME KEY` for each peer (docs/security.md).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import peermq
from peermq.security import TrustStore, init_keys


def node(keys: Path) -> peermq.Node:
    # strict policy (the default): only keys in keys/trusted get in
    return peermq.Node(security=peermq.SecurityOptions(keys_dir=str(keys)))


with tempfile.TemporaryDirectory() as tmp:
    dirs = {name: Path(tmp) / name for name in ("alice", "bob", "mallory")}
    keys = {name: init_keys(path) for name, path in dirs.items()}  # mode 0600 secret keys
    # alice lets bob in; bob expects alice's key at the host he connects to
    TrustStore(dirs["alice"] / "trusted").trust(keys["bob"].public, "bob")
    TrustStore(dirs["bob"] / "trusted").trust(keys["alice"].public, "alice,127.0.0.1")
    TrustStore(dirs["mallory"] / "trusted").trust(keys["alice"].public, "alice,127.0.0.1")

    with (
        node(dirs["alice"]) as alice, node(dirs["bob"]) as bob, node(dirs["mallory"]) as mallory,
        peermq.Publisher(bind="tcp://127.0.0.1:*", node=alice) as pub,
        peermq.Subscriber(connect=pub.endpoints[0], node=bob) as trusted,
        peermq.Subscriber(connect=pub.endpoints[0], node=mallory) as refused,
    ):
        pub.wait_for_subscribers(1, timeout=5.0)
        for i in range(3):
            pub.send("payroll.run", {"batch": i})
        got = [trusted.recv(timeout=5.0).data["batch"] for _ in range(3)]
        print(f"bob (trusted): {len(got)} messages {got}")

        # mallory's handshakes fail: alice's authenticator refuses her key, so her
        # subscription never reaches the publisher
        assert alice.security is not None and mallory.security is not None
        deadline = time.monotonic() + 5.0
        while alice.security.stats().refused == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        try:
            refused.recv(timeout=0.5)
            print("mallory (untrusted): received a message!")
        except TimeoutError:
            print("mallory (untrusted): 0 messages")
        print(f"alice refused mallory: {alice.security.stats().refused > 0}, "
              f"mallory's failed handshakes: {mallory.security.stats().failed_handshakes > 0}")
        print(f"alice's subscribers: {pub.stats().peers}")
