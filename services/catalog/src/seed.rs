//! The demo programme `bookmyseat seed` loads: a repertory season of
//! public-domain classics and Blender's Creative Commons open movies (so the
//! trailers are real), three cinemas with halls of different shapes — the
//! classic 10×12 (A1–J12) among them — and a week of showtimes from today.
//!
//! Idempotent: films, cinemas and screens are found by their natural keys,
//! and a showtime whose slot is taken is skipped, so running it twice (or
//! again tomorrow, to extend the week) duplicates nothing.

use chrono::{DateTime, Duration, NaiveTime, TimeZone as _, Utc};
use sqlx::PgPool;

use crate::domain::{
    CinemaDraft, CinemaInput, FilmDraft, FilmInput, SeatLayout, SeatRow, ShowtimeInput,
    ShowtimeRequest,
};
use crate::store;

/// What a seed run added.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SeedSummary {
    pub films: usize,
    pub cinemas: usize,
    pub screens: usize,
    pub showtimes_added: usize,
}

struct DemoFilm {
    title: &'static str,
    synopsis: &'static str,
    genres: &'static [&'static str],
    language: &'static str,
    minutes: u32,
    certificate: &'static str,
    trailer: &'static str,
}

const FILMS: &[DemoFilm] = &[
    DemoFilm {
        title: "Metropolis",
        synopsis: "In a towering city split between thinkers above and workers below, the son of the city's master falls for a teacher from the depths — and a machine is built in her likeness.",
        genres: &["sci-fi", "drama"],
        language: "de",
        minutes: 153,
        certificate: "U",
        trailer: "",
    },
    DemoFilm {
        title: "Nosferatu",
        synopsis: "An estate agent travels to the Carpathians to sell a house to a reclusive count, and brings back far more than a signed contract.",
        genres: &["horror", "fantasy"],
        language: "de",
        minutes: 94,
        certificate: "UA",
        trailer: "",
    },
    DemoFilm {
        title: "Battleship Potemkin",
        synopsis: "Sailors fed rotten meat mutiny against their officers, and the port of Odessa rises with them — ending on the most famous staircase in cinema.",
        genres: &["drama", "history", "war"],
        language: "ru",
        minutes: 75,
        certificate: "UA",
        trailer: "",
    },
    DemoFilm {
        title: "The Passion of Joan of Arc",
        synopsis: "The trial of Joan of Arc told almost entirely in close-ups: a young woman against a tribunal that has already decided.",
        genres: &["drama", "history"],
        language: "fr",
        minutes: 82,
        certificate: "UA",
        trailer: "",
    },
    DemoFilm {
        title: "A Trip to the Moon",
        synopsis: "Astronomers fire themselves at the Moon in a giant shell, land in its eye, and meet its inhabitants. Méliès' fourteen minutes of wonder.",
        genres: &["sci-fi", "adventure", "fantasy"],
        language: "fr",
        minutes: 14,
        certificate: "U",
        trailer: "",
    },
    DemoFilm {
        title: "The General",
        synopsis: "A railway engineer chases his stolen locomotive — and the girl aboard it — across enemy lines, in the greatest train chase ever filmed.",
        genres: &["comedy", "action", "war"],
        language: "en",
        minutes: 78,
        certificate: "U",
        trailer: "",
    },
    DemoFilm {
        title: "The Kid",
        synopsis: "The Tramp finds an abandoned baby and raises him as his own, until the authorities come to take the boy away.",
        genres: &["comedy", "drama", "family"],
        language: "en",
        minutes: 68,
        certificate: "U",
        trailer: "",
    },
    DemoFilm {
        title: "Sherlock Jr.",
        synopsis: "A projectionist who dreams of being a detective falls asleep at work and walks straight into the film on the screen.",
        genres: &["comedy", "mystery"],
        language: "en",
        minutes: 45,
        certificate: "U",
        trailer: "",
    },
    DemoFilm {
        title: "Night of the Living Dead",
        synopsis: "Strangers barricade themselves in a farmhouse as the recently dead rise and the radio brings no good news.",
        genres: &["horror", "thriller"],
        language: "en",
        minutes: 96,
        certificate: "A",
        trailer: "",
    },
    DemoFilm {
        title: "His Girl Friday",
        synopsis: "A newspaper editor schemes to keep his star reporter — and ex-wife — from remarrying by handing her the story of the year.",
        genres: &["comedy", "romance"],
        language: "en",
        minutes: 92,
        certificate: "U",
        trailer: "",
    },
    DemoFilm {
        title: "Raja Harishchandra",
        synopsis: "A king who will not break his word gives up his kingdom, his family and himself. The first full-length Indian feature film.",
        genres: &["drama", "history"],
        language: "mr",
        minutes: 40,
        certificate: "U",
        trailer: "",
    },
    DemoFilm {
        title: "Big Buck Bunny",
        synopsis: "A gentle giant of a rabbit takes his revenge on three rodent bullies, with considerable ingenuity.",
        genres: &["animation", "comedy", "family"],
        language: "xx",
        minutes: 10,
        certificate: "U",
        trailer: "https://www.youtube.com/watch?v=aqz-KE-bpKQ",
    },
    DemoFilm {
        title: "Sintel",
        synopsis: "A lone young woman crosses a harsh land searching for the baby dragon she once rescued.",
        genres: &["animation", "fantasy", "adventure"],
        language: "en",
        minutes: 15,
        certificate: "UA",
        trailer: "https://www.youtube.com/watch?v=eRsGyueVLvQ",
    },
    DemoFilm {
        title: "Tears of Steel",
        synopsis: "In a future Amsterdam overrun by robots, a group of scientists try to save the world by replaying a break-up.",
        genres: &["sci-fi", "action"],
        language: "en",
        minutes: 12,
        certificate: "UA",
        trailer: "https://www.youtube.com/watch?v=R6MlUcmOul8",
    },
    DemoFilm {
        title: "Spring",
        synopsis: "A shepherd girl and her dog face ancient spirits to bring the cycle of life back to the mountains.",
        genres: &["animation", "fantasy"],
        language: "xx",
        minutes: 8,
        certificate: "U",
        trailer: "https://www.youtube.com/watch?v=WhWc3b3KhnY",
    },
];

