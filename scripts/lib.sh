# shellcheck shell=bash
#
# scripts/lib.sh — small helpers shared by the scripts in this folder.
#
# Sourced, never run. Gives: messages with a common prefix, "is this command
# here?", "does something answer on host:port?", bounded waiting, and
# installing Debian packages when we are root (or saying exactly what to run
# when we are not). Kept free of anything project-specific so each script
# reads top to bottom on its own.

# Every message names the script it came from ("stack: ...").
LOG_PREFIX="${LOG_PREFIX:-$(basename "${BASH_SOURCE[1]:-$0}" .sh)}"

log()  { printf '%s: %s\n' "$LOG_PREFIX" "$*" >&2; }
warn() { printf '%s: warning: %s\n' "$LOG_PREFIX" "$*" >&2; }
die()  { printf '%s: error: %s\n' "$LOG_PREFIX" "$*" >&2; exit 1; }

# have CMD: CMD is on PATH and executable.
have() {
    local p
    p=$(command -v "$1" 2>/dev/null) || return 1
    [[ $p != /* ]] || [ -x "$p" ]     # builtins/functions have no path
}

is_root() { [ "$(id -u)" -eq 0 ]; }

# with_timeout SECONDS COMMAND...: COMMAND, killed after SECONDS where the
# coreutils `timeout` exists (elsewhere, unbounded).
with_timeout() {
    local secs=$1
    shift
    if have timeout; then timeout "$secs" "$@"; else "$@"; fi
}

# tcp_open HOST PORT: true when something accepts a TCP connection there.
# Uses bash's /dev/tcp so it needs no nc/curl; bounded to ~2 s.
tcp_open() {
    # shellcheck disable=SC2016 # $1/$2 expand in the inner bash
    with_timeout 2 bash -c 'exec 3<>"/dev/tcp/$1/$2"' _ "$1" "$2" 2>/dev/null
}

# process_args PID: the command line of a running process ("" when gone).
process_args() {
    if [ -r "/proc/$1/cmdline" ]; then
        tr '\0' ' ' <"/proc/$1/cmdline"
    else
        ps -o args= -p "$1" 2>/dev/null || true
    fi
}

# wait_until SECONDS COMMAND...: run COMMAND once a second until it succeeds;
# false when SECONDS have passed without success.
wait_until() {
    local deadline=$((SECONDS + $1))
    shift
    until "$@"; do
        [ "$SECONDS" -lt "$deadline" ] || return 1
        sleep 1
    done
}

# is_local_host HOST: true for addresses this machine can serve on loopback.
is_local_host() {
    case "$1" in
        127.* | localhost | ::1 | '[::1]') return 0 ;;
        *) return 1 ;;
    esac
}

# tail_log FILE: show the end of a log file, indented, to explain a failure.
tail_log() {
    [ -f "$1" ] || return 0
    log "last lines of $1:"
    tail -n 20 "$1" | sed 's/^/    /' >&2
}

# apt_install [--no-install-recommends] PACKAGE...: install Debian packages
# when we are root on a Debian-like system; otherwise print the exact command
# to run and exit 1. Refreshes the package lists once if the first attempt
# fails (a fresh machine or container often has none).
apt_install() {
    local opts=()
    if [ "${1:-}" = --no-install-recommends ]; then opts=("$1"); shift; fi
    if ! have apt-get; then
        die "missing: $*. Install them with your system's package manager (Debian/Ubuntu names: $*) and run this again."
    fi
    if ! is_root; then
        log "missing: $*. Install them first, then run this again:"
        log ""
        log "    sudo apt-get install -y $*"
        log ""
        exit 1
    fi
    log "installing Debian packages: $* (apt-get, as root)"
    local apt=(env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 -q)
    if ! "${apt[@]}" install -y ${opts[@]+"${opts[@]}"} "$@" </dev/null; then
        log "install failed; refreshing the package lists and trying once more"
        "${apt[@]}" update </dev/null || die "apt-get update failed"
        "${apt[@]}" install -y ${opts[@]+"${opts[@]}"} "$@" </dev/null || die "apt-get install -y $* failed"
    fi
}
