-- The audit table keyed by each record's place in its chain, (instance, seq), instead of
-- by its text id. The id stays a column of every record (it is in the hash and in every
-- export) but no index keeps it: nothing looks a record up by id, and on SQLite that index
-- was a seventh B-tree to write for every forwarded request. A duplicate (instance, seq)
-- is still refused, as before.
--
-- The same SQL runs on SQLite and PostgreSQL: the old table and its indexes are renamed
-- or dropped before the new ones take their names, then every record is copied as it was.
ALTER TABLE audit RENAME TO audit_v1;
DROP INDEX audit_ts;
DROP INDEX audit_actor;
DROP INDEX audit_subject;
DROP INDEX audit_impersonation;

CREATE TABLE audit (
    instance          TEXT NOT NULL,
    seq               BIGINT NOT NULL,
    id                TEXT NOT NULL,
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
    CONSTRAINT audit_chain PRIMARY KEY (instance, seq)
);

INSERT INTO audit (instance, seq, id, ts, kind, actor, subject, session_id, impersonation_id,
                   request_id, method, host, path, status, bytes_out, duration_ms, client_ip,
                   user_agent, decision, reason, prev_hash, hash)
SELECT instance, seq, id, ts, kind, actor, subject, session_id, impersonation_id,
       request_id, method, host, path, status, bytes_out, duration_ms, client_ip,
       user_agent, decision, reason, prev_hash, hash
FROM audit_v1;

DROP TABLE audit_v1;

CREATE INDEX audit_ts ON audit(ts);
CREATE INDEX audit_actor ON audit(actor, ts);
CREATE INDEX audit_subject ON audit(subject, ts);
CREATE INDEX audit_impersonation ON audit(impersonation_id);
