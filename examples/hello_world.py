"""Both halves of "hello world" in one process: a publisher and a subscriber on loopback."""

from __future__ import annotations

import peermq

# Port 0 ("*"): the OS picks a free port; endpoints[0] tells which.
with (
    peermq.Publisher(bind="tcp://127.0.0.1:*") as pub,
    peermq.Subscriber(connect=pub.endpoints[0], topics=["hello"]) as sub,
):
    # Without this, a message sent before the subscription reaches the publisher is
    # silently lost (ZeroMQ's slow-joiner problem).
    pub.wait_for_subscribers(1, timeout=5.0)
    pub.send("hello", "Hello World!")
    print(" [x] Sent 'Hello World!'")
    msg = sub.recv(timeout=5.0)
    print(f" [x] Received {msg.data!r} on {msg.topic!r} (seq {msg.seq})")
