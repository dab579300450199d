//! Every SQL statement catalog runs, and nothing else.
//!
//! Handlers speak domain drafts and get records back. Rules the database can
//! enforce under concurrency are enforced there: unique slugs, unique cinema
//! names per city, unique screen names per cinema, and the exclusion
//! constraint that keeps two showtimes off one screen at once. Their
//! violations come back as [`CatalogError::Conflict`] naming the field.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use sqlx::{PgPool, Postgres, Row as _, Transaction};
use uuid::Uuid;

use crate::domain::{
    CatalogError, CinemaDraft, FilmDraft, FilmFilter, PageCursor, SeatLayout, ShowtimeDraft,
    Vocabulary,
};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FilmRecord {
    pub id: Uuid,
    pub slug: String,
    pub title: String,
    pub synopsis: String,
    pub genres: Vec<String>,
    pub language: String,
    pub duration_minutes: u32,
    pub certificate: String,
    pub poster_url: String,
    pub trailer_url: String,
    pub trailer_youtube_id: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CinemaRecord {
    pub id: Uuid,
    pub name: String,
    pub city: String,
    pub address: String,
    pub time_zone: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScreenRecord {
    pub id: Uuid,
    pub cinema_id: Uuid,
    pub name: String,
    pub layout: SeatLayout,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShowtimeRecord {
    pub id: Uuid,
    pub film_id: Uuid,
    pub screen_id: Uuid,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub currency: String,
    pub prices: BTreeMap<String, i64>,
}

/// One upcoming showing in a film's schedule.
#[derive(Clone, Debug)]
pub struct ScheduleSlot {
    pub showtime_id: Uuid,
    pub starts_at: DateTime<Utc>,
    pub screen_name: String,
    pub currency: String,
    pub from_amount_minor: i64,
    pub cinema: CinemaRecord,
}

/// One page of films.
#[derive(Clone, Debug)]
pub struct FilmPage {
    pub films: Vec<FilmRecord>,
    pub next: Option<PageCursor>,
    pub total_count: u32,
}

const FILM_COLUMNS: &str = "f.id, f.slug, f.title, f.synopsis, f.language_code, \
     f.duration_minutes, f.certificate, f.poster_url, f.trailer_url, f.trailer_youtube_id";

fn film_from_row(row: &sqlx::postgres::PgRow) -> Result<FilmRecord, sqlx::Error> {
    Ok(FilmRecord {
        id: row.try_get("id")?,
        slug: row.try_get("slug")?,
        title: row.try_get("title")?,
        synopsis: row.try_get("synopsis")?,
        genres: Vec::new(),
        language: row.try_get("language_code")?,
        duration_minutes: row.try_get::<i32, _>("duration_minutes")?.max(0) as u32,
        certificate: row.try_get("certificate")?,
        poster_url: row.try_get("poster_url")?,
        trailer_url: row.try_get("trailer_url")?,
        trailer_youtube_id: row.try_get("trailer_youtube_id")?,
    })
}

fn cinema_from_row(row: &sqlx::postgres::PgRow, prefix: &str) -> Result<CinemaRecord, sqlx::Error> {
    Ok(CinemaRecord {
        id: row.try_get(format!("{prefix}id").as_str())?,
        name: row.try_get(format!("{prefix}name").as_str())?,
        city: row.try_get(format!("{prefix}city").as_str())?,
        address: row.try_get(format!("{prefix}address").as_str())?,
        time_zone: row.try_get(format!("{prefix}time_zone").as_str())?,
    })
}

fn layout_from_json(json: &str) -> Result<SeatLayout, sqlx::Error> {
    serde_json::from_str(json).map_err(|e| sqlx::Error::Decode(Box::new(e)))
}

fn layout_to_json(layout: &SeatLayout) -> String {
    // A SeatLayout is plain strings and integers: serialising cannot fail.
    serde_json::to_string(layout).unwrap_or_else(|_| "{\"rows\":[]}".to_owned())
}

/// Escapes LIKE wildcards so a search for "100%" means the characters.
fn like_pattern(query: &str) -> String {
    let mut pattern = String::with_capacity(query.len() + 2);
    pattern.push('%');
    for c in query.chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

pub async fn load_vocabulary(pool: &PgPool) -> Result<Vocabulary, CatalogError> {
    let genres = sqlx::query_as::<_, (String, String)>("SELECT slug, name FROM genres")
        .fetch_all(pool)
        .await?;
    let languages = sqlx::query_as::<_, (String, String)>("SELECT code, name FROM languages")
        .fetch_all(pool)
        .await?;
    Ok(Vocabulary {
        genres: genres.into_iter().collect(),
        languages: languages.into_iter().collect(),
    })
}

/// Fills in each film's genres with one query for the whole page.
async fn attach_genres(pool: &PgPool, films: &mut [FilmRecord]) -> Result<(), CatalogError> {
    let ids: Vec<Uuid> = films.iter().map(|f| f.id).collect();
    let rows = sqlx::query_as::<_, (Uuid, String)>(
        "SELECT film_id, genre_slug FROM film_genres WHERE film_id = ANY($1) ORDER BY genre_slug",
    )
    .bind(&ids)
    .fetch_all(pool)
    .await?;
    let mut by_film: HashMap<Uuid, Vec<String>> = HashMap::new();
    for (film_id, genre) in rows {
        by_film.entry(film_id).or_default().push(genre);
    }
    for film in films {
        film.genres = by_film.remove(&film.id).unwrap_or_default();
    }
    Ok(())
}

/// The films matching `filter`, ordered by title, one page at a time
/// (keyset pagination on `(lower(title), id)`: stable under inserts).
pub async fn list_films(pool: &PgPool, filter: &FilmFilter) -> Result<FilmPage, CatalogError> {
    const WHERE: &str = "($1::text IS NULL OR EXISTS \
            (SELECT 1 FROM film_genres g WHERE g.film_id = f.id AND g.genre_slug = $1)) \
        AND ($2::text IS NULL OR f.language_code = $2) \
        AND ($3::text IS NULL OR f.title ILIKE $3 OR f.synopsis ILIKE $3)";
    let pattern = filter.query.as_deref().map(like_pattern);
    let (after_key, after_id) = match &filter.after {
        Some(cursor) => (Some(cursor.sort_key.clone()), Some(cursor.id)),
        None => (None, None),
    };
    let sql = format!(
        "SELECT {FILM_COLUMNS}, lower(f.title) AS sort_key FROM films f \
         WHERE {WHERE} AND ($4::text IS NULL OR (lower(f.title), f.id) > ($4, $5)) \
         ORDER BY lower(f.title), f.id LIMIT $6"
    );
    let rows = sqlx::query(&sql)
        .bind(&filter.genre)
        .bind(&filter.language)
        .bind(&pattern)
        .bind(&after_key)
        .bind(after_id)
        .bind(i64::from(filter.page_size) + 1)
        .fetch_all(pool)
        .await?;
    let has_more = rows.len() > filter.page_size as usize;
    let mut films = Vec::with_capacity(rows.len());
    let mut next = None;
    for row in rows.iter().take(filter.page_size as usize) {
        let film = film_from_row(row)?;
        if has_more {
            next = Some(PageCursor {
                sort_key: row.try_get("sort_key")?,
                id: film.id,
            });
        }
        films.push(film);
    }
    let total: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM films f WHERE {WHERE}"))
        .bind(&filter.genre)
        .bind(&filter.language)
        .bind(&pattern)
        .fetch_one(pool)
        .await?;
    attach_genres(pool, &mut films).await?;
    Ok(FilmPage {
        films,
        next,
        total_count: total.max(0) as u32,
    })
}

/// Genres and languages that have films, with how many each.
pub async fn facets(
    pool: &PgPool,
) -> Result<(Vec<(String, u32)>, Vec<(String, u32)>), CatalogError> {
    let genres = sqlx::query_as::<_, (String, i64)>(
        "SELECT genre_slug, count(*) FROM film_genres GROUP BY genre_slug ORDER BY genre_slug",
    )
    .fetch_all(pool)
    .await?;
    let languages = sqlx::query_as::<_, (String, i64)>(
        "SELECT language_code, count(*) FROM films GROUP BY language_code ORDER BY language_code",
    )
    .fetch_all(pool)
    .await?;
    let count = |n: i64| n.max(0) as u32;
    Ok((
        genres.into_iter().map(|(g, n)| (g, count(n))).collect(),
        languages.into_iter().map(|(l, n)| (l, count(n))).collect(),
    ))
}

pub async fn get_film(pool: &PgPool, id: Uuid) -> Result<Option<FilmRecord>, CatalogError> {
    let sql = format!("SELECT {FILM_COLUMNS} FROM films f WHERE f.id = $1");
    let row = sqlx::query(&sql).bind(id).fetch_optional(pool).await?;
    with_genres(pool, row).await
}

pub async fn get_film_by_slug(
    pool: &PgPool,
    slug: &str,
) -> Result<Option<FilmRecord>, CatalogError> {
    let sql = format!("SELECT {FILM_COLUMNS} FROM films f WHERE f.slug = $1");
    let row = sqlx::query(&sql).bind(slug).fetch_optional(pool).await?;
    with_genres(pool, row).await
}

async fn with_genres(
    pool: &PgPool,
    row: Option<sqlx::postgres::PgRow>,
) -> Result<Option<FilmRecord>, CatalogError> {
    let Some(row) = row else {
        return Ok(None);
    };
    let mut films = [film_from_row(&row)?];
    attach_genres(pool, &mut films).await?;
    let [film] = films;
    Ok(Some(film))
}

fn is_violation(error: &sqlx::Error, constraint: &str) -> bool {
    matches!(error, sqlx::Error::Database(e) if e.constraint() == Some(constraint))
}

async fn write_genres(
    tx: &mut Transaction<'_, Postgres>,
    film_id: Uuid,
    genres: &[String],
) -> Result<(), CatalogError> {
    sqlx::query("DELETE FROM film_genres WHERE film_id = $1")
        .bind(film_id)
        .execute(&mut **tx)
        .await?;
    sqlx::query("INSERT INTO film_genres (film_id, genre_slug) SELECT $1, unnest($2::text[])")
        .bind(film_id)
        .bind(genres)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

fn slug_conflict(error: sqlx::Error, slug: &str) -> CatalogError {
    if is_violation(&error, "films_slug_key") {
        CatalogError::conflict(
            "slug",
            format!("another film already uses the slug \"{slug}\""),
        )
    } else {
        error.into()
    }
}

pub async fn create_film(pool: &PgPool, draft: &FilmDraft) -> Result<Uuid, CatalogError> {
    let id = Uuid::now_v7();
    let mut tx = pool.begin().await?;
    sqlx::query(
        "INSERT INTO films (id, slug, title, synopsis, language_code, duration_minutes, \
             certificate, poster_url, trailer_url, trailer_youtube_id) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(id)
    .bind(&draft.slug)
    .bind(&draft.title)
    .bind(&draft.synopsis)
    .bind(&draft.language)
    .bind(draft.duration_minutes as i32)
    .bind(&draft.certificate)
    .bind(&draft.poster_url)
    .bind(&draft.trailer_url)
    .bind(&draft.trailer_youtube_id)
    .execute(&mut *tx)
    .await
    .map_err(|e| slug_conflict(e, &draft.slug))?;
    write_genres(&mut tx, id, &draft.genres).await?;
    tx.commit().await?;
    Ok(id)
}

pub async fn update_film(pool: &PgPool, id: Uuid, draft: &FilmDraft) -> Result<(), CatalogError> {
    let mut tx = pool.begin().await?;
    let updated = sqlx::query(
        "UPDATE films SET slug = $2, title = $3, synopsis = $4, language_code = $5, \
             duration_minutes = $6, certificate = $7, poster_url = $8, trailer_url = $9, \
             trailer_youtube_id = $10, updated_at = now() \
         WHERE id = $1",
    )
    .bind(id)
    .bind(&draft.slug)
    .bind(&draft.title)
    .bind(&draft.synopsis)
    .bind(&draft.language)
    .bind(draft.duration_minutes as i32)
    .bind(&draft.certificate)
    .bind(&draft.poster_url)
    .bind(&draft.trailer_url)
    .bind(&draft.trailer_youtube_id)
    .execute(&mut *tx)
    .await
    .map_err(|e| slug_conflict(e, &draft.slug))?;
    if updated.rows_affected() == 0 {
        return Err(CatalogError::not_found("film", id));
    }
    write_genres(&mut tx, id, &draft.genres).await?;
    tx.commit().await?;
    Ok(())
}

pub async fn get_cinema(pool: &PgPool, id: Uuid) -> Result<Option<CinemaRecord>, CatalogError> {
    let row = sqlx::query("SELECT id, name, city, address, time_zone FROM cinemas WHERE id = $1")
        .bind(id)
        .fetch_optional(pool)
        .await?;
    Ok(row.map(|r| cinema_from_row(&r, "")).transpose()?)
}

/// Every cinema (by city, then name) with its screens (by name).
pub async fn list_cinemas(
    pool: &PgPool,
) -> Result<Vec<(CinemaRecord, Vec<ScreenRecord>)>, CatalogError> {
    let cinemas = sqlx::query(
        "SELECT id, name, city, address, time_zone FROM cinemas ORDER BY city, name, id",
    )
    .fetch_all(pool)
    .await?;
    let screens = sqlx::query(
        "SELECT id, cinema_id, name, layout::text AS layout FROM screens ORDER BY name, id",
    )
    .fetch_all(pool)
    .await?;
    let mut by_cinema: HashMap<Uuid, Vec<ScreenRecord>> = HashMap::new();
    for row in &screens {
        let screen = screen_from_row(row)?;
        by_cinema.entry(screen.cinema_id).or_default().push(screen);
    }
    cinemas
        .iter()
        .map(|row| {
            let cinema = cinema_from_row(row, "")?;
            let screens = by_cinema.remove(&cinema.id).unwrap_or_default();
            Ok((cinema, screens))
        })
        .collect()
}

fn cinema_conflict(error: sqlx::Error, draft: &CinemaDraft) -> CatalogError {
    if is_violation(&error, "cinemas_name_city_key") {
        CatalogError::conflict(
            "name",
            format!(
                "{} already has a cinema called \"{}\"",
                draft.city, draft.name
            ),
        )
    } else {
        error.into()
    }
}

pub async fn create_cinema(pool: &PgPool, draft: &CinemaDraft) -> Result<Uuid, CatalogError> {
    let id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO cinemas (id, name, city, address, time_zone) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(id)
    .bind(&draft.name)
    .bind(&draft.city)
    .bind(&draft.address)
    .bind(&draft.time_zone)
    .execute(pool)
    .await
    .map_err(|e| cinema_conflict(e, draft))?;
    Ok(id)
}

pub async fn update_cinema(
    pool: &PgPool,
    id: Uuid,
    draft: &CinemaDraft,
) -> Result<(), CatalogError> {
    let updated = sqlx::query(
        "UPDATE cinemas SET name = $2, city = $3, address = $4, time_zone = $5 WHERE id = $1",
    )
    .bind(id)
    .bind(&draft.name)
    .bind(&draft.city)
    .bind(&draft.address)
    .bind(&draft.time_zone)
    .execute(pool)
    .await
    .map_err(|e| cinema_conflict(e, draft))?;
    if updated.rows_affected() == 0 {
        return Err(CatalogError::not_found("cinema", id));
    }
    Ok(())
}

fn screen_from_row(row: &sqlx::postgres::PgRow) -> Result<ScreenRecord, sqlx::Error> {
    Ok(ScreenRecord {
        id: row.try_get("id")?,
        cinema_id: row.try_get("cinema_id")?,
        name: row.try_get("name")?,
        layout: layout_from_json(row.try_get("layout")?)?,
    })
}

pub async fn get_screen(pool: &PgPool, id: Uuid) -> Result<Option<ScreenRecord>, CatalogError> {
    let row = sqlx::query(
        "SELECT id, cinema_id, name, layout::text AS layout FROM screens WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|r| screen_from_row(&r)).transpose()?)
}

fn screen_conflict(error: sqlx::Error, name: &str) -> CatalogError {
    if is_violation(&error, "screens_cinema_id_name_key") {
        CatalogError::conflict(
            "name",
            format!("this cinema already has a screen called \"{name}\""),
        )
    } else {
        error.into()
    }
}

pub async fn create_screen(
    pool: &PgPool,
    cinema_id: Uuid,
    name: &str,
    layout: &SeatLayout,
) -> Result<Uuid, CatalogError> {
    if get_cinema(pool, cinema_id).await?.is_none() {
        return Err(CatalogError::not_found("cinema", cinema_id));
    }
    let id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO screens (id, cinema_id, name, layout, capacity) VALUES ($1, $2, $3, $4::jsonb, $5)",
    )
    .bind(id)
    .bind(cinema_id)
    .bind(name)
    .bind(layout_to_json(layout))
    .bind(layout.capacity() as i32)
    .execute(pool)
    .await
    .map_err(|e| screen_conflict(e, name))?;
    Ok(id)
}

/// Renames a screen and replaces its layout. The layout may not change while
/// showtimes are scheduled on it: seats already offered (and perhaps sold)
/// would move under the buyers.
pub async fn update_screen(
    pool: &PgPool,
    id: Uuid,
    name: &str,
    layout: &SeatLayout,
    now: DateTime<Utc>,
) -> Result<(), CatalogError> {
    let mut tx = pool.begin().await?;
    let current =
        sqlx::query("SELECT layout::text AS layout FROM screens WHERE id = $1 FOR UPDATE")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| CatalogError::not_found("screen", id))?;
    let current = layout_from_json(current.try_get("layout")?)?;
    if &current != layout {
        let scheduled: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM showtimes WHERE screen_id = $1 AND ends_at > $2",
        )
        .bind(id)
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
        if scheduled > 0 {
            return Err(CatalogError::conflict(
                "layout",
                format!(
                    "{scheduled} upcoming showtime(s) use this layout; move or finish them before changing seats"
                ),
            ));
        }
    }
    sqlx::query("UPDATE screens SET name = $2, layout = $3::jsonb, capacity = $4 WHERE id = $1")
        .bind(id)
        .bind(name)
        .bind(layout_to_json(layout))
        .bind(layout.capacity() as i32)
        .execute(&mut *tx)
        .await
        .map_err(|e| screen_conflict(e, name))?;
    tx.commit().await?;
    Ok(())
}

const SHOWTIME_COLUMNS: &str = "s.id, s.film_id, s.screen_id, s.starts_at, s.ends_at, s.currency";

fn showtime_from_row(row: &sqlx::postgres::PgRow) -> Result<ShowtimeRecord, sqlx::Error> {
    Ok(ShowtimeRecord {
        id: row.try_get("id")?,
        film_id: row.try_get("film_id")?,
        screen_id: row.try_get("screen_id")?,
        starts_at: row.try_get("starts_at")?,
        ends_at: row.try_get("ends_at")?,
        currency: row.try_get("currency")?,
        prices: BTreeMap::new(),
    })
}

pub async fn get_showtime(pool: &PgPool, id: Uuid) -> Result<Option<ShowtimeRecord>, CatalogError> {
    let sql = format!("SELECT {SHOWTIME_COLUMNS} FROM showtimes s WHERE s.id = $1");
    let Some(row) = sqlx::query(&sql).bind(id).fetch_optional(pool).await? else {
        return Ok(None);
    };
    let mut showtime = showtime_from_row(&row)?;
    showtime.prices = sqlx::query_as::<_, (String, i64)>(
        "SELECT category, amount_minor FROM showtime_prices WHERE showtime_id = $1",
    )
    .bind(id)
    .fetch_all(pool)
    .await?
    .into_iter()
    .collect();
    Ok(Some(showtime))
}

/// Explains an overlap in the staff's terms: which film, when.
async fn overlap_conflict(
    pool: &PgPool,
    draft: &ShowtimeDraft,
    ignoring: Option<Uuid>,
) -> CatalogError {
    let clash = sqlx::query_as::<_, (String, DateTime<Utc>, DateTime<Utc>)>(
        "SELECT f.title, s.starts_at, s.ends_at FROM showtimes s JOIN films f ON f.id = s.film_id \
         WHERE s.screen_id = $1 AND tstzrange(s.starts_at, s.ends_at) && tstzrange($2, $3) \
           AND ($4::uuid IS NULL OR s.id <> $4) \
         ORDER BY s.starts_at LIMIT 1",
    )
    .bind(draft.screen_id)
    .bind(draft.starts_at)
    .bind(draft.ends_at)
    .bind(ignoring)
    .fetch_optional(pool)
    .await;
    let detail = match clash {
        Ok(Some((title, starts, ends))) => format!(
            "it overlaps \"{title}\" on this screen ({} – {} UTC, changeover included)",
            starts.format("%Y-%m-%d %H:%M"),
            ends.format("%H:%M")
        ),
        _ => "it overlaps another showtime on this screen".to_owned(),
    };
    CatalogError::conflict("starts_at", detail)
}

async fn write_prices(
    tx: &mut Transaction<'_, Postgres>,
    showtime_id: Uuid,
    prices: &BTreeMap<String, i64>,
) -> Result<(), CatalogError> {
    sqlx::query("DELETE FROM showtime_prices WHERE showtime_id = $1")
        .bind(showtime_id)
        .execute(&mut **tx)
        .await?;
    let categories: Vec<&str> = prices.keys().map(String::as_str).collect();
    let amounts: Vec<i64> = prices.values().copied().collect();
    sqlx::query(
        "INSERT INTO showtime_prices (showtime_id, category, amount_minor) \
         SELECT $1, * FROM unnest($2::text[], $3::bigint[])",
    )
    .bind(showtime_id)
    .bind(&categories)
    .bind(&amounts)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub async fn create_showtime(pool: &PgPool, draft: &ShowtimeDraft) -> Result<Uuid, CatalogError> {
    let id = Uuid::now_v7();
    let mut tx = pool.begin().await?;
    let inserted = sqlx::query(
        "INSERT INTO showtimes (id, film_id, screen_id, starts_at, ends_at, currency) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(id)
    .bind(draft.film_id)
    .bind(draft.screen_id)
    .bind(draft.starts_at)
    .bind(draft.ends_at)
    .bind(&draft.currency)
    .execute(&mut *tx)
    .await;
    match inserted {
        Err(e) if is_violation(&e, "showtimes_no_overlap_on_a_screen") => {
            drop(tx);
            return Err(overlap_conflict(pool, draft, None).await);
        }
        other => other?,
    };
    write_prices(&mut tx, id, &draft.prices).await?;
    tx.commit().await?;
    Ok(id)
}

pub async fn update_showtime(
    pool: &PgPool,
    id: Uuid,
    draft: &ShowtimeDraft,
) -> Result<(), CatalogError> {
    let mut tx = pool.begin().await?;
    let updated = sqlx::query(
        "UPDATE showtimes SET film_id = $2, screen_id = $3, starts_at = $4, ends_at = $5, currency = $6 \
         WHERE id = $1",
    )
    .bind(id)
    .bind(draft.film_id)
    .bind(draft.screen_id)
    .bind(draft.starts_at)
    .bind(draft.ends_at)
    .bind(&draft.currency)
    .execute(&mut *tx)
    .await;
    let updated = match updated {
        Err(e) if is_violation(&e, "showtimes_no_overlap_on_a_screen") => {
            drop(tx);
            return Err(overlap_conflict(pool, draft, Some(id)).await);
        }
        other => other?,
    };
    if updated.rows_affected() == 0 {
        return Err(CatalogError::not_found("showtime", id));
    }
    write_prices(&mut tx, id, &draft.prices).await?;
    tx.commit().await?;
    Ok(())
}

/// A film's showings starting in `[from, until)`, earliest first, with the
/// cinema of each and the cheapest price.
pub async fn film_schedule(
    pool: &PgPool,
    film_id: Uuid,
    from: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<Vec<ScheduleSlot>, CatalogError> {
    let rows = sqlx::query(
        "SELECT s.id, s.starts_at, s.currency, sc.name AS screen_name, \
                (SELECT min(p.amount_minor) FROM showtime_prices p WHERE p.showtime_id = s.id) AS from_amount, \
                c.id AS c_id, c.name AS c_name, c.city AS c_city, c.address AS c_address, \
                c.time_zone AS c_time_zone \
         FROM showtimes s \
         JOIN screens sc ON sc.id = s.screen_id \
         JOIN cinemas c ON c.id = sc.cinema_id \
         WHERE s.film_id = $1 AND s.starts_at >= $2 AND s.starts_at < $3 \
         ORDER BY s.starts_at, c.name, sc.name",
    )
    .bind(film_id)
    .bind(from)
    .bind(until)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(ScheduleSlot {
                showtime_id: row.try_get("id")?,
                starts_at: row.try_get("starts_at")?,
                screen_name: row.try_get("screen_name")?,
                currency: row.try_get("currency")?,
                from_amount_minor: row.try_get::<Option<i64>, _>("from_amount")?.unwrap_or(0),
                cinema: cinema_from_row(row, "c_")?,
            })
        })
        .collect::<Result<_, sqlx::Error>>()
        .map_err(CatalogError::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_pattern_escapes_wildcards() {
        assert_eq!(like_pattern("100%_a\\b"), "%100\\%\\_a\\\\b%");
    }
}

/// Idempotent writes for the demo programme: each finds what an earlier run
/// made (by its natural key) instead of making it again, and never overwrites
/// staff edits.
pub mod seed {
    use super::*;

    pub async fn ensure_film(pool: &PgPool, draft: &FilmDraft) -> Result<Uuid, CatalogError> {
        if let Some(existing) = get_film_by_slug(pool, &draft.slug).await? {
            return Ok(existing.id);
        }
        match create_film(pool, draft).await {
            Ok(id) => Ok(id),
            // A concurrent seed made it first.
            Err(CatalogError::Conflict { .. }) => get_film_by_slug(pool, &draft.slug)
                .await?
                .map(|f| f.id)
                .ok_or_else(|| CatalogError::not_found("film", &draft.slug)),
            Err(e) => Err(e),
        }
    }

    pub async fn ensure_cinema(pool: &PgPool, draft: &CinemaDraft) -> Result<Uuid, CatalogError> {
        sqlx::query(
            "INSERT INTO cinemas (id, name, city, address, time_zone) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (name, city) DO NOTHING",
        )
        .bind(Uuid::now_v7())
        .bind(&draft.name)
        .bind(&draft.city)
        .bind(&draft.address)
        .bind(&draft.time_zone)
        .execute(pool)
        .await?;
        Ok(
            sqlx::query_scalar("SELECT id FROM cinemas WHERE name = $1 AND city = $2")
                .bind(&draft.name)
                .bind(&draft.city)
                .fetch_one(pool)
                .await?,
        )
    }

    /// The screen with this name in the cinema, created with `layout` when
    /// missing. An existing screen keeps its own layout.
    pub async fn ensure_screen(
        pool: &PgPool,
        cinema_id: Uuid,
        name: &str,
        layout: &SeatLayout,
    ) -> Result<ScreenRecord, CatalogError> {
        sqlx::query(
            "INSERT INTO screens (id, cinema_id, name, layout, capacity) VALUES ($1, $2, $3, $4::jsonb, $5) \
             ON CONFLICT (cinema_id, name) DO NOTHING",
        )
        .bind(Uuid::now_v7())
        .bind(cinema_id)
        .bind(name)
        .bind(layout_to_json(layout))
        .bind(layout.capacity() as i32)
        .execute(pool)
        .await?;
        let row = sqlx::query(
            "SELECT id, cinema_id, name, layout::text AS layout FROM screens \
             WHERE cinema_id = $1 AND name = $2",
        )
        .bind(cinema_id)
        .bind(name)
        .fetch_one(pool)
        .await?;
        Ok(screen_from_row(&row)?)
    }

    /// Schedules the showtime unless its slot on the screen is taken (by an
    /// earlier run or by staff). Returns whether it was added.
    pub async fn ensure_showtime(
        pool: &PgPool,
        draft: &ShowtimeDraft,
    ) -> Result<bool, CatalogError> {
        let id = Uuid::now_v7();
        let mut tx = pool.begin().await?;
        // With no conflict target, DO NOTHING also covers the exclusion
        // constraint: an overlapping showtime is simply skipped.
        let inserted = sqlx::query(
            "INSERT INTO showtimes (id, film_id, screen_id, starts_at, ends_at, currency) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
        )
        .bind(id)
        .bind(draft.film_id)
        .bind(draft.screen_id)
        .bind(draft.starts_at)
        .bind(draft.ends_at)
        .bind(&draft.currency)
        .execute(&mut *tx)
        .await?;
        if inserted.rows_affected() == 0 {
            return Ok(false);
        }
        write_prices(&mut tx, id, &draft.prices).await?;
        tx.commit().await?;
        Ok(true)
    }
}
