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

/// What production relies on: `bookmyseat migrate` gives every event stream
/// three replicas on a three-node JetStream cluster (turning the single copy
/// a service may have created first into three), a second run changes
/// nothing, asking for more replicas than there are nodes fails with a
/// message, and an event published while one node is down is still stored.
#[tokio::test]
async fn declared_streams_keep_three_copies_on_a_three_node_cluster() {
    let mut cluster = test_support::nats::NatsCluster::start(3).await;
    let client = nats::connect(&cluster.url()).await.expect("the cluster");
    let jetstream = async_nats::jetstream::new(client);
    let specs = nats::event_streams("replicated");

    // A service that starts before the migration creates one copy.
    test_support::eventually("JetStream elects its meta leader", || async {
        nats::ensure_streams(&jetstream, &specs).await.is_ok()
    })
    .await;
    for spec in &specs {
        assert_eq!(replicas(&jetstream, &spec.name).await, (1, 1));
    }

    // The other nodes join JetStream a moment after the meta leader is
    // elected; until then no stream can be placed on three of them ("no
    // suitable peers for placement"). Raising the count is idempotent, and a
    // second run must then succeed at once.
    test_support::eventually("every node joins JetStream", || async {
        nats::declare_streams(&jetstream, &specs, 3).await.is_ok()
    })
    .await;
    nats::declare_streams(&jetstream, &specs, 3).await.unwrap();
    for spec in &specs {
        assert_eq!(
            replicas(&jetstream, &spec.name).await,
            (3, 3),
            "{}: three copies, on three nodes",
            spec.name
        );
    }

    let error = nats::declare_streams(&jetstream, &specs, 4)
        .await
        .expect_err("four replicas on three nodes");
    assert!(
        format!("{error:#}").contains("4 replicas"),
        "the error names the replica count: {error:#}"
    );
    assert!(
        nats::declare_streams(&jetstream, &specs, 0).await.is_err(),
        "zero replicas is refused"
    );

    // One node lost: the other two still form a quorum and store events.
    cluster.servers[0].stop().await;
    let subject = nats::subject("replicated", "bookings.confirmed");
    test_support::eventually("an event is stored with a node down", || async {
        match jetstream.publish(subject.clone(), "b1".into()).await {
            Ok(ack) => ack.await.is_ok(),
            Err(_) => false,
        }
    })
    .await;
}

/// (configured replicas, nodes holding a copy: the leader and its peers).
async fn replicas(jetstream: &async_nats::jetstream::Context, name: &str) -> (usize, usize) {
    let mut stream = jetstream.get_stream(name).await.unwrap();
    let info = stream.info().await.unwrap();
    let nodes: std::collections::HashSet<String> = info
        .cluster
        .iter()
        .flat_map(|c| {
            c.leader
                .iter()
                .cloned()
                .chain(c.replicas.iter().map(|p| p.name.clone()))
        })
        .collect();
    (info.config.num_replicas, nodes.len())
}
