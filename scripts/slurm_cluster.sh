#!/usr/bin/env bash
# A real two-node Slurm cluster on one machine, for the Slurm tests and bench/slurm_bench.sh:
# munged, slurmctld, slurmdbd on a MariaDB of its own (accounting: sacct), and two slurmd "nodes"
# (n1, n2) with one fake GPU each, each slurmd in its own network namespace joined to the host by a
# veth pair on a bridge, so traffic between nodes (DDP ranks, reports to the tuner) really crosses
# a network:
#
#   host (tuner, slurmctld, slurmdbd, mariadbd, munged)  tunebr0 10.77.0.1/24
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
# munge key and socket, state, spool, logs, pid files, the accounting database (db/, made afresh
# by each start: job ids start again at 1, so old records must not answer sacct). Needs root
# (namespaces, daemons). Processes are tracked without cgroups (proctrack/linuxproc), so it works
# in a container; where a cgroup v1 memory hierarchy is mounted and writable here (as in this
# project's VMs: `mkdir` in /sys/fs/cgroup/memory works), task/cgroup with ConstrainRAMSpace
# enforces --mem/--mem-per-cpu (a step over it is OOM-killed: OUT_OF_MEMORY), each slurmd under
# /sys/fs/cgroup/memory/slurm_<node>; elsewhere (cgroup v2 only, whose Slurm 22.05 plugin needs
# systemd's D-Bus to delegate, or no cgroup at all) task/none and memory is not enforced
# (TUNE_SLURM_CGROUP=0 chooses task/none; `grep TaskPlugin $TUNE_SLURM_DIR/slurm.conf` says which
# ran). With cgroups memory is a consumable resource (CR_CPU_Memory) that comes with the CPUs
# (DefMemPerCPU: the machine's memory over the CPUs declared), so what asks no memory is placed
# by CPUs alone, as CR_CPU places everything without them. Each node declares $TUNE_SLURM_CPUS
# CPUs (default 8) whatever the machine has (SlurmdParameters=config_overrides), and one GPU:
# gres.conf's File= is a character device made under $TUNE_SLURM_DIR/dev (no hardware), enough
# for Slurm to count it, give it to one step at a time and set CUDA_VISIBLE_DEVICES and
# SLURM_STEP_GPUS. TUNE_SLURM_ACCOUNTING=0 starts it without
# slurmdbd (accounting_storage/none). A second partition, "preempt" (PriorityTier=2), preempts
# jobs of "debug" (PreemptMode=CANCEL), so tests can make a job PREEMPTED.
# `start` exits 77 with a reason when Slurm cannot be installed or started here (no root, no
# network namespaces); a failed start cleans up.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${TUNE_SLURM_DIR:-/tmp/tune-slurm}
cpus=${TUNE_SLURM_CPUS:-8}
accounting=${TUNE_SLURM_ACCOUNTING:-1}
use_cgroup=${TUNE_SLURM_CGROUP:-1}
db_port=6816   # mariadbd, on 127.0.0.1 only
dbd_port=6819  # slurmdbd
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

# Running, and not a zombie (the daemons are reparented to whoever reaps orphans here, which
# may take its time: a killed daemon's zombie is as good as gone).
alive() { [[ -r /proc/$1/stat ]] && [[ $(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) != Z ]]; }

# Kills the processes in pid files "$@" at once (and waits up to 10 s for them), then removes
# the files.
kill_pidfiles() {
  local file pid pids=()
  for file in "$@"; do
    [[ -f $file ]] || continue
    pid=$(<"$file")
    if [[ $pid =~ ^[0-9]+$ ]] && alive "$pid"; then
      kill -TERM "$pid" 2>/dev/null || true
      pids+=("$pid")
    fi
  done
  for _ in $(seq 100); do
    local left=0
    for pid in "${pids[@]}"; do alive "$pid" && left=1; done
    ((left)) || break
    sleep 0.1
  done
  for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
  rm -f "$@"
}

