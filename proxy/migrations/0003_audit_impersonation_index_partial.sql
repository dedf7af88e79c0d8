-- The impersonation index keeps only the records made while impersonating. Every other
-- record (a customer's or a staff member's own requests: nearly all of them) has no
-- impersonation id, and was one more B-tree entry to write for every forwarded request,
-- all under the same NULL key that no query asks for. A lookup by id (`impersonation_id =
-- $n`) implies the id is not NULL, so SQLite and PostgreSQL both still use the index.
DROP INDEX audit_impersonation;
CREATE INDEX audit_impersonation ON audit(impersonation_id) WHERE impersonation_id IS NOT NULL;
