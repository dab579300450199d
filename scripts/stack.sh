#!/usr/bin/env bash
#
# scripts/stack.sh — make sure the services BookMySeat needs are running.
#
#   scripts/stack.sh [ensure] [--browser] [--smtp] [--fuzz]
#                                                   start what is missing (default)
#   scripts/stack.sh status                         say what answers and who started it
#   scripts/stack.sh stop                           stop only what this script started
#
# Why: `make up` and `make test` must work on a machine that already runs
# PostgreSQL and NATS (CI, this project's dev machines) and on a fresh
# Debian machine or a laptop that runs neither. So for each service we first
# look: if something answers on the configured address we use it and touch
# nothing. Only when nothing answers do we start a project-local instance
# whose data, logs, sockets and pid files live under .stack/ (git-ignored),
# installing the Debian package first when the program is missing and we are
# root. `stop` only ever stops those project-local instances.
#
# Where to look (same variables the services and tests read):
#   PGHOST, PGPORT   PostgreSQL address       (default 127.0.0.1, 5432)
#   NATS_URL         NATS address             (default nats://127.0.0.1:4222)
#   STACK_DIR        where local instances live (default <repo>/.stack)
#   STACK_BROWSER=1, STACK_SMTP=1, STACK_FUZZ=1   same as --browser, --smtp, --fuzz
#
# --browser makes sure Chromium and chromedriver are installed (browser tests).
# --smtp    makes sure Python's aiosmtpd is importable from .stack/venv
#           (tests run a real SMTP server with it).
# --fuzz    makes sure schemathesis is installed in .stack/venv (the e2e test
#           that fuzzes the JSON API against its OpenAPI document).

set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LOG_PREFIX=stack
# shellcheck source=scripts/lib.sh
source "$ROOT/scripts/lib.sh"

STACK_DIR="${STACK_DIR:-$ROOT/.stack}"

PG_HOST="${PGHOST:-127.0.0.1}"
PG_PORT="${PGPORT:-5432}"
PG_DIR="$STACK_DIR/postgres"      # may be a symlink, see pg_prepare_dir
# PostgreSQL is handed real paths (the postgres user may not be able to
# walk the symlinked one).
[ -L "$PG_DIR" ] && PG_DIR=$(readlink -f "$PG_DIR")
PG_SUPERUSER=postgres             # the role every default URL uses

NATS_URL="${NATS_URL:-nats://127.0.0.1:4222}"
NATS_DIR="$STACK_DIR/nats"
NATS_PIDFILE="$NATS_DIR/nats-server.pid"
NATS_LOG="$NATS_DIR/nats-server.log"

