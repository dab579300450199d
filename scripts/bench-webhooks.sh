#!/usr/bin/env bash
#
# scripts/bench-webhooks.sh — the payments webhook benchmark of issue #5, end
# to end.
#
#   scripts/bench-webhooks.sh [LOADGEN WEBHOOKS FLAGS...]
#
# Builds `bookmyseat` and `loadgen` in release mode, makes sure PostgreSQL
# and NATS answer (scripts/stack.sh), prepares databases of its own
# (migrate + seed), starts `bookmyseat catalog`, `bookmyseat seating` and
# `bookmyseat payments` as three processes on ports of their own, with an
# EVENTS_PREFIX of their own (so a running `make up` and its streams are left
# alone) and payments pointed at the Stripe-shaped server `loadgen webhooks`
# runs itself (STRIPE_API_BASE; test keys only, nothing leaves this
# machine). loadgen holds one seat per webhook, creates the checkouts, then
# posts signed `checkout.session.completed` webhooks to payments and times
# each to its `bookings.confirmed`. The script prints the machine it ran on
# and stops what it started. On a 2-core machine the load generator shares
# the CPU with payments, seating, catalog, PostgreSQL and NATS: the figures
# are what one small box does in total.
#
# Knobs (environment):
#   BENCH_WEBHOOKS         measured webhooks per concurrency level (default 5000)
#   BENCH_WARMUP_WEBHOOKS  uncounted webhooks sent first             (default 500)
#   BENCH_CONCURRENCY      connections posting webhooks (a list: levels) (default 32)
#   BENCH_DURATION         upper bound of each measured run           (default 60s)
#   BENCH_REPLAYS          webhooks replayed for the exactly-once check (default 100)
#   BENCH_PRIME_WEBHOOKS   webhooks sent first in a run of their own, unmeasured,
#                          after which every bench database is analysed, so the
#                          measured run meets tables with rows and statistics,
#                          as a running deployment has them (bench_analyze in
#                          bench-lib.sh); 0 skips both          (default 1000)
#   BENCH_SHOWTIMES        showtimes the holds are spread over        (default 200)
#   BENCH_EVENTS_PREFIX    EVENTS_PREFIX of the started roles         (default benchwh)
#   BENCH_CATALOG_PORT     catalog's gRPC port                        (default 20161)
#   BENCH_SEATING_PORT     seating's gRPC port                        (default 20162)
#   BENCH_PAYMENTS_PORT    payments' gRPC port                        (default 20163)
#   BENCH_PAYMENTS_HTTP_PORT payments' HTTP port (the webhook)        (default 8183)
#   BENCH_STRIPE_PORT      loadgen's Stripe-shaped server             (default 12111)
#   BENCH_DATABASE_URL_PREFIX    each service's bench database is this plus its name
#                                (default postgres://postgres@$PGHOST:$PGPORT/bookmyseat_bench_)
#   CARGO_TARGET_DIR             honoured, as cargo does
#   PAYMENTS_DB_POOL_SIZE, SEATING_DB_POOL_SIZE
#                                passed to payments / seating when set (their defaults)
# Extra arguments go to `loadgen webhooks` as they are, e.g.
#   scripts/bench-webhooks.sh --json
#   scripts/bench-webhooks.sh --rate 300   (paced: webhook → booking latency
#                                          below capacity, not a queue)
#
# Every run books BENCH_WARMUP_WEBHOOKS + BENCH_WEBHOOKS seats (per level) in
# the bench seating database for good; when loadgen reports too few free
# seats, drop bookmyseat_bench_seating (and _payments) and run again.

set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LOG_PREFIX=bench-webhooks
# shellcheck source=scripts/lib.sh
source "$ROOT/scripts/lib.sh"
# shellcheck source=scripts/bench-lib.sh
source "$ROOT/scripts/bench-lib.sh"

BENCH_WEBHOOKS=${BENCH_WEBHOOKS:-5000}
BENCH_WARMUP_WEBHOOKS=${BENCH_WARMUP_WEBHOOKS:-500}
BENCH_CONCURRENCY=${BENCH_CONCURRENCY:-32}
BENCH_DURATION=${BENCH_DURATION:-60s}
BENCH_REPLAYS=${BENCH_REPLAYS:-100}
BENCH_PRIME_WEBHOOKS=${BENCH_PRIME_WEBHOOKS:-1000}
BENCH_SHOWTIMES=${BENCH_SHOWTIMES:-200}
BENCH_EVENTS_PREFIX=${BENCH_EVENTS_PREFIX:-benchwh}
# Test keys: payments only ever talks to loadgen's fake Stripe.
STRIPE_SECRET_KEY=sk_test_bench
STRIPE_WEBHOOK_SECRET=whsec_bench

# next_port PORT TAKEN...: the first free port from PORT upwards that is none
# of TAKEN (ports picked earlier in this run and not yet listened on).
next_port() {
    local port taken
    port=$(free_port "$1")
    shift
    for taken in "$@"; do
        if [ "$port" = "$taken" ]; then
            port=$(next_port $((port + 1)) "$@")
            break
        fi
    done
    echo "$port"
}

