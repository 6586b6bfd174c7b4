"""The CLI through click's CliRunner: parsing, exit codes, and pub/sub over real sockets."""

from __future__ import annotations

import base64
import io
import json
import logging
import re
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import msgpack
import pytest
import zmq
from click.testing import CliRunner, Result
from rich.console import Console
from rich.text import Text

import peermq
from peermq import wire
from peermq.cli import _format, cli
from peermq.cli._ui import Ui
from peermq.cli.demo.supervisor import Supervisor
from peermq.cli.demo.view import View


def run(*args: str, input: str | None = None) -> tuple[Result, str]:
    """Invoke the CLI with an injected console; returns the result and what the console got."""
    out = io.StringIO()
    result = CliRunner().invoke(cli, list(args), obj=Console(file=out, width=100), input=input)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result, out.getvalue()


def error_line(result: Result) -> str:
    """The one sentence an error leaves on stderr (its last line)."""
    lines = result.stderr.strip().splitlines()
    assert "Traceback" not in result.stderr
    assert lines[-1].startswith("Error: "), result.stderr
    return lines[-1]


class Background:
    """Runs ``action`` in a thread (with its own sockets); re-raises what it raised."""

    def __init__(self, action: Callable[[], None]) -> None:
        self.error: BaseException | None = None
        self.stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(action,))

    def _run(self, action: Callable[[], None]) -> None:
        try:
            action()
        except BaseException as exc:  # handed to the test thread in join()
            self.error = exc

    def __enter__(self) -> Background:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self._thread.join(10)
        assert not self._thread.is_alive()
        if self.error is not None:
            raise self.error


NO_LINGER = peermq.SocketOptions(linger=0.0)


@pytest.fixture
def ipc(tmp_path: Path) -> str:
    return f"ipc://{tmp_path}/cli.sock"


# -- version and usage


def test_version_names_all_three_versions() -> None:
    result, out = run("--version")
    assert result.exit_code == 0
    assert out.startswith(f"peermq {peermq.__version__} (libzmq {zmq.zmq_version()}, "
                          f"pyzmq {zmq.__version__},")


def test_python_dash_m_and_help_list_the_commands() -> None:
    result, _ = run("--help")
    assert result.exit_code == 0
    for command in ("pub", "sub", "demo"):
        assert f"  {command} " in result.stdout


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["pub", "t.x", "data"], "give at least one --connect or --bind endpoint"),
        (["sub", "-c", "5555", "-H", "region"], "'region' is not key=value"),
        (["sub", "-c", "5555", "-H", "=eu"], "'=eu' is not key=value"),
        (["sub", "-c", "5555", "-H", "a=1", "-H", "a=2"], "header 'a' is given twice"),
        (["pub", "-c", "5555", "-H", "nope", "t.x", "d"], "'nope' is not key=value"),
        (["pub", "-c", "5555", "bad topic", "d"], "contains ' '"),
        (["sub", "-c", "5555", "a.>.b"], "'>' may only be the last segment"),
        (["pub", "-c", "no such place", "t.x", "d"], "cannot connect to 'no such place'"),
        (["sub", "-b", "inproc://x"], "inproc:// only joins sockets of one process"),
        (["sub", "-c", "*"], "cannot connect to '*'"),
        (["pub", "-c", "5555", "--json-data", "t.x", "{nope"], "not valid JSON"),
        (["pub", "-c", "5555", "t.x"], "give DATA, or --file"),
        (["pub", "-c", "5555", "-f", "-", "t.x", "d"], "give DATA or --file, not both"),
        (["pub", "-c", "5555", "-f", "-", "-n", "3", "t.x"], "--count repeats DATA"),
        (["sub", "-c", "5555", "--count", "0"], "--count"),
        (["demo", "--seconds", "0"], "--seconds"),
        (["-v", "-q", "sub", "-c", "5555"], "-v and -q contradict"),
    ],
)
def test_usage_errors_exit_2_with_one_clear_line(args: list[str], says: str) -> None:
    result, _ = run(*args)
    assert result.exit_code == 2, result.output
    assert says in error_line(result)


@pytest.mark.parametrize(("no_color", "coloured"), [("", True), ("1", False)])
def test_colour_follows_the_terminal_and_no_color(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], no_color: str,
    coloured: bool,
) -> None:
    monkeypatch.setenv("FORCE_COLOR", "1")  # as if stdout were a terminal
    monkeypatch.setenv("NO_COLOR", no_color)
    Ui.from_obj(None).line(Text("topic", style="red"))
    assert ("\x1b[31m" in capsys.readouterr().out) is coloured


def test_without_a_terminal_there_is_no_colour(capsys: pytest.CaptureFixture[str]) -> None:
    Ui.from_obj(None).line(Text("topic", style="red"))
    assert capsys.readouterr().out == "topic\n"


