"""Key files, the trust store and its policies, rate-limited reports, security options."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

import pytest
import zmq
from zmq.utils import z85

from peermq import ConfigError
from peermq.config import SecurityOptions, TrustPolicy
from peermq.errors import SecurityError
from peermq.node import security_from_env
from peermq.security import TrustStore, fingerprint, init_keys, load_keys, parse_key
from peermq.security.guard import Reporter, backoff_delay
from peermq.security.keys import KEY_FILE, PUBLIC_FILE, generate
from peermq.security.trust import endpoint_names

# -- keys


def test_init_writes_private_secret_and_public_key(tmp_path: Path) -> None:
    pair = init_keys(tmp_path / "k")
    mode = stat.S_IMODE((tmp_path / "k" / KEY_FILE).stat().st_mode)
    assert mode == 0o600
    assert stat.S_IMODE((tmp_path / "k").stat().st_mode) == 0o700
    assert (tmp_path / "k" / PUBLIC_FILE).read_text().strip() == pair.public.decode()
    assert load_keys(tmp_path / "k") == pair
    assert pair.secret.decode() not in repr(pair)
    assert zmq.curve_public(pair.secret) == pair.public


def test_init_refuses_to_replace_keys_unless_told(tmp_path: Path) -> None:
    first = init_keys(tmp_path)
    with pytest.raises(SecurityError, match="exists"):
        init_keys(tmp_path)
    second = init_keys(tmp_path, overwrite=True)
    assert second != first and load_keys(tmp_path) == second


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644, 0o660, 0o700])
def test_secret_key_open_to_others_is_refused(tmp_path: Path, mode: int) -> None:
    init_keys(tmp_path)
    os.chmod(tmp_path / KEY_FILE, mode)
    if mode & 0o077:
        with pytest.raises(SecurityError, match="chmod 600"):
            load_keys(tmp_path)
    else:
        load_keys(tmp_path)


def test_missing_keys_are_an_error_or_made(tmp_path: Path) -> None:
    with pytest.raises(SecurityError, match="peermq keys init"):
        load_keys(tmp_path / "none")
    pair = load_keys(tmp_path / "made", create=True)
    assert load_keys(tmp_path / "made") == pair


def test_tampered_key_file_is_refused(tmp_path: Path) -> None:
    init_keys(tmp_path)
    other = generate()
    text = (tmp_path / KEY_FILE).read_text().splitlines()
    text = [f"public-key = {other.public.decode()}" if t.startswith("public-key") else t
            for t in text]
    (tmp_path / KEY_FILE).write_text("\n".join(text))
    with pytest.raises(SecurityError, match="does not belong"):
        load_keys(tmp_path)
    (tmp_path / KEY_FILE).write_text("garbage")
    with pytest.raises(SecurityError, match="not a peermq key file"):
        load_keys(tmp_path)


def test_parse_key_forms() -> None:
    pair = generate()
    raw = z85.decode(pair.public)
    assert parse_key(pair.public.decode()) == pair.public
    assert parse_key(pair.public) == pair.public
    assert parse_key(" " + raw.hex() + "\n") == pair.public
    for bad in ("", "x" * 39, "x" * 64, "é" * 40, raw.hex()[:-1]):
        with pytest.raises(SecurityError):
            parse_key(bad)


def test_fingerprint_is_ssh_style_and_stable() -> None:
    pair = generate()
    fp = fingerprint(pair.public)
    assert fp.startswith("SHA256:") and len(fp) == 7 + 43 and "=" not in fp
    assert fp == pair.fingerprint != generate().fingerprint


# -- trust store


def test_trust_find_and_endpoint_lookup(tmp_path: Path) -> None:
    store = TrustStore(tmp_path / "trusted")
    a, b = generate(), generate()
    store.trust(a.public, "alice,10.0.0.5")
    store.trust(b.public.decode(), ["bob", "tcp://10.0.0.6:7000"])
    assert store.find("alice").key == a.public  # type: ignore[union-attr]
    assert store.find(a.fingerprint).key == a.public  # type: ignore[union-attr]
    assert store.find(z85.decode(b.public).hex()).names == ("bob", "tcp://10.0.0.6:7000")  # type: ignore[union-attr]
    assert store.key_for("tcp://10.0.0.5:9999") == a.public
    assert store.key_for("tcp://10.0.0.6:7000") == b.public
    assert store.key_for("tcp://10.0.0.6:7001") is None
    assert store.find("carol") is None


def test_endpoint_names() -> None:
    assert endpoint_names("tcp://h:1") == ["tcp://h:1", "h:1", "h"]
    assert endpoint_names("tcp://[::1]:1") == ["tcp://[::1]:1", "[::1]:1", "[::1]", "::1"]
    assert endpoint_names("ipc:///tmp/x") == ["ipc:///tmp/x"]


def test_a_name_belongs_to_one_key_unless_rotated(tmp_path: Path) -> None:
    store = TrustStore(tmp_path / "trusted")
    old, new = generate(), generate()
    store.trust(old.public, "alice")
    with pytest.raises(SecurityError, match="another key"):
        store.trust(new.public, "alice")
    store.trust(new.public, "alice", replace_names=True)
    assert store.find("alice").key == new.public  # type: ignore[union-attr]
    assert not store.is_trusted(old.public)  # no name left: no longer trusted


def test_bad_names_are_refused(tmp_path: Path) -> None:
    store = TrustStore(tmp_path / "trusted")
    for bad in ("", "a b", "@x", "#x"):
        with pytest.raises(SecurityError):
            store.trust(generate().public, [bad])


def test_store_is_shared_through_its_file(tmp_path: Path) -> None:
    """What `peermq keys` does in another process, a running node sees at its next check."""
    node_view = TrustStore(tmp_path / "trusted")
    cli_view = TrustStore(tmp_path / "trusted")
    k = generate()
    cli_view.trust(k.public, "alice")
    assert node_view.admit(k.public, "10.0.0.9", TrustPolicy.STRICT).allowed
    cli_view.revoke("alice")
    v = node_view.admit(k.public, "10.0.0.9", TrustPolicy.STRICT)
    assert (v.allowed, v.reason) == (False, "revoked")
    assert stat.S_IMODE((tmp_path / "trusted").stat().st_mode) == 0o600
    assert "@revoked alice" in (tmp_path / "trusted").read_text()


def test_writable_by_others_trust_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "trusted"
    TrustStore(path).trust(generate().public, "x")
    os.chmod(path, 0o666)
    with pytest.raises(SecurityError, match="other users"):
        TrustStore(path)


def test_malformed_lines_are_skipped_and_logged(tmp_path: Path,
                                                caplog: pytest.LogCaptureFixture) -> None:
    k = generate()
    (tmp_path / "trusted").write_text(f"# comment\n\nbroken\nalice {k.public.decode()}\n"
                                      "bob not-a-key\n")
    os.chmod(tmp_path / "trusted", 0o600)
    with caplog.at_level(logging.WARNING):
        store = TrustStore(tmp_path / "trusted")
    assert [e.names for e in store.entries()] == [("alice",)]
    assert sum("trust.line_skipped" in r.getMessage() for r in caplog.records) == 2


@pytest.mark.parametrize("policy", list(TrustPolicy))
def test_policies(policy: TrustPolicy) -> None:
    store = TrustStore()
    known, revoked, stranger, other = generate(), generate(), generate(), generate()
    store.trust(known.public, "known")
    store.revoke(store.trust(revoked.public, "gone").key.decode())
    assert store.admit(known.public, "10.0.0.1", policy).allowed
    assert not store.admit(revoked.public, "10.0.0.2", policy).allowed
    first = store.admit(stranger.public, "10.0.0.3", policy)
    assert first.allowed is (policy is not TrustPolicy.STRICT)
    second = store.admit(other.public, "10.0.0.3", policy)
    if policy is TrustPolicy.TOFU:
        assert first.reason == "pinned"
        assert (second.allowed, second.reason) == (False, "changed")
        assert store.admit(stranger.public, "10.0.0.3", policy).reason == "trusted"
        assert store.key_for("tcp://10.0.0.3:5555") == stranger.public
    elif policy is TrustPolicy.OPEN:
        assert second.allowed and store.key_for("tcp://10.0.0.3:1") is None  # nothing pinned
    else:
        assert not second.allowed


def test_tofu_never_pins_a_revoked_key() -> None:
    store = TrustStore()
    k = generate()
    store.revoke(k.public.decode())
    assert store.admit(k.public, "10.0.0.4", TrustPolicy.TOFU).reason == "revoked"


def test_revoke_unknown_name_is_an_error() -> None:
    with pytest.raises(SecurityError, match="no trusted key"):
        TrustStore().revoke("nobody")


# -- reports, backoff, options


def test_reporter_rate_limits_per_key(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    rep = Reporter(60.0, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="peermq.security"):
        assert rep.report("a", logging.WARNING, "mismatch at %s", "A")
        for _ in range(100):
            assert not rep.report("a", logging.WARNING, "mismatch at %s", "A")
        assert rep.report("b", logging.WARNING, "mismatch at %s", "B")
        now[0] = 61.0
        assert rep.report("a", logging.WARNING, "mismatch at %s", "A")
    msgs = [r.getMessage() for r in caplog.records]
    assert msgs == ["mismatch at A", "mismatch at B",
                    "mismatch at A (100 more like it not logged)"]


def test_backoff_delay_doubles_to_a_cap() -> None:
    assert [backoff_delay(n, 1.0, 30.0) for n in range(1, 8)] == [1, 2, 4, 8, 16, 30, 30]
    assert backoff_delay(10_000, 0.5, 5.0) == 5.0


@pytest.mark.parametrize("kwargs", [
    {"policy": "lax"}, {"policy": 1}, {"keys_dir": ""}, {"keys_dir": 3},
    {"auth_backoff": 0.0}, {"auth_backoff": 2.0, "auth_backoff_max": 1.0},
    {"report_interval": -1.0}, {"create_keys": "yes"}, {"ban_time": float("nan")},
])
def test_security_options_are_validated(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        SecurityOptions(**kwargs)  # type: ignore[arg-type]


def test_security_options_accept_strings_and_paths(tmp_path: Path) -> None:
    opts = SecurityOptions(keys_dir=tmp_path, policy="tofu")  # type: ignore[arg-type]
    assert opts.policy is TrustPolicy.TOFU and opts.keys_dir == str(tmp_path)


def test_security_from_env() -> None:
    assert security_from_env({}) is None
    assert security_from_env({"PEERMQ_SECURITY": "off"}) is None
    opts = security_from_env({"PEERMQ_SECURITY": "curve", "PEERMQ_KEYS": "/k",
                              "PEERMQ_TRUST": "TOFU"})
    assert opts == SecurityOptions(keys_dir="/k", policy=TrustPolicy.TOFU)
    assert security_from_env({"PEERMQ_SECURITY": "curve"}) == SecurityOptions()
    for bad in ({"PEERMQ_SECURITY": "plain"}, {"PEERMQ_SECURITY": "curve", "PEERMQ_TRUST": "x"}):
        with pytest.raises(ConfigError):
            security_from_env(bad)
