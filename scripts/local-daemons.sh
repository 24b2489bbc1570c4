# shellcheck shell=bash
# Sourced by scripts/slurm-local and scripts/ssh-local, the private daemons of the launcher tests:
# what both ask of processes and ports.

# True when process $1 runs (a zombie, which nobody reaped yet, does not: a container's PID 1
# may reap late).
alive() {
  [[ -n $1 ]] && kill -0 "$1" 2>/dev/null || return 1
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  stat=${stat##*) }
  [[ ${stat%% *} != Z ]]
}

# True when some socket on this machine uses TCP port $1 (from /proc: no ss or netstat needed).
port_used() {
  local hex
  hex=$(printf '%04X' "$1")
  grep -q ":$hex " /proc/net/tcp /proc/net/tcp6 2>/dev/null
}
