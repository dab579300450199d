#!/usr/bin/env bash
#
# scripts/bench-holds.sh — the seat-hold benchmark of issue #3, end to end.
#
#   scripts/bench-holds.sh [LOADGEN HOLDS FLAGS...]
#
# Builds `bookmyseat` and `loadgen` in release mode, makes sure PostgreSQL
# and NATS answer (scripts/stack.sh), prepares databases of its own
# (migrate + seed), starts `bookmyseat catalog`, `bookmyseat seating` and
# `bookmyseat gateway` as three processes on ports of their own (so a running
# `make up` is left alone), runs `loadgen holds` against them (gateway, direct
# gRPC, and seating's raw SQL straight to its bench database), prints the
# machine it ran on, and stops what it started. Everything runs on this machine; on a 2-core machine the
# load generator shares the CPU with gateway, seating, catalog and PostgreSQL, which
# is the honest set-up: the figures are what one small box does in total.
#
# Knobs (environment):
#   BENCH_CONCURRENCY   uncontended workers (one showtime each) (default 32)
#   BENCH_CONTENDED     contended workers on one showtime  (default 200)
#   BENCH_DURATION      measured time per row and round    (default 5s)
#   BENCH_ROUNDS        rounds, paths taking turns         (default 2)
#   BENCH_WARMUP        uncounted warm-up per row and round (default 2s)
#   BENCH_PATHS         gateway,grpc,sql                   (default all three)
#   BENCH_MODES         uncontended,contended              (default both)
#   BENCH_RATES         fixed arrival rates, holds/s, uncontended (default 1000;
#                       empty: closed loops only)
#   BENCH_PACED_WORKERS workers of the fixed-rate rows     (default 64)
#   BENCH_CATALOG_PORT  catalog's gRPC port                (default 50151)
#   BENCH_SEATING_PORT  seating's gRPC port                (default 50152)
#   BENCH_GATEWAY_PORT  the gateway's HTTP port            (default 8180)
#   BENCH_DATABASE_URL_PREFIX    each service's bench database is this plus its name
#                                (default postgres://postgres@$PGHOST:$PGPORT/bookmyseat_bench_)
#   CATALOG_CACHE_TTL_MS         passed to catalog when set (its default is 2000)
#   CARGO_TARGET_DIR             honoured, as cargo does
#   MAX_SEATS_PER_HOLD, HOLD_DURATION_SECS, SEATING_DB_POOL_SIZE
#                                passed to seating when set (its defaults)
# Extra arguments go to `loadgen holds` as they are, e.g.
#   scripts/bench-holds.sh --max-seats 2 --json
#
# The bench databases (bookmyseat_bench_catalog, _seating, ...) are not the
# ones `make up` uses: the *_DATABASE_URL variables the Makefile exports are
# deliberately overridden, and every peer the gateway knows points at the
# processes started here, so nothing here can reach a running `make up`. The databases are kept between runs;
# migrating and seeding are idempotent.

set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LOG_PREFIX=bench-holds
# shellcheck source=scripts/lib.sh
source "$ROOT/scripts/lib.sh"

CARGO=${CARGO:-cargo}
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
BIN="$TARGET_DIR/release/bookmyseat"
LOADGEN="$TARGET_DIR/release/loadgen"

