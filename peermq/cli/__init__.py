"""The ``peermq`` command line: the only package that imports click and rich."""

from __future__ import annotations

from .app import cli, main

__all__ = ["cli", "main"]
