#!/usr/bin/env bash
# A real single-node Slurm cluster on this machine, for trying `coordinator slurm` and for its
# end-to-end test: Debian's slurmctld, slurmd and munge, started by hand (no systemd needed).
#
#   scripts/slurm-local.sh install   install the Debian packages (root, apt)
#   scripts/slurm-local.sh start     configure and start munged, slurmctld and slurmd; wait until
#                                    the node is idle (installs first when the packages are missing)
#   scripts/slurm-local.sh stop      cancel every job, wait for the queue to empty, stop the daemons
#   scripts/slurm-local.sh status    exit 0 when the cluster answers and has an idle or busy node
#   scripts/slurm-local.sh env       print the SLURM_CONF line that points commands at it
#
# Everything it writes is under one private folder, $SLURM_LOCAL_DIR (default
# /var/tmp/trialcat-slurm): its slurm.conf (etc/), the daemons' spool, state, logs and pid files,
# and a munged of its own with its own key and socket. It never reads or writes /etc/slurm or the
# system's munge, and its daemons listen on their own ports (6917, 6918), so it can run beside a
# real Slurm installation. Commands that use it need SLURM_CONF=$SLURM_LOCAL_DIR/etc/slurm.conf
# (`scripts/slurm-local.sh env` prints the line to export). Exit codes: 0 done, 1 failed, 2 usage
# or not possible here (not root, no apt).
set -euo pipefail

MARKER="# written by trialcat scripts/slurm-local.sh"
DIR=${SLURM_LOCAL_DIR:-/var/tmp/trialcat-slurm}
CONF=$DIR/etc/slurm.conf
MUNGE=$DIR/munge
export SLURM_CONF=$CONF
NODE=$(hostname -s)

say() { echo "slurm-local: $*" >&2; }
die() { say "$*"; exit 1; }

need_root() {
  [ "$(id -u)" = 0 ] || { say "must run as root (it installs packages and starts daemons)"; exit 2; }
}

installed() { command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v sbatch >/dev/null && command -v munged >/dev/null; }

install() {
  need_root
  installed && return 0
  command -v apt-get >/dev/null || { say "slurm is not installed and there is no apt-get to install it"; exit 2; }
  say "installing slurmctld slurmd slurm-client munge"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  apt-get install -y -q --no-install-recommends slurmctld slurmd slurm-client munge >/dev/null
}

# pid_of FILE NAME prints the pid in FILE when that process is alive and is NAME.
pid_of() {
  local pid
  [ -r "$1" ] || return 1
  pid=$(tr -dc 0-9 <"$1")
  [ -n "$pid" ] && [ -r "/proc/$pid/comm" ] && [ "$(cat "/proc/$pid/comm")" = "$2" ] && echo "$pid"
}

up() { scontrol ping 2>/dev/null | grep -q 'is UP' && sinfo -h -o '%T' 2>/dev/null | grep -Eq '^(idle|mixed|allocated)'; }

configure() {
  if [ -e "$CONF" ] && ! head -1 "$CONF" | grep -qF "$MARKER"; then
    die "$CONF was not written by this script; choose another SLURM_LOCAL_DIR"
  fi
  # The node's real topology; RealMemory 1% under the measured one, or the node drains.
  local hw cpus boards sockets cores threads mem
  hw=$(slurmd -C | head -1)
  field() { sed -n "s/.*\b$1=\([0-9]*\).*/\1/p" <<<"$hw"; }
  cpus=$(field CPUs); boards=$(field Boards); sockets=$(field SocketsPerBoard)
  cores=$(field CoresPerSocket); threads=$(field ThreadsPerCore); mem=$(field RealMemory)
  mem=$((mem * 99 / 100))
  mkdir -p "$DIR/etc" "$DIR/spool/slurmctld" "$DIR/spool/slurmd" "$DIR/log" "$DIR/run"
  chmod 755 "$DIR" "$DIR/etc" "$DIR/spool" "$DIR/run"
  chown slurm:slurm "$DIR/spool/slurmctld" "$DIR/log"
  cat >"$CONF.tmp" <<EOF
$MARKER
ClusterName=trialcat-local
SlurmctldHost=$NODE(127.0.0.1)
SlurmctldPort=6917
SlurmdPort=6918
SlurmUser=slurm
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$MUNGE/munge.socket
StateSaveLocation=$DIR/spool/slurmctld
SlurmdSpoolDir=$DIR/spool/slurmd
SlurmctldPidFile=$DIR/run/slurmctld.pid
SlurmdPidFile=$DIR/run/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
MailProg=/bin/true
ReturnToService=2
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0,sched_min_interval=0
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
JobCompType=jobcomp/none
AccountingStorageType=accounting_storage/none
MaxArraySize=10001
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$cpus Boards=$boards SocketsPerBoard=$sockets CoresPerSocket=$cores ThreadsPerCore=$threads RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF
  mv "$CONF.tmp" "$CONF"
}

