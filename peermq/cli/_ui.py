"""Consoles, logging and the styled lines the commands print.

Data goes to ``Ui.out`` (stdout), everything else (status, summaries, logs) to ``Ui.err``
(stderr), so ``peermq sub --json | jq`` sees data only. Rich colours only a terminal and
honours ``NO_COLOR``; tests inject ``Console(file=io.StringIO(), width=100)`` as ``obj``.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass

from rich.console import Console
from rich.logging import RichHandler
from rich.text import Text

from ..message import Gap, Message
from . import _format

__all__ = [
    "ReaderGoneError",
    "Ui",
    "gap_line",
    "message_line",
    "silence_stdout",
]


class ReaderGoneError(Exception):
    """The reader of our stdout went away (``| head -1``): stop quietly."""


class _Console(Console):
    def on_broken_pipe(self) -> None:
        # rich would exit with 1; the CLI decides (see silence_stdout)
        raise ReaderGoneError


def _console(*, stderr: bool) -> Console:
    return _Console(stderr=stderr, highlight=False, no_color=bool(os.environ.get("NO_COLOR")))


def silence_stdout() -> None:
    """After a broken pipe: point stdout at devnull so the exit flush cannot fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass  # not a real file (a test runner's buffer): nothing to protect


@dataclass
class Ui:
    """What every command prints with."""

    out: Console
    err: Console
    quiet: bool = False
    _handler: logging.Handler | None = None

    @classmethod
    def from_obj(cls, obj: object) -> Ui:
        """Use what the caller put in ``ctx.obj``: a Ui, a Console (for data) or nothing."""
        if isinstance(obj, Ui):
            return obj
        if isinstance(obj, Console):
            return cls(out=obj, err=_console(stderr=True))
        return cls(out=_console(stderr=False), err=_console(stderr=True))

    def status(self, text: str | Text) -> None:
        """A line for the human at the terminal (stderr); ``-q`` silences it."""
        if not self.quiet:
            self.err.print(text, markup=False, highlight=False, soft_wrap=True)

    def line(self, text: str | Text) -> None:
        """A data line (stdout), never wrapped nor interpreted as markup."""
        self.out.print(text, markup=False, highlight=False, soft_wrap=True, emoji=False)

    def json(self, obj: object) -> None:
        """One JSON line on stdout, flushed so a pipe sees it at once."""
        try:
            f = self.out.file
            f.write(_format.dumps(obj) + "\n")
            f.flush()
        except BrokenPipeError:
            raise ReaderGoneError from None

    def configure_logging(self, verbose: int, quiet: bool) -> Callable[[], None]:
        """Send peermq's logs to stderr at the asked level; returns the undo."""
        level = logging.ERROR if quiet else (logging.WARNING, logging.INFO)[min(verbose, 1)]
        if verbose >= 2:
            level = logging.DEBUG
        logger = logging.getLogger("peermq")
        handler = RichHandler(console=self.err, show_path=False, markup=False,
                              rich_tracebacks=False, show_time=verbose >= 2)
        old_level = logger.level
        logger.addHandler(handler)
        logger.setLevel(level)

        def undo() -> None:
            logger.removeHandler(handler)
            logger.setLevel(old_level)

        return undo


def _sender(sender: str, stream: int) -> str:
    return f"{sender[:8]}/{stream}"


def message_line(msg: Message, *, full: bool = False) -> Text:
    """``time  topic  #seq  sender/stream  k=v  payload``."""
    kind, payload = _format.payload_text(msg.data, None if full else _format.PAYLOAD_LIMIT)
    text = Text()
    text.append(_format.time_text(msg.timestamp), style="dim")
    text.append("  ")
    text.append(msg.topic, style="bold cyan")
    text.append(f"  #{msg.seq}", style="dim")
    text.append(f"  {_sender(msg.sender, msg.stream)}", style="magenta")
    if msg.headers:
        text.append(f"  {_format.headers_text(msg.headers)}", style="yellow")
    text.append("  ")
    text.append(payload, style={"binary": "green", "value": "", "text": ""}[kind])
    return text


def gap_line(gap: Gap, timestamp: float) -> Text:
    """A gap, marked so it stands out among the messages."""
    last = gap.first + gap.lost - 1
    seqs = f"#{gap.first}" if gap.lost == 1 else f"#{gap.first}..#{last}"
    text = Text()
    text.append(_format.time_text(timestamp), style="dim")
    text.append("  ")
    text.append("!! GAP", style="bold red")
    text.append(f"  {gap.topic}", style="bold cyan")
    text.append(f"  lost {gap.lost} ({seqs})", style="red")
    text.append(f"  from {_sender(gap.sender, gap.stream)}", style="magenta")
    return text

