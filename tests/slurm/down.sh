#!/usr/bin/env bash
# Stop the test cluster started by tests/slurm/up.sh, and nothing else: cancel the jobs of its
# own partition (only while its own slurmctld runs), stop each daemon recorded in its state file
# (TERM, up to 10 s, then KILL; only if that PID still runs a process of that name), remove the
# files it recorded as created and the slurm.conf that carries its marker. Without its state
# folder it does nothing. Paths: tests/slurm/lib.sh.
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/slurm/lib.sh
. "$HERE/lib.sh"
log() { echo "[slurm-down] $*" >&2; }

if [[ ! -e $STATE_MARK ]]; then
  log "nothing to stop: $SLURM_TEST_STATE was not created by up.sh"
  exit 0
fi

ctld_up=0
touch "$STARTED" "$CREATED"
while read -r name pid; do
  [[ $name == slurmctld ]] && runs_as "$name" "$pid" && ctld_up=1
done < "$STARTED"
if ((ctld_up)) && command -v scancel >/dev/null; then
  SLURM_CONF=$SLURM_TEST_CONF scancel --partition="$SLURM_TEST_PARTITION" 2>/dev/null
fi

stop() {
  local name=$1 pid=$2
  runs_as "$name" "$pid" || return 0
  log "stopping $name (pid $pid)"
  kill -TERM "$pid" 2>/dev/null
  for _ in $(seq 50); do runs_as "$name" "$pid" || return 0; sleep 0.2; done
  kill -KILL "$pid" 2>/dev/null
}
# last started first: slurmd, slurmctld, munged
tac "$STARTED" | while read -r name pid; do
  [[ -n $name ]] && stop "$name" "$pid"
done

if [[ -e $SLURM_TEST_CONF ]] && grep -qF "$SLURM_TEST_MARKER" "$SLURM_TEST_CONF"; then
  rm -f "$SLURM_TEST_CONF"
fi
while read -r path; do
  [[ -n $path ]] && rm -f "$path"
done < "$CREATED"
rm -rf "${SLURM_TEST_STATE:?}/slurm-run" "$SLURM_TEST_STATE/slurm-log" \
  "$SLURM_TEST_STATE/slurm-ctld" "$SLURM_TEST_STATE/slurm-spool"
rm -f "$STARTED" "$CREATED" "$STATE_MARK"
rmdir "$SLURM_TEST_STATE" 2>/dev/null
log "stopped what up.sh started"
exit 0
