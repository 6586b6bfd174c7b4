"""Peer counts follow handshakes that succeeded: bad peers never move them (PeerLedger)."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable
from pathlib import Path

import pytest

import peermq
import peermq.aio
from peermq._core import PeerLedger

from .test_security import dirs, public, secure

__all__ = ["dirs"]  # the key directories fixture, shared with test_security


def settle(read: Callable[[], int], want: int, hold: float = 0.5, timeout: float = 5.0) -> list[int]:
    """Read the count until it has been ``want`` for ``hold`` seconds; every value seen."""
    seen: list[int] = []
    end = time.monotonic() + timeout
    since: float | None = None
    while time.monotonic() < end:
        value = read()
        if not seen or seen[-1] != value:
            seen.append(value)
        if value == want:
            since = since or time.monotonic()
            if time.monotonic() - since >= hold:
                return seen
        else:
            since = None
        time.sleep(0.01)  # a read of the monitor between polls, bounded by the deadline
    return seen


def garbage(endpoint: str, n: int, data: bytes = b"GET / HTTP/1.1\r\n\r\n") -> None:
    """``n`` raw TCP clients that send ``data`` (or nothing) and leave."""
    host, port = endpoint.removeprefix("tcp://").rsplit(":", 1)
    for i in range(n):
        with socket.create_connection((host, int(port)), timeout=5.0) as c:
            if i % 2:
                c.sendall(data * 3)


# -- the ledger alone: what each sequence of monitor events means


def test_ledger_ignores_connections_that_never_handshake() -> None:
    led = PeerLedger()
    led.opened("e", 5)
    led.succeeded("e")
    for fd in (6, 7, 8):
        led.opened("e", fd)
    led.failed("e")          # one of 6, 7, 8 was refused ...
    assert not led.closed("e", 7)  # ... 7 sent garbage: no outcome at all
    assert not led.closed("e", 8)
    assert not led.closed("e", 6)
    assert led.peers == 1
    assert led.closed("e", 5)
    assert led.peers == 0
    assert not led.closed("e", 5)  # a repeated close: never negative
    assert led.peers == 0


def test_ledger_ties_mixed_outcomes_when_the_failed_one_leaves() -> None:
    led = PeerLedger()
    led.opened("e", 5)
    led.opened("e", 6)
    led.succeeded("e")
    led.failed("e")
    assert led.peers == 1
    assert not led.closed("e", 6)  # a failure is untied: the one that leaves is taken as it
    assert led.peers == 1
    assert led.closed("e", 5)
    assert led.peers == 0


def test_ledger_without_fds_counts_successes_minus_closes() -> None:
    led = PeerLedger()
    led.succeeded("e")
    led.succeeded("e")
    assert led.closed("e", 3) and led.peers == 1
    assert led.closed("e", 4) and led.peers == 0
    assert not led.closed("e", 9) and led.peers == 0


def test_ledger_a_reused_fd_closes_the_old_connection() -> None:
    led = PeerLedger()
    led.opened("e", 5)
    led.succeeded("e")
    led.opened("e", 5)  # its close event was lost
    assert led.peers == 0


# -- real sockets


def test_garbage_clients_do_not_lower_a_pushers_count() -> None:
    with peermq.Pusher(bind="tcp://127.0.0.1:*") as push, \
            peermq.Puller(connect=push.endpoints[0]) as pull:
        assert push.wait_for_peers(1, timeout=5.0) == 1
        garbage(push.endpoints[0], 10)
        seen = settle(lambda: push.peers, 1)
        assert seen == [1], seen
        assert push.stats().peers == 1
        pull.close()
        assert settle(lambda: push.peers, 0)[-1] == 0


def test_a_puller_counts_a_pusher_once_amid_garbage() -> None:
    with peermq.Puller(bind="tcp://127.0.0.1:*") as pull:
        garbage(pull.endpoints[0], 6)
        with peermq.Pusher(connect=pull.endpoints[0]) as push:
            assert pull.wait_for_peers(1, timeout=5.0) == 1
            garbage(pull.endpoints[0], 6)
            push.send("job", 1)
            assert pull.recv(timeout=5.0).data == 1
            assert settle(lambda: pull.peers, 1) == [1]
        assert settle(lambda: pull.peers, 0)[-1] == 0


def _secure_pusher_count(keys: dict[str, Path], raw_clients: int) -> None:
    server_key = public(keys["alice"])
    with secure(keys["alice"]) as a, secure(keys["bob"]) as b, \
            secure(keys["mallory"], auth_backoff=0.05) as m, \
            peermq.Pusher(bind="tcp://127.0.0.1:*", node=a) as push:
        ep = push.endpoints[0]
        for n in (b, m):
            assert n.security is not None
            n.security.expect(ep, server_key)
        with peermq.Puller(connect=ep, node=b) as pull:
            assert push.wait_for_peers(1, timeout=5.0) == 1
            refused = [peermq.Puller(connect=ep, node=m) for _ in range(4)]
            try:
                garbage(ep, raw_clients)
                seen = settle(lambda: push.peers, 1, hold=1.0)
                assert seen == [1], seen
                assert a.security is not None and a.security.stats().refused >= 4
            finally:
                for r in refused:
                    r.close()
            assert pull.peers == 1
        assert settle(lambda: push.peers, 0)[-1] == 0


def test_secure_pusher_counts_one_trusted_puller_among_refused_ones(
    dirs: dict[str, Path],
) -> None:
    _secure_pusher_count(dirs, 0)


def test_secure_pusher_count_ignores_raw_garbage_clients(dirs: dict[str, Path]) -> None:
    _secure_pusher_count(dirs, 10)


def test_ledger_counts_a_peer_down_while_another_handshake_is_pending() -> None:
    led = PeerLedger()
    led.opened("e", 5)       # an idle client: no outcome until its handshake times out
    led.opened("e", 6)
    led.succeeded("e")       # 6, but the ledger cannot tell which yet
    assert led.peers == 1
    assert led.closed("e", 6)  # no failure is untied: the one that leaves had succeeded
    assert led.peers == 0
    led.failed("e")          # 5 times out
    assert not led.closed("e", 5)
    assert led.peers == 0


def test_a_pusher_leaving_while_an_idle_client_handshakes_is_counted_out() -> None:
    """An idle TCP client holds its handshake open (up to handshake_timeout, 10 s); a real
    peer that leaves meanwhile must still be counted out at once."""
    with peermq.Puller(bind="tcp://127.0.0.1:*") as pull:
        host, port = pull.endpoints[0].removeprefix("tcp://").rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=5.0):
            with peermq.Pusher(connect=pull.endpoints[0]) as push:
                assert push.wait_for_peers(1, timeout=5.0) == 1
                assert settle(lambda: pull.peers, 1)[-1] == 1
            seen = settle(lambda: pull.peers, 0, timeout=3.0)
            assert seen[-1] == 0, seen  # well before the idle client's handshake times out


# -- the monitor's queue has no high-water mark (a full one blocks libzmq's I/O thread), so
#    every socket must keep it read on its own paths, not only when asked for its count


def test_a_receiver_waiting_in_recv_keeps_its_monitor_read() -> None:
    with peermq.Puller(bind="tcp://127.0.0.1:*") as pull:
        garbage(pull.endpoints[0], 200)
        mon = pull._monitor
        assert mon is not None and mon.poll(5000)  # the connections' events are queued
        with pytest.raises(TimeoutError):
            pull.recv(timeout=2.5)  # one quiet wait: it reads the monitor each second
        assert not mon.poll(0), "the monitor was left unread"


def test_an_asyncio_receiver_waiting_in_recv_keeps_its_monitor_read() -> None:
    async def main() -> bool:
        async with peermq.aio.Puller(bind="tcp://127.0.0.1:*") as pull:
            garbage(pull.endpoints[0], 200)
            mon = pull._monitor
            assert mon is not None and mon.poll(5000)
            with pytest.raises(TimeoutError):
                await pull.recv(timeout=2.5)
            return bool(mon.poll(0))

    assert asyncio.run(main()) is False, "the monitor was left unread"


def test_a_sender_that_only_sends_keeps_its_monitor_read() -> None:
    with peermq.Pusher(bind="tcp://127.0.0.1:*") as push, \
            peermq.Puller(connect=push.endpoints[0]) as pull:
        push.wait_for_peers(1, timeout=5.0)
        garbage(push.endpoints[0], 200)
        mon = push._monitor
        assert mon is not None and mon.poll(5000)
        unread = True
        for _ in range(5):  # more rounds only if late events landed after a round's read
            for i in range(1024):
                push.send("jobs", i)  # every 1,024th send reads the monitor
            assert [pull.recv(timeout=5.0).data for _ in range(1024)] == list(range(1024))
            unread = mon.poll(0)
            if not unread:
                break
        assert not unread, "the monitor was left unread"
