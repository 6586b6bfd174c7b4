"""examples/spool_*.py run as real processes, exit 0, write nothing to stderr, and print what
they promise (each also checks itself and exits non-zero if a message was lost)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from ..helpers import REPO

EXAMPLES = Path(REPO) / "examples"


def run(name: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-X", "dev", str(EXAMPLES / name)], capture_output=True, text=True,
        timeout=30, cwd=REPO, env={**os.environ, "PYTHONUNBUFFERED": "1"}, check=False,
    )
    assert proc.returncode == 0, f"{name} exited {proc.returncode}:\n{proc.stdout}{proc.stderr}"
    assert proc.stderr == "", proc.stderr
    return proc.stdout


def check_restart(out: str) -> None:
    assert "stored 5 messages, durable up to seq 5" in out
    assert "worker got [{'invoice': 0}, {'invoice': 1}, {'invoice': 2}, {'invoice': 3}, " \
           "{'invoice': 4}]" in out
    assert "unacknowledged now: 0" in out


def check_dead_letters(out: str) -> None:
    assert re.findall(r"order 2, delivery (\d)", out) == ["1", "2", "3"]
    assert "handled [1, 3], dead letters 1" in out
    assert "dead: seq 2 {'id': 2, 'qty': 'two'} after 3 deliveries (max_deliver)" in out


def check_crash(out: str) -> None:
    assert "killed the worker that held jobs without acknowledging them" in out
    m = re.search(r"jobs finished: 20 of 20, redelivered: (\d+)", out)
    assert m and int(m[1]) >= 1


def check_durable_subscriber(out: str) -> None:
    assert out.splitlines() == [
        "ledger got 1.08",
        "ledger away: 3 prices published",
        "ledger back, missed nothing: [1.09, 1.07, 1.1]",
        "then live: 1.11",
        "newcomer starts with the last price: prices.eur 1.11",
    ]


CHECKS: dict[str, Callable[[str], None]] = {
    "spool_durable_subscriber.py": check_durable_subscriber,
    "spool_restart.py": check_restart,
    "spool_dead_letters.py": check_dead_letters,
    "spool_crash.py": check_crash,
}


def test_every_spool_example_is_checked() -> None:
    assert {p.name for p in EXAMPLES.glob("spool_*.py")} == set(CHECKS)


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_spool_example(name: str) -> None:
    CHECKS[name](run(name))
