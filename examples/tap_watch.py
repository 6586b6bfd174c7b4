"""Watch a node's traffic with a tap, PUSH/PULL included, while the puller still gets it all.

    python examples/tap_watch.py

Every node has a mirror (docs/tap.md); a Tap connected to it sees each message sent, with its
sequence number, and nodes joining. `peermq tap -c ENDPOINT` is the same from the shell.
"""

from __future__ import annotations

import peermq
from peermq.tap import NodeJoined, Tap, TapGap, TapMessage

with peermq.Node(name="shop") as node, \
        peermq.Publisher(node=node, bind="tcp://127.0.0.1:*") as pub, \
        peermq.Pusher(node=node, bind="tcp://127.0.0.1:*") as push, \
        peermq.Subscriber(connect=pub.endpoints[0]) as sub, \
        peermq.Puller(connect=push.endpoints[0]) as worker:
    assert node.mirror is not None
    print(f"mirror of {node.name} listens on {node.mirror.endpoints[0]}")
    with Tap(connect=node.mirror.endpoints, topics=["orders.>", "jobs.>"]) as tap:
        seen: list[TapMessage] = []
        for event in tap:  # the node greets the tap first: from then on, it sees everything
            if isinstance(event, NodeJoined):
                print(f"++ {event.name} joined: {[f'{s.kind}/{s.stream}' for s in event.sockets]}")
                pub.wait_for_subscribers(1)
                push.wait_for_peers(1)
                for i in range(3):
                    pub.send("orders.created", {"id": i}, headers={"region": "eu"})
                    push.send("jobs.resize", f"image-{i}.png".encode())
            elif isinstance(event, TapMessage):
                seen.append(event)
                print(f"   {event.kind}/{event.stream} {event.topic} #{event.seq} {event.data!r}")
                if len(seen) == 6:
                    tap.stop()
            elif isinstance(event, TapGap):
                print(f"!! lost {event.lost} of {event.topic}")
    jobs = [worker.recv(timeout=5.0).data for _ in range(3)]
    orders = [sub.recv(timeout=5.0).data for _ in range(3)]
    print(f"the worker still got {len(jobs)} jobs and the subscriber {len(orders)} orders")
