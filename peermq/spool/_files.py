"""Files of a spool directory: the lock, atomic small files, and OSError translation."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import zlib
from typing import Any

import msgpack

from ..errors import SpoolError, SpoolFullError, SpoolLockedError

__all__ = [
    "DirLock",
    "fsync_dir",
    "os_error",
    "read_small",
    "write_atomic",
]

_SMALL_MAGIC = b"PMQF"


def os_error(exc: OSError, verb: str, path: str) -> SpoolError:
    """One clear sentence for an OSError met trying to ``verb`` ``path`` ("write", "open")."""
    code = exc.errno or 0
    name = errno.errorcode.get(code, "error")
    if code in (errno.ENOSPC, errno.EDQUOT):
        return SpoolFullError(f"disk full ({name}): cannot {verb} {path}")
    if code == errno.EROFS:
        return SpoolError(f"read-only file system (EROFS): cannot {verb} {path}")
    if code in (errno.EACCES, errno.EPERM):
        return SpoolError(f"permission denied ({name}): cannot {verb} {path}")
    if code == errno.EFBIG:
        return SpoolError(f"file too large (EFBIG): cannot {verb} {path}")
    if code == errno.EIO:
        return SpoolError(f"I/O error (EIO): cannot {verb} {path}; the disk may be failing")
    return SpoolError(f"{exc.strerror or name} ({name}): cannot {verb} {path}")


def fsync_dir(path: str) -> None:
    """Make a directory's entries (a new, renamed or removed file) durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: str, obj: Any, *, sync: bool = True) -> None:
    """Replace ``path`` with ``obj`` (msgpack, checksummed): temp file, fsync, rename, fsync dir.

    A crash leaves either the old file or the new one, never a mix.
    """
    body: bytes = msgpack.packb(obj, use_bin_type=True)
    data = _SMALL_MAGIC + zlib.crc32(body).to_bytes(4, "little") + body
    tmp = f"{path}.tmp"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            if sync:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        if sync:
            fsync_dir(os.path.dirname(path) or ".")
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise os_error(exc, "write", path) from exc


def read_small(path: str) -> Any:
    """What ``write_atomic`` wrote; None if the file is missing. SpoolError if it is damaged."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise os_error(exc, "read", path) from exc
    body = data[8:]
    if data[:4] != _SMALL_MAGIC or zlib.crc32(body) != int.from_bytes(data[4:8], "little"):
        raise SpoolError(f"{path} is damaged (bad magic or checksum)")
    try:
        return msgpack.unpackb(body, raw=False, strict_map_key=False)
    except Exception as exc:
        raise SpoolError(f"{path} is damaged: {exc}") from exc


class DirLock:
    """An exclusive lock on a spool directory, held through an open file (flock).

    The kernel releases it when the process dies, even by SIGKILL. The file holds the owner's
    PID so that the error can name it.
    """

    def __init__(self, directory: str) -> None:
        self.path = os.path.join(directory, "lock")
        self._fd: int | None = None

    def acquire(self) -> None:
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise os_error(exc, "open", self.path) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = _read_pid(fd)
            os.close(fd)
            who = f"process {pid}" if pid is not None else "another process"
            if pid == os.getpid():
                who += " (this one: another spool object has it open)"
            raise SpoolLockedError(
                f"spool {os.path.dirname(self.path)} is in use by {who}", pid=pid
            ) from None
        except OSError as exc:
            os.close(fd)
            raise os_error(exc, "lock", self.path) from exc
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except OSError:
            pass  # read-only file system: the lock holds, the PID is just not shown
        self._fd = fd

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    @property
    def held(self) -> bool:
        return self._fd is not None


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
        return int(text) if text.isdigit() else None
    except OSError:
        return None


def holder(directory: str) -> int | None:
    """PID of the process holding the spool's lock, or None if it is free."""
    path = os.path.join(directory, "lock")
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read_pid(fd) or -1
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)
