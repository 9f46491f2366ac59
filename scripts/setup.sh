#!/usr/bin/env bash
# Set up meshproof in ./.venv.
#   bash scripts/setup.sh          the suites: package + pinned cluster tools (kind, kubectl, istioctl, helm)
#   bash scripts/setup.sh --dev    the engine's tests: package + dev tools + fortio + upstream API definitions
set -euo pipefail
cd "$(dirname "$0")/.."

dev=0
[ "${1:-}" = "--dev" ] && dev=1

python3 -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "meshproof needs Python >= 3.11")'
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
if [ "$dev" = 1 ]; then
  .venv/bin/python -m pip install --quiet -e '.[dev]'
  # Real tools the local-real and contract tiers use; both come from the Go module proxy.
  bash .ci/install-fortio .cache/bin
  bash .ci/install-system-packages  # nft and ip for the native-nftables local-real tests (root only)
  bash .ci/contract/fetch-upstream
else
  .venv/bin/python -m pip install --quiet -e .
  .venv/bin/meshproof tools install
fi
echo "meshproof: set up in .venv"
