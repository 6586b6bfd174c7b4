"""``peermq tap``: watch what the nodes of a live system send, through their mirrors."""

from __future__ import annotations

import os
import select
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import IO

import click
from rich.live import Live

from ..config import DiscoveryOptions
from ..discovery import options_from_env
from ..errors import ConfigError, PeermqError
from ..node import Node
from ..tap import (
    Event,
    HeaderTest,
    NodeFound,
    NodeJoined,
    NodeLeft,
    NodeRefused,
    Recorder,
    Tap,
    TapFilter,
    TapGap,
    TapMessage,
    TapStats,
    Template,
    hexdump,
    parse_header_test,
    payload_bytes,
)
from . import _format, _params, _tap_view
from ._ui import ReaderGoneError, Ui, silence_stdout

__all__ = ["tap"]

_SLICE = 0.2
"""Longest wait for events: bounds how late --timeout, --idle and the stats refresh act."""
_HEX_LIMIT = 256
"""Bytes of payload ``--hex`` dumps before it truncates (``--full`` dumps all)."""


class _Sink:
    """Data output: text or bytes, each record ended by a newline or (``-0``) a NUL."""

    def __init__(self, ui: Ui, nul: bool) -> None:
        self.file: IO[str] = ui.out.file
        self.end = "\0" if nul else "\n"

    def text(self, line: str) -> None:
        try:
            self.file.write(line + self.end)
        except BrokenPipeError:
            raise ReaderGoneError from None

    def data(self, raw: bytes) -> None:
        buf = getattr(self.file, "buffer", None)
        try:
            if buf is None:  # a text-only stream (a test's StringIO)
                self.file.write(raw.decode("utf-8", "surrogateescape") + self.end)
                return
            self.file.flush()
            buf.write(raw + self.end.encode())
        except BrokenPipeError:
            raise ReaderGoneError from None

    def reader_gone(self) -> bool:
        """True once the reader of a pipe went away (``| head -1``), even with nothing to write."""
        try:
            fd = self.file.fileno()
        except (AttributeError, OSError, ValueError):
            return False  # not a real file: nothing to ask
        poller = select.poll()
        poller.register(fd, select.POLLOUT)
        return any(ev & (select.POLLERR | select.POLLHUP) for _, ev in poller.poll(0))

    def flush(self) -> None:
        try:
            self.file.flush()
            buf = getattr(self.file, "buffer", None)
            if buf is not None:
                buf.flush()
        except BrokenPipeError:
            raise ReaderGoneError from None


@dataclass
class _Show:
    """How messages are printed: the output options, checked and compiled."""

    ui: Ui
    sink: _Sink
    mode: str
    """pretty, json, raw, hex or template."""
    template: Template | None
    full: bool
    events: bool

    def message(self, msg: TapMessage) -> None:
        if self.mode == "json":
            self.sink.text(_format.dumps(_tap_view.message_json(msg)))
        elif self.mode == "raw":
            self.sink.data(payload_bytes(msg.data))
        elif self.mode == "template":
            assert self.template is not None
            self.sink.text(self.template.render(msg))
        elif self.mode == "hex":
            raw = payload_bytes(msg.data)
            self.ui.line(_tap_view.message_line(msg, full=False))
            for line in hexdump(raw, None if self.full else _HEX_LIMIT):
                self.ui.line("  " + line)
        else:
            self.ui.line(_tap_view.message_line(msg, full=self.full))

    def other(self, event: Event) -> None:
        """Gaps and node events: inline in pretty/hex/json output, on stderr otherwise."""
        if isinstance(event, TapGap):
            if self.mode == "json":
                self.sink.text(_format.dumps(_tap_view.gap_json(event)))
            elif self.mode in ("pretty", "hex"):
                self.ui.line(_tap_view.gap_line(event))
            else:
                self.ui.status(_tap_view.gap_line(event))
        elif isinstance(event, NodeRefused) or (
            isinstance(event, (NodeFound, NodeJoined, NodeLeft)) and self.events
        ):  # a refusal is shown even with --no-events: it is why nothing comes
            if self.mode == "json":
                self.sink.text(_format.dumps(_tap_view.node_json(event)))
            elif self.mode in ("pretty", "hex"):
                self.ui.line(_tap_view.node_line(event))
            else:
                self.ui.status(_tap_view.node_line(event))


