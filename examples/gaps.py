"""A slow subscriber loses messages, and both ends know how many.

A publisher never waits for a slow subscriber (``OnFull.DROP``, the default): its queue to
that subscriber overflows and ZeroMQ drops the excess. Every message carries a sequence number
per (sender, socket, topic), so the subscriber sees the hole, calls ``on_gap`` and reports the
loss upstream; the publisher counts it in ``stats().dropped``.
"""

from __future__ import annotations

import time

import peermq
from peermq import Gap, SocketOptions

# inproc:// has no kernel buffers, so the high-water marks alone (100 + 100) bound the queue.
SMALL = SocketOptions(send_hwm=100, recv_hwm=100)


def on_gap(gap: Gap) -> None:
    print(
        f"on_gap: {gap.lost} messages lost on {gap.topic!r}, seq {gap.first}.."
        f"{gap.first + gap.lost - 1}"
    )


with (
    peermq.Publisher(bind="inproc://gaps", options=SMALL) as pub,
    peermq.Subscriber(connect="inproc://gaps", on_gap=on_gap, options=SMALL) as sub,
):
    pub.wait_for_subscribers(1, timeout=5.0)
    for i in range(1, 1001):  # a burst while the subscriber is busy elsewhere
        pub.send("prices", i)
    received = []
    while True:
        try:
            received.append(sub.recv(timeout=0.2).data)
        except TimeoutError:
            break
    print(f"subscriber read {len(received)} of 1000 (the tail of the burst was dropped)")
    # A loss shows when the next message arrives: its sequence number jumps.
    pub.send("prices", 1001)
    last = sub.recv(timeout=5.0)
    print(f"next message: {last.data} with seq {last.seq}")
    print(f"subscriber stats: received={sub.stats().received} gaps={sub.stats().gaps}")
    # The gap report travels upstream; wait (bounded) until the publisher has read it.
    end = time.monotonic() + 5.0
    while pub.stats().dropped < sub.stats().gaps and time.monotonic() < end:
        time.sleep(0.01)
    stats = pub.stats()
    # sent counts what was handed to ZeroMQ, dropped what never reached a subscriber.
    print(
        f"publisher stats: sent={stats.sent} dropped={stats.dropped} "
        f"by subscriber={stats.dropped_by_peer}"
    )
