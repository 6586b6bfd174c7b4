"""The trust store: peers' public keys, like ssh's known_hosts, held in memory and in a file.

One line per key::

    NAMES KEY [source=manual|tofu] [added=TIME]
    @revoked NAMES KEY [revoked=TIME]

``NAMES`` is a comma-separated list of labels; a label that is a host (``10.0.0.5``), a
``host:port`` or an endpoint (``tcp://10.0.0.5:7000``) also says which key to expect when this
node connects there. A name belongs to one key at most. A revoked key is refused and never
pinned again by trust-on-first-use. Other processes (``peermq keys``) may change the file: a
running node sees the change at its next handshake.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import logging
import os
import stat
import threading
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import NamedTuple

from ..config import TrustPolicy
from ..errors import SecurityError
from .keys import fingerprint, parse_key

__all__ = ["TrustEntry", "TrustStore", "Verdict", "endpoint_names"]

_log = logging.getLogger(__name__)
_REVOKED = "@revoked"
_HEADER = (
    "# peermq trust store: the public keys of the peers this node trusts (docs/security.md).\n"
    "# NAMES KEY [source=manual|tofu] [added=TIME]; '@revoked NAMES KEY' refuses a key for good.\n"
)


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def check_name(name: str) -> str:
    if not name or any(c.isspace() or c == "," for c in name) or name.startswith(("@", "#")):
        raise SecurityError(
            f"bad trust name {name!r}: no spaces or commas, not starting with '@' or '#'"
        )
    return name


@dataclass(frozen=True, slots=True)
class TrustEntry:
    """One key of the store and what it is known as."""

    names: tuple[str, ...]
    key: bytes
    revoked: bool = False
    source: str = "manual"
    """manual (``peermq keys trust``) or tofu (pinned on first use)."""
    added: str = ""

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.key)

    def line(self) -> str:
        names = ",".join(self.names)
        if self.revoked:
            return f"{_REVOKED} {names} {self.key.decode()} revoked={self.added}"
        return f"{names} {self.key.decode()} source={self.source} added={self.added}"


class Verdict(NamedTuple):
    """What the store says about a key presented at a handshake."""

    allowed: bool
    reason: str
    """trusted, pinned, open, unknown, revoked or changed."""
    name: str = ""


def endpoint_names(endpoint: str) -> list[str]:
    """The names under which the key of ``endpoint``'s peer may be filed, most precise first."""
    names = [endpoint]
    scheme, sep, rest = endpoint.partition("://")
    if sep and scheme == "tcp":
        names.append(rest)
        host = rest.rpartition(":")[0]
        if host:
            names.append(host)
            if host.startswith("[") and host.endswith("]"):
                names.append(host[1:-1])
    return names


