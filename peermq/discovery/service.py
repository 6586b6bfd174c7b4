"""A node's discovery: one thread with an event loop for mDNS, static peers and dispatch.

Started on first use by ``Node.discovery``. Other threads talk to it only through the
thread-safe methods here; what it learns goes to each interested socket through callbacks run
on the loop, which the socket side turns into ``call_soon`` posts (never touching a ZeroMQ socket
from this thread).
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import logging
import secrets
import threading
import time
import weakref
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

from .. import wire
from ..config import DiscoveryOptions
from ..errors import ClosedError, ConfigError, DiscoveryError
from ._mdns import Listener, Mdns, Registration, Sighting
from .interfaces import (
    Interface,
    carrier,
    choose_address,
    endpoint_for,
    hostname_label,
    select,
)
from .peers import PeerInfo, PeerSource
from .static import StaticPeer, file_stamp, parse_entry, read_file
from .txt import Announcement, PeerKind, TxtError, decode_txt

__all__ = ["Discovery", "Watch"]

_log = logging.getLogger("peermq.discovery")
_T = TypeVar("_T")
_START_TIMEOUT = 10.0
_EXPIRE_EVERY = 1.0


@dataclass(eq=False)
class Watch:
    """A socket's interest in the senders (or receivers) of one service; callbacks on the loop."""

    service: str
    """The service watched; empty: every service (a listing)."""
    kind: PeerKind | None
    """The kind of peer wanted (a subscriber watches publishers); None: every kind."""
    found: Callable[[PeerInfo], None]
    lost: Callable[[str, str], None]
    """``lost(instance, reason)``."""
    tick: Callable[[float], None] | None = None
    """Called about once a second (a socket's table drops stale peers)."""
    probes: bool = True
    """Whether probe hints count (sockets: yes; a listing: no)."""
    any_version: bool = False
    """Whether peers of another protocol version count (a listing: yes; sockets: no)."""
    mismatch: Callable[[PeerInfo], None] | None = None
    """Called for a peer of the service whose kind is the twin of the one wanted (a spooled
    pusher for a plain puller...): it is not connected, as they cannot talk."""


