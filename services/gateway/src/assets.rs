//! The pages' stylesheet, script and icon, served by the gateway itself.
//!
//! The files live in `static/` and are compiled into the binary, so one
//! container image is the whole deployment and no CDN is involved (the
//! Content-Security-Policy allows scripts and styles from our own origin
//! only). Pages link them as `/static/<name>?v=<fingerprint>`: a request with
//! the current fingerprint may be cached for a year, because a changed file
//! gets a new URL; any other request gets a short cache lifetime.

use std::sync::LazyLock;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query};
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use serde::Deserialize;

use crate::fingerprint::fnv1a;

/// A file under `/static/`.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

const ASSETS: &[Asset] = &[
    Asset {
        name: "app.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("../static/app.css"),
    },
    Asset {
        name: "app.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../static/app.js"),
    },
    Asset {
        name: "seatmap.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../static/seatmap.js"),
    },
    Asset {
        name: "favicon.svg",
        content_type: "image/svg+xml",
        body: include_bytes!("../static/favicon.svg"),
    },
];

/// Each asset's fingerprint, computed once.
static VERSIONS: LazyLock<Vec<String>> = LazyLock::new(|| {
    ASSETS
        .iter()
        .map(|asset| format!("{:016x}", fnv1a(asset.body))[..10].to_owned())
        .collect()
});

/// The versioned URL of the asset `name`, for templates.
pub fn url(name: &str) -> String {
    match ASSETS.iter().position(|asset| asset.name == name) {
        Some(index) => format!("/static/{name}?v={}", VERSIONS[index]),
        None => format!("/static/{name}"),
    }
}

/// The `?v=` of an asset request.
#[derive(Debug, Deserialize)]
pub struct AssetVersion {
    v: Option<String>,
}

/// `GET /static/{file}`.
pub async fn serve(
    Path(file): Path<String>,
    version: Result<Query<AssetVersion>, QueryRejection>,
) -> Response {
    let Some(index) = ASSETS.iter().position(|asset| asset.name == file) else {
        return (StatusCode::NOT_FOUND, "no such file").into_response();
    };
    let asset = &ASSETS[index];
    let current = version
        .ok()
        .and_then(|Query(version)| version.v)
        .is_some_and(|v| v == VERSIONS[index]);
    let cache_control = if current {
        "public, max-age=31536000, immutable"
    } else {
        "public, max-age=300"
    };
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static(asset.content_type),
            ),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static(cache_control),
            ),
        ],
        asset.body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_assets_get_versioned_urls() {
        let css = url("app.css");
        assert!(css.starts_with("/static/app.css?v="));
        assert_eq!(css.len(), "/static/app.css?v=".len() + 10);
    }
}
