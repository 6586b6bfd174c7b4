"""Entry point of every benchmark process: run one role of one implementation, report back."""

from __future__ import annotations

import asyncio
import importlib
import inspect
import traceback
from multiprocessing.connection import Connection

from ._common import Spec, pin

MODULES = {
    "raw": "bench._raw",
    "peermq": "bench._peer",
    "raw-async": "bench._raw_aio",
    "peermq-async": "bench._peer_aio",
}
"""Imported in the child only, so a raw process never loads peermq (nor pays for it in RSS)."""


def main(
    role: str, spec: Spec, ctl: Connection, side: Connection, endpoint: str = "",
    cpu: int | None = None,
) -> None:
    """Run ``role`` (sender, receiver, pinger, ponger) of ``spec.impl``; an async role (the
    asyncio twins) in a fresh event loop."""
    try:
        pin(cpu)
        fn = getattr(importlib.import_module(MODULES[spec.impl]), role)
        args = (spec, endpoint, ctl, side) if role == "receiver" else (spec, ctl, side)
        if inspect.iscoroutinefunction(fn):
            asyncio.run(fn(*args))
        else:
            fn(*args)
    except BaseException:
        ctl.send({"error": f"{spec.impl} {role}: {traceback.format_exc()}"})
        raise SystemExit(1) from None
