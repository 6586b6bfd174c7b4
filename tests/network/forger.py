"""A forged responder: announces ``_peermq._tcp`` instances whose TXT records break the schema.

    python -m tests.network.forger

Prints ``{"event": "registered"}`` once they are announced, and withdraws them when stdin
closes. Plain python-zeroconf, as an attacker or a broken implementation would use it.
"""

from __future__ import annotations

import asyncio
import json
import sys

from zeroconf import IPVersion, ServiceInfo
from zeroconf.asyncio import AsyncZeroconf

from peermq.discovery.txt import SERVICE_TYPE

BAD = {
    "forged": {"txtvers": "1", "pv": "1", "id": "NOT AN ID", "node": "x", "kind": "pub",
               "svc": "orders", "st": "1"},
    "forged-2": {"kind": "pub", "svc": "orders"},
    "forged-3": {"txtvers": "1", "pv": "1", "id": "abc", "node": "x", "kind": "pub",
                 "svc": "orders", "st": "99999999999999"},
}


async def main() -> None:
    azc = AsyncZeroconf(ip_version=IPVersion.V4Only)
    infos = [
        ServiceInfo(SERVICE_TYPE, f"{name}.{SERVICE_TYPE}", port=9, properties=props,
                    server="forger.local.", parsed_addresses=["10.71.0.99"])
        for name, props in BAD.items()
    ]
    for info in infos:
        await azc.async_register_service(info, cooperating_responders=True)
    print(json.dumps({"event": "registered"}), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    for info in infos:
        await (await azc.async_unregister_service(info))
    await azc.async_close()


if __name__ == "__main__":
    asyncio.run(main())
