"""Fan-out with topic patterns (``*`` one segment, ``>`` the rest) and header filters."""

from __future__ import annotations

import peermq
from peermq import HeaderMatch

EVENTS = [
    ("orders.created", 1, {"region": "eu", "tier": "gold"}),
    ("orders.created", 2, {"region": "us", "tier": "gold"}),
    ("orders.paid", 3, {"region": "eu", "tier": "basic"}),
    ("orders.paid.refund", 4, {"region": "us", "tier": "basic"}),
    ("users.signup", 5, {"region": "eu"}),
]

with peermq.Publisher(bind="tcp://127.0.0.1:*") as pub:
    ep = pub.endpoints[0]
    subs = {  # topics defaults to [">"]: every topic
        "orders.*": peermq.Subscriber(connect=ep, topics=["orders.*"]),
        "orders.>": peermq.Subscriber(connect=ep, topics=["orders.>"]),
        "*.created | users.>": peermq.Subscriber(connect=ep, topics=["*.created", "users.>"]),
        "region=eu": peermq.Subscriber(connect=ep, headers={"region": "eu"}),
        "region=eu AND tier=gold": peermq.Subscriber(
            connect=ep, headers={"region": "eu", "tier": "gold"}, match=HeaderMatch.ALL
        ),
        "region=us OR tier=gold": peermq.Subscriber(
            connect=ep, headers={"region": "us", "tier": "gold"}, match=HeaderMatch.ANY
        ),
    }
    try:
        pub.wait_for_subscribers(len(subs), timeout=5.0)
        for topic, data, headers in EVENTS:
            pub.send(topic, data, headers=headers)
        # The publisher drops what matches no subscription prefix before it is sent; the
        # subscriber drops the rest that its patterns or header filter reject ("filtered").
        # Nothing says "that was all", so each subscriber reads until the line is quiet.
        for label, sub in subs.items():
            got = []
            while True:
                try:
                    got.append(sub.recv(timeout=0.3))
                except TimeoutError:
                    break
            ids = " ".join(f"{m.topic}#{m.data}" for m in got)
            print(f"{label:<24} got {ids}  (filtered here: {sub.stats().filtered})")
    finally:
        for sub in subs.values():
            sub.close()
