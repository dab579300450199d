//! The browse scenario (issue #2): how many film lists per second the
//! gateway serves, and what its hop costs compared with asking catalog
//! directly.
//!
//! Endpoints run one after the other in this process, each at every
//! concurrency level given:
//! - `gateway-list`: `GET /api/v1/movies` over HTTP/1.1 keep-alive, one
//!   connection per worker, as browsers and API clients do;
//! - `direct-list`: the same `ListFilms` call (no filters, first page) made
//!   by the gateway, sent straight to catalog with a tonic client. Workers
//!   share HTTP/2 connections, several workers per connection but several
//!   connections in all, since one connection is driven by one task (so by
//!   one core) on each side;
//! - `film-page` and `showtime-json` (optional): `GET /films/{slug}` and
//!   `GET /api/v1/showtimes/{id}`, which catalog answers from PostgreSQL
//!   rather than its read cache, to show the rest of the browsing mix;
//! - `seat-map` (optional): `GET /api/v1/showtimes/{id}/seats` for the same
//!   showtime, as a visitor not signed in sees it: the gateway asks seating,
//!   which reads every seat's state from PostgreSQL. The rush (issue #8) is
//!   a thousand of these at once, so its cost per request is worth knowing.
//!
//! Before measuring, one request of each kind checks the programme is there
//! (an empty catalog would make any figure meaningless) and picks the film
//! and showtime the optional endpoints ask for.

use anyhow::{Context as _, bail};
use http::Uri;
use proto::catalog::v1 as pb;
use proto::catalog::v1::catalog_service_client::CatalogServiceClient;
use serde::Serialize;
use tonic::transport::Channel;

use crate::closed_loop::{self, Done, LoadArgs, Measurement, Worker};
use crate::http1::Http1Connection;
use crate::programme::{EMPTY_HINT, film_slugs, seat_count, seat_map, seat_map_path, showtime_ids};
use crate::report::{self, Row, thousands};
use crate::target::Target;

/// Issue #2: film lists per second through the gateway on a 2-core machine.
const GATEWAY_TARGET_RPS: f64 = 5_000.0;
/// Issue #2: the most the gateway hop may cost, as a share of direct gRPC
/// throughput.
const MAX_HOP_COST: f64 = 0.25;

/// The browse scenario's flags.
#[derive(clap::Args, Debug)]
pub struct BrowseArgs {
    /// The gateway's base URL (this machine only).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub gateway: String,
    /// Catalog's gRPC base URL (this machine only).
    #[arg(long, default_value = "http://127.0.0.1:50051")]
    pub catalog: String,
    /// What to measure, in this order, at each concurrency level.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_values = ["gateway-list", "direct-list"]
    )]
    pub endpoints: Vec<BrowseEndpoint>,
    /// Direct gRPC workers sharing one HTTP/2 connection to catalog.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=4096))]
    pub workers_per_channel: u16,
    /// Ask the gateway for gzip (`Accept-Encoding: gzip`), as browsers do;
    /// by default answers come uncompressed, like the direct gRPC answers.
    #[arg(long)]
    pub gzip: bool,
    #[command(flatten)]
    pub load: LoadArgs,
}

/// A kind of browsing request.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum BrowseEndpoint {
    /// `GET /api/v1/movies` through the gateway.
    GatewayList,
    /// `ListFilms` straight to catalog over gRPC.
    DirectList,
    /// The film page, `GET /films/{slug}` (HTML; catalog reads PostgreSQL).
    FilmPage,
    /// `GET /api/v1/showtimes/{id}` (JSON; catalog reads PostgreSQL).
    ShowtimeJson,
    /// `GET /api/v1/showtimes/{id}/seats` (JSON; seating reads PostgreSQL).
    SeatMap,
}

impl BrowseEndpoint {
    fn name(self) -> &'static str {
        match self {
            Self::GatewayList => "gateway-list",
            Self::DirectList => "direct-list",
            Self::FilmPage => "film-page",
            Self::ShowtimeJson => "showtime-json",
            Self::SeatMap => "seat-map",
        }
    }

    fn request(self) -> &'static str {
        match self {
            Self::GatewayList => "gateway GET /api/v1/movies",
            Self::DirectList => "direct gRPC ListFilms",
            Self::FilmPage => "gateway GET /films/{slug}",
            Self::ShowtimeJson => "gateway GET /api/v1/showtimes/{id}",
            Self::SeatMap => "gateway GET /api/v1/showtimes/{id}/seats",
        }
    }
}

