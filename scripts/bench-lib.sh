# shellcheck shell=bash
# scripts/bench-lib.sh — what every end-to-end benchmark script shares:
# release binaries, the bench databases, free ports, the processes it starts
# (stopped on any exit), the machine line, and the final check that nothing
# died during the run. Sourced after scripts/lib.sh by scripts/bench*.sh.
#
# The bench databases (bookmyseat_bench_catalog, _seating, …) are not the
# ones `make up` uses: the *_DATABASE_URL variables the Makefile exports are
# overridden, and every peer the roles know points at the processes started
# here, so a benchmark never reaches a running `make up`. The databases are
# kept between runs; migrating and seeding are idempotent.

CARGO=${CARGO:-cargo}
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
# BENCH_PROFILE=debug builds and runs debug binaries: for checking that a
# scenario works where a release build takes too long. Its figures are not
# benchmarks; release is the default.
BENCH_PROFILE=${BENCH_PROFILE:-release}
case "$BENCH_PROFILE" in
    release) BENCH_CARGO_PROFILE_FLAGS=(--release) ;;
    debug) BENCH_CARGO_PROFILE_FLAGS=() ;;
    *) echo "BENCH_PROFILE must be release or debug, not '$BENCH_PROFILE'" >&2; exit 2 ;;
esac
BIN="$TARGET_DIR/$BENCH_PROFILE/bookmyseat"
# shellcheck disable=SC2034  # used by the scripts that source this file
LOADGEN="$TARGET_DIR/$BENCH_PROFILE/loadgen"

