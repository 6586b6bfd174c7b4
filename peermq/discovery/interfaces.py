"""Which network interfaces discovery uses, what it announces on each, and where to connect.

The anchors of mDNS misbehaviour are addresses announced where nobody can reach them (a
loopback, VPN or container address sent to the LAN). So every choice here is per interface: an
interface announces only its own addresses, and a peer seen on an interface is connected to at
an address on that interface's link when it has one.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import ifaddr

from ..errors import DiscoveryError

__all__ = [
    "Interface",
    "announced_on",
    "carrier",
    "choose_address",
    "endpoint_for",
    "host_port",
    "list_interfaces",
    "select",
]

_log = logging.getLogger(__name__)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Interface | ipaddress.IPv6Interface

_WILDCARDS = ("*", "0.0.0.0", "::", "[::]")
_IFF_UP = 0x1
_IFF_LOOPBACK = 0x8
_IFF_MULTICAST = 0x1000


@dataclass(frozen=True, slots=True)
class Interface:
    """One interface and the addresses discovery may use on it."""

    name: str
    index: int
    networks: tuple[IPNetwork, ...]
    up: bool = True
    multicast: bool = True
    loopback: bool = False

    @property
    def ipv4(self) -> list[str]:
        return [str(n.ip) for n in self.networks if n.version == 4]

    @property
    def ipv6(self) -> list[str]:
        return [str(n.ip) for n in self.networks if n.version == 6]

    def announced(self) -> list[str]:
        """The addresses to announce here: IPv4 and routable IPv6, or link-local IPv6 alone.

        A link-local IPv6 address is announced only where nothing better exists: it needs a
        scope to be used, and every reader must pick the right one.
        """
        v4 = self.ipv4
        v6 = [a for a in self.ipv6 if not ipaddress.ip_address(a).is_link_local]
        if v4 or v6:
            return v4 + v6
        return self.ipv6

    def on_link(self, address: str) -> bool:
        """Whether ``address`` is in one of this interface's subnets (reachable directly)."""
        try:
            ip = ipaddress.ip_address(address.split("%", maxsplit=1)[0])
        except ValueError:
            return False
        if ip.version == 6 and ip.is_link_local:
            return True
        return any(ip.version == n.version and ip in n.network for n in self.networks)


def _flags(name: str) -> int | None:
    try:
        with open(f"/sys/class/net/{name}/flags", encoding="ascii") as f:
            return int(f.read().strip(), 16)
    except (OSError, ValueError):
        return None


def carrier(name: str) -> bool:
    """Whether the interface's link is up (Linux ``/sys``; True where the OS does not say)."""
    try:
        with open(f"/sys/class/net/{name}/carrier", encoding="ascii") as f:
            return f.read().strip() != "0"
    except (OSError, ValueError):
        return True


def list_interfaces() -> list[Interface]:
    """Every interface with at least one address, with its flags where the OS says them."""
    out: list[Interface] = []
    for adapter in ifaddr.get_adapters():
        networks: list[IPNetwork] = []
        for ip in adapter.ips:
            addr = ip.ip if isinstance(ip.ip, str) else ip.ip[0]
            try:
                networks.append(ipaddress.ip_interface(f"{addr}/{ip.network_prefix}"))
            except ValueError:
                continue
        if not networks:
            continue
        flags = _flags(adapter.name)
        loopback = all(n.ip.is_loopback for n in networks)
        if flags is None:  # not Linux: assume what ifaddr cannot tell
            up, multicast = True, not loopback
        else:
            up, multicast = bool(flags & _IFF_UP), bool(flags & _IFF_MULTICAST)
            loopback = bool(flags & _IFF_LOOPBACK)
        out.append(Interface(adapter.name, int(adapter.index or 0), tuple(networks), up,
                             multicast, loopback))
    return out


