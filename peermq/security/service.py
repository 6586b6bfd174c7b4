"""A node's security: its key pair, its trust store and its guard thread, made on first use."""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import socket
import threading
from collections.abc import Iterable
from pathlib import Path

import zmq

from .. import _zmq
from ..config import SecurityOptions, TrustPolicy
from ..errors import SecurityError
from .guard import Guard, Owner, SecurityStats
from .keys import TRUST_FILE, KeyPair, default_keys_dir, fingerprint, load_keys, parse_key
from .trust import TrustStore, endpoint_names

__all__ = ["NodeSecurity"]

_log = logging.getLogger("peermq.security")


def reported_endpoint(endpoint: str) -> str:
    """``endpoint`` as libzmq's monitor reports a connection to it (host names resolved)."""
    scheme, sep, rest = endpoint.partition("://")
    if scheme != "tcp" or not sep:
        return endpoint
    host, _, port = rest.rpartition(":")
    bare = host[1:-1] if host.startswith("[") else host
    try:
        ipaddress.ip_address(bare)
        return endpoint
    except ValueError:
        pass
    try:
        info = socket.getaddrinfo(bare, None, socket.AF_INET, socket.SOCK_STREAM)
    except OSError:
        return endpoint
    return f"tcp://{info[0][4][0]}:{port}" if info else endpoint


