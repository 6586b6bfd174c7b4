"""The tap over real sockets: mirrors, several sending processes, pullers, drops and gaps."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import peermq
from peermq import MirrorOptions, OnFull, SocketOptions
from peermq.tap import Event, NodeJoined, NodeLeft, NodeStatus, Tap, TapGap, TapMessage

from ..helpers import REPO

PEER = os.path.join(REPO, "tests", "integration", "tap_peer.py")


def gather(tap: Tap, done: Callable[[list[Event]], bool], timeout: float = 15.0) -> list[Event]:
    """Events from ``tap`` until ``done(events)`` holds; fails after ``timeout``."""
    events: list[Event] = []
    end = time.monotonic() + timeout
    while not done(events):
        left = end - time.monotonic()
        assert left > 0, f"gave up after {timeout}s with {len(events)} events: {events[-5:]}"
        events += tap.poll(min(left, 0.5))
    return events


def messages(events: list[Event]) -> list[TapMessage]:
    return [e for e in events if isinstance(e, TapMessage)]


def joined(n: int) -> Callable[[list[Event]], bool]:
    return lambda events: sum(isinstance(e, NodeJoined) for e in events) >= n


def seqs_by_sender(events: list[Event]) -> dict[tuple[str, int, str], list[int]]:
    out: dict[tuple[str, int, str], list[int]] = defaultdict(list)
    for m in messages(events):
        out[(m.node, m.stream, m.topic)].append(m.seq)
    return dict(out)


def until(cond: Callable[[], bool], timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < end, "condition not met in time"
        time.sleep(0.01)


def test_tap_sees_pub_and_push_and_the_puller_still_gets_everything() -> None:
    with peermq.Node(name="shop") as node, \
            peermq.Publisher(node=node, bind="tcp://127.0.0.1:*") as pub, \
            peermq.Pusher(node=node, bind="tcp://127.0.0.1:*") as push, \
            peermq.Subscriber(connect=pub.endpoints[0]) as sub, \
            peermq.Puller(connect=push.endpoints[0]) as pull:
        assert node.mirror is not None and not node.mirror.attached
        assert pub._tap is None and push._tap is None  # nothing to pay while nobody watches
        with Tap(connect=node.mirror.endpoints) as tap:
            (hello,) = [e for e in gather(tap, joined(1)) if isinstance(e, NodeJoined)]
            assert hello.name == "shop" and hello.pid == os.getpid()
            assert {(s.stream, s.kind) for s in hello.sockets} == {(pub.stream, "pub"),
                                                                   (push.stream, "push")}
            assert node.mirror.attached and pub._tap is not None
            pub.wait_for_subscribers(1)
            push.wait_for_peers(1)
            for i in range(300):
                pub.send("orders.created", {"i": i}, headers={"region": "eu"})
                push.send("jobs.resize", i.to_bytes(4, "big"))
            pub.send_many([("orders.paid", i) for i in range(200)])
            push.send_many([("jobs.resize", b"batch")] * 200)
            events = gather(tap, lambda ev: len(messages(ev)) >= 1000)
            got = [pull.recv(timeout=5.0) for _ in range(500)]
            got_sub = [sub.recv(timeout=5.0) for _ in range(500)]
        until(lambda: not node.mirror.attached)  # the tap left: copies stop
        assert pub._tap is None and push._tap is None
    seqs = seqs_by_sender(events)
    assert seqs == {
        (node.id, pub.stream, "orders.created"): list(range(1, 301)),
        (node.id, pub.stream, "orders.paid"): list(range(1, 201)),
        (node.id, push.stream, "jobs.resize"): list(range(1, 501)),
    }
    assert not [e for e in events if isinstance(e, TapGap)]
    first = messages(events)[0]
    assert (first.name, first.kind, first.data, dict(first.headers)) == (
        "shop", "pub", {"i": 0}, {"region": "eu"})
    assert [m.seq for m in got] == list(range(1, 501))  # the tap stole nothing
    assert len(got_sub) == 500


def test_a_dropping_sender_shows_gaps_and_reports_its_drops() -> None:
    drop = SocketOptions(on_full=OnFull.DROP, send_hwm=1)
    big = b"x" * 65536
    with peermq.Node(name="worker", mirror=MirrorOptions(status_interval=0.2)) as node, \
            peermq.Pusher(node=node, bind="tcp://127.0.0.1:*", options=drop) as push, \
            peermq.Puller(connect=push.endpoints[0], options=SocketOptions(recv_hwm=1)) as pull:
        assert node.mirror is not None
        with Tap(connect=node.mirror.endpoints) as tap:
            gather(tap, joined(1))
            push.wait_for_peers(1)
            ok: list[bool] = []
            while ok.count(False) < 5:  # the puller reads nothing: queues fill, sends drop
                ok.append(push.send("jobs", big))
                assert len(ok) < 2000
            pulled = []
            with contextlib.suppress(TimeoutError):
                while True:
                    pulled.append(pull.recv(timeout=0.5).seq)
            for _ in range(3):  # a queue of one may still be full: try until it goes
                end = time.monotonic() + 5.0
                while not ok.append(push.send("jobs", b"after")) and not ok[-1]:
                    assert time.monotonic() < end
                    time.sleep(0.001)
                pulled.append(pull.recv(timeout=5.0).seq)
            dropped = ok.count(False)
            events = gather(tap, lambda ev: len(messages(ev)) >= ok.count(True) and any(
                isinstance(e, NodeStatus) and e.dropped == dropped for e in ev))
    delivered = [i + 1 for i, sent in enumerate(ok) if sent]
    assert [m.seq for m in messages(events)] == delivered == pulled
    gaps = [e for e in events if isinstance(e, TapGap)]
    assert sum(g.lost for g in gaps) == dropped >= 5
    assert {(g.topic, g.name, g.kind) for g in gaps} == {("jobs", "worker", "push")}


def test_drops_that_subscribers_report_reach_the_tap() -> None:
    small = SocketOptions(send_hwm=20, recv_hwm=20)
    with peermq.Node(name="fast", mirror=MirrorOptions(status_interval=0.2)) as node, \
            peermq.Publisher(node=node, bind="tcp://127.0.0.1:*", options=small) as pub, \
            peermq.Subscriber(connect=pub.endpoints[0], options=small) as slow:
        assert node.mirror is not None
        with Tap(connect=node.mirror.endpoints) as tap:
            gather(tap, joined(1))
            pub.wait_for_subscribers(1)
            for i in range(5000):  # far more than the slow subscriber's queues hold
                pub.send("ticks", i)
            with contextlib.suppress(TimeoutError):
                while True:
                    slow.recv(timeout=0.5)  # it notices the gaps and tells the publisher
            pub.send("ticks", "last")
            while slow.recv(timeout=5.0).data != "last":
                pass
            lost = slow.stats().gaps
            assert lost > 0
            until(lambda: pub.stats().dropped == lost)  # the reports arrived
            events = gather(tap, lambda ev: any(
                isinstance(e, NodeStatus) and e.dropped == lost for e in ev))
    status = [e for e in events if isinstance(e, NodeStatus)][-1]
    (sock,) = status.sockets
    assert sock.dropped == sum(sock.dropped_by_peer.values()) == lost
    # the tap itself missed nothing: the mirror is not the slow subscriber
    assert [m.seq for m in messages(events)] == list(range(1, 5002))


def test_a_tap_that_cannot_keep_up_loses_copies_the_mirror_counts() -> None:
    tight = MirrorOptions(queue=100, send_hwm=100, status_interval=0.2)
    with peermq.Node(mirror=tight) as node, \
            peermq.Publisher(node=node, bind="tcp://127.0.0.1:*") as pub:
        assert node.mirror is not None
        with Tap(connect=node.mirror.endpoints, options=SocketOptions(recv_hwm=100)) as tap:
            gather(tap, joined(1))
            for i in range(20_000):  # the tap reads nothing meanwhile
                pub.send("flood", i)
            events = gather(tap, lambda ev: any(
                isinstance(e, NodeStatus) and e.sockets[0].sent == 20_000 for e in ev))
            pub.send("flood", "end")  # reveals a gap at the very end, if there is one
            events += gather(tap, lambda ev: any(
                isinstance(e, TapMessage) and e.data == "end" for e in ev))
    lost = max(e.mirror_lost for e in events if isinstance(e, NodeStatus))
    gaps = sum(e.lost for e in events if isinstance(e, TapGap))
    assert lost > 0
    assert len(messages(events)) + gaps == 20_001
    assert gaps == lost


def test_messages_sent_with_no_tap_attached_are_not_queued() -> None:
    with peermq.Node() as node, peermq.Publisher(node=node) as pub:
        mirror = node.mirror
        assert mirror is not None
        for i in range(100):
            pub.send("t", i)
        assert not mirror._queue and pub._tap is None


def test_a_node_without_a_mirror_still_works() -> None:
    with peermq.Node(mirror=None) as node, peermq.Publisher(node=node) as pub:
        assert node.mirror is None
        assert pub.send("t", 1)


@contextlib.contextmanager
def peer(*args: str, env: dict[str, str] | None = None) -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen(
        [sys.executable, PEER, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        cwd=REPO, env={**os.environ, **(env or {})},
    )
    try:
        yield proc
    finally:
        assert proc.stdin is not None and proc.stdout is not None
        with contextlib.suppress(BrokenPipeError):
            proc.stdin.close()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        proc.stdout.close()


def ready(proc: subprocess.Popen[str]) -> tuple[str, str]:
    assert proc.stdout is not None
    word, mirror, data = proc.stdout.readline().split()
    assert word == "ready"
    return mirror, data


def say(proc: subprocess.Popen[str], line: str) -> None:
    assert proc.stdin is not None
    proc.stdin.write(line + "\n")
    proc.stdin.flush()


def test_several_publisher_and_pusher_processes() -> None:
    n = 400
    with contextlib.ExitStack() as stack:
        pubs = [stack.enter_context(peer("pub", f"prices.p{i}", str(n))) for i in range(2)]
        pushes = [stack.enter_context(peer("push", f"jobs.q{i}", str(n))) for i in range(2)]
        procs = pubs + pushes
        ends = {p: ready(p) for p in procs}
        tap = stack.enter_context(Tap(connect=[m for m, _ in ends.values()]))
        gather(tap, joined(4))
        sub = stack.enter_context(peermq.Subscriber(connect=[ends[p][1] for p in pubs]))
        pull = stack.enter_context(peermq.Puller(connect=[ends[p][1] for p in pushes]))
        pull.wait_for_peers(2)  # (each publisher waits for its subscriber itself)
        for p in procs:
            say(p, "go")
        events = gather(tap, lambda ev: len(messages(ev)) >= 4 * n, timeout=30.0)
        pulled = [pull.recv(timeout=10.0) for _ in range(2 * n)]
        subbed = [sub.recv(timeout=10.0) for _ in range(2 * n)]
        for p in procs:
            assert p.stdout is not None and p.stdout.readline().split() == ["sent", str(n)]
            assert p.stdin is not None
            p.stdin.close()  # the peers close: each says goodbye
        left = gather(tap, lambda ev: sum(isinstance(e, NodeLeft) for e in ev) >= 4)
    assert {e.reason.value for e in left if isinstance(e, NodeLeft)} == {"closed"}
    seqs = seqs_by_sender(events)
    assert sorted(t for _, _, t in seqs) == ["jobs.q0", "jobs.q1", "prices.p0", "prices.p1"]
    assert all(s == list(range(1, n + 1)) for s in seqs.values()), seqs
    assert len({node for node, _, _ in seqs}) == 4
    assert {m.kind for m in messages(events) if m.topic.startswith("jobs")} == {"push"}
    assert not [e for e in events if isinstance(e, TapGap)]
    by_topic: dict[str, list[int]] = defaultdict(list)
    for m in pulled + subbed:
        by_topic[m.topic].append(m.seq)
    assert {t: sorted(s) for t, s in by_topic.items()} == {
        t: list(range(1, n + 1)) for t in ("jobs.q0", "jobs.q1", "prices.p0", "prices.p1")}


def test_a_tap_started_before_the_publisher(tmp_path: Path) -> None:
    endpoint = f"ipc://{tmp_path}/mirror.sock"
    with Tap(connect=endpoint) as tap:  # nothing listens there yet
        assert tap.poll(0.3) == []
        with peer("pub", "early", "200", env={"PEERMQ_MIRROR": endpoint}) as proc:
            mirror, data = ready(proc)
            assert mirror == endpoint
            gather(tap, joined(1))
            with peermq.Subscriber(connect=data):
                say(proc, "go")
                events = gather(tap, lambda ev: len(messages(ev)) >= 200)
    assert [m.seq for m in messages(events)] == list(range(1, 201))


def test_a_tap_started_after_the_publisher_joins_mid_stream_without_false_gaps() -> None:
    with peer("pub", "late", "0", "--forever") as proc:
        mirror, _ = ready(proc)
        time.sleep(0.3)  # let it send for a while before anyone watches
        with Tap(connect=mirror) as tap:
            events = gather(tap, lambda ev: len(messages(ev)) >= 100)
        say(proc, "stop")
        assert proc.stdout is not None
        total = int(proc.stdout.readline().split()[1])
    seqs = [m.seq for m in messages(events)]
    assert seqs[0] > 1, "the publisher was sending before the tap came"
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    assert not [e for e in events if isinstance(e, TapGap)]
    assert total >= seqs[-1]


def test_a_killed_node_leaves_as_silent() -> None:
    with peer("pub", "x", "0") as proc:
        mirror, _ = ready(proc)
        with Tap(connect=mirror, silence=1.0) as tap:
            gather(tap, joined(1))
            proc.kill()
            events = gather(tap, lambda ev: any(isinstance(e, NodeLeft) for e in ev))
    (left,) = [e for e in events if isinstance(e, NodeLeft)]
    assert left.reason.value == "silent"


@pytest.mark.parametrize("bad", [{"silence": 0}, {"topics": ["a..b"]}])
def test_tap_options_are_checked(bad: dict[str, object]) -> None:
    with pytest.raises(peermq.PeermqError):
        Tap(**bad)  # type: ignore[arg-type]


def test_the_tap_example_runs() -> None:
    """examples/tap_watch.py (test_examples.py checks that every example is run somewhere)."""
    proc = subprocess.run([sys.executable, "-X", "dev", os.path.join(REPO, "examples",
                                                                     "tap_watch.py")],
                          capture_output=True, text=True, timeout=30, cwd=REPO, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stderr == ""
    lines = proc.stdout.splitlines()
    assert lines[1] == "++ shop joined: ['pub/1', 'push/2']"
    assert lines[2:8] == [
        f"   {kind} {topic} #{i} {data}"
        for i in (1, 2, 3)
        for kind, topic, data in (("pub/1", "orders.created", {"id": i - 1}),
                                  ("push/2", "jobs.resize", repr(f"image-{i - 1}.png".encode())))
    ]
    assert lines[-1] == "the worker still got 3 jobs and the subscriber 3 orders"


def test_two_taps_with_different_topics_each_get_exactly_theirs() -> None:
    """Copies travel bundled (and big ones alone); each tap still gets its topics only."""
    with peermq.Node(name="two") as node, \
            peermq.Publisher(node=node, bind="tcp://127.0.0.1:*") as pub:
        assert node.mirror is not None
        with Tap(connect=node.mirror.endpoints, topics=["a.>"]) as narrow, \
                Tap(connect=node.mirror.endpoints) as wide:
            gather(narrow, joined(1))
            gather(wide, joined(1))
            for i in range(300):
                pub.send("a.x", b"\x00" * (40_000 if i % 50 == 0 else 10))
                pub.send("b.x", i)
            got_narrow = gather(narrow, lambda ev: len(messages(ev)) >= 300)
            got_wide = gather(wide, lambda ev: len(messages(ev)) >= 600)
            assert not messages(narrow.poll(0.3))  # no b.x trailing behind
    assert seqs_by_sender(got_narrow) == {(node.id, pub.stream, "a.x"): list(range(1, 301))}
    assert seqs_by_sender(got_wide) == {(node.id, pub.stream, "a.x"): list(range(1, 301)),
                                        (node.id, pub.stream, "b.x"): list(range(1, 301))}
    sizes = {m.size for m in messages(got_narrow)}
    assert max(sizes) > 40_000 and min(sizes) < 100


def test_the_tap_sees_spooled_traffic_and_the_puller_still_gets_everything(
    tmp_path: Path,
) -> None:
    with peermq.Node(name="spooler") as node, \
            peermq.Pusher(node=node, bind="tcp://127.0.0.1:*", spool=tmp_path / "out") as push, \
            peermq.Puller(connect=push.endpoints[0], ack=peermq.AckMode.AUTO) as pull:
        assert node.mirror is not None
        with Tap(connect=node.mirror.endpoints) as tap:
            gather(tap, joined(1))
            until(lambda: push._tap is not None)
            for i in range(50):
                push.send("jobs.spooled", i)
            events = gather(tap, lambda ev: len(messages(ev)) >= 50)
            got = sorted(pull.recv(timeout=10.0).data for _ in range(50))  # type: ignore[type-var]
    assert seqs_by_sender(events) == {(node.id, push.stream, "jobs.spooled"): list(range(1, 51))}
    assert got == list(range(50))
