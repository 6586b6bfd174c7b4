# Sourced by the other scripts: make .venv and install peermq with its test tools into it.
set -eu
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if ! "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; then
  echo "peermq needs Python 3.10 or newer as '$PY' (set PYTHON=...)" >&2
  exit 1
fi
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv || {
    echo "could not make a virtual environment; on Debian: apt-get install python3-venv" >&2
    exit 1
  }
fi
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".[${PEERMQ_EXTRAS:-test}]"
