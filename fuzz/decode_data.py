"""An atheris (libFuzzer) target for the envelope decoder, ``peermq.wire.decode_data``.

    pip install atheris
    python fuzz/decode_data.py fuzz/corpus -max_total_time=300 -rss_limit_mb=512

Any input must give a WireError or a well-formed envelope, within limits, quickly: a crash,
another exception, a hang (-timeout) or a memory blow-up (-rss_limit_mb) is a finding.
atheris is optional: the test suite runs ``check`` on the seed corpus and fuzzes the decoder
with hypothesis (tests/unit/test_security_wire.py); this target is for longer hunts.
"""

from __future__ import annotations

import os
import sys

if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from peermq import wire
from peermq.errors import WireError

LIMITS = wire.Limits(max_topic=64, max_headers=8, max_header_chars=256, max_depth=16)


def check(data: bytes) -> None:
    """One input: a WireError, or an envelope that keeps every promise decode_data makes."""
    try:
        topic, env = wire.decode_data(data, LIMITS)
    except WireError:
        return
    assert 0 < len(topic) <= LIMITS.max_topic
    kind, node, stream, seq, ts, headers, payload = env
    assert kind in (wire.SINGLE, wire.BATCH)
    assert type(node) is str and type(stream) is int and type(seq) is int and seq >= 1
    assert type(ts) in (int, float)
    if headers is not None:
        assert type(headers) is dict and len(headers) <= LIMITS.max_headers
        assert all(type(k) is str and type(v) is str for k, v in headers.items())
    if kind == wire.BATCH:
        assert type(payload) is list


def main() -> None:
    import atheris  # type: ignore[import-untyped, import-not-found, unused-ignore]  # noqa: PLC0415

    atheris.instrument_all()
    atheris.Setup(sys.argv, check)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