# --- NATS_URL → host and port ----------------------------------------------
# nats://[user:pass@]host[:port][,more servers] — we look at the first server.
nats_parse_url() {
    local u=${NATS_URL%%,*}
    u=${u#*://}
    u=${u##*@}
    u=${u%%/*}
    if [[ $u == \[* ]]; then                 # [::1]:4222
        NATS_HOST=${u%%]*}; NATS_HOST=${NATS_HOST#[}
        u=${u#*]}; NATS_PORT=${u#:}
    elif [[ $u == *:* ]]; then
        NATS_HOST=${u%:*}; NATS_PORT=${u##*:}
    else
        NATS_HOST=$u; NATS_PORT=
    fi
    NATS_HOST=${NATS_HOST:-127.0.0.1}
    NATS_PORT=${NATS_PORT:-4222}
}
nats_parse_url

# ============================================================================
# PostgreSQL
# ============================================================================

pg_answers() {
    if [[ $PG_HOST == /* ]] || have pg_isready; then
        pg_isready -q -h "$PG_HOST" -p "$PG_PORT" -t 2 2>/dev/null
    else
        tcp_open "$PG_HOST" "$PG_PORT"
    fi
}

# The newest installed server's bin directory (Debian keeps servers under
# /usr/lib/postgresql/<major>/bin, off PATH); else initdb/pg_ctl on PATH.
pg_find_bin() {
    local d
    while read -r d; do
        if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then
            echo "$d"
            return 0
        fi
    done < <(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V -r)
    if have initdb && have pg_ctl; then
        dirname "$(command -v pg_ctl)"
        return 0
    fi
    return 1
}

# PostgreSQL refuses to run as root, so as root the cluster belongs to the
# `postgres` system user (the Debian package creates it).
pg_as_owner() {
    if is_root; then
        if have runuser; then
            runuser -u postgres -- "$@"
        else
            su -s /bin/sh postgres -c "$(printf '%q ' "$@")"
        fi
    else
        "$@"
    fi
}

# Data under .stack/postgres, owned by whoever runs the server. When we are
# root and the repository sits where the postgres user cannot reach (root's
# home is mode 700 on Debian), keep the cluster in /var/tmp instead and leave
# a symlink at .stack/postgres so status/stop find it.
pg_prepare_dir() {
    mkdir -p "$STACK_DIR"
    if is_root; then
        id postgres >/dev/null 2>&1 ||
            die "no 'postgres' system user to run PostgreSQL as (PostgreSQL refuses to run as root). Install Debian's postgresql package, or run this as a normal user."
        if [ ! -e "$PG_DIR" ] && ! runuser -u postgres -- test -x "$STACK_DIR" 2>/dev/null; then
            local elsewhere
            elsewhere="/var/tmp/bookmyseat-stack-$(printf '%s' "$ROOT" | cksum | cut -d' ' -f1)/postgres"
            log "the postgres user cannot reach $STACK_DIR; keeping the cluster in $elsewhere (symlinked from $PG_DIR)"
            mkdir -p "$elsewhere"
            chmod 755 "$(dirname "$elsewhere")"
            ln -sfn "$elsewhere" "$PG_DIR"
            PG_DIR=$elsewhere
        fi
        mkdir -p "$PG_DIR"
        chown postgres: "$PG_DIR/"
        chmod 700 "$PG_DIR/"
    else
        mkdir -p "$PG_DIR"
        chmod 700 "$PG_DIR"
    fi
}

# Unix sockets have a path limit of ~107 bytes; skip the socket (TCP only)
# when the repository lives too deep for one.
pg_socket_dir() {
    local dir="$PG_DIR/run"
    if [ $(( ${#dir} + 16 )) -lt 100 ]; then echo "$dir"; fi
}

pg_local_running() {
    local bin=$1
    [ -f "$PG_DIR/data/PG_VERSION" ] && pg_as_owner "$bin/pg_ctl" -D "$PG_DIR/data" status >/dev/null 2>&1
}

pg_start_local() {
    local bin=$1
    pg_prepare_dir                          # may move PG_DIR, so first
    local data="$PG_DIR/data" logfile="$PG_DIR/postgres.log"

    if [ ! -f "$data/PG_VERSION" ]; then
        log "creating a local PostgreSQL cluster in $data ($("$bin/postgres" --version 2>/dev/null || echo postgres))"
        local sock
        sock=$(pg_socket_dir)
        if [ -n "$sock" ]; then mkdir -p "$sock"; is_root && chown postgres: "$sock"; fi
        if ! pg_as_owner "$bin/initdb" -D "$data" --auth=trust -U "$PG_SUPERUSER" \
                --encoding=UTF8 --locale=C >"$PG_DIR/initdb.log" 2>&1; then
            tail_log "$PG_DIR/initdb.log"
            die "initdb failed (full output: $PG_DIR/initdb.log)"
        fi
        # Local development only: trust auth, loopback only, room for parallel tests.
        pg_as_owner tee -a "$data/postgresql.conf" >/dev/null <<EOF

# --- added by scripts/stack.sh (project-local development cluster) ---
unix_socket_directories = '${sock}'
max_connections = 200
EOF
    fi

    # Ours may already run on another port (PGPORT changed since): restart it.
    if pg_local_running "$bin"; then
        log "the local cluster is running but not answering on port $PG_PORT; restarting it there"
        pg_as_owner "$bin/pg_ctl" -D "$data" -m fast -w stop >/dev/null
    fi

    local listen=$PG_HOST
    [ "$listen" = "[::1]" ] && listen="::1"
    log "starting local PostgreSQL on $PG_HOST:$PG_PORT (log: $logfile)"
    if ! pg_as_owner "$bin/pg_ctl" -D "$data" -l "$logfile" -w -t 60 \
            -o "-p $PG_PORT -c listen_addresses=$listen" start >/dev/null 2>&1; then
        tail_log "$logfile"
        die "local PostgreSQL did not start within 60 s; see $logfile"
    fi
    wait_until 30 pg_answers || { tail_log "$logfile"; die "local PostgreSQL started but does not answer on $PG_HOST:$PG_PORT; see $logfile"; }
}

# pg_login_error: empty when we can log in the way the default URLs do
# (user postgres, no password, over TCP); else psql's complaint.
pg_login_error() {
    have psql || return 0
    PGCONNECT_TIMEOUT=5 psql -w -h "$PG_HOST" -p "$PG_PORT" -U "$PG_SUPERUSER" -d postgres \
        -X -A -t -q -c 'select 1' 2>&1 </dev/null >/dev/null || true
}

# Something answers: say so when our URLs cannot log in.
pg_check_login() {
    local out
    out=$(pg_login_error)
    [ -z "$out" ] && return 0
    warn "PostgreSQL answers at $PG_HOST:$PG_PORT but logging in as '$PG_SUPERUSER' without a password failed:"
    warn "  $out"
    warn "set TEST_DATABASE_URL and the *_DATABASE_URL variables (or PGPASSWORD) to credentials that work"
    return 1
}

# Debian's package, where systemd runs, creates and starts a cluster on 5432
# that allows TCP logins only with a password; our URLs carry none. For a
# cluster this script has just installed (so it holds nothing yet), let
# loopback logins as postgres in, by putting two lines at the top of its
# pg_hba.conf (first match wins) and reloading. Never done to a server that
# was there before.
pg_trust_loopback_in_new_cluster() {
    local sockdir=${PG_PACKAGE_SOCKET_DIR:-/var/run/postgresql} hba
    is_root && have psql || return 1
    hba=$(runuser -u postgres -- psql -h "$sockdir" -p "$PG_PORT" -X -A -t -q -c 'show hba_file' </dev/null) || return 1
    [ -f "$hba" ] || return 1
    log "letting password-less loopback logins as '$PG_SUPERUSER' into the new cluster ($hba)"
    sed -i "1i # added by BookMySeat's scripts/stack.sh: password-less loopback logins for local development\\
host    all    $PG_SUPERUSER    127.0.0.1/32    trust\\
host    all    $PG_SUPERUSER    ::1/128         trust" "$hba"
    runuser -u postgres -- psql -h "$sockdir" -p "$PG_PORT" -X -q -c 'select pg_reload_conf()' </dev/null >/dev/null
    sleep 1
}

ensure_postgres() {
    if pg_answers; then
        log "PostgreSQL answers at $PG_HOST:$PG_PORT — using it"
        pg_check_login || true
        return 0
    fi
    if [[ $PG_HOST == /* ]] || ! is_local_host "$PG_HOST"; then
        die "nothing answers at PostgreSQL $PG_HOST:$PG_PORT, and that is not this machine, so there is nothing to start. Start it, or unset PGHOST to use a local one."
    fi

    if [ "$PG_JUST_INSTALLED" = 1 ] && wait_until 10 pg_answers; then
        # Debian's package creates and (where it can) starts its own cluster on 5432.
        log "PostgreSQL (started by the new package) answers at $PG_HOST:$PG_PORT — using it"
        if [ -n "$(pg_login_error)" ]; then
            pg_trust_loopback_in_new_cluster || true
        fi
        pg_check_login || true
        return 0
    fi

    log "nothing answers at $PG_HOST:$PG_PORT; starting a project-local PostgreSQL"
    local bin
    bin=$(pg_find_bin) || die "PostgreSQL's initdb/pg_ctl were not found under /usr/lib/postgresql/*/bin or on PATH"
    pg_start_local "$bin"
    log "PostgreSQL ready at $PG_HOST:$PG_PORT (project-local, data in $PG_DIR/data)"
}

stop_postgres() {
    local bin
    if [ ! -f "$PG_DIR/data/PG_VERSION" ]; then
        log "PostgreSQL: no local cluster under $PG_DIR — nothing to stop"
        return 0
    fi
    bin=$(pg_find_bin) || { warn "PostgreSQL: cannot find pg_ctl to stop the local cluster"; return 0; }
    if pg_local_running "$bin"; then
        log "stopping local PostgreSQL ($PG_DIR/data)"
        pg_as_owner "$bin/pg_ctl" -D "$PG_DIR/data" -m fast -w stop >/dev/null
    else
        log "PostgreSQL: local cluster is not running"
    fi
}

status_postgres() {
    local who="not started by this script" bin
    if [ -f "$PG_DIR/data/PG_VERSION" ] && bin=$(pg_find_bin) && pg_local_running "$bin"; then
        who="project-local cluster in $PG_DIR/data is running (port $(sed -n 4p "$PG_DIR/data/postmaster.pid" 2>/dev/null))"
    fi
    if pg_answers; then
        log "PostgreSQL $PG_HOST:$PG_PORT: answering; $who"
    else
        log "PostgreSQL $PG_HOST:$PG_PORT: not answering; $who"
        return 1
    fi
}

# ============================================================================
# NATS (with JetStream)
# ============================================================================

nats_answers() { tcp_open "$NATS_HOST" "$NATS_PORT"; }

# The server's greeting (INFO {...}) says whether JetStream is enabled.
# Prints yes, no, or unknown.
nats_jetstream() {
    local line
    # shellcheck disable=SC2016 # $1/$2 expand in the inner bash
    line=$(with_timeout 3 bash -c 'exec 3<>"/dev/tcp/$1/$2"; IFS= read -r -t 2 l <&3; printf %s "$l"' \
        _ "$NATS_HOST" "$NATS_PORT" 2>/dev/null) || true
    case "$line" in
        INFO*'"jetstream":true'*) echo yes ;;
        INFO*) echo no ;;
        *) echo unknown ;;
    esac
}