PG_HOST=${PGHOST:-127.0.0.1}
PG_PORT=${PGPORT:-5432}
BENCH_DATABASE_URL_PREFIX=${BENCH_DATABASE_URL_PREFIX:-postgres://postgres@$PG_HOST:$PG_PORT/bookmyseat_bench_}
# Every service's database variable, as the Makefile lists them.
SERVICES_WITH_DATABASES=(catalog gateway seating payments notifier analytics)
BENCH_CONCURRENCY=${BENCH_CONCURRENCY:-32}
BENCH_CONTENDED=${BENCH_CONTENDED:-200}
BENCH_DURATION=${BENCH_DURATION:-5s}
BENCH_ROUNDS=${BENCH_ROUNDS:-2}
BENCH_WARMUP=${BENCH_WARMUP:-2s}
BENCH_PATHS=${BENCH_PATHS:-gateway,grpc,sql}
BENCH_MODES=${BENCH_MODES:-uncontended,contended}
BENCH_RATES=${BENCH_RATES-1000}
BENCH_PACED_WORKERS=${BENCH_PACED_WORKERS:-64}

# --- free ports --------------------------------------------------------------
# The first port from $1 upwards that nothing listens on (a `make up` or an
# earlier benchmark may hold the default).
free_port() {
    local port=$1
    while tcp_open 127.0.0.1 "$port"; do
        port=$((port + 1))
        [ "$port" -lt $(($1 + 50)) ] || die "no free port in $1..$port"
    done
    echo "$port"
}

# --- the processes this script starts, stopped on any exit -------------------
STARTED=()
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

main() {
    have curl || die "curl is needed to wait for the gateway (apt-get install curl)"

    log "building bookmyseat and loadgen (release)"
    (cd "$ROOT" && "$CARGO" build --release -p bookmyseat -p loadgen)

    if [ -x "$ROOT/scripts/stack.sh" ]; then
        "$ROOT/scripts/stack.sh" ensure
    else
        log "no scripts/stack.sh; assuming PostgreSQL and NATS run on 127.0.0.1"
    fi

    RUN_DIR=$(mktemp -d "${TMPDIR:-/tmp}/bookmyseat-bench-holds.XXXXXX")
    CATALOG_PORT=$(free_port "${BENCH_CATALOG_PORT:-50151}")
    SEATING_PORT=$(free_port "${BENCH_SEATING_PORT:-50152}")
    [ "$SEATING_PORT" != "$CATALOG_PORT" ] || SEATING_PORT=$(free_port $((CATALOG_PORT + 1)))
    GATEWAY_PORT=$(free_port "${BENCH_GATEWAY_PORT:-8180}")

    # Everything the roles read that could point at a `make up` instance.
    local env=(
        env
        RUST_LOG=warn
        LOG_FORMAT=text
        CATALOG_GRPC_ADDR="127.0.0.1:$CATALOG_PORT"
        CATALOG_URL="http://127.0.0.1:$CATALOG_PORT"
        SEATING_GRPC_ADDR="127.0.0.1:$SEATING_PORT"
        SEATING_CATALOG_URL="http://127.0.0.1:$CATALOG_PORT"
        SEATING_URL="http://127.0.0.1:$SEATING_PORT"
        GATEWAY_HTTP_ADDR="127.0.0.1:$GATEWAY_PORT"
        PUBLIC_BASE_URL="http://127.0.0.1:$GATEWAY_PORT"
    )
    local service
    for service in "${SERVICES_WITH_DATABASES[@]}"; do
        env+=("${service^^}_DATABASE_URL=$BENCH_DATABASE_URL_PREFIX$service")
    done
    local knob
    for knob in MAX_SEATS_PER_HOLD HOLD_DURATION_SECS SEATING_DB_POOL_SIZE; do
        [ -z "${!knob:-}" ] || env+=("$knob=${!knob}")
    done

    log "databases $(printf '%s' "$BENCH_DATABASE_URL_PREFIX" | sed 's#://[^@/]*:[^@/]*@#://***@#')*: migrate and seed"
    "${env[@]}" "$BIN" migrate >"$RUN_DIR/migrate.log" 2>&1 || { tail_log "$RUN_DIR/migrate.log"; die "bookmyseat migrate failed"; }
    "${env[@]}" "$BIN" seed >"$RUN_DIR/seed.log" 2>&1 || { tail_log "$RUN_DIR/seed.log"; die "bookmyseat seed failed"; }

    log "starting catalog on 127.0.0.1:$CATALOG_PORT, seating on 127.0.0.1:$SEATING_PORT and gateway on 127.0.0.1:$GATEWAY_PORT (logs in $RUN_DIR)"
    start catalog "${env[@]}" "$BIN" catalog
    wait_for catalog tcp_open 127.0.0.1 "$CATALOG_PORT"
    start seating "${env[@]}" "$BIN" seating
    wait_for seating tcp_open 127.0.0.1 "$SEATING_PORT"
    start gateway "${env[@]}" "$BIN" gateway
    wait_for gateway gateway_healthy

    # With --json, stdout carries the JSON document only; the rest goes to stderr.
    local info=1 arg
    for arg in "$@"; do [ "$arg" != --json ] || info=2; done
    {
        echo
        machine
        echo "load average before: $(load_average)"
        echo "command: scripts/bench-holds.sh $*  (loadgen holds --concurrency $BENCH_CONCURRENCY --contended-workers $BENCH_CONTENDED --duration $BENCH_DURATION --rounds $BENCH_ROUNDS --warmup $BENCH_WARMUP --paths $BENCH_PATHS --modes $BENCH_MODES${BENCH_RATES:+ --rates $BENCH_RATES --paced-workers $BENCH_PACED_WORKERS})"
        echo
    } >&"$info"
    local status=0
    "$LOADGEN" holds \
        --gateway "http://127.0.0.1:$GATEWAY_PORT" \
        --seating "http://127.0.0.1:$SEATING_PORT" \
        --database-url "${BENCH_DATABASE_URL_PREFIX}seating" \
        --concurrency "$BENCH_CONCURRENCY" \
        --contended-workers "$BENCH_CONTENDED" \
        --duration "$BENCH_DURATION" \
        --rounds "$BENCH_ROUNDS" \
        --warmup "$BENCH_WARMUP" \
        --paths "$BENCH_PATHS" \
        --modes "$BENCH_MODES" \
        ${BENCH_RATES:+--rates "$BENCH_RATES" --paced-workers "$BENCH_PACED_WORKERS"} \
        --watch "gateway=$(pid_of gateway),seating=$(pid_of seating),catalog=$(pid_of catalog)" \
        "$@" || status=$?
    printf '\nload average after: %s\n' "$(load_average)" >&"$info"

    alive catalog || { tail_log "$RUN_DIR/catalog.log"; die "catalog died during the run"; }
    alive seating || { tail_log "$RUN_DIR/seating.log"; die "seating died during the run"; }
    alive gateway || { tail_log "$RUN_DIR/gateway.log"; die "gateway died during the run"; }
    stop_started
    if [ -s "$RUN_DIR/catalog.log" ] || [ -s "$RUN_DIR/seating.log" ] || [ -s "$RUN_DIR/gateway.log" ]; then
        log "catalog, seating or gateway logged warnings; their logs are kept in $RUN_DIR"
    else
        rm -rf "$RUN_DIR"
    fi
    return "$status"
}

main "$@"
