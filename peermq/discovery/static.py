"""Static peers: where multicast does not reach (clouds, containers, separate subnets).

An entry names a service and an endpoint of a *sending* socket of that service::

    orders=tcp://10.0.0.5:5555        an option, PEERMQ_PEERS or --peer
    orders 10.0.0.6:5555              a line of a peers file (HOST:PORT means tcp://)

A subscriber or puller of ``orders`` connects to every such endpoint as if it had been
announced. A peers file may hold comments (``#``) and blank lines; it is read again when it
changes, so peers can be added and removed while sockets run.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass

from ..errors import ConfigError, DiscoveryError
from .txt import check_service

__all__ = ["StaticPeer", "file_stamp", "parse_entry", "parse_lines", "parse_list", "read_file"]

_HOST_PORT = re.compile(r"(?:[^\s/:\[\]]+|\[[0-9a-fA-F:.%A-Za-z]+\]):\d{1,5}\Z")


@dataclass(frozen=True, slots=True)
class StaticPeer:
    service: str
    endpoint: str


def _endpoint(text: str) -> str:
    if text.startswith(("tcp://", "ipc://")):
        return text
    if _HOST_PORT.match(text):
        return f"tcp://{text}"
    raise ConfigError(f"{text!r} is not an endpoint: give tcp://HOST:PORT, ipc://PATH or HOST:PORT")


def parse_entry(text: str) -> StaticPeer:
    """``service=endpoint`` or ``service endpoint``; ConfigError if malformed."""
    item = text.strip()
    service, sep, endpoint = item.partition("=")
    if not sep:
        service, _, endpoint = item.partition(" ")
    service, endpoint = service.strip(), endpoint.strip()
    if not service or not endpoint:
        raise ConfigError(f"static peer {text!r} is not SERVICE=ENDPOINT")
    try:
        check_service(service)
    except DiscoveryError as exc:
        raise ConfigError(f"static peer {text!r}: {exc}") from None
    return StaticPeer(service, _endpoint(endpoint))


def parse_list(text: str) -> list[StaticPeer]:
    """Entries separated by commas or whitespace-and-commas (``PEERMQ_PEERS``)."""
    return [parse_entry(item) for item in re.split(r"\s*,\s*", text.strip()) if item]


def parse_lines(lines: Iterable[str], where: str) -> list[StaticPeer]:
    out = []
    for n, line in enumerate(lines, 1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        try:
            out.append(parse_entry(text))
        except ConfigError as exc:
            raise ConfigError(f"{where} line {n}: {exc}") from None
    return out


def read_file(path: str | os.PathLike[str]) -> list[StaticPeer]:
    """The entries of a peers file; ConfigError if it cannot be read or parsed."""
    try:
        with open(path, encoding="utf-8") as f:
            return parse_lines(f, os.fspath(path))
    except OSError as exc:
        raise ConfigError(f"cannot read peers file {os.fspath(path)}: {exc.strerror}") from None


def file_stamp(path: str | os.PathLike[str]) -> tuple[int, int] | None:
    """What changes when the file is rewritten (mtime and size); None if it is gone."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size)
