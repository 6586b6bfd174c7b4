"""Static peers: discovery by service name where multicast does not reach.

Clouds, containers and routed subnets often drop multicast. A static peer names a service and
an endpoint of one of its senders; a subscriber of that service connects to it as if it had
been announced, and ``PEERMQ_PEERS`` or a peers file says the same for the default node
(docs/discovery.md). No multicast at all here, with asyncio for a change.
"""

from __future__ import annotations

import asyncio

import peermq
from peermq import aio

NO_MULTICAST = peermq.DiscoveryOptions(mdns=False)


async def main() -> None:
    with peermq.Node(name="backend", discovery=NO_MULTICAST) as backend:
        # the sender binds a port that the static peers can name
        async with aio.Publisher(service="orders", bind="tcp://127.0.0.1:*",
                                 node=backend) as pub:
            where = pub.endpoints[0]
            print(f"backend: publisher of 'orders' at {where}")
            static = peermq.DiscoveryOptions(mdns=False, peers=(f"orders={where}",))
            with peermq.Node(name="frontend", discovery=static) as frontend:
                async with aio.Subscriber(service="orders", node=frontend) as sub:
                    assert sub.discovery is not None
                    # one thread, two sockets: wait on both at once
                    await asyncio.gather(pub.wait_for_subscribers(1, timeout=5.0),
                                         sub.wait_for_publishers(1, timeout=5.0))
                    await pub.send("orders.created", {"id": 7})
                    msg = await sub.recv(timeout=5.0)
                    [peer] = sub.discovery.peers()
                    print(f"frontend: {msg.topic} {msg.data} from {peer.endpoint} "
                          f"({peer.source.value} peer)")


if __name__ == "__main__":
    asyncio.run(main())
