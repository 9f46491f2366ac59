# Shared by up.sh and down.sh (sourced). Where the tier's run state lives and how to read it.
# State (certs, etcd data, logs, pids, kubeconfig, env): $MESHPROOF_CONTROL_PLANE_DIR, default
# <repo>/.cache/control-plane (git-ignored). The binaries live in the build cache outside the repository.
CP_HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CP_REPO="$(cd "$CP_HERE/../.." && pwd)"
CP_STATE="${MESHPROOF_CONTROL_PLANE_DIR:-$CP_REPO/.cache/control-plane}"
CP_PIDS="$CP_STATE/pids"
# Beside it, one "name pid command" a line: the program each pid was started as, so a pid the kernel has
# since reused for something else is never signalled (pids stays "name pid": tests read it).
CP_CMDS="$CP_STATE/pids.cmd"

cp_say() { echo "control-plane: $(date -u +%H:%M:%S) $*" >&2; }
cp_die() { echo "control-plane: $*" >&2; exit 1; }

# The recorded pids, one "name pid" a line, in start order.
cp_recorded_pids() { [ -f "$CP_PIDS" ] && cat "$CP_PIDS" || true; }

# Is pid running? A dead child not yet reaped (a zombie) still answers kill -0, so read its state too.
cp_alive() { kill -0 "$1" 2>/dev/null && [ "$(ps -o stat= -p "$1" 2>/dev/null | cut -c1)" != "Z" ]; }

# The program PID was recorded as started with (empty: none recorded).
cp_recorded_cmd() {
  [ -f "$CP_CMDS" ] || return 0
  local name pid cmd
  while read -r name pid cmd; do
    [ "$pid" = "$1" ] && { echo "$cmd"; return 0; }
  done <"$CP_CMDS"
}

# Does PID still run the tier's recorded program (and not a later process that reused the pid)?
cp_is_ours() {
  local pid="$1" cmd
  cmd="$(cp_recorded_cmd "$pid")"
  [ -n "$cmd" ] && cp_alive "$pid" || return 1
  if [ -r "/proc/$pid/cmdline" ]; then
    tr '\0' '\n' <"/proc/$pid/cmdline" | grep -Fxq -- "$cmd"
  else
    [ "$(ps -o comm= -p "$pid" 2>/dev/null)" = "$(basename "$cmd" | cut -c1-15)" ]
  fi
}

# Is any recorded process of the tier still running? (A pids file left by a crash or reboot is stale.)
cp_tier_running() {
  local name pid
  while read -r name pid _; do
    [ -n "${pid:-}" ] && cp_is_ours "$pid" && return 0
  done < <(cp_recorded_pids)
  return 1
}

# Signal PID's process group when PID leads one (up.sh starts every component with setsid), else PID.
cp_signal() {
  local sig="$1" pid="$2"
  if [ "$(ps -o pgid= -p "$pid" 2>/dev/null | tr -d ' ')" = "$pid" ]; then
    kill "-$sig" -- "-$pid" 2>/dev/null || true
  else
    kill "-$sig" "$pid" 2>/dev/null || true
  fi
}