@dataclass
class _Limits:
    count: int | None
    timeout: float | None
    idle: float | None


@dataclass
class _Tally:
    seen: int = 0
    shown: int = 0
    gaps: int = 0
    nodes: int = 0
    ended: str = ""


def _mirror_endpoints(ctx: click.Context, param: click.Parameter,
                      values: Sequence[str]) -> list[str]:
    return [_params.endpoint(v, binding=False) for v in values]


def _header_tests(ctx: click.Context, param: click.Parameter,
                  values: Sequence[str]) -> list[HeaderTest]:
    try:
        return [parse_header_test(v) for v in values]
    except ConfigError as exc:
        raise click.BadParameter(str(exc)) from None


@click.command()
@click.argument("patterns", nargs=-1, metavar="[PATTERN]...", callback=_params.patterns_callback)
@click.option("-c", "--connect", multiple=True, metavar="ENDPOINT", callback=_mirror_endpoints,
              help="A node's mirror endpoint (repeatable): tcp://HOST:PORT, ipc://PATH, "
                   "HOST:PORT or PORT.")
@click.option("--discover", is_flag=True,
              help="Also find mirrors by discovery (mDNS, PEERMQ_PEERS); the default when no "
                   "--connect is given.")
@click.option("-x", "--exclude", multiple=True, metavar="PATTERN",
              callback=lambda c, p, v: _params.patterns_callback(c, p, v) if v else (),
              help="Hide topics matching PATTERN (repeatable).")
@click.option("-H", "--header", "headers", multiple=True, metavar="TEST",
              callback=_header_tests,
              help="Only messages whose headers pass TEST: key=value, key!=value, key (present) "
                   "or !key (absent). Repeatable; all must pass.")
@click.option("-w", "--where", metavar="EXPR",
              help="Only messages for which EXPR holds, e.g. 'data.price > 100 and "
                   "headers.region == \"eu\"' (see docs/tap.md; never evaluated as Python).")
@click.option("--node", "nodes", multiple=True, metavar="NAME",
              help="Only nodes whose name matches the glob NAME, or whose id starts with it.")
@click.option("-n", "--count", type=click.IntRange(min=1), default=None,
              help="Exit after N messages shown.")
@click.option("-t", "--timeout", type=click.FloatRange(min=0.0, min_open=True), default=None,
              metavar="SECONDS", help="Exit after SECONDS in all.")
@click.option("--idle", type=click.FloatRange(min=0.0, min_open=True), default=None,
              metavar="SECONDS", help="Exit after SECONDS without a message shown.")
@click.option("--json", "as_json", is_flag=True,
              help="One JSON object per line: messages, gaps and node events.")
@click.option("--raw", is_flag=True, help="Payloads only, as they are (bytes as bytes).")
@click.option("--hex", "as_hex", is_flag=True, help="Each message, then a hex dump of its payload.")
@click.option("--template", metavar="TEXT",
              help="One line per message from TEXT: '{topic} {seq} {data.price}' (fields are "
                   "--where expressions).")
@click.option("-0", "--null", "nul", is_flag=True,
              help="End each record with NUL instead of a newline (--json, --raw, --template).")
@click.option("--full", is_flag=True, help="Never truncate payloads.")
@click.option("--stats", is_flag=True,
              help="Instead of messages: a table of rates, bandwidth, gaps and drops per topic "
                   "and node, refreshed every --interval.")
@click.option("--interval", type=click.FloatRange(min=0.1), default=1.0, show_default=True,
              metavar="SECONDS", help="How often --stats refreshes.")
@click.option("--record", type=click.Path(dir_okay=False, writable=True), metavar="FILE",
              help="Also write what is shown to FILE (MCAP; see 'peermq info' and 'replay').")
@click.option("--events/--no-events", default=True,
              help="Show nodes joining and leaving (default: shown).")
