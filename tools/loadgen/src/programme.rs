//! Finding what a scenario needs in the seeded programme, through the
//! gateway's public API, the way a visitor would: the listed films, and the
//! upcoming showtimes of each.

use crate::http1::Http1Connection;

/// What to do when the programme is empty.
pub const EMPTY_HINT: &str =
    "run `bookmyseat migrate` and `bookmyseat seed` against catalog's database";

/// The slugs of the films on the gateway's first page; an error when none.
pub async fn film_slugs(connection: &mut Http1Connection) -> anyhow::Result<Vec<String>> {
    let page = connection.get_json("/api/v1/movies").await?;
    let slugs: Vec<String> = page["films"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|film| film["slug"].as_str().map(str::to_owned))
        .collect();
    anyhow::ensure!(
        !slugs.is_empty(),
        "the gateway lists no films; {EMPTY_HINT}"
    );
    Ok(slugs)
}

/// The ids of a film's upcoming showtimes, by day and cinema as listed.
pub async fn showtime_ids(
    connection: &mut Http1Connection,
    slug: &str,
) -> anyhow::Result<Vec<String>> {
    let schedule = connection
        .get_json(&format!("/api/v1/movies/{slug}/showtimes"))
        .await?;
    Ok(schedule["days"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|day| day["cinemas"].as_array().into_iter().flatten())
        .flat_map(|cinema| cinema["showtimes"].as_array().into_iter().flatten())
        .filter_map(|showtime| showtime["id"].as_str().map(str::to_owned))
        .collect())
}

/// Where the gateway serves a showtime's seat map.
pub fn seat_map_path(showtime_id: &str) -> String {
    format!("/api/v1/showtimes/{showtime_id}/seats")
}

/// A showtime's seat map, as a visitor's browser gets it.
pub async fn seat_map(
    connection: &mut Http1Connection,
    showtime_id: &str,
) -> anyhow::Result<serde_json::Value> {
    connection.get_json(&seat_map_path(showtime_id)).await
}

/// How many seats a seat map has.
pub fn seat_count(map: &serde_json::Value) -> usize {
    map["seats"].as_array().map_or(0, Vec::len)
}