def _is_local(endpoint: str) -> bool:
    if endpoint.startswith("ipc://"):
        return True
    names = endpoint_names(endpoint)
    host = names[-1] if len(names) > 2 else ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class NodeSecurity:
    """CURVE for every socket of one node; ``Node.security`` makes it when first needed."""

    def __init__(
        self, ctx: zmq.Context[zmq.Socket[bytes]], options: SecurityOptions
    ) -> None:
        self.options = options
        self._lock = threading.Lock()
        self._expected: dict[str, bytes] = {}
        self.keys_dir = Path(options.keys_dir) if options.keys_dir else default_keys_dir()
        self.keys: KeyPair = load_keys(self.keys_dir, create=options.create_keys)
        self.trust = TrustStore(self.keys_dir / TRUST_FILE)
        if options.policy is TrustPolicy.OPEN:
            _log.warning(
                "SECURITY POLICY 'open': any peer with any key may connect to this node; "
                "traffic is encrypted but nobody is authenticated. For development only."
            )
        try:
            self.guard = Guard(ctx, self.trust, options, own_key=self.keys.public)
        except zmq.ZMQError as exc:
            raise SecurityError(
                f"cannot start the ZAP authenticator ({exc.strerror}): is another one "
                "running on this node's context?"
            ) from exc
        _log.info("security.on policy=%s key=%s keys_dir=%s", options.policy.value,
                  self.fingerprint, self.keys_dir)

    @property
    def public_key(self) -> bytes:
        return self.keys.public

    @property
    def fingerprint(self) -> str:
        """This node's key fingerprint: what a discovery TXT record may carry."""
        return self.keys.fingerprint

    def stats(self) -> SecurityStats:
        s = self.guard.stats
        return SecurityStats(s.accepted, s.refused, s.pinned, s.failed_handshakes, s.backoffs,
                             s.bad_peers)

    # -- used by the sockets (on their owner's thread)
    def watch(self, owner: Owner, sock: zmq.Socket[bytes], *, forward: bool) -> (
        zmq.Socket[bytes] | None
    ):
        return self.guard.watch(owner, sock, forward=forward)

    def unwatch(self, owner: Owner, sock: zmq.Socket[bytes]) -> None:
        with contextlib.suppress(zmq.ZMQError):
            sock.disable_monitor()
        self.guard.unwatch(owner)

    def prepare_bind(self, sock: zmq.Socket[bytes], endpoint: str) -> None:
        if not endpoint.startswith("inproc://"):  # inproc has no handshake: nothing to secure
            _zmq.curve_server(sock, self.keys.public, self.keys.secret)

    def prepare_connect(self, owner: Owner, sock: zmq.Socket[bytes], endpoint: str) -> None:
        if endpoint.startswith("inproc://"):
            return
        key = self.server_key(endpoint)
        _zmq.curve_client(sock, self.keys.public, self.keys.secret, key)
        self.guard.connecting(owner, endpoint, reported_endpoint(endpoint),
                              own=key == self.keys.public)

    def forget(self, owner: Owner, endpoint: str) -> None:
        self.guard.forget(owner, endpoint)

    # -- keys of peers
    def expect(self, endpoint: str, key: str | bytes) -> None:
        """Connections to ``endpoint`` (made from now on) must find ``key`` there.

        Held in memory, before the trust store: for a program (or discovery) that knows the key
        of a peer from a source it trusts. A revoked key is refused.
        """
        k = parse_key(key)
        entry = self.trust.find(k.decode())
        if entry is not None and entry.revoked:
            raise SecurityError(f"the key given for {endpoint} ({fingerprint(k)}) is revoked")
        with self._lock:
            self._expected[endpoint] = k

    def server_key(self, endpoint: str) -> bytes:
        """The key a connection to ``endpoint`` must find there: one given to ``expect``, the
        one pinned in the trust store for it, or for this host this node's own.

        Never a key read from the network: a peer that does not hold it fails the handshake.
        """
        with self._lock:
            expected = self._expected.get(endpoint)
        if expected is not None:
            if not self.trust.is_revoked(expected):
                return expected
            raise SecurityError(f"the key expected at {endpoint} ({fingerprint(expected)}) "
                                "is revoked")
        key_or_none = self.trust.key_for(endpoint)
        if key_or_none is None and _is_local(endpoint):
            # this host, nothing pinned: expect this node's own key, which only a process
            # that shares its key directory holds (same user, same host: zero set-up)
            key_or_none = self.keys.public
        if key_or_none is None:
            raise SecurityError(
                f"no trusted key for {endpoint}: on that peer run 'peermq keys show', then here "
                f"'peermq keys trust HOST KEY' with HOST as written in the endpoint"
            )
        return key_or_none

    def expect_found(self, endpoint: str, names: Iterable[str], advertised: str | None) -> None:
        """Pin the key to expect at a peer that discovery found (the socket's or the tap's).

        The key comes from the trust store by the peer's names; its TXT fingerprint only
        selects among trusted keys (``key_for_peer``). With none, nothing is pinned and the
        connection's handshake fails as for any unknown server.
        """
        key = self.key_for_peer([n for n in names if n], advertised or None)
        if key is not None:
            self.expect(endpoint, key)

    def key_for_peer(self, names: list[str], advertised: str | None = None) -> bytes | None:
        """The pinned key of a discovered peer (for discovery): never one read from the network.

        ``names`` are what the peer is known as (instance name, node id, host); ``advertised``
        is the fingerprint its TXT record carries, which can only select a key already trusted.
        A pinned key that differs from the advertised fingerprint is kept, and reported.
        """
        for name in names:
            entry = self.trust.find(name)
            if entry is None or entry.revoked:
                continue
            if advertised and advertised != entry.fingerprint:
                self.guard.reporter.report(
                    ("advertised", name), logging.WARNING,
                    "security.advertised_key_differs peer=%s advertised=%s pinned=%s: "
                    "connecting with the pinned key", name, advertised, entry.fingerprint,
                )
            return entry.key
        if advertised:
            entry = self.trust.find(advertised)
            if entry is not None and not entry.revoked:
                return entry.key
        return None

    def ban(self, *, key: bytes | None = None, address: str | None = None) -> None:
        """Refuse ``key`` and ``address`` at the handshake for ``options.ban_time`` seconds."""
        for what in (key, address):
            if what:
                self.guard.ban(what, self.options.ban_time)

    def close(self) -> None:
        self.guard.close()
