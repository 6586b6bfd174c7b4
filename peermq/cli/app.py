"""The ``peermq`` command group: global options, version, logging, and the subcommands."""

from __future__ import annotations

import importlib.metadata
import platform

import click

from .._version import __version__
from .._zmq import zmq_version
from ._ui import Ui
from .demo.command import demo
from .keys import keys
from .peers import peers
from .pub import pub
from .replay import info, replay
from .spool import spool
from .sub import sub
from .tap import tap

__all__ = ["cli", "main"]


def versions() -> dict[str, str]:
    try:
        pyzmq = importlib.metadata.version("pyzmq")
    except importlib.metadata.PackageNotFoundError:
        pyzmq = "unknown"
    return {
        "peermq": __version__,
        "libzmq": zmq_version(),
        "pyzmq": pyzmq,
        "python": platform.python_version(),
    }


def _print_version(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if not value or ctx.resilient_parsing:
        return
    v = versions()
    ui = Ui.from_obj(ctx.obj)
    ui.line(f"peermq {v['peermq']} (libzmq {v['libzmq']}, pyzmq {v['pyzmq']}, "
            f"Python {v['python']})")
    ctx.exit(0)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--version", is_flag=True, expose_value=False, is_eager=True,
              callback=_print_version, help="Show the versions of peermq, libzmq and pyzmq.")
@click.option("-v", "--verbose", count=True,
              help="Log more to stderr: -v for INFO, -vv for DEBUG.")
@click.option("-q", "--quiet", is_flag=True,
              help="Only data and errors: no status lines or summaries.")
@click.pass_context
def cli(ctx: click.Context, verbose: int, quiet: bool) -> None:
    """Brokerless messaging over ZeroMQ: publish, subscribe, and watch a demo.

    Try 'peermq demo' to see publishers, subscribers and a worker pipeline at work.
    """
    if verbose and quiet:
        raise click.UsageError("-v and -q contradict each other; give one")
    ui = Ui.from_obj(ctx.obj)
    ui.quiet = quiet
    ctx.obj = ui
    ctx.call_on_close(ui.configure_logging(verbose, quiet))


cli.add_command(pub)
cli.add_command(sub)
cli.add_command(demo)
cli.add_command(keys)
cli.add_command(peers)
cli.add_command(tap)
cli.add_command(replay)
cli.add_command(info)
cli.add_command(spool)


def main() -> None:
    """Entry point of the ``peermq`` script and of ``python -m peermq``."""
    cli.main(prog_name="peermq")
