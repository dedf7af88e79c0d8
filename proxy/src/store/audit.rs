//! Queries of the `audit` table.

use sqlx::any::{AnyArguments, AnyRow};
use sqlx::{Arguments, Row};

use super::{Backend, Store, StoreError};
use crate::audit::Record;

const COLUMNS: [&str; 22] = [
    "id",
    "instance",
    "seq",
    "ts",
    "kind",
    "actor",
    "subject",
    "session_id",
    "impersonation_id",
    "request_id",
    "method",
    "host",
    "path",
    "status",
    "bytes_out",
    "duration_ms",
    "client_ip",
    "user_agent",
    "decision",
    "reason",
    "prev_hash",
    "hash",
];

/// Rows per INSERT statement (1,408 parameters: well under both backends' limits).
///
/// On SQLite the placeholders are anonymous `?`: sqlx looks every parameter's name up, and
/// SQLite finds a *named* parameter (`$N`) by a linear scan, which made binding quadratic
/// in the statement's size (measured: 29% of the audit writer's CPU in
/// `sqlite3_bind_parameter_name` at 24 rows per statement).
pub const ROWS_PER_STATEMENT: usize = 64;

/// Which records to read.
#[derive(Clone, Debug, Default)]
pub struct AuditFilter {
    /// Only this actor.
    pub actor: Option<String>,
    /// Only this subject.
    pub subject: Option<String>,
    /// Only this impersonation.
    pub impersonation_id: Option<String>,
    /// Only this kind.
    pub kind: Option<String>,
    /// From (ms, inclusive).
    pub since: Option<i64>,
    /// Until (ms, exclusive).
    pub until: Option<i64>,
    /// Only this instance's chain.
    pub instance: Option<String>,
}

fn record(row: &AnyRow) -> Result<Record, StoreError> {
    Ok(Record {
        id: row.try_get("id")?,
        instance: row.try_get("instance")?,
        seq: row.try_get("seq")?,
        ts: row.try_get("ts")?,
        kind: row.try_get("kind")?,
        actor: row.try_get("actor")?,
        subject: row.try_get("subject")?,
        session_id: row.try_get("session_id")?,
        impersonation_id: row.try_get("impersonation_id")?,
        request_id: row.try_get("request_id")?,
        method: row.try_get("method")?,
        host: row.try_get("host")?,
        path: row.try_get("path")?,
        status: row.try_get("status")?,
        bytes_out: row.try_get("bytes_out")?,
        duration_ms: row.try_get("duration_ms")?,
        client_ip: row.try_get("client_ip")?,
        user_agent: row.try_get("user_agent")?,
        decision: row.try_get("decision")?,
        reason: row.try_get("reason")?,
        prev_hash: row.try_get("prev_hash")?,
        hash: row.try_get("hash")?,
    })
}

/// `INSERT INTO audit … VALUES (…), (…)` for `rows` rows, with the backend's placeholders.
fn insert_sql(backend: Backend, rows: usize) -> String {
    use std::fmt::Write;
    let mut sql = format!("INSERT INTO audit ({}) VALUES ", COLUMNS.join(", "));
    for row in 0..rows {
        sql.push_str(if row == 0 { "(" } else { ", (" });
        for c in 0..COLUMNS.len() {
            if c > 0 {
                sql.push_str(", ");
            }
            match backend {
                Backend::Sqlite => sql.push('?'),
                Backend::Postgres => {
                    let _ = write!(sql, "${}", row * COLUMNS.len() + c + 1);
                }
            }
        }
        sql.push(')');
    }
    sql
}

