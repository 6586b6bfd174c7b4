"""A PUSH/PULL pipeline: a ventilator hands out tasks, worker processes share them, a sink
collects the results. Each task goes to exactly one worker (round-robin over connected ones)."""

from __future__ import annotations

import multiprocessing
from collections import Counter

import peermq

WORKERS, TASKS = 3, 90


def worker(name: str, tasks_ep: str, results_ep: str) -> None:
    with peermq.Puller(connect=tasks_ep) as tasks, peermq.Pusher(connect=results_ep) as results:
        results.wait_for_peers(1, timeout=10.0)
        for msg in tasks:  # iterate until "stop"
            if msg.topic == "stop":
                break
            assert isinstance(msg.data, int)  # data is decoded msgpack: check its type
            results.send("result", msg.data * msg.data, headers={"worker": name})


def main() -> None:
    ctx = multiprocessing.get_context("spawn")  # fresh interpreters: no ZeroMQ state is forked
    with (
        peermq.Pusher(bind="tcp://127.0.0.1:*") as vent,
        peermq.Puller(bind="tcp://127.0.0.1:*") as sink,
    ):
        eps = (vent.endpoints[0], sink.endpoints[0])
        # daemon: should this process fail, its workers end with it
        procs = [
            ctx.Process(target=worker, args=(f"worker-{i}", *eps), daemon=True)
            for i in range(1, WORKERS + 1)
        ]
        for p in procs:
            p.start()
        # Wait for every worker before the first send: else the first one to connect gets all.
        vent.wait_for_peers(WORKERS, timeout=30.0)
        print(f"ventilator: {WORKERS} workers connected, sending {TASKS} tasks")
        for n in range(TASKS):
            vent.send("task", n)
        per_worker: Counter[str] = Counter()
        total = 0
        for _ in range(TASKS):
            msg = sink.recv(timeout=10.0)
            per_worker[msg.headers["worker"]] += 1
            assert isinstance(msg.data, int)
            total += msg.data
        # All tasks are done, so every queue is empty: round-robin gives each worker one "stop".
        for _ in procs:
            vent.send("stop", None)
        for p in procs:
            p.join(timeout=10.0)
    expected = sum(n * n for n in range(TASKS))
    print(f"sink: {TASKS} results, sum of squares {total} (expected {expected})")
    for name, count in sorted(per_worker.items()):
        print(f"  {name}: {count} tasks")
    if any(p.exitcode != 0 for p in procs):
        raise SystemExit("a worker failed")


if __name__ == "__main__":
    main()
