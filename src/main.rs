//! `bookmyseat`: one binary, a role per subcommand (the Loki/Mimir pattern).
//!
//! `bookmyseat all` runs every built service in one process, each on its own
//! port with its own database, talking real gRPC to each other; `bookmyseat
//! catalog` or `bookmyseat gateway` runs one, as a Kubernetes Deployment does.
//! `migrate` and `seed` prepare the databases. Every flag mirrors an
//! environment variable (see `bookmyseat <command> --help` and the README).

use anyhow::Context as _;

/// Every role allocates per request (protobuf, JSON, HTTP buffers) from many
/// threads at once; mimalloc's thread-local heaps avoid glibc's arena lock
/// contention, which profiling showed as the gateway's largest cost.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
use clap::{Parser, Subcommand};

use platform::Shutdown;
use platform::config::{GrpcClientArgs, NatsArgs, TelemetryArgs};

#[derive(Parser, Debug)]
#[command(name = "bookmyseat", version, about = "BookMySeat cinema seat booking")]
struct Cli {
    #[command(flatten)]
    telemetry: TelemetryArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Every service in one process (catalog, seating, gateway).
    All {
        #[command(flatten)]
        catalog: catalog::Config,
        #[command(flatten)]
        seating: seating::Config,
        #[command(flatten)]
        gateway: gateway::Config,
        // Shared by every role that speaks NATS, so declared once here.
        #[command(flatten)]
        nats: NatsArgs,
    },
    /// The catalog gRPC service.
    Catalog {
        #[command(flatten)]
        catalog: catalog::Config,
    },
    /// The seating gRPC service: seat inventory, holds, bookings.
    Seating {
        #[command(flatten)]
        seating: seating::Config,
        #[command(flatten)]
        nats: NatsArgs,
        #[command(flatten)]
        grpc: GrpcClientArgs,
    },
    /// The HTTP gateway: pages, JSON API, live seat updates.
    Gateway {
        #[command(flatten)]
        gateway: gateway::Config,
        #[command(flatten)]
        nats: NatsArgs,
    },
    /// Create each service's database when missing and apply its migrations.
    Migrate {
        #[command(flatten)]
        catalog: catalog::Config,
        #[command(flatten)]
        seating: seating::Config,
    },
    /// Load the demo programme (idempotent: run it as often as you like).
    Seed {
        #[command(flatten)]
        catalog: catalog::Config,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    platform::telemetry::init(cli.telemetry.log_format);
    let shutdown = Shutdown::new();
    shutdown.trigger_on_os_signals();

    match cli.command {
        Command::All {
            catalog,
            seating,
            gateway,
            nats,
        } => {
            let mut roles = tokio::task::JoinSet::new();
            let stop = shutdown.clone();
            roles.spawn(async move { ("catalog", catalog::run(catalog, stop).await) });
            let stop = shutdown.clone();
            // Seating's calls to catalog use the same timeouts as the gateway's.
            let grpc = gateway.grpc.clone();
            let mut seating = seating;
            seating.settings.seating_events_prefix = nats.events_prefix.clone();
            // The gateway listens where this seating publishes seat changes.
            let deps = gateway::Deps {
                nats_url: nats.nats_url.clone(),
                subject_prefix: nats.events_prefix.clone(),
            };
            roles.spawn(async move {
                let result = seating::run(seating, &nats.nats_url, &grpc, stop).await;
                ("seating", result)
            });
            let stop = shutdown.clone();
            roles.spawn(async move { ("gateway", gateway::run(gateway, deps, stop).await) });
            run_roles(shutdown, roles).await
        }
        Command::Catalog { catalog } => catalog::run(catalog, shutdown).await,
        Command::Seating {
            mut seating,
            nats,
            grpc,
        } => {
            seating.settings.seating_events_prefix = nats.events_prefix;
            seating::run(seating, &nats.nats_url, &grpc, shutdown).await
        }
        Command::Gateway { gateway, nats } => {
            let deps = gateway::Deps {
                nats_url: nats.nats_url,
                subject_prefix: nats.events_prefix,
            };
            gateway::run(gateway, deps, shutdown).await
        }
        Command::Migrate { catalog, seating } => {
            catalog.migrate().await.context("migrating catalog")?;
            tracing::info!("catalog database is up to date");
            seating.migrate().await.context("migrating seating")?;
            tracing::info!("seating database is up to date");
            Ok(())
        }
        Command::Seed { catalog } => {
            let pool = catalog.pool().await?;
            let summary = catalog::seed::demo_programme(&pool, chrono::Utc::now())
                .await
                .context("seeding the demo programme (did `bookmyseat migrate` run?)")?;
            tracing::info!(
                films = summary.films,
                cinemas = summary.cinemas,
                screens = summary.screens,
                showtimes_added = summary.showtimes_added,
                "demo programme is in place"
            );
            Ok(())
        }
    }
}

/// Waits for every role; the first one to stop (failed or not) stops the
/// others, so `all` never runs half a system.
async fn run_roles(
    shutdown: Shutdown,
    mut roles: tokio::task::JoinSet<(&'static str, anyhow::Result<()>)>,
) -> anyhow::Result<()> {
    let mut first_error = None;
    while let Some(joined) = roles.join_next().await {
        match joined {
            Ok((name, Ok(()))) => tracing::info!(role = name, "role stopped"),
            Ok((name, Err(error))) => {
                tracing::error!(role = name, error = %format!("{error:#}"), "role failed");
                first_error.get_or_insert(error.context(format!("{name} failed")));
            }
            Err(join_error) => {
                first_error.get_or_insert(anyhow::anyhow!("a role panicked: {join_error}"));
            }
        }
        shutdown.trigger();
    }
    first_error.map_or(Ok(()), Err)
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    use super::Cli;

    /// Every role's flags and variables fit together in `all` (clap checks
    /// names, groups and defaults only when a command is built).
    #[test]
    fn command_line_is_well_formed() {
        Cli::command().debug_assert();
    }
}
