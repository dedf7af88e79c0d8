-- The panel's schema: one row per account, everything else hangs off an account.
-- Timestamps are INTEGER unix seconds.

CREATE TABLE accounts (
    id          INTEGER PRIMARY KEY,
    username    TEXT    NOT NULL UNIQUE,
    created_at  INTEGER NOT NULL
);

-- A domain belongs to exactly one account, hence the global UNIQUE.
CREATE TABLE domains (
    id          INTEGER PRIMARY KEY,
    account_id  INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    name        TEXT    NOT NULL UNIQUE,
    created_at  INTEGER NOT NULL
);
CREATE INDEX domains_by_account ON domains(account_id, created_at, id);

-- `name` is the full, prefixed database name (`<username>_<short name>`).
CREATE TABLE databases (
    id          INTEGER PRIMARY KEY,
    account_id  INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    name        TEXT    NOT NULL UNIQUE,
    created_at  INTEGER NOT NULL
);
CREATE INDEX databases_by_account ON databases(account_id, name);

CREATE TABLE mailboxes (
    id          INTEGER PRIMARY KEY,
    account_id  INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    name        TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    UNIQUE (account_id, name)
);

CREATE TABLE messages (
    id           INTEGER PRIMARY KEY,
    mailbox_id   INTEGER NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
    sender       TEXT    NOT NULL,
    subject      TEXT    NOT NULL,
    body         TEXT    NOT NULL,
    received_at  INTEGER NOT NULL,
    is_read      INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX messages_by_mailbox ON messages(mailbox_id, received_at, id);

CREATE TABLE settings (
    account_id         INTEGER PRIMARY KEY REFERENCES accounts(id) ON DELETE CASCADE,
    contact_email      TEXT    NOT NULL,
    notify_billing     INTEGER NOT NULL,
    notify_security    INTEGER NOT NULL,
    notify_newsletter  INTEGER NOT NULL,
    updated_at         INTEGER NOT NULL
);

-- Who did what to an account. `subject` is whom the request acted as; the actor
-- columns are set only when the assertion carried an `act` claim (impersonation).
CREATE TABLE activity (
    id                INTEGER PRIMARY KEY,
    account_id        INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    at                INTEGER NOT NULL,
    kind              TEXT    NOT NULL,
    summary           TEXT    NOT NULL,
    subject           TEXT    NOT NULL,
    actor_username    TEXT,
    actor_role        TEXT,
    actor_name        TEXT,
    impersonation_id  TEXT,
    request_id        TEXT
);
CREATE INDEX activity_by_account ON activity(account_id, at DESC, id DESC);
