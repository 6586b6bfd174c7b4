"""``peermq peers``: the services on the network, found by discovery (mDNS and static peers).

Also home of ``discovery_options``, the options every command that finds peers by service
name shares (pub, sub, peers): where to look and which static peers to use.
"""

from __future__ import annotations

import dataclasses
import os
import queue
import secrets
import socket
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import click
from rich.live import Live
from rich.table import Table
from rich.text import Text

from ..config import DiscoveryOptions
from ..discovery import PeerInfo, options_from_env
from ..discovery.peers import PeerSource
from ..discovery.txt import check_service
from ..errors import ConfigError, DiscoveryError, PeermqError
from . import _format
from ._ui import ReaderGoneError, Ui, silence_stdout

__all__ = ["discovery_from", "discovery_options", "peers", "service_callback"]

_F = TypeVar("_F", bound=Callable[..., Any])
_LISTEN = 2.0
"""How long a listing listens by default: an announced service answers a query at once
(RFC 6762 section 6); most arrive within the first second."""


def service_callback(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return check_service(value)
    except DiscoveryError as exc:
        raise click.BadParameter(str(exc)) from None


def discovery_options(f: _F) -> _F:
    """``--interface``, ``--peer``, ``--peers-file`` and ``--no-mdns`` (see discovery_from)."""
    f = click.option("--no-mdns", "no_mdns", is_flag=True,
                     help="No multicast: static peers only [env: PEERMQ_MDNS=off].")(f)
    f = click.option("--peers-file", "peers_file", metavar="FILE",
                     help="Static peers, one 'SERVICE ENDPOINT' a line, read again when it "
                          "changes [env: PEERMQ_PEERS_FILE].")(f)
    f = click.option("--peer", "static_peers", multiple=True, metavar="SERVICE=ENDPOINT",
                     help="A static peer (repeatable), added to PEERMQ_PEERS.")(f)
    f = click.option("--interface", "interfaces", multiple=True, metavar="NAME|ADDRESS",
                     help="Discover on this interface only (repeatable) "
                          "[env: PEERMQ_INTERFACES].")(f)
    return f


def discovery_from(
    interfaces: Sequence[str], static_peers: Sequence[str], peers_file: str | None,
    no_mdns: bool,
) -> DiscoveryOptions:
    """The environment's options, with the command line's on top: --interface and
    --peers-file replace their variables, --peer adds to PEERMQ_PEERS, --no-mdns wins."""
    try:
        base = options_from_env(os.environ)
        return dataclasses.replace(
            base,
            mdns=base.mdns and not no_mdns,
            interfaces=tuple(interfaces) or base.interfaces,
            peers=tuple(dict.fromkeys((*base.peers, *static_peers))),
            peers_file=peers_file or base.peers_file,
        )
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from None


def _table(found: dict[str, PeerInfo]) -> Table:
    table = Table(box=None, pad_edge=False, header_style="bold")
    peers = sorted(found.values(), key=lambda p: (p.service, p.kind.value, p.instance))
    topics = any(p.topics for p in peers)
    for col in ("SERVICE", "KIND", "INSTANCE", "ENDPOINT", "NODE ID", "SOURCE"):
        table.add_column(col, no_wrap=col in ("ENDPOINT", "NODE ID"))
    if topics:
        table.add_column("TOPICS")
    for p in peers:
        row = [p.service, p.kind.value if p.node_id else "?", p.instance, p.endpoint,
               p.node_id[:8] or "-", p.source.value + (f" {p.interface}" if p.interface else "")]
        table.add_row(*row, *([",".join(p.topics)] if topics else []))
    return table


def _json(kind: str, p: PeerInfo) -> dict[str, object]:
    return {"type": kind, **p.as_dict()}


def _line(kind: str, p: PeerInfo, reason: str = "") -> Text:
    text = Text()
    text.append(_format.time_text(time.time()), style="dim")
    text.append("  ")
    text.append("++" if kind == "joined" else "--", style="green" if kind == "joined" else "red")
    text.append(f" {p.service}", style="bold cyan")
    text.append(f"  {p.kind.value if p.node_id else '?'}  {p.instance}  {p.endpoint}")
    if reason:
        text.append(f"  ({reason})", style="dim")
    return text


@click.command()
@click.argument("service", required=False, callback=service_callback)
@click.option("-t", "--timeout", type=click.FloatRange(min=0.0, min_open=True), default=None,
              metavar="SECONDS",
              help=f"How long to listen: default {_LISTEN:g}s; with --watch, until Ctrl-C.")
@click.option("-w", "--watch", is_flag=True,
              help="Keep running: show peers as they come and go.")
@click.option("--json", "as_json", is_flag=True,
              help="One JSON object per line: a peer (type 'peer'), or with --watch an event "
                   "(type 'joined' or 'left').")
@discovery_options
@click.pass_obj
def peers(
    ui: Ui,
    service: str | None,
    timeout: float | None,
    watch: bool,
    as_json: bool,
    interfaces: tuple[str, ...],
    static_peers: tuple[str, ...],
    peers_file: str | None,
    no_mdns: bool,
) -> None:
    """The services on the network: each socket announced with DNS-SD, and static peers.

    Give a SERVICE to see only its sockets. An announced service answers at once, so a
    listing takes --timeout seconds. Only peers that still accept a connection are listed
    (mDNS keeps a crashed peer's records for minutes); --watch probes every 2 seconds.

    \b
      peermq peers
      peermq peers orders --json
      peermq peers --watch
      peermq peers --no-mdns --peer orders=10.0.0.5:5555
    """
    from ..discovery.service import Discovery, Watch  # noqa: PLC0415 (loads zeroconf)

    options = discovery_from(interfaces, static_peers, peers_file, no_mdns)
    events: queue.Queue[tuple[str, PeerInfo | str, str]] = queue.Queue()

    def found(info: PeerInfo) -> None:
        events.put(("found", info, ""))

    def lost(instance: str, reason: str) -> None:
        events.put(("lost", instance, reason))

    seen: dict[str, PeerInfo] = {}
    discovery = Discovery(secrets.token_hex(8), "peermq-peers", options)
    try:
        discovery.start()
        where = ", ".join(i.name for i in discovery.interfaces) or "no interface"
        ui.status(f"looking for {'service ' + service if service else 'services'} "
                  f"({'mDNS on ' + where if options.mdns else 'static peers only'})")
        discovery.add_watch(Watch(service or "", None, found, lost, probes=False,
                                  any_version=True))
        if watch:
            _watch(ui, events, seen, timeout, as_json)
        else:
            _collect(events, seen, _LISTEN if timeout is None else timeout)
            _list(ui, seen, as_json)
    except KeyboardInterrupt:
        raise click.exceptions.Exit(130) from None
    except ReaderGoneError:
        silence_stdout()
    except PeermqError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        discovery.close()


def _apply(event: tuple[str, PeerInfo | str, str],
           seen: dict[str, PeerInfo]) -> tuple[str, PeerInfo, str] | None:
    """Update ``seen``; returns ``(joined|left, peer, reason)`` if the list changed."""
    what, subject, reason = event
    if what == "found":
        assert isinstance(subject, PeerInfo)
        new = subject.instance not in seen
        seen[subject.instance] = subject
        return ("joined", subject, "") if new else None
    assert isinstance(subject, str)
    gone = seen.pop(subject, None)
    return ("left", gone, reason) if gone is not None else None


_PROBE_TIMEOUT = 0.5
_PROBE_EVERY = 2.0


def _reachable(endpoint: str) -> bool:
    """Does something accept TCP connections at ``endpoint``? (A liveness probe: mDNS keeps
    a crashed peer's records for minutes, so a listing of live peers must ask the peer.)"""
    if not endpoint.startswith("tcp://"):
        return True  # ipc and static peers of other kinds: nothing cheap to ask
    host, _, port = endpoint[len("tcp://"):].rpartition(":")
    host = host.strip("[]")  # an IPv6 scope (%eth0) stays: getaddrinfo understands it
    try:
        with socket.create_connection((host, int(port)), timeout=_PROBE_TIMEOUT):
            return True
    except (OSError, ValueError):
        return False


def _prune(seen: dict[str, PeerInfo]) -> list[PeerInfo]:
    """Drop the announced peers that no longer answer; returns them.

    Static peers are listed as configured and never probed: they are the user's addresses,
    and the listing should not send anything to them."""
    dead = [p for p in seen.values()
            if p.source is not PeerSource.STATIC and not _reachable(p.endpoint)]
    for p in dead:
        seen.pop(p.instance, None)
    return dead


def _collect(events: queue.Queue[tuple[str, PeerInfo | str, str]], seen: dict[str, PeerInfo],
             seconds: float) -> None:
    end = time.monotonic() + seconds
    while (left := end - time.monotonic()) > 0:
        try:
            _apply(events.get(timeout=left), seen)
        except queue.Empty:
            break
    _prune(seen)


def _list(ui: Ui, seen: dict[str, PeerInfo], as_json: bool) -> None:
    if as_json:
        for p in sorted(seen.values(), key=lambda p: (p.service, p.kind.value, p.instance)):
            ui.json(_json("peer", p))
        return
    if not seen:
        ui.status("no peers found")
        return
    ui.out.print(_table(seen))
    ui.status(f"{len(seen)} peer{'s' if len(seen) != 1 else ''}")


def _watch(ui: Ui, events: queue.Queue[tuple[str, PeerInfo | str, str]],
           seen: dict[str, PeerInfo], timeout: float | None, as_json: bool) -> None:
    end = None if timeout is None else time.monotonic() + timeout
    live = None
    if not as_json and ui.out.is_terminal:
        live = Live(_table(seen), console=ui.out, auto_refresh=False)
        live.start()
    probe_at = time.monotonic() + _PROBE_EVERY
    try:
        while end is None or time.monotonic() < end:
            wait = 0.5 if end is None else max(0.0, min(0.5, end - time.monotonic()))
            changes: list[tuple[str, PeerInfo, str]] = []
            try:
                change = _apply(events.get(timeout=wait), seen)
                if change is not None:
                    changes.append(change)
            except queue.Empty:
                pass
            if time.monotonic() >= probe_at:
                probe_at = time.monotonic() + _PROBE_EVERY
                changes += [("left", p, "unreachable") for p in _prune(seen)]
            for kind, peer, reason in changes:
                _show(ui, live, seen, kind, peer, reason, as_json)
    finally:
        if live is not None:
            live.stop()


def _show(ui: Ui, live: Live | None, seen: dict[str, PeerInfo], kind: str, peer: PeerInfo,
          reason: str, as_json: bool) -> None:
    if as_json:
        ui.json({**_json(kind, peer), "reason": reason} if reason else _json(kind, peer))
    elif live is not None:
        live.update(_table(seen), refresh=True)
    else:
        ui.line(_line(kind, peer, reason))
