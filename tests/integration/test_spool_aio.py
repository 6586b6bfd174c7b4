"""The asyncio spooled sockets: same behaviour as the blocking ones, without blocking the loop."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

import peermq
from peermq import AckMode, Delivery, SpoolOptions, aio

FAST = SpoolOptions(ack_timeout=0.5, backoff=0.01, backoff_max=0.05, checkpoint_interval=0.05)


def test_asyncio_spooled_pipeline_acks_and_redelivers(tmp_path: Path) -> None:
    async def main() -> None:
        async with aio.Pusher(bind="tcp://127.0.0.1:*", spool=tmp_path / "s",
                              spool_options=FAST) as push:
            assert type(push).__name__ == "SpooledPusher" and isinstance(push, aio.Pusher)
            ep = push.endpoints[0]
            async with aio.Puller(connect=ep, ack=AckMode.EXPLICIT) as first:
                await push.wait_for_peers(1)
                assert await push.send_many([("jobs", i) for i in range(10)]) == 10
                assert await push.flush() == 10
                msg = await first.recv(timeout=5.0)
                assert isinstance(msg, Delivery) and msg.data == 0
                msg.ack()
                await first.flush_acks()
            # the nine it held unacked come back to the next puller
            async with aio.Puller(connect=ep, spool=tmp_path / "p") as second:
                seen: list[object] = []

                async def handler(m: peermq.Message) -> None:
                    await asyncio.sleep(0)
                    seen.append(m.data)

                assert await second.consume(handler, count=9, timeout=5.0) == 9
                assert sorted(seen) == list(range(1, 10))  # type: ignore[type-var]
                await second.flush_acks()
                await push.wait_for_acks(timeout=5.0)
            assert push.spool_stats().redelivered >= 9

    asyncio.run(main())


def test_asyncio_recv_times_out_and_send_waits_for_room(tmp_path: Path) -> None:
    async def main() -> None:
        opts = SpoolOptions(segment_bytes=4096, max_bytes=8192, full_timeout=0.1)
        async with aio.Pusher(spool=tmp_path / "s", spool_options=opts) as push:
            with pytest.raises(peermq.SpoolFullError):
                for _ in range(100):
                    await push.send("jobs", b"x" * 500)
        async with aio.Puller(bind="tcp://127.0.0.1:*", ack=AckMode.AUTO) as pull:
            with pytest.raises(TimeoutError):
                await pull.recv(timeout=0.05)

    asyncio.run(main())
