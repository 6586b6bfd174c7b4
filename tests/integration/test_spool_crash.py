"""Nothing lost: senders and receivers killed with SIGKILL at random moments, many times.

Every process writes a history (spool_peer.py); spool_history.check asserts the properties
after each scenario. The random moments are counts of messages seen in the history, chosen
by a seeded generator (the seed is printed on failure; PEERMQ_SPOOL_SEED replays one).
"""

from __future__ import annotations

import contextlib
import os
import random
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ..helpers import REPO
from . import spool_history

PEER = Path(__file__).with_name("spool_peer.py")
SEED = int(os.environ.get("PEERMQ_SPOOL_SEED", random.randrange(1 << 30)))


class Procs:
    """The peer processes of one test: started, waited on with deadlines, always reaped."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.history = tmp / "history.jsonl"
        self.all: list[subprocess.Popen[str]] = []

    def start(self, *args: str) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            [sys.executable, str(PEER), args[0], *args[1:3], str(self.history), *args[3:]],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
        )
        self.all.append(proc)
        self.expect(proc, "ready")
        return proc

    def expect(self, proc: subprocess.Popen[str], line: str, timeout: float = 30.0) -> None:
        assert proc.stdout is not None
        with selectors.DefaultSelector() as sel:
            sel.register(proc.stdout, selectors.EVENT_READ)
            if not sel.select(timeout):
                raise AssertionError(f"no {line!r} within {timeout}s from {proc.args}")
        got = proc.stdout.readline().strip()
        if got != line:
            _, err = proc.communicate(timeout=10)
            raise AssertionError(f"expected {line!r}, got {got!r}; stderr:\n{err}")

    def count(self, event: str) -> int:
        if not self.history.exists():
            return 0
        text = self.history.read_text()
        return text.count(f'"ev": "{event}"')

    def wait_count(self, event: str, n: int, timeout: float = 30.0) -> None:
        end = time.monotonic() + timeout
        while self.count(event) < n:
            if time.monotonic() > end:
                raise AssertionError(f"{self.count(event)} of {n} {event!r} events in time")
            time.sleep(0.005)

    def kill(self, proc: subprocess.Popen[str]) -> None:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)

    def stop(self, proc: subprocess.Popen[str]) -> None:
        """SIGTERM: a receiver stops consuming and closes cleanly."""
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
        assert proc.returncode == 0, err

    def close(self) -> None:
        for proc in self.all:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.communicate(timeout=10)


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[Procs]:
    p = Procs(tmp_path)
    try:
        yield p
    finally:
        p.close()


@pytest.fixture
def rng() -> random.Random:
    print(f"PEERMQ_SPOOL_SEED={SEED}")
    return random.Random(SEED)


def endpoint(tmp: Path) -> str:
    return f"ipc://{tmp}/spool.sock"


@pytest.mark.parametrize(("fsync", "rounds"), [("batch", 6), ("always", 3), ("never", 3)])
def test_sigkill_of_the_sender_loses_nothing(
    procs: Procs, rng: random.Random, fsync: str, rounds: int
) -> None:
    ep, spool = endpoint(procs.tmp), str(procs.tmp / "sender")
    # a slow receiver: messages are in flight, unhandled, when the sender dies
    receiver = procs.start("receive", str(procs.tmp / "receiver"), ep, "r1", "0.0005")
    for r in range(rounds):
        sender = procs.start("send", spool, ep, f"s{r}", "2000", fsync, "4000")
        # kill it once it has sent a random number more (a random moment of its stream)
        procs.wait_count("sent", procs.count("sent") + rng.randrange(1, 400))
        procs.kill(sender)
    drain = procs.start("drain", spool, ep)
    procs.expect(drain, "acked")
    procs.stop(receiver)
    out = spool_history.check(spool_history.load(procs.history))
    print(spool_history.summary(out))
    assert out.sent and out.duplicates == 0


def test_sigkill_of_the_receiver_loses_nothing(procs: Procs, rng: random.Random) -> None:
    ep = endpoint(procs.tmp)
    rspool = str(procs.tmp / "receiver")
    sender = procs.start("send", str(procs.tmp / "sender"), ep, "s", "3000", "batch", "1500")
    killed: set[str] = set()
    for r in range(7):
        receiver = procs.start("receive", rspool, ep, f"r{r}")
        procs.wait_count("handled", procs.count("handled") + rng.randrange(1, 300))
        procs.kill(receiver)
        killed.add(f"r{r}")
    last = procs.start("receive", rspool, ep, "last")
    procs.expect(sender, "sent")
    procs.expect(sender, "acked")
    procs.stop(last)
    out = spool_history.check(spool_history.load(procs.history), killed=killed)
    print(spool_history.summary(out))
    assert len(out.sent) == 3000


def test_sigkill_of_both_at_random_loses_nothing(procs: Procs, rng: random.Random) -> None:
    ep = endpoint(procs.tmp)
    sspool, rspool = str(procs.tmp / "sender"), str(procs.tmp / "receiver")
    killed: set[str] = set()
    inc = "r0"
    receiver = procs.start("receive", rspool, ep, inc)
    sender = procs.start("send", sspool, ep, "s0", "1500", "batch", "3000")
    for r in range(1, 9):
        procs.wait_count("handled", procs.count("handled") + rng.randrange(1, 200))
        if rng.random() < 0.5:
            procs.kill(sender)
            sender = procs.start("send", sspool, ep, f"s{r}", "1500", "batch", "3000")
        else:
            procs.kill(receiver)
            killed.add(inc)
            inc = f"r{r}"
            receiver = procs.start("receive", rspool, ep, inc)
    procs.kill(sender)
    drain = procs.start("drain", sspool, ep)
    procs.expect(drain, "acked")
    procs.stop(receiver)
    out = spool_history.check(spool_history.load(procs.history), killed=killed)
    print(spool_history.summary(out))


def test_without_faults_order_holds_and_nothing_is_duplicated(procs: Procs) -> None:
    ep = endpoint(procs.tmp)
    receiver = procs.start("receive", "-", ep, "r")
    sender = procs.start("send", str(procs.tmp / "sender"), ep, "s", "2000")
    procs.expect(sender, "sent")
    procs.expect(sender, "acked")
    procs.stop(receiver)
    out = spool_history.check(spool_history.load(procs.history), ordered=True)
    assert len(out.sent) == 2000 and out.duplicates == 0


def test_a_durable_subscriber_killed_and_away_misses_nothing(
    procs: Procs, rng: random.Random
) -> None:
    ep = endpoint(procs.tmp)
    sspool = str(procs.tmp / "subscriber")
    pub = procs.start("publish", str(procs.tmp / "log"), ep, "p", "3000", "1000", "d")
    killed: set[str] = set()
    for r in range(6):
        sub = procs.start("subscribe", sspool, ep, f"r{r}", "d")
        procs.wait_count("handled", procs.count("handled") + rng.randrange(1, 200))
        procs.kill(sub)
        killed.add(f"r{r}")
        # and stays away a while: the publisher goes on (while it has more to send)
        procs.wait_count("sent", min(3000, procs.count("sent") + rng.randrange(1, 200)))
    last = procs.start("subscribe", sspool, ep, "last", "d")
    procs.expect(pub, "sent")
    procs.expect(pub, "acked")
    procs.stop(last)
    out = spool_history.check(spool_history.load(procs.history), killed=killed)
    print(spool_history.summary(out))
    assert len(out.sent) == 3000