PG_HOST=${PGHOST:-127.0.0.1}
PG_PORT=${PGPORT:-5432}
BENCH_DATABASE_URL_PREFIX=${BENCH_DATABASE_URL_PREFIX:-postgres://postgres@$PG_HOST:$PG_PORT/bookmyseat_bench_}
# Every service's database variable, as the Makefile lists them.
SERVICES_WITH_DATABASES=(catalog gateway seating payments notifier analytics)

# free_port PORT: the first port from PORT upwards that nothing listens on (a
# `make up` or an earlier benchmark may hold the default). The defaults lie
# below the kernel's ephemeral range (32768 up): a port in it can be taken by
# an outgoing connection between this check and the role's bind, which once
# stopped a benchmark at start-up.
free_port() {
    local port=$1
    while tcp_open 127.0.0.1 "$port"; do
        port=$((port + 1))
        [ "$port" -lt $(($1 + 50)) ] || die "no free port in $1..$port"
    done
    echo "$port"
}

# --- the processes a benchmark starts, stopped on any exit --------------------
STARTED=()
STARTED_NAMES=()
RUN_DIR=
stop_started() {
    local pid
    for pid in ${STARTED[@]+"${STARTED[@]}"}; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in ${STARTED[@]+"${STARTED[@]}"}; do
        wait "$pid" 2>/dev/null || true
    done
    STARTED=()
}
trap stop_started EXIT
trap 'exit 130' INT TERM

# start NAME COMMAND...: run COMMAND in the background, its output in
# $RUN_DIR/NAME.log.
start() {
    local name=$1
    shift
    "$@" </dev/null >"$RUN_DIR/$name.log" 2>&1 &
    STARTED+=("$!")
    STARTED_NAMES+=("$name")
    printf -v "PID_$name" '%s' "$!"
}

# pid_of NAME: the process id of what was started as NAME.
pid_of() { local pid="PID_$1"; echo "${!pid}"; }

# alive NAME: the process started as NAME still runs.
alive() { kill -0 "$(pid_of "$1")" 2>/dev/null; }

# wait_for NAME CHECK...: until CHECK succeeds; fail early if NAME died.
wait_for() {
    local name=$1
    shift
    local deadline=$((SECONDS + 30))
    until "$@"; do
        alive "$name" || { tail_log "$RUN_DIR/$name.log"; die "$name exited during start-up"; }
        [ "$SECONDS" -lt "$deadline" ] || { tail_log "$RUN_DIR/$name.log"; die "$name did not come up within 30 s"; }
        sleep 0.2
    done
}

gateway_healthy() { curl -fsS -o /dev/null --max-time 2 "http://127.0.0.1:$GATEWAY_PORT/healthz"; }

machine() {
    local model mem
    model=$(sed -n 's/^model name[[:space:]]*:[[:space:]]*//p' /proc/cpuinfo 2>/dev/null | head -n1)
    mem=$(awk '/^MemTotal:/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo 2>/dev/null)
    echo "machine: $(nproc) cores, ${model:-unknown CPU}, ${mem:-? GiB} RAM, $(uname -sr)"
    echo "software: $(rustc --version 2>/dev/null || echo 'rustc ?'); PostgreSQL $(psql_version); commit $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$ROOT" diff --quiet HEAD 2>/dev/null || echo ' (with uncommitted changes)')"
}

psql_version() {
    if have psql; then
        psql "${BENCH_DATABASE_URL_PREFIX}catalog" -X -A -t -q -c 'show server_version' 2>/dev/null </dev/null | head -n1 || echo '?'
    else
        echo '?'
    fi
}

load_average() { cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || uptime; }

# bench_prepare: release build (BENCH_PROFILE), PostgreSQL and NATS up, a run
# directory.
bench_prepare() {
    have curl || die "curl is needed to wait for the gateway (apt-get install curl)"
    log "building bookmyseat and loadgen ($BENCH_PROFILE)"
    (cd "$ROOT" && "$CARGO" build ${BENCH_CARGO_PROFILE_FLAGS[@]+"${BENCH_CARGO_PROFILE_FLAGS[@]}"} -p bookmyseat -p loadgen)
    if [ -x "$ROOT/scripts/stack.sh" ]; then
        "$ROOT/scripts/stack.sh" ensure
    else
        log "no scripts/stack.sh; assuming PostgreSQL and NATS run on 127.0.0.1"
    fi
    RUN_DIR=$(mktemp -d "${TMPDIR:-/tmp}/bookmyseat-$LOG_PREFIX.XXXXXX")
}

# bench_env VAR=VALUE...: sets BENCH_ENV, the `env …` prefix every role and
# subcommand runs under: quiet logs (BENCH_RUST_LOG, default warn; e.g.
# warn,tower_http=info logs every gateway request with its latency), the
# given settings, every bench database.
bench_env() {
    # Several roles run side by side here: no metrics ports to collide on.
    BENCH_ENV=(env RUST_LOG="${BENCH_RUST_LOG:-warn}" LOG_FORMAT=text METRICS_ADDR=off "$@")
    local service
    for service in "${SERVICES_WITH_DATABASES[@]}"; do
        BENCH_ENV+=("${service^^}_DATABASE_URL=$BENCH_DATABASE_URL_PREFIX$service")
    done
}

# bench_migrate_and_seed: `bookmyseat migrate` and `seed` under BENCH_ENV.
bench_migrate_and_seed() {
    log "databases $(printf '%s' "$BENCH_DATABASE_URL_PREFIX" | sed 's#://[^@/]*:[^@/]*@#://***@#')*: migrate and seed"
    "${BENCH_ENV[@]}" "$BIN" migrate >"$RUN_DIR/migrate.log" 2>&1 || { tail_log "$RUN_DIR/migrate.log"; die "bookmyseat migrate failed"; }
    "${BENCH_ENV[@]}" "$BIN" seed >"$RUN_DIR/seed.log" 2>&1 || { tail_log "$RUN_DIR/seed.log"; die "bookmyseat seed failed"; }
}

# bench_analyze: ANALYZE every bench database. A running deployment's
# tables have statistics (autovacuum analyses a table once it has grown by a
# tenth); without them PostgreSQL keeps the plans it made when the tables
# were empty — sequential scans over what has since grown — for as long as
# the roles' connections live. Some servers run with autovacuum off (this
# project's CI machines do), so a benchmark measuring the steady state
# analyses its databases itself, once they hold rows, and says so. ANALYZE
# invalidates the plans the running roles cached.
bench_analyze() {
    local service autovacuum
    have psql || die "psql is needed to analyse the bench databases (apt-get install postgresql-client)"
    autovacuum=$(psql "${BENCH_DATABASE_URL_PREFIX}seating" -X -A -t -q -c "SHOW autovacuum" </dev/null 2>/dev/null || echo unknown)
    log "analysing the bench databases (as autovacuum would; this server's autovacuum is ${autovacuum:-unknown})"
    for service in "${SERVICES_WITH_DATABASES[@]}"; do
        psql "$BENCH_DATABASE_URL_PREFIX$service" -X -q -c "ANALYZE" </dev/null >/dev/null ||
            die "cannot analyse the bench database of $service"
    done
}

# bench_info_fd ARGS...: where the machine lines go — stdout, or stderr when
# --json asks for stdout to carry the JSON document only.
bench_info_fd() {
    local arg
    for arg in "$@"; do [ "$arg" != --json ] || { echo 2; return; }; done
    echo 1
}

# bench_finish: fails if a started role died during the run, stops them all,
# and keeps their logs only when they said something (warnings).
bench_finish() {
    local name logged=
    for name in "${STARTED_NAMES[@]}"; do
        alive "$name" || { tail_log "$RUN_DIR/$name.log"; die "$name died during the run"; }
    done
    stop_started
    for name in "${STARTED_NAMES[@]}"; do
        [ ! -s "$RUN_DIR/$name.log" ] || logged=1
    done
    if [ -n "$logged" ]; then
        log "${STARTED_NAMES[*]}: warnings were logged; their logs are kept in $RUN_DIR"
    else
        rm -rf "$RUN_DIR"
    fi
}
