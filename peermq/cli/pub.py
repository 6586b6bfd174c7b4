"""``peermq pub``: send messages from the command line."""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Iterable, Iterator
from typing import TextIO

import click

from ..errors import PeermqError
from ..message import SocketStats
from ..node import Node
from ..sockets import Publisher
from . import _params
from ._ui import ReaderGoneError, Ui, silence_stdout
from .peers import discovery_from, discovery_options, service_callback

__all__ = ["pub"]


def _parse_json(text: str, where: str) -> object:
    try:
        return json.loads(text)
    except ValueError as exc:
        raise click.ClickException(f"{where} is not valid JSON: {exc}") from None


def _lines(file: TextIO, as_json: bool) -> Iterator[object]:
    """One message per line of ``file``, read as the lines arrive."""
    name = "stdin" if file.name == "<stdin>" else file.name
    for n, raw in enumerate(file, 1):
        line = raw.removesuffix("\n").removesuffix("\r")
        if not as_json:
            yield line
        elif line.strip():  # JSON lines: blank ones carry nothing
            yield _parse_json(line, f"line {n} of {name}")


def _report(ui: Ui, as_json: bool, stats: SocketStats, subscribers: int) -> None:
    if as_json:
        ui.json({"type": "summary", "sent": stats.sent, "dropped": stats.dropped,
                 "subscribers": subscribers})
        return
    ui.status(f"sent {stats.sent}, dropped {stats.dropped}, subscribers {subscribers}")
    if stats.sent and not subscribers:
        ui.status("hint: no subscriber was there to get them; "
                  "--wait-subscribers N waits for N of them first")


@click.command()
@_params.endpoint_options
@click.option("-s", "--service", callback=service_callback, metavar="NAME",
              help="Announce as a publisher of service NAME (DNS-SD; docs/discovery.md), "
                   "on a port of its own unless --bind is given.")
@discovery_options
@click.argument("topic", callback=_params.topic_callback)
@click.argument("data", required=False)
@click.option("--json-data", "json_data", is_flag=True,
              help="Parse DATA (or each line) as JSON and send the value, not the string.")
@click.option("-f", "--file", "file", type=click.File("r", lazy=False), metavar="FILE",
              help="Send one message per line of FILE ('-' reads stdin as lines arrive).")
@click.option("-n", "--count", type=click.IntRange(min=1), default=1, show_default=True,
              metavar="N",
              help="Send DATA this many times.")
@click.option("-i", "--interval", type=click.FloatRange(min=0.0), default=0.0,
              metavar="SECONDS", help="Pause between messages.")
@click.option("-H", "--header", "headers", multiple=True, metavar="KEY=VALUE",
              callback=_params.headers_callback, help="Add a header (repeatable).")
@click.option("-w", "--wait-subscribers", type=click.IntRange(min=0), default=0, metavar="N",
              help="Before sending, wait until N subscribers are connected and subscribed.")
@click.option("-t", "--timeout", type=click.FloatRange(min=0.0), default=5.0, show_default=True,
              metavar="SECONDS", help="How long --wait-subscribers may wait.")
@click.option("--json", "as_json", is_flag=True,
              help="Print the final summary as one JSON object on stdout.")
@click.option("--name", envvar="PEERMQ_NODE_NAME", help="Node name [env: PEERMQ_NODE_NAME].")
@click.pass_obj
def pub(
    ui: Ui,
    bind: list[str],
    connect: list[str],
    topic: str,
    data: str | None,
    json_data: bool,
    file: TextIO | None,
    count: int,
    interval: float,
    headers: dict[str, str],
    wait_subscribers: int,
    timeout: float,
    as_json: bool,
    name: str | None,
    service: str | None = None,
    interfaces: tuple[str, ...] = (),
    static_peers: tuple[str, ...] = (),
    peers_file: str | None = None,
    no_mdns: bool = False,
) -> None:
    """Publish DATA (a string) on TOPIC, or each line of --file.

    \b
      peermq pub --bind 5555 --wait-subscribers 1 orders.created '{"id": 7}' --json-data
      peermq pub --connect 5556 -H region=eu -n 10 -i 0.5 metrics.cpu 0.42
      tail -f app.log | peermq pub --connect 5556 logs.app --file -
      peermq pub --service orders -w 1 orders.created '{"id": 7}' --json-data
    """
    if service is None:
        _params.require_endpoints(bind, connect)
    finding = discovery_from(interfaces, static_peers, peers_file, no_mdns) if service else None
    if (data is None) == (file is None):
        raise click.UsageError("give DATA or --file, not both" if data is not None
                               else "give DATA, or --file to send lines")
    if file is not None and count != 1:
        raise click.UsageError("--count repeats DATA; with --file every line is sent once")
    payloads: Iterable[object]
    if file is not None:
        payloads = _lines(file, json_data)
    else:
        assert data is not None
        try:
            value = json.loads(data) if json_data else data
        except ValueError as exc:
            raise click.BadParameter(f"not valid JSON: {exc}", param_hint="DATA") from None
        payloads = itertools.repeat(value, count)
    try:
        with Node(name=name, discovery=finding, security=_params.security()) as node, \
                Publisher(node=node, service=service) as publisher:
            if service is not None:
                ui.status(f"announcing service {service} at {', '.join(publisher.endpoints)}")
            for ep in bind:
                ui.status(f"bound {publisher.bind(ep)}")
            for ep in connect:
                publisher.connect(ep)
            if wait_subscribers:
                try:
                    publisher.wait_for_subscribers(wait_subscribers, timeout=timeout)
                except TimeoutError:
                    raise click.ClickException(
                        f"only {publisher.subscribers} of {wait_subscribers} subscribers "
                        f"came within {timeout}s"
                    ) from None
            _send_all(publisher, topic, payloads, headers, interval)
            _report(ui, as_json, publisher.stats(), publisher.subscribers)
    except KeyboardInterrupt:
        raise click.exceptions.Exit(130) from None
    except ReaderGoneError:
        silence_stdout()
    except PeermqError as exc:
        raise click.ClickException(str(exc)) from None


def _send_all(
    publisher: Publisher,
    topic: str,
    payloads: Iterable[object],
    headers: dict[str, str],
    interval: float,
) -> None:
    start = time.monotonic()
    for i, payload in enumerate(payloads):
        if i and interval:
            # pace from the start, so slow sends do not stretch the interval
            pause = start + i * interval - time.monotonic()
            if pause > 0:
                time.sleep(pause)
        publisher.send(topic, payload, headers or None)
