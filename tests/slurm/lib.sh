# Shared by tests/slurm/up.sh and down.sh (sourced). Every system path is injectable so the tests
# of the guard never read or write the real /etc, /run or /proc entries:
#   PHANTOM_SLURM_ETC        folder of slurm.conf            (default /etc/slurm)
#   PHANTOM_SLURM_STATE_DIR  what up.sh started and created  (default /run/phantom-slurm-test)
#   PHANTOM_SLURM_PROC       process table read by the guard (default /proc)
# The test cluster is ours only if its slurm.conf carries SLURM_TEST_MARKER and every running
# SLURM/munge daemon is listed in $STARTED; anything else belongs to someone else.

SLURM_TEST_MARKER="phantom-parallel SLURM test cluster, written by tests/slurm/up.sh"
SLURM_ETC=${PHANTOM_SLURM_ETC:-/etc/slurm}
SLURM_TEST_CONF=$SLURM_ETC/slurm.conf
SLURM_TEST_STATE=${PHANTOM_SLURM_STATE_DIR:-/run/phantom-slurm-test}
SLURM_TEST_PROC=${PHANTOM_SLURM_PROC:-/proc}
STARTED=$SLURM_TEST_STATE/started   # "<daemon> <pid>" for each daemon up.sh started
CREATED=$SLURM_TEST_STATE/created   # files up.sh created outside its state folder
STATE_MARK=$SLURM_TEST_STATE/.phantom-slurm-test
SLURM_TEST_PARTITION=phantomtest
SLURM_DAEMONS=(slurmctld slurmd slurmdbd munged)

# True when process $2 runs (not a zombie) under the name (comm) $1.
runs_as() {
  local d=$SLURM_TEST_PROC/$2 stat
  [[ -r $d/comm && $(<"$d/comm") == "$1" ]] || return 1
  [[ -r $d/stat ]] || return 0
  stat=$(<"$d/stat") || return 1
  stat=${stat##*) }
  [[ ${stat:0:1} != Z ]]
}

# PIDs of the running processes named $1.
pids_named() {
  local d
  for d in "$SLURM_TEST_PROC"/[0-9]*; do
    runs_as "$1" "${d##*/}" && echo "${d##*/}"
  done 2>/dev/null
  return 0
}

# True when up.sh recorded that it started daemon $1 as pid $2.
started_by_us() { [[ -s $STARTED ]] && grep -qx "$1 $2" "$STARTED"; }

# One line saying why SLURM on this machine is not ours (nothing printed: safe to go on).
foreign_reason() {
  local name pid
  if [[ -e $SLURM_TEST_CONF ]] && ! grep -qF "$SLURM_TEST_MARKER" "$SLURM_TEST_CONF"; then
    echo "$SLURM_TEST_CONF exists and was not written by tests/slurm/up.sh (this machine has its own SLURM configuration)"
    return 0
  fi
  if [[ -n ${SLURM_CONF:-} && $SLURM_CONF != "$SLURM_TEST_CONF" ]]; then
    echo "SLURM_CONF=$SLURM_CONF is set (another SLURM configuration is in use)"
    return 0
  fi
  for name in "${SLURM_DAEMONS[@]}"; do
    for pid in $(pids_named "$name"); do
      if ! started_by_us "$name" "$pid"; then
        echo "$name (pid $pid) is running and was not started by tests/slurm/up.sh"
        return 0
      fi
    done
  done
  return 0
}
