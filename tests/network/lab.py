"""Several hosts on one machine: network namespaces joined by veth pairs to bridges.

Everything is made inside the private namespace the test command runs in, named after this
process (``pmq<pid>-...``) and removed by ``Lab.close()``. Each bridge ("switch") lives in a
namespace of its own; host ``hN`` on switch ``lanK`` gets 10.7K.0.N/24 and fd7K::N/64. Nothing
here has a default route, and ``Lab`` checks that before a test sends anything.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def ip(*args: str, check: bool = True) -> str:
    out = subprocess.run(["ip", *args], check=False, capture_output=True, text=True,
                         timeout=10)
    if check and out.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {out.stderr.strip()}")
    return out.stdout


def can_make_namespaces() -> bool:
    """Whether ``ip netns add`` works here (root in this namespace, not a user namespace)."""
    name = f"pmq{os.getpid()}-probe"
    try:
        ip("netns", "add", name)
    except (OSError, RuntimeError, subprocess.SubprocessError):
        return False
    ip("netns", "del", name, check=False)
    return True


@dataclass
class Host:
    lab: Lab
    name: str
    netns: str
    index: int
    links: dict[str, tuple[str, str]] = field(default_factory=dict)
    """Interface name -> (switch, port name on the switch)."""

    def addr(self, switch: str = "lan1", v6: bool = False) -> str:
        k = self.lab.switches[switch]
        return f"fd7{k}::{self.index}" if v6 else f"10.7{k}.0.{self.index}"

    def sh(self, *argv: str, check: bool = True, env: dict[str, str] | None = None) -> str:
        out = subprocess.run(["ip", "netns", "exec", self.netns, *argv], check=False,
                             capture_output=True, text=True, timeout=20,
                             env={**os.environ, **(env or {})})
        if check and out.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} on {self.name}: {out.stderr.strip()}")
        return out.stdout

    def spawn(self, argv: Sequence[str], env: dict[str, str] | None = None) -> Proc:
        proc = subprocess.Popen(
            ["ip", "netns", "exec", self.netns, *argv],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            cwd=REPO, env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
        )
        p = Proc(proc, f"{self.name}:{argv[-1] if argv else ''}")
        self.lab.procs.append(p)
        return p

    def peer(self, *args: str, env: dict[str, str] | None = None) -> Proc:
        """Run tests/network/peer.py on this host (see there for the arguments)."""
        return self.spawn([sys.executable, "-m", "tests.network.peer", *args], env)

    def cable(self, up: bool, itf: str = "eth0") -> None:
        """Pull (or plug back) this host's cable: the switch's port goes down."""
        switch, port = self.links[itf]
        ip("-n", self.lab.switch_ns(switch), "link", "set", port, "up" if up else "down")

    def partition(self, on: bool, itf: str = "eth0") -> None:
        """Cut this host off silently (or heal it): its switch port stops forwarding.

        Packets vanish both ways, the host keeps its carrier and nothing answers with a RST:
        only heartbeats notice (LAB.md's nft drop recipe, without needing nftables).
        """
        switch, port = self.links[itf]
        # bridge port states: 0 disabled (drops everything), 3 forwarding
        out = subprocess.run(["bridge", "-n", self.lab.switch_ns(switch), "link", "set", "dev",
                              port, "state", "0" if on else "3"],
                             check=False, capture_output=True, text=True, timeout=10)
        if out.returncode != 0:
            raise RuntimeError(f"bridge link set {port}: {out.stderr.strip()}")


class Proc:
    """A child process whose stdout is JSON lines, read in the background."""

    def __init__(self, proc: subprocess.Popen[str], label: str) -> None:
        self.proc = proc
        self.label = label
        self.lines: queue.Queue[dict[str, Any]] = queue.Queue()
        self.seen: list[dict[str, Any]] = []
        self.stderr: list[str] = []
        self._threads = [threading.Thread(target=self._read, daemon=True),
                         threading.Thread(target=self._read_err, daemon=True)]
        for t in self._threads:
            t.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with contextlib.suppress(ValueError):
                self.lines.put(json.loads(line))

    def _read_err(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.stderr.append(line.rstrip())

    def expect(self, pred: Callable[[dict[str, Any]], bool], timeout: float,
               what: str = "") -> dict[str, Any]:
        """The first line (from now on, or seen before and not taken) that ``pred`` accepts."""
        for i, line in enumerate(self.seen):
            if pred(line):
                del self.seen[i]
                return line
        end = time.monotonic() + timeout
        while True:
            left = end - time.monotonic()
            if left <= 0:
                raise AssertionError(
                    f"{self.label}: no {what or 'matching line'} within {timeout}s; "
                    f"exit={self.proc.poll()} seen={self.seen[-8:]} stderr={self.stderr[-8:]}"
                )
            try:
                line = self.lines.get(timeout=min(left, 0.1))
            except queue.Empty:
                continue
            if pred(line):
                return line
            self.seen.append(line)

    def event(self, kind: str, timeout: float, **fields: object) -> dict[str, Any]:
        return self.expect(
            lambda d: d.get("event") == kind and all(d.get(k) == v for k, v in fields.items()),
            timeout, f"{kind} {fields or ''}",
        )

    def none(self, kind: str, wait: float) -> None:
        """Fail if an event of ``kind`` arrives within ``wait`` seconds."""
        try:
            got = self.event(kind, wait)
        except AssertionError:
            return  # none came: what we want
        raise AssertionError(f"{self.label}: unexpected {got}")

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        with contextlib.suppress(BrokenPipeError, OSError):
            self.proc.stdin.write(line + "\n")
            self.proc.stdin.flush()

    def quit(self, timeout: float = 10.0) -> int:
        """Ask it to close cleanly (stdin closed); kill it if it does not."""
        if self.proc.poll() is None:
            with contextlib.suppress(BrokenPipeError, OSError):
                assert self.proc.stdin is not None
                self.proc.stdin.close()
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return self.proc.wait(5)

    def kill(self) -> None:
        """SIGKILL (``ip netns exec`` execs the child, so this is the peer itself)."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)

    def close(self) -> None:
        self.kill()
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        for t in self._threads:
            t.join(2)


class Lab:
    """Hosts and switches for one test. Use as a context manager."""

    def __init__(self) -> None:
        self.prefix = f"pmq{os.getpid()}"
        self.switches: dict[str, int] = {}
        self.hosts: dict[str, Host] = {}
        self.procs: list[Proc] = []
        self._namespaces: list[str] = []

    def switch_ns(self, switch: str) -> str:
        return f"{self.prefix}-{switch}"

    def _netns(self, name: str) -> str:
        ns = f"{self.prefix}-{name}"
        ip("netns", "del", ns, check=False)  # a leftover of a killed run
        ip("netns", "add", ns)
        self._namespaces.append(ns)
        ip("-n", ns, "link", "set", "lo", "up")
        if ip("-n", ns, "route", "show", "default").strip():
            raise RuntimeError(f"{ns} has a default route: refusing to send anything")
        return ns

    def add_switch(self, name: str) -> None:
        ns = self._netns(name)
        self.switches[name] = len(self.switches) + 1
        ip("-n", ns, "link", "add", "br0", "type", "bridge")
        # no IGMP/MLD snooping: every port gets the mDNS group, as on a plain switch
        ip("-n", ns, "link", "set", "br0", "type", "bridge", "mcast_snooping", "0")
        ip("-n", ns, "link", "set", "br0", "up")

    def add_host(self, name: str, *, switches: Sequence[str] = ("lan1",), v4: bool = True,
                 v6: bool = True) -> Host:
        """A host with one interface per switch: eth0 on the first, eth1 on the second..."""
        for sw in switches:
            if sw not in self.switches:
                self.add_switch(sw)
        ns = self._netns(name)
        host = Host(self, name, ns, len(self.hosts) + 1)
        self.hosts[name] = host
        host.sh("sysctl", "-qw", "net.ipv6.conf.all.accept_dad=0",
                "net.ipv6.conf.default.accept_dad=0")
        for n, sw in enumerate(switches):
            itf, port = f"eth{n}", f"{name}e{n}"
            swns = self.switch_ns(sw)
            ip("link", "add", itf, "netns", ns, "type", "veth", "peer", "name", port,
               "netns", swns)
            ip("-n", swns, "link", "set", port, "master", "br0")
            ip("-n", swns, "link", "set", port, "up")
            host.links[itf] = (sw, port)
            if v4:
                ip("-n", ns, "addr", "add", f"{host.addr(sw)}/24", "dev", itf)
            if v6:
                ip("-n", ns, "-6", "addr", "add", f"{host.addr(sw, v6=True)}/64", "dev", itf,
                   "nodad")
            else:
                host.sh("sysctl", "-qw", f"net.ipv6.conf.{itf}.disable_ipv6=1")
            ip("-n", ns, "link", "set", itf, "multicast", "on")
            ip("-n", ns, "link", "set", itf, "up")
        return host

    def close(self) -> None:
        for p in self.procs:
            p.close()
        for ns in reversed(self._namespaces):
            ip("netns", "del", ns, check=False)
        self._namespaces.clear()

    def __enter__(self) -> Lab:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextlib.contextmanager
def lab() -> Iterator[Lab]:
    with Lab() as made:
        yield made
