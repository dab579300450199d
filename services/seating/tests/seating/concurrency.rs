//! Many clients racing for overlapping seats, on one seating instance and on
//! two instances sharing one database: a seat is never held by two live
//! holds, and the seats held are exactly the seats granted to the winners.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use proto::seating::v1 as pb;
use tonic::Code;

use crate::harness::{Client, Fixture, connect, eventually, fixture, fixture_with};

const CLIENTS: usize = 64;
const ROUNDS: usize = 20;

/// 2–4 adjacent seats in rows A–B (16 seats): 64 clients asking for ~3
/// seats each guarantee heavy overlap.
fn wish(round: usize, client: usize) -> Vec<String> {
    let random = uuid::Uuid::new_v4();
    let bytes = random.as_bytes();
    let len = 2 + (bytes[0] as usize % 3);
    let row = if (bytes[1] as usize + round + client).is_multiple_of(2) {
        "A"
    } else {
        "B"
    };
    let first = 1 + (bytes[2] as usize % (8 - len + 1));
    (first..first + len).map(|n| format!("{row}{n}")).collect()
}

async fn race(f: &Fixture, clients: &[Client]) {
    let pool = f.seating.pool();
    let mut total_winners = 0;
    for round in 0..ROUNDS {
        let mut attempts = tokio::task::JoinSet::new();
        for i in 0..CLIENTS {
            let mut client = clients[i % clients.len()].clone();
            let showtime_id = f.showtime_id.clone();
            let seats = wish(round, i);
            attempts.spawn(async move {
                let user = format!("user-{round}-{i}");
                let result = client
                    .hold_seats(pb::HoldSeatsRequest {
                        showtime_id,
                        seats: seats.clone(),
                        user_id: user.clone(),
                    })
                    .await;
                (user, seats, result)
            });
        }
        let mut granted: BTreeMap<String, String> = BTreeMap::new(); // seat -> hold
        let mut winners = Vec::new();
        while let Some(joined) = attempts.join_next().await {
            let (user, seats, result) = joined.expect("the client task");
            match result {
                Ok(hold) => {
                    let hold = hold.into_inner();
                    let held: Vec<String> = hold.seats.iter().map(|s| s.label.clone()).collect();
                    assert_eq!(held, seats, "a winner holds exactly what it asked for");
                    for seat in &seats {
                        if let Some(other) = granted.insert(seat.clone(), hold.id.clone()) {
                            panic!(
                                "round {round}: {seat} granted to holds {other} and {}",
                                hold.id
                            );
                        }
                    }
                    winners.push((user, hold.id));
                }
                Err(status) => {
                    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
                }
            }
        }
        assert!(!winners.is_empty(), "someone wins every round");
        total_winners += winners.len();

        // The database agrees: the seats held by live holds are exactly the
        // winners' seats, each by the winning hold.
        let rows: Vec<(String, uuid::Uuid)> = sqlx::query_as(
            "SELECT label, hold_id FROM seats WHERE hold_id IS NOT NULL AND held_until > $1",
        )
        .bind(f.clock_now())
        .fetch_all(pool)
        .await
        .unwrap();
        let in_db: BTreeMap<String, String> =
            rows.into_iter().map(|(l, h)| (l, h.to_string())).collect();
        assert_eq!(in_db, granted, "round {round}: database and winners agree");
        let live_holds: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM holds WHERE status = 'active' AND held_until > $1",
        )
        .bind(f.clock_now())
        .fetch_one(pool)
        .await
        .unwrap();
        assert_eq!(live_holds as usize, winners.len());
        // And so does the API.
        let held: BTreeSet<String> = f.seats_in(pb::SeatState::Held).await.into_iter().collect();
        assert_eq!(held, granted.keys().cloned().collect::<BTreeSet<_>>());

        // Winners let go, concurrently, for the next round.
        let mut releases = tokio::task::JoinSet::new();
        for (n, (user, hold_id)) in winners.into_iter().enumerate() {
            let mut client = clients[n % clients.len()].clone();
            releases.spawn(async move {
                client
                    .release_hold(pb::ReleaseHoldRequest {
                        hold_id,
                        user_id: user,
                    })
                    .await
                    .expect("the winner releases its hold");
            });
        }
        while let Some(joined) = releases.join_next().await {
            joined.unwrap();
        }
        assert!(f.seats_in(pb::SeatState::Held).await.is_empty());
    }
    assert!(total_winners >= ROUNDS);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_clients_never_get_the_same_seat() {
    let f = fixture().await;
    f.seat_map("").await; // materialise once; the race is about holds
    let clients: Vec<Client> = (0..8).map(|_| f.client.clone()).collect();
    race(&f, &clients).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_clients_never_get_the_same_seat_across_two_replicas() {
    let f = fixture().await;
    let replica = f.seating.spawn_replica(Arc::new(f.clock.clone())).await;
    let second = connect(&replica.url).await;
    // Both replicas race to materialise the showtime too.
    let (mut first, mut other) = (f.client.clone(), second.clone());
    let (a, b) = tokio::join!(
        first.get_seat_map(pb::GetSeatMapRequest {
            showtime_id: f.showtime_id.clone(),
            user_id: String::new(),
        }),
        other.get_seat_map(pb::GetSeatMapRequest {
            showtime_id: f.showtime_id.clone(),
            user_id: String::new(),
        })
    );
    assert_eq!(a.unwrap().into_inner().seats.len(), 40);
    assert_eq!(b.unwrap().into_inner().seats.len(), 40);
    race(&f, &[f.client.clone(), second]).await;
}

/// When a premiere opens, a crowd loads its seat map at once. Their reads
/// take at most `SEATING_MAP_READS` of the pool's connections and queue for
/// the rest, so the holds that decide who gets a seat still find a
/// connection. Here twenty reads are stuck behind a table lock: two of
/// them hold connections, twelve more connections can still be taken, and
/// once the lock goes every read answers the whole map.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_crowd_reading_the_seat_map_leaves_connections_for_holds() {
    const MAP_READS: u32 = 2;
    const CROWD: usize = 20;
    let f = fixture_with(|s| s.seating_map_reads = MAP_READS).await;
    f.seat_map("").await; // materialised and known before the crowd comes
    let pool = f.seating.pool().clone();
    let lock = f.seating.lock_seats().await;

    let mut crowd = tokio::task::JoinSet::new();
    for _ in 0..CROWD {
        let mut client = f.client.clone();
        let showtime_id = f.showtime_id.clone();
        crowd.spawn(async move {
            client
                .get_seat_map(pb::GetSeatMapRequest {
                    showtime_id,
                    user_id: String::new(),
                })
                .await
        });
    }
    eventually("the first seat-map reads reach the lock", || async {
        f.seating.seat_maps_waiting().await >= i64::from(MAP_READS)
    })
    .await;
    // Time for more reads to reach the database, were they let through.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(
        f.seating.seat_maps_waiting().await,
        i64::from(MAP_READS),
        "only SEATING_MAP_READS seat-map queries run at once"
    );

    // Of the pool's 16 connections the crowd holds two; the seating's
    // background tasks may hold a couple; the rest are free.
    let mut free = Vec::new();
    for n in 0..12 {
        let connection = tokio::time::timeout(std::time::Duration::from_secs(3), pool.acquire())
            .await
            .unwrap_or_else(|_| panic!("connection {n} is free while the crowd waits"))
            .expect("a pooled connection");
        free.push(connection);
    }
    drop(free);

    lock.unlock().await;
    while let Some(read) = crowd.join_next().await {
        let map = read
            .expect("the read's task")
            .expect("every read is answered once the lock goes")
            .into_inner();
        assert_eq!(map.seats.len(), 40);
    }
}