@click.option("--name", envvar="PEERMQ_NODE_NAME", help="Node name [env: PEERMQ_NODE_NAME].")
@click.pass_obj
def tap(
    ui: Ui,
    patterns: tuple[str, ...],
    connect: list[str],
    discover: bool,
    exclude: tuple[str, ...],
    headers: list[HeaderTest],
    where: str | None,
    nodes: tuple[str, ...],
    count: int | None,
    timeout: float | None,
    idle: float | None,
    as_json: bool,
    raw: bool,
    as_hex: bool,
    template: str | None,
    nul: bool,
    full: bool,
    stats: bool,
    interval: float,
    record: str | None,
    events: bool,
    name: str | None,
) -> None:
    """Show every message that matches a PATTERN (default '>': all), as nodes send it.

    Each node has a mirror that copies what it sends (PUB and PUSH alike) only while a tap is
    attached, so a tap steals nothing from pullers and costs nothing when nobody watches.
    Without --connect, mirrors are found by discovery: those announced on the network (a
    node announces its mirror when it uses discovery) and static peers of the service
    'peermq.mirror' in PEERMQ_PEERS.
    Gaps (messages lost on the way) are marked '!! GAP'; nodes joining and leaving '++'/'--'.
    A node with security on lets in only a tap whose key it trusts: run the tap with
    PEERMQ_SECURITY=curve (and PEERMQ_KEYS, PEERMQ_TRUST); a refusal is marked '!! refused'.
    Ctrl-C exits 130; '| head -1' ends it cleanly.

    \b
      peermq tap 'orders.>' --where 'data.total > 100'
      peermq tap --connect 7000 'orders.>' --where 'data.total > 100'
      peermq tap -c 7000 -c 7001 --stats
      peermq tap -c 7000 --json --count 100 > sample.jsonl
      peermq tap -c 7000 --record traffic.mcap --timeout 60
      PEERMQ_SECURITY=curve peermq tap -c 7000
    """
    mode = _output_mode(as_json, raw, as_hex, template, nul)
    security = _params.security()  # PEERMQ_SECURITY etc.: a bad value is a usage error
    finding: DiscoveryOptions | None = None
    if discover or not connect:
        finding = options_from_env(os.environ)
        if not (finding.mdns or finding.peers or finding.peers_file):
            raise click.UsageError(
                "nothing to find mirrors with: PEERMQ_MDNS is off and there are no static "
                "peers; give --connect ENDPOINT (a node's mirror endpoint)")
    try:
        flt = TapFilter(topics=patterns, exclude=exclude, headers=headers, nodes=nodes,
                        where=where)
    except ConfigError as exc:
        raise click.BadParameter(str(exc), param_hint="'--where'") from None
    try:
        tmpl = Template(template) if template is not None else None
    except ConfigError as exc:
        raise click.BadParameter(str(exc), param_hint="'--template'") from None
    show = _Show(ui, _Sink(ui, nul), mode, tmpl, full, events)
    tally = _Tally()
    limits = _Limits(count, timeout, idle)
    try:
        with Node(name=name, mirror=None, discovery=finding, security=security) as node, \
                Tap(node=node, connect=connect, topics=patterns) as watcher:
            if finding is not None:
                watcher.discover(node.discovery)
                ui.status("looking for mirrors by discovery"
                          + (" (mDNS" + (f" on {', '.join(finding.interfaces)})"
                                         if finding.interfaces else ")")
                             if finding.mdns else " (static peers only)"))
            recorder = Recorder(record, metadata={"topics": " ".join(patterns)}) if record \
                else None
            try:
                if stats:
                    _stats_loop(ui, watcher, flt, recorder, tally, limits, interval, as_json)
                else:
                    _show_loop(show, watcher, flt, recorder, tally, limits)
            finally:
                if recorder is not None:
                    recorder.close()
                    ui.status(f"recorded {recorder.count} messages to {record}")
    except KeyboardInterrupt:
        _summary(ui, tally)
        raise click.exceptions.Exit(130) from None
    except ReaderGoneError:
        silence_stdout()
        return
    except PeermqError as exc:
        raise click.ClickException(str(exc)) from None
    _summary(ui, tally)
    if count is not None and tally.shown < count:
        raise click.ClickException(f"showed {tally.shown} of {count} messages before the "
                                   f"{tally.ended}")


def _output_mode(as_json: bool, raw: bool, as_hex: bool, template: str | None, nul: bool
                 ) -> str:
    modes = [m for m, on in (("json", as_json), ("raw", raw), ("hex", as_hex),
                             ("template", template is not None)) if on]
    if len(modes) > 1:
        raise click.UsageError(f"--{modes[0]} and --{modes[1]} contradict each other; give one")
    mode = modes[0] if modes else "pretty"
    if nul and mode in ("pretty", "hex"):
        raise click.UsageError("-0 separates records of --json, --raw or --template output")
    return mode


