"""Other threads change a socket only through call_soon, which runs on the owner's thread."""

from __future__ import annotations

import asyncio
import threading

import peermq
from peermq import aio


def test_call_soon_wakes_a_blocked_recv_and_runs_on_the_owner_thread() -> None:
    with peermq.Publisher(bind="tcp://127.0.0.1:*") as pub, peermq.Subscriber() as sub:
        ran_on: list[threading.Thread] = []

        def connect() -> None:
            ran_on.append(threading.current_thread())
            sub.connect(pub.endpoints[0])

        def publish_when_ready() -> None:
            sub.call_soon(connect)
            pub.wait_for_subscribers(1, timeout=5.0)
            pub.send("t", "hello")

        helper = threading.Thread(target=publish_when_ready)
        helper.start()
        try:
            msg = sub.recv(timeout=5.0)  # blocked here when the connect was posted
        finally:
            helper.join(5.0)
        assert msg.data == "hello"
        assert ran_on == [threading.main_thread()]


def test_call_soon_under_asyncio_and_after_close() -> None:
    async def main() -> None:
        async with aio.Puller(bind="tcp://127.0.0.1:*") as pull:
            loop_thread = threading.current_thread()
            ran_on: list[threading.Thread] = []
            poster = threading.Thread(
                target=pull.call_soon, args=(lambda: ran_on.append(threading.current_thread()),)
            )
            poster.start()
            poster.join(5.0)
            try:
                await pull.recv(timeout=0.2)  # nothing to receive: the wait runs posted calls
            except TimeoutError:
                pass
            assert ran_on == [loop_thread]
        pull.call_soon(lambda: None)  # after close: dropped, no error

    asyncio.run(main())
