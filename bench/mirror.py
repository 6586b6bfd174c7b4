"""What the tap mirror costs a sender: send() throughput with and without it, in one run.

    .venv/bin/python -m bench.mirror            # about a minute
    .venv/bin/python -m bench.mirror --quick    # seconds
    .venv/bin/python -m bench.mirror --json out.json
    .venv/bin/python -m bench.mirror --secure   # every node (and the tap) with CURVE on

Variants, measured in turns (A B C D, A B C D, ...) so that drift hits them all alike:

- ``no hook``: a Publisher whose ``_try_send`` is the library's own with the mirror hook cut
  out (generated from its source at run time, so it cannot drift), on a node without a mirror;
- ``hook, no mirror``: the real Publisher on ``Node(mirror=None)``: the hook's one test;
- ``mirror, no tap``: the default, a node whose mirror thread runs but nobody is attached;
- ``tapped``: a tap in another process is attached and reads every copy.

Each turn times ``send()`` (or ``send_many``) of 64-byte messages in this process, pinned to
one CPU; with ``--subscriber`` a subscriber process (on the other CPU) drains them, else nobody
subscribes and the figure is the send path alone, where a per-message cost shows most. One
warm-up turn is not counted. The figure compared is each variant's best turn (as timeit does:
on a shared machine the other turns measure the neighbours too); medians are shown as well.
docs/performance.md ("Tap mirror") explains the results. With ``--secure`` every node has
CURVE on (one key directory made for the run, so the tap and the subscribers hold the node's
own key): the mirror is then a CURVE server, and the tapped copies travel encrypted.
"""

from __future__ import annotations

import argparse
import inspect
import json
import multiprocessing as mp
import os
import statistics
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

if not __package__:  # run as a script: python bench/mirror.py
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    __package__ = "bench"

import zmq

import peermq
from peermq import _kinds, _zmq, wire
from peermq.security import load_keys
from peermq.tap import Tap, TapMessage

TOPIC = "bench.mirror"
HOOK = "    if self._tap is not None:\n        self._tap(frame)\n"
"""The mirror hook in ``SenderBase._try_send``, as in its dedented source."""
VARIANTS = ("no hook", "hook, no mirror", "mirror, no tap", "tapped")


def _without_hook() -> Callable[..., Any]:
    """``SenderBase._try_send`` as it is, minus the two lines of the mirror hook."""
    source = textwrap.dedent(inspect.getsource(_kinds.SenderBase._try_send))
    if source.count(HOOK) != 1:
        raise RuntimeError("the mirror hook is not where bench/mirror.py expects it: update HOOK")
    namespace: dict[str, Any] = {}
    exec(compile(source.replace(HOOK, ""), "<no-hook _try_send>", "exec"), vars(_kinds),
         namespace)
    fn: Callable[..., Any] = namespace["_try_send"]
    return fn


class NoHookPublisher(peermq.Publisher):
    """A Publisher as it would be without the mirror hook."""


NoHookPublisher._try_send = _without_hook()  # type: ignore[method-assign]


