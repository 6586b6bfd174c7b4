#!/bin/sh
# The whole test suite: lint, types, then pytest inside a private network namespace.
# Arguments go to pytest (e.g. scripts/test.sh -x -k pubsub).
set -eu
. "$(dirname "$0")/_env.sh"

# Debian packages the network tests use, when we may install them (root with apt-get).
need=""
for cmd in ip:iproute2; do
  command -v "${cmd%%:*}" >/dev/null 2>&1 || need="$need ${cmd#*:}"
done
if [ -n "$need" ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing Debian packages:$need"
  apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $need >/dev/null
fi

.venv/bin/ruff check peermq tests examples bench
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
