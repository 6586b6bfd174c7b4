"""``peermq sub``: print what arrives, gaps included."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import click

from ..config import HeaderMatch
from ..errors import PeermqError
from ..message import Gap, SocketStats
from ..node import Node
from ..sockets import Subscriber
from . import _format, _params
from ._ui import ReaderGoneError, Ui, gap_line, message_line, silence_stdout
from .peers import discovery_from, discovery_options, service_callback

__all__ = ["sub"]

_SLICE = 0.2
"""Longest wait inside one recv: bounds how late --timeout fires."""


@click.command()
@_params.endpoint_options
@click.option("-s", "--service", callback=service_callback, metavar="NAME",
              help="Receive from every publisher of service NAME, found by discovery, as "
                   "they come and go (docs/discovery.md).")
@discovery_options
@click.argument("patterns", nargs=-1, metavar="[PATTERN]...", callback=_params.patterns_callback)
@click.option("-H", "--header", "headers", multiple=True, metavar="KEY=VALUE",
              callback=_params.headers_callback,
              help="Only messages with this header (repeatable; see --all/--any).")
@click.option("--any/--all", "match_any", default=False,
              help="With several -H: one must match (--any) or every one (--all, the default).")
@click.option("-n", "--count", type=click.IntRange(min=1), default=None, metavar="N",
              help="Exit after N messages.")
@click.option("-t", "--timeout", type=click.FloatRange(min=0.0, min_open=True), default=None,
              metavar="SECONDS",
              help="Exit after SECONDS without a message (exit 1 if --count was not reached).")
@click.option("--json", "as_json", is_flag=True,
              help="One JSON object per line, for messages and gaps. The payload is 'data', "
                   "read per 'encoding': json, base64 (bytes) or msgpack+base64.")
@click.option("--full", is_flag=True, help="Never truncate payloads.")
@click.option("--name", envvar="PEERMQ_NODE_NAME", help="Node name [env: PEERMQ_NODE_NAME].")
@click.pass_obj
def sub(
    ui: Ui,
    bind: list[str],
    connect: list[str],
    patterns: tuple[str, ...],
    headers: dict[str, str],
    match_any: bool,
    count: int | None,
    timeout: float | None,
    as_json: bool,
    full: bool,
    name: str | None,
    service: str | None = None,
    interfaces: tuple[str, ...] = (),
    static_peers: tuple[str, ...] = (),
    peers_file: str | None = None,
    no_mdns: bool = False,
) -> None:
    """Print messages whose topic matches a PATTERN (default '>': all of them).

    Patterns are NATS-style: '*' is one segment, '>' the rest ('orders.>').
    Gaps (messages a publisher sent that never arrived) are printed where they
    are noticed, marked '!! GAP'. Pipe-friendly: '| head -1' ends it cleanly
    (exit 0); Ctrl-C exits 130.

    \b
      peermq sub --connect 5555 'orders.>' -H region=eu
      peermq sub --bind 5556 --json --count 10 > messages.jsonl
      peermq sub --service orders 'orders.>'
    """
    if service is None:
        _params.require_endpoints(bind, connect)
    finding = discovery_from(interfaces, static_peers, peers_file, no_mdns) if service else None
    gaps: list[Gap] = []
    tally = _Tally()
    try:
        with Node(name=name, discovery=finding, security=_params.security()) as node, Subscriber(
            node=node, topics=patterns, headers=headers or None,
            match=HeaderMatch.ANY if match_any else HeaderMatch.ALL, on_gap=gaps.append,
            service=service,
        ) as subscriber:
            if service is not None:
                ui.status(f"looking for publishers of {service}")
                assert subscriber.discovery is not None
                subscriber.discovery.on_peer(lambda ev: ui.status(
                    f"{'++' if ev.kind.value == 'joined' else '--'} {ev.peer.instance} "
                    f"at {ev.peer.endpoint} ({ev.reason})"))
            for ep in bind:
                ui.status(f"bound {subscriber.bind(ep)}")
            for ep in connect:
                subscriber.connect(ep)
            try:
                _print_until(ui, subscriber, gaps, tally, count, timeout, as_json, full)
            finally:
                tally.stats = subscriber.stats()
    except KeyboardInterrupt:
        _summary(ui, tally)
        raise click.exceptions.Exit(130) from None
    except ReaderGoneError:
        silence_stdout()
        return
    except PeermqError as exc:
        raise click.ClickException(str(exc)) from None
    _summary(ui, tally)
    if count is not None and tally.printed < count:
        raise click.ClickException(
            f"got {tally.printed} of {count} messages: none for {timeout}s"
        )


def _print_until(
    ui: Ui,
    subscriber: Subscriber,
    gaps: list[Gap],
    tally: _Tally,
    count: int | None,
    timeout: float | None,
    as_json: bool,
    full: bool,
) -> None:
    """Print messages (and the gaps noticed on the way) until --count or --timeout."""
    last = time.monotonic()
    while count is None or tally.printed < count:
        wait = _SLICE
        if timeout is not None:
            left = last + timeout - time.monotonic()
            if left <= 0:
                return
            wait = min(wait, left)
        try:
            msg = subscriber.recv(timeout=wait)
        except TimeoutError:
            continue
        last = time.monotonic()
        for gap in gaps:
            if as_json:
                ui.json(_format.gap_json(gap))
            else:
                ui.line(gap_line(gap, msg.timestamp))
        gaps.clear()
        if as_json:
            ui.json(_format.message_json(msg))
        else:
            ui.line(message_line(msg, full=full))
        tally.printed += 1


@dataclass
class _Tally:
    printed: int = 0
    stats: SocketStats = field(default_factory=SocketStats)


def _summary(ui: Ui, tally: _Tally) -> None:
    s = tally.stats
    ui.status(f"received {tally.printed}, gaps {s.gaps} (messages lost), malformed {s.malformed}")