/// A screen's name and the layout it is built with.
type DemoScreen = (&'static str, fn() -> SeatLayout);

struct DemoCinema {
    name: &'static str,
    city: &'static str,
    address: &'static str,
    screens: &'static [DemoScreen],
}

const TIME_ZONE: &str = "Asia/Kolkata";
const CURRENCY: &str = "INR";
/// Local start times of the daily showings.
const SLOTS: [(u32, u32); 4] = [(10, 0), (13, 30), (17, 0), (20, 30)];

const CINEMAS: &[DemoCinema] = &[
    DemoCinema {
        name: "Lumière Grand",
        city: "Bengaluru",
        address: "12 MG Road, Bengaluru 560001",
        screens: &[("Screen 1", SeatLayout::classic), ("Screen 2", wide_hall)],
    },
    DemoCinema {
        name: "Regal Talkies",
        city: "Mumbai",
        address: "Colaba Causeway, Mumbai 400005",
        screens: &[
            ("Main Hall", grand_hall),
            ("Recliner Lounge", recliner_lounge),
        ],
    },
    DemoCinema {
        name: "Paradiso Cinema",
        city: "Chennai",
        address: "Anna Salai, Chennai 600002",
        screens: &[("Screen 1", SeatLayout::classic), ("Studio", studio)],
    },
];

fn rows<'a>(labels: &'a str, seats: u32, category: &'a str) -> impl Iterator<Item = SeatRow> + 'a {
    labels.chars().map(move |label| SeatRow {
        label: label.to_string(),
        seats,
        category: category.to_owned(),
    })
}

/// Eight rows of sixteen with two aisles.
fn wide_hall() -> SeatLayout {
    SeatLayout {
        rows: rows("ABCDEF", 16, "standard")
            .chain(rows("GH", 16, "premium"))
            .collect(),
        aisles_after: vec![4, 12],
    }
}

/// Fourteen rows of twenty with a centre aisle.
fn grand_hall() -> SeatLayout {
    SeatLayout {
        rows: rows("ABCDEFGHIJ", 20, "standard")
            .chain(rows("KLMN", 20, "premium"))
            .collect(),
        aisles_after: vec![10],
    }
}

/// Four rows of eight recliners.
fn recliner_lounge() -> SeatLayout {
    SeatLayout {
        rows: rows("ABCD", 8, "recliner").collect(),
        aisles_after: vec![4],
    }
}

/// A small studio that widens towards the back.
fn studio() -> SeatLayout {
    SeatLayout {
        rows: [
            ("A", 8),
            ("B", 10),
            ("C", 12),
            ("D", 12),
            ("E", 14),
            ("F", 14),
        ]
        .into_iter()
        .map(|(label, seats)| SeatRow {
            label: label.into(),
            seats,
            category: "standard".into(),
        })
        .collect(),
        aisles_after: vec![],
    }
}

/// Price of a seat category at a given slot, in paise: evenings cost more.
fn price(category: &str, slot: usize) -> i64 {
    let base = match category {
        "premium" => 40_000,
        "recliner" => 65_000,
        _ => 25_000,
    };
    if slot >= 2 { base + 5_000 } else { base }
}

/// Loads the demo programme; showtimes cover the 7 days from `now`'s local
/// date, skipping slots that have already started.
pub async fn demo_programme(pool: &PgPool, now: DateTime<Utc>) -> anyhow::Result<SeedSummary> {
    let vocabulary = store::load_vocabulary(pool).await?;
    let mut summary = SeedSummary::default();
    let mut films = Vec::new();
    for film in FILMS {
        let draft = FilmDraft::parse(
            FilmInput {
                title: film.title.into(),
                slug: String::new(),
                synopsis: film.synopsis.into(),
                genres: film.genres.iter().map(|g| (*g).to_owned()).collect(),
                language: film.language.into(),
                duration_minutes: film.minutes,
                certificate: film.certificate.into(),
                poster_url: String::new(),
                trailer_url: film.trailer.into(),
            },
            &vocabulary,
        )?;
        films.push((store::seed::ensure_film(pool, &draft).await?, film.minutes));
        summary.films += 1;
    }

    let zone: chrono_tz::Tz = TIME_ZONE.parse().map_err(|e| anyhow::anyhow!("{e}"))?;
    let today = now.with_timezone(&zone).date_naive();
    let mut screen_index = 0;
    for cinema in CINEMAS {
        let cinema_id = store::seed::ensure_cinema(
            pool,
            &CinemaDraft::parse(CinemaInput {
                name: cinema.name.into(),
                city: cinema.city.into(),
                address: cinema.address.into(),
                time_zone: TIME_ZONE.into(),
            })?,
        )
        .await?;
        summary.cinemas += 1;
        for (name, layout) in cinema.screens {
            let layout = SeatLayout::parse(layout(), "layout")?;
            let screen = store::seed::ensure_screen(pool, cinema_id, name, &layout).await?;
            summary.screens += 1;
            for day in 0..7 {
                let date = today + Duration::days(day);
                for (slot, (hour, minute)) in SLOTS.iter().enumerate() {
                    let Some(local) = NaiveTime::from_hms_opt(*hour, *minute, 0)
                        .and_then(|t| zone.from_local_datetime(&date.and_time(t)).single())
                    else {
                        continue;
                    };
                    let starts_at = local.with_timezone(&Utc);
                    if starts_at <= now {
                        continue;
                    }
                    // A fixed rotation, so every run picks the same film for a slot.
                    let pick = (screen_index * 5 + day as usize * 3 + slot) % films.len();
                    let (film_id, minutes) = films[pick];
                    let draft = ShowtimeRequest::parse(
                        ShowtimeInput {
                            film_id: film_id.to_string(),
                            screen_id: screen.id.to_string(),
                            starts_at: Some(starts_at),
                            currency: CURRENCY.into(),
                            prices: screen
                                .layout
                                .categories()
                                .into_iter()
                                .map(|c| (c.to_owned(), price(c, slot)))
                                .collect(),
                        },
                        now,
                    )?
                    .resolve(minutes, &screen.layout)?;
                    if store::seed::ensure_showtime(pool, &draft).await? {
                        summary.showtimes_added += 1;
                    }
                }
            }
            screen_index += 1;
        }
    }
    Ok(summary)
}
