#!/usr/bin/env bash
# A real single-node SLURM cluster on this machine, for tests and local runs.
#
#   slurm/cluster.sh start    install (when missing), configure, start every daemon, wait until ready
#   slurm/cluster.sh stop     stop every daemon this script starts
#   slurm/cluster.sh status   one line per daemon, then sinfo
#
# Made for a container: Debian 12, root, no systemd. Daemons are started directly and tracked by
# their pid files. The node is named after `hostname -s` and declares the CPUs and memory that
# `slurmd -C` measures. Accounting goes through slurmdbd to a local MariaDB database, so sacct
# answers. `start` is idempotent: daemons already running are left alone, unless the generated
# configuration changed, in which case the SLURM daemons are restarted to pick it up.
#
# Environment (all optional):
#   BENCH_SLURM_CLUSTER   cluster name registered in accounting   (default: bench)
#   BENCH_SLURM_TIMEOUT_S how long `start` waits for readiness      (default: 120)
set -Eeuo pipefail

CLUSTER_NAME="${BENCH_SLURM_CLUSTER:-bench}"
READY_TIMEOUT_S="${BENCH_SLURM_TIMEOUT_S:-120}"
NODE="$(hostname -s)"

CONF_DIR=/etc/slurm
RUN_DIR=/run/slurm
LOG_DIR=/var/log/slurm
CTLD_STATE=/var/lib/slurm/slurmctld
SLURMD_SPOOL=/var/lib/slurm/slurmd
DB_NAME=slurm_acct_db
DB_USER=slurm
# The database only listens on the local socket and loopback; the password guards nothing else.
DB_PASS=bench-local-slurmdbd

MUNGE_PID=/run/munge/munged.pid
MYSQL_PID=/run/mysqld/mysqld.pid
MYSQL_SOCK=/run/mysqld/mysqld.sock
DBD_PID="$RUN_DIR/slurmdbd.pid"
CTLD_PID="$RUN_DIR/slurmctld.pid"
SLURMD_PID="$RUN_DIR/slurmd.pid"

PACKAGES=(slurmctld slurmd slurm-client munge slurmdbd mariadb-server)

log() { printf '[cluster] %s\n' "$*" >&2; }
die() { printf '[cluster] error: %s\n' "$*" >&2; exit 1; }
trap 'die "line $LINENO: \"$BASH_COMMAND\" failed (logs: $LOG_DIR)"' ERR

require_root() {
    [[ "$(id -u)" == 0 ]] || die "must run as root (daemons, /etc/slurm and apt-get need it)"
}

