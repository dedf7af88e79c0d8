//! The hash chain: how a record's hash is computed and how a chain is checked.
//!
//! `hash = SHA-256(prev_hash ‖ "\n" ‖ canonical)`, where `canonical` is the record as JSON
//! with a fixed field order and without `hash`. Both are lowercase hex. The first record of
//! a chain has 64 zeros as `prev_hash`.

use std::cell::RefCell;

use serde::Serialize;

use super::Record;

/// The `prev_hash` of a chain's first record.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

#[derive(Serialize)]
struct Canonical<'a> {
    id: &'a str,
    instance: &'a str,
    seq: i64,
    ts: i64,
    kind: &'a str,
    actor: &'a Option<String>,
    subject: &'a Option<String>,
    session_id: &'a Option<String>,
    impersonation_id: &'a Option<String>,
    request_id: &'a Option<String>,
    method: &'a Option<String>,
    host: &'a Option<String>,
    path: &'a Option<String>,
    status: Option<i64>,
    bytes_out: Option<i64>,
    duration_ms: Option<i64>,
    client_ip: &'a Option<String>,
    user_agent: &'a Option<String>,
    decision: &'a Option<String>,
    reason: &'a Option<String>,
    prev_hash: &'a str,
}

/// The hash `record` must carry, given its `prev_hash` and other fields.
pub fn compute_hash(record: &Record) -> String {
    thread_local! {
        /// The canonical form is written here, record after record, instead of into a
        /// new buffer grown for each one.
        static CANONICAL: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    }
    let canonical = Canonical {
        id: &record.id,
        instance: &record.instance,
        seq: record.seq,
        ts: record.ts,
        kind: &record.kind,
        actor: &record.actor,
        subject: &record.subject,
        session_id: &record.session_id,
        impersonation_id: &record.impersonation_id,
        request_id: &record.request_id,
        method: &record.method,
        host: &record.host,
        path: &record.path,
        status: record.status,
        bytes_out: record.bytes_out,
        duration_ms: record.duration_ms,
        client_ip: &record.client_ip,
        user_agent: &record.user_agent,
        decision: &record.decision,
        reason: &record.reason,
        prev_hash: &record.prev_hash,
    };
    CANONICAL.with(|buf| {
        let mut buf = buf.borrow_mut();
        buf.clear();
        // Serializing plain strings and integers cannot fail.
        if serde_json::to_writer(&mut *buf, &canonical).is_err() {
            buf.clear();
        }
        crate::digest::sha256_hex(&[record.prev_hash.as_bytes(), b"\n", &buf[..]])
    })
}

/// The first problem found walking one instance's chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Break {
    /// The chain.
    pub instance: String,
    /// The sequence number where it breaks.
    pub seq: i64,
    /// The record id there (if a record is there).
    pub id: Option<String>,
    /// What is wrong.
    pub problem: String,
}

impl std::fmt::Display for Break {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "chain {} broken at seq {}{}: {}",
            self.instance,
            self.seq,
            self.id
                .as_ref()
                .map(|i| format!(" (record {i})"))
                .unwrap_or_default(),
            self.problem
        )
    }
}

/// Walks records of one chain, in `seq` order, and stops at the first break.
#[derive(Debug)]
pub struct Verifier {
    instance: String,
    expected_seq: i64,
    prev_hash: String,
    checked: u64,
}

impl Verifier {
    /// A verifier for the chain of `instance`, starting at its first record.
    pub fn new(instance: &str) -> Verifier {
        Verifier {
            instance: instance.to_owned(),
            expected_seq: 1,
            prev_hash: GENESIS.to_owned(),
            checked: 0,
        }
    }

    /// Checks the next record.
    pub fn check(&mut self, r: &Record) -> Result<(), Break> {
        let brk = |seq: i64, problem: String| Break {
            instance: self.instance.clone(),
            seq,
            id: Some(r.id.clone()),
            problem,
        };
        if r.seq != self.expected_seq {
            return Err(brk(
                self.expected_seq,
                if r.seq < 1 {
                    format!(
                        "a record numbered {} is outside the chain, which starts at 1 (it was added by hand)",
                        r.seq
                    )
                } else if r.seq > self.expected_seq {
                    format!(
                        "records {}..{} are missing (deleted), next present is seq {}",
                        self.expected_seq,
                        r.seq - 1,
                        r.seq
                    )
                } else {
                    format!("seq {} appears out of order", r.seq)
                },
            ));
        }
        if r.prev_hash != self.prev_hash {
            return Err(brk(
                r.seq,
                "prev_hash does not match the previous record's hash (a record before it was removed, reordered or changed)".into(),
            ));
        }
        if compute_hash(r) != r.hash {
            return Err(brk(
                r.seq,
                "hash does not match the record's contents (a field was changed)".into(),
            ));
        }
        self.prev_hash = r.hash.clone();
        self.expected_seq += 1;
        self.checked += 1;
        Ok(())
    }