/// What the programme offers to ask for, found before measuring.
#[derive(Debug, Default, Serialize)]
struct Programme {
    /// Films on the first page, as the gateway and catalog each report them.
    films_via_gateway: Option<usize>,
    films_via_catalog: Option<usize>,
    /// The film whose page `film-page` asks for (one with showtimes).
    film_slug: Option<String>,
    /// The showtime `showtime-json` and `seat-map` ask for.
    showtime_id: Option<String>,
    /// Seats on that showtime's map, when `seat-map` runs.
    seats: Option<usize>,
}

/// The gateway-versus-direct verdict at one concurrency level.
#[derive(Debug, Serialize)]
struct Comparison {
    concurrency: usize,
    gateway_rps: f64,
    direct_rps: f64,
    /// Gateway throughput as a share of direct gRPC throughput.
    ratio: f64,
    /// `1 - ratio`: the throughput the gateway hop costs.
    hop_cost: f64,
    gateway_target_rps: f64,
    gateway_target_met: bool,
    max_hop_cost: f64,
    hop_cost_target_met: bool,
}

#[derive(Serialize)]
struct Settings<'a> {
    gateway: &'a str,
    catalog: &'a str,
    warmup_seconds: f64,
    duration_seconds: f64,
    rounds: u32,
    max_requests: u64,
    timeout_seconds: f64,
    workers_per_channel: u16,
    gzip: bool,
    loadgen_threads: usize,
}

#[derive(Serialize)]
struct JsonReport<'a> {
    scenario: &'static str,
    settings: Settings<'a>,
    programme: &'a Programme,
    results: &'a [Row],
    comparisons: &'a [Comparison],
}

/// Runs the browse scenario and prints its results.
pub async fn run(args: BrowseArgs) -> anyhow::Result<()> {
    let gateway = Target::loopback(&args.gateway, "--gateway")?;
    let catalog = Target::loopback(&args.catalog, "--catalog")?;
    let programme = discover(&args, &gateway, &catalog).await?;

    let mut rows = Vec::new();
    for &concurrency in &args.load.concurrency {
        let mut totals: Vec<Option<Measurement>> = args.endpoints.iter().map(|_| None).collect();
        for round in 1..=args.load.rounds {
            for (&endpoint, total) in args.endpoints.iter().zip(&mut totals) {
                eprintln!(
                    "loadgen: {} at concurrency {concurrency}, round {round}/{}: \
                     {:.1}s warm-up, {:.1}s measured",
                    endpoint.name(),
                    args.load.rounds,
                    args.load.warmup.as_secs_f64(),
                    args.load.duration.as_secs_f64(),
                );
                let measured =
                    measure(&args, &gateway, &catalog, &programme, endpoint, concurrency)
                        .await
                        .with_context(|| format!("measuring {}", endpoint.name()))?;
                match total {
                    Some(total) => total.absorb(measured)?,
                    None => *total = Some(measured),
                }
            }
        }
        for (&endpoint, total) in args.endpoints.iter().zip(totals) {
            if let Some(measured) = total {
                rows.push(Row::new(
                    endpoint.name(),
                    endpoint.request().to_owned(),
                    concurrency,
                    &measured,
                ));
            }
        }
    }
    let comparisons = compare(&rows);

    let settings = Settings {
        gateway: &gateway.url,
        catalog: &catalog.url,
        warmup_seconds: args.load.warmup.as_secs_f64(),
        duration_seconds: args.load.duration.as_secs_f64(),
        rounds: args.load.rounds,
        max_requests: args.load.max_requests,
        timeout_seconds: args.load.timeout.as_secs_f64(),
        workers_per_channel: args.workers_per_channel,
        gzip: args.gzip,
        loadgen_threads: tokio::runtime::Handle::current().metrics().num_workers(),
    };
    if args.load.json {
        let document = JsonReport {
            scenario: "browse",
            settings,
            programme: &programme,
            results: &rows,
            comparisons: &comparisons,
        };
        println!("{}", serde_json::to_string_pretty(&document)?);
    } else {
        print_report(&settings, &programme, &rows, &comparisons);
    }

    let errors: u64 = rows.iter().map(|r| r.errors).sum();
    if errors > 0 {
        bail!("{errors} requests failed; figures from a run with errors are not comparable");
    }
    Ok(())
}

