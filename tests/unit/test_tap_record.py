"""MCAP recordings: write, read back exactly, summarise; files cut short or not MCAP at all."""

from __future__ import annotations

from pathlib import Path

import pytest
from mcap.reader import make_reader

from peermq.tap import Recorder, RecordingError, TapMessage, read_messages, summarize
from peermq.tap.record import ENCODING

PAYLOADS: list[object] = [
    b"\x00\xff\xfe binary",
    "text \n with a newline",
    {"id": 7, "nested": {"bytes": b"\x01", "list": [1.5, None, True]}},
    [1, 2, 3],
    None,
    float("inf"),
    2**63 - 1,
]


def messages(n: int, topic: str = "orders.created", node: str = "n1", start: int = 1,
             skip: tuple[int, ...] = ()) -> list[TapMessage]:
    return [
        TapMessage(1000.0 + i / 100, topic, PAYLOADS[i % len(PAYLOADS)],
                   {"region": "eu"} if i % 2 else {}, node, 3, start + i, 999.0 + i / 100,
                   40 + i, "api-1", "push" if i % 3 else "pub", "orders")
        for i in range(n) if start + i not in skip
    ]


def record(path: Path, msgs: list[TapMessage], **kw: object) -> None:
    with Recorder(path, **kw) as rec:  # type: ignore[arg-type]
        for m in msgs:
            rec.write(m)
        assert rec.count == len(msgs)


def same(a: TapMessage, b: TapMessage) -> bool:
    """Equal but for ``size`` (a recording's size is its record's) and float rounding of times."""
    return (a.topic, a.data, dict(a.headers), a.node, a.name, a.kind, a.stream, a.seq,
            a.service) == (b.topic, b.data, dict(b.headers), b.node, b.name, b.kind, b.stream,
                           b.seq, b.service) and abs(a.received - b.received) < 1e-6 \
        and abs(a.sent - b.sent) < 1e-6


def test_messages_round_trip_exactly(tmp_path: Path) -> None:
    path = tmp_path / "rec.mcap"
    sent = messages(30) + messages(5, topic="users.new", node="n2")
    record(path, sent, metadata={"topics": ">"})
    back = list(read_messages(path))
    assert len(back) == len(sent)
    assert all(same(a, b) for a, b in zip(sent, back, strict=True))
    assert [m.topic for m in read_messages(path, ["users.*"])] == ["users.new"] * 5


def test_it_is_a_standard_mcap_file(tmp_path: Path) -> None:
    path = tmp_path / "rec.mcap"
    record(path, messages(10))
    with path.open("rb") as f:
        reader = make_reader(f)
        summary = reader.get_summary()
        assert summary is not None and summary.statistics is not None
        assert summary.statistics.message_count == 10
        (channel,) = summary.channels.values()
        assert (channel.topic, channel.message_encoding, channel.schema_id) == (
            "orders.created", ENCODING, 0)
        seqs = [m.sequence for _, _, m in reader.iter_messages()]
    assert seqs == list(range(1, 11))


def test_summary_counts_topics_senders_and_gaps(tmp_path: Path) -> None:
    path = tmp_path / "rec.mcap"
    record(path, messages(20, skip=(5, 6, 7, 15)) + messages(3, topic="x", node="n2"),
           metadata={"topics": "orders.> x"})
    info = summarize(path)
    assert info.complete and info.messages == 19 and info.undecodable == 0
    assert info.library.startswith("peermq ") and info.compression == "zstd" and info.chunks >= 1
    assert info.metadata["peermq.recording"]["topics"] == "orders.> x"
    orders = info.channels["orders.created"]
    assert (orders.messages, orders.gaps, orders.senders) == (16, 4, {("n1", 3)})
    assert info.channels["x"].messages == 3
    assert info.start == pytest.approx(1000.0) and info.duration == pytest.approx(0.19)


def test_a_recording_cut_short_is_read_up_to_its_last_whole_chunk(tmp_path: Path) -> None:
    path = tmp_path / "rec.mcap"
    record(path, messages(3000), chunk_size=4096)
    whole = path.read_bytes()
    cut = tmp_path / "cut.mcap"
    cut.write_bytes(whole[: len(whole) // 2])
    back = list(read_messages(cut))
    assert 0 < len(back) < 3000
    assert [m.seq for m in back] == list(range(1, len(back) + 1))
    info = summarize(cut)
    assert not info.complete and info.messages == len(back)


def test_not_a_recording(tmp_path: Path) -> None:
    bad = tmp_path / "bad.mcap"
    bad.write_bytes(b"certainly not an MCAP file")
    with pytest.raises(RecordingError, match="not an MCAP file"):
        summarize(bad)
    with pytest.raises(RecordingError, match="not an MCAP file"):
        list(read_messages(bad))
    with pytest.raises(RecordingError, match="cannot read"):
        summarize(tmp_path / "missing.mcap")
    with pytest.raises(RecordingError, match="cannot write"):
        Recorder(tmp_path / "no" / "such" / "dir.mcap")


def test_write_after_close_is_an_error(tmp_path: Path) -> None:
    rec = Recorder(tmp_path / "r.mcap")
    rec.close()
    rec.close()
    with pytest.raises(RecordingError, match="closed"):
        rec.write(messages(1)[0])
