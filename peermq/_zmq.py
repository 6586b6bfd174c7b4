"""The one place that imports zmq: socket setup, option units, polling and error translation."""

from __future__ import annotations

import enum
import errno
import time
from collections.abc import Callable

import zmq
import zmq.backend

from .config import OnFull, SocketOptions
from .errors import ClosedError, ConfigError, PeerError, PeermqError

__all__ = [
    "AGAIN",
    "NOBLOCK",
    "POLLIN",
    "POLLOUT",
    "Kind",
    "ZMQError",
    "configure",
    "new_context",
    "poll",
    "translate",
    "zmq_version",
]

Again = zmq.Again
ZMQError = zmq.ZMQError
NOBLOCK = zmq.NOBLOCK
POLLIN = zmq.POLLIN
POLLOUT = zmq.POLLOUT
AGAIN = zmq.Again
Context = zmq.Context
Socket = zmq.Socket


class Kind(enum.Enum):
    PUBLISHER = zmq.XPUB
    SUBSCRIBER = zmq.XSUB
    PUSHER = zmq.PUSH
    PULLER = zmq.PULL


def _ms(seconds: float) -> int:
    return round(seconds * 1000)


def new_context() -> zmq.Context[zmq.Socket[bytes]]:
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context(io_threads=1)
    ctx.setsockopt(zmq.LINGER, 0)
    return ctx


ZAP_DOMAIN = b"peermq"

OPENED = zmq.EVENT_ACCEPTED | zmq.EVENT_CONNECTED
HANDSHAKE_FAILED = (zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
                    | zmq.EVENT_HANDSHAKE_FAILED_AUTH)
PEER_EVENTS = OPENED | zmq.EVENT_HANDSHAKE_SUCCEEDED | HANDSHAKE_FAILED | zmq.EVENT_DISCONNECTED
"""What a socket's monitor reports: all PeerLedger needs to tie handshakes to connections."""


def configure(
    sock: zmq.Socket[bytes], kind: Kind, opts: SocketOptions, welcome: bytes, on_full: OnFull
) -> None:
    """Apply peermq's safe defaults (finite linger, size limit, backoff, bounded queues)."""
    receiver = kind in (Kind.SUBSCRIBER, Kind.PULLER)
    sock.setsockopt(zmq.LINGER, 0 if receiver else _ms(opts.linger))
    sock.setsockopt(zmq.SNDHWM, opts.send_hwm)
    sock.setsockopt(zmq.RCVHWM, opts.recv_hwm)
    sock.setsockopt(zmq.MAXMSGSIZE, opts.max_message_size)
    sock.setsockopt(zmq.RECONNECT_IVL, _ms(opts.reconnect_interval))
    sock.setsockopt(zmq.RECONNECT_IVL_MAX, _ms(opts.reconnect_interval_max))
    sock.setsockopt(zmq.HANDSHAKE_IVL, _ms(opts.handshake_timeout))
    # libzmq takes a peer whose first byte is not 0xFF for a ZMTP 1.0 peer, with no handshake:
    # an HTTP probe to a pusher's port became a peer and took its round-robin share, lost when
    # it hung up (measured: 512 of 1,024 messages, silently). A ZAP domain makes libzmq refuse
    # ZMTP 1.0; with no ZAP handler in the context (no security) it lets ZMTP 3 peers in.
    sock.setsockopt(zmq.ZAP_DOMAIN, ZAP_DOMAIN)
    if opts.heartbeat_interval > 0:
        sock.setsockopt(zmq.HEARTBEAT_IVL, _ms(opts.heartbeat_interval))
        timeout = opts.heartbeat_timeout or 3 * opts.heartbeat_interval
        sock.setsockopt(zmq.HEARTBEAT_TIMEOUT, _ms(timeout))
        sock.setsockopt(zmq.HEARTBEAT_TTL, _ms(timeout))
    if kind is Kind.PUBLISHER:
        if on_full is OnFull.BLOCK:
            sock.setsockopt(zmq.XPUB_NODROP, 1)
        sock.setsockopt(zmq.XPUB_WELCOME_MSG, welcome)
    if kind is Kind.PUSHER:
        # Queue only on connections that are up: nothing waits in a pipe to a peer never reached.
        sock.setsockopt(zmq.IMMEDIATE, 1)
    if kind in (Kind.PUBLISHER, Kind.PUSHER):
        sock.setsockopt(zmq.SNDTIMEO, _ms(opts.send_timeout))


def curve_server(sock: zmq.Socket[bytes], public: bytes, secret: bytes) -> None:
    """Make the next ``bind`` a CURVE server whose clients ZAP must let in."""
    sock.setsockopt(zmq.CURVE_PUBLICKEY, public)
    sock.setsockopt(zmq.CURVE_SECRETKEY, secret)
    sock.setsockopt(zmq.CURVE_SERVER, 1)
    sock.setsockopt(zmq.ZAP_DOMAIN, ZAP_DOMAIN)
    # no ZAP handler must mean no entry, not "everyone in"
    sock.setsockopt(zmq.ZAP_ENFORCE_DOMAIN, 1)


