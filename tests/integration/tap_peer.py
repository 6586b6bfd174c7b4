"""A sending peer for the tap tests, run as its own process.

    python tap_peer.py pub|push TOPIC COUNT [--payloads] [--forever] [--service NAME]

Prints ``ready MIRROR_ENDPOINT DATA_ENDPOINT``; on a ``go`` line from stdin it waits for its
first subscriber (pub) or puller (push), sends COUNT messages on TOPIC and prints ``sent N``.
With --forever it sends one message every 5 ms from the start instead, until stdin has a line
or closes (at most 60 s), then prints ``sent N``. It exits when stdin closes. With --service the socket uses discovery (and so its node
announces its mirror).
"""

from __future__ import annotations

import selectors
import sys
import time

import peermq

PAYLOADS: list[object] = [
    b"\x00\xff\xfe\x80 not utf-8",
    b"",
    "text with a newline\n and \x00 a NUL",
    {"id": 1, "bytes": b"\xff", "nested": [1.5, None, True, {"k": [b"\x01"]}]},
    {"nan": float("nan"), "inf": float("-inf")},
    [b"a", "b", 3],
    2**64 - 1,
    -(2**63),
    "x" * 3000,
]


def payload(i: int, fancy: bool) -> object:
    return PAYLOADS[i % len(PAYLOADS)] if fancy else {"i": i, "price": i * 10}


def forever(sock: peermq.Publisher | peermq.Pusher, topic: str) -> int:
    sel = selectors.DefaultSelector()
    sel.register(sys.stdin, selectors.EVENT_READ)
    end = time.monotonic() + 60.0
    sent = 0
    while time.monotonic() < end and not sel.select(0.005):
        sock.send(topic, {"i": sent})
        sent += 1
    sel.close()
    return sent


def main() -> None:
    kind, topic, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    fancy = "--payloads" in sys.argv
    cls = peermq.Publisher if kind == "pub" else peermq.Pusher
    service = sys.argv[sys.argv.index("--service") + 1] if "--service" in sys.argv else None
    with cls(bind="tcp://127.0.0.1:*", service=service) as sock:
        mirror = sock.node.mirror
        assert mirror is not None
        print("ready", mirror.endpoints[0], sock.endpoints[0], flush=True)
        if "--forever" in sys.argv:
            print("sent", forever(sock, topic), flush=True)
        for line in sys.stdin:
            if line.strip() != "go":
                continue
            if isinstance(sock, peermq.Publisher):
                sock.wait_for_subscribers(1, timeout=20.0)
            else:
                sock.wait_for_peers(1, timeout=20.0)
            for i in range(count):
                sock.send(topic, payload(i, fancy),
                          headers={"region": "eu" if i % 2 else "us", "i": str(i)})
            print("sent", count, flush=True)


if __name__ == "__main__":
    main()
