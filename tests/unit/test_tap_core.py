"""TapCore: mirror frames in, events out (messages, gaps, nodes) — no sockets."""

from __future__ import annotations

import pytest

from peermq import MirrorOptions, wire
from peermq._mirror import (
    BUNDLE,
    BYE,
    HELLO,
    UPDATE,
    MirrorStatus,
    SocketStatus,
    decode_status,
    encode_status,
)
from peermq.errors import ConfigError, WireError
from peermq.tap import LeaveReason, NodeJoined, NodeLeft, NodeStatus, TapCore, TapGap, TapMessage
from peermq.topics import TopicFilter


def encoder(node: str = "n1", stream: int = 1) -> wire.Encoder:
    return wire.Encoder(node, stream, max_size=1 << 20)


def status(state: int = HELLO, node: str = "n1", *socks: SocketStatus, interval: float = 1.0) -> bytes:
    sockets = socks or (SocketStatus(1, "pub", "orders", 10, 2, {"sub/1": 2}, 1, 0,
                                     ("tcp://127.0.0.1:5555",)),)
    return encode_status(MirrorStatus(state, node, "api-1", "host-a", 4242, 1.5, interval, sockets))


def test_status_frames_round_trip() -> None:
    frame = status(UPDATE)
    st = decode_status(frame)
    assert st.state == UPDATE and st.node == "n1" and st.name == "api-1" and st.pid == 4242
    assert st.sockets == (SocketStatus(1, "pub", "orders", 10, 2, {"sub/1": 2}, 1, 0,
                                       ("tcp://127.0.0.1:5555",)),)


@pytest.mark.parametrize("frame", [
    b"\xffT", b"\xffT\xc1", b"\xffT\x90", b"\xffX" + status()[2:],
    b"\xffT" + __import__("msgpack").packb([2, 0, "n", "a", "h", 1, 1.0, 1.0, []]),
    b"\xffT" + __import__("msgpack").packb([1, 9, "n", "a", "h", 1, 1.0, 1.0, []]),
    b"\xffT" + __import__("msgpack").packb([1, 0, "n", "a", "h", 1, 1.0, 1.0, [[1, "pub"]]]),
    b"\xffT" + __import__("msgpack").packb([1, 0, "n", "a", "h", 1, 1.0, 1.0,
                                             [[1, "pub", "", 1, 1, {"p": "x"}, 0, 0, []]]]),
])
def test_malformed_status_is_a_wire_error(frame: bytes) -> None:
    with pytest.raises(WireError):
        decode_status(frame)


def test_messages_carry_node_socket_and_sizes() -> None:
    core = TapCore()
    enc = encoder()
    assert [type(e) for e in core.accept(status(), 10.0)] == [NodeJoined, NodeStatus]
    frame = enc.encode("orders.created", {"id": 1}, {"region": "eu"}, 5.0)
    (msg,) = core.accept(frame, 11.0)
    assert msg == TapMessage(11.0, "orders.created", {"id": 1}, {"region": "eu"}, "n1", 1, 1,
                             5.0, len(frame), "api-1", "pub", "orders")


def test_a_message_before_any_status_has_no_name_yet() -> None:
    core = TapCore()
    (msg,) = core.accept(encoder("n2", 3).encode("t", b"x", None, 1.0), 2.0)
    assert isinstance(msg, TapMessage)
    assert (msg.node, msg.stream, msg.name, msg.kind, msg.headers) == ("n2", 3, "", "", {})


