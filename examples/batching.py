"""send_many: many small messages per ZeroMQ frame, each still with its own sequence number."""

from __future__ import annotations

import time

import peermq

N = 5_000  # fits in the queues, so this single-threaded demo can send first and read after


def receive_all(sub: peermq.Subscriber) -> list[peermq.Message]:
    got: list[peermq.Message] = []
    while len(got) < N:
        got.extend(sub.recv_many(max_count=N - len(got), timeout=5.0))
    return got


with (
    peermq.Publisher(bind="tcp://127.0.0.1:*") as pub,
    peermq.Subscriber(connect=pub.endpoints[0], topics=["ticks.>"]) as sub,
):
    pub.wait_for_subscribers(1, timeout=5.0)

    start = time.perf_counter()
    for i in range(N):
        pub.send("ticks.one", i)
    one_by_one = time.perf_counter() - start
    singles = receive_all(sub)

    start = time.perf_counter()
    # Consecutive pairs with the same topic share frames (up to batch_max_count messages or
    # batch_max_bytes per frame, see SocketOptions); headers, if given, apply to all of them.
    sent = pub.send_many(("ticks.many", i) for i in range(N))
    batched = time.perf_counter() - start
    batch = receive_all(sub)

    print(f"send():      {N} messages in {one_by_one * 1e3:6.1f} ms")
    print(f"send_many(): {sent} messages in {batched * 1e3:6.1f} ms")
    seqs = [m.seq for m in batch]
    assert seqs == list(range(1, N + 1)), "one sequence number per message"
    assert [m.data for m in batch] == [m.data for m in singles] == list(range(N))
    stamps = len({m.timestamp for m in batch})
    print(f"they arrive one by one: seq {seqs[0]}..{seqs[-1]}, {stamps} timestamp (the call's)")
    print(f"subscriber: {sub.stats().received} received, {sub.stats().gaps} lost")
