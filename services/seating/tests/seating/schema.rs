//! Seating's schema as its migrations leave it.

/// Every index earns its writes: no plain index (not unique, not partial)
/// has as its columns the leading columns of another index of the same
/// table, which answers the same lookups. `booking_seats_by_booking` had
/// become one when the primary key turned into (booking_id, label).
#[tokio::test]
async fn no_index_repeats_the_leading_columns_of_another() {
    let db = test_support::TestDb::create("seating_schema").await;
    seating::migrate(&db.pool).await.expect("migrations apply");
    let redundant: Vec<(String, String)> = sqlx::query_as(
        "SELECT a.indexrelid::regclass::text, b.indexrelid::regclass::text \
         FROM pg_index a \
         JOIN pg_index b ON a.indrelid = b.indrelid AND a.indexrelid <> b.indexrelid \
         JOIN pg_class t ON t.oid = a.indrelid \
         JOIN pg_namespace n ON n.oid = t.relnamespace \
         WHERE n.nspname = 'public' AND NOT a.indisunique \
           AND a.indpred IS NULL AND b.indpred IS NULL \
           AND a.indexprs IS NULL AND b.indexprs IS NULL \
           AND a.indnkeyatts <= b.indnkeyatts \
           AND (a.indkey::int2[])[0:a.indnkeyatts - 1] = (b.indkey::int2[])[0:a.indnkeyatts - 1]",
    )
    .fetch_all(&db.pool)
    .await
    .expect("the catalog answers");
    assert!(
        redundant.is_empty(),
        "(index, the index that makes it redundant): {redundant:?}"
    );
}
