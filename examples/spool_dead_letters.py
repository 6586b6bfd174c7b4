"""A message no worker can handle is delivered at most ``max_deliver`` times, then moved to the
dead letters, where it waits for a human ('peermq spool dlq DIR', 'peermq spool requeue')."""

from __future__ import annotations

import contextlib
import tempfile

import peermq
from peermq.spool import views

opts = peermq.SpoolOptions(max_deliver=3, backoff=0.01, backoff_max=0.05)

with tempfile.TemporaryDirectory() as tmp:
    with peermq.Pusher(bind="tcp://127.0.0.1:*", spool=tmp, spool_options=opts) as push, \
            peermq.Puller(connect=push.endpoints[0], ack=peermq.AckMode.AUTO) as worker:
        push.send("orders", {"id": 1, "qty": 2})
        push.send("orders", {"id": 2, "qty": "two"})  # poison: the handler always fails
        push.send("orders", {"id": 3, "qty": 1})

        handled: list[object] = []

        def handle(msg: peermq.Message) -> None:
            assert isinstance(msg, peermq.Delivery) and isinstance(msg.data, dict)
            print(f"  order {msg.data['id']}, delivery {msg.deliveries}")
            int(msg.data["qty"])  # raises for the poison one: consume() nacks it
            handled.append(msg.data["id"])

        while push.pending():
            # a real worker logs the error; the message comes back after a backoff
            with contextlib.suppress(ValueError):
                worker.consume(handle, timeout=0.5)
        print(f"handled {handled}, dead letters {push.spool_stats().dead}")
        if handled != [1, 3]:
            raise SystemExit("a good order was not handled once")
    for dead in views.dead_letters(tmp):
        assert dead.message is not None
        print(f"dead: seq {dead.seq} {dead.message.data} after {dead.deliveries} deliveries "
              f"({dead.reason})")
