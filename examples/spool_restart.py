"""A spool keeps messages across a restart: the sender stores them while no worker is there,
closes, and a later sender on the same directory delivers them (at least once, acked)."""

from __future__ import annotations

import tempfile

import peermq

with tempfile.TemporaryDirectory() as tmp:
    spool = f"{tmp}/outbox"
    with peermq.Pusher(spool=spool) as push:  # nobody to deliver to yet
        for n in range(5):
            push.send("invoices", {"invoice": n})
        print(f"stored {push.pending()} messages, durable up to seq {push.flush()}")

    # later (another run of the program): the same spool, and now a worker
    with peermq.Pusher(bind="tcp://127.0.0.1:*", spool=spool) as push, \
            peermq.Puller(connect=push.endpoints[0], ack=peermq.AckMode.AUTO) as worker:
        got: list[object] = []
        worker.consume(lambda msg: got.append(msg.data), count=5, timeout=10.0)
        worker.flush_acks()
        push.wait_for_acks(timeout=10.0)
        print(f"worker got {got}")
        print(f"unacknowledged now: {push.pending()}")
    if got != [{"invoice": n} for n in range(5)]:
        raise SystemExit("messages were lost or reordered")
