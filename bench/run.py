"""Raw pyzmq + msgpack against peermq, side by side, in one run; prints ratios against targets.

    .venv/bin/python -m bench.run            # full run, about 3 minutes
    .venv/bin/python -m bench.run --quick    # smoke run, seconds
    .venv/bin/python -m bench.run --only aio --json out.json

Every measurement is a fresh pair of processes (sender and receiver, or pinger and ponger)
started with ``spawn``, pinned one to a CPU (``--no-pin``: wherever the OS puts them), talking
over tcp://127.0.0.1 with OS-chosen ports. docs/performance.md explains each figure.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

import msgpack
import zmq

import peermq

if not __package__:  # run as a script: python bench/run.py
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    __package__ = "bench"

from bench import _worker
from bench._common import SETUP_TIMEOUT, Spec, arguments, cpu_pair, expect, write_json

SIZES = {"64 B": 64, "1 KiB": 1024, "64 KiB": 64 * 1024}
PATTERNS = {"pubsub": "PUB/SUB", "pushpull": "PUSH/PULL"}


@dataclass(frozen=True)
class Row:
    """One line of the table: a figure of raw against the same figure of peermq."""

    name: str
    raw: Spec
    peer: Spec
    metric: str
    """rate (msg/s, higher is better) or p50_us / p99_us (lower is better)."""
    target: float | None = None
    """Ratio peermq/raw to reach: at least this (rate) or at most this (latency)."""

    @property
    def higher_is_better(self) -> bool:
        return self.metric == "rate"


@dataclass(frozen=True)
class Profile:
    counts: dict[int, int]
    batch_count: int
    aio_count: int
    lat_count: int
    lat_warmup: int
    limit: float
    idle: float
    reps: int


FULL = Profile({64: 800_000, 1024: 400_000, 65536: 30_000}, 3_000_000, 200_000,
               20_000, 2_000, 2.0, 0.3, 5)
QUICK = Profile({64: 50_000, 1024: 25_000, 65536: 2_000}, 150_000, 20_000,
                1_000, 200, 0.5, 0.3, 1)


def plan(p: Profile) -> list[Row]:
    rows: list[Row] = []

    def thr(impl: str, pattern: str, size: int, count: int, batch: int = 0) -> Spec:
        return Spec(impl, "thr", pattern, size, count, p.limit, batch=batch, idle=p.idle)

    def lat(impl: str, pattern: str) -> Spec:
        return Spec(impl, "lat", pattern, 64, p.lat_count, p.limit, warmup=p.lat_warmup)

    for pattern, pname in PATTERNS.items():
        for sname, size in SIZES.items():
            n = p.counts[size]
            rows.append(Row(f"{pname} {sname} msg/s", thr("raw", pattern, size, n),
                            thr("peermq", pattern, size, n), "rate",
                            0.9 if size == 64 else None))
    for pattern, pname in PATTERNS.items():
        n = p.counts[64]
        rows.append(Row(f"{pname} 64 B msg/s, send_many", thr("raw", pattern, 64, n),
                        thr("peermq", pattern, 64, p.batch_count, batch=1000), "rate", 3.0))
    for pattern, pname in PATTERNS.items():
        rows.append(Row(f"{pname} 64 B msg/s, asyncio", thr("raw-async", pattern, 64, p.aio_count),
                        thr("peermq-async", pattern, 64, p.aio_count), "rate", 2.0))
    for pattern, pname in PATTERNS.items():
        for metric, target in (("p50_us", 1.2), ("p99_us", None)):
            rows.append(Row(f"{pname} round trip {metric[:3]} us", lat("raw", pattern),
                            lat("peermq", pattern), metric, target))
    for metric in ("p50_us", "p99_us"):
        rows.append(Row(f"PUB/SUB round trip {metric[:3]} us, asyncio", lat("raw-async", "pubsub"),
                        lat("peermq-async", "pubsub"), metric))
    return rows


# -- running one measurement


def measure(spec: Spec, pin: tuple[int, int] | None = None) -> dict[str, Any]:
    """Run one measurement in two fresh processes; returns the figures both sides reported.

    ``pin``: the CPUs for the first and second process (each with its ZeroMQ I/O thread).
    """
    ctx = mp.get_context("spawn")
    first, second = ("sender", "receiver") if spec.mode == "thr" else ("pinger", "ponger")
    ctl_a, ctl_a_child = ctx.Pipe()
    ctl_b, ctl_b_child = ctx.Pipe()
    side_a, side_b = ctx.Pipe()
    procs: list[mp.process.BaseProcess] = []
    wait = SETUP_TIMEOUT + spec.limit + 20.0
    try:
        pa = ctx.Process(target=_worker.main, daemon=True,
                         args=(first, spec, ctl_a_child, side_a, "", pin and pin[0]))
        pa.start()
        procs.append(pa)
        endpoint = expect(ctl_a, first, SETUP_TIMEOUT + 10.0) if spec.mode == "thr" else ""
        pb = ctx.Process(target=_worker.main, daemon=True,
                         args=(second, spec, ctl_b_child, side_b, endpoint, pin and pin[1]))
        pb.start()
        procs.append(pb)
        if spec.mode == "thr":
            got = {**expect(ctl_a, first, wait), **expect(ctl_b, second, wait)}
            if got["ended"] != "limit":  # everything that was coming has come
                got["lost"] = got["sent"] - got["received"]
        else:
            got = expect(ctl_a, first, wait)
            expect(ctl_b, second, wait)
        for p in procs:
            p.join(10.0)
        return got
    finally:
        for p in procs:
            if p.is_alive():
                p.terminate()
                p.join(5.0)


# -- the run


def _fmt(metric: str, value: float | None) -> str:
    if value is None:
        return "-"
    if metric == "rate":
        return f"{value / 1000:,.1f}k/s" if value < 1e6 else f"{value / 1e6:,.2f}M/s"
    return f"{value:,.1f} us"


def _log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def run(
    rows: Sequence[Row], reps: int, pin: tuple[int, int] | None = None
) -> dict[Spec, list[dict[str, Any]]]:
    """Measure every spec ``reps`` times; raw and peermq alternate so that drift hits both."""
    specs: list[Spec] = []
    for row in rows:
        for spec in (row.raw, row.peer):
            if spec not in specs:
                specs.append(spec)
    results: dict[Spec, list[dict[str, Any]]] = {s: [] for s in specs}
    for rep in range(reps):
        for spec in specs:
            t = time.monotonic()
            try:
                got = measure(spec, pin)
            except (RuntimeError, TimeoutError) as exc:
                got = {"error": str(exc)}
            results[spec].append(got)
            label = f"{spec.impl} {spec.mode} {spec.pattern} {spec.size}B" + (
                f" batch={spec.batch}" if spec.batch else "")
            if "error" in got:
                summary = "ERROR " + got["error"].strip().splitlines()[-1]
            elif spec.mode == "thr":
                summary = (f"{_fmt('rate', got['rate'])} received={got['received']} "
                           f"ended={got['ended']} lost={got.get('lost', '?')}")
            else:
                summary = f"p50 {got['p50_us']:.1f} us p99 {got['p99_us']:.1f} us"
            _log(f"[{rep + 1}/{reps}] {label}: {summary} ({time.monotonic() - t:.1f}s)")
    return results


def figure(runs: list[dict[str, Any]], metric: str, stat: str) -> float | None:
    """Over the repetitions that worked: ``best`` is the highest rate but the median latency.

    Other work on the machine only ever slows a throughput run, so its best repetition is the
    least disturbed one; a latency run's spread comes as much from where the scheduler put
    the two processes, so its median is the fair figure. ``median`` takes it for both.
    """
    values: list[float] = [r[metric] for r in runs if "error" not in r]
    if not values:
        return None
    if stat == "best" and metric == "rate":
        return max(values)
    return statistics.median(values)


def verdict(row: Row, ratio: float | None) -> str:
    if row.target is None:
        return ""
    if ratio is None:
        return "ERROR"
    ok = ratio >= row.target if row.higher_is_better else ratio <= row.target
    return "PASS" if ok else "MISS"


def table(
    rows: Sequence[Row], results: dict[Spec, list[dict[str, Any]]], stat: str
) -> list[dict[str, Any]]:
    out = []
    for row in rows:
        raw = figure(results[row.raw], row.metric, stat)
        peer = figure(results[row.peer], row.metric, stat)
        ratio = peer / raw if raw and peer is not None else None
        paired = [p[row.metric] / r[row.metric]
                  for r, p in zip(results[row.raw], results[row.peer], strict=True)
                  if "error" not in r and "error" not in p and r[row.metric]]
        rss: tuple[float | None, float | None] = (None, None)
        if row.metric == "rate":
            rss = (figure(results[row.raw], "rss_kib", stat),
                   figure(results[row.peer], "rss_kib", stat))
        lost = sum(r.get("lost", 0) or r.get("gaps", 0) for s in (row.raw, row.peer)
                   for r in results[s] if "error" not in r)
        target = None if row.target is None else (
            f">= {row.target:g}x" if row.higher_is_better else f"<= {row.target:g}x")
        out.append({"case": row.name, "metric": row.metric, "raw": raw, "peermq": peer,
                    "ratio": ratio, "ratio_range": [min(paired), max(paired)] if paired else None,
                    "target": target, "result": verdict(row, ratio),
                    "rss_mib": [None if v is None else v / 1024 for v in rss], "lost": lost})
    return out


def render(lines: list[dict[str, Any]]) -> str:
    head = ("case", "raw", "peermq", "ratio", "per-rep ratios", "target", "result",
            "rx RSS MiB raw/peermq")
    body = []
    for ln in lines:
        rss = ln["rss_mib"]
        body.append((
            ln["case"] + (f" (LOST {ln['lost']})" if ln["lost"] else ""),
            _fmt(ln["metric"], ln["raw"]),
            _fmt(ln["metric"], ln["peermq"]),
            "-" if ln["ratio"] is None else f"{ln['ratio']:.2f}x",
            "-" if not ln["ratio_range"] else "{:.2f}-{:.2f}".format(*ln["ratio_range"]),
            ln["target"] or "-",
            ln["result"] or "-",
            "-" if rss[0] is None or rss[1] is None else f"{rss[0]:.0f} / {rss[1]:.0f}",
        ))
    widths = [max(len(r[i]) for r in (head, *body)) for i in range(len(head))]

    def fmt(r: Sequence[str]) -> str:
        cells = (c.ljust(w) if i == 0 else c.rjust(w)
                 for i, (c, w) in enumerate(zip(r, widths, strict=True)))
        return "| " + " | ".join(cells) + " |"

    sep = "|" + "|".join("-" * (w + 1) + ("-" if i == 0 else ":")
                         for i, w in enumerate(widths)) + "|"
    return "\n".join([fmt(head), sep, *(fmt(r) for r in body)])


def machine() -> dict[str, str]:
    return {
        "cpus": str(os.cpu_count()),
        "cpu": _cpu_model(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "pyzmq": zmq.__version__,
        "libzmq": zmq.zmq_version(),
        "msgpack": ".".join(map(str, msgpack.version)),
        "peermq": peermq.__version__,
        "peermq_source": _source(),
    }


def _source() -> str:
    """The commit peermq was imported from, and whether its files differ from it."""
    where = os.path.dirname(os.path.abspath(peermq.__file__))
    try:
        head = subprocess.run(["git", "-C", where, "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, check=True, timeout=10).stdout
        dirty = subprocess.run(["git", "-C", where, "status", "--porcelain", "--", "."],
                               capture_output=True, text=True, check=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return "not a git checkout"
    return head.strip() + (" with uncommitted changes" if dirty.strip() else "")


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main(argv: Sequence[str] | None = None) -> int:
    ap = arguments(__doc__, "small counts, one repetition (smoke run)", "python -m bench.run")
    ap.add_argument("--only", metavar="NAME", action="append", default=[],
                    help="keep cases whose name contains NAME (case-insensitive; repeatable), "
                         "e.g. 'PUB/SUB 64 B', asyncio, send_many, 'round trip'")
    ap.add_argument("--reps", type=int, help="repetitions per measurement")
    ap.add_argument("--stat", choices=("best", "median"), default="best",
                    help="best: highest rate and median latency over the repetitions (default); "
                         "median: the median of both")
    ap.add_argument("--limit", type=float, help="seconds each measurement may last")
    ap.add_argument("--no-pin", dest="pin", action="store_false",
                    help="let the OS place the processes (default: sender or pinger on CPU 0, "
                         "receiver or ponger on CPU 1; noisier, see docs/performance.md)")
    args = ap.parse_args(argv)

    profile = QUICK if args.quick else FULL
    if args.limit is not None:
        profile = replace(profile, limit=args.limit)
    rows = plan(profile)
    if args.only:
        keep = [w.lower() for w in args.only]
        rows = [r for r in rows if any(w in r.name.lower() for w in keep)]
        if not rows:
            ap.error(f"no case matches {args.only}")
    reps = args.reps or profile.reps
    info = machine()
    load = os.getloadavg()[0]
    _log("machine: " + ", ".join(f"{k} {v}" for k, v in info.items()))
    started = time.monotonic()
    pin = cpu_pair() if args.pin else None
    if args.pin and pin is None:
        _log("cannot pin: fewer than two CPUs available (or not Linux); running unpinned")
    results = run(rows, reps, pin)
    lines = table(rows, results, args.stat)
    print(render(lines))
    after = os.getloadavg()[0]
    shown = "best rate, median latency" if args.stat == "best" else "median"
    placed = f"pinned to CPUs {pin[0]} and {pin[1]}" if pin else "not pinned"
    print(f"\n{reps} repetition(s), {shown} shown; {placed}; "
          f"{time.monotonic() - started:.0f}s in all; "
          f"load average {load:.2f} before, {after:.2f} after")
    if load > 0.5:
        print("note: the machine was already busy when the run started; figures are noisy")
    write_json(args.json, {
        "command": shlex.join(["python", "-m", "bench.run", *(argv or sys.argv[1:])]),
        "machine": info,
        "stat": args.stat,
        "pinned": pin,
        "load_average": [load, after],
        "table": lines,
        "runs": [{"spec": asdict(s), "results": r} for s, r in results.items()],
    })
    return 1 if any(ln["result"] == "ERROR" for ln in lines) else 0


if __name__ == "__main__":
    sys.exit(main())
