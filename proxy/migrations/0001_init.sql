-- The directory, sessions, impersonations and the audit log. Times are milliseconds since
-- the epoch (BIGINT), booleans are 0/1 integers: the same SQL runs on SQLite and PostgreSQL.
CREATE TABLE accounts (
    username       TEXT PRIMARY KEY,
    display_name   TEXT NOT NULL,
    role           TEXT NOT NULL CHECK (role IN ('admin', 'reseller', 'customer')),
    created_by     TEXT NULL REFERENCES accounts(username),
    status         TEXT NOT NULL CHECK (status IN ('active', 'disabled')),
    password_hash  TEXT NOT NULL,
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL
);
CREATE INDEX accounts_created_by ON accounts(created_by);

CREATE TABLE sessions (
    id                TEXT PRIMARY KEY,
    token_hash        TEXT NOT NULL UNIQUE,
    actor             TEXT NOT NULL REFERENCES accounts(username),
    csrf_token        TEXT NOT NULL,
    created_at        BIGINT NOT NULL,
    last_seen_at      BIGINT NOT NULL,
    expires_at        BIGINT NOT NULL,
    client_ip         TEXT NOT NULL,
    user_agent        TEXT NOT NULL,
    imp_id            TEXT NULL,
    imp_subject       TEXT NULL REFERENCES accounts(username),
    imp_started_at    BIGINT NULL,
    imp_expires_at    BIGINT NULL,
    imp_last_seen_at  BIGINT NULL,
    imp_reason        TEXT NULL,
    imp_mail_consent  BIGINT NOT NULL DEFAULT 0,
    imp_return_to     TEXT NULL,
    notice            TEXT NULL
);
CREATE INDEX sessions_actor ON sessions(actor);

CREATE TABLE impersonations (
    id            TEXT PRIMARY KEY,
    session_id    TEXT NOT NULL,
    actor         TEXT NOT NULL,
    actor_role    TEXT NOT NULL,
    subject       TEXT NOT NULL,
    started_at    BIGINT NOT NULL,
    ended_at      BIGINT NULL,
    end_reason    TEXT NULL,
    reason        TEXT NOT NULL,
    mail_consent  BIGINT NOT NULL
);
CREATE INDEX impersonations_subject ON impersonations(subject, started_at);

CREATE TABLE audit (
    id                TEXT PRIMARY KEY,
    instance          TEXT NOT NULL,
    seq               BIGINT NOT NULL,
    ts                BIGINT NOT NULL,
    kind              TEXT NOT NULL,
    actor             TEXT NULL,
    subject           TEXT NULL,
    session_id        TEXT NULL,
    impersonation_id  TEXT NULL,
    request_id        TEXT NULL,
    method            TEXT NULL,
    host              TEXT NULL,
    path              TEXT NULL,
    status            BIGINT NULL,
    bytes_out         BIGINT NULL,
    duration_ms       BIGINT NULL,
    client_ip         TEXT NULL,
    user_agent        TEXT NULL,
    decision          TEXT NULL,
    reason            TEXT NULL,
    prev_hash         TEXT NOT NULL,
    hash              TEXT NOT NULL,
    UNIQUE (instance, seq)
);
CREATE INDEX audit_ts ON audit(ts);
CREATE INDEX audit_actor ON audit(actor, ts);
CREATE INDEX audit_subject ON audit(subject, ts);
CREATE INDEX audit_impersonation ON audit(impersonation_id);
