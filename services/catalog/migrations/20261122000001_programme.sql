-- The programme: films, cinemas, screens with layouts, showtimes with prices.

-- btree_gist lets one exclusion constraint combine "same screen" (=) with
-- "overlapping time" (&&): two showtimes can never share a screen at once,
-- whatever the concurrency. pg_trgm makes substring search on titles indexable.
CREATE EXTENSION IF NOT EXISTS btree_gist;
CREATE EXTENSION IF NOT EXISTS pg_trgm;

-- Controlled vocabularies, so a filter for an unknown genre or language is an
-- error the caller can act on rather than a silently empty page.
CREATE TABLE genres (
    slug text PRIMARY KEY,
    name text NOT NULL UNIQUE
);

CREATE TABLE languages (
    code text PRIMARY KEY,  -- ISO 639-1
    name text NOT NULL UNIQUE
);

INSERT INTO genres (slug, name) VALUES
    ('action', 'Action'), ('adventure', 'Adventure'), ('animation', 'Animation'),
    ('comedy', 'Comedy'), ('crime', 'Crime'), ('documentary', 'Documentary'),
    ('drama', 'Drama'), ('family', 'Family'), ('fantasy', 'Fantasy'),
    ('history', 'History'), ('horror', 'Horror'), ('musical', 'Musical'),
    ('mystery', 'Mystery'), ('romance', 'Romance'), ('sci-fi', 'Sci-Fi'),
    ('thriller', 'Thriller'), ('war', 'War'), ('western', 'Western');

INSERT INTO languages (code, name) VALUES
    ('en', 'English'), ('hi', 'Hindi'), ('ta', 'Tamil'), ('te', 'Telugu'),
    ('ml', 'Malayalam'), ('kn', 'Kannada'), ('bn', 'Bengali'), ('mr', 'Marathi'),
    ('fr', 'French'), ('de', 'German'), ('es', 'Spanish'), ('it', 'Italian'),
    ('ja', 'Japanese'), ('ko', 'Korean'), ('zh', 'Chinese'), ('ru', 'Russian'),
    ('pt', 'Portuguese'), ('xx', 'No dialogue');

CREATE TABLE films (
    id                 uuid PRIMARY KEY,
    slug               text NOT NULL UNIQUE,
    title              text NOT NULL,
    synopsis           text NOT NULL DEFAULT '',
    language_code      text NOT NULL REFERENCES languages (code),
    duration_minutes   integer NOT NULL CHECK (duration_minutes BETWEEN 1 AND 600),
    certificate        text NOT NULL,
    poster_url         text NOT NULL DEFAULT '',
    trailer_url        text NOT NULL DEFAULT '',
    trailer_youtube_id text NOT NULL DEFAULT '',
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now()
);

-- The listing order and its keyset pagination.
CREATE INDEX films_listing_order ON films (lower(title), id);
CREATE INDEX films_language ON films (language_code);
CREATE INDEX films_title_trgm ON films USING gin (title gin_trgm_ops);

CREATE TABLE film_genres (
    film_id    uuid NOT NULL REFERENCES films (id) ON DELETE CASCADE,
    genre_slug text NOT NULL REFERENCES genres (slug),
    PRIMARY KEY (film_id, genre_slug)
);
CREATE INDEX film_genres_by_genre ON film_genres (genre_slug, film_id);

CREATE TABLE cinemas (
    id         uuid PRIMARY KEY,
    name       text NOT NULL,
    city       text NOT NULL,
    address    text NOT NULL DEFAULT '',
    time_zone  text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (name, city)
);

CREATE TABLE screens (
    id         uuid PRIMARY KEY,
    cinema_id  uuid NOT NULL REFERENCES cinemas (id),
    name       text NOT NULL,
    -- The validated SeatLayout (rows, aisles). Stored whole: it is read and
    -- written as one value and never queried inside.
    layout     jsonb NOT NULL,
    capacity   integer NOT NULL CHECK (capacity > 0),
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (cinema_id, name)
);

CREATE TABLE showtimes (
    id         uuid PRIMARY KEY,
    film_id    uuid NOT NULL REFERENCES films (id),
    screen_id  uuid NOT NULL REFERENCES screens (id),
    starts_at  timestamptz NOT NULL,
    ends_at    timestamptz NOT NULL,
    currency   text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    created_at timestamptz NOT NULL DEFAULT now(),
    CHECK (ends_at > starts_at),
    CONSTRAINT showtimes_no_overlap_on_a_screen
        EXCLUDE USING gist (screen_id WITH =, tstzrange(starts_at, ends_at) WITH &&)
);
CREATE INDEX showtimes_by_film ON showtimes (film_id, starts_at);

CREATE TABLE showtime_prices (
    showtime_id  uuid NOT NULL REFERENCES showtimes (id) ON DELETE CASCADE,
    category     text NOT NULL,
    amount_minor bigint NOT NULL CHECK (amount_minor > 0),
    PRIMARY KEY (showtime_id, category)
);