/// Binds `records`' columns, row after row, to an INSERT made by [`insert_sql`]. Every
/// text is bound as a borrowed `&str`: sqlx's `Any` driver copies a bound `String` (or
/// `&String`) into a new one, which was an allocation and a copy for each of a record's
/// fifteen texts, freed again once SQLite had made its own copy.
fn insert_rows<'q>(
    mut q: sqlx::query::Query<'q, sqlx::Any, AnyArguments<'q>>,
    records: &'q [Record],
) -> sqlx::query::Query<'q, sqlx::Any, AnyArguments<'q>> {
    for r in records {
        q = q
            .bind(r.id.as_str())
            .bind(r.instance.as_str())
            .bind(r.seq)
            .bind(r.ts)
            .bind(r.kind.as_str())
            .bind(r.actor.as_deref())
            .bind(r.subject.as_deref())
            .bind(r.session_id.as_deref())
            .bind(r.impersonation_id.as_deref())
            .bind(r.request_id.as_deref())
            .bind(r.method.as_deref())
            .bind(r.host.as_deref())
            .bind(r.path.as_deref())
            .bind(r.status)
            .bind(r.bytes_out)
            .bind(r.duration_ms)
            .bind(r.client_ip.as_deref())
            .bind(r.user_agent.as_deref())
            .bind(r.decision.as_deref())
            .bind(r.reason.as_deref())
            .bind(r.prev_hash.as_str())
            .bind(r.hash.as_str());
    }
    q
}

/// A record's place in the log's order, `(ts, instance, seq)`: where a page of the audit
/// log starts or ends. Records are dated when their request arrived and several can share a
/// millisecond, so the time alone does not say where one is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditKey {
    /// The record's time (ms).
    pub ts: i64,
    /// The instance whose chain holds it.
    pub instance: String,
    /// Its place in that chain.
    pub seq: i64,
}

impl AuditKey {
    /// The key of `record`.
    pub fn of(record: &Record) -> AuditKey {
        AuditKey {
            ts: record.ts,
            instance: record.instance.clone(),
            seq: record.seq,
        }
    }
}

/// Where a read of the audit log starts: `First` is the newest records when read newest
/// first, the oldest when read oldest first; `Before` are older records, `After` newer.
pub type AuditFrom = super::PageFrom<AuditKey>;

/// The query [`Store::audit_records`] runs, ascending or descending by `(ts, instance, seq)`,
/// and the filter values it binds after `since` and `until`; then come, with `bound`, the
/// key's three values (only the records that sort before or after it), and `LIMIT` last.
/// Only the filters given become conditions, so the database can use the index for each:
/// `(actor = $1 OR $1 = '')` would hide it and scan by time.
pub fn audit_records_sql(
    filter: &AuditFilter,
    ascending: bool,
    bound: Option<std::cmp::Ordering>,
) -> (String, Vec<&str>) {
    let (mut conditions, values) = filter_conditions(filter);
    let mut next = values.len() + 3;
    if let Some(side) = bound {
        let op = if side.is_lt() { "<" } else { ">" };
        // A row value compares the way the ORDER BY sorts (SQLite ≥ 3.15 and PostgreSQL).
        conditions.push(format!(
            "(ts, instance, seq) {op} (${}, ${}, ${})",
            next,
            next + 1,
            next + 2
        ));
        next += 3;
    }
    let order = if ascending {
        "ts ASC, instance ASC, seq ASC"
    } else {
        "ts DESC, instance DESC, seq DESC"
    };
    let sql = format!(
        "SELECT {} FROM audit WHERE {} ORDER BY {order} LIMIT ${next}",
        COLUMNS.join(", "),
        conditions.join(" AND "),
    );
    (sql, values)
}

/// The conditions of `filter`: `ts >= $1 AND ts < $2`, then one for each filter value given
/// (`$3`, …), and those values in order.
fn filter_conditions(filter: &AuditFilter) -> (Vec<String>, Vec<&str>) {
    let mut conditions = vec!["ts >= $1".to_owned(), "ts < $2".to_owned()];
    let mut values: Vec<&str> = Vec::new();
    for (column, value) in [
        ("actor", &filter.actor),
        ("subject", &filter.subject),
        ("impersonation_id", &filter.impersonation_id),
        ("kind", &filter.kind),
        ("instance", &filter.instance),
    ] {
        if let Some(v) = value.as_deref().filter(|v| !v.is_empty()) {
            values.push(v);
            conditions.push(format!("{column} = ${}", values.len() + 2));
        }
    }
    (conditions, values)
}

/// Reads every record matching a filter, oldest first, a page at a time, for an export.
///
/// Each page starts after the last record of the one before by its sort key
/// `(ts, instance, seq)` (keyset paging), not at an offset: a record is dated when its
/// request arrived but written when it ended, so one dated earlier can land between two
/// pages, and an offset would then shift by one and print the last record of the page
/// before again. Such a late record sorts before the cursor and is not in this export (an
/// export started after it was written has it); every record read appears once, in order.
pub struct AuditPages {
    filter: AuditFilter,
    page_size: i64,
    from: AuditFrom,
    done: bool,
}

