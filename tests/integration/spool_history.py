"""The checker of the crash tests: what the histories of senders and receivers must satisfy.

- every message whose ``send`` returned was handled at least once (written before ``send``
  returns, so a SIGKILL of the sender cannot take it back);
- every message reported durable was handled at least once;
- nothing was handled that was never sent (an ``attempt`` at least), and every payload arrived
  intact (its digest);
- a message reached the handler more than once only if an earlier handling was by a receiver
  incarnation that was killed (the one window no puller can close: handled, not yet recorded);
- optionally, per sender, first deliveries came in spool order.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Outcome:
    attempted: dict[str, str] = field(default_factory=dict)
    sent: set[str] = field(default_factory=set)
    durable: set[str] = field(default_factory=set)
    handled: dict[str, list[dict[str, object]]] = field(default_factory=lambda: defaultdict(list))
    dropped: int = 0
    """Redelivered copies that receivers dropped as duplicates (clean exits only)."""

    @property
    def duplicates(self) -> int:
        return sum(len(v) - 1 for v in self.handled.values())


def load(*paths: Path) -> list[dict[str, object]]:
    events: list[dict[str, object]] = []
    for path in paths:
        if path.exists():
            for line in path.read_text().splitlines():
                events.append(json.loads(line))
    return events


def outcome(events: list[dict[str, object]]) -> Outcome:
    out = Outcome()
    seq_of: dict[tuple[str, int], str] = {}
    for e in events:
        ev = e["ev"]
        if ev == "attempt":
            out.attempted[str(e["id"])] = str(e["h"])
        elif ev == "sent":
            msg_id = str(e["id"])
            out.sent.add(msg_id)
            run = msg_id.split(":", maxsplit=1)[0]
            seq_of[(run, int(e["seq"]))] = msg_id  # type: ignore[call-overload]
        elif ev == "durable":
            run, upto = str(e["run"]), int(e["upto"])  # type: ignore[call-overload]
            out.durable.update(m for (r, s), m in seq_of.items() if r == run and s <= upto)
        elif ev == "handled":
            out.handled[str(e["id"])].append(e)
        elif ev == "stats":
            out.dropped += int(e["duplicates"])  # type: ignore[call-overload]
    return out


def check(events: list[dict[str, object]], *, killed: set[str] = frozenset(),  # type: ignore[assignment]
          ordered: bool = False) -> Outcome:
    out = outcome(events)
    missing = sorted(out.sent - set(out.handled))
    assert not missing, f"{len(missing)} sent messages never handled, e.g. {missing[:5]}"
    assert out.durable <= set(out.handled)
    for msg_id, handlings in out.handled.items():
        assert msg_id in out.attempted, f"{msg_id} was handled but never sent"
        for h in handlings:
            assert h["h"] == out.attempted[msg_id], f"{msg_id} arrived damaged"
        for h in handlings[:-1]:
            assert h["inc"] in killed, (
                f"{msg_id} handled {len(handlings)} times, first by {h['inc']}, which was not "
                "killed: a duplicate the dedup window should have dropped"
            )
    if ordered:
        last: dict[tuple[object, object], int] = {}
        for e in events:
            if e["ev"] == "handled" and e["n"] == 1:
                key = (e["inc"], e["spool"])
                seq = int(e["seq"])  # type: ignore[call-overload]
                assert seq > last.get(key, 0), f"out of order: {seq} after {last[key]}"
                last[key] = seq
    return out


def summary(out: Outcome) -> str:
    again = sum(1 for hs in out.handled.values() for h in hs if int(h["n"]) > 1)  # type: ignore[call-overload]
    return (f"sent={len(out.sent)} attempted={len(out.attempted)} handled={len(out.handled)} "
            f"redelivered={again} duplicates={out.duplicates} dropped={out.dropped}")