start() {
  need_root
  installed || install
  if up; then say "already up"; return 0; fi
  configure
  # A munged of its own: its key, socket, pid, log and seed in $MUNGE.
  # munged wants its socket's folder searchable by all, and its key readable by it alone.
  mkdir -p "$MUNGE" && chown munge:munge "$MUNGE" && chmod 755 "$MUNGE"
  if [ ! -e "$MUNGE/munge.key" ]; then
    mungekey --create --keyfile="$MUNGE/munge.key"
    chown munge:munge "$MUNGE/munge.key"
  fi
  chmod 400 "$MUNGE/munge.key"
  pid_of "$MUNGE/munged.pid" munged >/dev/null || runuser -u munge -- /usr/sbin/munged \
    --socket="$MUNGE/munge.socket" --key-file="$MUNGE/munge.key" --pid-file="$MUNGE/munged.pid" \
    --log-file="$MUNGE/munged.log" --seed-file="$MUNGE/munged.seed"
  # The daemons exit 0 and may die a moment later: the cluster is up when it answers.
  pid_of "$DIR/run/slurmctld.pid" slurmctld >/dev/null || slurmctld -c -f "$CONF"
  pid_of "$DIR/run/slurmd.pid" slurmd >/dev/null || slurmd -N "$NODE" -f "$CONF"
  for _ in $(seq 1 150); do
    if up; then say "up: node $NODE idle"; return 0; fi
    sleep 0.2
  done
  tail -5 "$DIR/log/slurmctld.log" "$DIR/log/slurmd.log" "$MUNGE/munged.log" >&2 || true
  die "the cluster did not come up within 30 s (logs above)"
}

stop() {
  need_root
  if command -v scancel >/dev/null && scontrol ping 2>/dev/null | grep -q 'is UP'; then
    scancel --full --quiet $(squeue -h -o %A 2>/dev/null | sort -u) 2>/dev/null || true
    for _ in $(seq 1 150); do
      [ -z "$(squeue -h 2>/dev/null)" ] && break
      sleep 0.2
    done
  fi
  local pids=() p
  for spec in "$DIR/run/slurmd.pid:slurmd" "$DIR/run/slurmctld.pid:slurmctld" "$MUNGE/munged.pid:munged"; do
    p=$(pid_of "${spec%%:*}" "${spec##*:}") && pids+=("$p")
  done
  [ ${#pids[@]} -eq 0 ] && { say "nothing running"; return 0; }
  kill -TERM "${pids[@]}" 2>/dev/null || true
  for _ in $(seq 1 150); do
    local alive=0
    for p in "${pids[@]}"; do [ -d "/proc/$p" ] && alive=1; done
    [ $alive = 0 ] && { say "stopped"; return 0; }
    sleep 0.2
  done
  kill -KILL "${pids[@]}" 2>/dev/null || true
  say "stopped (killed after 30 s)"
}

case "${1:-}" in
  install) install ;;
  start) start ;;
  stop) stop ;;
  status) up ;;
  env) echo "export SLURM_CONF=$CONF" ;;
  *) echo "usage: $0 install|start|stop|status|env" >&2; exit 2 ;;
esac
