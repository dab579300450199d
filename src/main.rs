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
    // Every serving role exposes /metrics; one endpoint per process.
    #[command(flatten)]
    metrics: platform::metrics::MetricsArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Every service in one process (catalog, seating, payments, gateway,
    /// notifier, analytics).
    All {
        #[command(flatten)]
        catalog: catalog::Config,
        #[command(flatten)]
        seating: seating::Config,
        #[command(flatten)]
        payments: payments::Config,
        #[command(flatten)]
        gateway: gateway::Config,
        #[command(flatten)]
        notifier: notifier::Config,
        #[command(flatten)]
        analytics: analytics::Config,
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
    /// The payments service: checkouts (Stripe or simulated), the Stripe
    /// webhook, refunds.
    Payments {
        #[command(flatten)]
        payments: payments::Config,
        /// The gateway's public URL: Stripe sends buyers back to its
        /// success and cancel pages.
        #[arg(long, env = "PUBLIC_BASE_URL", default_value = payments::DEFAULT_PUBLIC_BASE_URL)]
        public_base_url: String,
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
    /// The notifier: booking, refund and password-reset emails from events.
    Notifier {
        #[command(flatten)]
        notifier: notifier::Config,
        #[command(flatten)]
        nats: NatsArgs,
    },
    /// The analytics gRPC service: figures for the staff dashboard.
    Analytics {
        #[command(flatten)]
        analytics: analytics::Config,
        #[command(flatten)]
        nats: NatsArgs,
        /// Forget every figure and replay the event streams from the start
        /// before serving (run with a single analytics instance).
        #[arg(long)]
        rebuild: bool,
    },
    /// Create each service's database when missing and apply its migrations.
    Migrate {
        #[command(flatten)]
        catalog: catalog::Config,
        #[command(flatten)]
        seating: seating::Config,
        #[command(flatten)]
        gateway: gateway::Config,
        #[command(flatten)]
        payments: payments::Config,
        #[command(flatten)]
        notifier: notifier::Config,
        #[command(flatten)]
        analytics: analytics::Config,
        #[command(flatten)]
        nats: NatsArgs,
        /// Copies JetStream keeps of each event stream: 1 on a single NATS
        /// server, 3 on production's three-node cluster (so losing a node
        /// loses no event). Applied to existing streams too.
        #[arg(long, env = "NATS_STREAM_REPLICAS", default_value_t = 1)]
        stream_replicas: usize,
    },
    /// Load the demo programme and the demo accounts (idempotent: run it as
    /// often as you like).
    Seed {
        #[command(flatten)]
        catalog: catalog::Config,
        #[command(flatten)]
        gateway: gateway::Config,
    },
    /// Account administration.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
        #[command(flatten)]
        gateway: gateway::Config,
        /// Where the running gateways hear of a changed account.
        #[command(flatten)]
        nats: NatsArgs,
    },
}

#[derive(Subcommand, Debug)]
enum AdminCommand {
    /// Make an account staff: promotes an existing account, or creates one.
    CreateStaff {
        /// The staff member's email address.
        #[arg(long)]
        email: String,
        /// The name shown for a new account.
        #[arg(long, default_value = "Staff")]
        display_name: String,
        /// Password for a new account (8–128 characters); without it a
        /// random one is made and printed once.
        #[arg(long, env = "STAFF_PASSWORD", hide_env_values = true)]
        password: Option<String>,
    },
}

/// The demo accounts `seed` creates (the README lists them).
const DEMO_ACCOUNTS: [(&str, &str, &str, bool); 2] = [
    (
        "customer@bookmyseat.test",
        "Demo Customer",
        "demo-customer-pass",
        false,
    ),
    (
        "staff@bookmyseat.test",
        "Demo Staff",
        "demo-staff-pass",
        true,
    ),
];

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let telemetry = platform::telemetry::init(
        cli.telemetry.log_format,
        platform::telemetry::ServiceIdentity {
            name: cli.command.service_name(),
            version: env!("CARGO_PKG_VERSION"),
        },
        cli.telemetry.otel_exporter_otlp_endpoint.as_deref(),
    )?;
    let result = run_command(cli, Shutdown::new()).await;
    // Spans of the last requests and events go out before the process ends.
    telemetry.shutdown().await;
    result
}

