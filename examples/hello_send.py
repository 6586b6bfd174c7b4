"""RabbitMQ's "hello world", brokerless: the sending half. Start hello_receive.py too.

    python examples/hello_send.py [ENDPOINT]      (default tcp://127.0.0.1:5555)

The sender binds, so its address is the one both sides know. Start the two in either order:
the sender waits until a receiver has subscribed, so the message cannot be lost to a slow joiner.
"""

from __future__ import annotations

import sys

import peermq

ENDPOINT = sys.argv[1] if len(sys.argv) > 1 else "tcp://127.0.0.1:5555"

with peermq.Publisher(bind=ENDPOINT) as pub:
    print(f" [*] Bound to {pub.endpoints[0]}; waiting for a receiver")
    try:
        pub.wait_for_subscribers(1, timeout=30.0)
    except TimeoutError:
        sys.exit(" [!] No receiver subscribed within 30 s: start hello_receive.py")
    pub.send("hello", "Hello World!")
    print(" [x] Sent 'Hello World!'")
# Leaving the block closes the socket; linger (1 s by default) lets the message leave first.
