"""peermq tap / info / replay through CliRunner: usage errors and info (no sockets)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from rich.console import Console

from peermq.cli import cli
from peermq.tap import Recorder, TapMessage

NO_MDNS = {"PEERMQ_MDNS": "off", "PEERMQ_PEERS": "", "PEERMQ_PEERS_FILE": ""}
"""Never multicast from a unit test: without --connect the tap would start discovery."""


def run(*args: str, env: dict[str, str] | None = None) -> tuple[Result, str]:
    out = io.StringIO()
    result = CliRunner().invoke(cli, list(args), obj=Console(file=out, width=100),
                                env={**NO_MDNS, **(env or {})})
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result, out.getvalue()


@pytest.mark.parametrize("args, message", [
    ((), "nothing to find mirrors with: PEERMQ_MDNS is off"),
    (("--discover", "-c", "7000"), "nothing to find mirrors with"),
    (("-c", "7000", "--json", "--raw"), "--json and --raw contradict"),
    (("-c", "7000", "--hex", "--template", "{seq}"), "--hex and --template contradict"),
    (("-c", "7000", "-0"), "-0 separates records"),
    (("-c", "7000", "--where", "data.x >"), "'--where': expression 'data.x >' does not parse"),
    (("-c", "7000", "--where", "os.system('x')"), "only these functions"),
    (("-c", "7000", "--template", "{nope}"), "'--template'"),
    (("-c", "7000", "-H", "=x"), "has no key"),
    (("-c", "7000", "a.>.b"), "'>' may only be the last segment"),
    (("-c", "7000", "-x", "a..b"), "empty segment"),
    (("-c", "not an endpoint"), "cannot connect to"),
    (("-c", "7000", "--count", "0"), "--count"),
    (("-c", "7000", "--idle", "0"), "--idle"),
])
def test_tap_usage_errors_exit_2(args: tuple[str, ...], message: str) -> None:
    result, _ = run("tap", *args)
    assert result.exit_code == 2, result.output
    assert message in result.stderr, result.stderr


@pytest.mark.parametrize("env, message", [
    ({"PEERMQ_SECURITY": "tls"}, "PEERMQ_SECURITY must be 'curve' or 'off', got 'tls'"),
    ({"PEERMQ_SECURITY": "curve", "PEERMQ_TRUST": "maybe"}, "PEERMQ_TRUST must be 'strict'"),
])
def test_tap_bad_security_variables_exit_2_before_anything_starts(
    env: dict[str, str], message: str, tmp_path: Path,
) -> None:
    result, out = run("tap", "-c", "7000", env={**env, "PEERMQ_KEYS": str(tmp_path / "k")})
    assert result.exit_code == 2, result.output
    assert message in result.stderr and not out
    assert not (tmp_path / "k").exists()  # no key made for a command that never ran


def test_replay_and_info_usage_errors(tmp_path: Path) -> None:
    result, _ = run("info", str(tmp_path / "missing.mcap"))
    assert result.exit_code == 2 and "does not exist" in result.stderr
    bad = tmp_path / "bad.mcap"
    bad.write_bytes(b"nope")
    result, _ = run("info", str(bad))
    assert result.exit_code == 1 and "is not an MCAP file" in result.stderr
    result, _ = run("replay", str(bad))
    assert result.exit_code == 2 and "--connect or --bind" in result.stderr


def recording(path: Path) -> None:
    with Recorder(path, metadata={"topics": ">"}) as rec:
        for i in range(1, 11):
            if i == 4:
                continue  # a gap
            rec.write(TapMessage(50.0 + i, "orders.created", {"i": i}, {}, "n1", 1, i, 50.0 + i,
                                 20, "api-1", "pub", ""))
        rec.write(TapMessage(70.0, "users.new", b"\x00", {}, "n2", 2, 1, 70.0, 20, "db", "push",
                             ""))


def test_info_summarises_a_recording(tmp_path: Path) -> None:
    path = tmp_path / "rec.mcap"
    recording(path)
    result, out = run("info", str(path))
    assert result.exit_code == 0, result.output
    assert "complete" in out and "10 in 2 topics over 19.000s" in out
    row = next(line for line in out.splitlines() if "orders.created" in line)
    cells = [c.strip() for c in row.strip("│").split("│")]
    assert cells == ["orders.created", "9", "288 B", "0.9/s", "1", "1", "msgpack"]
    result, out = run("info", "--json", str(path))
    lines = [json.loads(line) for line in out.splitlines()]
    assert lines[0]["type"] == "recording" and lines[0]["messages"] == 10
    assert lines[0]["complete"] is True and lines[0]["metadata"]["peermq.recording"]["topics"] == ">"
    topics = {t["topic"]: t for t in lines[1:]}
    assert topics["orders.created"]["messages"] == 9 and topics["orders.created"]["gaps"] == 1
    assert topics["users.new"]["senders"] == 1
