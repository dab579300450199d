//! Catalog over real gRPC against a real, fresh PostgreSQL database per test.

use std::collections::{BTreeSet, HashSet};

use chrono::{DateTime, Duration, TimeZone as _, Utc};
use prost::Message as _;
use proto::catalog::v1 as pb;
use proto::catalog::v1::catalog_service_client::CatalogServiceClient;
use proto::time::to_timestamp;
use tonic::Code;
use tonic::transport::Channel;

async fn client(url: &str) -> CatalogServiceClient<Channel> {
    CatalogServiceClient::connect(url.to_owned())
        .await
        .expect("catalog answers on its port")
}

fn field_errors(status: &tonic::Status) -> Vec<String> {
    pb::FieldViolations::decode(status.details())
        .expect("field violations in the status details")
        .violations
        .into_iter()
        .map(|v| v.field)
        .collect()
}

fn film(title: &str, genres: &[&str], language: &str) -> pb::FilmInput {
    pb::FilmInput {
        title: title.into(),
        synopsis: format!("{title} is a film."),
        genres: genres.iter().map(|g| (*g).to_owned()).collect(),
        language: language.into(),
        duration_minutes: 100,
        certificate: "U".into(),
        ..Default::default()
    }
}

async fn create_film(client: &mut CatalogServiceClient<Channel>, input: pb::FilmInput) -> pb::Film {
    client
        .create_film(pb::CreateFilmRequest { film: Some(input) })
        .await
        .expect("valid film is created")
        .into_inner()
}

/// A cinema in Kolkata's time zone with one classic 10×12 screen.
async fn cinema_with_screen(
    client: &mut CatalogServiceClient<Channel>,
    name: &str,
) -> (pb::Cinema, pb::Screen) {
    let cinema = client
        .create_cinema(pb::CreateCinemaRequest {
            cinema: Some(pb::CinemaInput {
                name: name.into(),
                city: "Bengaluru".into(),
                address: "1 Test Road".into(),
                time_zone: "Asia/Kolkata".into(),
            }),
        })
        .await
        .unwrap()
        .into_inner();
    let screen = client
        .create_screen(pb::CreateScreenRequest {
            cinema_id: cinema.id.clone(),
            name: "Screen 1".into(),
            layout: Some(classic_layout()),
        })
        .await
        .unwrap()
        .into_inner();
    (cinema, screen)
}

fn classic_layout() -> pb::SeatLayout {
    pb::SeatLayout {
        rows: ('A'..='J')
            .map(|label| pb::SeatRow {
                label: label.to_string(),
                seats: 12,
                category: if label >= 'H' { "premium" } else { "standard" }.into(),
            })
            .collect(),
        aisles_after: vec![],
    }
}

fn showtime_input(
    film: &pb::Film,
    screen: &pb::Screen,
    starts_at: DateTime<Utc>,
) -> pb::ShowtimeInput {
    pb::ShowtimeInput {
        film_id: film.id.clone(),
        screen_id: screen.id.clone(),
        starts_at: Some(to_timestamp(starts_at)),
        currency: "INR".into(),
        prices: vec![
            pb::Price {
                category: "standard".into(),
                amount_minor: 25_000,
            },
            pb::Price {
                category: "premium".into(),
                amount_minor: 40_000,
            },
        ],
    }
}

/// A start time in the future, at a round hour, `days` from tomorrow.
fn future(days: i64, hour: u32) -> DateTime<Utc> {
    let tomorrow = (Utc::now() + Duration::days(1 + days)).date_naive();
    Utc.from_utc_datetime(&tomorrow.and_hms_opt(hour, 0, 0).unwrap())
}

async fn list(
    client: &mut CatalogServiceClient<Channel>,
    request: pb::ListFilmsRequest,
) -> Result<pb::ListFilmsResponse, tonic::Status> {
    client.list_films(request).await.map(|r| r.into_inner())
}

