"""``peermq spool stats|inspect|verify|dlq|requeue`` on spools made on tmp_path."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

from click.testing import CliRunner, Result
from rich.console import Console

from peermq import wire
from peermq.cli import cli
from peermq.config import SpoolOptions
from peermq.spool import Spool
from peermq.spool import _records as rec
from peermq.spool.link import STREAM, Hello
from peermq.spool.stream import StreamLog

OPTS = SpoolOptions(segment_bytes=4096)


def run(*args: str) -> tuple[Result, str]:
    out = io.StringIO()
    result = CliRunner().invoke(cli, list(args), obj=Console(file=out, width=200))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result, out.getvalue()


def make(path: Path) -> None:
    """Ten messages: 1-3 acked, 4 unacked (2 deliveries), 5 dead, 6-10 never delivered."""
    enc = wire.Encoder("node1", 1, max_size=1 << 20)
    with Spool(path, OPTS) as sp:
        sp.append([enc.encode("orders.new", {"n": i}, {"k": "v"} if i == 2 else None, 1e9)
                   for i in range(1, 11)])
        sp.sync()
        d = sp.deliveries
        link = d.link_up("p", 100)
        d.sent(link, [1, 2, 3, 4, 5], 0.0)
        d.sent(link, [4], 1.0)
        d.ack([1, 2, 3])
        sp.bury([5], "rejected")


def lines(out: str) -> list[dict[str, object]]:
    return [json.loads(x) for x in out.splitlines()]


def test_stats_shows_counts_and_states(tmp_path: Path) -> None:
    make(tmp_path / "s")
    result, out = run("spool", "stats", str(tmp_path / "s"), "--json")
    assert result.exit_code == 0, result.output
    (s,) = lines(out)
    assert (s["messages"], s["last_seq"], s["cursor"], s["unacked"], s["pending"], s["dead"],
            s["holder"], s["damage"]) == (10, 10, 6, 1, 6, 1, None, 0)
    result, out = run("spool", "stats", str(tmp_path / "s"))
    assert "10 in 1 segments" in out and "1 dead letters" in out and "damage      none" in out


def test_inspect_lists_messages_with_their_state(tmp_path: Path) -> None:
    make(tmp_path / "s")
    _, out = run("spool", "inspect", str(tmp_path / "s"), "--json")
    got = lines(out)
    assert [(m["spool_seq"], m["state"]) for m in got] == (
        [(1, "acked"), (2, "acked"), (3, "acked"), (4, "unacked"), (5, "dead")]
        + [(i, "pending") for i in range(6, 11)]
    )
    assert got[1]["data"] == {"n": 2} and got[1]["headers"] == {"k": "v"}
    assert got[3]["deliveries"] == 2 and got[0]["topic"] == "orders.new"
    _, out = run("spool", "inspect", str(tmp_path / "s"), "--state", "pending", "-n", "2")
    assert [x.split()[0] for x in out.splitlines()] == ["#6", "#7"]
    assert 'orders.new  {"n": 6}' in out


def test_verify_finds_damage_without_repairing(tmp_path: Path) -> None:
    make(tmp_path / "s")
    result, _ = run("spool", "verify", str(tmp_path / "s"))
    assert result.exit_code == 0
    seg = next((tmp_path / "s" / "log").glob("*.seg"))
    data = bytearray(seg.read_bytes())
    data[rec.SEGMENT_HEADER + 40] ^= 0x01
    seg.write_bytes(bytes(data))
    result, out = run("spool", "verify", str(tmp_path / "s"), "--json")
    assert result.exit_code == 1 and "damage found" in result.stderr
    assert lines(out)[0]["kind"] == "corrupt" and lines(out)[-1]["ok"] is False
    assert seg.read_bytes() == bytes(data)  # read only


def test_dlq_and_requeue(tmp_path: Path) -> None:
    make(tmp_path / "s")
    _, out = run("spool", "dlq", str(tmp_path / "s"), "--json")
    (dead,) = lines(out)
    assert (dead["spool_seq"], dead["reason"], dead["deliveries"], dead["data"]) == (
        5, "rejected", 1, {"n": 5})
    result, _ = run("spool", "requeue", str(tmp_path / "s"))
    assert result.exit_code == 2  # neither SEQ nor --all
    result, _ = run("spool", "requeue", str(tmp_path / "s"), "99")
    assert result.exit_code == 1 and "no dead letter matched" in result.stderr
    result, _ = run("spool", "requeue", str(tmp_path / "s"), "5")
    assert result.exit_code == 0 and "requeued 1" in result.stderr
    result, out = run("spool", "dlq", str(tmp_path / "s"))
    assert out == "" and "no dead letters" in result.stderr
    _, out = run("spool", "inspect", str(tmp_path / "s"), "--json", "--from", "11")
    (again,) = lines(out)
    assert (again["spool_seq"], again["state"], again["data"]) == (11, "pending", {"n": 5})
    with Spool(tmp_path / "s", OPTS) as sp:
        assert sp.stats().dead == 0


def test_requeue_refuses_a_spool_in_use_and_names_the_holder(tmp_path: Path) -> None:
    make(tmp_path / "s")
    with Spool(tmp_path / "s", OPTS):
        result, _ = run("spool", "requeue", str(tmp_path / "s"), "--all")
        assert result.exit_code == 1 and f"process {os.getpid()}" in result.stderr
        _, out = run("spool", "stats", str(tmp_path / "s"), "--json")
        assert lines(out)[0]["holder"] == os.getpid()


def test_not_a_spool_is_one_clear_error_and_stays_untouched(tmp_path: Path) -> None:
    for command in (["stats"], ["inspect"], ["verify"], ["dlq"], ["requeue", "--all"]):
        result, out = run("spool", *command, str(tmp_path))
        assert result.exit_code == 1 and out == "", command
        assert result.stderr == f"Error: {tmp_path} is not a spool directory (no meta file)\n"
    assert list(tmp_path.iterdir()) == []  # requeue made no spool of it


def test_a_publishers_log_shows_its_durable_subscribers(tmp_path: Path) -> None:
    enc = wire.Encoder("node1", 1, max_size=1 << 20)
    with StreamLog(tmp_path / "log", OPTS) as log:
        log.append([enc.encode("t", i, None, 1e9) for i in range(3)])
        log.sync()
        hello = Hello("receiver", "n2", "sub", "", 10, "n2/1", False, STREAM, "billing",
                      (">",), ("seq", 1.0))
        c = log.attach(b"rid", hello, 0.0)
        c.deliveries.sent(c.deliveries.link_up(b"rid", 10), [1, 2], 0.0)
        c.deliveries.ack([1])
    _, out = run("spool", "stats", str(tmp_path / "log"), "--json")
    (s,) = lines(out)
    assert (s["kind"], s["messages"], s["pending"]) == ("log", 3, 0)
    assert s["consumers"] == {"billing": {"cursor": 3, "unacked": 1}}
    _, out = run("spool", "inspect", str(tmp_path / "log"), "--json")
    assert [(m["spool_seq"], m["state"]) for m in lines(out)] == [(1, "kept"), (2, "kept"),
                                                                 (3, "kept")]