/// Starts the command's roles (and the metrics endpoint for serving roles)
/// and runs them until they end or the process is asked to stop.
async fn run_command(cli: Cli, shutdown: Shutdown) -> anyhow::Result<()> {
    shutdown.trigger_on_os_signals();

    let serves = !matches!(
        cli.command,
        Command::Migrate { .. } | Command::Seed { .. } | Command::Admin { .. }
    );
    if !serves {
        return run(cli.command, shutdown).await;
    }
    // The metrics endpoint lives as long as the role; either failing (say,
    // METRICS_ADDR in use) stops the other.
    let addr = cli.metrics.metrics_addr.clone();
    if !addr.trim().is_empty() && !addr.trim().eq_ignore_ascii_case("off") {
        // Before any role records anything.
        platform::metrics::install()?;
    }
    let exporter = {
        let shutdown = shutdown.clone();
        async move {
            let served = platform::metrics::serve(&addr, shutdown.clone()).await;
            shutdown.trigger();
            served
        }
    };
    let role = {
        let shutdown = shutdown.clone();
        async move {
            let result = run(cli.command, shutdown.clone()).await;
            shutdown.trigger();
            result
        }
    };
    let (role, exporter) = tokio::join!(role, exporter);
    role.and(exporter)
}

impl Command {
    /// The `service.name` of the spans this command exports: the role, or
    /// `bookmyseat` when one process runs every role.
    fn service_name(&self) -> &'static str {
        match self {
            Command::All { .. } => "bookmyseat",
            Command::Catalog { .. } => "catalog",
            Command::Seating { .. } => "seating",
            Command::Payments { .. } => "payments",
            Command::Gateway { .. } => "gateway",
            Command::Notifier { .. } => "notifier",
            Command::Analytics { .. } => "analytics",
            Command::Migrate { .. } => "bookmyseat-migrate",
            Command::Seed { .. } => "bookmyseat-seed",
            Command::Admin { .. } => "bookmyseat-admin",
        }
    }
}