# -- pub (the test's subscriber connects: a bound socket that nobody polls would not
# take in its connections, since ZeroMQ attaches them in the socket's own thread)


def test_pub_sends_data_with_headers_and_says_what_it_did(ipc: str) -> None:
    with peermq.Subscriber(connect=ipc, options=NO_LINGER) as sub:
        result, _ = run("pub", "--bind", ipc, "--wait-subscribers", "1",
                        "-H", "region=eu", "-H", "k=v=w", "-n", "3", "orders.created", "hello")
        assert result.exit_code == 0, result.output
        got = [sub.recv(timeout=5.0) for _ in range(3)]
    assert [(m.topic, m.data, m.seq) for m in got] == [("orders.created", "hello", i)
                                                       for i in (1, 2, 3)]
    assert dict(got[0].headers) == {"region": "eu", "k": "v=w"}
    assert "sent 3, dropped 0" in result.stderr


def test_pub_json_data_sends_the_value_and_json_prints_a_summary(ipc: str) -> None:
    with peermq.Subscriber(connect=ipc, options=NO_LINGER) as sub:
        result, out = run("pub", "-b", ipc, "-w", "1", "--json-data", "--json",
                          "t.x", '{"id": 7, "tags": ["a"], "ok": true}')
        assert result.exit_code == 0, result.output
        assert sub.recv(timeout=5.0).data == {"id": 7, "tags": ["a"], "ok": True}
    assert json.loads(out) == {"type": "summary", "sent": 1, "dropped": 0, "subscribers": 1}


def test_pub_sends_one_message_per_line_of_stdin(ipc: str) -> None:
    with peermq.Subscriber(connect=ipc, options=NO_LINGER) as sub:
        result, _ = run("pub", "-b", ipc, "-w", "1", "-f", "-", "logs.app",
                        input="first\r\nsecond\n\nlast")
        assert result.exit_code == 0, result.output
        assert [sub.recv(timeout=5.0).data for _ in range(4)] == ["first", "second", "", "last"]


def test_pub_json_lines_skip_blanks_and_a_bad_line_fails_with_its_number(ipc: str) -> None:
    with peermq.Subscriber(connect=ipc, options=NO_LINGER) as sub:
        result, _ = run("pub", "-b", ipc, "-w", "1", "-f", "-", "--json-data",
                        "t.x", input='{"a": 1}\n\n[2]\n{oops\n3\n')
        assert result.exit_code == 1
        assert "line 4 of stdin is not valid JSON" in error_line(result)
        assert [sub.recv(timeout=5.0).data for _ in range(2)] == [{"a": 1}, [2]]


def test_pub_that_nobody_joins_fails_after_its_timeout() -> None:
    result, _ = run("pub", "--bind", "tcp://127.0.0.1:*", "-w", "1", "-t", "0.2", "t.x", "d")
    assert result.exit_code == 1
    assert error_line(result) == "Error: only 0 of 1 subscribers came within 0.2s"
    assert "bound tcp://127.0.0.1:" in result.stderr


def test_pub_without_subscribers_hints_at_waiting() -> None:
    result, _ = run("pub", "--bind", "tcp://127.0.0.1:*", "t.x", "lost")
    assert result.exit_code == 0
    assert "--wait-subscribers" in result.stderr


# -- sub


def publish_when_joined(endpoint: str, messages: list[tuple[str, object, dict[str, str]]]
                        ) -> Callable[[], None]:
    def action() -> None:
        with peermq.Publisher(connect=endpoint) as pub:
            pub.wait_for_subscribers(1, timeout=10.0)
            for topic, data, headers in messages:
                pub.send(topic, data, headers or None)
    return action


def test_sub_prints_time_topic_seq_sender_headers_and_payload(ipc: str) -> None:
    messages: list[tuple[str, object, dict[str, str]]] = [
        ("orders.created", {"id": 7}, {"region": "eu"}),
        ("orders.created", b"\x00\xff\x10", {}),
        ("orders.paid", "multi\nline", {}),
        ("orders.paid", "x" * 500, {}),
        ("orders.paid", "[red]not markup[/red] :smile:", {}),
    ]
    with Background(publish_when_joined(ipc, messages)):
        result, out = run("sub", "--bind", ipc, "--count", "5", "--timeout", "10")
    assert result.exit_code == 0, result.output
    lines = out.splitlines()
    assert len(lines) == 5
    assert lines[0].split("  ")[1:3] == ["orders.created", "#1"]
    assert lines[0].endswith('region=eu  {"id": 7}')
    assert lines[1].endswith("<3 bytes> 00 ff 10")
    assert lines[2].endswith("multi\\nline")
    assert lines[3].endswith("x" * 200 + "... (+300 chars)")
    assert lines[4].endswith("[red]not markup[/red] :smile:")
    assert "received 5, gaps 0" in result.stderr