impl AuditPages {
    /// Pages of at most `page_size` records matching `filter`.
    pub fn new(filter: AuditFilter, page_size: i64) -> AuditPages {
        AuditPages {
            filter,
            page_size: page_size.max(1),
            from: AuditFrom::First,
            done: false,
        }
    }

    /// The next page; empty once every record has been read.
    pub async fn next(&mut self, store: &Store) -> Result<Vec<Record>, StoreError> {
        if self.done {
            return Ok(Vec::new());
        }
        let page = store
            .audit_records(&self.filter, false, &self.from, self.page_size)
            .await?;
        match page.last() {
            Some(last) if page.len() as i64 >= self.page_size => {
                self.from = AuditFrom::After(AuditKey::of(last));
            }
            _ => self.done = true,
        }
        Ok(page)
    }
}

/// One batch of audit records being written, all or none: a batch that fits one statement
/// is that one statement (atomic by itself), a larger one is a transaction. A lone
/// statement also spares SQLite the statement journal it keeps for every multi-row
/// statement inside a transaction, and the store two round trips (`BEGIN`, `COMMIT`).
///
/// The rows go in by [`AuditBatch::insert`], at most [`ROWS_PER_STATEMENT`] at a time,
/// so that a caller can prepare the next rows while the database stores the last ones.
pub struct AuditBatch<'s> {
    store: &'s Store,
    tx: Option<sqlx::Transaction<'static, sqlx::Any>>,
    /// Rows the batch was begun for and not inserted yet.
    left: usize,
}

impl AuditBatch<'_> {
    /// Inserts `records` (at most [`ROWS_PER_STATEMENT`]) as one statement.
    pub async fn insert(&mut self, records: &[Record]) -> Result<(), StoreError> {
        // More rows than begun for could land outside the transaction, or in a second
        // statement of a batch that has none: refused, so a batch stays all or none.
        if records.len() > ROWS_PER_STATEMENT || records.len() > self.left {
            return Err(StoreError::BatchOverrun(format!(
                "given {} rows with {} left of what it was begun for",
                records.len(),
                self.left
            )));
        }
        self.left -= records.len();
        match &mut self.tx {
            Some(tx) => self.store.insert_audit_rows(&mut **tx, records).await,
            None => {
                self.store
                    .insert_audit_rows(self.store.pool(), records)
                    .await
            }
        }
    }

    /// Makes the batch durable (a lone statement already is).
    pub async fn commit(self) -> Result<(), StoreError> {
        if let Some(tx) = self.tx {
            tx.commit().await?;
        }
        Ok(())
    }
}

