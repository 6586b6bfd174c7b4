"""Filters, templates, raw and hex output, and the --stats arithmetic (no sockets)."""

from __future__ import annotations

import msgpack
import pytest

from peermq.errors import ConfigError
from peermq.tap import (
    HeaderTest,
    LeaveReason,
    NodeJoined,
    NodeLeft,
    NodeRefused,
    NodeStatus,
    SocketStatus,
    TapFilter,
    TapGap,
    TapMessage,
    TapStats,
    Template,
    hexdump,
    parse_header_test,
    payload_bytes,
    value_text,
)


def msg(topic: str = "orders.created", data: object = None, headers: dict[str, str] | None = None,
        *, node: str = "a1b2c3", name: str = "api-1", seq: int = 1, received: float = 100.0,
        size: int = 10) -> TapMessage:
    return TapMessage(received, topic, data, headers or {}, node, 1, seq, received - 0.5, size,
                      name, "pub", "")


@pytest.mark.parametrize("text, test", [
    ("region=eu", HeaderTest("region", "eu")),
    ("region!=eu", HeaderTest("region", "eu", negate=True)),
    ("region=", HeaderTest("region", "")),
    ("a=b=c", HeaderTest("a", "b=c")),
    ("trace", HeaderTest("trace")),
    ("!trace", HeaderTest("trace", negate=True)),
])
def test_header_tests_parse(text: str, test: HeaderTest) -> None:
    assert parse_header_test(text) == test
    assert str(test) == text


@pytest.mark.parametrize("text", ["", "!", "=x", "!=x"])
def test_header_tests_need_a_key(text: str) -> None:
    with pytest.raises(ConfigError):
        parse_header_test(text)


def test_filter_combines_every_condition() -> None:
    flt = TapFilter(topics=["orders.>", "users.*"], exclude=["orders.debug.>"],
                    headers=[parse_header_test("region=eu"), parse_header_test("!test")],
                    nodes=["api-*", "ff00"], where="data.total > 10")
    good = msg("orders.created", {"total": 11}, {"region": "eu"})
    assert flt.message_ok(good)
    assert flt(good)
    assert not flt.message_ok(msg("orders.debug.x", {"total": 11}, {"region": "eu"}))
    assert not flt.message_ok(msg("billing.x", {"total": 11}, {"region": "eu"}))
    assert not flt.message_ok(msg("orders.created", {"total": 11}, {"region": "us"}))
    assert not flt.message_ok(msg("orders.created", {"total": 11}, {"region": "eu", "test": "1"}))
    assert not flt.message_ok(msg("orders.created", {"total": 9}, {"region": "eu"}))
    assert not flt.message_ok(msg("orders.created", {"total": 11}, {"region": "eu"}, name="db-1"))
    assert flt.message_ok(msg("users.new", {"total": 11}, {"region": "eu"}, name="db-1",
                              node="ff00aa"))  # by node id prefix
    # gaps and node events pass on topic and node only
    assert flt(TapGap(1.0, "orders.x", "a1", 1, 5, 2, "api-2"))
    assert not flt(TapGap(1.0, "orders.debug.x", "a1", 1, 5, 2, "api-2"))
    assert not flt(NodeLeft(1.0, "zz", "db-1", LeaveReason.CLOSED))
    assert flt(NodeJoined(1.0, "zz", "api-9", "h", 1, ()))


def test_filter_rejects_bad_input_before_use() -> None:
    with pytest.raises(ConfigError):
        TapFilter(where="data.x >")
    with pytest.raises(ConfigError):
        TapFilter(nodes=[""])
    with pytest.raises(Exception, match="'>' may only be the last"):
        TapFilter(topics=["a.>.b"])


def test_templates_render_fields_escapes_and_braces() -> None:
    m = msg("orders.created", {"price": 12.5, "tags": ["a", "b"], "raw": b"\xff\x00", "s": "x y"},
            {"region": "eu"}, seq=42)
    assert Template("{topic} #{seq} {data.price}").render(m) == "orders.created #42 12.5"
    assert Template(r"{headers.region}\t{data.tags}\n").render(m) == 'eu\t["a","b"]\n'
    assert Template("{{literal}} {data.s}").render(m) == "{literal} x y"
    assert Template("[{data.missing}]").render(m) == "[]"
    assert Template("{data.raw}").render(m) == "0xff00"
    assert Template("{data['price'] * 2}|{'}'}").render(m) == "25.0|}"
    assert Template("{data.price > 10}").render(m) == "true"
    assert Template("{data}").render(msg(data=None)) == "null"
    assert Template(r"a\\b\0").render(m) == "a\\b\0"