def test_sub_filters_by_pattern_and_headers(ipc: str) -> None:
    messages: list[tuple[str, object, dict[str, str]]] = [
        ("orders.created", 1, {"region": "us"}),
        ("metrics.cpu", 2, {"region": "eu"}),
        ("orders.created", 3, {"region": "eu"}),
        ("orders.paid", 4, {"tier": "gold"}),
    ]
    with Background(publish_when_joined(ipc, messages)):
        result, out = run("sub", "-b", ipc, "orders.>", "-H", "region=eu", "-H", "tier=gold",
                          "--any", "--json", "-n", "2", "-t", "10")
    assert result.exit_code == 0, result.output
    assert [json.loads(line)["data"] for line in out.splitlines()] == [3, 4]


def test_sub_json_lines_round_trip_any_payload(ipc: str) -> None:
    payloads: list[object] = [
        b"\x00\x01binary\xff",
        "text",
        {"nested": b"\xde\xad", "n": 1},
        float("nan"),
        {"a": [1, 2.5, None, True]},
    ]
    with Background(publish_when_joined(ipc, [("t.x", p, {"h": "1"}) for p in payloads])):
        result, out = run("sub", "-b", ipc, "--json", "-n", str(len(payloads)), "-t", "10")
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in out.splitlines()]
    assert [r["encoding"] for r in records] == [
        "base64", "json", "msgpack+base64", "msgpack+base64", "json"]

    def decode(r: dict[str, object]) -> object:
        if r["encoding"] == "base64":
            return base64.b64decode(str(r["data"]))
        if r["encoding"] == "msgpack+base64":
            return msgpack.unpackb(base64.b64decode(str(r["data"])), raw=False)
        return r["data"]

    decoded = [decode(r) for r in records]
    assert decoded[0] == payloads[0] and decoded[2] == payloads[2] and decoded[4] == payloads[4]
    assert decoded[3] != decoded[3]  # NaN survives as NaN
    assert set(records[0]) == {"type", "topic", "seq", "sender", "stream", "time", "headers",
                               "encoding", "data"}
    assert records[0]["headers"] == {"h": "1"} and records[0]["type"] == "message"


def test_deep_structures_still_make_valid_json() -> None:
    deep: object = "bottom"
    for _ in range(900):
        deep = [deep]
    encoding, data = _format.payload_json(deep)
    assert encoding in ("json", "msgpack+base64")
    json.loads(_format.dumps({"data": data}))


def raw_publisher_with_a_hole(endpoint: str, ready: threading.Event) -> Callable[[], None]:
    """Sends seq 1, 2 and 5 of one topic: the subscriber must report #3..#4 lost."""
    def action() -> None:
        ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        sock = ctx.socket(zmq.XPUB)
        sock.setsockopt(zmq.LINGER, 1000)
        try:
            sock.connect(endpoint)
            while not sock.recv().startswith(b"\x01" + wire.MARKER):
                pass  # the marker comes last: the subscriptions are in force
            ready.set()
            enc = wire.Encoder("feedfacecafebeef", 1, max_size=1 << 20)
            frames = [enc.encode("t.x", i, None, 1.0e9) for i in range(1, 6)]
            for frame in (frames[0], frames[1], frames[4]):
                sock.send(frame)
        finally:
            sock.close()
            ctx.term()
    return action


@pytest.mark.parametrize("as_json", [False, True])
def test_sub_prints_gaps_inline_where_they_are_noticed(ipc: str, as_json: bool) -> None:
    ready = threading.Event()
    with Background(raw_publisher_with_a_hole(ipc, ready)):
        result, out = run("sub", "-b", ipc, "-n", "3", "-t", "10", *(["--json"] * as_json))
    assert ready.is_set()
    assert result.exit_code == 0, result.output
    lines = out.splitlines()
    assert len(lines) == 4
    if as_json:
        assert json.loads(lines[2]) == {"type": "gap", "topic": "t.x",
                                        "sender": "feedfacecafebeef", "stream": 1,
                                        "first": 3, "lost": 2}
        assert json.loads(lines[3])["seq"] == 5
    else:
        assert "!! GAP  t.x  lost 2 (#3..#4)  from feedface/1" in lines[2]
        assert "#5" in lines[3]
    assert "gaps 2" in result.stderr


def test_sub_timeout_is_idle_time_and_fails_only_short_of_count(tmp_path: Path) -> None:
    result, out = run("sub", "-b", f"ipc://{tmp_path}/idle.sock", "-t", "0.2")
    assert result.exit_code == 0 and out == ""
    result, _ = run("sub", "-b", f"ipc://{tmp_path}/idle.sock", "-t", "0.2", "-n", "1")
    assert result.exit_code == 1
    assert error_line(result) == "Error: got 0 of 1 messages: none for 0.2s"


