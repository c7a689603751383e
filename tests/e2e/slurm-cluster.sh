#!/bin/bash
# tests/e2e/slurm-cluster.sh - a private single-node Slurm for the tests.
#
#   slurm-cluster.sh start DIR   write DIR/slurm.conf, start munged, slurmctld
#                                and slurmd, wait until the node is idle
#   slurm-cluster.sh stop DIR    cancel this cluster's jobs, stop the daemons
#                                it started (by the pids in DIR/*.pid)
#   slurm-cluster.sh check       exit 0 if a cluster can be started here
#                                (root or passwordless sudo; installs
#                                slurm-wlm and munge with apt-get if missing),
#                                else print why on stdout and exit 1
#
# Then use the cluster with: export SLURM_CONF=DIR/slurm.conf
#
# Nothing is shared with a Slurm or MUNGE already running on the machine:
# own slurm.conf (clients find it through SLURM_CONF), own munged on its own
# socket and key, own ports, state, spool, pid and log files, all under DIR.
# The daemons run as root (SlurmUser=root) through sudo when not root. Recipe
# and facts: /work/shared/NOTES.md "Slurm 22.05 on one machine".
#
# Environment: SLURM_CRED_EXPIRE (default 5): AuthInfo cred_expire, which is
# also how long a requeued job waits before it may start again (Slurm's
# default, 120 s, would make the requeue test slow). The schedulers run every
# 1-2 s (SchedulerParameters) so that a requeued job starts once eligible.
set -euo pipefail

SUDO=()
if [ "$(id -u)" != 0 ]; then SUDO=(sudo -n); fi

die() {
    echo "slurm-cluster.sh: $*" >&2
    exit 1
}

# can_run: root or passwordless sudo, and the packages (installed if missing).
can_run() {
    if [ "$(id -u)" != 0 ] && ! sudo -n true 2>/dev/null; then
        echo "not root and no passwordless sudo: cannot start slurmctld/slurmd/munged"
        return 1
    fi
    local missing=() p
    for p in slurm-wlm munge; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    if [ "${#missing[@]}" -gt 0 ]; then
        if ! command -v apt-get >/dev/null; then
            echo "packages ${missing[*]} missing and no apt-get to install them"
            return 1
        fi
        echo "slurm-cluster.sh: installing ${missing[*]}" >&2
        # The package scripts try to start the system's daemons; Debian's
        # policy-rc.d (in containers) or systemd decides, this cluster does
        # not use them either way.
        if ! { "${SUDO[@]}" apt-get update -q &&
            "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
                --no-install-recommends "${missing[@]}"; } >&2; then
            echo "apt-get install ${missing[*]} failed"
            return 1
        fi
    fi
    local c
    for c in munged slurmctld slurmd sbatch; do
        command -v "$c" >/dev/null || PATH=$PATH:/usr/sbin:/sbin
        command -v "$c" >/dev/null || {
            echo "$c not found after installing slurm-wlm and munge"
            return 1
        }
    done
}

# free_port: a TCP port no socket uses, below the kernel's ephemeral range
# (MPI jobs running next to this test bind ephemeral ports at any moment: a
# port checked free there can be taken before slurmd binds it).
free_port() {
    local p _ lo
    lo=$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
    [ "$lo" -gt 12000 ] 2>/dev/null || lo=32768
    for _ in $(seq 50); do
        p=$((10000 + RANDOM % (lo - 10000)))
        if [ -z "$(ss -Htan "sport = :$p" 2>/dev/null)" ] && ! grep -qx "$p" "$USED_PORTS" 2>/dev/null; then
            echo "$p" >>"$USED_PORTS"
            echo "$p"
            return
        fi
    done
    die "no free TCP port found"
}