def _pin(which: int) -> None:
    """Run on one CPU (the first or the second this process may use), if there are two."""
    try:
        cpus = sorted(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return
    if len(cpus) >= 2:
        os.sched_setaffinity(0, {cpus[which]})


def _node(keys: str | None, *, mirror: bool = True) -> peermq.Node:
    """A node of the run: with ``keys``, CURVE on with the run's key directory."""
    security = peermq.SecurityOptions(keys_dir=keys) if keys else None
    return peermq.Node(security=security, **({} if mirror else {"mirror": None}))


def drain(endpoint: str, ctl: Connection, keys: str | None) -> None:
    """Subscriber process: read everything from ``endpoint`` until told to stop."""
    _pin(1)
    ctx = zmq.Context()
    sub = ctx.socket(zmq.XSUB)
    sub.setsockopt(zmq.RCVHWM, 0)
    if keys:  # the publisher's own key pair: its authenticator lets it in
        pair = load_keys(keys, create=False)
        _zmq.curve_client(sub, pair.public, pair.secret, pair.public)
    sub.connect(endpoint)
    sub.send(b"\x01")  # everything, then the marker a peermq publisher counts subscribers by
    sub.send(b"\x01" + wire.marker_subscription(f"bench-{os.getpid()}/1"))
    ctl.send("ready")
    n = 0
    while not ctl.poll(0):
        if sub.poll(50):
            while True:
                try:
                    sub.recv(zmq.NOBLOCK)
                    n += 1
                except zmq.Again:
                    break
    ctl.send(n)
    sub.close(0)
    ctx.term()


def watch(endpoint: str, ctl: Connection, keys: str | None) -> None:
    """Tap process: read every copy from the mirror at ``endpoint`` until told to stop."""
    _pin(1)
    with _node(keys, mirror=False) as node, Tap(node=node, connect=endpoint) as tap:
        ctl.send("ready")
        seen = 0
        while not ctl.poll(0):
            seen += sum(isinstance(e, TapMessage) for e in tap.poll(0.05))
        while True:  # what is still on its way
            events = tap.poll(1.0)
            if not events:
                break
            seen += sum(isinstance(e, TapMessage) for e in events)
        ctl.send(seen)


def _start(target: Callable[[str, Connection, str | None], None], endpoint: str,
           keys: str | None) -> tuple[Any, Connection]:
    ctx = mp.get_context("spawn")
    mine, theirs = ctx.Pipe()
    proc = ctx.Process(target=target, args=(endpoint, theirs, keys), daemon=True)
    proc.start()
    if not mine.poll(30) or mine.recv() != "ready":
        raise RuntimeError(f"{target.__name__} did not start")
    return proc, mine


def _stop(proc: Any, ctl: Connection) -> int:
    ctl.send("stop")
    n = ctl.recv() if ctl.poll(600) else -1  # a tap decodes every message of a batch
    proc.join(10)
    return int(n)


def _drained(pub: peermq.Publisher) -> None:
    """Wait until the node's mirror has sent every copy on (its thread runs in this process;
    it wakes every ``drain_interval``, 5 ms, which a turn must be long against)."""
    mirror = pub.node.mirror
    end = time.monotonic() + 30.0
    while mirror is not None and mirror._queue and time.monotonic() < end:
        time.sleep(0.0005)


def one_turn(pub: peermq.Publisher, count: int, batch: int) -> float:
    """Messages per second through ``send`` (or ``send_many`` of ``batch``).

    The time includes the mirror thread's work on the copies, which shares this process: the
    turn ends when the last copy has left.
    """
    payload = b"x" * 64
    start = time.perf_counter()
    if batch:
        items = [(TOPIC, payload)] * batch
        send_many = pub.send_many
        for _ in range(count // batch):
            send_many(items)
        count = count // batch * batch
    else:
        send = pub.send
        for _ in range(count):
            send(TOPIC, payload)
    _drained(pub)
    return count / (time.perf_counter() - start)


def measure(count: int, turns: int, batch: int, subscriber: bool, keys: str | None = None
            ) -> dict[str, list[float]]:
    rates: dict[str, list[float]] = {v: [] for v in VARIANTS}
    opts = peermq.SocketOptions(send_hwm=1_000_000)
    with _node(keys, mirror=False) as bare, _node(keys) as mirrored, _node(keys) as tapped:
        pubs = {
            "no hook": NoHookPublisher(node=bare, bind="tcp://127.0.0.1:*", options=opts),
            "hook, no mirror": peermq.Publisher(node=bare, bind="tcp://127.0.0.1:*",
                                                options=opts),
            "mirror, no tap": peermq.Publisher(node=mirrored, bind="tcp://127.0.0.1:*",
                                               options=opts),
            "tapped": peermq.Publisher(node=tapped, bind="tcp://127.0.0.1:*", options=opts),
        }
        assert mirrored.mirror is not None and tapped.mirror is not None
        helpers = [_start(drain, p.endpoints[0], keys) for p in pubs.values()] \
            if subscriber else []
        helpers.append(_start(watch, tapped.mirror.endpoints[0], keys))
        for pub in pubs.values():
            if subscriber:
                pub.wait_for_subscribers(1, timeout=10.0)
        if not tapped.mirror.wait_attached(10.0):
            raise RuntimeError("the tap did not attach")
        assert pubs["no hook"]._tap is None and not mirrored.mirror.attached
        for turn in range(turns + 1):
            order = VARIANTS[turn % 4:] + VARIANTS[: turn % 4]
            for name in order:
                rate = one_turn(pubs[name], count, batch)
                if turn:  # the first turn warms up
                    rates[name].append(rate)
        seen = [_stop(proc, ctl) for proc, ctl in helpers]
        lost = sum(p.lost for p in tapped.mirror._ports)
        sent = pubs["tapped"]._core.sent
        for pub in pubs.values():
            pub.close()
    rates["_tap_saw"] = [float(seen[-1])]
    rates["_tapped_sent"] = [float(sent)]
    rates["_mirror_lost"] = [float(lost)]
    return rates


def report(title: str, rates: dict[str, list[float]]) -> tuple[list[str], dict[str, Any]]:
    best0, med0 = max(rates["no hook"]), statistics.median(rates["no hook"])
    lines = [f"{title}",
             "| variant | best msg/s | vs no hook | ns/msg more | median msg/s | vs no hook |",
             "|---|---:|---:|---:|---:|---:|"]
    out: dict[str, Any] = {}
    for name in VARIANTS:
        best, med = max(rates[name]), statistics.median(rates[name])
        extra = (1 / best - 1 / best0) * 1e9
        lines.append(f"| {name} | {best:,.0f} | {best / best0:.3f} | {extra:+.0f} | "
                     f"{med:,.0f} | {med / med0:.3f} |")
        out[name] = {"best": best, "ratio": best / best0, "ns_more": extra, "median": med,
                     "median_ratio": med / med0, "turns": rates[name]}
    return lines, out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="few, short turns (a smoke run)")
    ap.add_argument("--subscriber", action="store_true",
                    help="a subscriber process drains each publisher")
    ap.add_argument("--secure", action="store_true",
                    help="CURVE on for every node, the tap and the subscribers")
    ap.add_argument("--json", metavar="FILE", help="also write the figures to FILE")
    args = ap.parse_args(argv)
    _pin(0)
    if args.secure:
        with tempfile.TemporaryDirectory(prefix="peermq-bench-keys-") as keys:
            return _run(args, keys)
    return _run(args, None)


def _run(args: argparse.Namespace, keys: str | None) -> int:
    count, turns = (20_000, 3) if args.quick else (100_000, 40)
    results: dict[str, Any] = {"cpus": os.cpu_count(), "python": sys.version.split()[0],
                               "peermq": peermq.__version__, "count": count, "turns": turns,
                               "subscriber": args.subscriber, "secure": keys is not None}
    for title, batch in (("send(), 64 B", 0), ("send_many() of 100, 64 B", 100)):
        # batches go faster: five times as many keep a turn long against the mirror
        # thread's drain_interval, which the tapped turn waits for at its end
        rates = measure(count * 5 if batch else count, turns, batch, args.subscriber, keys)
        lines, figures = report(title, rates)
        print("\n".join(lines), flush=True)
        print(f"(tapped: {rates['_tapped_sent'][0]:,.0f} sent, {rates['_mirror_lost'][0]:,.0f} "
              f"copies lost at the mirror's full queue, {rates['_tap_saw'][0]:,.0f} seen by "
              "the tap)\n", flush=True)
        figures["tapped"].update(sent=rates["_tapped_sent"][0],
                                 mirror_lost=rates["_mirror_lost"][0], seen=rates["_tap_saw"][0])
        results[title] = figures
    verdict = results["send(), 64 B"]["mirror, no tap"]["ratio"]
    judged = "a quick run has too few turns to judge" if args.quick else (
        "met" if verdict >= 0.97 else "MISSED")
    print(f"mirror machinery, no tap attached: {verdict:.3f} of the throughput without it "
          f"(target >= 0.97): {judged}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(results, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
