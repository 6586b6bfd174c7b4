"""The CLI as users run it: real processes, real pipes, real signals."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

import peermq

from ..helpers import REPO

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals and pipes")


def peermq_cli(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "peermq", *args],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, cwd=REPO,
    )


@pytest.fixture
def procs() -> Iterator[list[subprocess.Popen[str]]]:
    """Processes a test starts; any still running at the end is killed (by its pid)."""
    started: list[subprocess.Popen[str]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=10)


def assert_gone(pids: list[int]) -> None:
    """Every child the demo started has ended (the demo reaped them: no such process)."""
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_demo_runs_on_its_own_and_nothing_is_lost(procs: list[subprocess.Popen[str]]) -> None:
    proc = peermq_cli("demo", "--seconds", "3")
    procs.append(proc)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert err == ""  # no warning, no stray log line
    found = re.search(r"ok: (\d+) messages sent, (\d+) delivered, 0 gaps, 0 dropped, 0 missing",
                      out)
    assert found, out
    sent, delivered = int(found[1]), int(found[2])
    assert sent > 30 and delivered > sent  # fan-out: 'audit' alone gets two thirds of it
    for role in ("orders", "metrics", "jobs", "audit", "eu-orders", "worker-1", "worker-3"):
        assert re.search(rf"^ {re.escape(role)} .* done\s*$", out, re.MULTILINE), out


def test_demo_json_accounts_for_every_process(procs: list[subprocess.Popen[str]]) -> None:
    proc = peermq_cli("demo", "--seconds", "1.5", "--rate", "50", "--json")
    procs.append(proc)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    records = [json.loads(line) for line in out.splitlines()]
    assert [r["type"] for r in records[:-1]] == ["progress"]
    summary = records[-1]
    assert summary["type"] == "summary" and summary["ok"] is True
    roles = summary["roles"]
    assert len(roles) == 9
    assert all(r["exit_code"] == 0 and r["phase"] == "done" for r in roles)
    for r in roles:
        if r["kind"] == "subscriber":
            assert r["received"] == r["expected"] > 0
    jobs = next(r["sent"] for r in roles if r["role"] == "jobs")
    assert sum(r["received"] for r in roles if r["kind"] == "worker") == jobs > 0
    assert_gone([r["pid"] for r in roles])


def test_demo_ctrl_c_stops_everything_it_started_with_130(
    procs: list[subprocess.Popen[str]],
) -> None:
    proc = peermq_cli("demo", "--seconds", "60", "--json")
    procs.append(proc)
    assert proc.stdout is not None
    first = json.loads(proc.stdout.readline())  # the first progress line: all are running
    assert first["type"] == "progress"
    start = time.monotonic()
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=15)
    assert proc.returncode == 130, err
    assert time.monotonic() - start < 8.0
    assert "Traceback" not in err
    summary = json.loads(out.splitlines()[-1])
    assert summary["interrupted"] is True
    assert_gone([r["pid"] for r in summary["roles"]])


def test_sub_piped_into_head_exits_cleanly(procs: list[subprocess.Popen[str]]) -> None:
    with peermq.Publisher(bind="tcp://127.0.0.1:*") as pub:
        proc = peermq_cli("sub", "--connect", pub.endpoints[0], "--json")
        procs.append(proc)
        assert proc.stdout is not None
        pub.wait_for_subscribers(1, timeout=10.0)
        pub.send("t.x", "first")
        assert json.loads(proc.stdout.readline())["data"] == "first"
        proc.stdout.close()  # what `head -1` does once it has its line
        end = time.monotonic() + 10.0
        while proc.poll() is None and time.monotonic() < end:
            pub.send("t.x", "more")  # the next write finds the pipe closed
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(0.02)
        assert proc.poll() == 0
        assert proc.stderr is not None
        err = proc.stderr.read()
    assert "Traceback" not in err and "Exception ignored" not in err, err


def test_sub_ctrl_c_exits_130_at_once(procs: list[subprocess.Popen[str]]) -> None:
    with peermq.Publisher(bind="tcp://127.0.0.1:*") as pub:
        proc = peermq_cli("sub", "--connect", pub.endpoints[0])
        procs.append(proc)
        pub.wait_for_subscribers(1, timeout=10.0)
        start = time.monotonic()
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=10)
    assert proc.returncode == 130
    assert time.monotonic() - start < 3.0
    assert "received 0, gaps 0" in err and "Traceback" not in err
