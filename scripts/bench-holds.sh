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
#   BENCH_MODES         uncontended,contended,replacing    (default all three;
#                       replacing: each hold replaces the previous, no release)
#   BENCH_RATES         fixed arrival rates, holds/s, uncontended (default 1000;
#                       empty: closed loops only)
#   BENCH_PACED_WORKERS workers of the fixed-rate rows     (default 64)
#   BENCH_CATALOG_PORT  catalog's gRPC port                (default 20151)
#   BENCH_SEATING_PORT  seating's gRPC port                (default 20152)
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
# shellcheck source=scripts/bench-lib.sh
source "$ROOT/scripts/bench-lib.sh"

BENCH_CONCURRENCY=${BENCH_CONCURRENCY:-32}
BENCH_CONTENDED=${BENCH_CONTENDED:-200}
BENCH_DURATION=${BENCH_DURATION:-5s}
BENCH_ROUNDS=${BENCH_ROUNDS:-2}
BENCH_WARMUP=${BENCH_WARMUP:-2s}
BENCH_PATHS=${BENCH_PATHS:-gateway,grpc,sql}
BENCH_MODES=${BENCH_MODES:-uncontended,contended,replacing}
BENCH_RATES=${BENCH_RATES-1000}
BENCH_PACED_WORKERS=${BENCH_PACED_WORKERS:-64}

main() {
    bench_prepare
    CATALOG_PORT=$(free_port "${BENCH_CATALOG_PORT:-20151}")
    SEATING_PORT=$(free_port "${BENCH_SEATING_PORT:-20152}")
    [ "$SEATING_PORT" != "$CATALOG_PORT" ] || SEATING_PORT=$(free_port $((CATALOG_PORT + 1)))
    GATEWAY_PORT=$(free_port "${BENCH_GATEWAY_PORT:-8180}")

    bench_env \
        CATALOG_GRPC_ADDR="127.0.0.1:$CATALOG_PORT" \
        CATALOG_URL="http://127.0.0.1:$CATALOG_PORT" \
        SEATING_GRPC_ADDR="127.0.0.1:$SEATING_PORT" \
        SEATING_CATALOG_URL="http://127.0.0.1:$CATALOG_PORT" \
        SEATING_URL="http://127.0.0.1:$SEATING_PORT" \
        GATEWAY_HTTP_ADDR="127.0.0.1:$GATEWAY_PORT" \
        PUBLIC_BASE_URL="http://127.0.0.1:$GATEWAY_PORT" \
        SIGN_UPS_PER_ADDRESS_PER_HOUR=1000000
    # Every gateway worker is an account of its own, all signing up from
    # 127.0.0.1 (the first run creates them; later runs sign them in).
    local knob
    for knob in MAX_SEATS_PER_HOLD HOLD_DURATION_SECS SEATING_DB_POOL_SIZE; do
        [ -z "${!knob:-}" ] || BENCH_ENV+=("$knob=${!knob}")
    done
    bench_migrate_and_seed
    # Sign-in failures of an earlier, interrupted run would still count
    # against 127.0.0.1 for a quarter of an hour.
    psql "${BENCH_DATABASE_URL_PREFIX}gateway" -X -q -c "DELETE FROM auth_throttle" </dev/null >/dev/null ||
        die "cannot reset the bench gateway's sign-in throttle"

    log "starting catalog on 127.0.0.1:$CATALOG_PORT, seating on 127.0.0.1:$SEATING_PORT and gateway on 127.0.0.1:$GATEWAY_PORT (logs in $RUN_DIR)"
    start catalog "${BENCH_ENV[@]}" "$BIN" catalog
    wait_for catalog tcp_open 127.0.0.1 "$CATALOG_PORT"
    start seating "${BENCH_ENV[@]}" "$BIN" seating
    wait_for seating tcp_open 127.0.0.1 "$SEATING_PORT"
    start gateway "${BENCH_ENV[@]}" "$BIN" gateway
    wait_for gateway gateway_healthy

    local info
    info=$(bench_info_fd "$@")
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
        --watch "gateway=$(pid_of gateway),seating=$(pid_of seating),catalog=$(pid_of catalog),postgres=postgres,nats=nats-server" \
        "$@" || status=$?
    printf '\nload average after: %s\n' "$(load_average)" >&"$info"

    bench_finish
    return "$status"
}

main "$@"
