"""The same publisher and subscriber with asyncio: ``peermq.aio`` has the same names, awaited."""

from __future__ import annotations

import asyncio

import peermq
from peermq import aio


async def listen(sub: aio.Subscriber, name: str, expect: int) -> None:
    count = 0
    async for msg in sub:  # ends when sub.stop() is called (or the socket is closed)
        count += 1
        print(f"{name}: {msg.topic} {msg.data}")
        if count == expect:
            sub.stop()


async def on_weather(msg: peermq.Message) -> None:
    print(f"handler: {msg.topic} {msg.data}")


async def main() -> None:
    async with (
        aio.Publisher(bind="tcp://127.0.0.1:*") as pub,
        aio.Subscriber(connect=pub.endpoints[0], topics=["weather.*"]) as weather,
        aio.Subscriber(connect=pub.endpoints[0], topics=["news.>"]) as news,
    ):
        await pub.wait_for_subscribers(2, timeout=5.0)
        # Two listeners run concurrently on one event loop while the publisher sends.
        listeners = asyncio.gather(listen(weather, "weather", 3), listen(news, "news", 2))
        for topic, data in [
            ("weather.paris", {"celsius": 21}),
            ("news.tech.python", "3.14 is out"),
            ("weather.oslo", {"celsius": 4}),
            ("news.sport", "0-0"),
            ("weather.lima", {"celsius": 18}),
        ]:
            await pub.send(topic, data)
        await asyncio.wait_for(listeners, timeout=5.0)

        # consume() calls a plain or async handler; it stops after count messages or timeout.
        await pub.send("weather.rome", {"celsius": 25})
        handled = await weather.consume(on_weather, count=1, timeout=5.0)
        print(f"handled {handled}; weather received {weather.stats().received} in all")


asyncio.run(main())
