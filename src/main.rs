//! `bookmyseat`: one binary, a role per subcommand (the Loki/Mimir pattern).
//!
//! `bookmyseat all` runs every built service in one process, each on its own
//! port with its own database, talking real gRPC to each other; `bookmyseat
//! catalog` or `bookmyseat gateway` runs one, as a Kubernetes Deployment does.
//! `migrate` and `seed` prepare the databases. Every flag mirrors an
//! environment variable (see `bookmyseat <command> --help` and the README).

use anyhow::Context as _;
use clap::{Parser, Subcommand};

use platform::Shutdown;
use platform::config::TelemetryArgs;

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
    /// Every service in one process (catalog, gateway).
    All {
        #[command(flatten)]
        catalog: catalog::Config,
        #[command(flatten)]
        gateway: gateway::Config,
    },
    /// The catalog gRPC service.
    Catalog {
        #[command(flatten)]
        catalog: catalog::Config,
    },
    /// The HTTP gateway: pages, JSON API.
    Gateway {
        #[command(flatten)]
        gateway: gateway::Config,
    },
    /// Create each service's database when missing and apply its migrations.
    Migrate {
        #[command(flatten)]
        catalog: catalog::Config,
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
        Command::All { catalog, gateway } => {
            let mut roles = tokio::task::JoinSet::new();
            let stop = shutdown.clone();
            roles.spawn(async move { ("catalog", catalog::run(catalog, stop).await) });
            let stop = shutdown.clone();
            roles.spawn(async move { ("gateway", gateway::run(gateway, stop).await) });
            run_roles(shutdown, roles).await
        }
        Command::Catalog { catalog } => catalog::run(catalog, shutdown).await,
        Command::Gateway { gateway } => gateway::run(gateway, shutdown).await,
        Command::Migrate { catalog } => {
            catalog.migrate().await.context("migrating catalog")?;
            tracing::info!("catalog database is up to date");
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