class TrustStore:
    """Trusted and revoked keys; thread-safe. ``path`` None keeps it in memory only."""

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path = Path(path) if path is not None else None
        self._lock = threading.RLock()
        self._entries: dict[bytes, TrustEntry] = {}
        self._stamp: tuple[int, int, int] | None = None
        self.refresh()

    # -- reading
    def _stat(self) -> os.stat_result | None:
        assert self.path is not None
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise SecurityError(f"cannot read {self.path}: {exc.strerror}") from exc
        if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            raise SecurityError(
                f"{self.path} may be changed by other users (mode "
                f"{stat.S_IMODE(st.st_mode):04o}); refusing it: chmod 600 {self.path}"
            )
        return st

    def refresh(self) -> bool:
        """Reload the file if it changed since last read; True if it did."""
        if self.path is None:
            return False
        with self._lock:
            st = self._stat()
            stamp = None if st is None else (st.st_ino, st.st_size, st.st_mtime_ns)
            if stamp == self._stamp:
                return False
            text = "" if st is None else self.path.read_text(encoding="utf-8", errors="replace")
            self._entries = self._parse(text)
            self._stamp = stamp
            return True

    def _parse(self, text: str) -> dict[bytes, TrustEntry]:
        entries: dict[bytes, TrustEntry] = {}
        for n, line in enumerate(text.splitlines(), 1):
            fields = line.split()
            if not fields or fields[0].startswith("#"):
                continue
            revoked = fields[0] == _REVOKED
            if revoked:
                fields = fields[1:]
            try:
                names = tuple(check_name(x) for x in fields[0].split(","))
                key = parse_key(fields[1])
            except (IndexError, SecurityError) as exc:
                _log.warning("trust.line_skipped path=%s line=%d error=%s", self.path, n, exc)
                continue
            attrs = dict(f.partition("=")[::2] for f in fields[2:])
            entries[key] = TrustEntry(
                names, key, revoked, attrs.get("source", "manual"),
                attrs.get("revoked" if revoked else "added", ""),
            )
        return entries

    def entries(self) -> list[TrustEntry]:
        with self._lock:
            self.refresh()
            return list(self._entries.values())

    def __iter__(self) -> Iterator[TrustEntry]:
        return iter(self.entries())

    def _owner(self, name: str) -> TrustEntry | None:
        for entry in self._entries.values():
            if name in entry.names:
                return entry
        return None

    def find(self, what: str) -> TrustEntry | None:
        """The entry named ``what``, or whose key or fingerprint ``what`` is."""
        with self._lock:
            self.refresh()
            entry = self._owner(what)
            if entry is not None:
                return entry
            for e in self._entries.values():
                if what == e.fingerprint or what == e.key.decode():
                    return e
            try:
                return self._entries.get(parse_key(what))
            except SecurityError:
                return None

    def key_for(self, endpoint: str) -> bytes | None:
        """The trusted key filed under ``endpoint``, its ``host:port`` or its host, if any."""
        with self._lock:
            self.refresh()
            for name in endpoint_names(endpoint):
                entry = self._owner(name)
                if entry is not None:
                    return None if entry.revoked else entry.key
            return None

    def is_revoked(self, key: bytes) -> bool:
        with self._lock:
            self.refresh()
            entry = self._entries.get(key)
            return entry is not None and entry.revoked

    def is_trusted(self, key: bytes) -> bool:
        with self._lock:
            self.refresh()
            entry = self._entries.get(key)
            return entry is not None and not entry.revoked

    # -- the handshake decision
    def admit(self, key: bytes, address: str, policy: TrustPolicy) -> Verdict:
        """Decide on ``key``, presented from ``address``; pins it under trust-on-first-use."""
        with self._lock:
            self.refresh()
            entry = self._entries.get(key)
            if entry is not None:
                name = entry.names[0]
                return Verdict(False, "revoked", name) if entry.revoked else Verdict(
                    True, "trusted", name
                )
            if policy is TrustPolicy.OPEN:
                return Verdict(True, "open")
            if policy is TrustPolicy.STRICT or not address:
                return Verdict(False, "unknown")
            owner = self._owner(address)
            if owner is not None:
                return Verdict(False, "changed", owner.names[0])
            self._change(lambda: self._add(TrustEntry((address,), key, source="tofu",
                                                      added=_now())))
            return Verdict(True, "pinned", address)

    # -- changing
    def _add(self, entry: TrustEntry) -> None:
        self._entries[entry.key] = entry

    def _change(self, edit: object) -> None:
        """Re-read, apply ``edit`` (a callable), write back, all under the file lock."""
        assert callable(edit)
        if self.path is None:
            edit()
            return
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        lock_path = self.path.with_name(self.path.name + ".lock")
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            self.refresh()
            edit()
            self._write()
        finally:
            with contextlib.suppress(OSError):
                os.close(fd)  # closing releases the lock

    def _write(self) -> None:
        assert self.path is not None
        text = _HEADER + "".join(e.line() + "\n" for e in self._entries.values())
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        st = self.path.stat()
        self._stamp = (st.st_ino, st.st_size, st.st_mtime_ns)

    def trust(self, key: str | bytes, names: str | list[str] | tuple[str, ...], *,
              replace_names: bool = False) -> TrustEntry:
        """Trust ``key`` under ``names`` (a revoked key is trusted again: an explicit act).

        A name already filed under another key is an error, unless ``replace_names`` moves it
        (key rotation); a key left with no name is no longer trusted.
        """
        k = parse_key(key)
        wanted = tuple(check_name(n) for n in
                       (names.split(",") if isinstance(names, str) else names))
        if not wanted:
            raise SecurityError("give the key at least one name")
        result: list[TrustEntry] = []

        def edit() -> None:
            for name in wanted:
                owner = self._owner(name)
                if owner is None or owner.key == k:
                    continue
                if not replace_names:
                    raise SecurityError(
                        f"{name!r} is the name of another key ({owner.fingerprint}); to rotate "
                        "keys, replace it on purpose"
                    )
                left = tuple(n for n in owner.names if n != name)
                if left:
                    self._entries[owner.key] = replace(owner, names=left)
                else:
                    del self._entries[owner.key]
            old = self._entries.get(k)
            kept = () if old is None or old.revoked else old.names
            entry = TrustEntry(kept + tuple(n for n in wanted if n not in kept), k,
                               source="manual", added=_now())
            self._entries[k] = entry
            result.append(entry)

        with self._lock:
            self._change(edit)
        return result[0]

    def revoke(self, what: str) -> TrustEntry:
        """Refuse a key from now on: ``what`` is a name, a key or a fingerprint."""
        result: list[TrustEntry] = []

        def edit() -> None:
            entry = self.find(what)
            if entry is None:
                try:
                    key = parse_key(what)
                except SecurityError:
                    raise SecurityError(f"no trusted key is named {what!r}") from None
                entry = TrustEntry(("revoked",), key)
            entry = replace(entry, revoked=True, added=_now())
            self._entries[entry.key] = entry
            result.append(entry)

        with self._lock:
            self._change(edit)
        return result[0]
