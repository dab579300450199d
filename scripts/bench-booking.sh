#!/usr/bin/env bash
#
# scripts/bench-booking.sh — the booking scenarios of issue #8, end to end:
# a rush on one showtime, then steady booking, each followed by the
# invariant checks in the services' own databases.
#
#   scripts/bench-booking.sh [LOADGEN FLAGS FOR BOTH SCENARIOS...]
#
# Builds `bookmyseat` and `loadgen` (release), makes sure PostgreSQL and NATS
# answer (scripts/stack.sh), recreates databases of its own (migrate + seed),
# starts all six roles — catalog, seating, payments, notifier, analytics,
# gateway — as separate processes on ports of their own (as operators run
# them, and as the e2e tests do), with the simulated payment provider (no
# Stripe key) and the notifier writing emails to a folder, runs
# `loadgen rush` and then `loadgen booking` against the gateway, prints the
# figures and the machine, and stops what it started. Everything runs on
# this machine; on a 2-core machine the load generator shares the CPU with
# six services and PostgreSQL, so the figures are what one small box does in
# total.
#
# Knobs (environment):
#   BENCH_RUSH_USERS       buyers racing for one showtime        (default 1000)
#   BENCH_RUSH_MAX_SEATS   most seats per rush buyer             (default 4)
#   BENCH_RUSH_PAY_AFTER   a rush winner's time from its hold to
#                          checking out and paying               (default 2s)
#   BENCH_WORKERS          steady-booking workers (closed loop)  (default 32)
#   BENCH_DURATION         steady booking, measured time         (default 20s)
#   BENCH_WARMUP           steady booking, uncounted warm-up     (default 3s)
#   BENCH_PRIME            steady booking first runs this long unmeasured,
#                          then every bench database is analysed, so the
#                          measured run meets tables with rows and
#                          statistics, as a running deployment has them
#                          (see bench_analyze in bench-lib.sh); 0 skips
#                          both                                  (default 5s)
#   BENCH_PRIME_BOOKINGS   priming repeats (up to 5 rounds) until the
#                          bench holds this many bookings      (default 300)
#   BENCH_SETTLE           longest wait for bookings and emails before the
#                          invariants are judged                 (default 60s)
#   BENCH_SCENARIOS        rush,booking                          (default both)
#   BENCH_PROFILE          release, or debug to check the scenarios where a
#                          release build takes too long (debug figures are
#                          not benchmarks)                       (default release)
#   BENCH_FRESH            1: drop this benchmark's databases first, so the
#                          rush finds its showtime unsold and the invariants
#                          read this run only; 0: keep them      (default 1)
#   BENCH_EVENTS_PREFIX    EVENTS_PREFIX of the started roles    (default benchbk)
#   BENCH_RUST_LOG         RUST_LOG of the started roles; warn,tower_http=info
#                          adds a line per gateway request with its latency
#                          (logs kept in the printed folder)     (default warn)
#   BENCH_CATALOG_PORT, BENCH_SEATING_PORT, BENCH_PAYMENTS_PORT,
#   BENCH_PAYMENTS_HTTP_PORT, BENCH_ANALYTICS_PORT, BENCH_GATEWAY_PORT,
#   BENCH_SEATING_METRICS_PORT, BENCH_GATEWAY_METRICS_PORT
#                          first port tried for each (defaults 20251, 20252,
#                          20253, 8283, 20254, 8280, 9474; the next free one
#                          is used)
#   BENCH_DATABASE_URL_PREFIX   each service's database is this plus its name
#                          (default postgres://postgres@$PGHOST:$PGPORT/bookmyseat_benchbk_;
#                          not the other benchmarks' databases, which keep
#                          rows the invariants would judge)
#   CARGO_TARGET_DIR       honoured, as cargo does
# Extra arguments go to both `loadgen rush` and `loadgen booking`, e.g.
#   scripts/bench-booking.sh --timeout 20s
#
# Nothing here reaches a running `make up`: the databases, ports and the
# NATS subject prefix are this benchmark's own.

