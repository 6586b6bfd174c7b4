"""Discovery across network-namespace hosts on a bridge: the figures of issue 3.

    unshare --net -- .venv/bin/python -m bench.discovery            # as root, about 3 minutes
    unshare --net -- .venv/bin/python -m bench.discovery --quick    # smoke run, about 40 s

Hosts are network namespaces joined by veth pairs to a bridge (tests/network/lab.py), each
peer a real process (tests/network/peer.py); times are wall-clock stamps taken by the
processes themselves (one machine, one clock). It refuses to run outside a private network
namespace: nothing it sends may reach a real network.

1. start: a publisher starts on h1 while a subscriber runs on h2; from the Publisher's
   constructor to the subscriber's first message (and from the process's launch). Twice: with
   probe hints (the default: the subscriber connects on the RFC 6762 probe) and without (it
   waits for the announcement, 0.75-1 s after the first probe by RFC 6762 section 8.1).
2. gone: from SIGKILL of a publisher, or from pulling its cable, to "left" at the subscriber
   (default heartbeats: 0.5 s interval, 2.0 s timeout); and from plugging the cable back in
   to "joined" again.
3. many: 20 publisher processes on 4 hosts (5 each) launched at once; until each of the 4
   subscribers (one per host, already running) is connected to all 20.
4. push: a pusher sends 2,000 messages/s to pullers on two hosts; one cable is pulled for 5 s.
   Messages lost with discovery's heartbeats on, and with them off (the LAB's finding).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from typing import Any

if not __package__:  # run as a script: python bench/discovery.py
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    __package__ = "bench"

from bench._common import arguments, write_json
from tests.network.lab import Lab, can_make_namespaces

T = 15.0


def _private() -> bool:
    out = subprocess.run(["ip", "route", "show", "default"], capture_output=True, text=True,
                         check=False, timeout=5).stdout
    return out.strip() == ""


def _stats(values: Sequence[float]) -> dict[str, float]:
    v = sorted(values)
    return {"n": len(v), "median": statistics.median(v), "min": v[0], "max": v[-1],
            "p90": v[min(len(v) - 1, round(0.9 * (len(v) - 1)))]}


def _fmt(s: dict[str, float], unit: float = 1000.0, suffix: str = "ms") -> str:
    return (f"median {s['median'] * unit:.0f} {suffix}, p90 {s['p90'] * unit:.0f}, "
            f"min {s['min'] * unit:.0f}, max {s['max'] * unit:.0f} (n={s['n']:.0f})")


def start_to_first_message(runs: int, hints: bool) -> dict[str, Any]:
    with Lab() as lab:
        h1, h2 = lab.add_host("h1"), lab.add_host("h2")
        sub_args = ["sub", "orders", "--quiet"] + ([] if hints else ["--no-hints"])
        sub = h2.peer(*sub_args)
        sub.event("started", T)
        from_ctor: list[float] = []
        from_launch: list[float] = []
        for _ in range(runs):
            launched = time.time()
            pub = h1.peer("pub", "orders", "--interval", "0.01")
            starting = pub.event("starting", T)["t"]
            node_id = pub.event("started", T)["node_id"]
            first = sub.event("msg", T, sender=node_id)
            from_ctor.append(first["t"] - starting)
            from_launch.append(first["t"] - launched)
            pub.quit()
            sub.event("left", T)
        return {"constructor": _stats(from_ctor), "launch": _stats(from_launch)}


def crash(runs: int) -> dict[str, Any]:
    with Lab() as lab:
        h1, h2 = lab.add_host("h1"), lab.add_host("h2")
        sub = h2.peer("sub", "orders", "--quiet")
        sub.event("started", T)
        noticed = []
        for _ in range(runs):
            pub = h1.peer("pub", "orders")
            sub.event("joined", T)
            pub.event("peers", T, n=1)
            at = time.time()
            pub.kill()  # SIGKILL: no goodbye
            noticed.append(sub.event("left", T)["t"] - at)
        return {"left": _stats(noticed)}


def cable(runs: int) -> dict[str, Any]:
    with Lab() as lab:
        h1, h2 = lab.add_host("h1"), lab.add_host("h2")
        sub = h2.peer("sub", "orders", "--quiet")
        sub.event("started", T)
        pub = h1.peer("pub", "orders")
        sub.event("joined", T)
        noticed, back = [], []
        for _ in range(runs):
            pub.event("peers", T, n=1)
            at = time.time()
            h1.cable(False)
            noticed.append(sub.event("left", T)["t"] - at)
            pub.event("peers", T, n=0)
            at = time.time()
            h1.cable(True)
            back.append(sub.event("joined", T)["t"] - at)
        return {"left": _stats(noticed), "rejoined": _stats(back)}


def many(hosts: int, per_host: int) -> dict[str, Any]:
    with Lab() as lab:
        hs = [lab.add_host(f"h{i + 1}") for i in range(hosts)]
        subs = [h.peer("sub", "orders", "--quiet") for h in hs]
        for s in subs:
            s.event("started", T)
        launched = time.time()
        pubs = [h.peer("pub", "orders", "--interval", "0.2") for h in hs for _ in range(per_host)]
        starts = [p.event("starting", 30.0)["t"] for p in pubs]
        total = hosts * per_host
        done = []
        for s in subs:
            joined: set[str] = set()
            last = 0.0
            while len(joined) < total:
                ev = s.event("joined", 30.0)
                joined.add(ev["instance"])
                last = ev["t"]
            done.append(last)
        return {"publishers": total, "subscribers": hosts,
                "from_first_launch": max(done) - launched,
                "from_last_constructor": max(done) - max(starts),
                "process_launch_spread": max(starts) - launched}


def push_partition(heartbeats: bool, outage: float) -> dict[str, Any]:
    hb = [] if heartbeats else ["--heartbeat", "0", "0"]
    with Lab() as lab:
        h1, h2, h3 = lab.add_host("h1"), lab.add_host("h2"), lab.add_host("h3")
        pullers = [h.peer("pull", "jobs", "--quiet", *hb) for h in (h2, h3)]
        for p in pullers:
            p.event("started", T)
        push = h1.peer("push", "jobs", "--interval", "0.0005", *hb)
        push.event("peers", T, n=2)
        time.sleep(2.0)
        h3.cable(False)
        time.sleep(outage)
        h3.cable(True)
        # let the partitioned puller come back (reconnect, or TCP retransmission)
        time.sleep(6.0)
        push.quit()
        sent = push.event("summary", T)["sent"]
        got = 0
        for p in pullers:
            p.quit()
            got += p.event("summary", T)["received"]
        return {"heartbeats": heartbeats, "outage_s": outage, "sent": sent, "received": got,
                "lost": sent - got}


def main(argv: Sequence[str] | None = None) -> int:
    p = arguments(__doc__, "few repetitions (a smoke run)")
    p.add_argument("--runs", type=int, default=20, help="repetitions of the start figure")
    p.add_argument("--only", choices=["start", "gone", "many", "push"], action="append")
    a = p.parse_args(argv)
    if os.geteuid() != 0 or not _private():
        print("run me as root inside a private network namespace: "
              "unshare --net -- .venv/bin/python -m bench.discovery", file=sys.stderr)
        return 2
    if not can_make_namespaces():
        print("cannot make network namespaces here (ip netns add)", file=sys.stderr)
        return 2
    runs = 4 if a.quick else a.runs
    only = set(a.only or ["start", "gone", "many", "push"])
    figures: dict[str, Any] = {}
    if "start" in only:
        figures["start_hints"] = start_to_first_message(runs, hints=True)
        print("publisher start -> first message, probe hints on (default):")
        print("  from the constructor:", _fmt(figures["start_hints"]["constructor"]))
        print("  from process launch: ", _fmt(figures["start_hints"]["launch"]))
        figures["start_announce"] = start_to_first_message(max(3, runs // 2), hints=False)
        print("publisher start -> first message, waiting for the announcement:")
        print("  from the constructor:", _fmt(figures["start_announce"]["constructor"]))
    if "gone" in only:
        n = 3 if a.quick else 8
        figures["crash"] = crash(n)
        print("SIGKILL -> left:       ", _fmt(figures["crash"]["left"]))
        figures["cable"] = cable(2 if a.quick else 5)
        print("cable pulled -> left:  ", _fmt(figures["cable"]["left"]))
        print("cable back -> joined:  ", _fmt(figures["cable"]["rejoined"]))
    if "many" in only:
        figures["many"] = many(4, 5)
        m = figures["many"]
        print(f"{m['publishers']} publishers on 4 hosts, all connected by {m['subscribers']} "
              f"subscribers: {m['from_first_launch']:.2f} s from the first launch, "
              f"{m['from_last_constructor']:.2f} s from the last constructor "
              f"(launching took {m['process_launch_spread']:.2f} s)")
    if "push" in only:
        outage = 5.0
        figures["push"] = [push_partition(True, outage), push_partition(False, outage)]
        for r in figures["push"]:
            print(f"push, one puller cut off {outage:.0f} s, heartbeats "
                  f"{'on ' if r['heartbeats'] else 'off'}: sent {r['sent']}, received "
                  f"{r['received']}, lost {r['lost']}")
    write_json(a.json, figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
