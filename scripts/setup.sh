#!/usr/bin/env bash
# Set up meshproof in ./.venv.
#   bash scripts/setup.sh          the suites: package + pinned cluster tools (kind, kubectl, istioctl, helm)
#   bash scripts/setup.sh --dev    the engine's tests: package + dev tools + fortio + upstream API definitions
#
# Exit status: non-zero only for what the next command cannot run without. The suites cannot run without
# the Python package (pip failing is fatal); a cluster tool that could not be downloaded is not: the suite
# checks before its first test what the chosen provider needs and says how to get it. The engine's tests
# (--dev) need fortio and the contract checker, so failing to build them is fatal there; nft and ip
# (nftables, iproute2) failing to install is a warning line, not fatal: only the native-nftables
# local-real tests need them (they skip, or fail under MESHPROOF_REQUIRE_REAL_TOOLS=1, naming what is
# missing), and without root they cannot be installed here anyway.
# Every failure is summarised in one line naming what failed and how to provide it; details go to
# .cache/setup/*.log.
set -euo pipefail
cd "$(dirname "$0")/.."

dev=0
case "${1:-}" in
  "") ;;
  --dev) dev=1 ;;
  *) echo "setup: unknown argument '$1' (use: bash scripts/setup.sh [--dev])" >&2; exit 2 ;;
esac

say() { echo "setup: $*"; }
fail() { echo "setup: $*" >&2; exit 1; }
# The line of a pip log that says what could not be had, else its last error.
pip_error() {
  { grep -ohE "No matching distribution found for [^ ]+|Failed to resolve '[^']+'" "$1" | head -n1; grep -E 'ERROR' "$1" | tail -n1; } |
    head -n1 | cut -c1-200 || true
}
logs=.cache/setup
mkdir -p "$logs"

python3 -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "meshproof needs Python >= 3.11")'
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv >"$logs/venv.log" 2>&1 ||
    fail "could not create .venv: $(tail -n1 "$logs/venv.log"); install the venv module (e.g. apt-get install python3-venv)"
fi
# A newer pip is nice to have, not needed: offline, keep the one the venv came with.
.venv/bin/python -m pip install --quiet --upgrade pip >"$logs/pip-upgrade.log" 2>&1 || true
extras=""
[ "$dev" = 1 ] && extras="[dev]"
say "installing meshproof${extras} and its Python dependencies into .venv"
if ! .venv/bin/python -m pip install --quiet -e ".${extras}" >"$logs/pip.log" 2>&1; then
  fail "pip could not install meshproof's Python dependencies ($(pip_error "$logs/pip.log"); is the package index reachable?); provide them through a PyPI mirror (PIP_INDEX_URL=...) or a wheel directory (PIP_NO_INDEX=1 PIP_FIND_LINKS=DIR); full log: $logs/pip.log"
fi

if [ "$dev" = 1 ]; then
  # Real tools the local-real and contract tiers use; both come from the Go module proxy.
  missing=()
  say "building fortio with go install into .cache/bin (first time: a few minutes)"
  bash .ci/install-fortio .cache/bin || missing+=("fortio")
  say "installing nft and ip for the native-nftables local-real tests (root with apt only; skipped when present)"
  if ! bash .ci/install-system-packages; then
    echo "setup: could not install nftables/iproute2 (see the line above); the native-nftables local-real tests need nft and ip: install them as root (apt-get install nftables iproute2); continuing" >&2
  fi
  say "fetching the upstream API definitions and building the contract checker with Go (first time: a few minutes)"
  bash .ci/contract/fetch-upstream || missing+=("contract checker")
  if [ "${#missing[@]}" -gt 0 ]; then
    fail "could not build $(IFS=,; echo "${missing[*]}" | sed 's/,/, /g') (see the line above); the engine's local-real and contract tiers need them: install Go >= 1.25 and make a Go module proxy reachable (GOPROXY), or put fortio 1.x in .cache/bin"
  fi
else
  say "downloading the pinned cluster tools (kind, kubectl, istioctl, helm) into the meshproof tool cache"
  tools_rc=0
  .venv/bin/meshproof tools install >"$logs/tools.log" 2>&1 || tools_rc=$?
  # what was installed and the notes, not the raw error of each failed download (summarised below)
  grep -vE '^(kind|kubectl|istioctl|helm|fortio): ' "$logs/tools.log" | sed 's/^/setup: /' || true
  if [ "$tools_rc" != 0 ]; then
    failed="$(sed -nE 's/^(kind|kubectl|istioctl|helm|fortio): .*/\1/p' "$logs/tools.log" | paste -sd, - | sed 's/,/, /g')"
    echo "setup: could not download ${failed:-some tools} ($(grep -oE '\[Errno[^]]*\][^)]*|HTTP [0-9]+[^;)]*' "$logs/tools.log" | head -n1 || true)); the suite checks before its first test which of them your provider needs. Provide them: put them on PATH, \`meshproof tools install --mirror URL\`, or rerun when online (\`.venv/bin/meshproof doctor\` lists what is missing; log: $logs/tools.log)" >&2
  fi
fi
say "meshproof is set up in .venv"
