-- The gateway's own data: accounts, their server-side sessions, password
-- reset tokens and the counters that throttle guessing.
--
-- Secrets are never stored as given: passwords as argon2id PHC strings,
-- session and reset tokens as SHA-256 digests, so a copy of this database
-- opens no account and no session.

CREATE TABLE users (
    id            uuid PRIMARY KEY,
    -- As the person typed it (shown back to them) ...
    email         text NOT NULL,
    -- ... and the form uniqueness is decided on: emails are unique whatever
    -- their case.
    email_key     text NOT NULL UNIQUE CHECK (email_key = lower(email)),
    display_name  text NOT NULL,
    password_hash text NOT NULL,
    is_staff      boolean NOT NULL DEFAULT false,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE sessions (
    token_hash   bytea PRIMARY KEY,
    user_id      uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- The synchronizer token every form and state-changing API call of this
    -- session must carry.
    csrf_token   text NOT NULL,
    created_at   timestamptz NOT NULL,
    last_seen_at timestamptz NOT NULL,
    -- Absolute end, however active the session is.
    expires_at   timestamptz NOT NULL
);
CREATE INDEX sessions_by_user ON sessions (user_id);
CREATE INDEX sessions_by_expiry ON sessions (expires_at);

CREATE TABLE password_resets (
    token_hash bytea PRIMARY KEY,
    user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    -- Set once, by the conditional update that consumes the token.
    used_at    timestamptz
);
CREATE INDEX password_resets_by_user ON password_resets (user_id);

-- Attempts per key ("login:account:<email>", "login:address:<ip>", ...) in a
-- fixed window; a key over its limit is refused until the window ends.
CREATE TABLE auth_throttle (
    key          text PRIMARY KEY,
    window_start timestamptz NOT NULL,
    attempts     integer NOT NULL
);
