"""Multicast DNS on the discovery thread's event loop: one python-zeroconf per interface.

One instance per interface is what lets each interface announce only its own addresses
(python-zeroconf sends one record set on every interface it serves). Each instance browses
``_peermq._tcp``, resolves what it finds and reports it with the interface it came from; a
probe listener per interface reports the services that are being claimed (``_packets``).

Registration is ours, not python-zeroconf's, up to the announcement: RFC 6762 section 8.1
probing (a random 0-250 ms delay, three probes 250 ms apart, 250 ms of silence after the third),
renaming on a clash (section 9), then python-zeroconf's registry answers queries and sends the
announcements, and we add the one section 8.3 asks for one second after the first.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
import socket
import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from zeroconf import IPVersion, ServiceInfo, ServiceStateChange, Zeroconf
from zeroconf._dns import DNSService
from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

from ..errors import DiscoveryError
from ._packets import build_probe, read_hints
from .interfaces import Interface
from .txt import SERVICE_TYPE, Announcement, encode_txt, instance_name

__all__ = ["Mdns", "Registration", "Sighting"]

_log = logging.getLogger("peermq.discovery")

PROBE_DELAY_MAX = 0.250
"""RFC 6762 section 8.1: wait a random 0-250 ms before the first probe."""
PROBE_INTERVAL = 0.250
"""Section 8.1: probes 250 ms apart, and 250 ms without a conflict after the third."""
PROBE_COUNT = 3
ANNOUNCE_AGAIN = 1.0
"""Section 8.3: at least two unsolicited announcements, one second apart."""
MAX_RENAMES = 64
_MDNS_V4 = "224.0.0.251"
_MDNS_V6 = "ff02::fb"
_MDNS_PORT = 5353
_IP_MULTICAST_ALL = 49
_IPV6_MULTICAST_ALL = 29


@dataclass(frozen=True, slots=True)
class Sighting:
    """A service instance seen on one interface (resolved, or probing for its name)."""

    instance: str
    interface: Interface
    properties: dict[bytes, bytes | None]
    addresses: tuple[str, ...]
    port: int
    probing: bool = False


@dataclass
class Registration:
    """One socket's announcement on the interfaces it is reachable from."""

    announcement: Announcement
    bound: dict[str, tuple[int, tuple[str, ...]]]
    """Interface name -> (port, addresses to announce there)."""
    rename: int = 1
    name: str = ""
    infos: dict[str, ServiceInfo] = field(default_factory=dict)
    registered: set[str] = field(default_factory=set)
    task: asyncio.Task[None] | None = None
    broadcasts: list[asyncio.Future[Any]] = field(default_factory=list)
    """python-zeroconf's announcement tasks, cancelled if the socket closes meanwhile."""
    announced: asyncio.Event = field(default_factory=asyncio.Event)
    withdrawn: bool = False


class Listener:
    """What Mdns reports to (the Discovery handle); called on the loop."""

    def found(self, s: Sighting) -> None: ...
    def lost(self, instance: str, interface: str) -> None: ...


def _isolate(sock: socket.socket, v6: bool) -> None:
    """Receive multicast only from the interfaces this socket joined (Linux).

    By default Linux hands a socket every group joined by any socket of the host, whatever
    the interface it came in on: a per-interface responder would then answer a query from
    one link with the addresses of another.
    """
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.IPPROTO_IP, _IP_MULTICAST_ALL, 0)
    if v6:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_IPV6, _IPV6_MULTICAST_ALL, 0)


class _HintProtocol(asyncio.DatagramProtocol):
    def __init__(self, on_packet: Callable[[bytes, str], None]) -> None:
        self._on_packet = on_packet

    def datagram_received(self, data: bytes, addr: tuple[str | object, ...]) -> None:
        self._on_packet(data, str(addr[0]))


