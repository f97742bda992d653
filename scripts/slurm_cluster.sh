#!/usr/bin/env bash
# A real two-node Slurm cluster on one machine, for the Slurm tests and bench/slurm_bench.sh:
# munged, slurmctld and two slurmd "nodes" (n1, n2), each slurmd in its own network namespace
# joined to the host by a veth pair on a bridge, so traffic between nodes (DDP ranks, reports to
# the tuner) really crosses a network:
#
#   host (tuner, slurmctld, munged)  tunebr0 10.77.0.1/24
#     ├─ veth ── netns tune-n1: n1 10.77.0.11   slurmd -N n1
#     └─ veth ── netns tune-n2: n2 10.77.0.12   slurmd -N n2
#
#   bash scripts/slurm_cluster.sh start    install if needed (setup.sh --slurm), then start it
#                                          (--or-skip: exit 0 where Slurm cannot run here)
#   bash scripts/slurm_cluster.sh stop     kill the daemons (by pid file), delete the namespaces
#   bash scripts/slurm_cluster.sh status   sinfo, or exit 1 when it is not running
#   bash scripts/slurm_cluster.sh env      the variables a client needs (eval "$(... env)")
#
# Everything lives in $TUNE_SLURM_DIR (default /tmp/tune-slurm): slurm.conf generated there,
# munge key and socket, state, spool, logs, pid files. Needs root (namespaces, daemons). Slurm
# runs without cgroups (proctrack/linuxproc, task/none) and without accounting, so it works in a
# container. Each node declares $TUNE_SLURM_CPUS CPUs (default 8) whatever the machine has
# (SlurmdParameters=config_overrides). `start` exits 77 with a reason when Slurm cannot be
# installed or started here (no root, no network namespaces); a failed start cleans up.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${TUNE_SLURM_DIR:-/tmp/tune-slurm}
cpus=${TUNE_SLURM_CPUS:-8}
bridge=tunebr0
nodes=(n1 n2)
declare -A addr=([n1]=10.77.0.11 [n2]=10.77.0.12)
host_addr=10.77.0.1
conf=$dir/slurm.conf

log() { echo "slurm_cluster: $*" >&2; }

client_env() {
  echo "export SLURM_CONF=$conf"
  echo "export TUNE_SLURM_DIR=$dir"
}