    /// How many records passed.
    pub fn checked(&self) -> u64 {
        self.checked
    }

    /// The last record that passed, as `(seq, hash)`: `(0, GENESIS)` before the first.
    pub fn head(&self) -> (i64, &str) {
        (self.expected_seq - 1, &self.prev_hash)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};

    fn chain(n: i64) -> Vec<Record> {
        let mut prev = GENESIS.to_owned();
        (1..=n)
            .map(|seq| {
                let mut r = Record {
                    id: format!("r{seq}"),
                    instance: "a".into(),
                    seq,
                    ts: 1_000 + seq,
                    kind: "request".into(),
                    actor: Some("ada".into()),
                    subject: Some("carl".into()),
                    session_id: None,
                    impersonation_id: None,
                    request_id: None,
                    method: Some("GET".into()),
                    host: None,
                    path: Some(format!("/p{seq}")),
                    status: Some(200),
                    bytes_out: Some(10),
                    duration_ms: Some(1),
                    client_ip: None,
                    user_agent: None,
                    decision: Some("allow".into()),
                    reason: None,
                    prev_hash: prev.clone(),
                    hash: String::new(),
                };
                r.hash = compute_hash(&r);
                prev = r.hash.clone();
                r
            })
            .collect()
    }

    #[test]
    fn the_hash_is_sha256_of_the_previous_hash_and_the_canonical_json() {
        // The format is a contract with every chain already stored: written out by hand
        // here, fields in their fixed order, absent ones as null.
        let mut r = chain(2).remove(1);
        r.user_agent = Some("a \"quoted\" agent \u{e9}".into());
        let canonical = format!(
            concat!(
                r#"{{"id":"r2","instance":"a","seq":2,"ts":1002,"kind":"request","#,
                r#""actor":"ada","subject":"carl","session_id":null,"impersonation_id":null,"#,
                r#""request_id":null,"method":"GET","host":null,"path":"/p2","status":200,"#,
                r#""bytes_out":10,"duration_ms":1,"client_ip":null,"#,
                r#""user_agent":"a \"quoted\" agent é","decision":"allow","reason":null,"#,
                r#""prev_hash":"{prev}"}}"#
            ),
            prev = r.prev_hash
        );
        let expected = hex::encode(Sha256::digest(
            format!("{}\n{canonical}", r.prev_hash).as_bytes(),
        ));
        assert_eq!(compute_hash(&r), expected);
        assert_eq!(expected.len(), 64);
        // The same record hashes the same every time (the buffer is reused, never mixed in).
        assert_eq!(compute_hash(&r), expected);
    }

    fn verify(records: &[Record]) -> Result<u64, Break> {
        let mut v = Verifier::new("a");
        for r in records {
            v.check(r)?;
        }
        Ok(v.checked())
    }

    #[test]
    fn an_intact_chain_verifies() {
        assert_eq!(verify(&chain(5)), Ok(5));
    }

    #[test]
    fn a_changed_field_is_caught_at_its_record() {
        let mut c = chain(5);
        c[2].subject = Some("cora".into());
        let b = verify(&c).unwrap_err();
        assert_eq!(b.seq, 3);
        assert!(b.problem.contains("field was changed"));
    }

    #[test]
    fn a_deleted_record_is_caught() {
        let mut c = chain(5);
        c.remove(1);
        let b = verify(&c).unwrap_err();
        assert_eq!(b.seq, 2);
        assert!(b.problem.contains("missing"));
    }

    #[test]
    fn reordered_records_are_caught() {
        let mut c = chain(5);
        c.swap(1, 2);
        assert_eq!(verify(&c).unwrap_err().seq, 2);
    }

    #[test]
    fn a_rehashed_changed_record_still_breaks_the_next_link() {
        let mut c = chain(5);
        c[1].status = Some(500);
        c[1].hash = compute_hash(&c[1]);
        let b = verify(&c).unwrap_err();
        assert_eq!(b.seq, 3);
        assert!(b.problem.contains("prev_hash"));
    }
}