def select(
    choice: Sequence[str], *, ipv4: bool = True, ipv6: bool = True,
    available: Iterable[Interface] | None = None,
) -> list[Interface]:
    """The interfaces (with only the wanted addresses) that discovery should use.

    ``choice`` empty: every interface that is up, multicast-capable and not a loopback, or the
    loopback alone if there is no such interface (a private network namespace, a laptop
    offline). Otherwise each item is an interface name (all its addresses) or an address
    (that address only, on its interface); an item that matches nothing is a DiscoveryError.
    """
    found = list(list_interfaces() if available is None else available)

    def family_ok(n: IPNetwork) -> bool:
        return (n.version == 4 and ipv4) or (n.version == 6 and ipv6)

    picked: dict[str, list[IPNetwork]] = {}
    if not choice:
        usable = [i for i in found if i.up and i.multicast and not i.loopback]
        if not usable:
            usable = [i for i in found if i.up and i.loopback]
        for itf in usable:
            picked[itf.name] = [n for n in itf.networks if family_ok(n)]
    else:
        for item in choice:
            named = next((i for i in found if i.name == item), None)
            if named is not None:
                picked.setdefault(named.name, []).extend(
                    n for n in named.networks if family_ok(n)
                )
                continue
            try:
                wanted = ipaddress.ip_address(item)
            except ValueError:
                names = ", ".join(i.name for i in found) or "none"
                raise DiscoveryError(
                    f"no interface or address {item!r} here (interfaces: {names})"
                ) from None
            match = [(i, n) for i in found for n in i.networks if n.ip == wanted]
            if not match:
                raise DiscoveryError(f"no interface has the address {item}")
            itf, net = match[0]
            picked.setdefault(itf.name, []).append(net)
    result = []
    for itf in found:
        nets = picked.get(itf.name)
        if nets:
            unique = tuple(dict.fromkeys(nets))
            result.append(Interface(itf.name, itf.index, unique, itf.up, itf.multicast,
                                    itf.loopback))
    return result


def choose_address(addresses: Sequence[str], itf: Interface | None) -> str | None:
    """The address to connect to among those a peer announced on interface ``itf``.

    On the interface's own subnets first (IPv4, then routable IPv6, then link-local IPv6 with
    the interface as scope); otherwise the first IPv4, then the first IPv6, in the peer's order.
    """
    parsed: list[IPAddress] = []
    for a in addresses:
        try:
            parsed.append(ipaddress.ip_address(a.split("%")[0]))
        except ValueError:
            continue
    if itf is not None:
        for want_v4, want_ll in ((True, False), (False, False), (False, True)):
            for ip in parsed:
                if (ip.version == 4) != want_v4:
                    continue
                if ip.version == 6 and ip.is_link_local != want_ll:
                    continue
                if ip.version == 6 and ip.is_link_local:
                    if any(n.version == 6 for n in itf.networks):
                        return f"{ip}%{itf.name}"
                    continue
                if itf.on_link(str(ip)):
                    return str(ip)
    for want_v4 in (True, False):
        for ip in parsed:
            if (ip.version == 4) == want_v4 and not (ip.version == 6 and ip.is_link_local):
                return str(ip)
    return None


def host_port(endpoint: str) -> tuple[str, int] | None:
    if not endpoint.startswith("tcp://"):
        return None
    host, _, port = endpoint[len("tcp://"):].rpartition(":")
    if not port.isdigit():
        return None
    return host.strip("[]"), int(port)


def announced_on(itf: Interface, endpoints: list[str]) -> tuple[int, tuple[str, ...]] | None:
    """The port and addresses to announce on ``itf`` for a socket bound to ``endpoints``."""
    for ep in endpoints:
        hp = host_port(ep)
        if hp is None:
            continue
        host, port = hp
        host = host.split("%")[0]
        if host in _WILDCARDS:
            v6_ok = host in ("::", "[::]")
            addrs = [a for a in itf.announced() if v6_ok or ":" not in a]
            if addrs:
                return port, tuple(addrs)
            continue
        try:
            ip: ipaddress.IPv4Address | ipaddress.IPv6Address = ipaddress.ip_address(host)
        except ValueError:
            continue
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped  # an IPv4 address bound by a socket with IPv6 on
        if any(n.ip == ip for n in itf.networks):
            return port, (str(ip),)
    return None


def endpoint_for(address: str, port: int) -> str:
    """``tcp://ADDRESS:PORT`` with IPv6 addresses in brackets (ZeroMQ's form)."""
    if ":" in address:
        return f"tcp://[{address}]:{port}"
    return f"tcp://{address}:{port}"


def hostname_label() -> str:
    """This host's name, cut down to a DNS label's safe characters."""
    raw = socket.gethostname().split(".")[0].lower()
    label = "".join(c if c.isalnum() and c.isascii() else "-" for c in raw).strip("-")
    return label[:40] or "host"