stop() {
  # Steps first: slurmstepd processes are children of nobody we track once slurmd is gone.
  if [[ -f $dir/run/slurmctld.pid ]] && alive "$(<"$dir/run/slurmctld.pid")"; then
    SLURM_CONF=$conf timeout 10 scancel --full --quiet --user=root 2>/dev/null || true
  fi
  local slurmds=()
  for node in "${nodes[@]}"; do slurmds+=("$dir/run/slurmd.$node.pid"); done
  kill_pidfiles "${slurmds[@]}"
  # slurmstepd of steps that were running (a node killed mid-step) and their tasks.
  for node in "${nodes[@]}"; do
    if ip netns pids "tune-$node" >/dev/null 2>&1; then
      for pid in $(ip netns pids "tune-$node"); do kill -KILL "$pid" 2>/dev/null || true; done
    fi
  done
  kill_pidfiles "$dir/run/slurmctld.pid" "$dir/run/slurmdbd.pid"
  kill_pidfiles "$dir/run/mariadb.pid" "$dir/run/munged.pid"
  rm -rf "$dir/db"
  # task/cgroup's memory cgroups, empty once the steps are gone (deepest first).
  for node in "${nodes[@]}"; do
    if [[ -d /sys/fs/cgroup/memory/slurm_$node ]]; then
      find "/sys/fs/cgroup/memory/slurm_$node" -depth -type d -exec rmdir {} + 2>/dev/null || true
    fi
  done
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

# Accounting: mariadbd on a database made afresh in $dir/db (127.0.0.1:$db_port, user slurm),
# slurmdbd on it (its slurmdbd.conf beside slurm.conf, where Slurm looks for it: SLURM_CONF's
# folder), and the cluster, an account and root registered with sacctmgr.
start_accounting() {
  local db_opts=(--no-defaults --user=root --datadir="$dir/db" --innodb-log-file-size=8M
                 --innodb-data-file-path=ibdata1:4M:autoextend --innodb-buffer-pool-size=32M)
  rm -rf "$dir/db"
  mkdir -p "$dir/db"
  mariadb-install-db "${db_opts[@]}" --auth-root-authentication-method=normal --skip-test-db \
    >"$dir/log/mariadb-install.log" 2>&1
  cat >"$dir/db-init.sql" <<EOF
CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY 'tune';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';
EOF
  mariadbd "${db_opts[@]}" --bind-address=127.0.0.1 --port=$db_port --skip-name-resolve \
    --socket="$dir/run/mariadb.sock" --pid-file="$dir/run/mariadb.pid" \
    --log-error="$dir/log/mariadb.log" --init-file="$dir/db-init.sql" </dev/null >/dev/null 2>&1 &
  disown
  for _ in $(seq 150); do [[ -S $dir/run/mariadb.sock ]] && break; sleep 0.1; done
  [[ -S $dir/run/mariadb.sock ]] || { log "mariadbd did not start"; return 1; }

  cat >"$dir/slurmdbd.conf" <<EOF
# Generated by scripts/slurm_cluster.sh: the test cluster's accounting.
AuthType=auth/munge
AuthInfo=socket=$dir/munge/munge.socket
DbdHost=localhost
DbdAddr=$host_addr
DbdPort=$dbd_port
SlurmUser=root
LogFile=$dir/log/slurmdbd.log
PidFile=$dir/run/slurmdbd.pid
DebugLevel=info
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$db_port
StorageUser=slurm
StoragePass=tune
StorageLoc=slurm_acct_db
EOF
  chmod 600 "$dir/slurmdbd.conf"
  SLURM_CONF=$conf slurmdbd
  local added=0
  for _ in $(seq 100); do
    if SLURM_CONF=$conf timeout 5 sacctmgr -i add cluster tune-test >/dev/null 2>&1; then
      added=1
      break
    fi
    sleep 0.1
  done
  ((added)) || { log "slurmdbd did not answer sacctmgr"; return 1; }
  SLURM_CONF=$conf sacctmgr -i add account tune cluster=tune-test >/dev/null
  SLURM_CONF=$conf sacctmgr -i add user root account=tune cluster=tune-test >/dev/null
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
  no_accounting() { ((accounting)) && { ! command -v slurmdbd || ! command -v mariadbd; } >/dev/null; }
  if no_accounting; then
    bash scripts/setup.sh --slurm >&2 || true
  fi
  if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null ||
     ! command -v munged >/dev/null || ! command -v srun >/dev/null; then
    skip "Slurm could not be installed (scripts/setup.sh --slurm)"
  fi
  if no_accounting; then
    skip "slurmdbd/MariaDB could not be installed (scripts/setup.sh --slurm)"
  fi
  if ! ip netns add tune-probe 2>/dev/null; then
    skip "cannot create network namespaces here (ip netns add)"
  fi
  ip netns del tune-probe
  stop  # whatever a killed run left
  trap 'rc=$?; if ((rc != 0)); then log "start failed; logs in $dir/log"; tail -n 20 "$dir"/log/*.log >&2 || true; stop; fi' EXIT
  rm -rf "$dir/state" "$dir/spool" "$dir/run" "$dir/dev"
  mkdir -p "$dir"/{state,spool,run,log,munge,munge-key,dev}
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

  # The nodes' GPU: a character device (null's numbers); a plain file where mknod is not allowed.
  # Only its name matters to Slurm without cgroups.
  mknod "$dir/dev/gpu0" c 1 3 2>/dev/null || touch "$dir/dev/gpu0"
  echo "Name=gpu File=$dir/dev/gpu0" >"$dir/gres.conf"

  # Memory limits: task/cgroup on cgroup v1's memory controller, where it can make cgroups.
  local task_plugin=task/none select=CR_CPU probe=/sys/fs/cgroup/memory/tune-slurm-probe.$$
  local memory
  memory=$(awk '/^MemTotal:/ {print int($2 / 1024)}' /proc/meminfo)
  if ((use_cgroup)) && [[ $(stat -f -c %T /sys/fs/cgroup/memory 2>/dev/null) == cgroupfs ]] &&
     mkdir "$probe" 2>/dev/null; then
    rmdir "$probe"
    task_plugin=task/cgroup
    # Slurm puts a limit in a step's credential only when memory is a consumable resource. Every
    # CPU comes with its share of the node's memory (DefMemPerCPU), so a job or step that asks
    # none is placed as by CPUs alone, as with CR_CPU, and limited to its CPUs' share.
    select="CR_CPU_Memory
DefMemPerCPU=$((memory / cpus))"
    cat >"$dir/cgroup.conf" <<EOF
# Generated by scripts/slurm_cluster.sh: memory limits only.
CgroupPlugin=cgroup/v1
CgroupMountpoint=/sys/fs/cgroup
CgroupAutomount=no
ConstrainRAMSpace=yes
AllowedRAMSpace=100
ConstrainSwapSpace=no
ConstrainCores=no
ConstrainDevices=no
EOF
  else
    rm -f "$dir/cgroup.conf"
    log "no writable cgroup v1 memory hierarchy: task/none, memory limits not enforced"
  fi

  # slurmdbd is asked with munge credentials from the cluster's munged (AccountingStoragePass).
  local storage="AccountingStorageType=accounting_storage/none"
  if ((accounting)); then
    storage="AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=$host_addr
AccountingStoragePort=$dbd_port
AccountingStoragePass=$dir/munge/munge.socket"
  fi

  cat >"$conf" <<EOF
# Generated by scripts/slurm_cluster.sh: a two-node test cluster, cgroups for memory at most.
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
TaskPlugin=$task_plugin
JobAcctGatherType=jobacct_gather/none
$storage
JobCompType=jobcomp/none
GresTypes=gpu
PreemptType=preempt/partition_prio
PreemptMode=CANCEL
MpiDefault=none
SwitchType=switch/none
SelectType=select/cons_tres
SelectTypeParameters=$select
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
NodeName=DEFAULT CPUs=$cpus RealMemory=$memory Gres=gpu:1 State=UNKNOWN
NodeName=n1 NodeAddr=${addr[n1]} NodeHostname=n1
NodeName=n2 NodeAddr=${addr[n2]} NodeHostname=n2
PartitionName=debug Nodes=n1,n2 Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO PriorityTier=1
PartitionName=preempt Nodes=n1,n2 MaxTime=INFINITE State=UP OverSubscribe=NO PriorityTier=2 PreemptMode=OFF
EOF

  ((accounting)) && start_accounting
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
