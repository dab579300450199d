#!/usr/bin/env bash
#
# scripts/bench-events.sh — the event consumers' benchmark of issue #6: how
# many `bookings.confirmed` events per second the notifier turns into emails
# at a local SMTP server, and analytics into figures.
#
#   scripts/bench-events.sh [LOADGEN EVENTS FLAGS...]
#
# Builds `bookmyseat` and `loadgen` in release mode, makes sure PostgreSQL,
# NATS and the SMTP sink's Python (aiosmtpd, scripts/stack.sh --smtp) are
# there, starts aiosmtpd on a port of its own tallying each message's
# Message-ID (smtp_sink.Tally),
# then `bookmyseat notifier` (SMTP_URL at that server) and `bookmyseat
# analytics` with an EVENTS_PREFIX of their own (a running `make up` and
# its streams are left alone) and fresh bench databases for both. `loadgen
# events` publishes the events and times each consumer until it has
# acknowledged the last one. Afterwards the script checks what they did:
# one 'sent' delivery per event in the notifier's database, one message per
# event at the SMTP server (each Message-ID once), one booking per event in
# analytics' database.
#
# Knobs (environment):
#   BENCH_EVENTS           events to publish                    (default 5000)
#   BENCH_EVENTS_PREFIX    EVENTS_PREFIX of the started roles   (default benchev)
#   BENCH_SMTP_PORT        the SMTP sink's port                 (default 2525)
#   BENCH_ANALYTICS_PORT   analytics' gRPC port                 (default 20164)
#   BENCH_DATABASE_URL_PREFIX    each service's bench database is this plus its name
#   CARGO_TARGET_DIR             honoured, as cargo does
#   NOTIFIER_DB_POOL_SIZE, ANALYTICS_DB_POOL_SIZE
#                                passed on when set (their defaults)
# Extra arguments go to `loadgen events` as they are, e.g. --json.

set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LOG_PREFIX=bench-events
# shellcheck source=scripts/lib.sh
source "$ROOT/scripts/lib.sh"
# shellcheck source=scripts/bench-lib.sh
source "$ROOT/scripts/bench-lib.sh"

BENCH_EVENTS=${BENCH_EVENTS:-5000}
BENCH_EVENTS_PREFIX=${BENCH_EVENTS_PREFIX:-benchev}
PYTHON="${STACK_DIR:-$ROOT/.stack}/venv/bin/python"

# sql SERVICE QUERY: one value from a bench database.
sql() { psql "$BENCH_DATABASE_URL_PREFIX$1" -X -A -t -q -c "$2" </dev/null; }

main() {
    bench_prepare
    "$ROOT/scripts/stack.sh" ensure --smtp
    have psql || die "psql is needed to check the results (apt-get install postgresql-client)"
    SMTP_PORT=$(free_port "${BENCH_SMTP_PORT:-2525}")
    ANALYTICS_PORT=$(free_port "${BENCH_ANALYTICS_PORT:-20164}")

    bench_env \
        EVENTS_PREFIX="$BENCH_EVENTS_PREFIX" \
        SMTP_URL="smtp://127.0.0.1:$SMTP_PORT" \
        ANALYTICS_GRPC_ADDR="127.0.0.1:$ANALYTICS_PORT"
    local knob
    for knob in NOTIFIER_DB_POOL_SIZE ANALYTICS_DB_POOL_SIZE; do
        [ -z "${!knob:-}" ] || BENCH_ENV+=("$knob=${!knob}")
    done
    bench_migrate_and_seed
    # Counts below are of this run only: start both read sides empty.
    sql notifier "TRUNCATE deliveries, processed_events, dead_letters" >/dev/null
    sql analytics "TRUNCATE bookings, showtimes, refunds, activity, processed_events, dead_letters" >/dev/null

    log "starting the SMTP sink on 127.0.0.1:$SMTP_PORT, notifier and analytics (gRPC 127.0.0.1:$ANALYTICS_PORT); EVENTS_PREFIX=$BENCH_EVENTS_PREFIX; logs in $RUN_DIR"
    # The sink tallies Message-IDs rather than writing a maildir: file
    # writes per message would measure the disk, not the notifier.
    start smtp env PYTHONPATH="$ROOT/crates/test-support" "$PYTHON" -m aiosmtpd -n \
        -l "127.0.0.1:$SMTP_PORT" -c smtp_sink.Tally "$RUN_DIR/tally"
    wait_for smtp tcp_open 127.0.0.1 "$SMTP_PORT"
    start notifier "${BENCH_ENV[@]}" "$BIN" notifier
    start analytics "${BENCH_ENV[@]}" "$BIN" analytics
    wait_for analytics tcp_open 127.0.0.1 "$ANALYTICS_PORT"
    # Both bind their durable consumers at start-up; loadgen needs them bound.
    sleep 2
    alive notifier || { tail_log "$RUN_DIR/notifier.log"; die "the notifier exited during start-up"; }

    local info
    info=$(bench_info_fd "$@")
    {
        echo
        machine
        echo "load average before: $(load_average)"
        echo "command: scripts/bench-events.sh $*  (loadgen events --events $BENCH_EVENTS --consumer notifier-bookings --consumer analytics-bookings)"
        echo
    } >&"$info"
    local status=0
    "$LOADGEN" events \
        --nats "${NATS_URL:-nats://127.0.0.1:4222}" \
        --events-prefix "$BENCH_EVENTS_PREFIX" \
        --events "$BENCH_EVENTS" \
        --consumer notifier-bookings \
        --consumer analytics-bookings \
        "$@" || status=$?
    printf '\nload average after: %s\n' "$(load_average)" >&"$info"

    if [ "$status" -eq 0 ]; then
        local sent received mails booked
        sent=$(sql notifier "SELECT count(*) FROM deliveries WHERE status = 'sent'")
        mails=$(sort -u "$RUN_DIR/tally" | grep -cv '^-$' || true)
        booked=$(sql analytics "SELECT count(*) FROM bookings")
        received=$(wc -l <"$RUN_DIR/tally")
        printf 'checked: %s deliveries sent, %s messages at the SMTP server (%s distinct Message-IDs), %s bookings in analytics (of %s events)\n' \
            "$sent" "$received" "$mails" "$booked" "$BENCH_EVENTS" >&"$info"
        if [ "$sent" != "$BENCH_EVENTS" ] || [ "$received" != "$BENCH_EVENTS" ] || [ "$mails" != "$BENCH_EVENTS" ] || [ "$booked" != "$BENCH_EVENTS" ]; then
            log "error: the consumers did not turn every event into exactly one email and one booking"
            status=1
        fi
    fi
    bench_finish
    return "$status"
}

main "$@"