def _hint_socket(itf: Interface, v6: bool) -> socket.socket:
    """A socket that receives the mDNS group's packets on ``itf`` only (not unicast ones)."""
    family = socket.AF_INET6 if v6 else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if hasattr(socket, "SO_REUSEPORT"):
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if v6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            # bound to the group, so unicast replies meant for the responders never land here
            sock.bind((_MDNS_V6, _MDNS_PORT, 0, itf.index))
            mreq = socket.inet_pton(socket.AF_INET6, _MDNS_V6) + struct.pack("@I", itf.index)
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP, mreq)
        else:
            sock.bind((_MDNS_V4, _MDNS_PORT))
            mreq = socket.inet_aton(_MDNS_V4) + socket.inet_aton(itf.ipv4[0])
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq)
        _isolate(sock, v6)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


class _Responder:
    """python-zeroconf and a probe listener on one interface."""

    def __init__(self, itf: Interface, owner: Mdns) -> None:
        self.itf = itf
        self.owner = owner
        self.azc: AsyncZeroconf | None = None
        self.browser: AsyncServiceBrowser | None = None
        self.hint_transports: list[asyncio.BaseTransport] = []
        self.resolving: dict[str, asyncio.Task[None]] = {}

    @property
    def zc(self) -> Zeroconf:
        assert self.azc is not None
        return self.azc.zeroconf

    async def start(self, *, ipv4: bool, ipv6: bool, hints: bool) -> None:
        itf = self.itf
        v4 = bool(ipv4 and itf.ipv4)
        v6 = bool(ipv6 and itf.ipv6 and not itf.loopback)  # zeroconf cannot serve ::1
        if not (v4 or v6):
            raise DiscoveryError(f"interface {itf.name} has no address to use")
        choice: list[str | int] = list(itf.ipv4) if v4 else []
        if v6:
            choice.append(itf.index)
        version = IPVersion.All if v4 and v6 else (IPVersion.V4Only if v4 else IPVersion.V6Only)
        self.azc = AsyncZeroconf(interfaces=choice, ip_version=version)
        await self.zc.async_wait_for_start()
        # the shared listen socket (private in python-zeroconf; nothing breaks if it moves)
        listen = getattr(getattr(self.zc.engine, "_listen_transport", None), "sock", None)
        if isinstance(listen, socket.socket):
            _isolate(listen, listen.family == socket.AF_INET6)
        self.browser = AsyncServiceBrowser(self.zc, SERVICE_TYPE, handlers=[self._on_change])
        if hints:
            loop = asyncio.get_running_loop()
            for family_v6, wanted in ((False, v4), (True, v6)):
                if not wanted:
                    continue
                try:
                    sock = _hint_socket(itf, family_v6)
                except OSError as exc:
                    _log.debug("discovery.no_probe_listener interface=%s error=%s", itf.name, exc)
                    continue
                transport, _ = await loop.create_datagram_endpoint(
                    functools.partial(_HintProtocol, self._on_packet), sock=sock
                )
                self.hint_transports.append(transport)

    def _on_change(
        self, zeroconf: Zeroconf, service_type: str, name: str, state_change: ServiceStateChange
    ) -> None:
        if state_change is ServiceStateChange.Removed:
            task = self.resolving.pop(name, None)
            if task is not None:
                task.cancel()
            self.owner.listener.lost(name[: -len(SERVICE_TYPE) - 1], self.itf.name)
            return
        old = self.resolving.pop(name, None)
        if old is not None:
            old.cancel()
        task = asyncio.get_running_loop().create_task(self._resolve(name))
        self.resolving[name] = task
        task.add_done_callback(functools.partial(self._resolved, name))

    def _resolved(self, name: str, task: asyncio.Task[None]) -> None:
        if self.resolving.get(name) is task:
            del self.resolving[name]

    async def _resolve(self, name: str) -> None:
        info = AsyncServiceInfo(SERVICE_TYPE, name)
        timeout_ms = self.owner.resolve_timeout * 1000
        if not await info.async_request(self.zc, timeout_ms):
            _log.debug("discovery.unresolved instance=%s interface=%s", name, self.itf.name)
            return
        if info.port is None:
            return
        addresses = tuple(info.parsed_addresses())
        self.owner.listener.found(Sighting(
            name[: -len(SERVICE_TYPE) - 1], self.itf, dict(info.properties), addresses,
            int(info.port),
        ))

    def _on_packet(self, data: bytes, source: str) -> None:
        try:
            hints = read_hints(data, source)
        except Exception as exc:  # a forged packet must not stop the listener
            _log.debug("discovery.bad_packet source=%s error=%s", source, exc)
            return
        for h in hints:
            self.owner.listener.found(
                Sighting(h.instance, self.itf, h.properties, h.addresses, h.port, probing=True)
            )

    def taken(self, fqdn: str, host: str) -> bool:
        """Whether someone else holds ``fqdn`` here (an SRV for it to another host)."""
        for record in self.zc.cache.async_entries_with_name(fqdn):
            if isinstance(record, DNSService) and record.server.lower() != host.lower():
                return True
        return False

    async def close(self) -> None:
        for task in list(self.resolving.values()):
            task.cancel()
        for transport in self.hint_transports:
            transport.close()
        if self.browser is not None:
            await self.browser.async_cancel()
        if self.azc is not None:
            await self.azc.async_close()


