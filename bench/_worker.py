"""Entry point of every benchmark process: run one role of one implementation, report back."""

from __future__ import annotations

import importlib
import os
import traceback
from multiprocessing.connection import Connection

from ._common import Spec

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
    try:
        if cpu is not None:  # before any ZeroMQ context: its I/O thread inherits the mask
            os.sched_setaffinity(0, {cpu})
        fn = getattr(importlib.import_module(MODULES[spec.impl]), role)
        if role == "receiver":
            fn(spec, endpoint, ctl, side)
        else:
            fn(spec, ctl, side)
    except BaseException:
        ctl.send({"error": f"{spec.impl} {role}: {traceback.format_exc()}"})
        raise SystemExit(1) from None
