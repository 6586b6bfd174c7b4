"""Starts the demo's processes, collects their reports, and ends every one of them.

Each role runs as ``python -m peermq.cli.demo.child`` in its own session, so a Ctrl-C at the
terminal reaches only the demo, which then closes the children's stdin: that is their signal
to stop. Whatever is still running after a bounded wait is terminated, then killed. Only
processes this supervisor started are ever signalled.
"""

from __future__ import annotations

import contextlib
import json
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import IO

from .topology import ROLES, ChildSpec, Kind, Role, connect_endpoints, expected

__all__ = ["DemoError", "RoleState", "Summary", "Supervisor"]

_STOP_GRACE = 3.0
_TERM_GRACE = 2.0


class DemoError(Exception):
    """A demo process failed or did not answer in time; the text is one sentence."""


@dataclass
class RoleState:
    """What the demo knows about one role, from its reports."""

    role: Role
    pid: int | None = None
    phase: str = "waiting"
    """waiting -> starting -> ready -> running -> done, or failed."""
    endpoints: list[str] = field(default_factory=list)
    connect: list[str] = field(default_factory=list)
    sent: int = 0
    received: int = 0
    gaps: int = 0
    dropped: int = 0
    malformed: int = 0
    peers: int = 0
    last: dict[str, object] | None = None
    expected: int | None = None
    exit_code: int | None = None
    error: str | None = None


@dataclass(frozen=True)
class Summary:
    sent: int
    delivered: int
    gaps: int
    dropped: int
    missing: int
    surplus: int
    failed: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not (self.gaps or self.dropped or self.missing or self.surplus or self.failed)


def _read(name: str, stream: IO[bytes], reports: queue.Queue[tuple[str, dict[str, object] | None]]
          ) -> None:
    for line in stream:
        try:
            report = json.loads(line)
        except ValueError:
            continue
        if isinstance(report, dict):
            reports.put((name, report))
    reports.put((name, None))


def _start(cmd: list[str]) -> subprocess.Popen[bytes]:
    """A child in its own session (process group on Windows): Ctrl-C reaches only the demo."""
    pipe = subprocess.PIPE
    if sys.platform == "win32":
        return subprocess.Popen(cmd, stdin=pipe, stdout=pipe,
                                creationflags=subprocess.CREATE_NEW_PROCESS_GROUP)
    return subprocess.Popen(cmd, stdin=pipe, stdout=pipe, start_new_session=True)


