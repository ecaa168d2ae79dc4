#!/usr/bin/env bash
# Start a single-node SLURM cluster on this machine for tests/slurm (Debian slurm-wlm + munge,
# no accounting: the test profile polls job states with squeue). Needs root and apt.
# Idempotent: installs the packages if missing, (re)writes the config, starts the daemons and
# waits until the node is idle. Tear down with tests/slurm/down.sh.
set -euo pipefail
log() { echo "[slurm-up] $*" >&2; }

if [[ $(id -u) -ne 0 ]]; then echo "up.sh: needs root" >&2; exit 2; fi

if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v munged >/dev/null; then
  command -v apt-get >/dev/null || { echo "up.sh: apt-get not available" >&2; exit 2; }
  log "installing slurmctld slurmd slurm-client munge"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends slurmctld slurmd slurm-client munge >/dev/null
fi

HOST=$(hostname -s)
CPUS=${SLURM_TEST_CPUS:-8}
MEM=${SLURM_TEST_MEM_MB:-16000}

install -d -o munge -g munge -m 0755 /run/munge
install -d -o slurm -g slurm /run/slurm /var/log/slurm /var/lib/slurm /var/lib/slurm/slurmctld
install -d /var/lib/slurm/slurmd /etc/slurm
chown slurm:slurm /run/slurm /var/log/slurm
chmod 0755 /run/slurm

if [[ ! -s /etc/munge/munge.key ]]; then
  log "creating munge key"
  mungekey --create --keyfile /etc/munge/munge.key 2>/dev/null || \
    dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key status=none
  chown munge:munge /etc/munge/munge.key
  chmod 0400 /etc/munge/munge.key
fi

if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
  log "starting munged"
  runuser -u munge -- munged --force
  for _ in $(seq 50); do munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.2; done
fi
munge -n | unmunge >/dev/null

cat > /etc/slurm/slurm.conf <<CONF
# Written by tests/slurm/up.sh (phantom-parallel SLURM test cluster)
ClusterName=localcluster
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
SlurmctldPidFile=/run/slurm/slurmctld.pid
SlurmdPidFile=/run/slurm/slurmd.pid
StateSaveLocation=/var/lib/slurm/slurmctld
SlurmdSpoolDir=/var/lib/slurm/slurmd
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
MinJobAge=300
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
NodeName=${HOST} NodeAddr=127.0.0.1 CPUs=${CPUS} Sockets=1 CoresPerSocket=${CPUS} ThreadsPerCore=1 RealMemory=${MEM} State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF

pidalive() { [[ -s $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null; }
if ! pidalive /run/slurm/slurmctld.pid; then log "starting slurmctld"; slurmctld; fi
if ! pidalive /run/slurm/slurmd.pid; then log "starting slurmd"; slurmd; fi

for _ in $(seq 100); do
  state=$(sinfo -h -o %T 2>/dev/null | head -n1 || true)
  [[ $state == idle ]] && break
  if [[ $state == down* || $state == drain* ]]; then scontrol update nodename="$HOST" state=resume 2>/dev/null || true; fi
  sleep 0.3
done
state=$(sinfo -h -o %T 2>/dev/null | head -n1 || true)
if [[ $state != idle && $state != mixed && $state != allocated ]]; then
  echo "up.sh: node state is '${state}', expected idle; see /var/log/slurm/*.log" >&2
  exit 1
fi
log "cluster up: $(sinfo -h)"