# For wait_until: stop waiting when it answers or when the process died.
nats_up_or_dead() { nats_answers || ! kill -0 "$NATS_LAUNCHED" 2>/dev/null; }

nats_find_bin() {
    if have nats-server; then command -v nats-server; return 0; fi
    local p
    for p in /usr/sbin/nats-server /usr/local/bin/nats-server /usr/bin/nats-server; do
        [ -x "$p" ] && { echo "$p"; return 0; }
    done
    return 1
}

# pid of the nats-server this script started, if it is still alive.
nats_local_pid() {
    local pid
    [ -f "$NATS_PIDFILE" ] || return 1
    pid=$(tr -dc '0-9' <"$NATS_PIDFILE")
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
    # Make sure the pid still is *our* server, not a recycled pid.
    process_args "$pid" | grep -q -- "$NATS_DIR/jetstream" || return 1
    echo "$pid"
}

nats_require_jetstream() {
    case "$(nats_jetstream)" in
        yes) ;;
        no) die "NATS answers at $NATS_HOST:$NATS_PORT but JetStream is disabled. Restart it with JetStream (nats-server -js), or point NATS_URL at another server." ;;
        *) warn "NATS answers at $NATS_HOST:$NATS_PORT but did not greet like a NATS server; using it anyway" ;;
    esac
}