def curve_client(
    sock: zmq.Socket[bytes], public: bytes, secret: bytes, server_key: bytes
) -> None:
    """Make the next ``connect`` a CURVE client that accepts only ``server_key``.

    Order matters: CURVE_SERVER=0 resets the mechanism to NULL; the keys set it back to CURVE.
    """
    sock.setsockopt(zmq.CURVE_SERVER, 0)
    sock.setsockopt(zmq.CURVE_PUBLICKEY, public)
    sock.setsockopt(zmq.CURVE_SECRETKEY, secret)
    sock.setsockopt(zmq.CURVE_SERVERKEY, server_key)
    stop_after_failed_handshake(sock)


def stop_after_failed_handshake(sock: zmq.Socket[bytes]) -> bool:
    """Make libzmq give up an endpoint whose handshake failed, so the caller can back off.

    Without it libzmq retries every ``reconnect_interval`` for ever (12 times in 1.2 s was
    measured), and ``disconnect`` does not stop that loop. A DRAFT option of libzmq 4.3.3+:
    False where this libzmq lacks it.
    """
    option = getattr(zmq, "RECONNECT_STOP", None)
    if option is None:
        return False
    try:
        sock.setsockopt(option, zmq.RECONNECT_STOP_HANDSHAKE_FAILED)
    except zmq.ZMQError:
        return False
    return True


def monitor_pair(
    ctx: zmq.Context[zmq.Socket[bytes]], sock: zmq.Socket[bytes], addr: str, events: int
) -> zmq.Socket[bytes]:
    """Start ``sock``'s monitor on ``addr`` and return the PAIR that reads it.

    The PAIR has no receive high-water mark: libzmq's I/O thread *blocks* on a full monitor
    queue (libzmq issue 3575), freezing every socket of the context, so a burst of connections
    while the owner is busy elsewhere (a thousand garbage clients did it) must queue instead.
    An event is a few hundred bytes, held until the owner reads it (``_read_monitor``): a
    sender every 1,024 sends, a receiver every 64th time its queue runs dry, a socket that
    waits once a second, and any whenever its peer count or stats are asked for.
    """
    sock.monitor(addr, events)
    pair = ctx.socket(zmq.PAIR)
    pair.setsockopt(zmq.LINGER, 0)
    pair.setsockopt(zmq.RCVHWM, 0)
    pair.connect(addr)
    return pair


def set_send_timeout(sock: zmq.Socket[bytes], seconds: float) -> None:
    sock.setsockopt(zmq.SNDTIMEO, _ms(seconds))


def last_endpoint(sock: zmq.Socket[bytes]) -> str:
    return sock.getsockopt_string(zmq.LAST_ENDPOINT)


def poll(sock: zmq.Socket[bytes], events: int, timeout: float | None) -> bool:
    """Wait until ``sock`` has ``events``; ``timeout`` None waits for ever (in bounded slices)."""
    if timeout is None:
        while not sock.poll(1000, events):
            pass
        return True
    return bool(sock.poll(max(0, _ms(timeout)), events))


def poll_with(
    sock: zmq.Socket[bytes], events: int, fd: int, timeout: float | None
) -> tuple[bool, bool]:
    """Wait for ``events`` on ``sock`` or input on ``fd``; returns (sock ready, fd ready).

    One call waits at most one second (callers loop until their deadline, and read their
    monitor in between). zmq_poll on a plain list: a Poller object per wait measured twice
    the cost.
    """
    ms = 1000 if timeout is None else max(0, min(1000, _ms(timeout)))
    sock_ready = fd_ready = False
    for item, revents in zmq.zmq_poll([(sock, events), (fd, zmq.POLLIN)], ms):
        if item == fd:
            fd_ready = True
        elif revents & events:
            sock_ready = True
    return sock_ready, fd_ready


_base_send = zmq.backend.Socket.send
_base_recv = zmq.backend.Socket.recv


def raw_send(sock: zmq.Socket[bytes]) -> Callable[[bytes, int], object]:
    """``sock.send`` without pyzmq's Python wrapper (measured ~0.9 us less per send+recv)."""
    return _base_send.__get__(sock)  # type: ignore[no-any-return]


def raw_recv(sock: zmq.Socket[bytes]) -> Callable[[int], bytes]:
    """``sock.recv`` without pyzmq's Python wrapper; returns bytes."""
    return _base_recv.__get__(sock)  # type: ignore[no-any-return]


def deadline_left(deadline: float | None) -> float | None:
    if deadline is None:
        return None
    return max(0.0, deadline - time.monotonic())


def translate(exc: zmq.ZMQError, what: str) -> PeermqError:
    """Map a ZMQError to the peermq tree; ``what`` says which operation failed."""
    code = exc.errno
    if code in (zmq.ETERM, zmq.ENOTSOCK):
        return ClosedError(f"{what}: the socket or its node is closed")
    if code in (errno.EINVAL, zmq.EPROTONOSUPPORT, errno.EADDRNOTAVAIL, zmq.ENOCOMPATPROTO):
        return ConfigError(f"{what}: {exc.strerror}")
    if code == errno.EADDRINUSE:
        return PeerError(f"{what}: address already in use", retriable=False)
    if code == errno.ENOENT:  # an ipc path in a missing directory, or not connected to it
        return PeerError(f"{what}: {exc.strerror}", retriable=False)
    return PeerError(f"{what}: {exc.strerror}")


def zmq_version() -> str:
    return zmq.zmq_version()