# Kills the process in pid file $1 (and waits up to 10 s for it), then removes the file.
kill_pidfile() {
  local file=$1 pid
  [[ -f $file ]] || return 0
  pid=$(<"$file")
  if [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$file"
}

stop() {
  # Steps first: slurmstepd processes are children of nobody we track once slurmd is gone.
  if [[ -f $dir/run/slurmctld.pid ]] && kill -0 "$(<"$dir/run/slurmctld.pid")" 2>/dev/null; then
    SLURM_CONF=$conf timeout 10 scancel --full --quiet --user=root 2>/dev/null || true
  fi
  for node in "${nodes[@]}"; do kill_pidfile "$dir/run/slurmd.$node.pid"; done
  # slurmstepd of steps that were running (a node killed mid-step) and their tasks.
  for node in "${nodes[@]}"; do
    if ip netns pids "tune-$node" >/dev/null 2>&1; then
      for pid in $(ip netns pids "tune-$node"); do kill -KILL "$pid" 2>/dev/null || true; done
    fi
  done
  kill_pidfile "$dir/run/slurmctld.pid"
  kill_pidfile "$dir/run/munged.pid"
  for node in "${nodes[@]}"; do
    ip netns del "tune-$node" 2>/dev/null || true
    ip link del "veth-$node" 2>/dev/null || true
  done
  ip link del "$bridge" 2>/dev/null || true
}

# Waits until `sinfo` shows every node idle (or up to $1 seconds).
wait_idle() {
  local deadline=$((SECONDS + $1)) states
  while ((SECONDS < deadline)); do
    states=$(SLURM_CONF=$conf sinfo -h -N -o '%N %t' 2>/dev/null | sort -u || true)
    if [[ $(grep -c ' idle$' <<<"$states") -eq ${#nodes[@]} ]]; then return 0; fi
    sleep 0.2
  done
  log "nodes not idle after $1 s: ${states:-no answer from slurmctld}"
  return 1
}

# Where Slurm cannot run here: exit 77, or 0 with --or-skip (a CTest fixture, whose tests then
# find no cluster and skip themselves).
skip() {
  log "SKIP: $*"
  [[ ${or_skip:-0} == 1 ]] && exit 0
  exit 77
}

start() {
  [[ $(id -u) -eq 0 ]] || skip "needs root (network namespaces, daemons)"
  if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
    bash scripts/setup.sh --slurm >&2 || true
  fi
  if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null ||
     ! command -v munged >/dev/null || ! command -v srun >/dev/null; then
    skip "Slurm could not be installed (scripts/setup.sh --slurm)"
  fi
  if ! ip netns add tune-probe 2>/dev/null; then
    skip "cannot create network namespaces here (ip netns add)"
  fi
  ip netns del tune-probe
  stop  # whatever a killed run left
  trap 'rc=$?; if ((rc != 0)); then log "start failed; logs in $dir/log"; tail -n 20 "$dir"/log/*.log >&2 || true; stop; fi' EXIT
  rm -rf "$dir/state" "$dir/spool" "$dir/run"
  mkdir -p "$dir"/{state,spool,run,log,munge,munge-key}
  chmod 755 "$dir" "$dir/munge"
  chmod 700 "$dir/munge-key"

  # The network: a bridge on the host, a veth pair into each node's namespace, a default route
  # back through the host (so a node reaches every address of the host, as on a cluster).
  ip link add "$bridge" type bridge
  ip addr add "$host_addr/24" dev "$bridge"
  ip link set "$bridge" up
  local hosts="127.0.0.1 localhost
$host_addr $(hostname -s) tune-ctl"
  for node in "${nodes[@]}"; do hosts+=$'\n'"${addr[$node]} $node"; done
  for node in "${nodes[@]}"; do
    ip netns add "tune-$node"
    ip link add "veth-$node" type veth peer name eth0 netns "tune-$node"
    ip link set "veth-$node" master "$bridge" up
    ip -n "tune-$node" addr add "${addr[$node]}/24" dev eth0
    ip -n "tune-$node" link set lo up
    ip -n "tune-$node" link set eth0 up
    ip -n "tune-$node" route add default via "$host_addr"
    echo "$hosts" >"$dir/hosts"
  done

  # munge: its own key, socket and files (the packaged service is not used).
  [[ -f $dir/munge-key/munge.key ]] || dd if=/dev/urandom of="$dir/munge-key/munge.key" bs=1024 count=1 status=none
  chmod 400 "$dir/munge-key/munge.key"
  munged --force --key-file="$dir/munge-key/munge.key" --socket="$dir/munge/munge.socket" \
    --pid-file="$dir/run/munged.pid" --log-file="$dir/log/munged.log" \
    --seed-file="$dir/munge/munge.seed"
  for _ in $(seq 50); do [[ -S $dir/munge/munge.socket ]] && break; sleep 0.1; done

  cat >"$conf" <<EOF
# Generated by scripts/slurm_cluster.sh: a two-node test cluster, no cgroups, no accounting.
ClusterName=tune-test
SlurmctldHost=$(hostname -s)($host_addr)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$dir/munge/munge.socket
CredType=cred/munge
SlurmctldPort=6817
SlurmdPort=6818
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool/%n
SlurmctldPidFile=$dir/run/slurmctld.pid
SlurmdPidFile=$dir/run/slurmd.%n.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.%n.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SwitchType=switch/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SlurmdParameters=config_overrides
ReturnToService=2
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=1,bf_interval=1
MessageTimeout=10
SlurmdTimeout=30
InactiveLimit=0
KillWait=5
MinJobAge=300
# Tasks killed with the step, however a node fails.
KillOnBadExit=0
NodeName=DEFAULT CPUs=$cpus RealMemory=1000 State=UNKNOWN
NodeName=n1 NodeAddr=${addr[n1]} NodeHostname=n1
NodeName=n2 NodeAddr=${addr[n2]} NodeHostname=n2
PartitionName=debug Nodes=n1,n2 Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
EOF

  slurmctld -f "$conf" -i
  for _ in $(seq 100); do [[ -s $dir/run/slurmctld.pid ]] && break; sleep 0.1; done
  for node in "${nodes[@]}"; do
    mkdir -p "$dir/spool/$node"
    # In the node's network namespace and a mount namespace of its own, where the cluster's
    # hosts file is /etc/hosts: node names resolve on the nodes (MASTER_ADDR=n1 for a DDP step).
    # Not `ip netns exec`: it remounts /sys, hiding the cgroup mounts slurmd 22.05 insists on.
    nsenter --net="/run/netns/tune-$node" unshare --mount --propagation private \
      sh -c 'mount --bind "$1" /etc/hosts && exec slurmd -f "$2" -N "$3"' sh \
      "$dir/hosts" "$conf" "$node"
  done
  for node in "${nodes[@]}"; do
    for _ in $(seq 100); do [[ -s $dir/run/slurmd.$node.pid ]] && break; sleep 0.1; done
  done
  wait_idle 60
  trap - EXIT
  log "up: $(SLURM_CONF=$conf sinfo -h -N -o '%N=%t' | sort -u | tr '\n' ' ')(SLURM_CONF=$conf)"
}

[[ ${2:-} == --or-skip ]] && or_skip=1
case ${1:-} in
  start) start ;;
  stop) stop; log "stopped" ;;
  status) SLURM_CONF=$conf timeout 10 sinfo -N ;;
  env) client_env ;;
  *) echo "usage: $0 start|stop|status|env" >&2; exit 2 ;;
esac
