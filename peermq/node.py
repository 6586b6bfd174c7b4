"""One process's identity: node id and name, the ZeroMQ context, and the sockets it owns."""

from __future__ import annotations

import atexit
import itertools
import logging
import os
import re
import secrets
import socket
import threading
import weakref
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Protocol

import zmq

from ._mirror import Mirror
from ._zmq import new_context
from .config import DiscoveryOptions, MirrorOptions, SecurityOptions, TrustPolicy
from .discovery import options_from_env
from .errors import ClosedError, ConfigError

if TYPE_CHECKING:
    from .discovery.service import Discovery
    from .security.service import NodeSecurity

__all__ = ["Node"]

_log = logging.getLogger(__name__)
_ID = re.compile(r"[0-9a-z][0-9a-z-]{0,63}\Z")


class _Closable(Protocol):
    def close(self) -> int: ...


class Node:
    """The identity shared by a process's sockets. Made implicitly unless you make one.

    ``Node.default()`` is the process-wide node; its name comes from ``PEERMQ_NODE_NAME`` or is
    ``host-pid``. A node owns a ZeroMQ context; closing it closes every socket made on it.
    """

    _default: Node | None = None
    _default_lock = threading.Lock()

    def __init__(
        self,
        *,
        name: str | None = None,
        node_id: str | None = None,
        mirror: MirrorOptions | None = MirrorOptions(),  # noqa: B008 (frozen, so shared safely)
        security: SecurityOptions | None = None,
        discovery: DiscoveryOptions | None = None,
    ) -> None:
        if node_id is not None and (not isinstance(node_id, str) or not _ID.match(node_id)):
            raise ConfigError(
                f"node_id must be 1-64 lowercase letters, digits or '-', got {node_id!r}"
            )
        if name is not None and (not isinstance(name, str) or not name or len(name) > 255):
            raise ConfigError(f"name must be a non-empty str of at most 255 chars, got {name!r}")
        self.id: str = node_id or secrets.token_hex(8)
        self.name: str = name or f"{socket.gethostname()}-{os.getpid()}"
        self._pid = os.getpid()
        self._ctx: zmq.Context[zmq.Socket[bytes]] | None = new_context()
        self._streams = itertools.count(1)
        self._lock = threading.Lock()
        self._sockets: weakref.WeakSet[_Closable] = weakref.WeakSet()
        if mirror is not None and not isinstance(mirror, MirrorOptions):
            raise ConfigError(f"mirror must be a MirrorOptions or None, got {mirror!r}")
        self._mirror_options = mirror
        self._mirror: Mirror | None = None
        if security is not None and not isinstance(security, SecurityOptions):
            raise ConfigError(f"security must be a SecurityOptions or None, got {security!r}")
        self._security_options = security
        self._security: NodeSecurity | None = None
        if discovery is not None and not isinstance(discovery, DiscoveryOptions):
            raise ConfigError(f"discovery must be a DiscoveryOptions or None, got {discovery!r}")
        self.discovery_options: DiscoveryOptions = discovery or DiscoveryOptions()
        self._discovery: Discovery | None = None

    @classmethod
    def default(cls) -> Node:
        """The process-wide node (made on first use; a forked child gets its own)."""
        with cls._default_lock:
            node = cls._default
            if node is None or node.closed or node._pid != os.getpid():
                node = cls(name=os.environ.get("PEERMQ_NODE_NAME") or None,
                           mirror=_mirror_from_env(os.environ.get("PEERMQ_MIRROR")),
                           security=security_from_env(os.environ),
                           discovery=options_from_env(os.environ))
                cls._default = node
            return node

    @classmethod
    def _default_close_for_tests(cls) -> None:
        """Close the process-wide node (test suites call this between tests)."""
        with cls._default_lock:
            node, cls._default = cls._default, None
        if node is not None:
            node.close()

    @property
    def closed(self) -> bool:
        return self._ctx is None

    @property
    def context(self) -> zmq.Context[zmq.Socket[bytes]]:
        if self._ctx is None:
            raise ClosedError(f"node {self.name} is closed")
        return self._ctx

    def _attach(self, sock: _Closable) -> int:
        """Register a socket; returns its stream number (unique within this node)."""
        with self._lock:
            if self._ctx is None:
                raise ClosedError(f"node {self.name} is closed")
            # security first: a secure mirror binds only once the node's authenticator runs
            security = self._start_security()
            self._sockets.add(sock)
            stream = next(self._streams)
            if hasattr(sock, "_tap"):  # a sending socket: a tap may watch it
                self._adopt(sock, stream, security)
            return stream

    def _adopt(self, sock: _Closable, stream: int, security: NodeSecurity | None) -> None:
        """Start the tap mirror on the first sending socket, and hand it each one."""
        if self._mirror is None and self._mirror_options is not None:
            try:
                self._mirror = Mirror(self.context, node=self.id, name=self.name,
                                      options=self._mirror_options,
                                      alive=_alive(weakref.ref(self)),
                                      discovery=_discovery_of(weakref.ref(self)),
                                      security=security)
            except zmq.ZMQError as exc:
                _log.warning("mirror.failed node=%s error=%s (this node cannot be tapped)",
                             self.id, exc)
                self._mirror_options = None
        if self._mirror is not None:
            self._mirror.adopt(sock, stream)
        else:
            sock._tap = None  # type: ignore[attr-defined]  # an instance attribute is tested fastest

    @property
    def mirror(self) -> Mirror | None:
        """The tap mirror (started with the first sending socket), or None. See docs/tap.md."""
        return self._mirror

    @property
    def security(self) -> NodeSecurity | None:
        """Keys, trust store and authenticator (None: security is off). Started on first use."""
        if self._security_options is None:
            return None
        with self._lock:
            return self._start_security()

    def _start_security(self) -> NodeSecurity | None:
        """``security``, with the node's lock held by the caller."""
        if self._security is None and self._security_options is not None:
            if self._ctx is None:
                raise ClosedError(f"node {self.name} is closed")
            from .security.service import NodeSecurity  # noqa: PLC0415 (made on first use)

            self._security = NodeSecurity(self._ctx, self._security_options)
        return self._security

    @property
    def discovery(self) -> Discovery:
        """mDNS and static peers for the sockets given ``service=`` (started on first use)."""
        with self._lock:
            if self._discovery is None:
                if self._ctx is None:
                    raise ClosedError(f"node {self.name} is closed")
                from .discovery.service import Discovery  # noqa: PLC0415 (loads zeroconf)

                self._discovery = Discovery(self.id, self.name, self.discovery_options)
            return self._discovery

    def close(self) -> None:
        """Close every socket of this node, then the context (bounded by each socket's linger)."""
        with self._lock:
            ctx, self._ctx = self._ctx, None
            socks = list(self._sockets)
        if ctx is None:
            return
        for s in socks:
            s.close()
        if self._discovery is not None and self._pid == os.getpid():
            self._discovery.close()  # goodbyes, bounded by DiscoveryOptions.goodbye_wait
        if self._pid == os.getpid():
            if self._mirror is not None:
                self._mirror.close()
            if self._security is not None:
                self._security.close()
            ctx.term()
        _log.debug("node.closed id=%s", self.id)

    def __enter__(self) -> Node:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<Node {self.name} id={self.id} {state}>"


