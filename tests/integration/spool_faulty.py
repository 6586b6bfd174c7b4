"""A spooled sender for the disk-fault tests; prints one JSON line of what it saw.

    python spool_faulty.py fill  DIR FSYNC   send until the disk refuses; report the error
    python spool_faulty.py flush DIR         send+flush until a flush fails; report them
    python spool_faulty.py check DIR         open the spool; report recovery and its records
    python spool_faulty.py open  DIR         just open it; report the error if any

Run under the faults the tests set up: a tiny tmpfs, a read-only mount, strace fault
injection, a file-size limit.
"""

from __future__ import annotations

import json
import sys

import peermq
from peermq.config import SpoolOptions
from peermq.spool import Spool
from peermq.spool import _records as rec


def payload(i: int) -> bytes:
    return (b"%08d" % i) * 100


def fill(directory: str, fsync: str) -> dict[str, object]:
    opts = SpoolOptions(fsync=fsync, segment_bytes=64 * 1024, full_timeout=0.0)  # type: ignore[arg-type]
    stored = 0
    with peermq.Pusher(spool=directory, spool_options=opts) as push:
        try:
            while stored < 100_000:
                push.send("t", payload(stored))
                stored += 1
            return {"stored": stored, "error": None}
        except peermq.SpoolError as exc:
            err = {"type": type(exc).__name__, "text": str(exc)}
        try:  # and again: still a clear error, nothing stored
            push.send("t", payload(stored))
            again = None
        except peermq.SpoolError as exc:
            again = type(exc).__name__
        return {"stored": stored, "error": err, "again": again, "last_seq": push.last_seq}


def flush(directory: str) -> dict[str, object]:
    durable = 0
    with peermq.Pusher(spool=directory) as push:
        for i in range(10_000):
            try:
                push.send("t", payload(i))
                durable = push.flush()
            except peermq.SpoolError as exc:
                try:
                    push.send("t", b"after")
                    after = None
                except peermq.SpoolError as exc2:
                    after = type(exc2).__name__
                return {"durable": durable, "sent": i, "error": str(exc), "after": after}
    return {"durable": durable, "error": None}


def check(directory: str) -> dict[str, object]:
    with Spool(directory) as sp:
        seqs: list[int] = []
        intact = True
        seq = 1
        while True:
            data, found = sp.log.read(seq, 1 << 62, 1 << 20)
            if not found:
                break
            for s, off in found:
                body = data[off + rec.HEADER : off + rec.record_length(data, off)]
                intact &= body.endswith(payload(s - 1))
                seqs.append(s)
            seq = found[-1][0] + 1
        return {"seqs": seqs, "intact": intact,
                "damage": [[d.kind, d.length] for d in sp.recovery.damage]}


def open_only(directory: str) -> dict[str, object]:
    try:
        with peermq.Pusher(spool=directory):
            return {"error": None}
    except peermq.SpoolError as exc:
        return {"error": str(exc), "type": type(exc).__name__}


def main() -> None:
    role, directory, *rest = sys.argv[1:]
    if role == "fill":
        out = fill(directory, rest[0])
    elif role == "flush":
        out = flush(directory)
    elif role == "check":
        out = check(directory)
    else:
        out = open_only(directory)
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