# True when the pid file names a live process.
pid_alive() {
    local pidfile="$1" pid
    [[ -s "$pidfile" ]] || return 1
    pid="$(tr -dc '0-9' <"$pidfile")"
    [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null
}

# Poll a command until it succeeds or `seconds` pass.
wait_for() {
    local seconds="$1" what="$2"; shift 2
    local deadline=$((SECONDS + seconds))
    until "$@" >/dev/null 2>&1; do
        if ((SECONDS >= deadline)); then
            die "timed out after ${seconds}s waiting for $what (logs: $LOG_DIR, /var/log/munge, /var/log/mysql)"
        fi
        sleep 0.5
    done
}

install_packages() {
    local missing=()
    for bin in slurmctld slurmd sbatch munged slurmdbd mariadbd; do
        command -v "$bin" >/dev/null 2>&1 || [[ -x "/usr/sbin/$bin" ]] || missing+=("$bin")
    done
    ((${#missing[@]} == 0)) && return 0
    log "installing ${PACKAGES[*]} (missing: ${missing[*]})"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${PACKAGES[@]}" >/dev/null
}

# Write `content` (stdin) to `path` only when it differs; returns 0 when the file changed.
write_if_changed() {
    local path="$1" mode="$2" owner="$3" tmp
    tmp="$(mktemp)"
    cat >"$tmp"
    if [[ -f "$path" ]] && cmp -s "$tmp" "$path"; then
        rm -f "$tmp"
        chmod "$mode" "$path"; chown "$owner" "$path"
        return 1
    fi
    install -m "$mode" -o "${owner%%:*}" -g "${owner##*:}" "$tmp" "$path"
    rm -f "$tmp"
    return 0
}

write_configs() {
    local cpus mem_mb changed=1
    # `slurmd -C` prints the hardware as slurm sees it: "NodeName=vm CPUs=2 ... RealMemory=24105".
    local hw
    hw="$(slurmd -C | head -n1)"
    cpus="$(sed -n 's/.* CPUs=\([0-9]*\).*/\1/p' <<<"$hw")"
    mem_mb="$(sed -n 's/.* RealMemory=\([0-9]*\).*/\1/p' <<<"$hw")"
    [[ -n "$cpus" && -n "$mem_mb" ]] || die "could not read CPUs/RealMemory from 'slurmd -C': $hw"

    mkdir -p "$CONF_DIR" "$RUN_DIR" "$LOG_DIR" "$CTLD_STATE" "$SLURMD_SPOOL"
    chown slurm:slurm "$RUN_DIR" "$LOG_DIR" "$CTLD_STATE"

    if write_if_changed "$CONF_DIR/slurm.conf" 0644 root:root <<EOF
# Written by slurm/cluster.sh: a single-node test cluster. Edits are overwritten on start.
ClusterName=$CLUSTER_NAME
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=slurm
SlurmdUser=root
AuthType=auth/munge
# A requeued job waits cred_expire seconds before it may start again (default 120 s); the test
# cluster requeues in seconds. It is also the step credential lifetime: ample on one node.
AuthInfo=cred_expire=10
CredType=cred/munge
MpiDefault=none
# No cgroups in a container: track processes through /proc and bind nothing.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
ReturnToService=2
SlurmctldPidFile=$CTLD_PID
SlurmdPidFile=$SLURMD_PID
SlurmctldLogFile=$LOG_DIR/slurmctld.log
SlurmdLogFile=$LOG_DIR/slurmd.log
StateSaveLocation=$CTLD_STATE
SlurmdSpoolDir=$SLURMD_SPOOL
SwitchType=switch/none
# Short timers: a test cluster should react in seconds.
SlurmctldTimeout=30
SlurmdTimeout=60
InactiveLimit=0
KillWait=10
MinJobAge=300
MessageTimeout=10
BatchStartTimeout=10
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=5,bf_interval=5
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# Without a default, a job that names no memory would take the whole node.
DefMemPerCPU=1024
MaxArraySize=1001
MaxJobCount=20000
# Jobs may be requeued (submitit requeues itself on timeout/preemption). A job in partition
# "urgent" (higher PriorityTier) preempts "debug" jobs: they get the user signal (USR2 from
# submitit's --signal) at once and GraceTime seconds to checkpoint, then are requeued.
JobRequeue=1
PreemptType=preempt/partition_prio
PreemptMode=REQUEUE
SlurmctldParameters=preempt_send_user_signal
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=30
JobCompType=jobcomp/none
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=debug Nodes=$NODE Default=YES MaxTime=INFINITE State=UP PriorityTier=1 GraceTime=30
PartitionName=urgent Nodes=$NODE MaxTime=INFINITE State=UP PriorityTier=2
EOF
    then changed=0; fi

    if write_if_changed "$CONF_DIR/slurmdbd.conf" 0600 slurm:slurm <<EOF
# Written by slurm/cluster.sh. Edits are overwritten on start.
AuthType=auth/munge
DbdHost=localhost
DbdAddr=127.0.0.1
SlurmUser=slurm
PidFile=$DBD_PID
LogFile=$LOG_DIR/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageLoc=$DB_NAME
StorageUser=$DB_USER
StoragePass=$DB_PASS
EOF
    then changed=0; fi

    return "$changed"
}

start_munge() {
    if pid_alive "$MUNGE_PID"; then return 0; fi
    mkdir -p /run/munge /var/log/munge /var/lib/munge /etc/munge
    chown munge:munge /run/munge /var/log/munge /var/lib/munge /etc/munge
    chmod 0755 /run/munge
    chmod 0700 /etc/munge
    if [[ ! -s /etc/munge/munge.key ]]; then
        log "creating munge key"
        dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none
    fi
    chown munge:munge /etc/munge/munge.key
    chmod 0400 /etc/munge/munge.key
    runuser -u munge -- /usr/sbin/munged --pid-file="$MUNGE_PID"
    wait_for 20 munged bash -c 'munge -n | unmunge'
}

start_mariadb() {
    if ! pid_alive "$MYSQL_PID"; then
        mkdir -p /run/mysqld
        chown mysql:root /run/mysqld
        if [[ ! -d /var/lib/mysql/mysql ]]; then
            log "initialising the MariaDB data directory"
            mariadb-install-db --user=mysql --datadir=/var/lib/mysql >/dev/null
        fi
        # Detached from this shell so that it outlives `start`.
        setsid nohup /usr/sbin/mariadbd --user=mysql --pid-file="$MYSQL_PID" --socket="$MYSQL_SOCK" \
            --bind-address=127.0.0.1 --innodb-lock-wait-timeout=900 \
            >>/var/log/mysql-bench.log 2>&1 </dev/null &
        wait_for 60 mariadb mysqladmin --socket="$MYSQL_SOCK" ping
    fi
    mysql --socket="$MYSQL_SOCK" -u root <<EOF
CREATE DATABASE IF NOT EXISTS $DB_NAME;
CREATE USER IF NOT EXISTS '$DB_USER'@'localhost' IDENTIFIED BY '$DB_PASS';
ALTER USER '$DB_USER'@'localhost' IDENTIFIED BY '$DB_PASS';
GRANT ALL ON $DB_NAME.* TO '$DB_USER'@'localhost';
FLUSH PRIVILEGES;
EOF
}

start_slurmdbd() {
    if pid_alive "$DBD_PID"; then return 0; fi
    /usr/sbin/slurmdbd
    wait_for 60 slurmdbd sacctmgr -n list cluster
}

register_cluster() {
    if [[ -z "$(sacctmgr -n -P list cluster "$CLUSTER_NAME" format=Cluster)" ]]; then
        log "registering cluster $CLUSTER_NAME in accounting"
        sacctmgr -i add cluster "$CLUSTER_NAME" >/dev/null
    fi
}

start_slurmctld() {
    if pid_alive "$CTLD_PID"; then return 0; fi
    /usr/sbin/slurmctld
    wait_for 60 slurmctld scontrol ping
}

start_slurmd() {
    if pid_alive "$SLURMD_PID"; then return 0; fi
    /usr/sbin/slurmd
}

node_state() { sinfo -h -n "$NODE" -o %T 2>/dev/null | head -n1; }

wait_node_idle() {
    local deadline=$((SECONDS + READY_TIMEOUT_S)) state
    while :; do
        state="$(node_state)"
        case "$state" in
            idle | mixed | allocated | completing) return 0 ;;
            *drain* | *down* | *fail*)
                # A restarted node may come back flagged; this cluster has one node, so resume it.
                scontrol update nodename="$NODE" state=resume >/dev/null 2>&1 || true ;;
        esac
        ((SECONDS < deadline)) || die "node $NODE not idle after ${READY_TIMEOUT_S}s (state: ${state:-none}); see $LOG_DIR"
        sleep 0.5
    done
}

# Stop a daemon through its pid file: TERM, wait up to 20 s, then KILL.
stop_pidfile() {
    local name="$1" pidfile="$2" pid
    pid_alive "$pidfile" || { rm -f "$pidfile"; return 0; }
    pid="$(tr -dc '0-9' <"$pidfile")"
    log "stopping $name (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 40); do
        kill -0 "$pid" 2>/dev/null || { rm -f "$pidfile"; return 0; }
        sleep 0.5
    done
    kill -KILL "$pid" 2>/dev/null || true
    rm -f "$pidfile"
}

stop_slurm_daemons() {
    stop_pidfile slurmd "$SLURMD_PID"
    stop_pidfile slurmctld "$CTLD_PID"
    stop_pidfile slurmdbd "$DBD_PID"
}

cmd_start() {
    require_root
    local started_ns
    started_ns="$(date +%s%N)"
    install_packages
    if write_configs && { pid_alive "$CTLD_PID" || pid_alive "$SLURMD_PID" || pid_alive "$DBD_PID"; }; then
        log "configuration changed: restarting the SLURM daemons"
        stop_slurm_daemons
    fi
    start_munge
    start_mariadb
    start_slurmdbd
    register_cluster
    start_slurmctld
    start_slurmd
    wait_node_idle
    wait_for "$READY_TIMEOUT_S" sacct sacct -n -X -S now
    local elapsed_ms=$((($(date +%s%N) - started_ns) / 1000000))
    printf 'cluster %s up: node %s %s; start took %d.%03d s\n' "$CLUSTER_NAME" "$NODE" \
        "$(node_state)" $((elapsed_ms / 1000)) $((elapsed_ms % 1000))
}

cmd_stop() {
    require_root
    stop_slurm_daemons
    stop_pidfile mariadb "$MYSQL_PID"
    stop_pidfile munged "$MUNGE_PID"
    log "stopped"
}

cmd_status() {
    local rc=0 name pidfile
    for pair in "munged:$MUNGE_PID" "mariadb:$MYSQL_PID" "slurmdbd:$DBD_PID" \
        "slurmctld:$CTLD_PID" "slurmd:$SLURMD_PID"; do
        name="${pair%%:*}"; pidfile="${pair#*:}"
        if pid_alive "$pidfile"; then
            printf '%-10s running (pid %s)\n' "$name" "$(tr -dc '0-9' <"$pidfile")"
        else
            printf '%-10s stopped\n' "$name"; rc=1
        fi
    done
    if ((rc == 0)); then sinfo; fi
    return "$rc"
}

case "${1:-}" in
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status || exit 1 ;;
    *) die "usage: $0 start|stop|status" ;;
esac
