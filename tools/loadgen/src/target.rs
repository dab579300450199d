//! Where load may go: this machine, and nowhere else.
//!
//! Every base URL given on the command line is parsed here once. Anything
//! but a plain `http://` URL whose host is a loopback address (127.0.0.0/8,
//! `localhost`, `[::1]`) is refused before a single request is sent, so a
//! mistyped flag can never point a load test at someone else's server.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr as _;

use anyhow::{Context as _, bail};
use http::Uri;
use sqlx::postgres::PgConnectOptions;

/// A service on this machine that load may be sent to.
#[derive(Clone, Debug)]
pub struct Target {
    /// The URL as given, without a trailing slash (gRPC endpoints want it so).
    pub url: String,
    /// The socket to connect to.
    pub address: SocketAddr,
    /// `host[:port]` as given, for the HTTP `Host` header.
    pub authority: String,
}

impl Target {
    /// An HTTP/2 (gRPC) connection to this target, opened now rather than
    /// lazily so a wrong address fails before any measuring starts. `flag`
    /// names the command-line option the address came from.
    pub async fn grpc_channel(
        &self,
        flag: &str,
        timeout: std::time::Duration,
    ) -> anyhow::Result<tonic::transport::Channel> {
        tonic::transport::Endpoint::from_shared(self.url.clone())
            .with_context(|| format!("{flag} is not a valid gRPC URL: {}", self.url))?
            .tcp_nodelay(true)
            .connect_timeout(timeout)
            .timeout(timeout)
            .connect()
            .await
            .with_context(|| format!("cannot reach {} over gRPC ({flag})", self.url))
    }

    /// Parses `url` (from the flag named `flag`), refusing anything that is
    /// not on this machine.
    pub fn loopback(url: &str, flag: &str) -> anyhow::Result<Self> {
        let trimmed = url.trim().trim_end_matches('/');
        let uri: Uri = trimmed
            .parse()
            .with_context(|| format!("{flag} is not a URL: {url:?}"))?;
        if uri.scheme_str() != Some("http") {
            bail!("{flag} must be a plain http:// URL such as http://127.0.0.1:8080, not {url:?}");
        }
        if uri.path_and_query().is_some_and(|p| p.as_str() != "/") {
            bail!("{flag} must be a base URL without a path, not {url:?}");
        }
        let (Some(host), Some(authority)) = (uri.host(), uri.authority()) else {
            bail!("{flag} names no host: {url:?}");
        };
        let ip = match host.trim_start_matches('[').trim_end_matches(']') {
            "localhost" => IpAddr::V4(Ipv4Addr::LOCALHOST),
            literal => literal
                .parse::<IpAddr>()
                .ok()
                .filter(IpAddr::is_loopback)
                .with_context(|| {
                    format!(
                        "{flag} points at {host}; loadgen only sends load to this machine \
                         (127.0.0.1, localhost or [::1])"
                    )
                })?,
        };
        let ip = match ip {
            // `[::1]` and `::ffff:127.0.0.1` both mean this machine.
            IpAddr::V6(v6) => v6
                .to_ipv4_mapped()
                .map_or(IpAddr::V6(Ipv6Addr::LOCALHOST), IpAddr::V4),
            v4 => v4,
        };
        Ok(Self {
            url: trimmed.to_owned(),
            address: SocketAddr::new(ip, uri.port_u16().unwrap_or(80)),
            authority: authority.as_str().to_owned(),
        })
    }
}

/// Parses a PostgreSQL URL (from the flag named `flag`), refusing any host
/// but this machine (a Unix socket counts as this machine); the connections
/// say `application` in `pg_stat_activity`.
pub fn loopback_database(
    url: &str,
    flag: &str,
    application: &str,
) -> anyhow::Result<PgConnectOptions> {
    let options = PgConnectOptions::from_str(url)
        .with_context(|| format!("{flag} is not a PostgreSQL URL"))?
        .application_name(application);
    let host = options.get_host();
    let local = host.starts_with('/')
        || host == "localhost"
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    anyhow::ensure!(
        local,
        "{flag} points at {host}; loadgen only sends load to this machine"
    );
    Ok(options)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_urls_are_accepted() {
        let gateway = Target::loopback("http://127.0.0.1:8180/", "--gateway").unwrap();
        assert_eq!(gateway.url, "http://127.0.0.1:8180");
        assert_eq!(gateway.address, "127.0.0.1:8180".parse().unwrap());
        assert_eq!(gateway.authority, "127.0.0.1:8180");
        let named = Target::loopback("http://localhost:50051", "--catalog").unwrap();
        assert_eq!(named.address, "127.0.0.1:50051".parse().unwrap());
        let v6 = Target::loopback("http://[::1]:8080", "--gateway").unwrap();
        assert_eq!(v6.address, "[::1]:8080".parse().unwrap());
    }

    #[test]
    fn addresses_off_this_machine_are_refused() {
        for url in [
            "http://10.0.0.5:8080",
            "http://192.168.1.2",
            "http://example.com",
            "https://127.0.0.1:8080",
            "http://127.0.0.1:8080/api/v1/movies",
        ] {
            assert!(Target::loopback(url, "--gateway").is_err(), "{url}");
        }
    }

    #[test]
    fn databases_off_this_machine_are_refused() {
        for url in [
            "postgres://postgres@127.0.0.1:5432/bookmyseat_seating",
            "postgres://postgres@localhost/bookmyseat_seating",
        ] {
            assert!(
                loopback_database(url, "--seating-database-url", "t").is_ok(),
                "{url}"
            );
        }
        for url in [
            "postgres://postgres@10.1.2.3/db",
            "postgres://db.example.com/db",
            "mysql://x",
        ] {
            assert!(
                loopback_database(url, "--seating-database-url", "t").is_err(),
                "{url}"
            );
        }
    }
}
