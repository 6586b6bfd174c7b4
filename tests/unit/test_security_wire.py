"""The envelope decoder against hostile input: limits, and fuzzing (no crash, no hang, bounded)."""

from __future__ import annotations

import functools
import time
import tracemalloc

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from peermq import SocketOptions, wire
from peermq.errors import EncodeError, WireError

HEAD = b"t.x\x00\x01"
LIMITS = wire.Limits(max_topic=16, max_headers=4, max_header_chars=40, max_depth=8)


def frame(data: object = 1, headers: object = None, kind: int = 0, topic: bytes = b"t.x") -> bytes:
    return topic + b"\x00\x01" + msgpack.packb([kind, "n", 1, 1, 0.0, headers, data])


def nested(depth: int) -> object:
    value: object = 0
    for _ in range(depth):
        value = [value]
    return value


def decodes(f: bytes, limits: wire.Limits = LIMITS) -> bool:
    try:
        wire.decode_data(f, limits)
    except WireError:
        return False
    return True


# -- the limits, one by one, at and just past each bound

def test_topic_length_limit() -> None:
    assert decodes(frame(topic=b"a" * 16))
    assert not decodes(frame(topic=b"a" * 17))


def test_header_count_limit() -> None:
    assert decodes(frame(headers={str(i): "v" for i in range(4)}))
    assert not decodes(frame(headers={str(i): "v" for i in range(5)}))


def test_header_size_limit() -> None:
    assert decodes(frame(headers={"k": "v" * 39}))
    assert not decodes(frame(headers={"k": "v" * 40}))


@pytest.mark.parametrize("headers", [{"k": 1}, {"k": ["v"]}, {b"k": "v"}, ["k", "v"], "kv"])
def test_header_types(headers: object) -> None:
    assert not decodes(frame(headers=headers))


@pytest.mark.parametrize("shape", ["list", "map"])
def test_depth_limit(shape: str) -> None:
    def deep(n: int) -> object:
        value: object = 0
        for _ in range(n):
            value = [value] if shape == "list" else {"k": value}
        return value

    assert decodes(frame(deep(8)))
    assert not decodes(frame(deep(9)))
    # padding does not hide depth; width alone is not depth
    assert not decodes(frame([list(range(50)), deep(9)]))
    assert decodes(frame([[i] for i in range(200)]))


def test_depth_limit_applies_to_each_message_of_a_batch() -> None:
    assert decodes(frame([nested(8), 1], kind=1))
    assert not decodes(frame([nested(9), 1], kind=1))


def test_default_limits_match_socket_options() -> None:
    o = SocketOptions()
    mine = wire.Limits(o.max_topic_length, o.max_headers, o.max_header_chars, o.max_depth)
    assert mine == wire.DEFAULT_LIMITS


def test_encoder_refuses_what_receivers_would_drop() -> None:
    enc = wire.Encoder("n", 1, max_size=1 << 20, limits=LIMITS)
    enc.encode("t", nested(8), {"a": "b"}, 0.0)
    with pytest.raises(EncodeError, match="deeper"):
        enc.encode("t", nested(9), None, 0.0)
    with pytest.raises(EncodeError, match="headers"):
        enc.encode("t", 1, {str(i): "v" for i in range(5)}, 0.0)
    with pytest.raises(EncodeError, match="characters"):
        enc.encode("t", 1, {"k": "v" * 40}, 0.0)
    with pytest.raises(EncodeError, match="deeper"):
        enc.encode_batch("t", [1, nested(9)], None, 0.0, 1 << 16)
    assert enc.last_seq("t") == 1  # nothing refused took a sequence number


# -- msgpack's own bounds, which the decoder relies on (verified, not assumed)

@pytest.mark.parametrize("header", [
    b"\xdd\xff\xff\xff\xff",  # array32 of 4 billion
    b"\xdf\xff\xff\xff\xff",  # map32 of 4 billion
    b"\xdb\xff\xff\xff\xff",  # str32 of 4 GiB
    b"\xc6\xff\xff\xff\xff",  # bin32 of 4 GiB
    b"\xc9\xff\xff\xff\xff\x01",  # ext32 of 4 GiB
])
def test_huge_declared_lengths_allocate_nothing(header: bytes) -> None:
    payloads = [
        header,  # as the envelope itself
        b"\x97\x00\xa1n\x01\x01\x00\xc0" + header,  # as the data of a valid envelope
    ]
    tracemalloc.start()
    try:
        start = time.perf_counter()
        for body in payloads:
            for _ in range(100):
                assert not decodes(HEAD + body)
        elapsed = time.perf_counter() - start
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20, f"peak {peak} bytes for a few-byte frame"
    assert elapsed < 2.0