impl Store {
    /// Begins a batch of `rows` audit records (see [`AuditBatch`]).
    pub async fn begin_audit(&self, rows: usize) -> Result<AuditBatch<'_>, StoreError> {
        let tx = if rows > ROWS_PER_STATEMENT {
            Some(self.pool().begin().await?)
        } else {
            None
        };
        Ok(AuditBatch {
            store: self,
            tx,
            left: rows,
        })
    }

    /// Writes `records` all or none, as one [`AuditBatch`].
    pub async fn insert_audit(&self, records: &[Record]) -> Result<(), StoreError> {
        let mut batch = self.begin_audit(records.len()).await?;
        for chunk in records.chunks(ROWS_PER_STATEMENT) {
            batch.insert(chunk).await?;
        }
        batch.commit().await
    }

    /// One INSERT of at most [`ROWS_PER_STATEMENT`] records, on the pool or in a transaction.
    async fn insert_audit_rows<'e, E>(
        &self,
        executor: E,
        records: &[Record],
    ) -> Result<(), StoreError>
    where
        E: sqlx::Executor<'e, Database = sqlx::Any>,
    {
        let sql = insert_sql(self.backend(), records.len());
        // Room for every value at once, rather than by doubling as they are bound.
        let mut args = AnyArguments::default();
        args.reserve(records.len() * COLUMNS.len(), 0);
        insert_rows(sqlx::query_with(&sql, args), records)
            .execute(executor)
            .await?;
        Ok(())
    }

    /// The last `(seq, hash)` of an instance's chain, if it has records.
    pub async fn audit_chain_head(
        &self,
        instance: &str,
    ) -> Result<Option<(i64, String)>, StoreError> {
        let row = sqlx::query(
            "SELECT seq, hash FROM audit WHERE instance = $1 ORDER BY seq DESC LIMIT 1",
        )
        .bind(instance)
        .fetch_optional(self.pool())
        .await?;
        match row {
            Some(r) => Ok(Some((r.try_get("seq")?, r.try_get("hash")?))),
            None => Ok(None),
        }
    }

    /// Every instance that has a chain.
    pub async fn audit_instances(&self) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query("SELECT DISTINCT instance FROM audit ORDER BY instance")
            .fetch_all(self.pool())
            .await?;
        rows.iter()
            .map(|r| r.try_get("instance").map_err(StoreError::from))
            .collect()
    }

    /// At most `limit` records matching `filter`, from `from` on, newest or oldest first.
    ///
    /// The audit page and `audit tail` read this way, a page at a time by the records' keys
    /// (keyset paging), never at an offset: a page does not shift when records are written
    /// while it is read, and a page far back costs what the first one does.
    pub async fn audit_records(
        &self,
        filter: &AuditFilter,
        newest_first: bool,
        from: &AuditFrom,
        limit: i64,
    ) -> Result<Vec<Record>, StoreError> {
        let mut since = filter.since.unwrap_or(i64::MIN);
        let mut until = filter.until.unwrap_or(i64::MAX);
        // The key's time also narrows the time range, so the scan of the time index starts
        // at the key rather than at the end of the range.
        let (ascending, bound) = match from {
            AuditFrom::First => (!newest_first, None),
            AuditFrom::Before(key) => {
                until = until.min(key.ts.saturating_add(1));
                (false, Some((std::cmp::Ordering::Less, key)))
            }
            AuditFrom::After(key) => {
                since = since.max(key.ts);
                (true, Some((std::cmp::Ordering::Greater, key)))
            }
        };
        let (sql, values) = audit_records_sql(filter, ascending, bound.map(|(side, _)| side));
        let mut query = sqlx::query(&sql).bind(since).bind(until);
        for v in values {
            query = query.bind(v);
        }
        if let Some((_, key)) = bound {
            query = query.bind(key.ts).bind(key.instance.as_str()).bind(key.seq);
        }
        let rows = query.bind(limit.max(0)).fetch_all(self.pool()).await?;
        let mut records = rows.iter().map(record).collect::<Result<Vec<_>, _>>()?;
        if ascending == newest_first {
            records.reverse();
        }
        Ok(records)
    }

    /// One chain's records in `seq` order, from `after_seq` (exclusive), at most `limit`.
    pub async fn audit_chain(
        &self,
        instance: &str,
        after_seq: i64,
        limit: i64,
    ) -> Result<Vec<Record>, StoreError> {
        match after_seq.checked_add(1) {
            Some(from) => self.audit_chain_from(instance, from, limit).await,
            None => Ok(Vec::new()),
        }
    }

    /// One chain's records in `seq` order, from `from_seq` (inclusive), at most `limit`.
    /// `audit verify` starts at `i64::MIN`: a chain starts at 1, but a row put in the table
    /// by hand may carry any number, and must be seen to be refused.
    pub async fn audit_chain_from(
        &self,
        instance: &str,
        from_seq: i64,
        limit: i64,
    ) -> Result<Vec<Record>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {} FROM audit WHERE instance = $1 AND seq >= $2 ORDER BY seq LIMIT $3",
            COLUMNS.join(", ")
        ))
        .bind(instance)
        .bind(from_seq)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(record).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_inserts_use_anonymous_placeholders_and_postgres_numbered_ones() {
        let sqlite = insert_sql(Backend::Sqlite, 2);
        assert!(!sqlite.contains('$'), "{sqlite}");
        assert_eq!(sqlite.matches('?').count(), 2 * COLUMNS.len());
        let pg = insert_sql(Backend::Postgres, 2);
        assert!(!pg.contains('?'), "{pg}");
        assert!(pg.contains("$1, $2") && pg.contains(&format!("${}", 2 * COLUMNS.len())));
        assert!(!pg.contains(&format!("${}", 2 * COLUMNS.len() + 1)));
    }
}