def test_quiet_leaves_only_data(ipc: str) -> None:
    with Background(publish_when_joined(ipc, [("t.x", 1, {})])):
        result, out = run("-q", "sub", "-b", ipc, "-n", "1", "-t", "10", "--json")
    assert result.exit_code == 0
    assert result.stderr == ""
    assert json.loads(out)["data"] == 1


def test_bind_port_shorthand_means_loopback() -> None:
    result, _ = run("sub", "-b", "0", "-t", "0.1")
    assert result.exit_code == 0
    assert "bound tcp://127.0.0.1:" in result.stderr


def test_a_port_in_use_is_a_runtime_error() -> None:
    with peermq.Subscriber(bind="tcp://127.0.0.1:*") as taken:
        result, _ = run("sub", "-b", taken.endpoints[0], "-t", "0.1")
    assert result.exit_code == 1
    assert "address already in use" in error_line(result)


@pytest.fixture(autouse=True)
def _no_logging_left_behind() -> Iterator[None]:
    before = list(logging.getLogger("peermq").handlers)
    yield
    assert logging.getLogger("peermq").handlers == before


def test_verbose_sends_the_library_logs_to_stderr(tmp_path: Path) -> None:
    result, _ = run("-vv", "sub", "-b", f"ipc://{tmp_path}/v.sock", "-t", "0.1")
    assert result.exit_code == 0
    assert "socket.bound kind=SUBSCRIBER" in result.stderr
    result, _ = run("sub", "-b", f"ipc://{tmp_path}/v.sock", "-t", "0.1")
    assert "socket.bound" not in result.stderr


# -- the demo's bookkeeping and views, without its processes


def settled_demo(short: int = 0) -> Supervisor:
    """A demo whose senders sent a few messages and whose receivers got them (but ``short``)."""
    sv = Supervisor(rate=10.0)
    for st, sent in zip(sv.senders, (9, 4, 6), strict=True):
        st.sent, st.phase = sent, "done"
    sv.settle()
    for st in sv.receivers:
        st.received = st.expected if st.expected is not None else 2
        st.phase = "done"
    sv.states["eu-orders"].received -= short
    return sv


def test_demo_expects_what_each_filter_lets_through() -> None:
    sv = settled_demo()
    expected = {st.role.name: st.expected for st in sv.receivers}
    # orders 0..8 cycle created/paid/shipped with region eu for 0-2 and 9-11: three are EU
    # metrics 0..3 alternate cpu/mem on hosts web-1, web-1, web-2, web-2: one is web-1's CPU
    assert expected == {"audit": 13, "eu-orders": 3, "web1-cpu": 1,
                        "worker-1": None, "worker-2": None, "worker-3": None}
    assert sv.summary().ok  # the three workers got 2 each: all 6 jobs


def test_demo_summary_table_and_verdict() -> None:
    out = io.StringIO()
    sv = settled_demo()
    View(Ui.from_obj(Console(file=out, width=100)), sv).finish(interrupted=False)
    text = out.getvalue()
    assert re.search(r"eu-orders\s+subscriber\s+3\s+3\s+0\s+0\s+done", text), text
    assert re.search(r"worker-1\s+worker\s+2\s+shared\s+0\s+0\s+done", text), text
    assert text.splitlines()[-1] == ("ok: 19 messages sent, 23 delivered, 0 gaps, 0 dropped, "
                                     "0 missing")


def test_demo_shows_loss_and_gaps_loudly() -> None:
    out = io.StringIO()
    sv = settled_demo(short=1)
    sv.gap_log.append(("eu-orders", {"event": "gap", "topic": "orders.paid", "first": 2,
                                     "lost": 1}))
    sv.states["eu-orders"].gaps = 1
    View(Ui.from_obj(Console(file=out, width=100)), sv).finish(interrupted=False)
    text = out.getvalue()
    assert "!! GAP  eu-orders lost 1 of orders.paid from #2" in text
    assert re.search(r"eu-orders\s+subscriber\s+2\s+3\s+1\s+0\s+-1", text), text
    assert text.splitlines()[-1].startswith("LOSS: 19 messages sent, 22 delivered, 1 gaps")
    assert not sv.summary().ok


@pytest.mark.parametrize("command", [["pub", "-c", "5555", "t", "x"], ["sub", "-c", "5555"]])
def test_pub_and_sub_honour_peermq_security(command: list[str]) -> None:
    result = CliRunner().invoke(cli, command, env={"PEERMQ_SECURITY": "bogus"})
    assert result.exit_code == 2
    assert "PEERMQ_SECURITY must be 'curve' or 'off'" in result.output
