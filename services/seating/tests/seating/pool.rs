//! Seating's serving pool: its warm connections are open before the first
//! request needs them (a rush's first holds used to wait for new backends),
//! with the rush's statements already prepared on each.

use std::time::Duration;

async fn config(pool_size: u32, warm: u32) -> (test_support::TestDb, seating::Config) {
    let db = test_support::TestDb::create("seating_pool").await;
    let config = seating::Config {
        seating_grpc_addr: "127.0.0.1:0".to_owned(),
        seating_database_url: db.url.clone(),
        seating_catalog_url: "http://127.0.0.1:1".to_owned(),
        settings: seating::Settings {
            seating_db_pool_size: pool_size,
            seating_db_min_connections: warm,
            ..Default::default()
        },
    };
    (db, config)
}

/// Seating's backends on `db` (all but the one asking), as PostgreSQL
/// counts them once `expected` are open or ten seconds have passed (the
/// pool opens its warm connections in the background), and a moment later
/// still: the count must also stay there.
async fn backends(db: &test_support::TestDb, expected: i64) -> i64 {
    let count = || async {
        sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM pg_stat_activity \
             WHERE datname = $1 AND application_name = 'bookmyseat' \
               AND pid <> pg_backend_pid()",
        )
        .bind(&db.name)
        .fetch_one(&db.pool)
        .await
        .expect("counting backends")
    };
    for _ in 0..100 {
        if count().await == expected {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    count().await
}

#[tokio::test]
async fn the_serving_pool_opens_its_warm_connections_before_any_request() {
    let (db, config) = config(6, 4).await;
    let pool = config.pool().await.expect("a pool");
    assert_eq!(backends(&db, 4).await, 4, "four warm connections");
    assert_eq!(pool.num_idle(), 4, "all of them idle, ready for requests");
    pool.close().await;
}

#[tokio::test]
async fn no_more_warm_connections_than_the_pool_holds() {
    let (db, config) = config(3, 16).await;
    let pool = config.pool().await.expect("a pool, the warm count capped");
    assert_eq!(backends(&db, 3).await, 3, "the whole pool, no more");
    pool.close().await;
}

#[tokio::test]
async fn every_pooled_connection_has_the_seat_map_and_the_hold_prepared() {
    let (db, config) = config(4, 2).await;
    seating::migrate(&db.pool).await.expect("migrations apply");
    let pool = config.pool().await.expect("a pool");
    // Taken together, so each is a different connection.
    let mut first = pool.acquire().await.expect("a connection");
    let mut second = pool.acquire().await.expect("another connection");
    for connection in [&mut *first, &mut *second] {
        let prepared: Vec<String> =
            sqlx::query_scalar("SELECT statement FROM pg_prepared_statements")
                .fetch_all(&mut *connection)
                .await
                .expect("listing prepared statements");
        assert!(
            prepared.iter().any(|s| s == seating::store::SEAT_MAP_QUERY),
            "the seat map is prepared: {prepared:?}"
        );
        assert!(
            prepared.iter().any(|s| s.contains("FROM seating_hold(")),
            "the hold is prepared: {prepared:?}"
        );
    }
    drop((first, second));
    // The warm-up changed nothing.
    let holds: i64 = sqlx::query_scalar("SELECT count(*) FROM holds")
        .fetch_one(&db.pool)
        .await
        .expect("counting holds");
    assert_eq!(holds, 0);
    pool.close().await;
}

#[tokio::test]
async fn a_pool_over_a_database_not_migrated_yet_still_opens() {
    // The warm-up finds no functions there; it is only an optimisation.
    let (_db, config) = config(2, 1).await;
    let pool = config.pool().await.expect("a pool");
    let one: i32 = sqlx::query_scalar("SELECT 1")
        .fetch_one(&pool)
        .await
        .expect("the pool serves");
    assert_eq!(one, 1);
    pool.close().await;
}