stop_nats_local() {
    local pid
    pid=$(nats_local_pid) || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 20); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.5
    done
    if kill -0 "$pid" 2>/dev/null; then
        warn "nats-server (pid $pid) did not stop within 10 s; killing it"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$NATS_PIDFILE"
}

nats_start_local() {
    local bin=$1
    mkdir -p "$NATS_DIR/jetstream"
    if nats_local_pid >/dev/null; then
        log "the local nats-server is running but not answering on port $NATS_PORT; restarting it there"
        stop_nats_local
    fi
    log "starting local nats-server with JetStream on $NATS_HOST:$NATS_PORT (log: $NATS_LOG)"
    # setsid: its own session, so Ctrl-C on `make up` does not take it down;
    # no stdin/stdout inherited, so CI does not wait on it.
    local launcher=()
    have setsid && launcher=(setsid)
    ${launcher[@]+"${launcher[@]}"} "$bin" -js -a "$NATS_HOST" -p "$NATS_PORT" -sd "$NATS_DIR/jetstream" \
        -P "$NATS_PIDFILE" </dev/null >>"$NATS_LOG" 2>&1 &
    NATS_LAUNCHED=$!
    disown 2>/dev/null || true
    if ! wait_until 30 nats_up_or_dead; then
        tail_log "$NATS_LOG"
        die "local nats-server did not answer on $NATS_HOST:$NATS_PORT within 30 s; see $NATS_LOG"
    fi
    if ! nats_answers; then
        tail_log "$NATS_LOG"
        die "local nats-server exited at once; see $NATS_LOG"
    fi
}

