#!/usr/bin/env bash
# Stop the test cluster started by tests/slurm/up.sh: cancel jobs, then stop each daemon by the
# PID in its pid file (TERM, up to 10 s, then KILL): slurmd, slurmctld, munged.
set -uo pipefail
command -v scancel >/dev/null && scancel --user="$(id -un)" 2>/dev/null
stop() {
  local pidfile=$1 pid
  [[ -s $pidfile ]] || return 0
  pid=$(cat "$pidfile")
  kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null
  for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.2; done
  kill -KILL "$pid" 2>/dev/null
}
stop /run/slurm/slurmd.pid
stop /run/slurm/slurmctld.pid
stop /run/munge/munged.pid
echo "[slurm-down] stopped" >&2
