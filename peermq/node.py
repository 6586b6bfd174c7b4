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
from types import TracebackType
from typing import Protocol

import zmq

from ._zmq import new_context
from .errors import ClosedError, ConfigError

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

    def __init__(self, *, name: str | None = None, node_id: str | None = None) -> None:
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

    @classmethod
    def default(cls) -> Node:
        """The process-wide node (made on first use; a forked child gets its own)."""
        with cls._default_lock:
            node = cls._default
            if node is None or node.closed or node._pid != os.getpid():
                node = cls(name=os.environ.get("PEERMQ_NODE_NAME") or None)
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
            self._sockets.add(sock)
            return next(self._streams)

    def close(self) -> None:
        """Close every socket of this node, then the context (bounded by each socket's linger)."""
        with self._lock:
            ctx, self._ctx = self._ctx, None
            socks = list(self._sockets)
        if ctx is None:
            return
        for s in socks:
            s.close()
        if self._pid == os.getpid():
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


@atexit.register
def _close_default() -> None:
    node = Node._default
    if node is not None and node._pid == os.getpid():
        node.close()
