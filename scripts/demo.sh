#!/bin/sh
# The main job: publishers, subscribers and a work pipeline on this machine, and what flows.
set -eu
PEERMQ_EXTRAS=test . "$(dirname "$0")/_env.sh"
exec .venv/bin/peermq demo "$@"
