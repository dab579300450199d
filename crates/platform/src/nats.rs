//! NATS and JetStream: connecting with a clear error, and declaring the
//! streams of `bookmyseat.events.v1` idempotently at start-up.
//!
//! Streams are declared by every role that produces or consumes them, with
//! the same settings, so start order does not matter. Tests pass a prefix to
//! get streams of their own on a shared server.

use std::time::Duration;

use anyhow::Context as _;
use async_nats::jetstream::{self, stream};

/// A JetStream stream the system uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamSpec {
    pub name: String,
    pub subjects: Vec<String>,
}

/// The three event streams: `PAYMENTS`, `BOOKINGS`, `ACCOUNTS`. With a
/// non-empty `prefix`, names and subjects are prefixed (`T1_PAYMENTS`,
/// `t1.payments.>`) so parallel tests never share a stream.
pub fn event_streams(prefix: &str) -> Vec<StreamSpec> {
    ["payments", "bookings", "accounts"]
        .iter()
        .map(|domain| StreamSpec {
            name: if prefix.is_empty() {
                domain.to_uppercase()
            } else {
                format!("{}_{}", prefix.to_uppercase(), domain.to_uppercase())
            },
            subjects: vec![subject(prefix, &format!("{domain}.>"))],
        })
        .collect()
}

/// A subject under an optional test prefix.
pub fn subject(prefix: &str, subject: &str) -> String {
    if prefix.is_empty() {
        subject.to_owned()
    } else {
        format!("{}.{subject}", prefix.to_lowercase())
    }
}

/// Connects to NATS, failing with a message that says what to do. `url` may
/// list several servers of one cluster, comma-separated; the client picks
/// one and fails over to the others.
pub async fn connect(url: &str) -> anyhow::Result<async_nats::Client> {
    let servers: Vec<&str> = url.split(',').map(str::trim).collect();
    async_nats::ConnectOptions::new()
        .connection_timeout(Duration::from_secs(5))
        .retry_on_initial_connect()
        .name("bookmyseat")
        .connect(servers)
        .await
        .with_context(|| {
            format!(
                "cannot connect to NATS at {url} (NATS_URL); is it running? `make up` starts one"
            )
        })
}

/// Creates each stream, or leaves an existing one as it is (its replica
/// count included: that is [`declare_streams`]' business).
pub async fn ensure_streams(
    jetstream: &jetstream::Context,
    specs: &[StreamSpec],
) -> anyhow::Result<()> {
    for spec in specs {
        create_stream(jetstream, spec, 1).await?;
    }
    Ok(())
}

/// Creates each stream with `replicas` copies, or changes an existing
/// stream's replica count to `replicas`. Run by `bookmyseat migrate` with
/// `NATS_STREAM_REPLICAS`: production's three-node JetStream keeps three
/// copies of every event, so losing a node loses none (services only
/// [`ensure_streams`], so a service started before the migration cannot
/// undo it). Replicas beyond the cluster's size are refused by NATS.
pub async fn declare_streams(
    jetstream: &jetstream::Context,
    specs: &[StreamSpec],
    replicas: usize,
) -> anyhow::Result<()> {
    anyhow::ensure!(
        (1..=5).contains(&replicas),
        "NATS_STREAM_REPLICAS must be between 1 and 5 (JetStream's limit), not {replicas}"
    );
    for spec in specs {
        let mut stream = create_stream(jetstream, spec, replicas).await?;
        let config = stream
            .info()
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))
            .with_context(|| format!("reading JetStream stream {}", spec.name))?
            .config
            .clone();
        if config.num_replicas != replicas {
            let from = config.num_replicas;
            jetstream
                .update_stream(stream::Config {
                    num_replicas: replicas,
                    ..config
                })
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))
                .with_context(|| {
                    format!(
                        "changing JetStream stream {} from {from} to {replicas} replicas; \
                         does the NATS cluster have {replicas} JetStream nodes?",
                        spec.name
                    )
                })?;
            tracing::info!(stream = %spec.name, from, to = replicas, "stream replicas changed");
        }
    }
    Ok(())
}

async fn create_stream(
    jetstream: &jetstream::Context,
    spec: &StreamSpec,
    replicas: usize,
) -> anyhow::Result<stream::Stream> {
    jetstream
        .get_or_create_stream(stream::Config {
            name: spec.name.clone(),
            subjects: spec.subjects.clone(),
            retention: stream::RetentionPolicy::Limits,
            storage: stream::StorageType::File,
            num_replicas: replicas,
            // Long enough to replay analytics from the start; the
            // duplicate window covers outbox relays that retry.
            max_age: Duration::from_secs(60 * 60 * 24 * 365),
            duplicate_window: Duration::from_secs(120),
            ..Default::default()
        })
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))
        .with_context(|| {
            format!(
                "cannot create JetStream stream {} with {replicas} replica(s); \
                 is JetStream enabled (nats-server -js)?",
                spec.name
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixed_streams_do_not_collide_with_production_names() {
        let production = event_streams("");
        assert_eq!(production[0].name, "PAYMENTS");
        assert_eq!(production[0].subjects, vec!["payments.>".to_owned()]);
        let test = event_streams("t42");
        assert_eq!(test[1].name, "T42_BOOKINGS");
        assert_eq!(test[1].subjects, vec!["t42.bookings.>".to_owned()]);
    }
}
