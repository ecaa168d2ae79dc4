#!/usr/bin/env bash
# Start a single-node SLURM cluster on this machine for tests/slurm (Debian slurm-wlm + munge,
# no accounting: the test profile polls job states with squeue). Needs root and apt. Only for
# disposable machines (CI): it installs packages and writes /etc/slurm/slurm.conf; the test runs
# it only with PHANTOM_SLURM_TEST=1.
#
# It refuses (exit 3, one line on stderr, nothing changed) when SLURM or munge on this machine
# belongs to someone else: a slurm.conf without its marker, SLURM_CONF pointing elsewhere, or a
# running slurmctld/slurmd/slurmdbd/munged it did not start (lib.sh). `up.sh --check` runs only
# that check (no root needed). Every daemon it starts and every file it creates outside its state
# folder is recorded there; tests/slurm/down.sh stops and removes exactly those.
# Idempotent: rerunning it while its own cluster is up starts only what is missing.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/slurm/lib.sh
. "$HERE/lib.sh"
log() { echo "[slurm-up] $*" >&2; }
refuse() { echo "up.sh: refusing to start the SLURM test cluster: $*" >&2; exit 3; }

reason=$(foreign_reason)
if [[ ${1:-} == --check ]]; then
  [[ -z $reason ]] && exit 0
  echo "$reason" >&2
  exit 3
fi
[[ -z $reason ]] || refuse "$reason"
if [[ $(id -u) -ne 0 ]]; then echo "up.sh: needs root" >&2; exit 2; fi

if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v munged >/dev/null; then
  command -v apt-get >/dev/null || { echo "up.sh: apt-get not available" >&2; exit 2; }
  log "installing slurmctld slurmd slurm-client munge (daemons not started by the packages)"
  export DEBIAN_FRONTEND=noninteractive
  # policy-rc.d 101: the packages' maintainer scripts must not start (or restart) any service;
  # this script starts and records its own daemons.
  policy=/usr/sbin/policy-rc.d
  made_policy=0
  if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod 0755 "$policy" && made_policy=1
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends slurmctld slurmd slurm-client munge >/dev/null
  if ((made_policy)); then rm -f "$policy"; trap - EXIT; fi
  reason=$(foreign_reason)
  [[ -z $reason ]] || refuse "after installing the packages: $reason"
fi

HOST=$(hostname -s)
CPUS=${SLURM_TEST_CPUS:-8}
MEM=${SLURM_TEST_MEM_MB:-16000}
S=$SLURM_TEST_STATE

install -d -m 0755 "$S"
touch "$STATE_MARK" "$STARTED" "$CREATED"
install -d -o slurm -g slurm -m 0755 "$S/slurm-run" "$S/slurm-log" "$S/slurm-ctld"
install -d -m 0755 "$S/slurm-spool" "$SLURM_ETC"
install -d -o munge -g munge -m 0755 /run/munge

record() { echo "$1" >> "$2"; }
# Wait for the daemon named $1 to run, then record its PIDs (none ran before: checked above).
record_started() {
  local pid
  for _ in $(seq 50); do [[ -n $(pids_named "$1") ]] && break; sleep 0.2; done
  for pid in $(pids_named "$1"); do
    started_by_us "$1" "$pid" || record "$1 $pid" "$STARTED"
  done
  [[ -n $(pids_named "$1") ]] || { echo "up.sh: $1 did not start" >&2; exit 1; }
}

if [[ ! -s /etc/munge/munge.key ]]; then
  log "creating munge key"
  mungekey --create --keyfile /etc/munge/munge.key 2>/dev/null || \
    dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key status=none
  chown munge:munge /etc/munge/munge.key
  chmod 0400 /etc/munge/munge.key
  record /etc/munge/munge.key "$CREATED"
fi

if [[ -z $(pids_named munged) ]]; then
  log "starting munged"
  runuser -u munge -- munged --force
  record_started munged
  for _ in $(seq 50); do munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.2; done
fi
munge -n | unmunge >/dev/null

[[ -e $SLURM_TEST_CONF ]] || record "$SLURM_TEST_CONF" "$CREATED"
cat > "$SLURM_TEST_CONF" <<CONF
# ${SLURM_TEST_MARKER}; state in ${S}
ClusterName=${SLURM_TEST_PARTITION}
SlurmctldHost=${HOST}(127.0.0.1)
AuthType=auth/munge
CredType=cred/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SlurmdParameters=config_overrides
ReturnToService=2
SlurmUser=slurm
SlurmdUser=root
SlurmctldPidFile=${S}/slurm-run/slurmctld.pid
SlurmdPidFile=${S}/slurm-run/slurmd.pid
StateSaveLocation=${S}/slurm-ctld
SlurmdSpoolDir=${S}/slurm-spool
SlurmctldLogFile=${S}/slurm-log/slurmctld.log
SlurmdLogFile=${S}/slurm-log/slurmd.log
MinJobAge=300
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
NodeName=${HOST} NodeAddr=127.0.0.1 CPUs=${CPUS} Sockets=1 CoresPerSocket=${CPUS} ThreadsPerCore=1 RealMemory=${MEM} State=UNKNOWN
PartitionName=${SLURM_TEST_PARTITION} Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
export SLURM_CONF=$SLURM_TEST_CONF

if [[ -z $(pids_named slurmctld) ]]; then log "starting slurmctld"; slurmctld; record_started slurmctld; fi
if [[ -z $(pids_named slurmd) ]]; then log "starting slurmd"; slurmd; record_started slurmd; fi

for _ in $(seq 100); do
  state=$(sinfo -h -o %T 2>/dev/null | head -n1 || true)
  [[ $state == idle ]] && break
  if [[ $state == down* || $state == drain* ]]; then scontrol update nodename="$HOST" state=resume 2>/dev/null || true; fi
  sleep 0.3
done
state=$(sinfo -h -o %T 2>/dev/null | head -n1 || true)
if [[ $state != idle && $state != mixed && $state != allocated ]]; then
  echo "up.sh: node state is '${state}', expected idle; see ${S}/slurm-log/*.log" >&2
  exit 1
fi
log "cluster up: $(sinfo -h)"
