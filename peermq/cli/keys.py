"""``peermq keys``: this node's key pair and the trust store of its peers' keys."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from ..errors import SecurityError
from ..security import TrustStore, default_keys_dir, init_keys, load_keys, parse_key
from ..security.keys import KEY_FILE, TRUST_FILE
from ._ui import Ui

__all__ = ["keys"]

_F = TypeVar("_F", bound=Callable[..., Any])


def _dir_option(f: _F) -> _F:
    return click.option(
        "-d", "--dir", "keys_dir", envvar="PEERMQ_KEYS", type=click.Path(path_type=Path),
        default=None, metavar="DIR",
        help="Key directory [env: PEERMQ_KEYS; default: ~/.config/peermq].",
    )(f)


def _dir(keys_dir: Path | None) -> Path:
    return keys_dir if keys_dir is not None else default_keys_dir()


def _store(keys_dir: Path | None) -> TrustStore:
    try:
        return TrustStore(_dir(keys_dir) / TRUST_FILE)
    except SecurityError as exc:
        raise click.ClickException(str(exc)) from None


@click.group()
def keys() -> None:
    """Manage this node's CURVE key pair and the keys of the peers it trusts.

    Security is switched on for a node with PEERMQ_SECURITY=curve (see docs/security.md).

    \b
      peermq keys init                       # once per host (or user)
      peermq keys show --public              # give this to your peers
      peermq keys trust build-1,10.0.0.7 'KEY'
      peermq keys revoke build-1
    """


@keys.command()
@_dir_option
@click.option("--force", is_flag=True, help="Replace an existing key pair (peers must re-trust).")
@click.pass_obj
def init(ui: Ui, keys_dir: Path | None, force: bool) -> None:
    """Make this node's key pair (the secret key file is mode 0600)."""
    d = _dir(keys_dir)
    try:
        pair = init_keys(d, overwrite=force)
    except SecurityError as exc:
        hint = "; --force replaces it" if "exists" in str(exc) else ""
        raise click.ClickException(f"{exc}{hint}") from None
    except OSError as exc:
        raise click.ClickException(f"cannot write keys in {d}: {exc.strerror}") from None
    ui.line(pair.public.decode())
    ui.status(f"made a key pair in {d}; fingerprint {pair.fingerprint}")
    ui.status("give peers the public key above; they run: peermq keys trust NAME 'KEY'")


@keys.command()
@_dir_option
@click.option("--public", "public_only", is_flag=True, help="Print the public key alone.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object.")
@click.pass_obj
def show(ui: Ui, keys_dir: Path | None, public_only: bool, as_json: bool) -> None:
    """Show this node's public key and fingerprint (never the secret key)."""
    d = _dir(keys_dir)
    try:
        pair = load_keys(d)
    except SecurityError as exc:
        raise click.ClickException(str(exc)) from None
    if public_only:
        ui.line(pair.public.decode())
        return
    entries = _store(keys_dir).entries()
    revoked = sum(e.revoked for e in entries)
    if as_json:
        ui.json({"public_key": pair.public.decode(), "fingerprint": pair.fingerprint,
                 "keys_dir": str(d), "trusted": len(entries) - revoked, "revoked": revoked})
        return
    ui.line(f"public key   {pair.public.decode()}")
    ui.line(f"fingerprint  {pair.fingerprint}")
    ui.line(f"key file     {d / KEY_FILE}")
    ui.line(f"trust store  {d / TRUST_FILE} ({len(entries) - revoked} trusted, "
            f"{revoked} revoked)")


def _read_key(value: str) -> bytes:
    """KEY as Z85 or hex, '-' for stdin, or the path of a .pub file."""
    text = value
    if value == "-":
        text = sys.stdin.readline()
    elif Path(value).is_file():
        text = Path(value).read_text(encoding="ascii", errors="replace").splitlines()[0]
    try:
        return parse_key(text)
    except SecurityError as exc:
        raise click.BadParameter(f"{exc}; quote it, as Z85 keys hold shell characters",
                                 param_hint="KEY") from None


class _KeyArgs(click.Command):
    """A command whose arguments may be keys: one Z85 key in 85 begins with '-'.

    Such a word is a whole key, never options, so it is moved behind '--' where click
    takes it as an argument (in the order given) instead of failing on an unknown option.
    """

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        end = args.index("--") if "--" in args else len(args)
        keys = [a for a in args[:end] if a.startswith("-") and _is_key(a)]
        if keys:
            rest = [a for a in args[:end] if a not in keys]
            args = [*rest, "--", *keys, *args[end + 1:]]
        return super().parse_args(ctx, args)


def _is_key(word: str) -> bool:
    try:
        parse_key(word)
    except SecurityError:
        return False
    return True


@keys.command(cls=_KeyArgs)
@_dir_option
@click.argument("names")
@click.argument("key")
@click.option("--replace", is_flag=True,
              help="Move NAMES from the key they belong to now (key rotation).")
@click.pass_obj
def trust(ui: Ui, keys_dir: Path | None, names: str, key: str, replace: bool) -> None:
    """Trust KEY as NAMES (comma-separated: a label, and the hosts it is reached at).

    KEY is the peer's public key (from 'peermq keys show --public' there), '-' to read it
    from stdin, or a file holding it (node.pub). A name that is a host, HOST:PORT or an
    endpoint also tells which key to expect when connecting there.
    """
    k = _read_key(key)
    try:
        entry = _store(keys_dir).trust(k, names, replace_names=replace)
    except SecurityError as exc:
        hint = " (add --replace)" if "another key" in str(exc) else ""
        raise click.ClickException(f"{exc}{hint}") from None
    ui.status(f"trusted {','.join(entry.names)}: {entry.fingerprint}")


@keys.command(cls=_KeyArgs)
@_dir_option
@click.argument("what")
@click.pass_obj
def revoke(ui: Ui, keys_dir: Path | None, what: str) -> None:
    """Refuse a key from now on: WHAT is a name, a key or a fingerprint.

    New connections with it are refused, by running nodes too (at their next handshake);
    connections made before stay until they close. Trust-on-first-use never pins it again.
    """
    try:
        entry = _store(keys_dir).revoke(what)
    except SecurityError as exc:
        raise click.ClickException(str(exc)) from None
    ui.status(f"revoked {','.join(entry.names)}: {entry.fingerprint}")


@keys.command(name="list")
@_dir_option
@click.option("--json", "as_json", is_flag=True, help="One JSON object per key.")
@click.pass_obj
def list_(ui: Ui, keys_dir: Path | None, as_json: bool) -> None:
    """List trusted and revoked keys."""
    entries = _store(keys_dir).entries()
    for e in entries:
        if as_json:
            ui.json({"names": list(e.names), "key": e.key.decode(), "fingerprint": e.fingerprint,
                     "revoked": e.revoked, "source": e.source, "added": e.added})
        else:
            state = "REVOKED" if e.revoked else e.source
            ui.line(f"{','.join(e.names):<30} {e.fingerprint}  {state:<7} {e.added}")
    if not entries and not as_json:
        ui.status(f"no keys in {_dir(keys_dir) / TRUST_FILE}")
