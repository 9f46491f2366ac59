#!/usr/bin/env bash
# The engine's own checks: format, lint, types, then every test tier (unit, local-real, contract).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.cache/bin:$PATH"   # fortio installed by scripts/setup.sh --dev
export MESHPROOF_REQUIRE_REAL_TOOLS=1  # the local-real tier fails, never skips, when a tool is missing

.venv/bin/ruff format --check .
.venv/bin/ruff check .
.venv/bin/mypy
# The control-plane tier (tests/control_plane): build or restore its binaries, start it on loopback and
# stop it afterwards, whatever happened. A tier someone already started by hand is used and left running.
# MESHPROOF_CONTROL_PLANE=0 leaves it out (its tests then fail, as MESHPROOF_REQUIRE_REAL_TOOLS=1 is set).
cp_state="${MESHPROOF_CONTROL_PLANE_DIR:-$PWD/.cache/control-plane}"
cp_started=0
if [ "${MESHPROOF_CONTROL_PLANE:-1}" = 1 ]; then
  # a pids file whose processes are gone (a crash, a reboot) is no running tier: up.sh replaces it
  if [ -s "$cp_state/pids" ] && (MESHPROOF_CONTROL_PLANE_DIR="$cp_state" && . scripts/control-plane/common.sh && cp_tier_running); then
    echo "test-engine: using the control-plane tier already running in $cp_state"
  else
    trap 'bash scripts/control-plane/down.sh --keep-state' EXIT
    bash scripts/control-plane/up.sh
    cp_started=1
  fi
fi
# testpaths points at the suites (what users run); the engine's tests are named explicitly.
set +e
.venv/bin/pytest tests -p no:cacheprovider "$@"
rc=$?
if [ "$cp_started" = 1 ]; then
  trap - EXIT
  bash scripts/control-plane/down.sh || rc=1  # a process left behind fails the run
fi
set -e
if [ "$rc" = 5 ]; then
  echo "test-engine: pytest collected no tests" >&2
  exit 1
fi
exit "$rc"
