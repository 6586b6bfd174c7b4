#!/bin/sh
# The whole test suite: lint, types, then pytest inside a private network namespace.
# Arguments go to pytest (e.g. scripts/test.sh -x -k pubsub).
set -eu
. "$(dirname "$0")/_env.sh"

# Debian packages the network tests use, when we may install them (root with apt-get).
need=""
# avahi-daemon, avahi-utils and dbus: a standard DNS-SD client sees our services (tests/network);
# strace: a failing fsync for the spool's fault tests; tmux: Ctrl-C at a terminal for the tap's
for cmd in ip:iproute2 avahi-daemon:avahi-daemon avahi-browse:avahi-utils dbus-daemon:dbus \
           strace:strace tmux:tmux; do
  command -v "${cmd%%:*}" >/dev/null 2>&1 || need="$need ${cmd#*:}"
done
if [ -n "$need" ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing Debian packages:$need"
  # the tests start their own avahi-daemon in a namespace: apt must not start one on this
  # machine's own network (policy-rc.d exit 101 tells Debian's maintainer scripts "no")
  guard=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
    guard=1
  fi
  apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $need >/dev/null || true
  [ -z "$guard" ] || rm -f /usr/sbin/policy-rc.d
fi

.venv/bin/ruff check peermq tests examples bench scripts
.venv/bin/mypy --strict scripts/unasync.py
.venv/bin/mypy

# A private network namespace: loopback up, multicast kept on loopback. Nothing leaves the host.
NETNS_SETUP='ip link set lo up && ip link set lo multicast on && ip route add 224.0.0.0/4 dev lo'
if [ "$(id -u)" = 0 ] && unshare --net true 2>/dev/null; then
  ns="unshare --net"
elif unshare --user --map-root-user --net true 2>/dev/null; then
  ns="unshare --user --map-root-user --net"
else
  ns=""
fi
if [ -n "$ns" ] && command -v ip >/dev/null 2>&1; then
  exec $ns -- sh -ec "$NETNS_SETUP; PEERMQ_NETNS=1 exec .venv/bin/python -m pytest \"\$@\"" sh "$@"
fi
echo "no private network namespace here (needs root or user namespaces, and iproute2): network tests will skip"
exec .venv/bin/python -m pytest "$@"