def test_msgpack_caps_nesting_below_any_recursion() -> None:
    # msgpack refuses more than 1024 levels by itself (a StackError): with our limit lifted,
    # 1023 levels of data (1024 with the envelope) decode, one more does not, nor 100,000
    lifted = wire.Limits(max_depth=10**6)
    for depth, ok in ((1023, True), (1024, False), (100_000, False)):
        f = HEAD + b"\x97\x00\xa1n\x01\x01\x00\xc0" + b"\x91" * depth + b"\x00"
        start = time.perf_counter()
        assert decodes(f, lifted) is ok
        assert not decodes(f, wire.DEFAULT_LIMITS)  # ours is far lower
        assert time.perf_counter() - start < 1.0


def test_many_small_containers_are_bounded_work() -> None:
    # a frame full of empty arrays: the walk is linear and the limit is not broken by width
    f = frame([[] for _ in range(200_000)])
    start = time.perf_counter()
    assert decodes(f, wire.DEFAULT_LIMITS)
    assert time.perf_counter() - start < 2.0


# -- fuzzing: whatever the bytes, a WireError or a well-formed result, quickly

def check_any(f: bytes) -> None:
    try:
        raw, env = wire.decode_data(f, LIMITS)
    except WireError:
        return
    assert raw and len(raw) <= LIMITS.max_topic and len(env) == 7


@settings(max_examples=500, deadline=1000, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=512))
def test_fuzz_random_bytes(data: bytes) -> None:
    check_any(data)
    check_any(HEAD + data)


VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats() | st.text(max_size=10) | st.binary(max_size=10),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner,
                                                                max_size=4),
    max_leaves=30,
)


@settings(max_examples=300, deadline=1000)
@given(VALUES, st.integers(min_value=0, max_value=2000), st.data())
def test_fuzz_truncated_and_mutated_envelopes(value: object, cut: int, data: st.DataObject
                                              ) -> None:
    good = frame(value, {"k": "v"})
    check_any(good[:cut])
    if len(good) > 6:
        i = data.draw(st.integers(min_value=0, max_value=len(good) - 1))
        b = data.draw(st.integers(min_value=0, max_value=255))
        check_any(good[:i] + bytes([b]) + good[i + 1:])


@settings(max_examples=200, deadline=1000)
@given(st.lists(st.sampled_from([b"\x91", b"\x81\xa1k", b"\xdc\x00\x01", b"\xde\x00\x01\xa1k"]),
                min_size=1, max_size=3000))
def test_fuzz_deep_nesting(openers: list[bytes]) -> None:
    body = b"\x97\x00\xa1n\x01\x01\x00\xc0" + b"".join(openers) + b"\x00"
    depth = len(openers)
    ok = decodes(HEAD + body)
    assert ok == (depth <= LIMITS.max_depth)


# -- the atheris target shipped in fuzz/ (run here on its seeds, and under hypothesis)

@functools.cache
def _fuzz_target() -> object:
    import importlib.util  # noqa: PLC0415
    from pathlib import Path  # noqa: PLC0415

    path = Path(__file__).resolve().parents[2] / "fuzz" / "decode_data.py"
    spec = importlib.util.spec_from_file_location("peermq_fuzz_decode_data", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_fuzz_target_runs_on_its_seed_corpus() -> None:
    from pathlib import Path  # noqa: PLC0415

    target = _fuzz_target()
    seeds = sorted((Path(__file__).resolve().parents[2] / "fuzz" / "corpus").iterdir())
    assert len(seeds) >= 5
    for seed in seeds:
        data = seed.read_bytes()
        target.check(data)  # type: ignore[attr-defined]
        for cut in range(len(data)):
            target.check(data[:cut])  # type: ignore[attr-defined]


@settings(max_examples=200, deadline=1000)
@given(st.binary(max_size=256))
def test_fuzz_target_under_hypothesis(data: bytes) -> None:
    _fuzz_target().check(HEAD + data)  # type: ignore[attr-defined]