set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LOG_PREFIX=bench-booking
BENCH_DATABASE_URL_PREFIX=${BENCH_DATABASE_URL_PREFIX:-postgres://postgres@${PGHOST:-127.0.0.1}:${PGPORT:-5432}/bookmyseat_benchbk_}
# shellcheck source=scripts/lib.sh
source "$ROOT/scripts/lib.sh"
# shellcheck source=scripts/bench-lib.sh
source "$ROOT/scripts/bench-lib.sh"

BENCH_RUSH_USERS=${BENCH_RUSH_USERS:-1000}
BENCH_RUSH_PAY_AFTER=${BENCH_RUSH_PAY_AFTER:-2s}
BENCH_RUSH_MAX_SEATS=${BENCH_RUSH_MAX_SEATS:-4}
BENCH_WORKERS=${BENCH_WORKERS:-32}
BENCH_DURATION=${BENCH_DURATION:-20s}
BENCH_WARMUP=${BENCH_WARMUP:-3s}
BENCH_SETTLE=${BENCH_SETTLE:-60s}
BENCH_PRIME=${BENCH_PRIME:-5s}
BENCH_PRIME_BOOKINGS=${BENCH_PRIME_BOOKINGS:-300}
BENCH_SCENARIOS=${BENCH_SCENARIOS:-rush,booking}
BENCH_FRESH=${BENCH_FRESH:-1}
BENCH_EVENTS_PREFIX=${BENCH_EVENTS_PREFIX:-benchbk}

# next_port START TAKEN...: the first free port from START that is not TAKEN.
next_port() {
    local port
    port=$(free_port "$1")
    shift
    while [[ " $* " == *" $port "* ]]; do port=$(free_port $((port + 1))); done
    echo "$port"
}

# drop_databases: this benchmark's six databases, gone (they are recreated
# by migrate). Refuses a prefix that does not name bench databases.
drop_databases() {
    local maintenance=${BENCH_DATABASE_URL_PREFIX%/*}/postgres name service
    name=${BENCH_DATABASE_URL_PREFIX##*/}
    [[ "$name" == *bench* ]] || die "BENCH_FRESH=1 drops databases; BENCH_DATABASE_URL_PREFIX must name bench databases (…bench…), not ${name}*"
    have psql || die "psql is needed to recreate the bench databases (apt-get install postgresql-client), or set BENCH_FRESH=0"
    for service in "${SERVICES_WITH_DATABASES[@]}"; do
        psql "$maintenance" -X -q -c "DROP DATABASE IF EXISTS \"$name$service\" WITH (FORCE)" </dev/null >/dev/null ||
            die "cannot drop the bench database $name$service"
    done
}

# metrics_of ROLE PORT: the /metrics text ROLE serves on PORT; fails, after
# saying so on stdout, when it does not answer.
metrics_of() {
    curl -fsS --max-time 5 "http://127.0.0.1:$2/metrics" || {
        echo "$1's metrics did not answer (port $2)"
        return 1
    }
}

# hold_phases: how long seating's holds waited for a pooled connection and
# spent in the database, from its bookmyseat_hold_phase_duration_seconds
# histogram: how many holds finished within each bucket, up to the slowest.
# A hold tail shows here as database time (the showtime's row lock, with
# many holds at once) or as connection time (a pool too small).
hold_phases() {
    local text
    text=$(metrics_of seating "$SEATING_METRICS_PORT") || { echo "seating hold phases: $text"; return 0; }
    awk '
        /^bookmyseat_hold_phase_duration_seconds_bucket/ {
            match($0, /phase="[a-z]+"/); phase = substr($0, RSTART + 7, RLENGTH - 8)
            match($0, /le="[^"]+"/); le = substr($0, RSTART + 4, RLENGTH - 5)
            n = ++buckets[phase]; bound[phase, n] = le; count[phase, n] = $NF; any = 1
        }
        END {
            if (!any) { print "seating hold phases: no holds recorded"; exit }
            split("connection database", order)
            for (i = 1; i <= 2; i++) {
                p = order[i]; if (!(p in buckets)) continue
                all = count[p, buckets[p]]; text = ""; below = 0
                for (b = 1; b <= buckets[p]; b++) {
                    if (count[p, b] == 0) continue
                    text = text (text == "" ? "" : ", ") (bound[p, b] == "+Inf" ? "over " below : "<= " bound[p, b] * 1000) " ms: " count[p, b]
                    below = bound[p, b] * 1000
                    if (count[p, b] == all) break
                }
                printf "seating hold phase %s, holds done within: %s (of %d)\n", p, text, all
            }
        }' <<<"$text"
}

# session_lookups: how many sessions the gateway looked up in its database
# and in how many queries (lookups arriving together share one; see
# services/gateway/src/session_lookups.rs). Sessions found in the gateway's
# cache, such as those it started at sign-in, are in neither figure.
session_lookups() {
    local text
    text=$(metrics_of gateway "$GATEWAY_METRICS_PORT") || { echo "gateway session lookups: $text"; return 0; }
    awk '
        /^bookmyseat_gateway_session_lookups_total / { lookups = $NF }
        /^bookmyseat_gateway_session_lookup_queries_total / { queries = $NF }
        END {
            if (queries == 0) { print "gateway session lookups: none reached the database"; exit }
            printf "gateway session lookups: %d sessions looked up in the database by %d queries (%.1f a query)\n", lookups, queries, lookups / queries
        }' <<<"$text"
}

main() {
    # The simulated provider needs no Stripe key; emails go to a folder.
    unset STRIPE_SECRET_KEY STRIPE_WEBHOOK_SECRET SMTP_URL
    bench_prepare
    CATALOG_PORT=$(next_port "${BENCH_CATALOG_PORT:-20251}")
    SEATING_PORT=$(next_port "${BENCH_SEATING_PORT:-20252}" "$CATALOG_PORT")
    PAYMENTS_PORT=$(next_port "${BENCH_PAYMENTS_PORT:-20253}" "$CATALOG_PORT" "$SEATING_PORT")
    ANALYTICS_PORT=$(next_port "${BENCH_ANALYTICS_PORT:-20254}" "$CATALOG_PORT" "$SEATING_PORT" "$PAYMENTS_PORT")
    PAYMENTS_HTTP_PORT=$(next_port "${BENCH_PAYMENTS_HTTP_PORT:-8283}")
    GATEWAY_PORT=$(next_port "${BENCH_GATEWAY_PORT:-8280}" "$PAYMENTS_HTTP_PORT")
    SEATING_METRICS_PORT=$(next_port "${BENCH_SEATING_METRICS_PORT:-9474}" "$PAYMENTS_HTTP_PORT" "$GATEWAY_PORT")
    GATEWAY_METRICS_PORT=$(next_port "${BENCH_GATEWAY_METRICS_PORT:-9475}" "$PAYMENTS_HTTP_PORT" "$GATEWAY_PORT" "$SEATING_METRICS_PORT")
    MAIL_DIR="$RUN_DIR/mail"

    # No STRIPE_SECRET_KEY: the simulated provider. No SMTP_URL: emails go
    # to MAIL_DIR as files (the notifier records each in its database).
    bench_env \
        EVENTS_PREFIX="$BENCH_EVENTS_PREFIX" \
        NOTIFIER_OUTBOX_DIR="$MAIL_DIR" \
        CATALOG_GRPC_ADDR="127.0.0.1:$CATALOG_PORT" \
        CATALOG_URL="http://127.0.0.1:$CATALOG_PORT" \
        SEATING_GRPC_ADDR="127.0.0.1:$SEATING_PORT" \
        SEATING_CATALOG_URL="http://127.0.0.1:$CATALOG_PORT" \
        SEATING_URL="http://127.0.0.1:$SEATING_PORT" \
        PAYMENTS_GRPC_ADDR="127.0.0.1:$PAYMENTS_PORT" \
        PAYMENTS_HTTP_ADDR="127.0.0.1:$PAYMENTS_HTTP_PORT" \
        PAYMENTS_PUBLIC_URL="http://127.0.0.1:$PAYMENTS_HTTP_PORT" \
        PAYMENTS_URL="http://127.0.0.1:$PAYMENTS_PORT" \
        PAYMENTS_CATALOG_URL="http://127.0.0.1:$CATALOG_PORT" \
        PAYMENTS_SEATING_URL="http://127.0.0.1:$SEATING_PORT" \
        ANALYTICS_GRPC_ADDR="127.0.0.1:$ANALYTICS_PORT" \
        ANALYTICS_URL="http://127.0.0.1:$ANALYTICS_PORT" \
        GATEWAY_HTTP_ADDR="127.0.0.1:$GATEWAY_PORT" \
        PUBLIC_BASE_URL="http://127.0.0.1:$GATEWAY_PORT" \
        SIGN_UPS_PER_ADDRESS_PER_HOUR=1000000
    # Every buyer is an account of its own, all signing up from 127.0.0.1.
    if [ "$BENCH_FRESH" = 1 ]; then
        log "dropping this benchmark's databases (BENCH_FRESH=1)"
        drop_databases
    fi
    bench_migrate_and_seed
    # Sign-in failures of an earlier, interrupted run would still count
    # against 127.0.0.1 for a quarter of an hour.
    psql "${BENCH_DATABASE_URL_PREFIX}gateway" -X -q -c "DELETE FROM auth_throttle" </dev/null >/dev/null ||
        die "cannot reset the bench gateway's sign-in throttle"

    log "starting catalog, seating, payments, notifier, analytics and gateway (http://127.0.0.1:$GATEWAY_PORT); EVENTS_PREFIX=$BENCH_EVENTS_PREFIX; logs in $RUN_DIR"
    start catalog "${BENCH_ENV[@]}" "$BIN" catalog
    wait_for catalog tcp_open 127.0.0.1 "$CATALOG_PORT"
    # Seating and the gateway alone serve their metrics, for the hold phases
    # and the session lookups after the rush (env: the later METRICS_ADDR
    # wins over bench_env's off).
    start seating "${BENCH_ENV[@]}" METRICS_ADDR="127.0.0.1:$SEATING_METRICS_PORT" "$BIN" seating
    wait_for seating tcp_open 127.0.0.1 "$SEATING_PORT"
    start payments "${BENCH_ENV[@]}" "$BIN" payments
    wait_for payments tcp_open 127.0.0.1 "$PAYMENTS_PORT"
    wait_for payments tcp_open 127.0.0.1 "$PAYMENTS_HTTP_PORT"
    start notifier "${BENCH_ENV[@]}" "$BIN" notifier
    start analytics "${BENCH_ENV[@]}" "$BIN" analytics
    wait_for analytics tcp_open 127.0.0.1 "$ANALYTICS_PORT"
    start gateway "${BENCH_ENV[@]}" METRICS_ADDR="127.0.0.1:$GATEWAY_METRICS_PORT" "$BIN" gateway
    wait_for gateway gateway_healthy
    # The consumers bind their durable subscriptions at start-up.
    sleep 2
    alive notifier || { tail_log "$RUN_DIR/notifier.log"; die "the notifier exited during start-up"; }

    local info common status=0
    info=$(bench_info_fd "$@")
    common=(
        --gateway "http://127.0.0.1:$GATEWAY_PORT"
        --seating-database-url "${BENCH_DATABASE_URL_PREFIX}seating"
        --payments-database-url "${BENCH_DATABASE_URL_PREFIX}payments"
        --notifier-database-url "${BENCH_DATABASE_URL_PREFIX}notifier"
        --settle "$BENCH_SETTLE"
    )
    {
        echo
        machine
        echo "build: $BENCH_PROFILE"
        echo "load average before: $(load_average)"
        echo "command: scripts/bench-booking.sh $*  (loadgen rush --users $BENCH_RUSH_USERS --max-seats $BENCH_RUSH_MAX_SEATS --pay-after $BENCH_RUSH_PAY_AFTER; loadgen booking --concurrency $BENCH_WORKERS --duration $BENCH_DURATION --warmup $BENCH_WARMUP, primed $BENCH_PRIME; --settle $BENCH_SETTLE)"
        echo
    } >&"$info"
    if [[ ",$BENCH_SCENARIOS," == *,rush,* ]]; then
        echo "=== rush ===" >&"$info"
        "$LOADGEN" rush "${common[@]}" \
            --users "$BENCH_RUSH_USERS" \
            --max-seats "$BENCH_RUSH_MAX_SEATS" \
            --pay-after "$BENCH_RUSH_PAY_AFTER" \
            "$@" || status=$?
        hold_phases >&"$info"
        session_lookups >&"$info"
        echo >&"$info"
    fi
    if [[ ",$BENCH_SCENARIOS," == *,booking,* ]] && [ "$status" -eq 0 ]; then
        echo "=== steady booking ===" >&"$info"
        if [ "$BENCH_PRIME" != 0 ] && [ "$BENCH_PRIME" != 0s ]; then
            # Statistics taken over a few dozen rows plan scans that the
            # measured run then pays for thousands of times: a first booking
            # on a fresh system can take seconds, so priming goes on until
            # the tables hold BENCH_PRIME_BOOKINGS bookings (at most 5 rounds).
            local round booked=0
            for round in 1 2 3 4 5; do
                log "priming, round $round: $BENCH_PRIME of steady booking, unmeasured (output in $RUN_DIR/prime.log)"
                "$LOADGEN" booking "${common[@]}" \
                    --concurrency "$BENCH_WORKERS" \
                    --duration "$BENCH_PRIME" \
                    --warmup 0s \
                    "$@" >>"$RUN_DIR/prime.log" 2>&1 || { tail_log "$RUN_DIR/prime.log"; die "the priming run failed"; }
                booked=$(psql "${BENCH_DATABASE_URL_PREFIX}seating" -X -A -t -q -c "SELECT count(*) FROM bookings" </dev/null) ||
                    die "cannot count the bench bookings (psql)"
                [ "$booked" -lt "$BENCH_PRIME_BOOKINGS" ] || break
            done
            bench_analyze
            echo "primed with $round round(s) of $BENCH_PRIME of steady booking ($booked bookings), then every database analysed (BENCH_PRIME, BENCH_PRIME_BOOKINGS)" >&"$info"
        fi
        "$LOADGEN" booking "${common[@]}" \
            --concurrency "$BENCH_WORKERS" \
            --duration "$BENCH_DURATION" \
            --warmup "$BENCH_WARMUP" \
            --watch "gateway=$(pid_of gateway),seating=$(pid_of seating),payments=$(pid_of payments),notifier=$(pid_of notifier),analytics=$(pid_of analytics),catalog=$(pid_of catalog),postgres=postgres,nats=nats-server" \
            "$@" || status=$?
    fi
    printf '\nload average after: %s\n' "$(load_average)" >&"$info"
    printf 'emails written: %s\n' "$(find "$MAIL_DIR" -name '*.eml' 2>/dev/null | wc -l)" >&"$info"

    bench_finish
    return "$status"
}

main "$@"