def _alive(ref: weakref.ref[Node]) -> Callable[[], bool]:
    return lambda: ref() is not None


def _discovery_of(ref: weakref.ref[Node]) -> Callable[[], Discovery | None]:
    """The node's discovery once it was made (for the mirror to announce itself there)."""

    def get() -> Discovery | None:
        node = ref()
        return None if node is None else node._discovery

    return get


def _mirror_from_env(value: str | None) -> MirrorOptions | None:
    """``PEERMQ_MIRROR``: unset for the default, ``off`` for none, or comma-separated endpoints."""
    if value is None or not value.strip():
        return MirrorOptions()
    if value.strip().lower() in ("off", "0", "no", "false"):
        return None
    try:
        return MirrorOptions(bind=tuple(ep.strip() for ep in value.split(",") if ep.strip()))
    except ConfigError as exc:
        _log.warning("mirror.bad_env PEERMQ_MIRROR=%r error=%s (using the default)", value, exc)
        return MirrorOptions()


def security_from_env(env: Mapping[str, str]) -> SecurityOptions | None:
    """``PEERMQ_SECURITY`` (``curve`` or ``off``), ``PEERMQ_KEYS`` (dir), ``PEERMQ_TRUST``
    (``strict``, ``tofu`` or ``open``): the default node's and the CLI's security."""
    mode = env.get("PEERMQ_SECURITY", "").strip().lower()
    if mode in ("", "off", "none", "0", "no", "false"):
        return None
    if mode != "curve":
        raise ConfigError(f"PEERMQ_SECURITY must be 'curve' or 'off', got {mode!r}")
    policy = env.get("PEERMQ_TRUST", "").strip().lower() or "strict"
    try:
        trust = TrustPolicy(policy)
    except ValueError:
        raise ConfigError(
            f"PEERMQ_TRUST must be 'strict', 'tofu' or 'open', got {policy!r}"
        ) from None
    return SecurityOptions(keys_dir=env.get("PEERMQ_KEYS") or None, policy=trust)


@atexit.register
def _close_default() -> None:
    node = Node._default
    if node is not None and node._pid == os.getpid():
        node.close()
