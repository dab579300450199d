#!/usr/bin/env bash
#
# scripts/bench.sh — the browse benchmark of issue #2, end to end.
#
#   scripts/bench.sh [LOADGEN BROWSE FLAGS...]
#
# Builds `bookmyseat` and `loadgen` in release mode, makes sure PostgreSQL
# and NATS answer (scripts/stack.sh), prepares a database of its own
# (migrate + seed), starts `bookmyseat catalog` and `bookmyseat gateway` as
# two processes on ports of their own (so a running `make up` is left alone),
# runs `loadgen browse` against them, prints the machine it ran on, and stops
# what it started. Everything runs on this machine; on a 2-core machine the
# load generator shares the CPU with gateway, catalog and PostgreSQL, which
# is the honest set-up: the figures are what one small box does in total.
#
# Knobs (environment):
#   BENCH_CONCURRENCY   worker counts, comma-separated     (default 64)
#   BENCH_DURATION      measured time per row and round    (default 5s)
#   BENCH_ROUNDS        rounds, endpoints taking turns     (default 3)
#   BENCH_WARMUP        uncounted warm-up per row and round (default 2s)
#   BENCH_ENDPOINTS     gateway-list,direct-list,film-page,showtime-json
#   BENCH_CATALOG_PORT  catalog's gRPC port                (default 50151)
#   BENCH_GATEWAY_PORT  the gateway's HTTP port            (default 8180)
#   BENCH_DATABASE_URL_PREFIX    each service's bench database is this plus its name
#                                (default postgres://postgres@$PGHOST:$PGPORT/bookmyseat_bench_)
#   CATALOG_CACHE_TTL_MS         passed to catalog when set (its default is 2000)
#   CARGO_TARGET_DIR             honoured, as cargo does
# Extra arguments go to `loadgen browse` as they are, e.g.
#   scripts/bench.sh --gzip --workers-per-channel 4 --json
#
# The bench databases (bookmyseat_bench_catalog, _seating, ...) are not the
# ones `make up` uses: the *_DATABASE_URL variables the Makefile exports are
# deliberately overridden, and peers the gateway knows but this benchmark
# does not start (seating) point at a port nothing listens on, so nothing
# here can reach a running `make up`. The databases are kept between runs;
# migrating and seeding are idempotent.

set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LOG_PREFIX=bench
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
BENCH_CONCURRENCY=${BENCH_CONCURRENCY:-64}
BENCH_DURATION=${BENCH_DURATION:-5s}
BENCH_ROUNDS=${BENCH_ROUNDS:-3}
BENCH_WARMUP=${BENCH_WARMUP:-2s}
BENCH_ENDPOINTS=${BENCH_ENDPOINTS:-gateway-list,direct-list,film-page,showtime-json}

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

    RUN_DIR=$(mktemp -d "${TMPDIR:-/tmp}/bookmyseat-bench.XXXXXX")
    CATALOG_PORT=$(free_port "${BENCH_CATALOG_PORT:-50151}")
    GATEWAY_PORT=$(free_port "${BENCH_GATEWAY_PORT:-8180}")
    # Not started: a free port, so the gateway cannot reach a dev seating.
    local nobody_port
    nobody_port=$(free_port 50160)

    # Everything the roles read that could point at a `make up` instance.
    local env=(
        env
        RUST_LOG=warn
        LOG_FORMAT=text
        CATALOG_GRPC_ADDR="127.0.0.1:$CATALOG_PORT"
        CATALOG_URL="http://127.0.0.1:$CATALOG_PORT"
        SEATING_URL="http://127.0.0.1:$nobody_port"
        GATEWAY_HTTP_ADDR="127.0.0.1:$GATEWAY_PORT"
        PUBLIC_BASE_URL="http://127.0.0.1:$GATEWAY_PORT"
    )
    local service
    for service in "${SERVICES_WITH_DATABASES[@]}"; do
        env+=("${service^^}_DATABASE_URL=$BENCH_DATABASE_URL_PREFIX$service")
    done
    [ -z "${CATALOG_CACHE_TTL_MS:-}" ] || env+=(CATALOG_CACHE_TTL_MS="$CATALOG_CACHE_TTL_MS")

    log "databases $(printf '%s' "$BENCH_DATABASE_URL_PREFIX" | sed 's#://[^@/]*:[^@/]*@#://***@#')*: migrate and seed"
    "${env[@]}" "$BIN" migrate >"$RUN_DIR/migrate.log" 2>&1 || { tail_log "$RUN_DIR/migrate.log"; die "bookmyseat migrate failed"; }
    "${env[@]}" "$BIN" seed >"$RUN_DIR/seed.log" 2>&1 || { tail_log "$RUN_DIR/seed.log"; die "bookmyseat seed failed"; }

    log "starting catalog on 127.0.0.1:$CATALOG_PORT and gateway on 127.0.0.1:$GATEWAY_PORT (logs in $RUN_DIR)"
    start catalog "${env[@]}" "$BIN" catalog
    wait_for catalog tcp_open 127.0.0.1 "$CATALOG_PORT"
    start gateway "${env[@]}" "$BIN" gateway
    wait_for gateway gateway_healthy

    # With --json, stdout carries the JSON document only; the rest goes to stderr.
    local info=1 arg
    for arg in "$@"; do [ "$arg" != --json ] || info=2; done
    {
        echo
        machine
        echo "load average before: $(load_average)"
        echo "command: scripts/bench.sh $*  (loadgen browse --concurrency $BENCH_CONCURRENCY --duration $BENCH_DURATION --rounds $BENCH_ROUNDS --warmup $BENCH_WARMUP --endpoints $BENCH_ENDPOINTS)"
        echo
    } >&"$info"
    local status=0
    "$LOADGEN" browse \
        --gateway "http://127.0.0.1:$GATEWAY_PORT" \
        --catalog "http://127.0.0.1:$CATALOG_PORT" \
        --concurrency "$BENCH_CONCURRENCY" \
        --duration "$BENCH_DURATION" \
        --rounds "$BENCH_ROUNDS" \
        --warmup "$BENCH_WARMUP" \
        --endpoints "$BENCH_ENDPOINTS" \
        --watch "gateway=$(pid_of gateway),catalog=$(pid_of catalog)" \
        "$@" || status=$?
    printf '\nload average after: %s\n' "$(load_average)" >&"$info"

    alive catalog || { tail_log "$RUN_DIR/catalog.log"; die "catalog died during the run"; }
    alive gateway || { tail_log "$RUN_DIR/gateway.log"; die "gateway died during the run"; }
    stop_started
    if [ -s "$RUN_DIR/catalog.log" ] || [ -s "$RUN_DIR/gateway.log" ]; then
        log "catalog or gateway logged warnings; their logs are kept in $RUN_DIR"
    else
        rm -rf "$RUN_DIR"
    fi
    return "$status"
}

main "$@"
