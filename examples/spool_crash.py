"""At least once through a crash: a worker process is killed (SIGKILL) holding jobs it never
acknowledged; the spooled sender gives them to the other worker. Nothing is lost."""

from __future__ import annotations

import multiprocessing
import os
import signal
import tempfile
import time

import peermq


def worker(endpoint: str, name: str, slow: bool) -> None:
    with peermq.Puller(connect=endpoint, ack=peermq.AckMode.AUTO) as jobs, \
            peermq.Pusher(connect=endpoint.replace("jobs", "done")) as done:
        for msg in jobs:
            if slow:
                time.sleep(10)  # stuck on its first job: it will be killed holding it
            done.send("done", [name, msg.data])


if __name__ == "__main__":
    ctx = multiprocessing.get_context("spawn")
    with tempfile.TemporaryDirectory() as tmp:
        ep = f"ipc://{tmp}/jobs"
        with peermq.Pusher(bind=ep, spool=f"{tmp}/spool") as jobs, \
                peermq.Puller(bind=ep.replace("jobs", "done")) as done:
            doomed = ctx.Process(target=worker, args=(ep, "doomed", True), daemon=True)
            doomed.start()
            jobs.wait_for_peers(1, timeout=10.0)
            jobs.send_many(("job", n) for n in range(20))
            end = time.monotonic() + 10.0
            while jobs.spool_stats().in_flight < 20 and time.monotonic() < end:
                time.sleep(0.01)  # until the doomed worker holds all twenty
            os.kill(doomed.pid or 0, signal.SIGKILL)
            print("killed the worker that held jobs without acknowledging them")
            healthy = ctx.Process(target=worker, args=(ep, "healthy", False), daemon=True)
            healthy.start()
            finished = {done.recv(timeout=10.0).data[1] for _ in range(20)}  # type: ignore[index]
            jobs.wait_for_acks(timeout=10.0)
            print(f"jobs finished: {len(finished)} of 20, redelivered: "
                  f"{jobs.spool_stats().redelivered}")
            healthy.terminate()
            healthy.join(5)
            if finished != set(range(20)):
                raise SystemExit("a job was lost")
