#!/usr/bin/env bash
# The engine's own checks: format, lint, types, then every test tier (unit, local-real, contract).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.cache/bin:$PATH"   # fortio installed by scripts/setup.sh --dev
export MESHPROOF_REQUIRE_REAL_TOOLS=1  # the local-real tier fails, never skips, when a tool is missing

.venv/bin/ruff format --check .
.venv/bin/ruff check .
.venv/bin/mypy
# testpaths points at the suites (what users run); the engine's tests are named explicitly.
set +e
.venv/bin/pytest tests -p no:cacheprovider "$@"
rc=$?
set -e
if [ "$rc" = 5 ]; then
  echo "test-engine: pytest collected no tests" >&2
  exit 1
fi
exit "$rc"
