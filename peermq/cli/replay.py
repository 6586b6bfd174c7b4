"""``peermq replay FILE`` and ``peermq info FILE``: play back and summarise tap recordings."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator

import click
from rich.table import Table

from ..errors import PeermqError
from ..node import Node
from ..sockets import Publisher, Pusher
from ..tap import RecordingInfo, TapMessage, read_messages, summarize
from . import _format, _params, _tap_view
from ._ui import ReaderGoneError, Ui, silence_stdout

__all__ = ["info", "replay"]

_NAP = 0.2
"""Longest single sleep while pacing: Ctrl-C is seen at least this often."""


_file_arg = click.argument("file", type=click.Path(exists=True, dir_okay=False, readable=True))


def _messages(path: str, patterns: tuple[str, ...], loop: bool) -> Iterator[TapMessage]:
    """The recording's messages, again and again with ``loop``; each pass reads the file anew."""
    for turn in itertools.count():
        got = False
        for msg in read_messages(path, patterns):
            got = True
            yield msg
        if not loop or not got or turn > 1_000_000:
            return


def _pace(start: float, first: float, when: float, rate: float) -> None:
    """Sleep until ``when`` (recording time) comes, ``rate`` times as fast as recorded."""
    due = start + (when - first) / rate
    while True:
        left = due - time.monotonic()
        if left <= 0:
            return
        time.sleep(min(left, _NAP))


@click.command()
@_file_arg
@click.argument("patterns", nargs=-1, metavar="[PATTERN]...", callback=_params.patterns_callback)
@_params.endpoint_options
@click.option("-r", "--rate", type=click.FloatRange(min=0.0), default=1.0, show_default=True,
              help="Speed: 2 plays twice as fast as recorded; 0 as fast as possible.")
@click.option("--loop", is_flag=True, help="Start again at the end (until Ctrl-C or --count).")
@click.option("-n", "--count", type=click.IntRange(min=1), default=None,
              help="Stop after N messages.")
@click.option("--push", "use_push", is_flag=True,
              help="Send with a pusher (each message to one puller) instead of a publisher.")
@click.option("-w", "--wait-subscribers", type=click.IntRange(min=0), default=0, metavar="N",
              help="Before sending, wait until N subscribers (or pullers) are connected.")
@click.option("-t", "--timeout", type=click.FloatRange(min=0.0), default=5.0, show_default=True,
              metavar="SECONDS", help="How long --wait-subscribers may wait.")
@click.option("--json", "as_json", is_flag=True,
              help="Print the final summary as one JSON object on stdout.")
@click.option("--name", envvar="PEERMQ_NODE_NAME", help="Node name [env: PEERMQ_NODE_NAME].")
@click.pass_obj
def replay(
    ui: Ui,
    file: str,
    patterns: tuple[str, ...],
    bind: list[str],
    connect: list[str],
    rate: float,
    loop: bool,
    count: int | None,
    use_push: bool,
    wait_subscribers: int,
    timeout: float,
    as_json: bool,
    name: str | None,
) -> None:
    """Send the messages of a recording (from 'peermq tap --record') again, at their pace.

    Topics, headers and payloads are as recorded; the sender is this process, with its own
    sequence numbers. PATTERNs choose topics (default '>': all).

    \b
      peermq replay traffic.mcap --bind 5555 --wait-subscribers 1
      peermq replay traffic.mcap 'orders.>' --connect 5556 --rate 10 --loop
    """
    _params.require_endpoints(bind, connect)
    sent = dropped = 0
    try:
        with Node(name=name, security=_params.security()) as node:
            sender: Publisher | Pusher = (Pusher if use_push else Publisher)(node=node)
            with sender:
                for ep in bind:
                    ui.status(f"bound {sender.bind(ep)}")
                for ep in connect:
                    sender.connect(ep)
                if wait_subscribers:
                    _wait(sender, wait_subscribers, timeout)
                start = time.monotonic()
                first: float | None = None
                for msg in _messages(file, patterns, loop):
                    if count is not None and sent + dropped >= count:
                        break
                    if rate > 0:
                        if first is None or msg.received < first:
                            first, start = msg.received, time.monotonic()
                        _pace(start, first, msg.received, rate)
                    if sender.send(msg.topic, msg.data, msg.headers or None):
                        sent += 1
                    else:
                        dropped += 1
    except KeyboardInterrupt:
        _report(ui, as_json, sent, dropped)
        raise click.exceptions.Exit(130) from None
    except ReaderGoneError:
        silence_stdout()
        return
    except PeermqError as exc:
        raise click.ClickException(str(exc)) from None
    _report(ui, as_json, sent, dropped)


