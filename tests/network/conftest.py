"""Network tests run only inside the private network namespace that scripts/test.sh makes."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator

import pytest

from .lab import Lab, can_make_namespaces

REASON = "needs a private network namespace: run scripts/test.sh (root or user namespaces)"


def in_private_namespace() -> bool:
    if os.environ.get("PEERMQ_NETNS") != "1":
        return False
    try:
        routes = subprocess.run(["ip", "route", "show", "default"], capture_output=True,
                                text=True, timeout=5, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return False
    return routes.strip() == ""  # no way out of this host


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if in_private_namespace():
        return
    skip = pytest.mark.skip(reason=REASON)
    for item in items:
        if "tests/network" in str(item.fspath):
            item.add_marker(skip)


@pytest.fixture
def lab() -> Iterator[Lab]:
    """Hosts on switches, made for this test and removed after it (see lab.py)."""
    if not can_make_namespaces():
        pytest.skip("needs root in the test namespace to make hosts (ip netns add)")
    with Lab() as made:
        yield made
