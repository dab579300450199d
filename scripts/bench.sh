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
# and `bookmyseat seating` as a third when the seat-map endpoint is measured,
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
#                       (seat-map too on request: it starts seating)
#   BENCH_CATALOG_PORT  catalog's gRPC port                (default 20151)
#   BENCH_GATEWAY_PORT  the gateway's HTTP port            (default 8180)
#   BENCH_SEATING_PORT  seating's gRPC port, for seat-map  (default 20152)
#   BENCH_DATABASE_URL_PREFIX    each service's bench database is this plus its name
#                                (default postgres://postgres@$PGHOST:$PGPORT/bookmyseat_bench_)
#   CATALOG_CACHE_TTL_MS         passed to catalog when set (its default is 2000)
#   BENCH_GATEWAY_THREADS        the gateway's TOKIO_WORKER_THREADS when set
#                                (default: one per core, as tokio chooses)
#   CARGO_TARGET_DIR             honoured, as cargo does
# Extra arguments go to `loadgen browse` as they are, e.g.
#   scripts/bench.sh --gzip --workers-per-channel 4 --json
#
# The bench databases (bookmyseat_bench_catalog, _seating, ...) are not the
# ones `make up` uses: the *_DATABASE_URL variables the Makefile exports are
# deliberately overridden, and peers the gateway knows but this benchmark
# does not start (seating, unless asked) point at a port nothing listens on, so nothing
# here can reach a running `make up`. The databases are kept between runs;
# migrating and seeding are idempotent.

set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LOG_PREFIX=bench
# shellcheck source=scripts/lib.sh
source "$ROOT/scripts/lib.sh"
# shellcheck source=scripts/bench-lib.sh
source "$ROOT/scripts/bench-lib.sh"

BENCH_CONCURRENCY=${BENCH_CONCURRENCY:-64}
BENCH_DURATION=${BENCH_DURATION:-5s}
BENCH_ROUNDS=${BENCH_ROUNDS:-3}
BENCH_WARMUP=${BENCH_WARMUP:-2s}
BENCH_ENDPOINTS=${BENCH_ENDPOINTS:-gateway-list,direct-list,film-page,showtime-json}

main() {
    bench_prepare
    CATALOG_PORT=$(free_port "${BENCH_CATALOG_PORT:-20151}")
    GATEWAY_PORT=$(free_port "${BENCH_GATEWAY_PORT:-8180}")
    # Without seat maps seating is not started, and the gateway is given a
    # free port for it, so it cannot reach a dev seating.
    local with_seating=false watch_seating=""
    [[ ",$BENCH_ENDPOINTS," != *,seat-map,* ]] || with_seating=true
    SEATING_PORT=$(free_port "${BENCH_SEATING_PORT:-20152}")
    [ "$SEATING_PORT" != "$CATALOG_PORT" ] || SEATING_PORT=$(free_port $((CATALOG_PORT + 1)))

    bench_env \
        CATALOG_GRPC_ADDR="127.0.0.1:$CATALOG_PORT" \
        CATALOG_URL="http://127.0.0.1:$CATALOG_PORT" \
        SEATING_GRPC_ADDR="127.0.0.1:$SEATING_PORT" \
        SEATING_CATALOG_URL="http://127.0.0.1:$CATALOG_PORT" \
        SEATING_URL="http://127.0.0.1:$SEATING_PORT" \
        GATEWAY_HTTP_ADDR="127.0.0.1:$GATEWAY_PORT" \
        PUBLIC_BASE_URL="http://127.0.0.1:$GATEWAY_PORT"
    [ -z "${CATALOG_CACHE_TTL_MS:-}" ] || BENCH_ENV+=(CATALOG_CACHE_TTL_MS="$CATALOG_CACHE_TTL_MS")
    bench_migrate_and_seed

    log "starting catalog on 127.0.0.1:$CATALOG_PORT and gateway on 127.0.0.1:$GATEWAY_PORT (logs in $RUN_DIR)"
    start catalog "${BENCH_ENV[@]}" "$BIN" catalog
    wait_for catalog tcp_open 127.0.0.1 "$CATALOG_PORT"
    if $with_seating; then
        log "starting seating on 127.0.0.1:$SEATING_PORT, for the seat maps"
        start seating "${BENCH_ENV[@]}" "$BIN" seating
        wait_for seating tcp_open 127.0.0.1 "$SEATING_PORT"
        watch_seating=",seating=$(pid_of seating)"
    fi
    start gateway "${BENCH_ENV[@]}" ${BENCH_GATEWAY_THREADS:+TOKIO_WORKER_THREADS=$BENCH_GATEWAY_THREADS} "$BIN" gateway
    wait_for gateway gateway_healthy

    local info
    info=$(bench_info_fd "$@")
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
        --watch "gateway=$(pid_of gateway),catalog=$(pid_of catalog)$watch_seating,postgres=postgres,nats=nats-server" \
        "$@" || status=$?
    printf '\nload average after: %s\n' "$(load_average)" >&"$info"

    bench_finish
    return "$status"
}

main "$@"