@pytest.mark.parametrize("text, why", [
    ("{topic", "never closed"),
    ("topic}", "closes nothing"),
    ("{}", "non-empty"),
    ("{x}", "unknown name"),
    ("{__import__('os')}", "only these functions"),
])
def test_bad_templates_are_config_errors(text: str, why: str) -> None:
    with pytest.raises(ConfigError, match=why):
        Template(text)


def test_payload_bytes_and_value_text() -> None:
    assert payload_bytes(b"\x00\x01") == b"\x00\x01"
    assert payload_bytes("héllo") == "héllo".encode()
    assert msgpack.unpackb(payload_bytes({"a": [1, b"x"]})) == {"a": [1, b"x"]}
    assert value_text("plain") == "plain"
    assert value_text(b"text") == "text"
    assert value_text({"a": float("nan"), 1: b"\xff"}) == '{"a":"nan","1":"0xff"}'
    assert value_text(None) == "null"


def test_hexdump_lines_and_limit() -> None:
    raw = bytes(range(40))
    lines = hexdump(raw)
    assert lines[0] == ("00000000  00 01 02 03 04 05 06 07  08 09 0a 0b 0c 0d 0e 0f  "
                        "|................|")
    assert lines[2].startswith("00000020  20 21 22 23 24 25 26 27") and lines[2].endswith("| !\"#$%&'|")
    assert hexdump(raw, limit=16)[-1] == "... 24 more bytes"
    assert hexdump(b"") == []


def test_stats_rates_gaps_and_reported_drops() -> None:
    stats = TapStats(window=5.0)
    sock = SocketStatus(1, "pub", "", 500, 7, {"sub/1": 7}, 1, 3, ())
    stats.add(NodeJoined(100.0, "a1", "api-1", "h", 1, (sock,)))
    for i in range(100):  # 10 messages a second for 10 seconds, 100 bytes each
        stats.add(msg("t", received=100.0 + i / 10, size=100, seq=i + 1))
    stats.add(TapGap(109.95, "t", "a1b2c3", 1, 101, 4, "api-1"))
    stats.add(NodeStatus(110.0, "a1", "api-1", (sock._replace(sent=600),)))
    (row,) = stats.topics(110.0)
    assert (row.topic, row.name, row.messages, row.bytes, row.gaps, row.last_seq) == (
        "t", "api-1", 100, 10_000, 4, 100)
    assert row.rate == pytest.approx(10.0, rel=0.1)
    assert row.bandwidth == pytest.approx(1000.0, rel=0.1)
    nodes = {n.node: n for n in stats.nodes(110.0)}
    assert nodes["a1"].sent == 600 and nodes["a1"].dropped == 7 and nodes["a1"].mirror_lost == 3
    assert nodes["a1"].kinds == {"pub": 1}
    assert nodes["a1b2c3"].messages == 100 and nodes["a1b2c3"].gaps == 4
    stats.add(NodeLeft(111.0, "a1", "api-1", LeaveReason.SILENT))
    assert {n.node: n.state for n in stats.nodes(111.0)}["a1"] == "silent"
    # nothing for a while: the rate falls to zero
    (row,) = stats.topics(200.0)
    assert row.rate == 0.0 and row.messages == 100
    assert stats.messages == 100 and stats.gaps == 4


def test_a_young_row_is_rated_over_its_own_life() -> None:
    stats = TapStats(window=5.0)
    for i in range(20):  # 20 messages within the first second
        stats.add(msg(received=50.0 + i / 20))
    (row,) = stats.topics(51.0)
    assert row.rate == pytest.approx(20.0)


def test_a_refusal_is_shown_and_written_as_json_with_the_other_node_events() -> None:
    from peermq.cli import _tap_view  # noqa: PLC0415 (the CLI's views, used here alone)

    why = "the handshake failed: this tap's key is not trusted there"
    event = NodeRefused(100.0, "tcp://127.0.0.1:7000", why)
    assert _tap_view.node_json(event) == {
        "type": "node", "event": "refused", "time": 100.0, "node": "", "name": "",
        "endpoint": "tcp://127.0.0.1:7000", "reason": why}
    line = _tap_view.node_line(event).plain
    assert "!! refused" in line and "tcp://127.0.0.1:7000" in line and why in line
    found = NodeRefused(100.0, "tcp://10.0.0.5:7000", why, "a1b2c3", "api-1")
    assert "api-1" in _tap_view.node_line(found).plain
    # the other node events keep their fields, in the documented order
    assert list(_tap_view.node_json(NodeLeft(1.0, "a1", "api-1", LeaveReason.GONE))) == [
        "type", "event", "time", "node", "name", "reason"]
    # a refusal is no node of the stats table, and no filter hides it
    stats = TapStats()
    stats.add(event)
    assert stats.nodes(100.0) == [] and TapFilter(nodes=("api-*",))(event)
