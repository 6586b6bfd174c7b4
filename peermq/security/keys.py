"""A node's CURVE key pair: making it, writing it safely, reading it back, naming it.

Keys are Z85 text (40 characters), as ZeroMQ uses them; a 64-digit hex form is accepted on
input. A fingerprint (``SHA256:...``, as ssh shows keys) names a key in logs and TXT records.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import logging
import os
import stat
from dataclasses import dataclass
from pathlib import Path

import zmq
from zmq.utils import z85

from ..errors import SecurityError

__all__ = [
    "KEY_FILE",
    "PUBLIC_FILE",
    "TRUST_FILE",
    "KeyPair",
    "default_keys_dir",
    "fingerprint",
    "generate",
    "init_keys",
    "load_keys",
    "parse_key",
]

_log = logging.getLogger(__name__)

KEY_FILE = "node.key"
"""The secret key (and its public half); mode 0600, refused if others may read it."""
PUBLIC_FILE = "node.pub"
"""The public key alone, one line: what you give to peers."""
TRUST_FILE = "trusted"
"""The trust store (see trust.py)."""

_PRIVATE_BITS = stat.S_IRWXG | stat.S_IRWXO


@dataclass(frozen=True, slots=True)
class KeyPair:
    """A CURVE key pair as Z85 bytes. ``repr`` never shows the secret half."""

    public: bytes
    secret: bytes

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.public)

    def __repr__(self) -> str:
        return f"KeyPair(public={self.public.decode()!r}, secret=<hidden>)"


def generate() -> KeyPair:
    """A new random key pair."""
    public, secret = zmq.curve_keypair()
    return KeyPair(public, secret)


def parse_key(text: str | bytes) -> bytes:
    """A public key given as Z85 (40 characters) or hex (64 digits), as Z85 bytes."""
    raw_text = text.decode("ascii", "replace") if isinstance(text, bytes) else text
    value = raw_text.strip()
    raw: bytes | None = None
    if len(value) == 40:
        try:
            raw = z85.decode(value.encode("ascii"))
        except (ValueError, KeyError, UnicodeEncodeError, IndexError, OverflowError):
            raw = None
    elif len(value) == 64:
        with contextlib.suppress(ValueError, binascii.Error):
            raw = bytes.fromhex(value)
    if raw is None or len(raw) != 32:
        raise SecurityError(
            f"not a CURVE public key: {value[:48]!r} (want 40 Z85 characters or 64 hex digits)"
        )
    return z85.encode(raw)


def fingerprint(public: bytes) -> str:
    """``SHA256:`` and the unpadded base64 of the SHA-256 of the raw 32-byte key."""
    digest = hashlib.sha256(z85.decode(public)).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def default_keys_dir() -> Path:
    """``$XDG_CONFIG_HOME/peermq``, else ``~/.config/peermq``."""
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(Path.home(), ".config")
    return Path(base) / "peermq"


def _check_private(path: Path, st: os.stat_result) -> None:
    if st.st_mode & _PRIVATE_BITS:
        raise SecurityError(
            f"{path} is open to other users (mode {stat.S_IMODE(st.st_mode):04o}); a secret key "
            f"must be readable by its owner only: chmod 600 {path}"
        )
    if hasattr(os, "getuid") and st.st_uid != os.getuid():
        raise SecurityError(f"{path} belongs to another user (uid {st.st_uid}); refusing it")


def _write_private(path: Path, text: str, mode: int) -> None:
    """Write ``text`` to ``path`` atomically, the file having ``mode`` from its first byte."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)  # the umask may have taken bits from a 0644 file
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _make_dir(directory: Path) -> None:
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)


def init_keys(directory: str | os.PathLike[str], *, overwrite: bool = False) -> KeyPair:
    """Make a new key pair in ``directory`` (created 0700); refuses to replace one unless told."""
    d = Path(directory)
    _make_dir(d)
    key_path = d / KEY_FILE
    if key_path.exists() and not overwrite:
        raise SecurityError(f"{key_path} exists: replacing it means every peer must trust the "
                            "new key")
    pair = generate()
    _write_private(
        key_path,
        "# peermq secret key: keep it private (this file must stay mode 0600).\n"
        "# Give peers the public key only: it is in node.pub too.\n"
        f"public-key = {pair.public.decode()}\n"
        f"secret-key = {pair.secret.decode()}\n",
        0o600,
    )
    _write_private(d / PUBLIC_FILE, pair.public.decode() + "\n", 0o644)
    _log.info("keys.created dir=%s fingerprint=%s", d, pair.fingerprint)
    return pair


def load_keys(directory: str | os.PathLike[str], *, create: bool = False) -> KeyPair:
    """Read the key pair in ``directory``; with ``create``, make one if there is none."""
    d = Path(directory)
    key_path = d / KEY_FILE
    try:
        fd = os.open(key_path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except FileNotFoundError:
        if create:
            return init_keys(d)
        raise SecurityError(f"no key pair in {d}: run 'peermq keys init'") from None
    except OSError as exc:
        raise SecurityError(f"cannot read {key_path}: {exc.strerror}") from exc
    with os.fdopen(fd, "r", encoding="ascii", errors="replace") as f:
        _check_private(key_path, os.fstat(f.fileno()))
        text = f.read(4096)
    fields: dict[str, str] = {}
    for line in text.splitlines():
        name, sep, value = line.partition("=")
        if sep and not line.lstrip().startswith("#"):
            fields[name.strip()] = value.strip()
    try:
        public = parse_key(fields["public-key"])
        secret = parse_key(fields["secret-key"])
    except (KeyError, SecurityError):
        raise SecurityError(f"{key_path} is not a peermq key file") from None
    if zmq.curve_public(secret) != public:
        raise SecurityError(f"{key_path}: the public key does not belong to the secret key")
    return KeyPair(public, secret)