def _wait(sender: Publisher | Pusher, n: int, timeout: float) -> None:
    try:
        if isinstance(sender, Publisher):
            sender.wait_for_subscribers(n, timeout=timeout)
        else:
            sender.wait_for_peers(n, timeout=timeout)
    except TimeoutError as exc:
        raise click.ClickException(f"{exc}; nothing was sent") from None


def _report(ui: Ui, as_json: bool, sent: int, dropped: int) -> None:
    if as_json:
        ui.json({"type": "summary", "sent": sent, "dropped": dropped})
    else:
        ui.status(f"replayed {sent}, dropped {dropped}")


@click.command()
@_file_arg
@click.option("--json", "as_json", is_flag=True,
              help="One JSON object for the file, then one per topic.")
@click.pass_obj
def info(ui: Ui, file: str, as_json: bool) -> None:
    """Summarise a recording: time span, message counts, rates, senders and gaps per topic.

    \b
      peermq info traffic.mcap
    """
    try:
        summary = summarize(file)
    except PeermqError as exc:
        raise click.ClickException(str(exc)) from None
    try:
        if as_json:
            _info_json(ui, summary)
        else:
            _info_table(ui, summary)
    except ReaderGoneError:
        silence_stdout()


def _info_json(ui: Ui, s: RecordingInfo) -> None:
    ui.json({
        "type": "recording", "path": s.path, "size": s.size, "library": s.library,
        "complete": s.complete, "messages": s.messages, "start": s.start, "end": s.end,
        "duration": s.duration, "chunks": s.chunks, "compression": s.compression,
        "topics": len(s.channels), "undecodable": s.undecodable, "metadata": s.metadata,
    })
    for ch in s.channels.values():
        span = ch.last - ch.first
        ui.json({
            "type": "topic", "topic": ch.topic, "encoding": ch.encoding,
            "messages": ch.messages, "bytes": ch.bytes, "first": ch.first, "last": ch.last,
            "rate": round((ch.messages - 1) / span, 3) if span > 0 else 0.0,
            "senders": len(ch.senders), "gaps": ch.gaps,
        })


def _info_table(ui: Ui, s: RecordingInfo) -> None:
    state = "complete" if s.complete else "cut short (no index: read to its last whole chunk)"
    ui.line(f"file:      {s.path} ({_tap_view.size_text(s.size)}, {state})")
    if s.library:
        ui.line(f"library:   {s.library}" + (f", {s.compression} chunks: {s.chunks}"
                                            if s.complete else ""))
    rate = (s.messages - 1) / s.duration if s.duration > 0 else 0.0
    ui.line(f"messages:  {s.messages} in {len(s.channels)} topics over {s.duration:.3f}s "
            f"({rate:.1f}/s)")
    if s.messages:
        ui.line(f"time:      {_stamp(s.start)} .. {_stamp(s.end)}")
    if s.undecodable:
        ui.line(f"unreadable peermq messages: {s.undecodable}")
    table = Table(pad_edge=False)
    for col, justify in (("topic", "left"), ("messages", "right"), ("bytes", "right"),
                         ("rate", "right"), ("senders", "right"), ("gaps", "right"),
                         ("encoding", "left")):
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    for ch in sorted(s.channels.values(), key=lambda c: c.topic):
        span = ch.last - ch.first
        table.add_row(ch.topic, str(ch.messages), _tap_view.size_text(ch.bytes),
                      f"{(ch.messages - 1) / span:.1f}/s" if span > 0 else "-",
                      str(len(ch.senders)), str(ch.gaps), ch.encoding)
    if s.channels:
        ui.out.print(table)


def _stamp(t: float) -> str:
    return time.strftime("%Y-%m-%d ", time.localtime(t)) + _format.time_text(t)
