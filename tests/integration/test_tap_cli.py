"""``peermq tap``, ``info`` and ``replay`` as real processes against real peers."""

from __future__ import annotations

import base64
import contextlib
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import msgpack
import pytest

import peermq
from peermq.tap import payload_bytes

from ..helpers import REPO
from .tap_peer import PAYLOADS
from .test_tap import peer, ready, say

PEERMQ = [sys.executable, "-m", "peermq"]
ENV = {**os.environ, "PYTHONUNBUFFERED": "1", "NO_COLOR": "1"}


@contextlib.contextmanager
def tap(*args: str, text: bool = True, env: dict[str, str] | None = None
        ) -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen([*PEERMQ, "tap", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=text, cwd=REPO, env={**ENV, **(env or {})})
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
        for f in (proc.stdout, proc.stderr):
            if f is not None:
                f.close()


def lines_until(proc: subprocess.Popen[str], want: str, timeout: float = 15.0, *,
                count: int = 1, stderr: bool = False) -> list[str]:
    """Lines of ``proc``'s stdout (or stderr) up to the ``count``-th that contains ``want``."""
    stream = proc.stderr if stderr else proc.stdout
    assert stream is not None
    out: list[str] = []
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        raw: str | bytes = stream.readline()
        line = raw.decode() if isinstance(raw, bytes) else raw
        assert line, f"tap exited ({proc.poll()}) after {out[-3:]}"
        out.append(line)
        if sum(want in x for x in out) >= count:
            return out
    raise AssertionError(f"no {want!r} within {timeout}s")


def receive(sub: peermq.Subscriber, n: int, *args: str
            ) -> tuple[list[peermq.Message], tuple[int, str, str]]:
    """Run ``peermq ARGS`` while ``sub`` takes ``n`` messages (a subscriber that is not read
    from does not answer a new publisher); returns them and (exit code, stdout, stderr)."""
    proc = subprocess.Popen([*PEERMQ, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=REPO, env=ENV)
    try:
        got = [sub.recv(timeout=15.0) for _ in range(n)]
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=10)
    return got, (proc.returncode, out, err)


def decode(record: dict[str, object]) -> object:
    enc, data = record["encoding"], record["data"]
    if enc == "json":
        return data
    raw = base64.b64decode(str(data))
    return raw if enc == "base64" else msgpack.unpackb(raw, raw=False, strict_map_key=False)


def same(a: object, b: object) -> bool:
    """Equality that counts NaN as equal to itself."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a):
        return math.isnan(b)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def test_json_output_parses_and_round_trips_any_payload() -> None:
    n = 3 * len(PAYLOADS)
    with peer("pub", "odd.payloads", str(n), "--payloads") as proc:
        mirror, data = ready(proc)
        with tap("--connect", mirror, "--json", "--count", str(n)) as t:
            lines_until(t, '"joined"')
            with peermq.Subscriber(connect=data):
                say(proc, "go")
                out, err = t.communicate(timeout=30)
    assert t.returncode == 0, err
    records = [json.loads(line) for line in out.splitlines()]
    msgs = [r for r in records if r["type"] == "message"]
    assert [m["seq"] for m in msgs] == list(range(1, n + 1))
    for i, m in enumerate(msgs):
        assert same(decode(m), PAYLOADS[i % len(PAYLOADS)]), (i, m)
        assert m["headers"] == {"region": "eu" if i % 2 else "us", "i": str(i)}
        assert list(m) == ["type", "time", "sent", "node", "name", "kind", "stream", "service",
                           "topic", "seq", "size", "headers", "encoding", "data"]
    assert f"showed {n} of {n} messages" in err


def test_filters_on_the_command_line() -> None:
    n = 40
    with contextlib.ExitStack() as stack:
        p1 = stack.enter_context(peer("pub", "orders.created", str(n)))
        p2 = stack.enter_context(peer("push", "orders.debug.trace", str(n)))
        (m1, d1), (m2, d2) = ready(p1), ready(p2)
        t = stack.enter_context(tap(
            "-c", m1, "-c", m2, "orders.>", "-x", "orders.debug.>", "-H", "region=eu",
            "-H", "!missing", "--where", "data.price >= 100 and data.i % 4 == 1",
            "--template", "{topic} {seq} {data.price} {headers.region}", "--idle", "2"))
        lines_until(t, "node joined", count=2, stderr=True)  # on stderr with --template
        stack.enter_context(peermq.Subscriber(connect=d1))
        stack.enter_context(peermq.Puller(connect=d2))
        for p in (p1, p2):
            say(p, "go")
        out, err = t.communicate(timeout=30)
    assert t.returncode == 0, err
    want = [f"orders.created {i + 1} {i * 10} eu" for i in range(n) if i % 4 == 1 and i >= 10]
    assert out.splitlines() == want


def test_node_filter_and_raw_nul_output() -> None:
    with contextlib.ExitStack() as stack:
        p1 = stack.enter_context(peer("pub", "a", "5", "--payloads"))
        p2 = stack.enter_context(peer("pub", "b", "5", "--payloads"))
        (m1, d1), (m2, d2) = ready(p1), ready(p2)
        t = stack.enter_context(tap("-c", m1, "-c", m2, "--node", str(p1.pid) + "*", "--node",
                                    f"*-{p1.pid}", "--raw", "-0", "--count", "5", "--timeout",
                                    "20", text=False))
        lines_until(t, "node joined", stderr=True)  # the other node is not shown
        stack.enter_context(peermq.Subscriber(connect=[d1, d2]))
        for p in (p1, p2):
            say(p, "go")
        out, err = t.communicate(timeout=30)
    assert t.returncode == 0, err
    # only the first node's, each payload as it is (values as msgpack), each ended by a NUL
    assert out == b"".join(payload_bytes(p) + b"\0" for p in PAYLOADS[:5])


def test_record_info_and_replay_round_trip(tmp_path: Path) -> None:
    n = 2 * len(PAYLOADS)
    rec = tmp_path / "traffic.mcap"
    with peer("push", "jobs.fancy", str(n), "--payloads") as proc:
        mirror, data = ready(proc)
        with tap("-c", mirror, "--record", str(rec), "--count", str(n), "--json") as t:
            lines_until(t, '"joined"')
            with peermq.Puller(connect=data) as pull:
                say(proc, "go")
                pulled = [pull.recv(timeout=10.0) for _ in range(n)]
                out, err = t.communicate(timeout=30)
    assert t.returncode == 0, err
    assert f"recorded {n} messages to {rec}" in err
    info = subprocess.run([*PEERMQ, "info", "--json", str(rec)], capture_output=True, text=True,
                          cwd=REPO, env=ENV, timeout=30, check=True)
    head, topic = (json.loads(line) for line in info.stdout.splitlines())
    assert (head["messages"], head["complete"], topic["topic"], topic["messages"],
            topic["gaps"]) == (n, True, "jobs.fancy", n, 0)
    # replay into a subscriber: same topics, payloads and headers, in order
    with peermq.Subscriber(bind="tcp://127.0.0.1:*") as sub:
        again, (code, out, err) = receive(sub, n, "replay", str(rec), "--connect",
                                          sub.endpoints[0], "--wait-subscribers", "1",
                                          "--rate", "0", "--json")
    assert code == 0, err
    assert json.loads(out) == {"type": "summary", "sent": n, "dropped": 0}
    for a, b in zip(pulled, again, strict=True):
        assert (a.topic, dict(a.headers)) == (b.topic, dict(b.headers))
        assert same(a.data, b.data)
    assert [m.seq for m in again] == list(range(1, n + 1))


def test_replay_keeps_the_pace_and_selects_topics(tmp_path: Path) -> None:
    rec = tmp_path / "paced.mcap"
    recorder = peermq.tap.Recorder(rec)
    for i in range(6):  # 0.0 .. 0.5 s apart, two topics
        recorder.write(peermq.tap.TapMessage(100.0 + i / 10, "keep" if i % 2 else "skip", i, {},
                                             "n", 1, i + 1, 100.0, 1))
    recorder.close()
    with peermq.Subscriber(bind="tcp://127.0.0.1:*") as sub:
        got, (code, _, err) = receive(sub, 5, "replay", str(rec), "keep", "--connect",
                                      sub.endpoints[0], "-w", "1", "--rate", "0.5", "--loop",
                                      "--count", "5")
    assert code == 0, err
    assert [m.data for m in got] == [1, 3, 5, 1, 3]
    # 0.2 s apart in the recording, played at half speed: 0.4 s apart within a pass
    assert got[2].timestamp - got[0].timestamp >= 0.75
    assert got[1].timestamp - got[0].timestamp == pytest.approx(0.4, abs=0.15)


def test_sigint_exits_130_promptly_and_finishes_the_recording(tmp_path: Path) -> None:
    rec = tmp_path / "cut.mcap"
    with peer("pub", "tick", "0", "--forever") as proc:
        mirror, _ = ready(proc)
        with tap("-c", mirror, "--record", str(rec), "--json") as t:
            lines_until(t, '"message"')
            started = time.monotonic()
            t.send_signal(signal.SIGINT)
            _, err = t.communicate(timeout=10)
            took = time.monotonic() - started
        say(proc, "stop")
    assert t.returncode == 130, err
    assert took < 2.0, took
    assert "Traceback" not in err
    info = subprocess.run([*PEERMQ, "info", "--json", str(rec)], capture_output=True, text=True,
                          cwd=REPO, env=ENV, timeout=30, check=True)
    head = json.loads(info.stdout.splitlines()[0])
    assert head["complete"] is True and head["messages"] >= 1


def test_piped_into_head_exits_cleanly() -> None:
    with peer("pub", "tick", "0", "--forever") as proc:
        mirror, _ = ready(proc)
        t = subprocess.Popen([*PEERMQ, "tap", "-c", mirror, "--json", "--no-events"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO, env=ENV)
        head = subprocess.Popen(["head", "-1"], stdin=t.stdout, stdout=subprocess.PIPE)
        assert t.stdout is not None
        t.stdout.close()  # only head reads it now
        line, _ = head.communicate(timeout=20)
        try:
            _, err = t.communicate(timeout=10)
        finally:
            if t.poll() is None:
                t.kill()
                t.wait()
        say(proc, "stop")
    assert json.loads(line)["type"] == "message"
    assert t.returncode == 0, err
    assert b"Traceback" not in err and b"Broken pipe" not in err


def test_head_ends_a_tap_that_sees_nothing_too() -> None:
    """No message to write: the tap still notices its reader is gone, within a slice."""
    with peer("pub", "quiet", "0") as proc:
        mirror, _ = ready(proc)
        t = subprocess.Popen([*PEERMQ, "tap", "-c", mirror, "--json"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO, env=ENV)
        head = subprocess.Popen(["head", "-1"], stdin=t.stdout, stdout=subprocess.PIPE)
        assert t.stdout is not None
        t.stdout.close()
        line, _ = head.communicate(timeout=20)  # the "joined" line
        try:
            t.wait(timeout=10)
        finally:
            if t.poll() is None:
                t.kill()
                t.wait()
            assert t.stderr is not None
            t.stderr.close()
    assert json.loads(line)["event"] == "joined"
    assert t.returncode == 0


@pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux (apt-get install tmux)")
def test_ctrl_c_in_a_terminal_under_tmux(tmp_path: Path) -> None:
    """A real terminal: colours and the live --stats table, then Ctrl-C typed at it."""
    session = f"pmqtap{os.getpid()}"
    rc_file = tmp_path / "rc"
    with peer("pub", "tick", "0", "--forever") as proc:
        mirror, _ = ready(proc)
        command = (f"cd {REPO} && {sys.executable} -m peermq tap -c {mirror} --stats "
                   f"--interval 0.2; echo $? > {rc_file}")
        env = {k: v for k, v in ENV.items() if k != "NO_COLOR"}
        subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "150", "-y", "40",
                        command], check=True, env=env, timeout=10)
        try:
            end = time.monotonic() + 15
            screen = ""
            while "tick" not in screen or "mirror lost" not in screen:
                assert time.monotonic() < end, screen
                time.sleep(0.1)
                screen = subprocess.run(["tmux", "capture-pane", "-p", "-t", session],
                                        capture_output=True, text=True, timeout=10,
                                        check=False).stdout
            subprocess.run(["tmux", "send-keys", "-t", session, "C-c"], check=True, timeout=10)
            end = time.monotonic() + 10
            while not rc_file.exists() or not rc_file.read_text().strip():
                assert time.monotonic() < end, "the tap did not exit on Ctrl-C"
                time.sleep(0.05)
        finally:
            subprocess.run(["tmux", "kill-session", "-t", session], check=False, timeout=10,
                           capture_output=True)
            say(proc, "stop")
    assert rc_file.read_text().strip() == "130"


def test_stats_as_json_lines() -> None:
    n = 30
    with peer("pub", "metrics.cpu", str(n)) as proc:
        mirror, data = ready(proc)
        with tap("-c", mirror, "--stats", "--json", "--interval", "0.2", "--count", str(n)) as t:
            time.sleep(0.1)
            with peermq.Subscriber(connect=data):
                lines_until(t, '"node_stats"')  # attached: the node reports itself
                say(proc, "go")
                out, err = t.communicate(timeout=30)
    assert t.returncode == 0, err
    rows = [json.loads(line) for line in out.splitlines()]
    last_topic = [r for r in rows if r["type"] == "topic_stats"][-1]
    assert (last_topic["topic"], last_topic["messages"], last_topic["gaps"],
            last_topic["last_seq"]) == ("metrics.cpu", n, 0, n)
    assert last_topic["rate"] > 0 and last_topic["bytes"] > 0
    node = [r for r in rows if r["type"] == "node_stats"][-1]
    assert (node["state"], node["messages"], node["dropped"], node["mirror_lost"]) == (
        "up", n, 0, 0)


def test_hex_output_and_a_count_not_reached_in_time() -> None:
    with peer("pub", "blob", "2", "--payloads") as proc:
        mirror, data = ready(proc)
        with tap("-c", mirror, "--hex", "--count", "3", "--timeout", "3") as t:
            lines_until(t, "node joined")
            with peermq.Subscriber(connect=data):
                say(proc, "go")
                out, err = t.communicate(timeout=30)
    assert t.returncode == 1, err
    assert "Error: showed 2 of 3 messages before the --timeout of 3.0s" in err
    dump = [line.strip() for line in out.splitlines() if line.startswith("  0000")]
    assert dump[0].startswith("00000000  00 ff fe 80 20 6e 6f 74  20 75 74 66 2d 38")
    assert len(dump) == 1  # the second payload is empty: a message line, no dump