def _due(limits: _Limits, tally: _Tally, start: float, last: float) -> float | None:
    """Seconds left before --timeout or --idle ends the run (None: no limit); sets ``ended``."""
    now = time.monotonic()
    left: float | None = None
    if limits.timeout is not None:
        left = start + limits.timeout - now
        if left <= 0:
            tally.ended = f"--timeout of {limits.timeout}s"
            return 0.0
    if limits.idle is not None:
        quiet = last + limits.idle - now
        if quiet <= 0:
            tally.ended = f"--idle of {limits.idle}s"
            return 0.0
        left = quiet if left is None else min(left, quiet)
    return left


def _show_loop(
    show: _Show, watcher: Tap, flt: TapFilter, recorder: Recorder | None, tally: _Tally,
    limits: _Limits,
) -> None:
    start = last = time.monotonic()
    while True:
        left = _due(limits, tally, start, last)
        if left == 0.0:
            return
        if show.sink.reader_gone():
            raise ReaderGoneError
        batch = watcher.poll(_SLICE if left is None else min(left, _SLICE))
        for event in batch:
            if isinstance(event, TapMessage):
                tally.seen += 1
                if not flt.message_ok(event):
                    continue
                if recorder is not None:
                    recorder.write(event)
                show.message(event)
                tally.shown += 1
                last = time.monotonic()
                if limits.count is not None and tally.shown >= limits.count:
                    show.sink.flush()
                    return
            elif flt(event):
                _count(tally, event)
                show.other(event)
        if batch:
            show.sink.flush()


def _count(tally: _Tally, event: Event) -> None:
    if isinstance(event, TapGap):
        tally.gaps += event.lost
    elif isinstance(event, NodeJoined):
        tally.nodes += 1


def _stats_loop(
    ui: Ui, watcher: Tap, flt: TapFilter, recorder: Recorder | None, tally: _Tally,
    limits: _Limits, interval: float, as_json: bool,
) -> None:
    table = TapStats()
    sink = _Sink(ui, nul=False)
    start = last = time.monotonic()
    next_draw = start + interval
    live = Live(console=ui.out, auto_refresh=False, transient=False) \
        if ui.out.is_terminal and not as_json else None

    def draw(final: bool = False) -> None:
        now = time.time()
        topics, nodes = table.topics(now), table.nodes(now)
        if as_json:
            for t in topics:
                ui.json(_tap_view.topic_stats_json(t, now))
            for n in nodes:
                ui.json(_tap_view.node_stats_json(n, now))
            return
        title = (f"peermq tap  {_format.time_text(now)}  {tally.shown} messages, "
                 f"{tally.gaps} lost, {len(nodes)} nodes")
        view = _tap_view.stats_view(topics, nodes, title=title)
        if live is not None:
            live.update(view, refresh=True)
        elif final or not ui.quiet:
            ui.out.print(view)

    try:
        if live is not None:
            live.start()
        while True:
            left = _due(limits, tally, start, last)
            if left == 0.0:
                break
            if sink.reader_gone():
                raise ReaderGoneError
            wait = min(_SLICE, max(0.0, next_draw - time.monotonic()))
            for event in watcher.poll(wait if left is None else min(left, wait)):
                if _tabulate(ui, table, flt, recorder, tally, event):
                    last = time.monotonic()
            if time.monotonic() >= next_draw:
                next_draw = time.monotonic() + interval
                draw()
            if limits.count is not None and tally.shown >= limits.count:
                break
        draw(final=True)
    finally:
        if live is not None:
            live.stop()


def _tabulate(ui: Ui, table: TapStats, flt: TapFilter, recorder: Recorder | None,
              tally: _Tally, event: Event) -> bool:
    """Count ``event`` for --stats; True if it is a message shown."""
    if isinstance(event, NodeRefused):  # not a row of the table, but why one may be missing
        ui.status(_tap_view.node_line(event))
        return False
    message = isinstance(event, TapMessage)
    if message:
        tally.seen += 1
    if not flt(event):
        return False
    if isinstance(event, TapMessage):
        tally.shown += 1
        if recorder is not None:
            recorder.write(event)
    _count(tally, event)
    table.add(event)
    return message


def _summary(ui: Ui, tally: _Tally) -> None:
    ui.status(f"showed {tally.shown} of {tally.seen} messages seen, {tally.gaps} lost "
              f"(gaps), {tally.nodes} nodes joined")