main() {
    bench_prepare
    CATALOG_PORT=$(next_port "${BENCH_CATALOG_PORT:-20161}")
    SEATING_PORT=$(next_port "${BENCH_SEATING_PORT:-20162}" "$CATALOG_PORT")
    PAYMENTS_PORT=$(next_port "${BENCH_PAYMENTS_PORT:-20163}" "$CATALOG_PORT" "$SEATING_PORT")
    PAYMENTS_HTTP_PORT=$(next_port "${BENCH_PAYMENTS_HTTP_PORT:-8183}" "$CATALOG_PORT" "$SEATING_PORT" "$PAYMENTS_PORT")
    STRIPE_PORT=$(next_port "${BENCH_STRIPE_PORT:-12111}" "$CATALOG_PORT" "$SEATING_PORT" "$PAYMENTS_PORT" "$PAYMENTS_HTTP_PORT")

    # METRICS_ADDR=off: three roles on one machine would all want its
    # default port.
    bench_env \
        METRICS_ADDR=off \
        EVENTS_PREFIX="$BENCH_EVENTS_PREFIX" \
        CATALOG_GRPC_ADDR="127.0.0.1:$CATALOG_PORT" \
        SEATING_GRPC_ADDR="127.0.0.1:$SEATING_PORT" \
        SEATING_CATALOG_URL="http://127.0.0.1:$CATALOG_PORT" \
        PAYMENTS_GRPC_ADDR="127.0.0.1:$PAYMENTS_PORT" \
        PAYMENTS_HTTP_ADDR="127.0.0.1:$PAYMENTS_HTTP_PORT" \
        PAYMENTS_PUBLIC_URL="http://127.0.0.1:$PAYMENTS_HTTP_PORT" \
        PAYMENTS_CATALOG_URL="http://127.0.0.1:$CATALOG_PORT" \
        PAYMENTS_SEATING_URL="http://127.0.0.1:$SEATING_PORT" \
        PUBLIC_BASE_URL="http://127.0.0.1:$PAYMENTS_HTTP_PORT" \
        STRIPE_SECRET_KEY="$STRIPE_SECRET_KEY" \
        STRIPE_WEBHOOK_SECRET="$STRIPE_WEBHOOK_SECRET" \
        STRIPE_API_BASE="http://127.0.0.1:$STRIPE_PORT"
    local knob
    for knob in PAYMENTS_DB_POOL_SIZE SEATING_DB_POOL_SIZE; do
        [ -z "${!knob:-}" ] || BENCH_ENV+=("$knob=${!knob}")
    done
    bench_migrate_and_seed

    log "starting catalog on 127.0.0.1:$CATALOG_PORT, seating on 127.0.0.1:$SEATING_PORT, payments on 127.0.0.1:$PAYMENTS_PORT (gRPC) and 127.0.0.1:$PAYMENTS_HTTP_PORT (webhook); EVENTS_PREFIX=$BENCH_EVENTS_PREFIX; logs in $RUN_DIR"
    start catalog "${BENCH_ENV[@]}" "$BIN" catalog
    wait_for catalog tcp_open 127.0.0.1 "$CATALOG_PORT"
    start seating "${BENCH_ENV[@]}" "$BIN" seating
    wait_for seating tcp_open 127.0.0.1 "$SEATING_PORT"
    start payments "${BENCH_ENV[@]}" "$BIN" payments
    wait_for payments payments_healthy

    local info
    info=$(bench_info_fd "$@")
    {
        echo
        machine
        echo "load average before: $(load_average)"
        echo "command: scripts/bench-webhooks.sh $*  (loadgen webhooks --webhooks $BENCH_WEBHOOKS --warmup-webhooks $BENCH_WARMUP_WEBHOOKS --concurrency $BENCH_CONCURRENCY --duration $BENCH_DURATION --replays $BENCH_REPLAYS --showtimes $BENCH_SHOWTIMES)"
        echo
    } >&"$info"
    local status=0
    local common=(
        --payments-http "http://127.0.0.1:$PAYMENTS_HTTP_PORT"
        --payments "http://127.0.0.1:$PAYMENTS_PORT"
        --seating "http://127.0.0.1:$SEATING_PORT"
        --catalog "http://127.0.0.1:$CATALOG_PORT"
        --nats "${NATS_URL:-nats://127.0.0.1:4222}"
        --events-prefix "$BENCH_EVENTS_PREFIX"
        --stripe-listen "127.0.0.1:$STRIPE_PORT"
        --webhook-secret "$STRIPE_WEBHOOK_SECRET"
        --concurrency "$BENCH_CONCURRENCY"
        --showtimes "$BENCH_SHOWTIMES"
    )
    if [ "$BENCH_PRIME_WEBHOOKS" != 0 ]; then
        log "priming: $BENCH_PRIME_WEBHOOKS webhooks, unmeasured (output in $RUN_DIR/prime.log)"
        "$LOADGEN" webhooks "${common[@]}" \
            --webhooks "$BENCH_PRIME_WEBHOOKS" \
            --warmup-webhooks 0 \
            --duration "$BENCH_DURATION" \
            --replays 0 \
            "$@" >"$RUN_DIR/prime.log" 2>&1 || { tail_log "$RUN_DIR/prime.log"; die "the priming run failed"; }
        bench_analyze
        echo "primed with $BENCH_PRIME_WEBHOOKS webhooks, then every database analysed (BENCH_PRIME_WEBHOOKS)" >&"$info"
    fi
    "$LOADGEN" webhooks "${common[@]}" \
        --webhooks "$BENCH_WEBHOOKS" \
        --warmup-webhooks "$BENCH_WARMUP_WEBHOOKS" \
        --duration "$BENCH_DURATION" \
        --replays "$BENCH_REPLAYS" \
        --watch "payments=$(pid_of payments),seating=$(pid_of seating),catalog=$(pid_of catalog),postgres=postgres,nats=nats-server" \
        "$@" || status=$?
    printf '\nload average after: %s\n' "$(load_average)" >&"$info"

    bench_finish
    return "$status"
}

payments_healthy() { curl -fs -o /dev/null --max-time 2 "http://127.0.0.1:$PAYMENTS_HTTP_PORT/healthz"; }

main "$@"
