"""The spool across hosts: a silent partition and a pulled cable lose nothing (issue 4).

A spooled sender on host h1, receivers on h2 and h3 (lab.py), every process writing the crash
tests' history (tests/integration/spool_history.py checks it). The defences under test are
the spool links' defaults: ZMTP heartbeats (1 s, timeout 5 s) find the silent peer, and
``ack_timeout`` (30 s) would cover what they miss. Each scenario cuts h2 off for longer than
the heartbeat timeout while h1 keeps sending, then heals it, and asserts:

- every durable (and every sent) message was handled, intact, nothing never sent;
- what h2 held when it was cut off went to h3 while the cut lasted (the queue) or to h2 once
  back (the durable subscriber), and h2 links again by itself and takes new work;
- a message reached a handler twice only as docs/spool.md says: first at h2 before the heal
  (its acks were lost with the link), then at another puller; no receiver handled one twice;
- first deliveries came in spool order per receiver; the pusher ends with nothing pending.

Figures (time to notice, to redeliver, to link again) are printed; run with ``-s`` to see them.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..integration import spool_history
from .lab import Host, Lab, Proc

T = 15.0
HEARTBEAT_TIMEOUT = 5.0
"""SpoolOptions' default: the tests rely on the defaults being sensible."""
NOTICE = HEARTBEAT_TIMEOUT + 3.0
"""A silent peer must be dropped within this of the cut (timeout, one interval, slack)."""
CUT = NOTICE + 1.0
"""How long h2 stays cut off: past the heartbeat timeout, with time to redeliver."""
SHORT_CUT = 2.0
"""A cut TCP rides out (its retransmissions reach the peer after it) before any timeout."""
RATE = "400"
LIMIT = "40"
"""Seconds a sender streams at most (the test tells it to stop well before)."""

Event = dict[str, object]


def num(e: Event, key: str) -> float:
    value = e[key]
    assert isinstance(value, (int, float)), e
    return value


def index(e: Event) -> int:
    """The sender's message number (ids are ``run:i``)."""
    return int(str(e["id"]).rsplit(":", 1)[1])


def spool_host(host: Host, *args: str) -> Proc:
    return host.spawn([sys.executable, "-m", "tests.network.spool_host", *args])


def peers_after(proc: Proc, after: float, n: int, timeout: float) -> Event:
    """The sender's report of ``n`` linked receivers, made after ``after`` (monotonic)."""
    return proc.expect(lambda d: d.get("event") == "peers" and d["n"] == n
                       and num(d, "t") > after, timeout, f"peers={n} after the fault")


def no_peers_change(proc: Proc, after: float, until: float) -> None:
    """Fail if the sender's linked receivers change after ``after`` and before ``until``."""
    try:
        got = proc.expect(lambda d: d.get("event") == "peers" and num(d, "t") > after,
                          until - time.monotonic())
    except AssertionError:
        return  # none came: what we want
    raise AssertionError(f"{proc.label}: linked receivers changed while cut off: {got}")


def handled(history: Path, pred: Callable[[Event], bool] = lambda e: True) -> list[Event]:
    """Handlings so far (a line still being written by a live process is left out)."""
    text = history.read_text() if history.exists() else ""
    events = [json.loads(line) for line in text[: text.rfind("\n") + 1].splitlines()]
    return [e for e in events if e["ev"] == "handled" and pred(e)]


def wait_handled(history: Path, pred: Callable[[Event], bool], what: str,
                 timeout: float = T) -> Event:
    """The first handling ``pred`` accepts, waiting for it (the history is a shared file)."""
    end = time.monotonic() + timeout
    while True:
        found = handled(history, pred)
        if found:
            return found[0]
        if time.monotonic() > end:
            raise AssertionError(f"no handling by {what} within {timeout}s")
        time.sleep(0.05)  # polling a file: no event to wait on


def by(inc: str, *, n: int | None = None, after: float = 0.0) -> Callable[[Event], bool]:
    def pred(e: Event) -> bool:
        return e["inc"] == inc and (n is None or e["n"] == n) and num(e, 't') > after
    return pred


def check_queue(history: Path, healed: float) -> spool_history.Outcome:
    """The properties above, for a queue whose puller B was cut off until ``healed``."""
    events = spool_history.load(history)
    # a copy is let through only after a first handling by B, the puller that was cut off
    out = spool_history.check(events, killed={"B"}, ordered=True)
    for msg_id, hs in out.handled.items():
        incs = [h["inc"] for h in hs]
        assert len(set(incs)) == len(incs), f"{msg_id} handled twice by one puller: {hs}"
        for h in hs[:-1]:
            assert num(h, 't') < healed, f"{msg_id}: a duplicate after the heal: {hs}"
    return out


