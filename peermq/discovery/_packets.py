"""mDNS packets peermq writes or reads itself: probes (RFC 6762 section 8.1) and probe hints.

python-zeroconf's own probe carries only the PTR record and probes 500 ms apart; ours follows
RFC 6762 section 8.1 to the letter (three probes 250 ms apart, the proposed SRV, TXT and
address records in the Authority Section as section 8.2 requires), which is also what lets a
receiver act on a probe: it names the endpoint that is about to be announced.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from zeroconf import ServiceInfo
from zeroconf._dns import DNSAddress, DNSQuestion, DNSRecord, DNSService, DNSText
from zeroconf._protocol.incoming import DNSIncoming
from zeroconf._protocol.outgoing import DNSOutgoing
from zeroconf.const import _CLASS_IN, _CLASS_UNIQUE, _FLAGS_QR_QUERY, _TYPE_ANY

from .txt import SERVICE_TYPE

__all__ = ["Hint", "build_probe", "read_hints"]


def build_probe(info: ServiceInfo, host: str, *, unicast_reply: bool) -> DNSOutgoing:
    """One probe for ``info``'s instance name and host name (RFC 6762 sections 8.1 and 8.2).

    Questions are type ANY for each name; ``unicast_reply`` sets the QU bit (section 5.4).
    The Authority Section holds every record we propose to own under those names.
    """
    out = DNSOutgoing(_FLAGS_QR_QUERY)
    cls = _CLASS_IN | (_CLASS_UNIQUE if unicast_reply else 0)
    out.add_question(DNSQuestion(info.name, _TYPE_ANY, cls))
    out.add_question(DNSQuestion(host, _TYPE_ANY, cls))
    records: list[DNSRecord] = [info.dns_service(), info.dns_text(), *info.dns_addresses()]
    # python-zeroconf types this list as PTRs (its own probes carry only the PTR)
    out.authorities.extend(records)  # type: ignore[arg-type]
    return out


@dataclass(frozen=True, slots=True)
class Hint:
    """A peermq service that a responder is probing for: what it will announce, if it wins."""

    instance: str
    """Instance name without the service type."""
    properties: dict[bytes, bytes | None]
    port: int
    addresses: tuple[str, ...]


def _txt_properties(text: bytes) -> dict[bytes, bytes | None]:
    """RFC 6763 section 6 strings to a mapping; the first of a repeated key wins (6.4)."""
    out: dict[bytes, bytes | None] = {}
    i = 0
    while i < len(text):
        n = text[i]
        item = text[i + 1 : i + 1 + n]
        i += 1 + n
        if not item:
            continue
        key, sep, value = item.partition(b"=")
        key = key.lower()
        if key and key not in out:
            out[key] = value if sep else None
    return out


def read_hints(data: bytes, source: str) -> list[Hint]:
    """The peermq services probed for in one received packet (empty if it is not a probe).

    Addresses come from the address records of the SRV target in the same packet, or else
    from the packet's source address. Anything malformed yields no hint.
    """
    msg = DNSIncoming(data)
    if not msg.valid or not msg.is_query() or msg.num_authorities == 0:
        return []
    services: dict[str, DNSService] = {}
    texts: dict[str, DNSText] = {}
    addresses: dict[str, list[str]] = {}
    for record in msg.answers():
        name = record.name
        if isinstance(record, DNSService) and name.lower().endswith("." + SERVICE_TYPE):
            services.setdefault(name.lower(), record)
        elif isinstance(record, DNSText) and name.lower().endswith("." + SERVICE_TYPE):
            texts.setdefault(name.lower(), record)
        elif isinstance(record, DNSAddress):
            try:
                addr = str(ipaddress.ip_address(record.address))
            except ValueError:
                continue
            addresses.setdefault(name.lower(), []).append(addr)
    hints = []
    for key, srv in services.items():
        txt = texts.get(key)
        if txt is None:
            continue
        found = addresses.get(srv.server.lower()) or [source.split("%", maxsplit=1)[0]]
        instance = srv.name[: -len(SERVICE_TYPE) - 1]
        hints.append(Hint(instance, _txt_properties(txt.text), srv.port, tuple(found)))
    return hints