async fn measure(
    args: &BrowseArgs,
    gateway: &Target,
    catalog: &Target,
    programme: &Programme,
    endpoint: BrowseEndpoint,
    concurrency: usize,
) -> anyhow::Result<Measurement> {
    let shape = args.load.shape();
    let path = match endpoint {
        BrowseEndpoint::DirectList => {
            let per_channel = usize::from(args.workers_per_channel);
            let mut channels = Vec::new();
            for _ in 0..concurrency.div_ceil(per_channel) {
                channels.push(catalog.grpc_channel("--catalog", args.load.timeout).await?);
            }
            let workers = (0..concurrency)
                .map(|i| DirectListFilms {
                    client: CatalogServiceClient::new(channels[i / per_channel].clone()),
                })
                .collect();
            return closed_loop::run(shape, workers).await;
        }
        BrowseEndpoint::GatewayList => "/api/v1/movies".to_owned(),
        BrowseEndpoint::FilmPage => format!(
            "/films/{}",
            programme.film_slug.as_deref().unwrap_or_default()
        ),
        BrowseEndpoint::ShowtimeJson => format!(
            "/api/v1/showtimes/{}",
            programme.showtime_id.as_deref().unwrap_or_default()
        ),
        BrowseEndpoint::SeatMap => {
            seat_map_path(programme.showtime_id.as_deref().unwrap_or_default())
        }
    };
    let uri: Uri = path.parse()?;
    let workers = (0..concurrency)
        .map(|_| {
            Ok(GatewayGet {
                connection: Http1Connection::new(gateway, args.load.timeout, args.gzip)?,
                uri: uri.clone(),
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    closed_loop::run(shape, workers).await
}

/// One browser tab asking the gateway for the same address over and over.
struct GatewayGet {
    connection: Http1Connection,
    uri: Uri,
}

impl Worker for GatewayGet {
    async fn call(&mut self) -> Result<Done, String> {
        self.connection.get(&self.uri).await.map(|_| Done::Ok)
    }
}

/// The gateway's own film-list call, made straight to catalog.
struct DirectListFilms {
    client: CatalogServiceClient<Channel>,
}

impl Worker for DirectListFilms {
    async fn call(&mut self) -> Result<Done, String> {
        self.client
            .list_films(pb::ListFilmsRequest::default())
            .await
            .map(|_| Done::Ok)
            .map_err(|status| format!("gRPC {:?}: {}", status.code(), status.message()))
    }
}

/// Checks the programme is there and picks what the optional endpoints ask
/// for: the first listed film that has showtimes, and its first showtime.
async fn discover(
    args: &BrowseArgs,
    gateway: &Target,
    catalog: &Target,
) -> anyhow::Result<Programme> {
    let wants = |e: BrowseEndpoint| args.endpoints.contains(&e);
    let mut programme = Programme::default();

    if wants(BrowseEndpoint::DirectList) {
        let mut client =
            CatalogServiceClient::new(catalog.grpc_channel("--catalog", args.load.timeout).await?);
        let films = client
            .list_films(pb::ListFilmsRequest::default())
            .await
            .with_context(|| format!("ListFilms at {} failed", catalog.url))?
            .into_inner()
            .films;
        anyhow::ensure!(!films.is_empty(), "catalog lists no films; {EMPTY_HINT}");
        programme.films_via_catalog = Some(films.len());
    }

    let uses_gateway = args
        .endpoints
        .iter()
        .any(|&e| e != BrowseEndpoint::DirectList);
    if !uses_gateway {
        return Ok(programme);
    }
    let mut connection = Http1Connection::new(gateway, args.load.timeout, false)?;
    let slugs = film_slugs(&mut connection).await?;
    programme.films_via_gateway = Some(slugs.len());

    let showtime_wanted = [
        BrowseEndpoint::FilmPage,
        BrowseEndpoint::ShowtimeJson,
        BrowseEndpoint::SeatMap,
    ]
    .into_iter()
    .any(wants);
    if showtime_wanted {
        for slug in slugs {
            let first_showtime = showtime_ids(&mut connection, &slug)
                .await?
                .into_iter()
                .next();
            if let Some(id) = first_showtime {
                programme.film_slug = Some(slug);
                programme.showtime_id = Some(id);
                break;
            }
        }
        anyhow::ensure!(
            programme.showtime_id.is_some(),
            "no listed film has upcoming showtimes; {EMPTY_HINT} (seeding again extends the week)"
        );
    }
    if let (true, Some(id)) = (wants(BrowseEndpoint::SeatMap), &programme.showtime_id) {
        let seats = seat_count(&seat_map(&mut connection, id).await?);
        anyhow::ensure!(seats > 0, "showtime {id} has an empty seat map");
        programme.seats = Some(seats);
    }
    Ok(programme)
}

/// Gateway against direct throughput, at each level where both ran.
fn compare(rows: &[Row]) -> Vec<Comparison> {
    let rate = |endpoint: BrowseEndpoint, concurrency: usize| {
        rows.iter()
            .find(|r| r.endpoint == endpoint.name() && r.concurrency == concurrency)
            .map(|r| r.requests_per_second)
    };
    let mut levels: Vec<usize> = rows.iter().map(|r| r.concurrency).collect();
    levels.dedup();
    levels
        .into_iter()
        .filter_map(|concurrency| {
            let gateway_rps = rate(BrowseEndpoint::GatewayList, concurrency)?;
            let direct_rps = rate(BrowseEndpoint::DirectList, concurrency)?;
            let ratio = if direct_rps > 0.0 {
                gateway_rps / direct_rps
            } else {
                0.0
            };
            Some(Comparison {
                concurrency,
                gateway_rps,
                direct_rps,
                ratio,
                hop_cost: 1.0 - ratio,
                gateway_target_rps: GATEWAY_TARGET_RPS,
                gateway_target_met: gateway_rps >= GATEWAY_TARGET_RPS,
                max_hop_cost: MAX_HOP_COST,
                hop_cost_target_met: 1.0 - ratio <= MAX_HOP_COST,
            })
        })
        .collect()
}

fn print_report(
    settings: &Settings<'_>,
    programme: &Programme,
    rows: &[Row],
    comparisons: &[Comparison],
) {
    println!(
        "loadgen browse: gateway {} | catalog {} (direct gRPC: {} workers per HTTP/2 connection)",
        settings.gateway, settings.catalog, settings.workers_per_channel
    );
    println!(
        "closed loop; {:.1}s warm-up (not counted) + {:.1}s measured, {} round(s) per row, \
         endpoints taking turns; HTTP/1.1 keep-alive, one connection per worker; {}; \
         loadgen runtime threads: {}",
        settings.warmup_seconds,
        settings.duration_seconds,
        settings.rounds,
        if settings.gzip {
            "Accept-Encoding: gzip"
        } else {
            "no compression"
        },
        settings.loadgen_threads,
    );
    let films = |n: Option<usize>| n.map_or_else(|| "-".to_owned(), |n| n.to_string());
    print!(
        "films on the first page: {} via gateway, {} via catalog",
        films(programme.films_via_gateway),
        films(programme.films_via_catalog)
    );
    if let (Some(slug), Some(id)) = (&programme.film_slug, &programme.showtime_id) {
        print!("; film page /films/{slug}; showtime {id}");
    }
    if let Some(seats) = programme.seats {
        print!(" ({seats} seats)");
    }
    println!("\n");
    report::print_table(rows);
    if !comparisons.is_empty() {
        println!();
    }
    for c in comparisons {
        let verdict = |met: bool| if met { "met" } else { "NOT met" };
        println!(
            "concurrency {:>4}: gateway/direct = {} / {} req/s = {:.2} → gateway hop cost = {:.0}% \
             (target ≤ {:.0}%: {}); gateway ≥ {} req/s: {}",
            c.concurrency,
            thousands(c.gateway_rps.round() as u64),
            thousands(c.direct_rps.round() as u64),
            c.ratio,
            c.hop_cost * 100.0,
            c.max_hop_cost * 100.0,
            verdict(c.hop_cost_target_met),
            thousands(c.gateway_target_rps as u64),
            verdict(c.gateway_target_met),
        );
    }
}
