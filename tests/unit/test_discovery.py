"""Discovery's pure parts: the TXT schema, instance names, the peer table, static peers,
interface choice and the options. No sockets (tests/network has those)."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest
from zeroconf import ServiceInfo

from peermq import ConfigError, DiscoveryError
from peermq.config import DiscoveryOptions
from peermq.discovery import (
    PeerEventKind,
    PeerInfo,
    PeerKind,
    PeerSource,
    Service,
    options_from_env,
)
from peermq.discovery._packets import build_probe, read_hints
from peermq.discovery.interfaces import (
    Interface,
    announced_on,
    choose_address,
    endpoint_for,
    select,
)
from peermq.discovery.peers import Connect, Disconnect, PeerTable
from peermq.discovery.static import parse_entry, parse_list, read_file
from peermq.discovery.txt import (
    SERVICE_TYPE,
    TXT_BUDGET,
    Announcement,
    TxtError,
    decode_txt,
    encode_txt,
    instance_name,
)

ANN = Announcement(service="orders", kind=PeerKind.PUBLISHER, node_id="3f2a91c0aa",
                   node_name="web-1", stream=2, topics=("orders.>", "audit.*"))


def as_received(txt: dict[str, str]) -> dict[bytes, bytes | None]:
    return {k.encode(): v.encode() for k, v in txt.items()}


def test_txt_round_trips_and_follows_rfc_6763() -> None:
    txt = encode_txt(ANN)
    assert next(iter(txt)) == "txtvers"  # RFC 6763 section 6.7: first
    strings = [f"{k}={v}".encode() for k, v in txt.items()]
    assert all(len(s) <= 255 for s in strings)
    assert sum(len(s) + 1 for s in strings) <= TXT_BUDGET
    assert all(len(k) <= 9 for k in txt)  # section 6.4
    assert decode_txt(as_received(txt)) == ANN
    assert txt["fp"] == ""  # room for a key fingerprint


def test_topics_are_cut_to_fit_and_say_so() -> None:
    many = tuple(f"topic{i:03}.with.a.long.name.>" for i in range(60))
    txt = encode_txt(Announcement("s", PeerKind.PUBLISHER, "ab", "n" * 300, 1, many))
    assert txt["tmore"] == "1"
    assert len(f"node={txt['node']}".encode()) <= 255
    assert sum(len(f"{k}={v}".encode()) + 1 for k, v in txt.items()) <= TXT_BUDGET
    decoded = decode_txt(as_received(txt))
    assert 0 < len(decoded.topics) < len(many) and decoded.topics == many[: len(decoded.topics)]


@pytest.mark.parametrize("change", [
    {"txtvers": "2"}, {"id": "NOT AN ID"}, {"kind": "router"}, {"svc": ""}, {"svc": "a b"},
    {"st": "-1"}, {"st": "x"}, {"pv": "0"}, {"node": ""}, {"topics": "a..b"},
    {"fp": "\x00"}, {"node": "bad\x01name"},
])
def test_malformed_txt_is_refused(change: dict[str, str]) -> None:
    txt = {**encode_txt(ANN), **change}
    with pytest.raises(TxtError):
        decode_txt(as_received(txt))


def test_missing_keys_and_bad_utf8_are_refused_unknown_keys_ignored() -> None:
    props = as_received(encode_txt(ANN))
    del props[b"id"]
    with pytest.raises(TxtError):
        decode_txt(props)
    props = as_received(encode_txt(ANN))
    props[b"node"] = b"\xff\xfe"
    with pytest.raises(TxtError):
        decode_txt(props)
    props = as_received(encode_txt(ANN))
    props[b"future"] = b"yes"
    assert decode_txt(props) == ANN


def test_instance_names_are_readable_short_and_renamed_on_clash() -> None:
    assert instance_name(ANN) == "web-1 pub orders #2"
    assert instance_name(ANN, 3) == "web-1 pub orders #2 (3)"
    long = Announcement("orders", PeerKind.PUSHER, "ab", "ü" * 100 + ".x", 7)
    name = instance_name(long, 12)
    assert len(name.encode()) <= 63 and name.endswith(" push orders #7 (12)")
    assert "." not in instance_name(Announcement("a.b", PeerKind.PUBLISHER, "ab", "h.local", 1))


def test_service_names() -> None:
    assert Service.of("orders.eu_1-x") == Service("orders.eu_1-x")
    assert Service("s", topics=["a.>"]).topics == ("a.>",)  # type: ignore[arg-type]
    for bad in ("", "-x", "a b", "x" * 64, "é", 7):
        with pytest.raises(DiscoveryError):
            Service.of(bad)
    with pytest.raises(DiscoveryError):
        Service("s", topics=("a..b",))


def info(instance: str, endpoint: str, source: PeerSource = PeerSource.MDNS) -> PeerInfo:
    return PeerInfo("orders", PeerKind.PUBLISHER, endpoint, instance, source)


def test_table_connects_once_and_reports_joins_and_leaves() -> None:
    t = PeerTable(forget_after=30.0)
    actions, events = t.offer(info("a", "tcp://h:1", PeerSource.PROBE), 0.0)
    assert [a.endpoint for a in actions] == ["tcp://h:1"] and events == []
    assert t.offer(info("a", "tcp://h:1"), 0.1) == ([], [])  # confirmed: nothing to do
    assert t.offer(info("a", "tcp://h:1", PeerSource.PROBE), 0.2) == ([], [])
    [joined] = t.link_up("tcp://h:1", 0.3)
    assert joined.kind is PeerEventKind.JOINED and joined.reason == "connected"
    assert joined.peer.source is PeerSource.MDNS
    assert t.link_up("tcp://h:1", 0.3) == []
    assert [p.instance for p in t.connected()] == ["a"]
    [left] = t.link_down("tcp://h:1", 1.0)
    assert left.kind is PeerEventKind.LEFT and left.reason == "disconnected"
    [back] = t.link_up("tcp://h:1", 2.0)
    assert back.reason == "reconnected"
    actions, events = t.withdraw("a", "goodbye", 3.0)
    assert actions == [Disconnect("tcp://h:1")] and [e.reason for e in events] == ["goodbye"]
    assert t.link_up("tcp://h:1", 4.0) == []  # a late event for a forgotten peer


def test_table_moves_a_peer_and_hands_over_a_reused_endpoint() -> None:
    t = PeerTable(forget_after=30.0)
    t.offer(info("a", "tcp://h:1"), 0.0)
    t.link_up("tcp://h:1", 0.0)
    actions, events = t.offer(info("a", "tcp://h:2"), 1.0)  # restarted on a new port
    assert [type(a) for a in actions] == [Disconnect, Connect]
    assert [a.endpoint for a in actions] == ["tcp://h:1", "tcp://h:2"]
    assert [(e.kind, e.reason) for e in events] == [(PeerEventKind.LEFT, "moved")]
    # someone else now owns h:2 (say "a" died and "b" got its port): one connection, not two
    actions, events = t.offer(info("b", "tcp://h:2"), 2.0)
    assert actions == []
    assert [p.instance for p, _ in t.known()] == ["b"]


def test_table_forgets_peers_not_connected_for_a_while_but_keeps_static_ones() -> None:
    t = PeerTable(forget_after=10.0)
    t.offer(info("a", "tcp://h:1"), 0.0)
    t.offer(info("s", "tcp://h:9", PeerSource.STATIC), 0.0)
    t.offer(info("b", "tcp://h:2"), 0.0)
    t.link_up("tcp://h:2", 1.0)
    t.link_down("tcp://h:2", 5.0)
    assert t.waiting()
    assert t.expire(9.9) == []
    assert t.expire(10.0) == [Disconnect("tcp://h:1")]
    assert t.expire(15.0) == [Disconnect("tcp://h:2")]
    assert [p.instance for p, _ in t.known()] == ["s"] and not t.waiting()


def test_static_entries() -> None:
    assert parse_entry("orders=tcp://10.0.0.5:5555").endpoint == "tcp://10.0.0.5:5555"
    assert parse_entry("orders 10.0.0.5:5555").endpoint == "tcp://10.0.0.5:5555"
    assert parse_entry("jobs=[fd00::1]:7").endpoint == "tcp://[fd00::1]:7"
    assert [p.service for p in parse_list("a=h:1, b=h:2,c=h:3")] == ["a", "b", "c"]
    for bad in ("orders", "=tcp://h:1", "orders=h", "bad name=h:1", "orders=udp://h:1"):
        with pytest.raises(ConfigError):
            parse_entry(bad)


def test_peers_file(tmp_path: Path) -> None:
    path = tmp_path / "peers"
    path.write_text("# the order service\norders 10.0.0.5:5555\n\njobs=tcp://h:7  # ok\n")
    assert [(p.service, p.endpoint) for p in read_file(path)] == [
        ("orders", "tcp://10.0.0.5:5555"), ("jobs", "tcp://h:7")]
    path.write_text("orders\n")
    with pytest.raises(ConfigError, match="line 1"):
        read_file(path)
    with pytest.raises(ConfigError, match="cannot read"):
        read_file(tmp_path / "missing")


def test_options_and_environment() -> None:
    with pytest.raises(ConfigError):
        DiscoveryOptions(peers=("nonsense",))
    with pytest.raises(ConfigError):
        DiscoveryOptions(ipv4=False, ipv6=False)
    with pytest.raises(ConfigError):
        DiscoveryOptions(heartbeat_interval=1.0, heartbeat_timeout=0.5)
    opts = options_from_env({"PEERMQ_PEERS": "orders=h:1,jobs=tcp://h:2", "PEERMQ_MDNS": "off",
                             "PEERMQ_INTERFACES": "eth1, 10.0.0.1", "PEERMQ_PEERS_FILE": "/p"})
    assert opts.peers == ("orders=tcp://h:1", "jobs=tcp://h:2")
    assert not opts.mdns and opts.interfaces == ("eth1", "10.0.0.1") and opts.peers_file == "/p"
    assert options_from_env({}) == DiscoveryOptions()


def itf(name: str, *nets: str, loopback: bool = False, multicast: bool = True) -> Interface:
    return Interface(name, 3, tuple(ipaddress.ip_interface(n) for n in nets),
                     multicast=multicast, loopback=loopback)


LO = itf("lo", "127.0.0.1/8", "::1/128", loopback=True, multicast=False)
ETH0 = itf("eth0", "10.77.0.1/24", "fd77::1/64", "fe80::1/64")
ETH1 = itf("eth1", "10.78.0.1/24")
DOCKER = itf("docker0", "172.17.0.1/16")


def test_interface_choice() -> None:
    both = [LO, ETH0, ETH1]
    assert [i.name for i in select((), available=both)] == ["eth0", "eth1"]
    assert [i.name for i in select((), available=[LO])] == ["lo"]
    [one] = select(("eth1",), available=both)
    assert one.ipv4 == ["10.78.0.1"]
    [addr] = select(("fd77::1",), available=both)
    assert addr.name == "eth0" and addr.ipv6 == ["fd77::1"] and addr.ipv4 == []
    [v4] = select(("eth0",), ipv6=False, available=both)
    assert v4.ipv6 == []
    with pytest.raises(DiscoveryError, match="eth9"):
        select(("eth9",), available=both)
    with pytest.raises(DiscoveryError):
        select(("10.99.0.1",), available=both)
    # link-local is announced only where nothing better exists
    assert ETH0.announced() == ["10.77.0.1", "fd77::1"]
    assert itf("ll", "fe80::9/64").announced() == ["fe80::9"]


def test_address_choice_prefers_the_link_it_was_seen_on() -> None:
    seen = ("172.17.0.1", "10.78.0.5", "fd77::5", "fe80::5")
    assert choose_address(seen, ETH1) == "10.78.0.5"
    assert choose_address(seen, ETH0) == "fd77::5"
    assert choose_address(("fe80::5",), ETH0) == "fe80::5%eth0"
    assert choose_address(("192.168.9.9", "fd99::9"), ETH0) == "192.168.9.9"
    assert choose_address(("junk",), ETH0) is None
    assert endpoint_for("fd77::5", 7) == "tcp://[fd77::5]:7"
    assert endpoint_for("10.0.0.1", 7) == "tcp://10.0.0.1:7"


def test_a_probe_carries_what_a_receiver_needs() -> None:
    fqdn = f"{instance_name(ANN)}.{SERVICE_TYPE}"
    svc = ServiceInfo(SERVICE_TYPE, fqdn, port=5555, properties=encode_txt(ANN),
                      server="h-pmq-1.local.", parsed_addresses=["10.77.0.1", "fd77::1"])
    [packet] = build_probe(svc, "h-pmq-1.local.", unicast_reply=True).packets()
    [hint] = read_hints(packet, "10.77.0.1")
    assert hint.instance == instance_name(ANN) and hint.port == 5555
    assert set(hint.addresses) == {"10.77.0.1", "fd77::1"}
    assert decode_txt(hint.properties) == ANN
    assert read_hints(b"\x00" * 12, "10.0.0.1") == []
    assert read_hints(b"garbage", "10.0.0.1") == []


def test_what_an_interface_announces_for_bound_endpoints() -> None:
    dual = ["tcp://[::]:5555"]
    assert announced_on(ETH0, dual) == (5555, ("10.77.0.1", "fd77::1"))
    assert announced_on(ETH0, ["tcp://0.0.0.0:7"]) == (7, ("10.77.0.1",))  # IPv4 only
    assert announced_on(ETH1, ["tcp://10.77.0.1:7"]) is None  # another interface's address
    assert announced_on(ETH0, ["tcp://[::ffff:10.77.0.1]:7"]) == (7, ("10.77.0.1",))
    assert announced_on(ETH0, ["ipc:///tmp/x", "tcp://[fd77::1]:9"]) == (9, ("fd77::1",))
    assert announced_on(LO, ["tcp://127.0.0.1:3"]) == (3, ("127.0.0.1",))
