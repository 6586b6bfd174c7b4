"""``peermq keys`` through click's CliRunner: init, show, trust, revoke, list."""

from __future__ import annotations

import io
import json
import stat
from pathlib import Path

from click.testing import CliRunner, Result
from rich.console import Console
from zmq.utils import z85

from peermq.cli import cli
from peermq.security import TrustStore, generate, load_keys


def run(*args: str, input: str | None = None) -> tuple[Result, str]:
    out = io.StringIO()
    result = CliRunner().invoke(cli, ["keys", *args], obj=Console(file=out, width=200),
                                input=input)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result, out.getvalue()


def test_init_then_show(tmp_path: Path) -> None:
    d = str(tmp_path / "k")
    result, out = run("init", "-d", d)
    assert result.exit_code == 0
    pair = load_keys(d)
    assert out.strip() == pair.public.decode()
    assert stat.S_IMODE((tmp_path / "k" / "node.key").stat().st_mode) == 0o600
    again, _ = run("init", "-d", d)
    assert again.exit_code == 1 and "--force" in again.stderr
    _, shown = run("show", "-d", d)
    assert pair.public.decode() in shown and pair.fingerprint in shown
    assert pair.secret.decode() not in shown
    _, public = run("show", "-d", d, "--public")
    assert public.strip() == pair.public.decode()
    _, js = run("show", "-d", d, "--json")
    assert json.loads(js)["fingerprint"] == pair.fingerprint


def test_show_without_keys_says_what_to_do(tmp_path: Path) -> None:
    result, _ = run("show", "-d", str(tmp_path))
    assert result.exit_code == 1 and "peermq keys init" in result.stderr


def test_keys_dir_from_the_environment(tmp_path: Path) -> None:
    out = io.StringIO()
    result = CliRunner(env={"PEERMQ_KEYS": str(tmp_path)}).invoke(
        cli, ["keys", "init"], obj=Console(file=out, width=200))
    assert result.exit_code == 0 and (tmp_path / "node.key").exists()


def test_trust_list_revoke(tmp_path: Path) -> None:
    d = str(tmp_path)
    bob, carol = generate(), generate()
    r, _ = run("trust", "-d", d, "bob,10.0.0.7", bob.public.decode())
    assert r.exit_code == 0 and bob.fingerprint in r.stderr
    (tmp_path / "carol.pub").write_text(carol.public.decode() + "\n")
    assert run("trust", "-d", d, "carol", str(tmp_path / "carol.pub"))[0].exit_code == 0
    assert run("trust", "-d", d, "dave", "-", input=generate().public.decode() + "\n")[0]\
        .exit_code == 0
    _, listed = run("list", "-d", d)
    assert "bob,10.0.0.7" in listed and carol.fingerprint in listed
    clash, _ = run("trust", "-d", d, "bob", carol.public.decode())
    assert clash.exit_code == 1 and "--replace" in clash.stderr
    assert run("revoke", "-d", d, "bob")[0].exit_code == 0
    store = TrustStore(tmp_path / "trusted")
    assert not store.is_trusted(bob.public) and store.is_trusted(carol.public)
    _, js = run("list", "-d", d, "--json")
    rows = [json.loads(line) for line in js.splitlines()]
    assert {r["fingerprint"]: r["revoked"] for r in rows}[bob.fingerprint] is True


def test_bad_input_is_a_usage_error(tmp_path: Path) -> None:
    bad_key, _ = run("trust", "-d", str(tmp_path), "x", "not-a-key")
    assert bad_key.exit_code == 2 and "quote it" in bad_key.stderr
    bad_name, _ = run("trust", "-d", str(tmp_path), "a b", generate().public.decode())
    assert bad_name.exit_code == 1
    nobody, _ = run("revoke", "-d", str(tmp_path), "nobody")
    assert nobody.exit_code == 1 and "no trusted key" in nobody.stderr


def test_the_cli_refuses_an_open_secret_key(tmp_path: Path) -> None:
    run("init", "-d", str(tmp_path))
    (tmp_path / "node.key").chmod(0o640)
    result, _ = run("show", "-d", str(tmp_path))
    assert result.exit_code == 1 and "chmod 600" in result.stderr


def test_a_key_that_begins_with_a_dash_is_a_key(tmp_path: Path) -> None:
    # One Z85 key in 85 begins with '-'; click must not take it for an option.
    first = (63 * 85**4).to_bytes(4, "big")  # '-' is Z85 digit 63
    key = z85.encode(first + bytes(range(28))).decode()
    assert key.startswith("-")
    d = str(tmp_path)
    r, _ = run("trust", "-d", d, "eve", key)
    assert r.exit_code == 0, r.stderr
    assert TrustStore(tmp_path / "trusted").is_trusted(key.encode())
    assert run("revoke", "-d", d, key)[0].exit_code == 0
    assert not TrustStore(tmp_path / "trusted").is_trusted(key.encode())
    unknown, _ = run("trust", "-d", d, "--no-such-flag", "x")
    assert unknown.exit_code == 2
