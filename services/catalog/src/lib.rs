//! The catalog service: the programme of films, cinemas, screens (with seat
//! layouts) and showtimes (with prices), served over gRPC
//! (`bookmyseat.catalog.v1`) from its own PostgreSQL database.
//!
//! Browsing is read-heavy and the programme changes rarely, so the public
//! read calls go through a short in-process cache ([`cache`]); staff writes
//! go straight to the database, where constraints keep the programme sound.

pub mod cache;
pub mod domain;
pub mod grpc;
pub mod seed;
pub mod store;

use std::time::Duration;

use sqlx::PgPool;
use tokio::net::TcpListener;

use platform::Shutdown;
use proto::catalog::v1::catalog_service_server::CatalogServiceServer;

/// The catalog database's schema, embedded in the binary.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Where the catalog role listens and keeps its data.
#[derive(clap::Args, Clone, Debug)]
#[group(id = "catalog_config")]
pub struct Config {
    /// Address of catalog's gRPC server.
    #[arg(long, env = "CATALOG_GRPC_ADDR", default_value = "127.0.0.1:50051")]
    pub catalog_grpc_addr: String,
    /// Catalog's own PostgreSQL database.
    #[arg(
        long,
        env = "CATALOG_DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/bookmyseat_catalog"
    )]
    pub catalog_database_url: String,
    #[command(flatten)]
    pub settings: Settings,
}

/// Tunables that tests may change too.
#[derive(clap::Args, Clone, Debug)]
pub struct Settings {
    /// How long film lists, facets and films are cached in memory, in
    /// milliseconds (0 turns the cache off).
    #[arg(long, env = "CATALOG_CACHE_TTL_MS", default_value_t = 2_000)]
    pub catalog_cache_ttl_ms: u64,
    /// Connections in catalog's database pool.
    #[arg(long, env = "CATALOG_DB_POOL_SIZE", default_value_t = 16)]
    pub catalog_db_pool_size: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            catalog_cache_ttl_ms: 2_000,
            catalog_db_pool_size: 16,
        }
    }
}

impl Config {
    pub async fn pool(&self) -> anyhow::Result<PgPool> {
        platform::db::connect(
            &self.catalog_database_url,
            "CATALOG_DATABASE_URL",
            &platform::db::PoolSettings {
                max_connections: self.settings.catalog_db_pool_size,
                ..Default::default()
            },
        )
        .await
    }

    /// Creates the database when missing and applies the migrations.
    pub async fn migrate(&self) -> anyhow::Result<()> {
        platform::db::ensure_database(&self.catalog_database_url, "CATALOG_DATABASE_URL").await?;
        let pool = self.pool().await?;
        platform::db::migrate(&pool, &MIGRATOR).await?;
        pool.close().await;
        Ok(())
    }
}

/// Runs the catalog role until `shutdown` fires.
pub async fn run(config: Config, shutdown: Shutdown) -> anyhow::Result<()> {
    let pool = config.pool().await?;
    let listener = platform::grpc::bind(&config.catalog_grpc_addr, "CATALOG_GRPC_ADDR").await?;
    serve(listener, pool, config.settings, shutdown).await
}

/// Serves catalog on `listener` over an already-migrated database.
pub async fn serve(
    listener: TcpListener,
    pool: PgPool,
    settings: Settings,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    let vocabulary = store::load_vocabulary(&pool).await?;
    let dependencies = platform::grpc::Dependencies {
        pool: pool.clone(),
        nats: None,
    };
    let service = grpc::CatalogService::new(
        pool,
        vocabulary,
        Duration::from_millis(settings.catalog_cache_ttl_ms),
    );
    platform::grpc::serve(
        listener,
        CatalogServiceServer::new(service),
        dependencies,
        shutdown,
    )
    .await
}
