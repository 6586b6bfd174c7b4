"""What every benchmark shares: the measurement spec, the result shapes, CPU pinning, the pipe
protocol between a run and its worker processes. The measured loops stay in the workers
(_raw*.py, _peer*.py), each plain, so that raw pyzmq and peermq are timed alike.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

TOPIC = "bench.data"
ENDPOINT = "tcp://127.0.0.1:*"
SETUP_TIMEOUT = 10.0
"""Seconds any handshake or readiness wait may take before the run fails."""


@dataclass(frozen=True)
class Spec:
    """One measurement, as handed to both worker processes."""

    impl: str
    """raw, peermq, raw-async or peermq-async."""
    mode: str
    """thr (one-way throughput) or lat (ping-pong round trips)."""
    pattern: str
    """pubsub or pushpull."""
    size: int
    """Payload bytes per message."""
    count: int
    """Messages to send (thr) or round trips to time (lat)."""
    limit: float
    """Seconds the measured part may last; the run is cut there and still counted."""
    batch: int = 0
    """> 0: peermq sends with send_many, this many messages per call, and reads with recv_many."""
    warmup: int = 0
    """lat: round trips done before timing starts."""
    idle: float = 0.5
    """thr: the receiver stops when nothing came for this long (lost messages, cut sender)."""

    @property
    def hwm(self) -> int:
        """Queue bound on both sides: room for every frame, so PUB/SUB cannot drop."""
        frames = -(-self.count // self.batch) if self.batch else self.count
        return frames + 64


def payload(size: int) -> bytes:
    return b"x" * size


def peak_rss_kib() -> int:
    """Peak resident set of this process, KiB (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def arguments(doc: str, quick: str, prog: str | None = None) -> argparse.ArgumentParser:
    """A bench's command line: described by its docstring's first line, with ``--quick``
    (``quick`` says what it cuts) and ``--json FILE``; each bench adds its own options."""
    ap = argparse.ArgumentParser(prog=prog, description=doc.strip().split("\n")[0])
    ap.add_argument("--quick", action="store_true", help=quick)
    ap.add_argument("--json", metavar="FILE", help="also write every figure to FILE")
    return ap


def write_json(path: str | None, figures: object) -> None:
    """``--json FILE``: the figures, as the bench reports them, for comparing runs."""
    if path:
        with open(path, "w", encoding="utf-8") as f:
            json.dump(figures, f, indent=1)


def cpu_pair() -> tuple[int, int] | None:
    """Two CPUs this process may run on, to pin the two ends of a measurement to."""
    try:
        cpus = sorted(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return None
    return (cpus[0], cpus[1]) if len(cpus) >= 2 else None


def pin(cpu: int | None) -> None:
    """Run this process on ``cpu`` only (None: anywhere). Before any ZeroMQ context: its I/O
    thread inherits the mask."""
    if cpu is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {cpu})


def report_sent(ctl: Connection, side: Connection, spec: Spec, n: int, t0: float, t1: float,
                **extra: object) -> None:
    """Sender: report what it sent and how fast, then stay until the receiver is done."""
    ctl.send({"sent": n, "send_rate": n / (t1 - t0), **extra})
    finish(side, spec.limit)


def report_received(ctl: Connection, side: Connection, received: int, t0: float, t1: float,
                    ended: str, **extra: object) -> None:
    """Receiver: report its figure (``thr_result``), then let the sender go."""
    ctl.send(thr_result(received, t0, t1, ended, **extra))
    side.send("done")


def thr_result(
    received: int, t0: float, t1: float, ended: str, **extra: object
) -> dict[str, object]:
    """Receiver's figure: messages after the first, over the time from the first to the last.

    ``ended``: "count" (all arrived), "idle" (the stream stopped early: a cut sender or lost
    messages) or "limit" (cut by the time bound while still flowing).
    """
    elapsed = max(t1 - t0, 1e-9)
    rate = (received - 1) / elapsed if received > 1 else 0.0
    return {"received": received, "elapsed": elapsed, "rate": rate, "ended": ended,
            "rss_kib": peak_rss_kib(), **extra}


def lat_result(samples_ns: list[int], **extra: object) -> dict[str, object]:
    s = sorted(samples_ns)
    if not s:
        return {"round_trips": 0, "p50_us": 0.0, "p99_us": 0.0, **extra}
    return {
        "round_trips": len(s),
        "p50_us": s[len(s) // 2] / 1000,
        "p99_us": s[min(len(s) - 1, int(len(s) * 0.99))] / 1000,
        "mean_us": sum(s) / len(s) / 1000,
        **extra,
    }


def expect(conn: Connection, what: str, timeout: float = SETUP_TIMEOUT) -> Any:
    """The next object on ``conn``; TimeoutError naming ``what``, or RuntimeError if the other
    process sent ``{"error": ...}`` instead."""
    if not conn.poll(timeout):
        raise TimeoutError(f"{what}: no answer within {timeout:.0f}s")
    got = conn.recv()
    if isinstance(got, dict) and "error" in got:
        raise RuntimeError(got["error"])
    return got


def finish(side: Connection, limit: float) -> None:
    """Sender: stay open until the receiver says it is done, so nothing queued is cut off."""
    if side.poll(limit + 15.0):
        side.recv()


async def watch(
    drain: Callable[[], Awaitable[None]], progress: Callable[[], int], limit: float, idle: float
) -> tuple[float, str]:
    """Run ``drain`` under a watchdog; returns ``(end, ended)`` as for ``thr_result``.

    The drain loop itself carries no timer (a per-recv timeout would tax the figure): every
    10 ms the watchdog checks the count; it cancels the loop after ``limit`` seconds, or when
    the count stops moving for ``idle`` seconds (then ``end`` is when it last moved). When
    ``drain`` finishes by itself ``end`` is 0.0: it must time its own last message.
    """
    task = asyncio.ensure_future(drain())
    start = time.perf_counter()
    last, moved = progress(), start
    while not task.done():
        await asyncio.sleep(0.01)
        now = time.perf_counter()
        n = progress()
        if n != last:
            last, moved = n, now
        if now - start > limit or (now - moved > idle and not task.done()):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            return (now, "limit") if now - start > limit else (moved, "idle")
    task.result()
    return 0.0, "count"