@dataclass
class Queue:
    """A spooled pusher on h1 streaming to pullers B (on h2, the one cut off) and C (h3)."""

    history: Path
    h2: Host
    push: Proc
    pullers: tuple[Proc, Proc]

    @classmethod
    def start(cls, lab: Lab, tmp: Path) -> Queue:
        h1, h2, h3 = (lab.add_host(f"h{i}", v6=False) for i in (1, 2, 3))
        history = tmp / "history.jsonl"
        push = spool_host(h1, "push", f"tcp://{h1.addr()}:*", str(tmp / "a"), str(history),
                          "s", RATE, LIMIT)
        ep = str(push.event("ready", T)["endpoint"])
        b = spool_host(h2, "pull", ep, str(tmp / "b"), str(history), "B")
        c = spool_host(h3, "pull", ep, str(tmp / "c"), str(history), "C")
        push.event("peers", T, n=2)
        wait_handled(history, by("B"), "B before the cut")
        wait_handled(history, by("C"), "C before the cut")
        return cls(history, h2, push, (b, c))

    def finish(self) -> None:
        """Stop the stream; everything must be acknowledged; every process exits cleanly."""
        self.push.send("stop")
        self.push.event("sent", T)
        acked = self.push.event("acked", 40.0)
        assert acked["unacked"] == 0, acked  # the pusher's pending count
        for p in (*self.pullers, self.push):
            assert p.quit() == 0, p.stderr[-5:]


def queue_across_a_fault(lab: Lab, tmp: Path, cut: Callable[[Host, bool], None]) -> None:
    q = Queue.start(lab, tmp)
    start = time.monotonic()
    cut(q.h2, True)
    gone = peers_after(q.push, start, 1, NOTICE)
    again = wait_handled(q.history, lambda e: e["inc"] == "C" and e["n"] != 1,
                         "C of what B held", timeout=CUT)
    no_peers_change(q.push, num(gone, 't'), start + CUT)  # B stays away while cut off
    healed = time.monotonic()
    cut(q.h2, False)
    back = peers_after(q.push, healed, 2, T)
    work = wait_handled(q.history, by("B", n=1, after=healed), "B of new work after the heal")
    q.finish()

    out = check_queue(q.history, healed)
    print(f"\n{spool_history.summary(out)}; B dropped after {num(gone, 't') - start:.2f}s, "
          f"its messages at C after {num(again, 't') - start:.2f}s, linked again "
          f"{num(back, 't') - healed:.2f}s after the heal, new work at B after "
          f"{num(work, 't') - healed:.2f}s")


def test_a_silent_partition_of_a_puller_loses_nothing(lab: Lab, tmp_path: Path) -> None:
    queue_across_a_fault(lab, tmp_path, lambda host, on: host.partition(on))


def test_a_pulled_cable_loses_nothing_and_the_puller_comes_back(lab: Lab, tmp_path: Path
                                                                ) -> None:
    queue_across_a_fault(lab, tmp_path, lambda host, on: host.cable(not on))


def test_a_cut_shorter_than_the_heartbeat_timeout_costs_nothing(lab: Lab, tmp_path: Path
                                                                 ) -> None:
    q = Queue.start(lab, tmp_path)
    start = time.monotonic()
    q.h2.partition(True)
    no_peers_change(q.push, start, start + SHORT_CUT)
    healed = time.monotonic()
    q.h2.partition(False)
    wait_handled(q.history, by("B", n=1, after=healed), "B of new work after the heal")
    # nor is B dropped late, once its heartbeats and unacknowledged bytes are overdue
    no_peers_change(q.push, start, start + NOTICE)
    q.finish()
    out = spool_history.check(spool_history.load(q.history), ordered=True)
    assert out.duplicates == 0 and not handled(q.history, lambda e: e["n"] != 1)
    print(f"\n{spool_history.summary(out)}")


def test_a_durable_subscriber_behind_a_partition_misses_nothing(lab: Lab, tmp_path: Path
                                                                ) -> None:
    h1, h2 = lab.add_host("h1", v6=False), lab.add_host("h2", v6=False)
    history = tmp_path / "history.jsonl"
    pub = spool_host(h1, "publish", f"tcp://{h1.addr()}:*", str(tmp_path / "log"),
                     str(history), "p", RATE, LIMIT, "d")
    ep = str(pub.event("ready", T)["endpoint"])
    sub = spool_host(h2, "subscribe", ep, str(tmp_path / "seen"), str(history), "B", "d")
    pub.event("peers", T, n=1)
    wait_handled(history, by("B"), "the subscriber before the cut")

    start = time.monotonic()
    h2.partition(True)
    gone = peers_after(pub, start, 0, NOTICE)
    no_peers_change(pub, num(gone, 't'), start + CUT)
    healed = time.monotonic()
    sent_by_heal = history.read_text().count('"ev": "sent"')
    h2.partition(False)
    back = peers_after(pub, healed, 1, T)
    live = wait_handled(history, lambda e: index(e) > sent_by_heal,
                        "the subscriber of the live stream after the heal")
    pub.send("stop")
    pub.event("sent", T)
    acked = pub.event("acked", 40.0)
    assert acked["unacked"] == 0, acked  # behind the cursor, nothing held
    assert sub.quit() == 0, sub.stderr[-5:]
    stats = sub.event("stats", T)
    assert stats["gaps"] == 0 and stats["told"] == 0, stats
    assert pub.quit() == 0, pub.stderr[-5:]

    out = spool_history.check(spool_history.load(history))
    assert out.duplicates == 0
    # what it missed, then the live stream: one run of seqs, no seam, nothing twice
    seqs = [int(num(e, "seq")) for e in handled(history)]
    assert seqs == sorted(set(seqs)) and seqs == list(range(seqs[0], seqs[-1] + 1)), seqs
    print(f"\n{spool_history.summary(out)}; dropped after {num(gone, 't') - start:.2f}s, "
          f"linked again {num(back, 't') - healed:.2f}s after the heal, live after "
          f"{num(live, 't') - healed:.2f}s")
