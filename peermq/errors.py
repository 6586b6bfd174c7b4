"""The one error tree of peermq.

::

    PeermqError
     +- ConfigError(PeermqError, ValueError)     bad options, found before any I/O
     +- TopicError(PeermqError, ValueError)      a topic or pattern that breaks the rules
     +- WireError                                a frame that cannot be encoded or decoded
     |   +- EncodeError(WireError, ValueError)   your data is not msgpack-serialisable or too big
     +- ClosedError                              *you* closed it
     +- PeerError                                a peer or the network broke it; .retriable
     |   +- SendTimeoutError(PeerError, TimeoutError)
     +- DiscoveryError
     +- SecurityError                            a key file, the trust store or a peer's key
     +- SpoolError                               corrupt record, locked, read-only
         +- SpoolFullError                       size bound or disk full
         +- SpoolLockedError                     another process holds the directory

``recv(timeout=...)`` that expires raises the built-in ``TimeoutError``: waiting without a
message is not a failure of a peer.
"""

from __future__ import annotations

__all__ = [
    "ClosedError",
    "ConfigError",
    "DiscoveryError",
    "EncodeError",
    "PeerError",
    "PeermqError",
    "SecurityError",
    "SendTimeoutError",
    "SpoolError",
    "SpoolFullError",
    "SpoolLockedError",
    "TopicError",
    "WireError",
]


class PeermqError(Exception):
    """Root of every error peermq raises on purpose."""


class ConfigError(PeermqError, ValueError):
    """An option is invalid; raised by constructors before any I/O."""


class TopicError(PeermqError, ValueError):
    """A topic or a topic pattern is malformed."""


class WireError(PeermqError):
    """A frame is malformed, oversize or of an unknown protocol version."""


class EncodeError(WireError, ValueError):
    """A message cannot be encoded (not msgpack-serialisable, or too large); nothing was sent."""


class ClosedError(PeermqError):
    """The socket or node was closed by its owner."""


class PeerError(PeermqError):
    """A peer or the network failed; ``retriable`` says whether trying again may help."""

    def __init__(self, message: str, *, retriable: bool = True) -> None:
        super().__init__(message)
        self.retriable = retriable


class SendTimeoutError(PeerError, TimeoutError):
    """No peer could take the message within ``send_timeout``; the message was not sent."""


class DiscoveryError(PeermqError):
    """Service discovery failed."""


class SecurityError(PeermqError):
    """A key file is missing, malformed or readable by others, or no trusted key is known."""


class SpoolError(PeermqError):
    """The spool directory is corrupt, locked by another process, or not writable."""


class SpoolFullError(SpoolError):
    """The spool reached its size bound."""


class SpoolLockedError(SpoolError):
    """Another process (or another spool object) holds the spool directory; ``pid`` names it."""

    def __init__(self, message: str, *, pid: int | None = None) -> None:
        super().__init__(message)
        self.pid = pid
