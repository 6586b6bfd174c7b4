"""Find a publisher by service name: no endpoint anywhere (DNS-SD over multicast DNS).

A weather station publishes on the service "weather"; a screen subscribes to "weather" and
connects to whichever stations announce it, here one in a thread of this process. Discovery
is pinned to the loopback interface so that the example runs alone anywhere; without the
``discovery=`` options it uses every network interface of the host.
"""

from __future__ import annotations

import threading

import peermq

LOOPBACK = peermq.DiscoveryOptions(interfaces=("127.0.0.1",))
READINGS = (("paris", 21), ("oslo", 4), ("lima", 18))


def station(done: threading.Event) -> None:
    with peermq.Node(name="station", discovery=LOOPBACK) as node, \
            peermq.Publisher(service="weather", node=node) as pub:
        pub.wait_for_subscribers(1, timeout=10.0)  # the screen found us and subscribed
        for city, celsius in READINGS:
            pub.send(f"weather.{city}", {"celsius": celsius})
        done.wait(10.0)  # closing says goodbye (an mDNS goodbye, then the connection closes)


def main() -> None:
    done = threading.Event()
    publisher = threading.Thread(target=station, args=(done,))
    with peermq.Node(name="screen", discovery=LOOPBACK) as node, \
            peermq.Subscriber(service="weather", topics=["weather.>"], node=node) as sub:
        assert sub.discovery is not None
        events = sub.discovery.events(timeout=10.0)  # peers joining and leaving, as they come
        publisher.start()
        joined = next(events)
        print(f"{joined.kind.value}: {joined.peer.instance} at {joined.peer.endpoint}")
        for _ in READINGS:
            msg = sub.recv(timeout=10.0)
            print(f"{msg.topic}: {msg.data}")
        done.set()
        publisher.join()
        left = next(events)
        print(f"{left.kind.value}: {left.peer.instance}")


if __name__ == "__main__":
    main()