class Discovery(Listener):
    """mDNS (python-zeroconf) and static peers for one node. Thread-safe; ``close()`` to stop."""

    def __init__(self, node_id: str, node_name: str, options: DiscoveryOptions) -> None:
        if not isinstance(options, DiscoveryOptions):
            raise ConfigError(f"discovery must be a DiscoveryOptions, got {options!r}")
        self.options = options
        self.node_id = node_id
        self.node_name = node_name
        self.host = f"{hostname_label()}-pmq-{secrets.token_hex(3)}.local."
        """Our SRV target: random per process, so two processes never claim one host name."""
        self.interfaces: list[Interface] = []
        self.malformed = 0
        """TXT records ignored because they do not follow the schema."""
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._mdns: Mdns | None = None
        self._closed = False
        self._starting = False
        self._ready = threading.Event()
        self._start_error: BaseException | None = None
        self._warned_txt = False
        self._warned_version = False
        # loop-owned state
        self._watches: list[Watch] = []
        self._seen: dict[str, dict[str, PeerInfo]] = {}
        self._static: list[StaticPeer] = []
        self._file_stamp: tuple[int, int] | None = None
        self._carrier: dict[str, bool] = {}
        self._timer: asyncio.Task[None] | None = None
        _open.add(self)

    # -- life cycle
    def start(self) -> None:
        """Start the thread and mDNS (idempotent); returns once every interface is up."""
        with self._lock:
            if self._closed:
                raise ClosedError("discovery is closed")
            first, self._starting = not self._starting, True
        if not first:
            # started, or being started by another thread: sockets must not announce before
            # the interfaces are known
            if not self._ready.wait(_START_TIMEOUT) or self._start_error is not None:
                raise DiscoveryError(f"discovery did not start: {self._start_error!r}")
            return
        try:
            static = [parse_entry(e) for e in self.options.peers]
            interfaces: list[Interface] = []
            if self.options.mdns:
                interfaces = select(self.options.interfaces, ipv4=self.options.ipv4,
                                    ipv6=self.options.ipv6)
                if not interfaces:
                    _log.warning("discovery.no_interfaces: no multicast interface is up; "
                                 "only static peers will be found")
        except BaseException as exc:
            self._start_error = exc
            self._ready.set()
            raise
        loop = asyncio.new_event_loop()
        ready = threading.Event()
        thread = threading.Thread(target=self._run, args=(loop, ready),
                                  name="peermq-discovery", daemon=True)
        thread.start()
        ready.wait()
        with self._lock:
            self._loop, self._thread = loop, thread
        try:
            self._call(self._start(interfaces, static), _START_TIMEOUT)
        except BaseException as exc:
            self._start_error = exc
            self._ready.set()
            self.close()
            raise
        self._ready.set()

    @staticmethod
    def _run(loop: asyncio.AbstractEventLoop, ready: threading.Event) -> None:
        asyncio.set_event_loop(loop)
        loop.call_soon(ready.set)
        try:
            loop.run_forever()
        finally:
            loop.close()

    async def _start(self, interfaces: list[Interface], static: list[StaticPeer]) -> None:
        self._static = static
        if self.options.peers_file is not None:
            self._reload_file(initial=True)
        if interfaces:
            mdns = Mdns(interfaces, self.host, self, resolve_timeout=self.options.resolve_timeout,
                        hints=self.options.probe_hints, ipv4=self.options.ipv4,
                        ipv6=self.options.ipv6)
            await mdns.start()
            self._mdns = mdns
            self.interfaces = [r.itf for r in mdns.responders.values()]
        self._timer = asyncio.get_running_loop().create_task(self._every_second())

    def _call(self, coro: Coroutine[Any, Any, _T], timeout: float | None) -> _T:
        loop = self._loop
        if loop is None:
            coro.close()
            raise ClosedError("discovery is not running")
        return asyncio.run_coroutine_threadsafe(coro, loop).result(timeout)

    def _soon(self, fn: Callable[[], None]) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # closed meanwhile: nothing to do
                loop.call_soon_threadsafe(fn)

    def close(self) -> None:
        """Say goodbye for every announced socket (bounded by ``goodbye_wait``) and stop."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            loop, thread = self._loop, self._thread
            self._loop = None
        _open.discard(self)
        if loop is None or thread is None:
            return
        if thread is threading.current_thread():
            raise DiscoveryError("discovery cannot be closed from its own callbacks")
        fut = asyncio.run_coroutine_threadsafe(self._stop(), loop)
        try:
            fut.result(self.options.goodbye_wait + 5.0)
        except (concurrent.futures.TimeoutError, RuntimeError) as exc:
            _log.warning("discovery.close_slow error=%r", exc)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5.0)

    async def _stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._watches.clear()
        if self._mdns is not None:
            await self._mdns.close(self.options.goodbye_wait)
            self._mdns = None
        # what is left (a resolution, a last announcement) must not outlive the loop
        current = asyncio.current_task()
        left = [t for t in asyncio.all_tasks() if t is not current]
        for t in left:
            t.cancel()
        await asyncio.gather(*left, return_exceptions=True)

    @property
    def running(self) -> bool:
        """Started (interfaces known) and not closed."""
        return self._loop is not None and self._ready.is_set() and self._start_error is None

    # -- announcing (thread-safe)
    def announce(self, announcement: Announcement,
                 bound: dict[str, tuple[int, tuple[str, ...]]]) -> Registration:
        """Announce a socket on the interfaces in ``bound`` (name -> port, addresses)."""
        reg = Registration(announcement, bound)

        def start() -> None:
            if self._mdns is not None:
                self._mdns.announce(reg)

        self._soon(start)
        return reg

    def withdraw(self, reg: Registration, wait: float) -> None:
        """Send goodbyes for ``reg``; wait up to ``wait`` seconds for the first to go out."""
        loop = self._loop
        if loop is None or self._mdns is None:
            return
        sent = threading.Event()
        mdns = self._mdns
        try:
            loop.call_soon_threadsafe(mdns.withdraw_soon, reg, sent.set)
        except RuntimeError:  # closed meanwhile: its close said goodbye for every socket
            return
        if threading.current_thread() is not self._thread:
            sent.wait(wait)

    # -- watching (thread-safe)
    def add_watch(self, watch: Watch) -> None:
        def add() -> None:
            self._watches.append(watch)
            for info in self._current():
                self._offer(watch, info)
            for peer in self._static:
                if self._wants_static(watch, peer):
                    watch.found(self._static_info(peer, watch.kind))

        self._soon(add)

    def remove_watch(self, watch: Watch) -> None:
        def remove() -> None:
            if watch in self._watches:
                self._watches.remove(watch)

        self._soon(remove)

    def snapshot(self, timeout: float = 5.0) -> list[PeerInfo]:
        """Every peer announced (mDNS) or listed (static) now, any service."""

        async def take() -> list[PeerInfo]:
            out = list(self._current())
            out += [self._static_info(p, None) for p in self._static]
            return out

        return self._call(take(), timeout)

    def _current(self) -> list[PeerInfo]:
        return [next(iter(by_itf.values())) for by_itf in self._seen.values() if by_itf]

    @staticmethod
    def _wants(watch: Watch, info: PeerInfo) -> bool:
        return ((not watch.service or info.service == watch.service)
                and (watch.kind is None or info.kind is watch.kind)
                and (watch.any_version or info.protocol == wire.VERSION))

    def _offer(self, watch: Watch, info: PeerInfo) -> None:
        """Tell ``watch`` about ``info`` if it wants it, or that it cannot talk to it."""
        if self._wants(watch, info):
            watch.found(info)
        elif (watch.mismatch is not None and watch.kind is not None
              and info.kind is watch.kind.twin and info.service == watch.service):
            watch.mismatch(info)

    @staticmethod
    def _wants_static(watch: Watch, peer: StaticPeer) -> bool:
        return not watch.service or peer.service == watch.service

    @staticmethod
    def _static_info(peer: StaticPeer, kind: PeerKind | None) -> PeerInfo:
        return PeerInfo(service=peer.service, kind=kind or PeerKind.PUBLISHER,
                        endpoint=peer.endpoint, instance=f"static {peer.endpoint}",
                        source=PeerSource.STATIC)

    # -- what mDNS reports (on the loop)
    def _info(self, s: Sighting) -> PeerInfo | None:
        try:
            a = decode_txt(s.properties)
        except TxtError as exc:
            self.malformed += 1
            if not self._warned_txt:
                self._warned_txt = True
                _log.warning("discovery.bad_txt instance=%r interface=%s error=%s (ignored; "
                             "further ones are logged at DEBUG)", s.instance,
                             s.interface.name, exc)
            else:
                _log.debug("discovery.bad_txt instance=%r error=%s", s.instance, exc)
            return None
        address = choose_address(s.addresses, s.interface)
        if address is None or not 0 < s.port < 65536:
            _log.debug("discovery.unreachable instance=%r addresses=%s", s.instance, s.addresses)
            return None
        if a.protocol != wire.VERSION and not self._warned_version:
            self._warned_version = True
            _log.warning("discovery.other_version instance=%r protocol=%d (ours is %d): "
                         "listed, not connected", s.instance, a.protocol, wire.VERSION)
        return PeerInfo(
            service=a.service, kind=a.kind, endpoint=endpoint_for(address, s.port),
            instance=s.instance, source=PeerSource.PROBE if s.probing else PeerSource.MDNS,
            node_id=a.node_id, node_name=a.node_name, stream=a.stream, topics=a.topics,
            addresses=s.addresses, port=s.port, interface=s.interface.name,
            fingerprint=a.fingerprint, protocol=a.protocol,
        )

    def found(self, s: Sighting) -> None:
        info = self._info(s)
        if info is None:
            return
        if not s.probing:
            by_itf = self._seen.setdefault(info.instance, {})
            by_itf[s.interface.name] = info
            info = next(iter(by_itf.values()))
        _log.debug("discovery.found instance=%r endpoint=%s source=%s", info.instance,
                   info.endpoint, info.source.value)
        for watch in list(self._watches):
            if watch.probes or not s.probing:
                self._offer(watch, info)

    def lost(self, instance: str, interface: str) -> None:
        by_itf = self._seen.get(instance)
        if not by_itf or interface not in by_itf:
            return
        gone = by_itf.pop(interface)
        _log.debug("discovery.lost instance=%r interface=%s", instance, interface)
        if by_itf:
            info = next(iter(by_itf.values()))
            for watch in list(self._watches):
                if self._wants(watch, info):
                    watch.found(info)
            return
        del self._seen[instance]
        for watch in list(self._watches):
            if self._wants(watch, gone):
                watch.lost(instance, "goodbye")

    # -- static peers file and the clock (on the loop)
    def _reload_file(self, *, initial: bool = False) -> None:
        path = self.options.peers_file
        assert path is not None
        stamp = file_stamp(path)
        if stamp == self._file_stamp and not initial:
            return
        self._file_stamp = stamp
        try:
            from_file = read_file(path) if stamp is not None else []
        except ConfigError as exc:
            _log.warning("discovery.peers_file_unreadable error=%s (kept the previous list)", exc)
            return
        if stamp is None and not initial:
            _log.warning("discovery.peers_file_missing path=%s", path)
        from_options = [parse_entry(e) for e in self.options.peers]
        new = list(dict.fromkeys(from_options + from_file))
        old = self._static
        self._static = new
        if initial:
            return
        for peer in old:
            if peer not in new:
                for watch in list(self._watches):
                    if self._wants_static(watch, peer):
                        watch.lost(f"static {peer.endpoint}", "removed")
        for peer in new:
            if peer not in old:
                for watch in list(self._watches):
                    if self._wants_static(watch, peer):
                        watch.found(self._static_info(peer, watch.kind))

    def _check_links(self) -> None:
        """An interface whose link came back: announce again, and offer what was seen there."""
        for itf in self.interfaces:
            up = carrier(itf.name)
            was = self._carrier.get(itf.name, True)
            self._carrier[itf.name] = up
            if up and not was:
                _log.info("discovery.link_up interface=%s", itf.name)
                if self._mdns is not None:
                    self._mdns.link_up(itf.name)
                for by_itf in list(self._seen.values()):
                    info = by_itf.get(itf.name)
                    if info is not None:
                        for watch in list(self._watches):
                            if self._wants(watch, info):
                                watch.found(info)

    async def _every_second(self) -> None:
        next_file = time.monotonic()
        while True:
            await asyncio.sleep(min(_EXPIRE_EVERY, self.options.file_poll_interval))
            self._check_links()
            now = time.monotonic()
            if self.options.peers_file is not None and now >= next_file:
                next_file = now + self.options.file_poll_interval
                self._reload_file()
            for watch in list(self._watches):
                if watch.tick is not None:
                    try:
                        watch.tick(now)
                    except Exception:
                        _log.exception("discovery.tick_failed")


_open: weakref.WeakSet[Discovery] = weakref.WeakSet()


@atexit.register
def _close_all() -> None:
    """Goodbyes for whatever is still announced when the interpreter exits."""
    for d in list(_open):
        d.close()
