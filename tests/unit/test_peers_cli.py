"""``peermq peers`` and the discovery options of pub/sub, without multicast (static peers)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from rich.console import Console

from peermq.cli import cli

NO_ENV = {"PEERMQ_MDNS": "off", "PEERMQ_PEERS": "", "PEERMQ_PEERS_FILE": "",
          "PEERMQ_INTERFACES": ""}


def run(*args: str, env: dict[str, str] | None = None) -> tuple[Result, str]:
    out = io.StringIO()
    result = CliRunner().invoke(cli, list(args), obj=Console(file=out, width=120),
                                env={**NO_ENV, **(env or {})})
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result, out.getvalue()


def test_peers_lists_static_peers_as_json_one_per_line(tmp_path: Path) -> None:
    peers = tmp_path / "peers"
    peers.write_text("jobs 10.0.0.7:6000\n")
    result, out = run("peers", "--json", "--timeout", "0.3", "--peer", "orders=10.0.0.5:5555",
                      "--peers-file", str(peers), env={"PEERMQ_PEERS": "orders=10.0.0.6:5555"})
    assert result.exit_code == 0, result.stderr
    lines = [json.loads(line) for line in out.splitlines()]
    assert [(d["type"], d["service"], d["endpoint"], d["source"]) for d in lines] == [
        ("peer", "jobs", "tcp://10.0.0.7:6000", "static"),
        ("peer", "orders", "tcp://10.0.0.5:5555", "static"),
        ("peer", "orders", "tcp://10.0.0.6:5555", "static"),
    ]


def test_peers_of_one_service_as_a_table() -> None:
    result, out = run("peers", "orders", "--timeout", "0.3", "--peer", "orders=10.0.0.5:5555",
                      "--peer", "jobs=10.0.0.7:6000")
    assert result.exit_code == 0, result.stderr
    assert out.splitlines()[0].split() == ["SERVICE", "KIND", "INSTANCE", "ENDPOINT", "NODE",
                                           "ID", "SOURCE"]
    assert "tcp://10.0.0.5:5555" in out and "jobs" not in out
    assert "1 peer" in result.stderr


def test_peers_watch_reports_changes_as_json_events(tmp_path: Path) -> None:
    result, out = run("peers", "--watch", "--json", "--timeout", "0.5",
                      "--peer", "orders=10.0.0.5:5555")
    assert result.exit_code == 0, result.stderr
    [event] = [json.loads(line) for line in out.splitlines()]
    assert event["type"] == "joined" and event["endpoint"] == "tcp://10.0.0.5:5555"


@pytest.mark.parametrize("args", [
    ("peers", "not a service"),
    ("peers", "--peer", "nonsense"),
    ("sub", "--service", "bad name"),
    ("pub", "--service", "x y", "topic", "data"),
    ("pub", "topic", "data"),
])
def test_bad_discovery_arguments_are_usage_errors(args: tuple[str, ...]) -> None:
    result, _ = run(*args)
    assert result.exit_code == 2, (result.exit_code, result.stderr)


def test_pub_without_endpoint_or_service_says_what_to_give() -> None:
    result, _ = run("pub", "topic", "data")
    assert "--service NAME" in result.stderr
