"""RabbitMQ's "hello world", brokerless: the receiving half. Start hello_send.py too.

    python examples/hello_receive.py [ENDPOINT]   (default tcp://127.0.0.1:5555)

The receiver connects; if the sender is not up yet, ZeroMQ keeps retrying in the background.
"""

from __future__ import annotations

import sys

import peermq

ENDPOINT = sys.argv[1] if len(sys.argv) > 1 else "tcp://127.0.0.1:5555"

with peermq.Subscriber(connect=ENDPOINT, topics=["hello"]) as sub:
    print(f" [*] Waiting for messages from {ENDPOINT}")
    try:
        msg = sub.recv(timeout=30.0)
    except TimeoutError:
        sys.exit(" [!] Nothing received within 30 s: start hello_send.py")
    print(f" [x] Received {msg.data!r} on {msg.topic!r} (sender {msg.sender}, seq {msg.seq})")
