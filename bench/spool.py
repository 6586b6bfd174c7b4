"""Spooled PUSH/PULL: throughput with every message acknowledged end to end, per fsync policy;
the memory a large spool needs; and RabbitMQ's durable queue in the same run when it is there.

    .venv/bin/python -m bench.spool              # the figures of docs/performance.md (## Spool)
    .venv/bin/python -m bench.spool --quick      # seconds
    .venv/bin/python -m bench.spool --memory 10000000 --json out.json

A run is a fresh spool on disk (``--dir``, default a temporary directory: put it on the disk you
care about; tmpfs ignores fsync), a sender process and a receiver process started with
``spawn`` and pinned one to a CPU, over tcp://127.0.0.1. The clock runs from the first send to
the moment the sender has every acknowledgement (``wait_for_acks``).
"""

from __future__ import annotations

import contextlib
import gc
import multiprocessing as mp
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from multiprocessing.connection import Connection
from typing import Any

if not __package__:  # run as a script: python bench/spool.py
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    __package__ = "bench"

from bench._common import arguments, cpu_pair, expect, pin, write_json

TIMEOUT = 120.0
TARGET = 100_000.0
"""msg/s the issue asks of fsync="batch", every message acknowledged."""


@dataclass(frozen=True)
class Case:
    fsync: str
    batch: int
    """0: one ``send`` per message; n: ``send_many`` of n messages."""
    count: int
    size: int = 1024

    @property
    def label(self) -> str:
        return "send" if not self.batch else f"send_many({self.batch})"


def _receiver(case: Case, endpoint: str, conn: Connection, cpu: int | None) -> None:
    pin(cpu)
    import peermq  # noqa: PLC0415 (spawned: import after pinning)

    with peermq.Puller(connect=endpoint, ack=peermq.AckMode.AUTO) as pull:
        conn.send("ready")
        got = pull.consume(lambda m: None, count=case.count, timeout=TIMEOUT)
        pull.flush_acks()
        conn.send(got)
        conn.recv()  # stay until the sender has its acks


def _sender(case: Case, directory: str, conn: Connection, cpu: int | None) -> None:
    pin(cpu)
    import peermq  # noqa: PLC0415

    opts = peermq.SpoolOptions(fsync=case.fsync, max_bytes=64 << 30)  # type: ignore[arg-type]
    payload = b"x" * case.size
    with peermq.Pusher(bind="tcp://127.0.0.1:*", spool=directory, spool_options=opts) as push:
        conn.send(push.endpoints[0])
        conn.recv()  # the receiver is up
        push.wait_for_peers(1, timeout=10.0)
        t0 = time.perf_counter()
        if case.batch:
            left = case.count
            while left:
                n = min(case.batch, left)
                push.send_many(("bench", payload) for _ in range(n))
                left -= n
        else:
            send = push.send
            for _ in range(case.count):
                send("bench", payload)
        t_sent = time.perf_counter()
        push.wait_for_acks(timeout=TIMEOUT)
        t_acked = time.perf_counter()
        st = push.spool_stats()
        conn.send({"sent_s": t_sent - t0, "acked_s": t_acked - t0,
                   "redelivered": st.redelivered, "rss_kib": _rss_kib()})


def _rss_kib() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def measure(case: Case, base: str, cpus: tuple[int, int] | None) -> dict[str, Any]:
    directory = tempfile.mkdtemp(prefix="spool-", dir=base)
    ctx = mp.get_context("spawn")
    s_conn, s_child = ctx.Pipe()
    r_conn, r_child = ctx.Pipe()
    sender = ctx.Process(target=_sender, args=(case, directory, s_child, cpus and cpus[0]))
    sender.start()
    try:
        endpoint = expect(s_conn, "sender endpoint")
        receiver = ctx.Process(target=_receiver, args=(case, endpoint, r_child, cpus and cpus[1]))
        receiver.start()
        try:
            expect(r_conn, "receiver ready")
            s_conn.send("go")
            result = expect(s_conn, "sender result", TIMEOUT * 2)
            received = expect(r_conn, "receiver count")
            r_conn.send("bye")
        finally:
            receiver.join(10)
            if receiver.is_alive():
                receiver.kill()
    finally:
        sender.join(10)
        if sender.is_alive():
            sender.kill()
        shutil.rmtree(directory, ignore_errors=True)
    rate = case.count / result["acked_s"]
    return {**asdict(case), "mode": case.label, "received": received,
            "acked_rate": rate, "send_rate": case.count / result["sent_s"], **result}


