//! Test streams are deleted with their owner, so runs leave the shared NATS
//! server as they found it.

#[tokio::test]
async fn test_streams_are_deleted_when_their_owner_drops() {
    let prefix = test_support::events_prefix();
    let streams = test_support::TestStreams::adopt(&prefix).await;
    let client = platform::nats::connect(&test_support::nats_url())
        .await
        .unwrap();
    let jetstream = async_nats::jetstream::new(client);
    let specs = platform::nats::event_streams(&prefix);
    platform::nats::ensure_streams(&jetstream, &specs)
        .await
        .unwrap();
    assert!(jetstream.get_stream(&specs[0].name).await.is_ok());
    drop(streams);
    for spec in &specs {
        assert!(
            jetstream.get_stream(&spec.name).await.is_err(),
            "{} still exists",
            spec.name
        );
    }
}

#[tokio::test]
async fn test_databases_are_dropped_when_their_owner_drops() {
    let db = test_support::TestDb::create("cleanup").await;
    let name = db.name.clone();
    // A connection still in use (as a running service's would be) must not
    // keep the drop from finishing.
    let busy = db.pool.acquire().await.unwrap();
    std::mem::forget(busy);
    drop(db);
    let admin = sqlx::PgPool::connect(&test_support::admin_url())
        .await
        .unwrap();
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(&name)
            .fetch_one(&admin)
            .await
            .unwrap();
    assert!(!exists, "{name} was not dropped");
}
