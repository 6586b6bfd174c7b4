"""``peermq spool``: look into a spool directory, verify it, and handle its dead letters."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from rich.text import Text

from ..errors import PeermqError
from ..message import Message
from ..spool import Spool, views
from . import _format
from ._ui import ReaderGoneError, Ui, silence_stdout

__all__ = ["spool"]

_PATH = click.argument("path", type=click.Path(path_type=Path, exists=True, file_okay=False))
_JSON = click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
_FULL = click.option("--full", is_flag=True, help="Never truncate payloads.")


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:,} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)


def _command(*params: Callable[[Any], Any]) -> Callable[[Callable[..., None]], click.Command]:
    """A ``peermq spool`` command: PATH, then ``params`` (click arguments and options), the Ui;
    a PeermqError is one clear sentence (exit 1), a reader that went away (``| head``) a quiet
    end."""

    def make(fn: Callable[..., None]) -> click.Command:
        @functools.wraps(fn)
        def run(*args: object, **kwargs: object) -> None:
            try:
                fn(*args, **kwargs)
            except ReaderGoneError:
                silence_stdout()
            except PeermqError as exc:
                raise click.ClickException(str(exc)) from None

        cmd: Any = click.pass_obj(run)
        for param in reversed(params):
            cmd = param(cmd)
        return spool.command()(_PATH(cmd))

    return make


@click.group()
def spool() -> None:
    """Look into a spool (Pusher(spool=DIR)): counts, messages, damage, dead letters.

    stats, inspect, verify and dlq only read, and work while a pusher has the spool
    open (its state is then the last checkpoint's); requeue needs it closed.

    \b
      peermq spool stats ./spool
      peermq spool inspect ./spool --state pending -n 20
      peermq spool verify ./spool && echo intact
      peermq spool dlq ./spool --json
      peermq spool requeue ./spool --all
    """


@_command(_JSON)
def stats(ui: Ui, path: Path, as_json: bool) -> None:
    """Messages held, pending and unacknowledged, dead letters and damage."""
    o = views.overview(path)
    if as_json:
        ui.json({"type": "stats", "path": o.path, "id": o.id, "kind": o.kind,
                 "holder": o.holder, "messages": o.messages, "bytes": o.bytes,
                 "segments": o.segments, "first_seq": o.first_seq, "last_seq": o.last_seq,
                 "cursor": o.cursor, "unacked": o.unacked, "pending": o.pending,
                 "dead": o.dead, "quarantined": o.quarantined, "damage": len(o.damage),
                 "consumers": {k: {"cursor": c, "unacked": u}
                               for k, (c, u) in o.consumers.items()}})
        return
    user = f"open in process {o.holder}" if o.holder else "not open"
    ui.line(f"spool       {o.path} ({o.kind} {o.id}, {user})")
    span = f" (seq {o.first_seq}..{o.last_seq})" if o.messages else ""
    ui.line(f"messages    {o.messages:,} in {o.segments} segments, {_size(o.bytes)}{span}")
    ui.line(f"pending     {o.pending:,} not acknowledged, {o.unacked:,} of them delivered "
            "(as of the last checkpoint)")
    ui.line(f"dead        {o.dead:,} dead letters")
    for name, (cursor, unacked) in sorted(o.consumers.items()):
        ui.line(f"subscriber  {name}: next seq {cursor:,}, {unacked:,} unacknowledged")
    if o.damage or o.quarantined:
        ui.line(f"damage      {len(o.damage)} damaged places now, {o.quarantined} files in "
                "quarantine/ ('peermq spool verify' shows where)")
    else:
        ui.line("damage      none")


def _message_line(seq: int, label: str, msg: Message | None, size: int, full: bool) -> Text:
    text = Text()
    text.append(f"#{seq:<8}", style="bold")
    text.append(f" {label:<11}", style={"pending": "yellow", "acked": "dim"}.get(
        label.split(maxsplit=1)[0], "red"))
    if msg is None:
        text.append(f" (not a peermq message, {size} bytes)", style="red")
        return text
    text.append(f" {msg.topic}", style="bold cyan")
    if msg.headers:
        text.append(f"  {_format.headers_text(msg.headers)}", style="yellow")
    kind, payload = _format.payload_text(msg.data, None if full else _format.PAYLOAD_LIMIT)
    text.append("  ")
    text.append(payload, style={"binary": "green"}.get(kind, ""))
    return text


def _message_json(msg: Message | None, **extra: object) -> dict[str, object]:
    out: dict[str, object] = dict(extra)
    if msg is not None:
        body = _format.message_json(msg)
        body.pop("type")
        body["wire_seq"] = body.pop("seq")
        out.update(body)
    return out


@_command(
    click.option("--from", "start", type=click.IntRange(min=1), default=1, metavar="SEQ",
                 help="Start at this seq."),
    click.option("-n", "--count", type=click.IntRange(min=1), default=None,
                 help="Show at most N messages."),
    click.option("--state", type=click.Choice(["pending", "unacked", "acked", "dead", "kept"]),
                 default=None, help="Only messages in this state."),
    _FULL,
    _JSON,
)
def inspect(ui: Ui, path: Path, start: int, count: int | None, state: str | None, full: bool,
            as_json: bool) -> None:
    """List the messages held, with their state: pending (never delivered), unacked,
    acked (kept until their whole segment is), or dead (in the dead letters)."""
    shown = 0
    for m in views.messages(path, start=start):
        if state is not None and m.state != state:
            continue
        if count is not None and shown >= count:
            break
        if as_json:
            ui.json(_message_json(m.message, type="stored", spool_seq=m.seq,
                                  state=m.state, deliveries=m.deliveries, size=m.size))
        else:
            label = m.state + (f" x{m.deliveries}" if m.deliveries else "")
            ui.line(_message_line(m.seq, label, m.message, m.size, full))
        shown += 1
    if not shown:
        ui.status("no messages" + (f" in state {state}" if state else ""))


@_command(_JSON)
def verify(ui: Ui, path: Path, as_json: bool) -> None:
    """Check every record's checksum (read only); exit 1 if anything is damaged."""
    v = views.verify(path)
    for d in v.damage:
        if as_json:
            ui.json({"type": "damage", "segment": d.segment, "kind": d.kind,
                     "offset": d.offset, "length": d.length})
        else:
            ui.line(f"{d.kind:<9} {d.segment} at byte {d.offset:,}, {d.length:,} bytes")
    if as_json:
        ui.json({"type": "verify", "ok": v.ok, "records": v.records, "dead": v.dead,
                 "damage": len(v.damage), "checkpoint": v.checkpoint})
    else:
        ui.status(f"{v.records:,} messages and {v.dead:,} dead letters checked; "
                  f"{len(v.damage)} damaged places; checkpoint {v.checkpoint}")
    if not v.ok:
        raise click.ClickException(
            "damage found: opening the spool cuts a torn tail and quarantines the rest "
            "(see docs/spool.md)"
        )


@_command(
    click.option("--all", "show_all", is_flag=True, help="Also those already requeued."),
    _FULL,
    _JSON,
)
def dlq(ui: Ui, path: Path, show_all: bool, full: bool, as_json: bool) -> None:
    """List the dead letters: messages delivered max_deliver times, or rejected."""
    shown = 0
    for d in views.dead_letters(path):
        if d.requeued and not show_all:
            continue
        if as_json:
            ui.json(_message_json(d.message, type="dead", spool_seq=d.seq,
                                  deliveries=d.deliveries, reason=d.reason,
                                  dead_time=d.time, requeued=d.requeued))
        else:
            label = f"{d.reason} x{d.deliveries}" + (" (requeued)" if d.requeued else "")
            ui.line(_message_line(d.seq, label, d.message, 0, full))
        shown += 1
    if not shown:
        ui.status("no dead letters")


@_command(
    click.argument("seqs", nargs=-1, type=click.IntRange(min=1), metavar="[SEQ]..."),
    click.option("--all", "everything", is_flag=True, help="Requeue every dead letter."),
)
def requeue(ui: Ui, path: Path, seqs: tuple[int, ...], everything: bool) -> None:
    """Put dead letters back in the queue as new messages (by their spool SEQ, or --all).

    The spool must not be open elsewhere: stop its pusher first.
    """
    if bool(seqs) == everything:
        raise click.UsageError("give the SEQs of dead letters to requeue, or --all")
    with Spool(views.check(path)) as sp:  # never make a spool of a directory that is not one
        n = sp.requeue(None if everything else set(seqs))
    ui.status(f"requeued {n} dead letters")
    if not n:
        raise click.ClickException("no dead letter matched")
