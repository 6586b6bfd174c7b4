"""A durable subscriber misses nothing: while it is away the publisher keeps publishing to its
log; when it comes back under the same name it gets what it missed, then the live stream."""

from __future__ import annotations

import tempfile

import peermq

with tempfile.TemporaryDirectory() as tmp:
    endpoint = f"ipc://{tmp}/prices"
    with peermq.Publisher(bind=endpoint, spool=f"{tmp}/log") as pub:
        with peermq.Subscriber(connect=endpoint, topics="prices.>", durable="ledger") as sub:
            sub.wait_for_publishers(1, timeout=10.0)
            pub.send("prices.eur", 1.08)
            print(f"ledger got {sub.recv(timeout=10.0).data}")

        # the ledger is down (restarting, say) while prices keep coming
        for price in (1.09, 1.07, 1.10):
            pub.send("prices.eur", price)
        print("ledger away: 3 prices published")

        with peermq.Subscriber(connect=endpoint, topics="prices.>", durable="ledger") as sub:
            missed = [sub.recv(timeout=10.0).data for _ in range(3)]
            print(f"ledger back, missed nothing: {missed}")
            pub.send("prices.eur", 1.11)
            print(f"then live: {sub.recv(timeout=10.0).data}")

        # a newcomer can ask for history instead: here the last price of each topic
        with peermq.Subscriber(connect=endpoint, history=peermq.History(last=1)) as late:
            msg = late.recv(timeout=10.0)
            print(f"newcomer starts with the last price: {msg.topic} {msg.data}")
    if missed != [1.09, 1.07, 1.10]:
        raise SystemExit("the durable subscriber lost messages")
