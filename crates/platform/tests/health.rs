//! The health check's view of the database, against real PostgreSQL.

use platform::grpc::Dependencies;

/// Every pooled connection busy (a rush queues them all on one showtime) is
/// a busy database, not an unreachable one: the replica keeps serving. A
/// closed pool, or a database that cannot be reached, is still reported as
/// not serving.
#[tokio::test]
async fn a_saturated_pool_is_busy_not_down() {
    let db = test_support::TestDb::create("platform_health").await;
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(std::time::Duration::from_secs(5))
        .connect(&db.url)
        .await
        .expect("a pool");
    let dependencies = Dependencies {
        pool: pool.clone(),
        nats: None,
    };
    assert!(dependencies.reachable().await, "an idle pool answers");

    let busy = pool.acquire().await.expect("the pool's only connection");
    assert!(
        dependencies.reachable().await,
        "with every pooled connection busy the database still answers"
    );
    drop(busy);
    pool.close().await;
    assert!(
        !dependencies.reachable().await,
        "a closed pool serves nothing"
    );

    let nowhere = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect_lazy("postgres://postgres@127.0.0.1:1/nothing")
        .expect("a lazy pool");
    let unreachable = Dependencies {
        pool: nowhere,
        nats: None,
    };
    assert!(
        !unreachable.reachable().await,
        "a database nobody answers for is unreachable"
    );
}
