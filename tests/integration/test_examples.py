"""Every examples/*.py runs as a real process, exits 0 and prints what it promises.

Also: the worked hex example in docs/protocol.md is what the real encoder writes.
"""

from __future__ import annotations

import os
import re
import selectors
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from peermq import wire

from ..helpers import REPO

EXAMPLES = Path(REPO) / "examples"
TIMEOUT = 30.0
ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}


def run(name: str) -> str:
    """Run one example to completion; fail on a non-zero exit or anything on stderr."""
    proc = subprocess.run(
        [sys.executable, "-X", "dev", str(EXAMPLES / name)],
        check=False, capture_output=True, text=True, timeout=TIMEOUT, cwd=REPO, env=ENV,
    )
    assert proc.returncode == 0, f"{name} exited {proc.returncode}:\n{proc.stdout}{proc.stderr}"
    assert proc.stderr == "", f"{name} wrote to stderr:\n{proc.stderr}"
    return proc.stdout


def check_hello_world(out: str) -> None:
    assert " [x] Sent 'Hello World!'" in out
    assert re.search(r"Received 'Hello World!' on 'hello' \(seq 1\)", out)


def check_pubsub_filters(out: str) -> None:
    lines = {line.split(" got ")[0].strip(): line.split(" got ")[1] for line in out.splitlines()}
    assert lines == {
        "orders.*": "orders.created#1 orders.created#2 orders.paid#3  (filtered here: 1)",
        "orders.>": "orders.created#1 orders.created#2 orders.paid#3 orders.paid.refund#4  "
        "(filtered here: 0)",
        "*.created | users.>": "orders.created#1 orders.created#2 users.signup#5  "
        "(filtered here: 2)",
        "region=eu": "orders.created#1 orders.paid#3 users.signup#5  (filtered here: 2)",
        "region=eu AND tier=gold": "orders.created#1  (filtered here: 4)",
        "region=us OR tier=gold": "orders.created#1 orders.created#2 orders.paid.refund#4  "
        "(filtered here: 2)",
    }


def check_pipeline(out: str) -> None:
    assert "ventilator: 3 workers connected, sending 90 tasks" in out
    assert "sink: 90 results, sum of squares 238965 (expected 238965)" in out
    counts = {name: int(n) for name, n in re.findall(r"(worker-\d): (\d+) tasks", out)}
    # load balanced: every worker took a share
    assert set(counts) == {"worker-1", "worker-2", "worker-3"}
    assert sum(counts.values()) == 90
    assert all(n > 0 for n in counts.values()), counts


def check_batching(out: str) -> None:
    assert re.search(r"send\(\):\s+5000 messages in", out)
    assert re.search(r"send_many\(\): 5000 messages in", out)
    assert "seq 1..5000, 1 timestamp" in out
    assert "subscriber: 10000 received, 0 lost" in out


def check_asyncio_pubsub(out: str) -> None:
    lines = out.splitlines()
    assert [x for x in lines if x.startswith("weather:")] == [
        "weather: weather.paris {'celsius': 21}",
        "weather: weather.oslo {'celsius': 4}",
        "weather: weather.lima {'celsius': 18}",
    ]
    assert [x for x in lines if x.startswith("news:")] == [
        "news: news.tech.python 3.14 is out",
        "news: news.sport 0-0",
    ]
    assert "handler: weather.rome {'celsius': 25}" in lines
    assert lines[-1] == "handled 1; weather received 4 in all"


def check_gaps(out: str) -> None:
    sub = re.search(r"subscriber stats: received=(\d+) gaps=(\d+)", out)
    pub = re.search(r"publisher stats: sent=(\d+) dropped=(\d+)", out)
    gap = re.search(r"on_gap: (\d+) messages lost on 'prices', seq (\d+)\.\.1000", out)
    assert sub and pub and gap, out
    received, gaps = int(sub[1]), int(sub[2])
    assert gaps > 0 and received + gaps == 1001
    assert int(gap[1]) == gaps
    assert (int(pub[1]), int(pub[2])) == (1001, gaps)
    assert "next message: 1001 with seq 1001" in out


def check_discovery_pubsub(out: str) -> None:
    assert re.search(r"joined: station pub weather #\d+ at tcp://127\.0\.0\.1:\d+", out)
    for line in ("weather.paris: {'celsius': 21}", "weather.oslo: {'celsius': 4}",
                 "weather.lima: {'celsius': 18}"):
        assert line in out
    assert re.search(r"left: station pub weather #\d+", out)


def check_discovery_static(out: str) -> None:
    assert re.search(r"frontend: orders.created \{'id': 7\} from tcp://127\.0\.0\.1:\d+ "
                     r"\(static peer\)", out)


def check_secure_pubsub(out: str) -> None:
    assert out.splitlines() == [
        "bob (trusted): 3 messages [0, 1, 2]",
        "mallory (untrusted): 0 messages",
        "alice refused mallory: True, mallory's failed handshakes: True",
        "alice's subscribers: 1",
    ]


