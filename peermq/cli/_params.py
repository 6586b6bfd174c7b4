"""Parsing of command-line values; every mistake becomes a usage error (exit 2)."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import click

from ..config import SecurityOptions
from ..errors import ConfigError, TopicError
from ..node import security_from_env
from ..topics import check_topic, pattern_prefix

__all__ = [
    "endpoint_options",
    "headers_callback",
    "patterns_callback",
    "require_endpoints",
    "topic_callback",
]

_SCHEMES = ("tcp://", "ipc://")
_HOST_PORT = re.compile(r"(?P<host>[^\s/:]+|\[[0-9a-fA-F:.]+\]):(?P<port>\d{1,5}|\*)\Z")


def endpoint(value: str, *, binding: bool) -> str:
    """``tcp://...``/``ipc://...`` as is; ``PORT`` and ``HOST:PORT`` mean tcp (PORT: loopback)."""
    if value.startswith(_SCHEMES):
        return value
    if value.startswith("inproc://"):
        raise click.BadParameter("inproc:// only joins sockets of one process; use tcp:// or ipc://")
    if value.isdigit() or (binding and value == "*"):
        return f"tcp://127.0.0.1:{value}"
    if _HOST_PORT.match(value):
        return f"tcp://{value}"
    verb = "bind to" if binding else "connect to"
    raise click.BadParameter(
        f"cannot {verb} {value!r}: give tcp://HOST:PORT, ipc://PATH, HOST:PORT or a PORT"
    )


_Callback = Callable[[click.Context, click.Parameter, Sequence[str]], list[str]]
_F = TypeVar("_F", bound=Callable[..., Any])


def _endpoints_callback(binding: bool) -> _Callback:
    def convert(ctx: click.Context, param: click.Parameter, values: Sequence[str]) -> list[str]:
        return [endpoint(v, binding=binding) for v in values]
    return convert


def endpoint_options(f: _F) -> _F:
    """``--connect`` and ``--bind``, repeatable (discovery by service name comes later)."""
    f = click.option(
        "-b", "--bind", "bind", multiple=True, metavar="ENDPOINT",
        callback=_endpoints_callback(True),
        help="Listen on ENDPOINT (repeatable); a bare PORT means 127.0.0.1:PORT, '*' any "
             "free port.",
    )(f)
    f = click.option(
        "-c", "--connect", "connect", multiple=True, metavar="ENDPOINT",
        callback=_endpoints_callback(False),
        help="Connect to ENDPOINT (repeatable): tcp://HOST:PORT, ipc://PATH, HOST:PORT, or a "
             "PORT on 127.0.0.1.",
    )(f)
    return f


def require_endpoints(bind: Sequence[str], connect: Sequence[str]) -> None:
    if not bind and not connect:
        raise click.UsageError(
            "give at least one --connect or --bind endpoint, or --service NAME"
        )


def headers_callback(
    ctx: click.Context, param: click.Parameter, values: Sequence[str]
) -> dict[str, str]:
    """``-H key=value`` (repeatable) into a dict; a malformed or repeated key is a usage error."""
    out: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{item!r} is not key=value")
        if key in out:
            raise click.BadParameter(f"header {key!r} is given twice")
        out[key] = value
    return out


def topic_callback(ctx: click.Context, param: click.Parameter, value: str) -> str:
    try:
        check_topic(value)
    except TopicError as exc:
        raise click.BadParameter(str(exc)) from None
    return value


def patterns_callback(
    ctx: click.Context, param: click.Parameter, values: Sequence[str]
) -> tuple[str, ...]:
    for p in values:
        try:
            pattern_prefix(p)
        except TopicError as exc:
            raise click.BadParameter(str(exc)) from None
    return tuple(values) or (">",)


def security() -> SecurityOptions | None:
    """The CLI's security, from ``PEERMQ_SECURITY``, ``PEERMQ_KEYS`` and ``PEERMQ_TRUST``."""
    try:
        return security_from_env(os.environ)
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from None
