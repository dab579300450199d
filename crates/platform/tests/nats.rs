//! JetStream stream setup against the real NATS server (`make test` starts
//! one when none is running).

use platform::nats;

#[tokio::test]
async fn ensure_streams_is_idempotent_on_a_real_server() {
    let url = std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into());
    let client = nats::connect(&url)
        .await
        .expect("NATS must be reachable: run `make test`");
    let jetstream = async_nats::jetstream::new(client);
    let prefix = format!("t{}", uuid::Uuid::new_v4().simple());
    let specs = nats::event_streams(&prefix);

    nats::ensure_streams(&jetstream, &specs).await.unwrap();
    nats::ensure_streams(&jetstream, &specs).await.unwrap();

    for spec in &specs {
        let mut stream = jetstream.get_stream(&spec.name).await.unwrap();
        let info = stream.info().await.unwrap();
        assert_eq!(info.config.subjects, spec.subjects);
        jetstream.delete_stream(&spec.name).await.unwrap();
    }
}