ensure_nats() {
    if nats_answers; then
        nats_require_jetstream
        log "NATS answers at $NATS_HOST:$NATS_PORT (JetStream on) — using it"
        return 0
    fi
    is_local_host "$NATS_HOST" ||
        die "nothing answers at NATS $NATS_HOST:$NATS_PORT, and that is not this machine, so there is nothing to start. Start it, or point NATS_URL at nats://127.0.0.1:4222."

    if [ "$NATS_JUST_INSTALLED" = 1 ] && wait_until 5 nats_answers; then
        nats_require_jetstream
        log "NATS (started by the new package) answers at $NATS_HOST:$NATS_PORT — using it"
        return 0
    fi

    log "nothing answers at $NATS_HOST:$NATS_PORT; starting a project-local nats-server"
    local bin
    bin=$(nats_find_bin) || die "nats-server was not found on PATH or in /usr/sbin"
    nats_start_local "$bin"
    nats_require_jetstream
    log "NATS ready at $NATS_HOST:$NATS_PORT (project-local, pid $(nats_local_pid || echo '?'), JetStream in $NATS_DIR/jetstream)"
}

stop_nats() {
    local pid
    if pid=$(nats_local_pid); then
        log "stopping local nats-server (pid $pid)"
        stop_nats_local
    else
        log "NATS: no local nats-server started by this script is running — nothing to stop"
        rm -f "$NATS_PIDFILE"
    fi
}

status_nats() {
    local who="not started by this script" pid
    pid=$(nats_local_pid) && who="project-local nats-server pid $pid is running"
    if nats_answers; then
        log "NATS $NATS_HOST:$NATS_PORT: answering, JetStream $(nats_jetstream); $who"
    else
        log "NATS $NATS_HOST:$NATS_PORT: not answering; $who"
        return 1
    fi
}

# ============================================================================
# Extras for later test suites (only on request)
# ============================================================================

