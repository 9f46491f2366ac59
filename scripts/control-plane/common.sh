# Shared by up.sh and down.sh (sourced). Where the tier's run state lives and how to read it.
# State (certs, etcd data, logs, pids, kubeconfig, env): $MESHPROOF_CONTROL_PLANE_DIR, default
# <repo>/.cache/control-plane (git-ignored). The binaries live in the build cache outside the repository.
CP_HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CP_REPO="$(cd "$CP_HERE/../.." && pwd)"
CP_STATE="${MESHPROOF_CONTROL_PLANE_DIR:-$CP_REPO/.cache/control-plane}"
CP_PIDS="$CP_STATE/pids"

cp_say() { echo "control-plane: $(date -u +%H:%M:%S) $*" >&2; }
cp_die() { echo "control-plane: $*" >&2; exit 1; }

# The recorded pids, one "name pid" a line, in start order.
cp_recorded_pids() { [ -f "$CP_PIDS" ] && cat "$CP_PIDS" || true; }

# Is pid running? A dead child not yet reaped (a zombie) still answers kill -0, so read its state too.
cp_alive() { kill -0 "$1" 2>/dev/null && [ "$(ps -o stat= -p "$1" 2>/dev/null | cut -c1)" != "Z" ]; }
