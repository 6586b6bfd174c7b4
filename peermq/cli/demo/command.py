"""``peermq demo``: real processes on this machine, and what flows between them."""

from __future__ import annotations

import time

import click

from .._ui import ReaderGoneError, Ui, silence_stdout
from .supervisor import DemoError, Supervisor
from .view import View, make_view

__all__ = ["demo"]

START_TIMEOUT = 20.0
"""Bound on each start-up step (a loaded machine starts Python slowly)."""
STOP_TIMEOUT = 5.0
CATCH_UP = 3.0
"""After the senders stop, how long receivers get to take in what is still on the way."""


def _run(sv: Supervisor, view: View, seconds: float) -> None:
    senders, receivers = sv.senders, sv.receivers
    sv.spawn(senders)
    if not sv.wait(lambda: all(s.phase == "ready" for s in senders), START_TIMEOUT, view.tick):
        raise DemoError(f"the senders did not start within {START_TIMEOUT:g}s")
    sv.spawn(receivers)
    # a sender starts once all its readers joined: from then on nothing may be lost
    if not sv.wait(lambda: all(s.phase == "running" for s in senders), START_TIMEOUT,
                   view.tick):
        raise DemoError(f"the receivers did not join within {START_TIMEOUT:g}s")
    view.begin(seconds)
    end = time.monotonic() + seconds
    sv.wait(lambda: time.monotonic() >= end, seconds + 1.0, view.tick)
    view.phase = "stopping"
    sv.stop(senders)
    if not sv.wait(lambda: all(s.phase == "done" for s in senders), STOP_TIMEOUT, view.tick):
        raise DemoError(f"the senders did not stop within {STOP_TIMEOUT:g}s")
    sv.settle()
    sv.wait(sv.caught_up, CATCH_UP, view.tick)
    sv.stop(receivers)
    if not sv.wait(lambda: all(s.phase == "done" for s in receivers), STOP_TIMEOUT,
                   view.tick):
        raise DemoError(f"the receivers did not stop within {STOP_TIMEOUT:g}s")


@click.command()
@click.option("-s", "--seconds", type=click.FloatRange(min=0.5, max=3600.0), default=10.0,
              show_default=True, help="How long the senders send.")
@click.option("-r", "--rate", type=click.FloatRange(min=0.1, max=5000.0), default=20.0,
              show_default=True, help="Messages per second from each sender.")
@click.option("--json", "as_json", is_flag=True,
              help="Progress and summary as JSON lines instead of tables.")
@click.pass_obj
def demo(ui: Ui, seconds: float, rate: float, as_json: bool) -> None:
    """Run publishers, subscribers and a worker pipeline here, and show what flows.

    Nine processes talk over loopback TCP: publishers 'orders' and 'metrics'; subscribers
    that filter by topic pattern and by header; a pusher 'jobs' whose jobs are shared by
    three workers. At the end, a summary counts what each one got against what it should
    have got: no gaps, nothing dropped. It ends by itself after --seconds; Ctrl-C stops
    it early. Every process it started is ended, and nothing else.
    """
    sv = Supervisor(rate=rate)
    view = make_view(ui, sv, as_json=as_json)
    interrupted = False
    failure: DemoError | None = None
    try:
        with sv, view:
            try:
                _run(sv, view, seconds)
            except KeyboardInterrupt:
                interrupted = True
                view.phase = "interrupted: stopping"
            except DemoError as exc:
                failure = exc
        sv.settle()
        view.finish(interrupted)
    except ReaderGoneError:
        silence_stdout()
        return
    except KeyboardInterrupt:
        interrupted = True  # a second Ctrl-C: the processes are ended, the summary skipped
    if interrupted:
        raise click.exceptions.Exit(130)
    if failure is not None:
        raise click.ClickException(str(failure))
    s = sv.summary()
    if not s.ok:
        raise click.ClickException(
            f"the demo lost messages: {s.gaps} gaps, {s.dropped} dropped, {s.missing} missing"
        )