# -- memory of a large spool


def _fill(directory: str, n: int) -> float:
    from peermq import SpoolOptions, wire  # noqa: PLC0415
    from peermq.spool import Spool  # noqa: PLC0415

    enc = wire.Encoder("bench", 1, max_size=1 << 20)
    t0 = time.perf_counter()
    opts = SpoolOptions(fsync="never", max_bytes=1 << 40)  # type: ignore[arg-type]
    with Spool(directory, opts) as sp:
        chunk = 10_000
        for start in range(0, n, chunk):
            sp.append([enc.encode("bench", i, None, 0.0) for i in range(start,
                                                                      min(n, start + chunk))])
    return time.perf_counter() - t0


def _open_probe(directory: str, conn: Connection) -> None:
    from peermq.spool import Spool  # noqa: PLC0415

    gc.collect()
    before_objects = len(gc.get_objects())
    before_rss = _current_rss_kib()
    t0 = time.perf_counter()
    with Spool(directory) as sp:
        opened = time.perf_counter() - t0
        gc.collect()
        st = sp.stats()
        segs = sp.log.segments()
        conn.send({
            "messages": st.messages, "pending": st.pending, "open_s": opened,
            "objects_added": len(gc.get_objects()) - before_objects,
            "rss_added_kib": _current_rss_kib() - before_rss,
            "index_entries": sum(len(s.idx_seq) for s in segs), "segments": len(segs),
            "tracked_in_flight": len(sp.deliveries.attempts),
        })


def _current_rss_kib() -> int:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return _rss_kib()


def memory(n: int, base: str) -> dict[str, Any]:
    directory = tempfile.mkdtemp(prefix="spool-mem-", dir=base)
    try:
        fill_s = _fill(directory, n)
        ctx = mp.get_context("spawn")
        a, b = ctx.Pipe()
        p = ctx.Process(target=_open_probe, args=(directory, b))
        p.start()
        got = expect(a, "memory probe", 600.0)
        p.join(30)
        disk = sum(os.path.getsize(os.path.join(r, f))
                   for r, _, fs in os.walk(directory) for f in fs)
        return {"fill_s": fill_s, "disk_bytes": disk, **got}
    finally:
        shutil.rmtree(directory, ignore_errors=True)


# -- RabbitMQ, when installed


def rabbitmq(count: int, size: int) -> dict[str, Any] | str:
    """RabbitMQ durable queue, persistent messages, publisher confirms: or why it was skipped.

    Started by bench/_rabbit.py on loopback only, with a fresh data directory, and stopped."""
    server = shutil.which("rabbitmq-server") or (
        "/usr/sbin/rabbitmq-server" if os.path.exists("/usr/sbin/rabbitmq-server") else None)
    if server is None:
        return "skipped: rabbitmq-server is not installed (Debian: apt-get install rabbitmq-server)"
    try:
        import pika  # noqa: F401, PLC0415
    except ImportError:
        return "skipped: pika is not installed (pip install pika)"
    from bench import _rabbit  # noqa: PLC0415

    return _rabbit.run(server, count, size)


# -- the report


