//! The film list's filters, parsed once at the edge.
//!
//! Browsers and scripts send `genre`, `language`, `q`, `page_size` and
//! `page_token` as query strings; [`FilmListQuery`] takes them as they come
//! (all text, so a bad value gets our own clear 400 rather than a framework
//! rejection) and [`FilmFilter::parse`] turns them into values the catalog
//! accepts, or a [`Error::BadRequest`] that says what to change. Whether a
//! genre or language *exists* is the catalog's to say; see
//! [`crate::catalog_client::CatalogClient::list_films`].

use serde::Deserialize;
use utoipa::IntoParams;

use crate::error::Error;

/// Longest free-text search the catalog accepts, in characters.
pub const MAX_QUERY_CHARS: usize = 100;
/// Largest page the catalog serves.
pub const MAX_PAGE_SIZE: u32 = 100;
/// Films per page on the home page.
pub const HOME_PAGE_SIZE: u32 = 24;
const MAX_SLUG_CHARS: usize = 64;
const MAX_PAGE_TOKEN_CHARS: usize = 1024;

/// The film list's query string, as sent.
#[derive(Clone, Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FilmListQuery {
    /// Genre slug, as listed by `/api/v1/facets`.
    #[param(example = "drama")]
    pub genre: Option<String>,
    /// Language code, as listed by `/api/v1/facets`.
    #[param(example = "hi")]
    pub language: Option<String>,
    /// Free text over titles and synopses, at most 100 characters.
    #[param(max_length = 100)]
    pub q: Option<String>,
    /// Films per page, 1 to 100 (default 24).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100)]
    pub page_size: Option<String>,
    /// `next_page_token` from the previous page.
    pub page_token: Option<String>,
}

/// A validated film filter. Empty fields mean "any".
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct FilmFilter {
    pub genre: Option<String>,
    pub language: Option<String>,
    pub query: Option<String>,
    pub page_size: Option<u32>,
    pub page_token: Option<String>,
}

impl FilmFilter {
    /// Checks every field; empty values mean "any".
    pub fn parse(raw: FilmListQuery) -> Result<Self, Error> {
        let genre = non_empty(raw.genre);
        let language = non_empty(raw.language);
        let query = non_empty(raw.q);
        let page_token = non_empty(raw.page_token);

        if let Some(genre) = &genre {
            check_slug(genre, "genre")?;
        }
        if let Some(language) = &language {
            check_slug(language, "language")?;
        }
        if let Some(query) = &query {
            if query.chars().count() > MAX_QUERY_CHARS {
                return Err(query_too_long());
            }
            // Nobody types them, and PostgreSQL refuses text with a NUL in
            // it: the catalog would fail instead of finding nothing.
            if query.chars().any(char::is_control) {
                return Err(Error::BadRequest(
                    "The search text may not contain control characters.".to_owned(),
                ));
            }
        }
        if let Some(token) = &page_token
            && token.len() > MAX_PAGE_TOKEN_CHARS
        {
            return Err(unknown_page_token());
        }
        let page_size = match non_empty(raw.page_size) {
            None => None,
            Some(text) => match text.parse::<u32>() {
                Ok(size) if (1..=MAX_PAGE_SIZE).contains(&size) => Some(size),
                _ => {
                    return Err(Error::BadRequest(format!(
                        "page_size must be a whole number from 1 to {MAX_PAGE_SIZE}."
                    )));
                }
            },
        };
        Ok(Self {
            genre,
            language,
            query,
            page_size,
            page_token,
        })
    }

    /// Whether any filter (not paging) narrows the list.
    pub fn narrows(&self) -> bool {
        self.genre.is_some() || self.language.is_some() || self.query.is_some()
    }
}

fn non_empty(value: Option<String>) -> Option<String> {
    value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
}

/// Genre slugs and language codes are short lowercase words with dashes.
fn check_slug(value: &str, field: &str) -> Result<(), Error> {
    let well_formed = value.len() <= MAX_SLUG_CHARS
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if well_formed {
        Ok(())
    } else {
        Err(unknown(field, value))
    }
}

/// The error for search text over [`MAX_QUERY_CHARS`].
pub fn query_too_long() -> Error {
    Error::BadRequest(format!(
        "The search text is too long: use at most {MAX_QUERY_CHARS} characters."
    ))
}

/// The error for a page token we did not hand out (or one that went stale).
pub fn unknown_page_token() -> Error {
    Error::BadRequest(
        "That page link is not valid any more; start again from the first page.".to_owned(),
    )
}

/// The error for a genre or language the catalog does not have.
pub fn unknown(field: &str, value: &str) -> Error {
    let shown: String = value.chars().take(MAX_SLUG_CHARS).collect();
    Error::BadRequest(format!(
        "There is no {field} called \"{shown}\". Pick one from the list \
         (GET /api/v1/facets lists them)."
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(q: &str) -> FilmListQuery {
        FilmListQuery {
            q: Some(q.to_owned()),
            ..Default::default()
        }
    }

    #[test]
    fn empty_fields_mean_any() {
        let raw = FilmListQuery {
            genre: Some(" ".to_owned()),
            language: Some(String::new()),
            q: Some("".to_owned()),
            page_size: Some(String::new()),
            page_token: None,
        };
        assert_eq!(FilmFilter::parse(raw).unwrap(), FilmFilter::default());
    }

    #[test]
    fn search_text_is_limited_in_characters_not_bytes() {
        assert!(FilmFilter::parse(query(&"न".repeat(MAX_QUERY_CHARS))).is_ok());
        assert!(FilmFilter::parse(query(&"a".repeat(MAX_QUERY_CHARS + 1))).is_err());
    }

    #[test]
    fn page_size_must_be_between_one_and_the_maximum() {
        for bad in ["0", "101", "1000", "-1", "ten"] {
            let raw = FilmListQuery {
                page_size: Some(bad.to_owned()),
                ..Default::default()
            };
            assert!(FilmFilter::parse(raw).is_err(), "{bad}");
        }
        let raw = FilmListQuery {
            page_size: Some("100".to_owned()),
            ..Default::default()
        };
        assert_eq!(FilmFilter::parse(raw).unwrap().page_size, Some(100));
    }

    #[test]
    fn malformed_genre_is_rejected_before_asking_catalog() {
        let raw = FilmListQuery {
            genre: Some("<script>".to_owned()),
            ..Default::default()
        };
        assert!(matches!(FilmFilter::parse(raw), Err(Error::BadRequest(_))));
    }
}
