"""Disk faults: full, read-only, a failing fsync, a file-size limit. Clear errors, no torn records,
and after a failed flush nothing of that batch is ever reported durable.

The recipes are those of the lab notes: a tmpfs in a private mount namespace (root), strace's
fault injection, prlimit. Each test skips, with the reason, where its tool is missing.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ..helpers import REPO

FAULTY = str(Path(__file__).with_name("spool_faulty.py"))
PY = sys.executable


def _can_unshare_mounts() -> bool:
    if os.geteuid() != 0 or not shutil.which("unshare"):
        return False
    try:
        return subprocess.run(["unshare", "-m", "true"], capture_output=True, timeout=10,
                              check=False).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


needs_mounts = pytest.mark.skipif(
    not _can_unshare_mounts(), reason="needs root and 'unshare -m' to mount a small tmpfs")
needs_strace = pytest.mark.skipif(
    not shutil.which("strace"), reason="needs strace for fsync fault injection")
needs_prlimit = pytest.mark.skipif(
    not shutil.which("prlimit"), reason="needs prlimit (util-linux) for a file-size limit")


def run(*argv: str) -> list[dict[str, object]]:
    """Run a command; return the JSON lines it printed (stderr shown on failure)."""
    proc = subprocess.run(list(argv), capture_output=True, text=True, timeout=60, cwd=REPO,
                          check=False)
    assert proc.returncode == 0, f"{argv} exited {proc.returncode}:\n{proc.stdout}{proc.stderr}"
    return [json.loads(x) for x in proc.stdout.splitlines() if x.startswith("{")]


def in_tmpfs(size: str, mount: Path, script: str) -> list[dict[str, object]]:
    """Run ``script`` (sh) in a private mount namespace with a ``size`` tmpfs on ``mount``."""
    mount.mkdir()
    return run("unshare", "-m", "sh", "-ec",
               f'mount -t tmpfs -o size={size} pmqspool "$1"\n{script}',
               "sh", str(mount), PY, FAULTY)


@needs_mounts
@pytest.mark.parametrize("fsync", ["batch", "always", "never"])
def test_a_full_disk_is_a_clear_error_and_leaves_no_torn_record(
    tmp_path: Path, fsync: str
) -> None:
    fill, check = in_tmpfs("512k", tmp_path / "m", f'''
        "$2" "$3" fill "$1/s" {fsync}
        "$2" "$3" check "$1/s"
    ''')
    err = fill["error"]
    assert isinstance(err, dict)
    assert err["type"] == "SpoolFullError" and "disk full (ENOSPC)" in str(err["text"]), err
    assert fill["again"] == "SpoolFullError" and fill["stored"] == fill["last_seq"]
    assert 100 < int(fill["stored"]) < 1000  # type: ignore[call-overload]
    # every message whose send returned is there, whole; the refused ones left nothing behind
    assert check["seqs"] == list(range(1, int(fill["stored"]) + 1))  # type: ignore[call-overload]
    assert check["intact"] is True and check["damage"] == []


@needs_mounts
def test_a_read_only_spool_refuses_to_open_but_can_be_inspected(tmp_path: Path) -> None:
    first, second = in_tmpfs("1m", tmp_path / "m", '''
        "$2" "$3" open "$1/s"
        mount -o remount,ro "$1"
        "$2" "$3" open "$1/s"
        "$2" -m peermq spool stats "$1/s" --json
    ''')[:2]
    assert first["error"] is None
    assert second["type"] == "SpoolError" and "read-only file system (EROFS)" in str(
        second["error"])
    stats = in_tmpfs("1m", tmp_path / "m2", '''
        "$2" "$3" open "$1/s"
        mount -o remount,ro "$1"
        "$2" -m peermq spool stats "$1/s" --json
    ''')[1]
    assert stats["type"] == "stats" and stats["messages"] == 0


@needs_strace
@pytest.mark.parametrize("when", [3, 9, 40])
def test_after_a_failed_flush_nothing_of_that_batch_is_ever_durable(
    tmp_path: Path, when: int
) -> None:
    spool = str(tmp_path / "s")
    (out,) = run("strace", "-f", "-qq", "-o", os.devnull, "-e", "trace=fdatasync",
                 "-e", f"inject=fdatasync:error=EIO:when={when}+", PY, FAULTY, "flush", spool)
    assert "I/O error (EIO)" in str(out["error"]) and "was reported durable" in str(out["error"])
    assert out["after"] == "SpoolError"  # the spool stays failed until it is reopened
    durable = int(out["durable"])  # type: ignore[call-overload]
    (check,) = run(PY, FAULTY, "check", spool)
    # exactly what was reported durable: the failed batch was cut off, not kept half-known
    assert check["seqs"] == list(range(1, durable + 1))
    assert check["intact"] is True


@needs_strace
def test_fsync_always_reports_a_failed_flush_from_send(tmp_path: Path) -> None:
    spool = str(tmp_path / "s")
    (fill,) = run("strace", "-f", "-qq", "-o", os.devnull, "-e", "trace=fdatasync",
                  "-e", "inject=fdatasync:error=EIO:when=20+", PY, FAULTY, "fill", spool,
                  "always")
    err = fill["error"]
    assert isinstance(err, dict) and "I/O error (EIO)" in str(err["text"])
    (check,) = run(PY, FAULTY, "check", spool)
    assert check["seqs"] == list(range(1, int(fill["stored"]) + 1))  # type: ignore[call-overload]


@needs_prlimit
def test_a_file_size_limit_cuts_the_partial_record_off(tmp_path: Path) -> None:
    spool = str(tmp_path / "s")
    (fill,) = run("prlimit", "--fsize=40000", PY, FAULTY, "fill", spool, "batch")
    err = fill["error"]
    assert isinstance(err, dict) and "file too large (EFBIG)" in str(err["text"])
    (check,) = run(PY, FAULTY, "check", spool)
    assert check["seqs"] == list(range(1, int(fill["stored"]) + 1))  # type: ignore[call-overload]
    assert check["intact"] is True and check["damage"] == []