def plan(quick: bool) -> list[Case]:
    k = 10 if quick else 1
    return [
        Case("batch", 0, 200_000 // k),
        Case("batch", 100, 300_000 // k),
        Case("never", 0, 200_000 // k),
        Case("never", 100, 300_000 // k),
        Case("always", 0, 5_000 // k),
        Case("always", 100, 100_000 // k),
    ]


def render(rows: list[dict[str, Any]]) -> str:
    out = ["| fsync | sends | messages | acked end to end | send returns | redelivered |",
           "| --- | --- | ---: | ---: | ---: | ---: |"]
    for r in rows:
        out.append(f"| {r['fsync']} | {r['mode']} | {r['count']:,} | "
                   f"{r['acked_rate']:,.0f} msg/s | {r['send_rate']:,.0f} msg/s | "
                   f"{r['redelivered']} |")
    return "\n".join(out)


def machine(base: str) -> dict[str, str]:
    fs = ""
    with contextlib.suppress(OSError):
        fs = subprocess.run(["stat", "-f", "-c", "%T", base], capture_output=True, text=True,
                            check=False).stdout.strip()
    return {"python": platform.python_version(), "cpus": str(os.cpu_count()),
            "machine": platform.machine(), "filesystem": fs or "unknown"}


def main(argv: list[str] | None = None) -> int:
    ap = arguments(__doc__, "a tenth of the messages")
    ap.add_argument("--dir", default=None, help="where to make the spools (a real disk)")
    ap.add_argument("--memory", type=int, default=None, metavar="N",
                    help="also open a spool of N messages and report its memory")
    ap.add_argument("--no-pin", dest="pin", action="store_false")
    ap.add_argument("--only", choices=["batch", "never", "always"], default=None)
    ap.add_argument("--no-rabbitmq", action="store_true",
                    help="skip RabbitMQ even when rabbitmq-server is installed")
    args = ap.parse_args(argv)
    base = args.dir or tempfile.gettempdir()
    cpus = cpu_pair() if args.pin else None
    info = machine(base)
    placed = f"pinned to CPUs {cpus[0]} and {cpus[1]}" if cpus else "not pinned"
    print(f"spool bench: {info}, spools in {base}, {placed}", flush=True)
    rows = []
    for case in plan(args.quick):
        if args.only and case.fsync != args.only:
            continue
        r = measure(case, base, cpus)
        rows.append(r)
        print(f"  {case.fsync:<6} {case.label:<14} {r['acked_rate']:>10,.0f} msg/s acked "
              f"({r['send_rate']:,.0f}/s stored)", flush=True)
    print(render(rows))
    best = max((r["acked_rate"] for r in rows if r["fsync"] == "batch"), default=None)
    if best is not None:
        verdict = "met" if best >= TARGET else "NOT met"
        print(f"target >= {TARGET:,.0f} msg/s with fsync=batch: {verdict} ({best:,.0f})")
    mem = None
    if args.memory:
        mem = memory(args.memory, base)
        print(f"memory: a spool of {mem['messages']:,} messages ({mem['disk_bytes']:,} bytes on "
              f"disk) opens in {mem['open_s']:.1f} s and adds {mem['objects_added']:,} "
              f"objects, {mem['rss_added_kib']:,} KiB RSS ({mem['index_entries']:,} index "
              f"entries in {mem['segments']} segments, {mem['tracked_in_flight']} tracked)")
    rabbit = None if args.no_rabbitmq else rabbitmq(20_000 if args.quick else 100_000, 1024)
    if rabbit is None:
        print("rabbitmq: not asked for (--no-rabbitmq)")
    elif isinstance(rabbit, str):
        print(f"rabbitmq: {rabbit}")
    else:
        line = (f"rabbitmq: durable queue, persistent 1 KiB messages, confirms per "
                f"{rabbit['confirm_batch']}, acks per {rabbit['ack_every']}: "
                f"{rabbit['rate']:,.0f} msg/s published, confirmed and consumed")
        if best is not None:
            line += f"; peermq fsync=batch is {best / rabbit['rate']:.1f}x that"
        print(line)
    write_json(args.json, {"machine": info, "rows": rows, "memory": mem, "rabbitmq": rabbit})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
