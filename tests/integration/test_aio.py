"""peermq.aio: the same sockets and behaviour under asyncio."""

from __future__ import annotations

import asyncio

import pytest

import peermq
from peermq import Message, OnFull, SendTimeoutError, SocketOptions, aio

from ..helpers import python, readline


def run(coro: object) -> object:
    return asyncio.run(coro)  # type: ignore[arg-type]


def test_pubsub_readiness_filters_and_iteration() -> None:
    async def main() -> None:
        async with aio.Publisher(bind="tcp://127.0.0.1:*") as pub, aio.Subscriber(
            connect=pub.endpoints[0], topics=["a.*"], headers={"k": "v"}
        ) as sub:
            assert await pub.wait_for_subscribers(1, timeout=5.0) == 1
            assert await sub.wait_for_publishers(1, timeout=5.0) == 1
            for i in range(1000):
                await pub.send("a.b", i, headers={"k": "v"})
            await pub.send("a.b", "no header")
            await pub.send("b.c", "other topic")
            await pub.send_many([("a.c", i) for i in range(1000)], headers={"k": "v"})
            got: list[Message] = []
            async for msg in sub:
                got.append(msg)
                if len(got) == 2000:
                    break
            assert [m.data for m in got] == list(range(1000)) * 2
            assert sub.stats().gaps == 0 and sub.stats().filtered == 1
            with pytest.raises(TimeoutError):
                await sub.recv(timeout=0.05)

    run(main())


def test_consume_with_async_and_plain_handlers_and_stop() -> None:
    async def main() -> None:
        async with aio.Pusher(bind="tcp://127.0.0.1:*") as push, aio.Puller(
            connect=push.endpoints[0]
        ) as pull:
            await push.wait_for_peers(1, timeout=5.0)
            await pull.wait_for_peers(1, timeout=5.0)
            await push.send_many([("jobs", i) for i in range(10)])
            seen: list[object] = []

            async def handler(msg: Message) -> None:
                await asyncio.sleep(0)
                seen.append(msg.data)
                if len(seen) == 5:
                    pull.stop()

            assert await pull.consume(handler, timeout=5.0) == 5
            assert await pull.consume(lambda m: seen.append(m.data), count=5, timeout=5.0) == 5
            assert seen == list(range(10))
            batch = await push.send("jobs", "x") and await pull.recv_many(timeout=5.0)
            assert [m.data for m in batch] == ["x"]

    run(main())


def test_async_send_waits_for_room_then_times_out() -> None:
    async def main() -> None:
        opts = SocketOptions(on_full=OnFull.BLOCK, send_timeout=0.2)
        async with aio.Pusher(bind="tcp://127.0.0.1:*", options=opts) as push:
            ticks = 0

            async def ticker() -> None:
                nonlocal ticks
                while True:
                    await asyncio.sleep(0.01)
                    ticks += 1

            task = asyncio.create_task(ticker())
            with pytest.raises(SendTimeoutError):
                await push.send("jobs", 1)
            task.cancel()
            assert ticks > 3, "the loop kept running while send waited"

    run(main())


def test_async_recv_from_a_publisher_process_and_cancellation() -> None:
    code = """
        import sys, peermq
        with peermq.Publisher(bind="tcp://127.0.0.1:*") as pub:
            print(pub.endpoints[0], flush=True)
            pub.wait_for_subscribers(1, timeout=10.0)
            for i in range(100):
                pub.send("p", i)
            sys.stdin.read()
    """

    async def main(endpoint: str) -> None:
        async with aio.Subscriber(connect=endpoint) as sub:
            got = [(await sub.recv(timeout=10.0)).data for _ in range(100)]
            assert got == list(range(100))
            waiter = asyncio.create_task(sub.recv())
            await asyncio.sleep(0.05)
            waiter.cancel()
            with pytest.raises(asyncio.CancelledError):
                await waiter
            assert not sub.closed  # a cancelled recv leaves the socket usable
        assert await sub.aclose() == 0

    with python(code) as proc:
        run(main(readline(proc)))


def test_aio_names_match_the_blocking_api() -> None:
    for name in ("Publisher", "Subscriber", "Pusher", "Puller"):
        sync_cls, async_cls = getattr(peermq, name), getattr(aio, name)
        public = {n for n in dir(sync_cls) if not n.startswith("_")}
        assert public - {"__enter__", "__exit__"} <= {n for n in dir(async_cls)}, name


def test_async_publisher_block_times_out_on_a_subscriber_that_does_not_read() -> None:
    """OnFull.BLOCK: the XPUB looks writable while a subscriber's queue is full; the send must
    still end at send_timeout with SendTimeoutError (it once spun the event loop for ever)."""
    opts = SocketOptions(on_full=OnFull.BLOCK, send_hwm=10, send_timeout=0.5)

    async def main() -> tuple[int, float]:
        async with aio.Publisher(bind="tcp://127.0.0.1:*", options=opts) as pub, \
                aio.Subscriber(connect=pub.endpoints[0], options=SocketOptions(recv_hwm=10)):
            await pub.wait_for_subscribers(1, timeout=5.0)
            sent = 0
            loop = asyncio.get_running_loop()
            started = loop.time()
            with pytest.raises(SendTimeoutError):
                while loop.time() - started < 20.0:  # bounded: fails below if never raised
                    await pub.send("big", b"x" * 10_000)
                    sent += 1
            return sent, loop.time() - started

    sent, took = asyncio.run(asyncio.wait_for(main(), 30.0))
    assert sent > 0 and took < 20.0


def test_async_publisher_block_lets_a_reader_in_the_same_loop_drain() -> None:
    opts = SocketOptions(on_full=OnFull.BLOCK, send_hwm=10, send_timeout=5.0)

    async def main() -> list[int]:
        async with aio.Publisher(bind="tcp://127.0.0.1:*", options=opts) as pub, \
                aio.Subscriber(connect=pub.endpoints[0], options=SocketOptions(recv_hwm=10)) \
                as sub:
            await pub.wait_for_subscribers(1, timeout=5.0)

            async def read() -> list[int]:
                return [(await sub.recv(timeout=10.0)).data for _ in range(3000)]

            reader = asyncio.ensure_future(read())
            for i in range(1500):
                await pub.send("n", i)
            await pub.send_many([("n", i) for i in range(1500, 3000)])
            got: list[int] = await reader
            assert sub.stats().gaps == 0
            return got

    assert asyncio.run(asyncio.wait_for(main(), 60.0)) == list(range(3000))