class Supervisor:
    """The demo's processes. A context manager: leaving it ends them all."""

    def __init__(self, *, rate: float, report_every: float = 0.25,
                 roles: Iterable[Role] = ROLES) -> None:
        self.rate = rate
        self.report_every = report_every
        self.states = {r.name: RoleState(r) for r in roles}
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        self._threads: list[threading.Thread] = []
        self._reports: queue.Queue[tuple[str, dict[str, object] | None]] = queue.Queue()
        self.gap_log: list[tuple[str, dict[str, object]]] = []
        """``(receiver, report)`` for every gap a receiver noticed (there should be none)."""

    # -- the roles by kind
    @property
    def senders(self) -> list[RoleState]:
        return [s for s in self.states.values() if s.role.kind.sends]

    @property
    def receivers(self) -> list[RoleState]:
        return [s for s in self.states.values() if not s.role.kind.sends]

    # -- processes
    def spawn(self, states: Iterable[RoleState]) -> None:
        """Start these roles; receivers find their senders by service name."""
        if not sys.executable:
            raise DemoError("cannot find the Python interpreter to start the demo processes")
        bound = {s.role.name: s.endpoints for s in self.senders}
        for st in states:
            st.connect = connect_endpoints(st.role, bound)
            spec = ChildSpec(role=st.role.name, connect=st.connect, rate=self.rate,
                             report_every=self.report_every)
            proc = _start([sys.executable, "-m", "peermq.cli.demo.child", json.dumps(spec)])
            self._procs[st.role.name] = proc
            st.pid, st.phase = proc.pid, "starting"
            assert proc.stdout is not None
            t = threading.Thread(target=_read, args=(st.role.name, proc.stdout, self._reports),
                                 name=f"demo-{st.role.name}", daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self, states: Iterable[RoleState]) -> None:
        """Ask these roles to finish (their stdin closes)."""
        for st in states:
            proc = self._procs.get(st.role.name)
            if proc is not None and proc.stdin is not None:
                with contextlib.suppress(OSError):
                    proc.stdin.close()

    def close(self) -> None:
        """End every process started here (idempotent, bounded)."""
        self.stop(self.states.values())
        end = time.monotonic() + _STOP_GRACE
        for proc in self._procs.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(max(0.0, end - time.monotonic()))
        for sig in ("terminate", "kill"):
            alive = [p for p in self._procs.values() if p.poll() is None]
            for proc in alive:
                getattr(proc, sig)()
            for proc in alive:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(_TERM_GRACE)
        for t in self._threads:
            t.join(_TERM_GRACE)
        for proc in self._procs.values():
            if proc.stdout is not None:
                proc.stdout.close()
        while True:  # what the children said last still counts
            try:
                self._apply(*self._reports.get_nowait())
            except queue.Empty:
                break

    def __enter__(self) -> Supervisor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- reports
    def poll(self, timeout: float) -> None:
        """Apply the reports that arrive within ``timeout`` seconds (at least one wait)."""
        end = time.monotonic() + timeout
        while True:
            try:
                name, report = self._reports.get(timeout=max(0.0, end - time.monotonic()))
            except queue.Empty:
                return
            self._apply(name, report)

    def _apply(self, name: str, report: dict[str, object] | None) -> None:
        st = self.states[name]
        if report is None:  # its stdout closed: it is gone, or going
            proc = self._procs[name]
            with contextlib.suppress(subprocess.TimeoutExpired):
                st.exit_code = proc.wait(_TERM_GRACE)
            code = st.exit_code
            if st.phase != "done" or code:
                st.phase = "failed"
                how = (f"was killed by signal {-code}" if code is not None and code < 0
                       else f"exited early (code {code})")
                st.error = st.error or f"{name} {how}"
            return
        event = report.get("event")
        for key in ("sent", "received", "gaps", "dropped", "malformed", "peers"):
            value = report.get(key)
            if isinstance(value, int):
                setattr(st, key, value)
        if "last" in report and isinstance(report["last"], dict):
            st.last = report["last"]
        if event == "ready":
            st.phase = "ready"
            endpoints = report.get("endpoints")
            st.endpoints = [str(e) for e in endpoints] if isinstance(endpoints, list) else []
        elif event == "started" or (event == "stats" and st.phase == "ready"):
            st.phase = "running"
        elif event == "done":
            st.phase = "done"
        elif event == "gap":
            self.gap_log.append((name, report))
        elif event == "error":
            st.phase, st.error = "failed", f"{name}: {report.get('message')}"

    def wait(self, until: Callable[[], bool], timeout: float,
             tick: Callable[[], None] | None = None) -> bool:
        """Poll reports until ``until()`` holds (True) or ``timeout`` passes (False)."""
        end = time.monotonic() + timeout
        while True:
            failed = [s.error for s in self.states.values() if s.phase == "failed"]
            if failed:
                raise DemoError(str(failed[0]))
            if until():
                return True
            left = end - time.monotonic()
            if left <= 0:
                return False
            self.poll(min(left, 0.1))
            if tick is not None:
                tick()

    # -- the reckoning
    def settle(self) -> None:
        """Work out what each receiver should have got, from what the senders sent."""
        sent = {s.role.name: s.sent for s in self.senders}
        for st in self.receivers:
            if st.role.kind is Kind.SUBSCRIBER:  # workers share their count: see summary()
                st.expected = expected(st.role, sent)

    def caught_up(self) -> bool:
        return self.summary().missing == 0

    def summary(self) -> Summary:
        subs = [s for s in self.receivers if s.role.kind is Kind.SUBSCRIBER]
        workers = [s for s in self.receivers if s.role.kind is Kind.WORKER]
        short = [max(0, (s.expected or 0) - s.received) for s in subs]
        extra = [max(0, s.received - (s.expected or 0)) for s in subs]
        jobs = sum(s.sent for s in self.senders if s.role.kind is Kind.PUSHER)
        pulled = sum(s.received for s in workers)
        return Summary(
            sent=sum(s.sent for s in self.senders),
            delivered=sum(s.received for s in self.receivers),
            gaps=sum(s.gaps for s in self.states.values()),
            dropped=sum(s.dropped for s in self.senders),
            missing=sum(short) + max(0, jobs - pulled),
            surplus=sum(extra) + max(0, pulled - jobs),
            failed=tuple(s.role.name for s in self.states.values() if s.phase == "failed"),
        )