#[tokio::test]
async fn seeded_programme_is_rich_enough_and_seeding_twice_adds_nothing() {
    let catalog = test_support::spawn_catalog().await;
    let now = Utc::now();
    let first = catalog::seed::demo_programme(catalog.pool(), now)
        .await
        .unwrap();
    let second = catalog::seed::demo_programme(catalog.pool(), now)
        .await
        .unwrap();
    assert!(first.films >= 12 && first.cinemas >= 3, "{first:?}");
    assert!(first.showtimes_added > 0);
    assert_eq!(
        second.showtimes_added, 0,
        "a second run must not add showtimes"
    );

    let mut client = client(&catalog.url).await;
    let facets = client
        .get_facets(pb::GetFacetsRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(facets.genres.len() >= 5, "{} genres", facets.genres.len());
    assert!(
        facets.languages.len() >= 3,
        "{} languages",
        facets.languages.len()
    );

    let all = list(
        &mut client,
        pb::ListFilmsRequest {
            page_size: 100,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(all.total_count as usize, first.films);
    let distinct: HashSet<_> = all.films.iter().map(|f| &f.slug).collect();
    assert_eq!(distinct.len(), all.films.len(), "no film listed twice");

    let cinemas = client
        .list_cinemas(pb::ListCinemasRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(cinemas.cinemas.len(), first.cinemas);
    let classic = cinemas
        .cinemas
        .iter()
        .flat_map(|c| &c.screens)
        .find(|s| s.capacity == 120)
        .expect("a classic 10×12 screen");
    let layout = classic.layout.as_ref().unwrap();
    assert_eq!(layout.rows.first().unwrap().label, "A");
    assert_eq!(layout.rows.last().unwrap().label, "J");
    assert!(layout.rows.iter().all(|r| r.seats == 12));
    let capacities: BTreeSet<u32> = cinemas
        .cinemas
        .iter()
        .flat_map(|c| &c.screens)
        .map(|s| s.capacity)
        .collect();
    assert!(
        capacities.len() >= 3,
        "screens of different layouts: {capacities:?}"
    );
}

#[tokio::test]
async fn filters_narrow_the_list_by_genre_language_and_text() {
    let catalog = test_support::spawn_catalog().await;
    let mut client = client(&catalog.url).await;
    create_film(&mut client, film("Metropolis", &["sci-fi", "drama"], "de")).await;
    create_film(&mut client, film("Nosferatu", &["horror"], "de")).await;
    create_film(
        &mut client,
        film("The General", &["comedy", "action"], "en"),
    )
    .await;
    create_film(
        &mut client,
        film("Sherlock Jr.", &["comedy", "mystery"], "en"),
    )
    .await;

    let comedy = list(
        &mut client,
        pb::ListFilmsRequest {
            genre: "comedy".into(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let titles: Vec<_> = comedy.films.iter().map(|f| f.title.as_str()).collect();
    assert_eq!(titles, ["Sherlock Jr.", "The General"]);
    assert_eq!(comedy.total_count, 2);
    assert!(
        comedy
            .films
            .iter()
            .all(|f| f.genres.iter().any(|g| g.slug == "comedy"))
    );

    let german = list(
        &mut client,
        pb::ListFilmsRequest {
            language: "de".into(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let titles: Vec<_> = german.films.iter().map(|f| f.title.as_str()).collect();
    assert_eq!(titles, ["Metropolis", "Nosferatu"]);
    assert_eq!(german.films[0].language.as_ref().unwrap().name, "German");

    let both = list(
        &mut client,
        pb::ListFilmsRequest {
            genre: "comedy".into(),
            language: "de".into(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert!(both.films.is_empty());
    assert_eq!(both.total_count, 0);

    // Case-insensitive substring of title or synopsis; wildcards are literal.
    let search = list(
        &mut client,
        pb::ListFilmsRequest {
            query: "GENER".into(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(search.films.len(), 1);
    assert_eq!(search.films[0].slug, "the-general");
    let wildcard = list(
        &mut client,
        pb::ListFilmsRequest {
            query: "%".into(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert!(wildcard.films.is_empty());
}

#[tokio::test]
async fn facets_count_films_per_genre_and_language() {
    let catalog = test_support::spawn_catalog().await;
    let mut client = client(&catalog.url).await;
    create_film(&mut client, film("A", &["comedy", "drama"], "en")).await;
    create_film(&mut client, film("B", &["comedy"], "fr")).await;
    create_film(&mut client, film("C", &["horror"], "en")).await;

    let facets = client
        .get_facets(pb::GetFacetsRequest {})
        .await
        .unwrap()
        .into_inner();
    let genres: Vec<(String, u32)> = facets
        .genres
        .iter()
        .map(|f| (f.genre.as_ref().unwrap().slug.clone(), f.film_count))
        .collect();
    assert_eq!(
        genres,
        [
            ("comedy".to_owned(), 2),
            ("drama".to_owned(), 1),
            ("horror".to_owned(), 1)
        ]
    );
    let languages: Vec<(String, u32)> = facets
        .languages
        .iter()
        .map(|f| (f.language.as_ref().unwrap().code.clone(), f.film_count))
        .collect();
    assert_eq!(languages, [("en".to_owned(), 2), ("fr".to_owned(), 1)]);
}

#[tokio::test]
async fn pagination_visits_every_film_once_in_title_order() {
    let catalog = test_support::spawn_catalog().await;
    let mut client = client(&catalog.url).await;
    // Two films share a title: the id breaks the tie, so neither is lost.
    let titles = ["delta", "Alpha", "charlie", "Bravo", "echo", "Echo"];
    for (i, title) in titles.iter().enumerate() {
        let mut input = film(title, &["drama"], "en");
        input.slug = format!("film-{i}");
        create_film(&mut client, input).await;
    }
    let mut seen = Vec::new();
    let mut token = String::new();
    let mut pages = 0;
    loop {
        let page = list(
            &mut client,
            pb::ListFilmsRequest {
                page_size: 4,
                page_token: token.clone(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        pages += 1;
        assert!(page.films.len() <= 4);
        assert_eq!(page.total_count, 6);
        seen.extend(page.films.into_iter().map(|f| f.title));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(pages, 2);
    let lowered: Vec<String> = seen.iter().map(|t| t.to_lowercase()).collect();
    assert_eq!(
        lowered,
        ["alpha", "bravo", "charlie", "delta", "echo", "echo"]
    );
}

#[tokio::test]
async fn bad_listing_requests_are_invalid_arguments() {
    let catalog = test_support::spawn_catalog().await;
    let mut client = client(&catalog.url).await;
    for (request, field) in [
        (
            pb::ListFilmsRequest {
                genre: "space-opera".into(),
                ..Default::default()
            },
            "genre",
        ),
        (
            pb::ListFilmsRequest {
                language: "klingon".into(),
                ..Default::default()
            },
            "language",
        ),
        (
            pb::ListFilmsRequest {
                query: "x".repeat(101),
                ..Default::default()
            },
            "query",
        ),
        (
            pb::ListFilmsRequest {
                page_size: 1_000,
                ..Default::default()
            },
            "page_size",
        ),
        (
            pb::ListFilmsRequest {
                page_token: "not a token".into(),
                ..Default::default()
            },
            "page_token",
        ),
    ] {
        let status = list(&mut client, request).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{field}: {status:?}");
        assert_eq!(field_errors(&status), [field]);
    }
}

#[tokio::test]
async fn films_are_found_by_id_or_slug_and_unknown_or_malformed_names_are_told_apart() {
    let catalog = test_support::spawn_catalog().await;
    let mut client = client(&catalog.url).await;
    let created = create_film(&mut client, film("The Kid", &["comedy"], "en")).await;
    for key in [created.id.clone(), "the-kid".to_owned()] {
        let found = client
            .get_film(pb::GetFilmRequest { id_or_slug: key })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(found, created);
    }
    let missing = client
        .get_film(pb::GetFilmRequest {
            id_or_slug: "no-such-film".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
    let missing = client
        .get_film(pb::GetFilmRequest {
            id_or_slug: uuid::Uuid::new_v4().to_string(),
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
    let malformed = client
        .get_film(pb::GetFilmRequest {
            id_or_slug: "Robert'); DROP TABLE films;--".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(malformed.code(), Code::InvalidArgument);
    let malformed = client
        .get_showtime(pb::GetShowtimeRequest {
            showtime_id: "12".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(malformed.code(), Code::InvalidArgument);
}

#[tokio::test]
async fn invalid_films_are_refused_with_every_field_named_and_nothing_saved() {
    let catalog = test_support::spawn_catalog().await;
    let mut client = client(&catalog.url).await;
    let bad = pb::FilmInput {
        title: "".into(),
        genres: vec!["space-opera".into()],
        language: "xx-unknown".into(),
        duration_minutes: 0,
        certificate: "".into(),
        trailer_url: "https://vimeo.com/12345".into(),
        ..Default::default()
    };
    let status = client
        .create_film(pb::CreateFilmRequest { film: Some(bad) })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    let fields: BTreeSet<String> = field_errors(&status).into_iter().collect();
    for field in [
        "title",
        "genres",
        "language",
        "duration_minutes",
        "certificate",
        "trailer_url",
    ] {
        assert!(fields.contains(field), "{field} not reported: {fields:?}");
    }
    let all = list(&mut client, Default::default()).await.unwrap();
    assert_eq!(all.total_count, 0);

    // A YouTube trailer is accepted and its video id kept for the embed.
    let mut with_trailer = film("Sintel", &["animation"], "en");
    with_trailer.trailer_url = "https://youtu.be/eRsGyueVLvQ".into();
    let sintel = create_film(&mut client, with_trailer).await;
    assert_eq!(sintel.trailer_youtube_id, "eRsGyueVLvQ");

    // The slug is unique: a second film with the same title is a conflict.
    let status = client
        .create_film(pb::CreateFilmRequest {
            film: Some(film("Sintel", &["drama"], "en")),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert_eq!(field_errors(&status), ["slug"]);
}

#[tokio::test]
async fn updating_a_film_replaces_its_fields_and_is_seen_at_once() {
    let catalog = test_support::spawn_catalog().await;
    let mut client = client(&catalog.url).await;
    let created = create_film(&mut client, film("Nosferatu", &["horror"], "de")).await;
    // Prime the read cache, then write: the next read must not be stale.
    let before = list(&mut client, Default::default()).await.unwrap();
    assert_eq!(before.films[0].genres.len(), 1);
    let mut changed = film("Nosferatu", &["horror", "fantasy"], "de");
    changed.synopsis = "A symphony of horror.".into();
    let updated = client
        .update_film(pb::UpdateFilmRequest {
            film_id: created.id.clone(),
            film: Some(changed),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(updated.synopsis, "A symphony of horror.");
    let after = list(&mut client, Default::default()).await.unwrap();
    let genres: Vec<_> = after.films[0]
        .genres
        .iter()
        .map(|g| g.slug.as_str())
        .collect();
    assert_eq!(genres, ["fantasy", "horror"]);

    let status = client
        .update_film(pb::UpdateFilmRequest {
            film_id: uuid::Uuid::new_v4().to_string(),
            film: Some(film("Ghost", &["horror"], "de")),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
}

#[tokio::test]
async fn an_unchanged_film_list_comes_back_not_modified_from_any_replica() {
    let catalog = test_support::spawn_catalog().await;
    let mut client = client(&catalog.url).await;
    let created = create_film(&mut client, film("Nosferatu", &["horror"], "de")).await;
    create_film(&mut client, film("Metropolis", &["sci-fi"], "de")).await;

    let first = list(&mut client, Default::default()).await.unwrap();
    assert!(!first.not_modified);
    assert_eq!(first.films.len(), 2);
    assert!(!first.version.is_empty(), "a film list names its version");

    let revalidate = |version: &str| pb::ListFilmsRequest {
        if_none_match: version.to_owned(),
        ..Default::default()
    };
    let again = list(&mut client, revalidate(&first.version)).await.unwrap();
    assert_eq!(
        again,
        pb::ListFilmsResponse {
            version: first.version.clone(),
            not_modified: true,
            ..Default::default()
        },
        "an unchanged list is a bare not-modified"
    );

    // A version of some other answer gets the full answer.
    let stale = list(&mut client, revalidate("some-other-version"))
        .await
        .unwrap();
    assert_eq!((stale.not_modified, stale.films.len()), (false, 2));
    let horror = list(
        &mut client,
        pb::ListFilmsRequest {
            genre: "horror".into(),
            if_none_match: first.version.clone(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert!(!horror.not_modified);
    assert_ne!(horror.version, first.version);
    assert_eq!(horror.films.len(), 1);

    // Another replica over the same database, with no cache at all, names
    // the same content the same: a gateway may be answered by either.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let shutdown = platform::Shutdown::new();
    tokio::spawn(catalog::serve(
        listener,
        catalog.pool().clone(),
        catalog::Settings {
            catalog_cache_ttl_ms: 0,
            ..Default::default()
        },
        shutdown.clone(),
    ));
    // Bound already: the connection waits in the backlog until it serves.
    let mut replica = crate::client(&url).await;
    let there = list(&mut replica, revalidate(&first.version))
        .await
        .unwrap();
    assert!(there.not_modified, "the same films, the same version");

    // A change to any film on the page is a new version, sent in full, on
    // both replicas.
    let mut changed = film("Nosferatu", &["horror"], "de");
    changed.synopsis = "A symphony of horror.".into();
    client
        .update_film(pb::UpdateFilmRequest {
            film_id: created.id,
            film: Some(changed),
        })
        .await
        .unwrap();
    for client in [&mut client, &mut replica] {
        let after = list(client, revalidate(&first.version)).await.unwrap();
        assert!(!after.not_modified);
        assert_ne!(after.version, first.version);
        assert!(
            after
                .films
                .iter()
                .any(|f| f.synopsis == "A symphony of horror.")
        );
    }
    shutdown.trigger();
}

#[tokio::test]
async fn showtimes_may_not_overlap_on_one_screen_but_may_follow_after_changeover() {
    let catalog = test_support::spawn_catalog().await;
    let mut client = client(&catalog.url).await;
    let film = create_film(&mut client, film("The General", &["comedy"], "en")).await; // 100 min
    let (_, screen) = cinema_with_screen(&mut client, "Lumière").await;
    let (_, other_screen) = cinema_with_screen(&mut client, "Regal").await;
    let start = future(1, 10);

    client
        .create_showtime(pb::CreateShowtimeRequest {
            showtime: Some(showtime_input(&film, &screen, start)),
        })
        .await
        .unwrap();
    // 100 minutes of film + 15 of changeover: 11:50 overlaps, 11:55 does not.
    let clash = client
        .create_showtime(pb::CreateShowtimeRequest {
            showtime: Some(showtime_input(
                &film,
                &screen,
                start + Duration::minutes(110),
            )),
        })
        .await
        .unwrap_err();
    assert_eq!(clash.code(), Code::FailedPrecondition);
    assert_eq!(field_errors(&clash), ["starts_at"]);
    assert!(
        clash.message().contains("The General"),
        "{}",
        clash.message()
    );

    client
        .create_showtime(pb::CreateShowtimeRequest {
            showtime: Some(showtime_input(
                &film,
                &screen,
                start + Duration::minutes(115),
            )),
        })
        .await
        .expect("a showing right after the changeover fits");
    client
        .create_showtime(pb::CreateShowtimeRequest {
            showtime: Some(showtime_input(&film, &other_screen, start)),
        })
        .await
        .expect("another screen is free at the same time");
}

#[tokio::test]
async fn concurrent_overlapping_showtimes_let_exactly_one_through() {
    let catalog = test_support::spawn_catalog().await;
    let mut client = client(&catalog.url).await;
    let film = create_film(&mut client, film("Metropolis", &["sci-fi"], "de")).await;
    let (_, screen) = cinema_with_screen(&mut client, "Lumière").await;
    let start = future(2, 12);
    let attempts = (0..16).map(|i| {
        let mut client = client.clone();
        let input = showtime_input(&film, &screen, start + Duration::minutes(i * 5));
        async move {
            client
                .create_showtime(pb::CreateShowtimeRequest {
                    showtime: Some(input),
                })
                .await
        }
    });
    let results = futures::future::join_all(attempts).await;
    let created = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(
        created, 1,
        "exactly one of 16 overlapping showtimes is scheduled"
    );
    for failure in results.iter().filter_map(|r| r.as_ref().err()) {
        assert_eq!(failure.code(), Code::FailedPrecondition);
    }
}

#[tokio::test]
async fn showtime_validation_checks_film_screen_prices_and_time() {
    let catalog = test_support::spawn_catalog().await;
    let mut client = client(&catalog.url).await;
    let film = create_film(&mut client, film("Sherlock Jr.", &["comedy"], "en")).await;
    let (_, screen) = cinema_with_screen(&mut client, "Lumière").await;

    let mut past = showtime_input(&film, &screen, Utc::now() - Duration::hours(1));
    past.prices[0].amount_minor = -5;
    let status = client
        .create_showtime(pb::CreateShowtimeRequest {
            showtime: Some(past),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(field_errors(&status), ["starts_at", "prices.standard"]);

    let mut missing_premium = showtime_input(&film, &screen, future(1, 9));
    missing_premium.prices.truncate(1);
    let status = client
        .create_showtime(pb::CreateShowtimeRequest {
            showtime: Some(missing_premium),
        })
        .await
        .unwrap_err();
    assert_eq!(field_errors(&status), ["prices.premium"]);

    let mut unknown_screen = showtime_input(&film, &screen, future(1, 9));
    unknown_screen.screen_id = uuid::Uuid::new_v4().to_string();
    let status = client
        .create_showtime(pb::CreateShowtimeRequest {
            showtime: Some(unknown_screen),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(field_errors(&status), ["screen_id"]);
}

#[tokio::test]
async fn schedule_is_grouped_by_local_day_then_cinema() {
    let catalog = test_support::spawn_catalog().await;
    let mut client = client(&catalog.url).await;
    let film = create_film(&mut client, film("Sintel", &["animation"], "en")).await;
    let (lumiere, screen_a) = cinema_with_screen(&mut client, "Lumière").await;
    let (_, screen_b) = cinema_with_screen(&mut client, "Alankar").await;
    // 18:00 UTC is 23:30 in Kolkata; 19:00 UTC is 00:30 the next local day.
    let day = future(1, 18);
    for (screen, at) in [
        (&screen_a, day),
        (&screen_b, day),
        (&screen_a, day + Duration::hours(2)),
    ] {
        client
            .create_showtime(pb::CreateShowtimeRequest {
                showtime: Some(showtime_input(&film, screen, at)),
            })
            .await
            .unwrap();
    }
    let schedule = client
        .list_film_showtimes(pb::ListFilmShowtimesRequest {
            film_id: film.slug.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(schedule.days.len(), 2, "{schedule:#?}");
    let first = &schedule.days[0];
    let local_date = day
        .with_timezone(&chrono_tz::Asia::Kolkata)
        .date_naive()
        .format("%Y-%m-%d")
        .to_string();
    assert_eq!(first.date, local_date);
    let names: Vec<_> = first
        .cinemas
        .iter()
        .map(|c| c.cinema.as_ref().unwrap().name.as_str())
        .collect();
    assert_eq!(names, ["Alankar", "Lumière"]);
    assert_eq!(first.cinemas[0].showtimes[0].from_amount_minor, 25_000);
    let second = &schedule.days[1];
    assert_eq!(second.cinemas.len(), 1);
    assert_eq!(second.cinemas[0].cinema.as_ref().unwrap().id, lumiere.id);

    let unknown = client
        .list_film_showtimes(pb::ListFilmShowtimesRequest {
            film_id: "nobody".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
}

#[tokio::test]
async fn showtime_detail_carries_film_cinema_layout_and_prices() {
    let catalog = test_support::spawn_catalog().await;
    let mut client = client(&catalog.url).await;
    let film = create_film(&mut client, film("The Kid", &["comedy"], "en")).await;
    let (cinema, screen) = cinema_with_screen(&mut client, "Lumière").await;
    let showtime = client
        .create_showtime(pb::CreateShowtimeRequest {
            showtime: Some(showtime_input(&film, &screen, future(3, 8))),
        })
        .await
        .unwrap()
        .into_inner();
    let detail = client
        .get_showtime(pb::GetShowtimeRequest {
            showtime_id: showtime.id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(detail.film.unwrap().id, film.id);
    assert_eq!(detail.cinema.unwrap().time_zone, cinema.time_zone);
    let screen = detail.screen.unwrap();
    assert_eq!(screen.capacity, 120);
    assert_eq!(screen.layout.as_ref().unwrap().rows.len(), 10);
    let showtime = detail.showtime.unwrap();
    let prices: Vec<(String, i64)> = showtime
        .prices
        .into_iter()
        .map(|p| (p.category, p.amount_minor))
        .collect();
    assert_eq!(
        prices,
        [
            ("premium".to_owned(), 40_000),
            ("standard".to_owned(), 25_000)
        ]
    );
    assert_eq!(showtime.currency, "INR");

    // The detail is cached, but a price change is seen by the very next read
    // (a write drops the cache), so no checkout is priced from before it.
    let mut input = showtime_input(&film, &screen, future(3, 8));
    for price in &mut input.prices {
        price.amount_minor += 5_000;
    }
    client
        .update_showtime(pb::UpdateShowtimeRequest {
            showtime_id: showtime.id.clone(),
            showtime: Some(input),
        })
        .await
        .expect("the prices change");
    let repriced: Vec<(String, i64)> = client
        .get_showtime(pb::GetShowtimeRequest {
            showtime_id: showtime.id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .showtime
        .unwrap()
        .prices
        .into_iter()
        .map(|p| (p.category, p.amount_minor))
        .collect();
    assert_eq!(
        repriced,
        [
            ("premium".to_owned(), 45_000),
            ("standard".to_owned(), 30_000)
        ]
    );

    let unknown = client
        .get_showtime(pb::GetShowtimeRequest {
            showtime_id: uuid::Uuid::new_v4().to_string(),
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
}

#[tokio::test]
async fn a_screen_layout_cannot_change_under_scheduled_showtimes() {
    let catalog = test_support::spawn_catalog().await;
    let mut client = client(&catalog.url).await;
    let film = create_film(&mut client, film("Spring", &["animation"], "en")).await;
    let (_, screen) = cinema_with_screen(&mut client, "Lumière").await;
    let mut smaller = classic_layout();
    smaller.rows.truncate(5);

    // Renaming is fine, and so is a new layout while nothing is scheduled.
    let renamed = client
        .update_screen(pb::UpdateScreenRequest {
            screen_id: screen.id.clone(),
            name: "Gold".into(),
            layout: Some(classic_layout()),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(renamed.name, "Gold");

    client
        .create_showtime(pb::CreateShowtimeRequest {
            showtime: Some(showtime_input(&film, &screen, future(1, 11))),
        })
        .await
        .unwrap();
    let status = client
        .update_screen(pb::UpdateScreenRequest {
            screen_id: screen.id.clone(),
            name: "Gold".into(),
            layout: Some(smaller),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert_eq!(field_errors(&status), ["layout"]);

    let mut broken = classic_layout();
    broken.rows[0].seats = 500;
    let status = client
        .create_screen(pb::CreateScreenRequest {
            cinema_id: screen.cinema_id.clone(),
            name: "Huge".into(),
            layout: Some(broken),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(field_errors(&status), ["layout.rows[0].seats"]);
}

#[tokio::test]
async fn cinemas_need_a_real_time_zone_and_a_unique_name_per_city() {
    let catalog = test_support::spawn_catalog().await;
    let mut client = client(&catalog.url).await;
    let input = |name: &str, zone: &str| pb::CreateCinemaRequest {
        cinema: Some(pb::CinemaInput {
            name: name.into(),
            city: "Pune".into(),
            address: String::new(),
            time_zone: zone.into(),
        }),
    };
    let status = client
        .create_cinema(input("Orpheum", "Mars/Olympus"))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(field_errors(&status), ["time_zone"]);
    client
        .create_cinema(input("Orpheum", "Asia/Kolkata"))
        .await
        .unwrap();
    let status = client
        .create_cinema(input("Orpheum", "Asia/Kolkata"))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert_eq!(field_errors(&status), ["name"]);
}

/// The health service reports SERVING while catalog's database answers, and
/// NOT_SERVING once it does not, so Kubernetes stops routing to it.
#[tokio::test]
async fn health_follows_the_database() {
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::health_client::HealthClient;

    let catalog = test_support::spawn_catalog().await;
    let channel = Channel::from_shared(catalog.url.clone())
        .expect("a URL")
        .connect_lazy();
    let mut health = HealthClient::new(channel);
    let status = |service: &str| HealthCheckRequest {
        service: service.to_owned(),
    };
    let answer = health
        .check(status("bookmyseat.catalog.v1.CatalogService"))
        .await
        .expect("health answers")
        .into_inner();
    assert_eq!(answer.status(), ServingStatus::Serving);

    catalog.pool().close().await;
    let mut not_serving = false;
    for _ in 0..50 {
        let answer = health
            .check(status(""))
            .await
            .expect("health answers")
            .into_inner();
        if answer.status() == ServingStatus::NotServing {
            not_serving = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert!(not_serving, "health kept saying SERVING without a database");
}
