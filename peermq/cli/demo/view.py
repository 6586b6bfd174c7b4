"""How the demo shows itself: a live table on a terminal, plain lines otherwise, or JSON."""

from __future__ import annotations

import time

from rich import box
from rich.console import Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from .._ui import Ui
from .supervisor import RoleState, Summary, Supervisor
from .topology import Kind

__all__ = ["View", "make_view"]

_EVERY = 1.0
"""Seconds between progress lines (plain text and JSON)."""


def _wiring(st: RoleState) -> str:
    if st.role.kind.sends:
        return "bind " + " ".join(st.endpoints) if st.endpoints else "bind ..."
    return "<- " + ", ".join(st.role.feeds)


def _count(st: RoleState) -> int:
    return st.sent if st.role.kind.sends else st.received


def _last(st: RoleState) -> Text:
    last = st.last
    if not last:
        return Text("")
    text = Text(str(last.get("topic")), style="cyan")
    if last.get("seq") is not None:
        text.append(f" #{last['seq']}", style="dim")
    if last.get("headers"):
        text.append(f" {last['headers']}", style="yellow")
    text.append(f" {last.get('data')}")
    return text


def _totals(s: Summary, *, final: bool = True) -> Text:
    ok = s.ok
    text = Text()
    if final:
        text.append("ok: " if ok else "LOSS: ", style="bold green" if ok else "bold red")
    text.append(f"{s.sent} messages sent, {s.delivered} delivered, {s.gaps} gaps, "
                f"{s.dropped} dropped" + (f", {s.missing} missing" if final else ""))
    if final and s.surplus:
        text.append(f", {s.surplus} unexpected")
    if s.failed:
        text.append(f"; failed: {', '.join(s.failed)}")
    return text


class View:
    """Plain lines: the wiring, a progress line a second, a sample of what flows, a summary."""

    def __init__(self, ui: Ui, sv: Supervisor) -> None:
        self.ui, self.sv = ui, sv
        self.phase = "starting"
        self.started = time.monotonic()
        self._next = 0.0
        self._sample = 0
        self._gaps_shown = 0

    def __enter__(self) -> View:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def begin(self, seconds: float) -> None:
        """The processes are up and wired: show who talks to whom, start the clock."""
        self.phase = "running"
        self.started = time.monotonic()
        self._next = self.started + _EVERY
        if not self.ui.quiet:
            self.intro(seconds)

    def intro(self, seconds: float) -> None:
        ui, states = self.ui, self.sv.states.values()
        ui.line(Text(f"peermq demo: {len(states)} processes on this machine (loopback only), "
                     f"{self.sv.rate:g} msg/s from each sender, for {seconds:g}s", style="bold"))
        for st in states:
            ui.line(f"  {st.role.name:<10} {st.role.kind.value:<10} {st.role.about}")
            ui.line(Text(f"  {'':<10} pid {st.pid!s:<6} {_wiring(st)}  {st.role.filter_text}",
                         style="dim"))

    def tick(self) -> None:
        self._new_gaps()
        if self.ui.quiet or self.phase != "running" or time.monotonic() < self._next:
            return
        self._next += _EVERY
        self.progress()

    def _new_gaps(self) -> None:
        log = self.sv.gap_log
        for name, gap in log[self._gaps_shown:]:
            self.gap(name, gap)
        self._gaps_shown = len(log)

    def gap(self, receiver: str, gap: dict[str, object]) -> None:
        """A receiver noticed messages that never came: say so at once, in red."""
        self.ui.line(Text.assemble(
            (f"{self.elapsed:6.1f}s  !! GAP", "bold red"),
            f"  {receiver} lost {gap.get('lost')} of {gap.get('topic')} from #{gap.get('first')}",
        ))

    def progress(self) -> None:
        sv, s = self.sv, self.sv.summary()
        senders = "  ".join(f"{st.role.name} {st.sent}" for st in sv.senders)
        receivers = "  ".join(f"{st.role.name} {st.received}" for st in sv.receivers)
        self.ui.line(f"{self.elapsed:6.1f}s  sent {s.sent}  delivered {s.delivered}  "
                     f"gaps {s.gaps} | {senders} | {receivers}")
        with_last = [st for st in sv.receivers if st.last]
        if with_last:
            st = with_last[self._sample % len(with_last)]
            self._sample += 1
            self.ui.line(Text.assemble("         ", (f"{st.role.name} got ", "dim"), _last(st)))

    def finish(self, interrupted: bool) -> None:
        self._new_gaps()
        self.phase = "done"
        self.ui.out.print(self.table("interrupted" if interrupted else "summary", final=True))
        self.ui.line(_totals(self.sv.summary()))

    def table(self, title: str, *, final: bool = False) -> Table:
        """The live table (with the last message) or the final one (with what was expected)."""
        table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, show_edge=False)
        table.add_column("role", no_wrap=True, min_width=9)
        table.add_column("kind", no_wrap=True, min_width=10)
        if final:
            table.add_column("sent", justify="right", min_width=4)
            table.add_column("got", justify="right", min_width=3)
            table.add_column("expected", justify="right", min_width=8)
        else:
            table.add_column("sent/got", justify="right", min_width=8)
        table.add_column("gaps", justify="right", min_width=4)
        table.add_column("dropped", justify="right", min_width=7)
        if final:
            table.add_column("state", no_wrap=True)
        else:
            room = max(16, self.ui.out.width - 56)  # what the other columns leave over
            table.add_column("last message", no_wrap=True, overflow="ellipsis", max_width=room)
        for st in self.sv.states.values():
            row: list[RenderableType] = [st.role.name, st.role.kind.value]
            if final:
                sends = st.role.kind.sends
                expect = ("shared" if st.role.kind is Kind.WORKER
                          else "" if st.expected is None else str(st.expected))
                row += [str(st.sent) if sends else "", "" if sends else str(st.received), expect]
            else:
                row.append(str(_count(st)))
            row += [_bad(st.gaps), _bad(st.dropped), _state(st) if final else _last(st)]
            table.add_row(*row)
        return table


