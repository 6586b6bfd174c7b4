"""A standard DNS-SD client sees our services: Debian's avahi-daemon and avahi-browse.

avahi-browse asks avahi-daemon over D-Bus, so the test runs its own system bus (a private
dbus-daemon listening on a socket in tmp_path) and its own avahi-daemon on a lab host, with a
tmpfs over /run in that host's mount namespace for avahi's pid file and socket.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from .lab import Lab

T = 15.0
BUS_CONF = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path={bus}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_type="method_call"/> <allow send_type="signal"/>
    <allow send_type="method_return"/> <allow send_type="error"/>
    <allow receive_type="method_call"/> <allow receive_type="signal"/>
    <allow receive_type="method_return"/> <allow receive_type="error"/>
  </policy>
</busconfig>
"""
AVAHI_CONF = """[server]
host-name=pmqavahi
use-ipv4=yes
use-ipv6=yes
allow-interfaces=eth0
enable-dbus=yes
[wide-area]
enable-wide-area=no
[publish]
publish-hinfo=no
publish-workstation=no
"""


def unescape(text: str) -> str:
    """avahi-browse -p escapes characters of names as backslash and three decimal digits."""
    return re.sub(r"\\(\d{3})", lambda m: chr(int(m.group(1))), text)


@pytest.fixture
def avahi_bus(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    missing = [c for c in ("avahi-daemon", "avahi-browse", "dbus-daemon") if not shutil.which(c)]
    if missing:
        pytest.skip(f"needs {', '.join(missing)} (scripts/test.sh installs avahi-daemon, "
                    "avahi-utils and dbus when run as root)")
    return tmp_path, {"DBUS_SYSTEM_BUS_ADDRESS": f"unix:path={tmp_path / 'bus'}"}


def test_avahi_browse_lists_and_resolves_our_services(
    lab: Lab, avahi_bus: tuple[Path, dict[str, str]]
) -> None:
    tmp, env = avahi_bus
    (tmp / "bus.conf").write_text(BUS_CONF.format(bus=tmp / "bus"))
    (tmp / "avahi.conf").write_text(AVAHI_CONF)
    h1, h2 = lab.add_host("h1"), lab.add_host("h2")
    dbus = subprocess.Popen(["dbus-daemon", f"--config-file={tmp / 'bus.conf'}", "--nofork",
                             "--nopidfile"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        end = time.monotonic() + T
        while not (tmp / "bus").exists():
            assert time.monotonic() < end, "the private D-Bus did not start"
            time.sleep(0.05)
        avahi = h2.spawn(["sh", "-c", "mount -t tmpfs pmqrun /run && exec avahi-daemon "
                          f"--no-drop-root --no-chroot --no-rlimits -f {tmp / 'avahi.conf'}"],
                         env)
        pub = h1.peer("pub", "orders", "--name", "avahi-test")
        port = int(pub.event("started", T)["endpoints"][0].rsplit(":", 1)[1])
        pub.event("announced", T)
        want = "avahi-test pub orders #1"
        rows: list[list[str]] = []
        end = time.monotonic() + T
        while not rows:
            assert time.monotonic() < end, f"avahi-browse never resolved {want!r}: {avahi.stderr}"
            out = h2.sh("avahi-browse", "--resolve", "--terminate", "--parsable",
                        "_peermq._tcp", env=env, check=False)
            rows = [r.split(";") for r in out.splitlines()
                    if r.startswith("=") and unescape(r.split(";")[3]) == want]
        row = rows[0]
        # =;interface;protocol;name;type;domain;host;address;port;txt
        assert row[1] == "eth0" and row[4] == "_peermq._tcp" and row[5] == "local"
        assert row[7] in (h1.addr(), h1.addr(v6=True)) and int(row[8]) == port
        txt = dict(s.strip('"').split("=", 1) for s in row[9].split('" "'))
        assert txt["txtvers"] == "1" and txt["svc"] == "orders" and txt["kind"] == "pub"
        assert txt["node"] == "avahi-test" and txt["st"] == "1" and "fp" in txt
    finally:
        dbus.kill()
        dbus.wait(5)