first_of() {
    local c
    for c in "$@"; do
        if [[ $c != /* ]] && have "$c"; then command -v "$c"; return 0; fi
        [ -x "$c" ] && { echo "$c"; return 0; }
    done
    return 1
}

browser_bin() { first_of chromium chromium-browser google-chrome google-chrome-stable; }
chromedriver_bin() { first_of chromedriver /usr/lib/chromium/chromedriver; }

# Debian's Chromium and chromedriver, for tests/e2e (installed by preflight).
ensure_browser() {
    local chrome driver
    chrome=$(browser_bin) || die "no Chromium found (chromium, chromium-browser, google-chrome)"
    driver=$(chromedriver_bin) || die "no chromedriver found"
    log "browser: $("$chrome" --version 2>/dev/null | head -n1) ($chrome); $("$driver" --version 2>/dev/null | head -n1 | cut -d' ' -f1-2) ($driver)"
}

# The project's Python virtualenv under .stack, which the test tools from PyPI
# (aiosmtpd, schemathesis) are installed into. Tests find its interpreter at
# .stack/venv/bin/python (test_support::smtp::python).
ensure_venv() {
    local venv="$STACK_DIR/venv"
    have python3 || apt_install python3 python3-venv
    if [ ! -x "$venv/bin/pip" ]; then
        rm -rf "$venv"
        log "creating a Python virtualenv in $venv"
        if ! python3 -m venv "$venv" >/dev/null 2>&1; then
            rm -rf "$venv"
            apt_install python3-venv       # Debian splits venv/ensurepip out
            python3 -m venv "$venv" || die "python3 -m venv $venv failed"
        fi
    fi
}

# Python's aiosmtpd in the virtualenv, for tests that need a real SMTP
# server. Tests run it as: .stack/venv/bin/python -m aiosmtpd -n -l 127.0.0.1:PORT
ensure_smtp_sink() {
    local py="$STACK_DIR/venv/bin/python"
    # The relay tests make their certificates with the openssl command.
    have openssl || apt_install openssl
    if [ -x "$py" ] && "$py" -c 'import aiosmtpd' 2>/dev/null; then
        log "SMTP sink: aiosmtpd ready ($py)"
        return 0
    fi
    ensure_venv
    log "installing aiosmtpd into $STACK_DIR/venv (PyPI)"
    "$py" -m pip install --quiet --disable-pip-version-check aiosmtpd </dev/null ||
        die "pip install aiosmtpd failed"
    "$py" -c 'import aiosmtpd' || die "aiosmtpd installed but cannot be imported"
    log "SMTP sink: aiosmtpd ready ($py)"
}

# Schemathesis in the virtualenv, for the API fuzzing test (tests/e2e/fuzz.rs),
# which runs it as: .stack/venv/bin/python -m schemathesis.cli run ...
# The version is pinned: the test passes command-line flags that have changed
# between releases, so an upgrade is a deliberate change made with the test.
SCHEMATHESIS_VERSION=4.32.5
ensure_fuzzer() {
    local py="$STACK_DIR/venv/bin/python"
    if [ -x "$py" ] && [ "$("$py" -c 'import importlib.metadata as m; print(m.version("schemathesis"))' 2>/dev/null)" = "$SCHEMATHESIS_VERSION" ]; then
        log "API fuzzer: schemathesis $SCHEMATHESIS_VERSION ready ($py)"
        return 0
    fi
    ensure_venv
    log "installing schemathesis $SCHEMATHESIS_VERSION into $STACK_DIR/venv (PyPI)"
    "$py" -m pip install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION" </dev/null ||
        die "pip install schemathesis==$SCHEMATHESIS_VERSION failed"
    "$py" -m schemathesis.cli --version >/dev/null || die "schemathesis installed but does not run"
    log "API fuzzer: schemathesis $SCHEMATHESIS_VERSION ready ($py)"
}

# ============================================================================

# Install every missing program in one go before starting anything, so a
# user without root reads one command that fixes everything:
# `sudo apt-get install -y postgresql nats-server ...`.
PG_JUST_INSTALLED=0
NATS_JUST_INSTALLED=0
preflight() {
    local browser=$1 servers=() browsers=()
    if ! pg_answers && is_local_host "$PG_HOST" && ! pg_find_bin >/dev/null; then
        servers+=(postgresql)
        PG_JUST_INSTALLED=1
    fi
    if ! nats_answers && is_local_host "$NATS_HOST" && ! nats_find_bin >/dev/null; then
        servers+=(nats-server)
        NATS_JUST_INSTALLED=1
    fi
    if [ "$browser" = 1 ] && { ! browser_bin >/dev/null || ! chromedriver_bin >/dev/null; }; then
        browsers+=(chromium chromium-driver)
    fi
    if ! is_root && [ $(( ${#servers[@]} + ${#browsers[@]} )) -gt 0 ]; then
        apt_install ${servers[@]+"${servers[@]}"} ${browsers[@]+"${browsers[@]}"}   # prints the command, exits
    fi
    # The servers need none of their recommends (those pull in a mail server);
    # Chromium's recommends bring the fonts pages render with.
    [ ${#servers[@]} -eq 0 ] || apt_install --no-install-recommends "${servers[@]}"
    [ ${#browsers[@]} -eq 0 ] || apt_install "${browsers[@]}"
}

usage() {
    sed -n '3,29p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

main() {
    local cmd=ensure
    if [ $# -gt 0 ] && [[ $1 != -* ]]; then cmd=$1; shift; fi
    local browser=${STACK_BROWSER:-0} smtp=${STACK_SMTP:-0} fuzz=${STACK_FUZZ:-0}
    while [ $# -gt 0 ]; do
        case "$1" in
            --browser) browser=1 ;;
            --smtp) smtp=1 ;;
            --fuzz) fuzz=1 ;;
            -h | --help) usage; exit 0 ;;
            *) usage >&2; die "unknown option: $1" ;;
        esac
        shift
    done

    case "$cmd" in
        ensure | up)
            preflight "$browser"
            ensure_postgres
            ensure_nats
            [ "$browser" = 1 ] && ensure_browser
            [ "$smtp" = 1 ] && ensure_smtp_sink
            [ "$fuzz" = 1 ] && ensure_fuzzer
            log "ready"
            ;;
        stop | down)
            stop_nats
            stop_postgres
            ;;
        status)
            local rc=0
            status_postgres || rc=1
            status_nats || rc=1
            return $rc
            ;;
        help | -h | --help) usage ;;
        *) usage >&2; die "unknown command: $cmd" ;;
    esac
}

main "$@"