start() {
    local dir=$1 host conf node
    why=$(can_run) || die "$why"
    PATH=$PATH:/usr/sbin:/sbin
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    [ ! -e "$dir/slurm.conf" ] || die "$dir already holds a cluster (stop it first)"
    mkdir -p "$dir/munge" "$dir/state" "$dir/spool" "$dir/log"
    # munged refuses a socket directory others can write to; clients (the
    # job's user) must be able to reach the socket.
    chmod 755 "$dir" "$dir/munge" "$dir/spool" "$dir/log"
    USED_PORTS=$dir/ports
    : >"$USED_PORTS"
    host=$(hostname -s)
    # The node as slurmd sees it (CPUs, sockets, cores); RealMemory left out
    # (default 1 MB) so the node never drains for "low memory".
    node=$(slurmd -C | sed -n 's/^\(NodeName=.*\) RealMemory=[0-9]*.*/\1/p')
    [ -n "$node" ] || die "slurmd -C gave no node line"
    # MUNGE: own key, socket, pid, log and seed files.
    dd if=/dev/urandom of="$dir/munge/munge.key" bs=1024 count=1 status=none
    chmod 400 "$dir/munge/munge.key"
    conf=$dir/slurm.conf
    cat >"$conf" <<EOF
# Private single-node cluster for the mpimap tests (tests/e2e/slurm-cluster.sh).
ClusterName=mpimaptest
SlurmctldHost=$host
SlurmctldPort=$(free_port)
SlurmdPort=$(free_port)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$dir/munge/munge.socket,cred_expire=${SLURM_CRED_EXPIRE:-5}
ProctrackType=proctrack/linuxproc
TaskPlugin=task/affinity
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
# Start a requeued job as soon as it is eligible, not at the next 30 s pass.
SchedulerParameters=bf_interval=1,sched_interval=2
MpiDefault=none
ReturnToService=2
JobCompType=jobcomp/none
AccountingStorageType=accounting_storage/none
MailProg=/bin/true
PlugStackConfig=$dir/plugstack.conf
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
$node State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
    : >"$dir/plugstack.conf"
    if [ "${#SUDO[@]}" -gt 0 ]; then
        "${SUDO[@]}" chown -R root:root "$dir/munge" "$dir/state" "$dir/spool"
    fi
    "${SUDO[@]}" munged --force --socket="$dir/munge/munge.socket" \
        --key-file="$dir/munge/munge.key" --pid-file="$dir/munge/munged.pid" \
        --log-file="$dir/log/munged.log" --seed-file="$dir/munge/munged.seed" ||
        die "munged did not start: $(tail -n 5 "$dir/log/munged.log" 2>&1)"
    "${SUDO[@]}" cp "$dir/munge/munged.pid" "$dir/munged.pid"
    # -i: ignore any state (there is none: a fresh StateSaveLocation).
    "${SUDO[@]}" env SLURM_CONF="$conf" slurmctld -i -f "$conf" ||
        die "slurmctld did not start: $(tail -n 5 "$dir/log/slurmctld.log" 2>&1)"
    "${SUDO[@]}" env SLURM_CONF="$conf" slurmd -f "$conf" ||
        die "slurmd did not start: $(tail -n 5 "$dir/log/slurmd.log" 2>&1)"
    local st="" _
    for _ in $(seq 60); do
        st=$(SLURM_CONF=$conf sinfo -h -o %t 2>/dev/null | head -n 1 || true)
        case "$st" in idle | mix | alloc) break ;; esac
        sleep 0.5
    done
    case "$st" in
    idle | mix | alloc) ;;
    *) die "node not idle after 30 s (state '$st'); logs in $dir/log:
$(tail -n 5 "$dir/log/slurmctld.log" "$dir/log/slurmd.log" 2>&1)" ;;
    esac
}

# stop DIR: cancel this cluster's jobs (so no slurmstepd outlives slurmd),
# then end each daemon by the pid it wrote, SIGTERM then SIGKILL.
stop() {
    local dir=$1 f pid _
    [ -e "$dir/slurm.conf" ] || return 0
    PATH=$PATH:/usr/sbin:/sbin
    if [ -e "$dir/slurmctld.pid" ]; then
        local ids=()
        mapfile -t ids < <(SLURM_CONF=$dir/slurm.conf squeue -h -o %i 2>/dev/null || true)
        if [ "${#ids[@]}" -gt 0 ]; then
            SLURM_CONF=$dir/slurm.conf scancel --quiet "${ids[@]}" 2>/dev/null || true
        fi
        for _ in $(seq 20); do
            [ -z "$(SLURM_CONF=$dir/slurm.conf squeue -h -t R,CG -o %i 2>/dev/null)" ] && break
            sleep 0.5
        done
    fi
    for f in slurmd slurmctld munged; do
        [ -s "$dir/$f.pid" ] || continue
        pid=$(cat "$dir/$f.pid")
        # Only a pid that still runs the daemon we started.
        if [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q "$f"; then
            "${SUDO[@]}" kill -TERM "$pid" 2>/dev/null || true
            for _ in $(seq 50); do
                kill -0 "$pid" 2>/dev/null || break
                sleep 0.1
            done
            "${SUDO[@]}" kill -KILL "$pid" 2>/dev/null || true
        fi
        rm -f "$dir/$f.pid"
    done
    # Through sudo the daemons' files belong to root: give them back, so the
    # caller can remove the directory.
    if [ "${#SUDO[@]}" -gt 0 ]; then
        "${SUDO[@]}" chown -R "$(id -u):$(id -g)" "$dir" 2>/dev/null || true
    fi
}

case "${1:-}" in
start)
    [ "$#" = 2 ] || die "usage: $0 start DIR"
    start "$2"
    ;;
stop)
    [ "$#" = 2 ] || die "usage: $0 stop DIR"
    stop "$2"
    ;;
check) can_run ;;
*) die "usage: $0 start DIR | stop DIR | check" ;;
esac