class Mdns:
    """Every interface's responder, and the registrations of this node's sockets."""

    def __init__(
        self, interfaces: list[Interface], host: str, listener: Listener, *,
        resolve_timeout: float, hints: bool, ipv4: bool, ipv6: bool,
    ) -> None:
        self.host = host
        self.listener = listener
        self.resolve_timeout = resolve_timeout
        self._interfaces = interfaces
        self._hints, self._ipv4, self._ipv6 = hints, ipv4, ipv6
        self.responders: dict[str, _Responder] = {}
        self._registrations: list[Registration] = []
        self._goodbyes: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        for itf in self._interfaces:
            r = _Responder(itf, self)
            try:
                await r.start(ipv4=self._ipv4, ipv6=self._ipv6, hints=self._hints)
            except (OSError, DiscoveryError, RuntimeError) as exc:
                _log.warning("discovery.interface_failed interface=%s error=%s", itf.name, exc)
                await r.close()
                continue
            self.responders[itf.name] = r
            _log.debug("discovery.interface interface=%s addresses=%s", itf.name,
                       ",".join(a for n in itf.networks for a in [str(n.ip)]))

    def announce(self, reg: Registration) -> None:
        """Claim a name and announce ``reg`` (returns at once; the claim runs on the loop)."""
        self._registrations.append(reg)
        reg.task = asyncio.get_running_loop().create_task(self._claim(reg))

    def _infos(self, reg: Registration) -> dict[str, ServiceInfo]:
        fqdn = f"{reg.name}.{SERVICE_TYPE}"
        txt = encode_txt(reg.announcement)
        out = {}
        for itf_name, (port, addresses) in reg.bound.items():
            r = self.responders.get(itf_name)
            if r is None or not addresses:
                continue
            out[itf_name] = ServiceInfo(
                SERVICE_TYPE, fqdn, port=port, properties=txt, server=self.host,
                parsed_addresses=list(addresses), interface_index=r.itf.index or None,
            )
        return out

    async def _claim(self, reg: Registration) -> None:
        await asyncio.sleep(random.uniform(0, PROBE_DELAY_MAX))
        while True:
            reg.name = instance_name(reg.announcement, reg.rename)
            reg.infos = self._infos(reg)
            if not reg.infos:
                _log.warning("discovery.nothing_to_announce service=%s: no interface reaches "
                             "the bound endpoints", reg.announcement.service)
                return
            fqdn = f"{reg.name}.{SERVICE_TYPE}"
            clash = False
            for i in range(PROBE_COUNT):
                for itf_name, info in reg.infos.items():
                    # QU for the first probe only (section 8.1 says SHOULD): several responders
                    # share port 5353 on a host, and a unicast reply reaches just one of them
                    probe = build_probe(info, self.host, unicast_reply=i == 0)
                    self.responders[itf_name].zc.async_send(probe)
                await asyncio.sleep(PROBE_INTERVAL)
                if any(r.taken(fqdn, self.host) for r in self.responders.values()):
                    clash = True
                    break
            if not clash:
                break
            if reg.rename >= MAX_RENAMES:
                _log.error("discovery.name_clash name=%r: gave up after %d names", reg.name,
                           reg.rename)
                return
            reg.rename += 1
            _log.warning("discovery.renamed from=%r to=%r (the name is taken on the network)",
                         reg.name, instance_name(reg.announcement, reg.rename))
        for itf_name, info in reg.infos.items():
            zc = self.responders[itf_name].zc
            announcing = await zc.async_register_service(info, cooperating_responders=True)
            reg.broadcasts.append(asyncio.ensure_future(announcing))
            reg.registered.add(itf_name)
        reg.announced.set()
        _log.info("discovery.announced name=%r service=%s interfaces=%s", reg.name,
                  reg.announcement.service, ",".join(reg.registered))
        await asyncio.sleep(ANNOUNCE_AGAIN)
        for itf_name in reg.registered:
            zc = self.responders[itf_name].zc
            zc.async_send(zc.generate_service_broadcast(reg.infos[itf_name], None))

    async def withdraw(self, reg: Registration, first_sent: Callable[[], None]) -> None:
        """Send goodbyes (RFC 6762 section 10.1); ``first_sent`` once the first has gone out."""
        reg.withdrawn = True
        if reg in self._registrations:
            self._registrations.remove(reg)
        for t in [reg.task, *reg.broadcasts]:
            if t is not None and not t.done():
                t.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await t
        tasks: list[Awaitable[object]] = []
        for itf_name in list(reg.registered):
            r = self.responders.get(itf_name)
            if r is None:
                continue
            # python-zeroconf sends goodbyes only from the task it returns: it must be awaited
            tasks.append(await r.azc.async_unregister_service(reg.infos[itf_name]))  # type: ignore[union-attr]
        reg.registered.clear()
        await asyncio.sleep(0)  # let each task send its first goodbye
        first_sent()
        for goodbye in tasks:
            with contextlib.suppress(Exception):
                await goodbye

    def link_up(self, itf_name: str) -> None:
        """The interface's link came back: probe and announce again (RFC 6762 section 8).

        A receiver that gave up on us meanwhile (``forget_after``) hears the probe and
        connects again; the records themselves never changed, so the name is not re-claimed.
        """
        for reg in self._registrations:
            if itf_name in reg.registered:
                task = asyncio.get_running_loop().create_task(self._reannounce(reg, itf_name))
                reg.broadcasts.append(task)

    async def _reannounce(self, reg: Registration, itf_name: str) -> None:
        r = self.responders.get(itf_name)
        info = reg.infos.get(itf_name)
        if r is None or info is None:
            return
        await asyncio.sleep(random.uniform(0, PROBE_DELAY_MAX))
        for i in range(PROBE_COUNT):
            r.zc.async_send(build_probe(info, self.host, unicast_reply=i == 0))
            await asyncio.sleep(PROBE_INTERVAL)
        for _ in range(2):  # section 8.3: twice, one second apart
            if reg.withdrawn:
                return
            r.zc.async_send(r.zc.generate_service_broadcast(info, None))
            await asyncio.sleep(ANNOUNCE_AGAIN)

    def withdraw_soon(self, reg: Registration, first_sent: Callable[[], None]) -> None:
        task = asyncio.get_running_loop().create_task(self.withdraw(reg, first_sent))
        self._goodbyes.add(task)
        task.add_done_callback(self._goodbyes.discard)

    async def close(self, wait: float) -> None:
        for reg in list(self._registrations):
            self.withdraw_soon(reg, lambda: None)
        if self._goodbyes:
            await asyncio.wait(set(self._goodbyes), timeout=wait)
        for r in self.responders.values():
            await r.close()
        self.responders.clear()