/// Runs one command until it ends or `shutdown` fires.
async fn run(command: Command, shutdown: Shutdown) -> anyhow::Result<()> {
    match command {
        Command::All {
            catalog,
            seating,
            payments,
            gateway,
            notifier,
            analytics,
            nats,
        } => {
            let mut roles = tokio::task::JoinSet::new();
            let stop = shutdown.clone();
            roles.spawn(async move { ("catalog", catalog::run(catalog, stop).await) });
            // The notifier reads the streams seating (and, later, payments
            // and the gateway) publish to.
            let stop = shutdown.clone();
            let mut notifier = notifier;
            notifier.settings.notifier_events_prefix = nats.events_prefix.clone();
            let nats_url = nats.nats_url.clone();
            roles
                .spawn(async move { ("notifier", notifier::run(notifier, &nats_url, stop).await) });
            let stop = shutdown.clone();
            let mut analytics = analytics;
            analytics.analytics_events_prefix = nats.events_prefix.clone();
            let nats_url = nats.nats_url.clone();
            roles.spawn(async move {
                let result = analytics::run(analytics, &nats_url, false, stop).await;
                ("analytics", result)
            });
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
            let mut payments = payments;
            payments.settings.payments_events_prefix = nats.events_prefix.clone();
            let (payments_grpc, payments_nats, public_base_url) = (
                grpc.clone(),
                nats.nats_url.clone(),
                gateway.public_base_url.clone(),
            );
            roles.spawn(async move {
                let result = seating::run(seating, &nats.nats_url, &grpc, stop).await;
                ("seating", result)
            });
            let stop = shutdown.clone();
            roles.spawn(async move {
                let result = payments::run(
                    payments,
                    &public_base_url,
                    &payments_nats,
                    &payments_grpc,
                    stop,
                )
                .await;
                ("payments", result)
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
        Command::Payments {
            mut payments,
            public_base_url,
            nats,
            grpc,
        } => {
            payments.settings.payments_events_prefix = nats.events_prefix;
            payments::run(payments, &public_base_url, &nats.nats_url, &grpc, shutdown).await
        }
        Command::Gateway { gateway, nats } => {
            let deps = gateway::Deps {
                nats_url: nats.nats_url,
                subject_prefix: nats.events_prefix,
            };
            gateway::run(gateway, deps, shutdown).await
        }
        Command::Notifier { mut notifier, nats } => {
            notifier.settings.notifier_events_prefix = nats.events_prefix;
            notifier::run(notifier, &nats.nats_url, shutdown).await
        }
        Command::Analytics {
            mut analytics,
            nats,
            rebuild,
        } => {
            analytics.analytics_events_prefix = nats.events_prefix;
            analytics::run(analytics, &nats.nats_url, rebuild, shutdown).await
        }
        Command::Migrate {
            catalog,
            seating,
            gateway,
            payments,
            notifier,
            analytics,
            nats,
            stream_replicas,
        } => {
            catalog.migrate().await.context("migrating catalog")?;
            tracing::info!("catalog database is up to date");
            seating.migrate().await.context("migrating seating")?;
            tracing::info!("seating database is up to date");
            gateway.migrate().await.context("migrating gateway")?;
            tracing::info!("gateway database is up to date");
            payments.migrate().await.context("migrating payments")?;
            tracing::info!("payments database is up to date");
            notifier.migrate().await.context("migrating notifier")?;
            tracing::info!("notifier database is up to date");
            analytics.migrate().await.context("migrating analytics")?;
            tracing::info!("analytics database is up to date");
            let jetstream =
                async_nats::jetstream::new(platform::nats::connect(&nats.nats_url).await?);
            platform::nats::declare_streams(
                &jetstream,
                &platform::nats::event_streams(&nats.events_prefix),
                stream_replicas,
            )
            .await?;
            tracing::info!(replicas = stream_replicas, "event streams are declared");
            Ok(())
        }
        Command::Admin {
            command,
            gateway,
            nats,
        } => match command {
            AdminCommand::CreateStaff {
                email,
                display_name,
                password,
            } => create_staff(&gateway, &nats, &email, &display_name, password).await,
        },
        Command::Seed { catalog, gateway } => {
            seed_demo_accounts(&gateway)
                .await
                .context("creating the demo accounts (did `bookmyseat migrate` run?)")?;
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

/// How long `bookmyseat admin` waits for NATS to take its announcement.
const ANNOUNCE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);

/// `bookmyseat admin create-staff`. A promotion is announced on NATS, as a
/// gateway announces a changed account, so the running gateways forget
/// what they kept of the account's sessions and its next request is staff.
async fn create_staff(
    gateway: &gateway::Config,
    nats: &NatsArgs,
    email: &str,
    display_name: &str,
    password: Option<String>,
) -> anyhow::Result<()> {
    let client = platform::nats::connect(&nats.nats_url).await?;
    // Announces endings, keeps nothing.
    let announcer = gateway::session_cache::SessionCache::new(
        std::time::Duration::ZERO,
        Some((
            client.clone(),
            gateway::session_cache::SessionCache::subject(&nats.events_prefix),
        )),
    );
    let accounts = gateway.accounts().await?.with_session_cache(announcer);
    let generated = password.is_none();
    let password =
        password.unwrap_or_else(|| gateway::accounts::Token::generate().as_str().to_owned());
    match accounts
        .ensure_staff(email, display_name, Some(&password))
        .await
        .map_err(|e| anyhow::anyhow!("{}", e.message()))?
    {
        gateway::auth::StaffOutcome::Promoted(user) => {
            println!("{} is staff now (password unchanged).", user.email);
            let sent = tokio::time::timeout(ANNOUNCE_TIMEOUT, client.flush()).await;
            if !matches!(sent, Ok(Ok(()))) {
                eprintln!(
                    "NATS at {} did not take the announcement: sessions already signed in \
                     show the promotion within SESSION_CACHE_SECS (10 s by default), a new \
                     sign-in at once.",
                    nats.nats_url
                );
            }
        }
        gateway::auth::StaffOutcome::Created(user) if generated => {
            println!(
                "Created staff account {} with password {password}\nKeep it safe: it is not shown again.",
                user.email
            );
        }
        gateway::auth::StaffOutcome::Created(user) => {
            println!("Created staff account {}.", user.email);
        }
    }
    Ok(())
}

/// Creates the demo accounts that do not exist yet; existing ones are left
/// as they are.
async fn seed_demo_accounts(gateway: &gateway::Config) -> anyhow::Result<()> {
    let accounts = gateway.accounts().await?;
    for (email, name, password, is_staff) in DEMO_ACCOUNTS {
        match accounts
            .create_account(email, name, password, is_staff)
            .await
        {
            Ok(_) => tracing::info!(email, is_staff, "demo account created"),
            Err(gateway::error::Error::Conflict(_)) => {
                tracing::info!(email, "demo account exists already")
            }
            Err(error) => anyhow::bail!("creating demo account {email}: {}", error.message()),
        }
    }
    Ok(())
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
