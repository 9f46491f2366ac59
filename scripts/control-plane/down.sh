#!/usr/bin/env bash
# Stop the control-plane tier started by up.sh: every process by its recorded pid (newest first, SIGTERM,
# then SIGKILL after a grace period; each to its process group, as up.sh starts each with setsid), then
# check that none of them is left. A recorded pid that no longer runs the program recorded for it in
# pids.cmd (gone, or reused by the kernel for something else) is never signalled. Removes the run state unless
# --keep-state (logs stay readable for a failed CI run). Exit 1 when a process could not be stopped.
set -euo pipefail
. "$(dirname "$0")/common.sh"

keep=0
[ "${1:-}" = "--keep-state" ] && keep=1

mapfile -t recorded < <(cp_recorded_pids | tac)
entries=()
for entry in "${recorded[@]}"; do
  read -r name pid _ <<<"$entry"
  if cp_is_ours "$pid"; then
    entries+=("$entry")
  elif cp_alive "$pid"; then
    cp_say "$name (pid $pid) is no longer the recorded '$(cp_recorded_cmd "$pid")'; not signalled (stale pid)"
  fi
done
for entry in "${entries[@]}"; do
  read -r name pid _ <<<"$entry"
  cp_signal TERM "$pid"
done
left=()
for entry in "${entries[@]}"; do
  read -r name pid _ <<<"$entry"
  for _ in $(seq 1 100); do cp_alive "$pid" || break; sleep 0.1; done
  if cp_alive "$pid"; then
    cp_say "$name (pid $pid) ignored SIGTERM for 10 s; sending SIGKILL"
    cp_signal KILL "$pid"
    sleep 0.5
  fi
  cp_alive "$pid" && left+=("$name/$pid")
done
if [ "${#left[@]}" -gt 0 ]; then
  cp_die "still running after SIGKILL: ${left[*]}"
fi
# Nothing of the tier may still listen on its ports (a child that outlived its parent would).
if [ -f "$CP_STATE/env" ]; then
  listening=()
  for p in $(sed -n 's/^export MESHPROOF_CP_[A-Z_]*_PORT=\([0-9]*\)$/\1/p' "$CP_STATE/env"); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then listening+=("$p"); fi
  done
  [ "${#listening[@]}" -eq 0 ] || cp_die "processes stopped, but 127.0.0.1 ports still listen: ${listening[*]}"
fi
rm -f "$CP_PIDS" "$CP_CMDS"
if [ "$keep" = 0 ]; then
  rm -rf "$CP_STATE"
  cp_say "stopped ${#entries[@]} process(es); removed $CP_STATE"
else
  cp_say "stopped ${#entries[@]} process(es); kept $CP_STATE (logs in $CP_STATE/logs)"
fi