SINGLE: dict[str, Callable[[str], None]] = {
    "discovery_pubsub.py": check_discovery_pubsub,  # mDNS pinned to loopback
    "discovery_static.py": check_discovery_static,  # no multicast at all
    "hello_world.py": check_hello_world,
    "pubsub_filters.py": check_pubsub_filters,
    "pipeline.py": check_pipeline,
    "batching.py": check_batching,
    "asyncio_pubsub.py": check_asyncio_pubsub,
    "gaps.py": check_gaps,
    "secure_pubsub.py": check_secure_pubsub,
}
PAIRED = {"hello_send.py", "hello_receive.py"}  # two processes, run together below


def test_every_example_is_run() -> None:
    """Each example runs here, or in a test of its own feature that names it."""
    found = {p.name for p in EXAMPLES.glob("*.py")}
    elsewhere = set()
    tests = Path(REPO) / "tests"
    texts = [t.read_text() for t in tests.rglob("test_*.py") if t.name != "test_examples.py"]
    for name in found - set(SINGLE) - PAIRED:
        if any(f'"{name}"' in text or f"'{name}'" in text for text in texts):
            elsewhere.add(name)
    missing = found - set(SINGLE) - PAIRED - elsewhere
    assert not missing, f"examples no test runs: {sorted(missing)}; add them to SINGLE here"


@pytest.mark.parametrize("name", sorted(SINGLE))
def test_example(name: str) -> None:
    SINGLE[name](run(name))


def first_line(proc: subprocess.Popen[str], timeout: float = TIMEOUT) -> str:
    """The child's first line of output, waiting at most ``timeout``."""
    assert proc.stdout is not None
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        assert sel.select(timeout), f"no output within {timeout}s"
    return proc.stdout.readline()


@pytest.mark.parametrize("first", ["hello_receive.py", "hello_send.py"])
def test_hello_send_and_receive(first: str, tmp_path: Path) -> None:
    endpoint = f"ipc://{tmp_path}/hello.sock"
    started = time.monotonic()
    procs = {}
    try:
        for name in (first, *(PAIRED - {first})):
            procs[name] = subprocess.Popen(
                [sys.executable, "-X", "dev", str(EXAMPLES / name), endpoint],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO, env=ENV,
            )
            # the first one is up (bound or connecting) before the second starts
            assert first_line(procs[name]).startswith(" [*] ")
        outs = {}
        for name, proc in procs.items():
            out, err = proc.communicate(timeout=TIMEOUT)
            assert proc.returncode == 0, f"{name} exited {proc.returncode}:\n{out}{err}"
            assert err == "", err
            outs[name] = out
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
    assert " [x] Sent 'Hello World!'" in outs["hello_send.py"]
    assert re.search(r" \[x\] Received 'Hello World!' on 'hello' \(sender [0-9a-f]+, seq 1\)",
                     outs["hello_receive.py"])
    assert time.monotonic() - started < TIMEOUT


def hex_after(text: str, label: str) -> bytes:
    """The hex bytes of the code block that follows ``label`` in ``text``."""
    block = text.split(label, 1)[1].split("```", 2)[1]
    return bytes.fromhex(re.sub(r"\(.*?\)|[^0-9a-f ]", " ", block.replace("\n", " ")))


def test_protocol_worked_example_is_what_the_encoder_writes() -> None:
    doc = (Path(REPO) / "docs" / "protocol.md").read_text()
    enc = wire.Encoder("a1b2c3d4e5f60718", 1, max_size=8 * 1024 * 1024)
    frame = enc.encode("orders.created", {"id": 7}, {"region": "eu"}, 1700000000.25)
    assert hex_after(doc, "is this 62-byte frame") == frame and len(frame) == 62
    second = enc.encode("orders.created", b"\x00\x01", None, 1700000000.5)
    assert second.endswith(hex_after(doc, "(bin 8 of 2 bytes):"))
    [(batch, count)] = enc.encode_batch("t.x", [1, "a", None], None, 1700000001.0, 1 << 20)
    assert hex_after(doc, "first seq 1:") == batch and count == 3
    controls = doc.split("subscriber `0f1e2d3c4b5a6978/2`:", 1)[1].split("```")[1]
    rows: dict[str, str] = {}
    for line in controls.strip("\n").splitlines():
        name, sep, rest = line.partition(":")
        if sep and not line.startswith(" "):
            rows[name], last = rest, name
        else:
            rows[last] += line
    got = {name: bytes.fromhex(re.sub(r"\(.*?\)", "", text)) for name, text in rows.items()}
    token = "0f1e2d3c4b5a6978/2"
    assert got == {
        "welcome": wire.encode_welcome("a1b2c3d4e5f60718", 1, "host-42", 42),
        "gap report": wire.encode_gap(token, "a1b2c3d4e5f60718", 1, 801),
        "marker": b"\x01" + wire.marker_subscription(token),
    }