def test_batches_become_messages_with_consecutive_seqs() -> None:
    core = TapCore()
    enc = encoder()
    enc.encode("t", 0, None, 1.0)
    ((frame, count),) = enc.encode_batch("t", [10, 11, 12], {"h": "v"}, 2.0, 1 << 16)
    core.accept(enc.encode("u", 0, None, 1.0), 1.0)
    events = core.accept(frame, 3.0)
    assert count == 3
    assert [(e.seq, e.data) for e in events if isinstance(e, TapMessage)] == [
        (2, 10), (3, 11), (4, 12)]
    assert all(isinstance(e, TapMessage) and e.size == len(frame) // 3 for e in events)


def test_gaps_are_reported_per_sender_stream_and_topic() -> None:
    core = TapCore()
    a, b = encoder("a", 1), encoder("b", 1)
    frames = [a.encode("t", i, None, 1.0) for i in range(1, 11)]
    other = [b.encode("t", i, None, 1.0) for i in range(1, 4)]
    seen = []
    for i, f in enumerate(frames):
        if i in (3, 4, 8):  # seq 4, 5 and 9 never arrive
            continue
        seen += core.accept(f, float(i))
    for f in other:
        seen += core.accept(f, 20.0)
    gaps = [e for e in seen if isinstance(e, TapGap)]
    assert [(g.node, g.topic, g.first, g.lost) for g in gaps] == [("a", "t", 4, 2), ("a", "t", 9, 1)]
    assert [e.seq for e in seen if isinstance(e, TapMessage) and e.node == "b"] == [1, 2, 3]


def test_the_first_message_seen_is_not_a_gap_and_a_restart_is_not_either() -> None:
    core = TapCore()
    enc = encoder()
    frames = [enc.encode("t", i, None, 1.0) for i in range(1, 101)]
    events = core.accept(frames[49], 1.0) + core.accept(frames[50], 1.0)
    assert [e.seq for e in events if isinstance(e, TapMessage)] == [50, 51]
    events = core.accept(frames[0], 2.0)  # the sender started again
    assert not [e for e in events if isinstance(e, TapGap)]


def test_bye_and_silence_make_nodes_leave() -> None:
    core = TapCore(silence=3.0, min_silence=2.0)
    core.accept(status(HELLO, "n1"), 0.0)
    core.accept(status(HELLO, "n2", interval=0.5), 0.0)
    assert set(core.nodes) == {"n1", "n2"}
    (left,) = core.accept(status(BYE, "n1"), 1.0)
    assert left == NodeLeft(1.0, "n1", "api-1", LeaveReason.CLOSED)
    assert core.expire(1.9) == []
    (silent,) = core.expire(2.1)  # max(3 * 0.5, 2.0) seconds without a frame
    assert silent == NodeLeft(2.1, "n2", "api-1", LeaveReason.SILENT)
    assert core.nodes == {}
    core.accept(status(HELLO, "n3"), 5.0)
    (gone,) = core.leave("n3", 6.0)
    assert gone.reason is LeaveReason.GONE
    assert core.leave("n3", 6.0) == []


def test_malformed_frames_are_counted_not_raised() -> None:
    core = TapCore()
    for frame in (b"", b"no terminator", b"t\x00\x09junk", b"\xffTgarbage", b"\xff\xfe\x00"):
        assert core.accept(frame, 1.0) == []
    assert core.malformed == 4  # the unknown control frame is not for taps, not malformed
    assert core.frames == 5


def test_mirror_options_are_validated() -> None:
    MirrorOptions(bind=("ipc:///tmp/x", "tcp://127.0.0.1:*"))
    for bad in ({"bind": "tcp://127.0.0.1:*"}, {"bind": ()}, {"bind": ("udp://x",)},
                {"queue": 0}, {"status_interval": 0.0}, {"drain_interval": -1.0},
                {"linger": float("nan")}):
        with pytest.raises(ConfigError):
            MirrorOptions(**bad)  # type: ignore[arg-type]


def bundle(*frames: bytes) -> bytes:
    return BUNDLE + b"".join(len(f).to_bytes(4, "big") + f for f in frames)


def test_bundles_hold_several_copies_in_order() -> None:
    core = TapCore()
    a, b = encoder("a"), encoder("b")
    frames = [a.encode("t", 1, None, 1.0), b.encode("u", 2, None, 1.0), a.encode("t", 3, None, 1.0)]
    events = core.accept(bundle(*frames), 5.0)
    assert [(e.node, e.topic, e.seq, e.data, e.size) for e in events if isinstance(e, TapMessage)] == [
        ("a", "t", 1, 1, len(frames[0])), ("b", "u", 1, 2, len(frames[1])),
        ("a", "t", 2, 3, len(frames[2]))]
    assert core.malformed == 0


@pytest.mark.parametrize("frame", [
    BUNDLE + (99).to_bytes(4, "big") + b"short",
    BUNDLE + (0).to_bytes(4, "big"),
    BUNDLE + b"\x00\x00",
    bundle(b"\xffTnested control"),
])
def test_malformed_bundles_are_counted(frame: bytes) -> None:
    core = TapCore()
    assert core.accept(frame, 1.0) == []
    assert core.malformed == 1


def test_a_tap_keeps_only_its_topics_exactly() -> None:
    core = TapCore(topics=TopicFilter(["orders.*"]))
    enc = encoder()
    frames = [enc.encode(t, 0, None, 1.0) for t in ("orders.new", "orders.new.eu", "users.x")]
    events = core.accept(bundle(*frames), 1.0) + core.accept(frames[1], 1.0)
    assert [e.topic for e in events if isinstance(e, TapMessage)] == ["orders.new"]
