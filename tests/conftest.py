"""Checks every test gets for free: no leaked threads, sockets or nodes."""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Iterator

import pytest

import peermq


@pytest.fixture(autouse=True)
def _no_leaks() -> Iterator[None]:
    before = set(threading.enumerate())
    yield
    peermq.Node._default_close_for_tests()
    gc.collect()
    end = time.monotonic() + 5.0
    while True:
        leaked = [t for t in threading.enumerate() if t not in before and t.is_alive()]
        if not leaked or time.monotonic() > end:
            break
        time.sleep(0.01)
    assert not leaked, f"test leaked threads: {leaked}"