def _bad(n: int) -> Text:
    return Text(str(n), style="bold red" if n else "green")


def _state(st: RoleState) -> Text:
    if st.phase == "failed":
        code = "" if st.exit_code is None else f" (exit {st.exit_code})"
        return Text(f"failed{code}", style="bold red")
    if st.expected is not None and st.received != st.expected:
        return Text(f"{st.received - st.expected:+d}", style="bold red")
    return Text(st.phase, style="green" if st.phase == "done" else "yellow")


class LiveView(View):
    """A table that refreshes in place (terminals only)."""

    _live: Live | None = None

    def __enter__(self) -> View:
        self._live = Live(console=self.ui.out, auto_refresh=False, transient=True)
        self._live.start()
        return self

    def __exit__(self, *exc: object) -> None:
        live, self._live = self._live, None
        if live is not None:
            live.stop()

    def tick(self) -> None:
        self._new_gaps()
        s = self.sv.summary()
        head = (f"peermq demo - {self.phase} {self.elapsed:4.1f}s"
                if self.phase == "running" else f"peermq demo - {self.phase}")
        if self._live is not None:
            self._live.update(Group(self.table(head), _totals(s, final=False)), refresh=True)

    def finish(self, interrupted: bool) -> None:
        self.__exit__()
        super().finish(interrupted)


class JsonView(View):
    """One JSON object per line: progress every second, then the summary."""

    def intro(self, seconds: float) -> None:
        pass

    def gap(self, receiver: str, gap: dict[str, object]) -> None:
        self.ui.json({"type": "gap", "role": receiver, "topic": gap.get("topic"),
                      "first": gap.get("first"), "lost": gap.get("lost")})

    def progress(self) -> None:
        self.ui.json({"type": "progress", "elapsed": round(self.elapsed, 3),
                      "roles": {st.role.name: _count(st) for st in self.sv.states.values()}})

    def finish(self, interrupted: bool) -> None:
        self._new_gaps()
        s = self.sv.summary()
        self.ui.json({
            "type": "summary", "ok": s.ok and not interrupted, "interrupted": interrupted,
            "sent": s.sent, "delivered": s.delivered, "gaps": s.gaps, "dropped": s.dropped,
            "missing": s.missing, "surplus": s.surplus, "failed": list(s.failed),
            "roles": [
                {"role": st.role.name, "kind": st.role.kind.value, "pid": st.pid,
                 "endpoints": st.endpoints or st.connect, "sent": st.sent,
                 "received": st.received, "expected": st.expected, "gaps": st.gaps,
                 "dropped": st.dropped, "phase": st.phase, "exit_code": st.exit_code}
                for st in self.sv.states.values()
            ],
        })


def make_view(ui: Ui, sv: Supervisor, *, as_json: bool) -> View:
    if as_json:
        return JsonView(ui, sv)
    if ui.out.is_terminal:
        return LiveView(ui, sv)
    return View(ui, sv)
