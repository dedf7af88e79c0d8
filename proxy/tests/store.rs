//! The store's behaviour on both backends: every test runs on SQLite and on the
//! PostgreSQL server at `ACTAS_TEST_POSTGRES` (default 127.0.0.1:5432, database `test`),
//! each run in a schema of its own so runs never collide. PostgreSQL being unreachable is
//! a failure with a message, never a silent skip.

use actas_proxy::audit::chain::{compute_hash, Verifier, GENESIS};
use actas_proxy::audit::Record;
use actas_proxy::directory::{Role, Status};
use actas_proxy::store::audit::{AuditFilter, AuditFrom, AuditKey};
use actas_proxy::store::directory::{AccountsFrom, NewAccount};
use actas_proxy::store::sessions::{NewImpersonation, NewSession};
use actas_proxy::store::{now_ms, Backend, Store, StoreError};

fn postgres_base() -> String {
    std::env::var("ACTAS_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// A fresh PostgreSQL schema, and a URL whose connections use it.
pub async fn postgres_schema(tag: &str) -> String {
    use sqlx::Connection;
    let base = postgres_base();
    let schema = format!("t_{tag}_{}_{}", std::process::id(), now_ms());
    let mut c = sqlx::PgConnection::connect(&base).await.unwrap_or_else(|e| {
        panic!("PostgreSQL is required for the store tests and is not reachable at {base}: {e}. Start it or set ACTAS_TEST_POSTGRES.")
    });
    sqlx::query(&format!("CREATE SCHEMA {schema}"))
        .execute(&mut c)
        .await
        .expect("create schema");
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}options=-c%20search_path%3D{schema}")
}

async fn backends(tag: &str) -> Vec<(Store, tempfile::TempDir)> {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = Store::open(
        &format!("sqlite://{}", dir.path().join("t.db").display()),
        4,
    )
    .await
    .unwrap();
    let pg = Store::open(&postgres_schema(tag).await, 4).await.unwrap();
    assert_eq!(sqlite.backend(), Backend::Sqlite);
    assert_eq!(pg.backend(), Backend::Postgres);
    let dir2 = tempfile::tempdir().unwrap();
    vec![(sqlite, dir), (pg, dir2)]
}

async fn seed(store: &Store) {
    for (u, role, by) in [
        ("ada", Role::Admin, None),
        ("rita", Role::Reseller, Some("ada")),
        ("carl", Role::Customer, Some("rita")),
    ] {
        assert!(store
            .add_account(NewAccount {
                username: u,
                display_name: u,
                role,
                created_by: by,
                password_hash: "$argon2id$x"
            })
            .await
            .unwrap());
    }
}

#[tokio::test]
async fn accounts_are_added_found_listed_disabled_and_moved() {
    for (store, _dir) in backends("acc").await {
        seed(&store).await;
        assert!(
            !store
                .add_account(NewAccount {
                    username: "ada",
                    display_name: "x",
                    role: Role::Admin,
                    created_by: None,
                    password_hash: "h"
                })
                .await
                .unwrap(),
            "a taken username is refused"
        );
        let carl = store.account("carl").await.unwrap().unwrap();
        assert_eq!(carl.role, Role::Customer);
        assert_eq!(carl.created_by.as_deref(), Some("rita"));
        assert_eq!(
            store
                .accounts("", Some("rita"), &AccountsFrom::First, 10)
                .await
                .unwrap()
                .len(),
            1
        );
        assert_eq!(
            store
                .accounts("AR", None, &AccountsFrom::First, 10)
                .await
                .unwrap()
                .len(),
            1,
            "search is case-insensitive"
        );
        assert_eq!(
            store
                .accounts("%", None, &AccountsFrom::First, 10)
                .await
                .unwrap()
                .len(),
            0,
            "LIKE wildcards are literal"
        );
        assert!(store.set_status("carl", Status::Disabled).await.unwrap());
        assert_eq!(
            store.account("carl").await.unwrap().unwrap().status,
            Status::Disabled
        );
        assert!(store.set_created_by("carl", Some("ada")).await.unwrap());
        assert!(!store.set_status("nobody", Status::Disabled).await.unwrap());
        let (_, hash) = store.account_with_hash("ada").await.unwrap().unwrap();
        assert_eq!(hash, "$argon2id$x");
    }
}

#[tokio::test]
async fn impersonation_start_and_stop_are_atomic_and_happen_once() {
    for (store, _dir) in backends("imp").await {
        seed(&store).await;
        let now = now_ms();
        store
            .insert_session(NewSession {
                id: "s1",
                token_hash: "h1",
                actor: "ada",
                csrf_token: "c",
                now,
                expires_at: now + 60_000,
                client_ip: "127.0.0.1",
                user_agent: "t",
            })
            .await
            .unwrap();
        let ada = store.account("ada").await.unwrap().unwrap();
        let imp = |id: &'static str| NewImpersonation {
            id,
            subject: "carl",
            started_at: now,
            expires_at: now + 1000,
            reason: "r",
            mail_consent: true,
            return_to: "/x",
        };
        assert!(
            !store
                .start_impersonation("s1", "wrong-old-hash", "h2", &ada, imp("i0"))
                .await
                .unwrap(),
            "needs the current token"
        );
        assert!(store
            .start_impersonation("s1", "h1", "h2", &ada, imp("i1"))
            .await
            .unwrap());
        assert!(
            !store
                .start_impersonation("s1", "h2", "h3", &ada, imp("i2"))
                .await
                .unwrap(),
            "no nesting"
        );
        assert!(
            store.session_by_token("h1").await.unwrap().is_none(),
            "old token gone"
        );
        let s = store.session_by_token("h2").await.unwrap().unwrap();
        let i = s.impersonation.as_ref().unwrap();
        assert_eq!(
            (
                i.subject.username.as_str(),
                i.mail_consent,
                i.return_to.as_str()
            ),
            ("carl", true, "/x")
        );
        assert_eq!(s.subject().username, "carl");
        // Two instances race to end it: exactly one wins.
        let (a, b) = tokio::join!(
            store.end_impersonation("s1", "i1", Some("h3"), "stopped", now, None),
            store.end_impersonation("s1", "i1", None, "expired", now, Some("n"))
        );
        assert!(a.unwrap() ^ b.unwrap(), "exactly one ending");
        let history = store.impersonations_of("carl", None, 10).await.unwrap();
        assert_eq!(history.len(), 1);
        assert!(history[0].ended_at.is_some());
        store.delete_session("s1").await.unwrap();
        assert!(store.session_by_id("s1").await.unwrap().is_none());
    }
}

#[tokio::test]
async fn dead_sessions_are_found_and_revocations_outlive_a_re_enabled_account() {
    for (store, _dir) in backends("dead").await {
        seed(&store).await;
        store
            .add_account(NewAccount {
                username: "dora",
                display_name: "dora",
                role: Role::Customer,
                created_by: Some("rita"),
                password_hash: "h",
            })
            .await
            .unwrap();
        let now = now_ms();
        let session = |id: &'static str, actor: &'static str, seen: i64, expires: i64| NewSession {
            id,
            token_hash: id,
            actor,
            csrf_token: "c",
            now: seen,
            expires_at: expires,
            client_ip: "127.0.0.1",
            user_agent: "t",
        };
        for s in [
            session("live", "ada", now, now + 60_000),
            session("past-end", "rita", now - 10, now - 1),
            session("idle", "carl", now - 5_000, now + 60_000),
            session("of-disabled", "dora", now, now + 60_000),
        ] {
            store.insert_session(s).await.unwrap();
        }
        store.set_status("dora", Status::Disabled).await.unwrap();
        let ada = store.account("ada").await.unwrap().unwrap();
        assert!(store
            .start_impersonation(
                "live",
                "live",
                "live2",
                &ada,
                NewImpersonation {
                    id: "i1",
                    subject: "carl",
                    started_at: now,
                    expires_at: now + 60_000,
                    reason: "",
                    mail_consent: false,
                    return_to: "/",
                },
            )
            .await
            .unwrap());
        let dead = |store: Store| async move {
            let mut ids: Vec<String> = store
                .dead_sessions(now, now - 1_000, 100)
                .await
                .unwrap()
                .into_iter()
                .map(|(hash, s)| {
                    // Starting the impersonation replaced live's token.
                    let token = if s.id == "live" {
                        "live2"
                    } else {
                        s.id.as_str()
                    };
                    assert_eq!(hash, token, "each comes with its token hash");
                    s.id
                })
                .collect();
            ids.sort();
            ids
        };
        assert_eq!(
            dead(store.clone()).await,
            ["idle", "of-disabled", "past-end"]
        );
        assert_eq!(
            store
                .dead_sessions(now, now - 1_000, 2)
                .await
                .unwrap()
                .len(),
            2
        );

        // Revoked sessions and impersonations stay revoked when the account is enabled again.
        assert_eq!(store.revoke_sessions("ada").await.unwrap(), 1);
        assert_eq!(store.revoke_impersonations_of("carl").await.unwrap(), 1);
        assert_eq!(store.revoke_impersonations_of("rita").await.unwrap(), 0);
        store.set_status("dora", Status::Active).await.unwrap();
        assert_eq!(dead(store.clone()).await, ["idle", "live", "past-end"]);
        let live = store.session_by_id("live").await.unwrap().unwrap();
        assert_eq!(live.expires_at, actas_proxy::store::sessions::REVOKED);
        assert_eq!(
            live.impersonation.unwrap().expires_at,
            actas_proxy::store::sessions::REVOKED
        );

        // Ending is done once: a second delete says it found nothing.
        assert!(store.delete_session("idle").await.unwrap());
        assert!(!store.delete_session("idle").await.unwrap());
    }
}

fn record(instance: &str, seq: i64, prev: &str) -> Record {
    let mut r = Record {
        id: format!("{instance}-{seq}"),
        instance: instance.into(),
        seq,
        ts: now_ms() + seq,
        kind: "request".into(),
        actor: Some("ada".into()),
        subject: Some("carl".into()),
        session_id: None,
        impersonation_id: Some("i1".into()),
        request_id: None,
        method: Some("GET".into()),
        host: None,
        path: Some(format!("/{seq}")),
        status: None,
        bytes_out: Some(1),
        duration_ms: None,
        client_ip: None,
        user_agent: Some("ü ☃ unicode".into()),
        decision: None,
        reason: None,
        prev_hash: prev.into(),
        hash: String::new(),
    };
    r.hash = compute_hash(&r);
    r
}

/// Records 1..=`n` of `instance`'s chain, each changed by `vary` before it is hashed.
fn chain(instance: &str, n: i64, vary: impl Fn(&mut Record)) -> Vec<Record> {
    let mut prev = GENESIS.to_owned();
    (1..=n)
        .map(|seq| {
            let mut r = record(instance, seq, &prev);
            vary(&mut r);
            r.hash = compute_hash(&r);
            prev = r.hash.clone();
            r
        })
        .collect()
}

#[tokio::test]
async fn the_accounts_directory_is_read_a_page_at_a_time_by_username_either_way() {
    for (store, _dir) in backends("accpg").await {
        // Added out of order, every third by rita, so a filter and paging meet.
        for n in (0..250).rev() {
            let username = format!("u{n:03}");
            let creator = (n % 3 == 0).then_some("rita");
            if creator.is_some() && store.account("rita").await.unwrap().is_none() {
                store
                    .add_account(NewAccount {
                        username: "rita",
                        display_name: "Rita",
                        role: Role::Reseller,
                        created_by: None,
                        password_hash: "h",
                    })
                    .await
                    .unwrap();
            }
            assert!(store
                .add_account(NewAccount {
                    username: &username,
                    display_name: "x",
                    role: Role::Customer,
                    created_by: creator,
                    password_hash: "h",
                })
                .await
                .unwrap());
        }
        let names = |list: Vec<actas_proxy::directory::Account>| {
            list.into_iter().map(|a| a.username).collect::<Vec<_>>()
        };
        let all: Vec<String> = (0..250).map(|n| format!("u{n:03}")).collect();
        // Forward page after page, then back from the end: every name once, in order.
        let mut walked = Vec::new();
        let mut from = AccountsFrom::First;
        loop {
            let page = names(store.accounts("u", None, &from, 100).await.unwrap());
            walked.extend(page.iter().cloned());
            match page.last() {
                Some(last) if page.len() == 100 => from = AccountsFrom::After(last.clone()),
                _ => break,
            }
        }
        assert_eq!(walked, all);
        let back = names(
            store
                .accounts("u", None, &AccountsFrom::Before("u200".into()), 100)
                .await
                .unwrap(),
        );
        assert_eq!(
            back,
            all[100..200],
            "the 100 before u200, in username order"
        );
        let back = names(
            store
                .accounts("u", None, &AccountsFrom::Before("u050".into()), 100)
                .await
                .unwrap(),
        );
        assert_eq!(back, all[..50]);
        // With a search and a creator: the same order among the matches only.
        let ritas: Vec<String> = all.iter().step_by(3).cloned().collect();
        let first = names(
            store
                .accounts("", Some("rita"), &AccountsFrom::First, 40)
                .await
                .unwrap(),
        );
        assert_eq!(first, ritas[..40]);
        let next = names(
            store
                .accounts(
                    "",
                    Some("rita"),
                    &AccountsFrom::After(first[39].clone()),
                    40,
                )
                .await
                .unwrap(),
        );
        assert_eq!(next, ritas[40..80]);
        let one = names(
            store
                .accounts("U12", None, &AccountsFrom::After("u120".into()), 100)
                .await
                .unwrap(),
        );
        assert_eq!(
            one,
            ["u121", "u122", "u123", "u124", "u125", "u126", "u127", "u128", "u129"]
        );
    }
}

#[tokio::test]
async fn a_customers_access_history_is_read_newest_first_a_page_at_a_time() {
    for (store, _dir) in backends("histpg").await {
        // 25 impersonations of carl, three to a millisecond, and one of cora.
        for n in 0..26_i64 {
            let subject = if n == 25 { "cora" } else { "carl" };
            sqlx::query(
                "INSERT INTO impersonations (id, session_id, actor, actor_role, subject, started_at, reason, mail_consent) \
                 VALUES ($1, 's', 'ada', 'admin', $2, $3, '', 0)",
            )
            .bind(format!("imp-{n:02}"))
            .bind(subject)
            .bind(1_000 + n / 3)
            .execute(store.pool())
            .await
            .unwrap();
        }
        let mut expected: Vec<String> = (0..25).map(|n| format!("imp-{n:02}")).collect();
        expected.reverse();
        let mut walked = Vec::new();
        let mut before: Option<(i64, String)> = None;
        loop {
            let page = store
                .impersonations_of("carl", before.as_ref().map(|(t, id)| (*t, id.as_str())), 7)
                .await
                .unwrap();
            walked.extend(page.iter().map(|i| i.id.clone()));
            match page.last() {
                Some(last) if page.len() == 7 => before = Some((last.started_at, last.id.clone())),
                _ => break,
            }
        }
        assert_eq!(walked, expected, "every one once, newest first, ties by id");
    }
}

#[tokio::test]
async fn audit_records_round_trip_exactly_and_chains_stay_apart() {
    for (store, _dir) in backends("aud").await {
        let batch = chain("a", 1200, |_| {});
        store.insert_audit(&batch).await.unwrap();
        store
            .insert_audit(&[record("b", 1, GENESIS)])
            .await
            .unwrap();
        assert_eq!(store.audit_chain_head("a").await.unwrap().unwrap().0, 1200);
        assert_eq!(
            store.audit_instances().await.unwrap(),
            vec!["a".to_owned(), "b".to_owned()]
        );
        let back = store.audit_chain("a", 0, 5000).await.unwrap();
        assert_eq!(back, batch, "every field comes back exactly");
        let mut v = Verifier::new("a");
        for r in &back {
            v.check(r).unwrap();
        }
        // A duplicate seq in a chain is refused, and the whole batch with it.
        let dup = vec![record("b", 2, GENESIS), record("b", 1, GENESIS)];
        assert!(store.insert_audit(&dup).await.is_err());
        assert_eq!(
            store.audit_chain("b", 0, 10).await.unwrap().len(),
            1,
            "all or nothing"
        );
        // The same for a batch of several statements (one transaction), refused in its
        // last statement; the store takes the next batch as if nothing happened.
        let mut big: Vec<_> = (2..=150).map(|seq| record("b", seq, GENESIS)).collect();
        big.push(record("b", 1, GENESIS));
        assert!(store.insert_audit(&big).await.is_err());
        assert_eq!(store.audit_chain("b", 0, 500).await.unwrap().len(), 1);
        big.pop();
        store.insert_audit(&big).await.unwrap();
        store
            .insert_audit(&[record("b", 151, GENESIS)])
            .await
            .unwrap();
        assert_eq!(store.audit_chain("b", 0, 500).await.unwrap().len(), 151);
        let f = AuditFilter {
            instance: Some("a".into()),
            ..AuditFilter::default()
        };
        assert_eq!(
            store
                .audit_records(&f, true, &AuditFrom::First, 5)
                .await
                .unwrap()[0]
                .seq,
            1200
        );
    }
}

#[tokio::test]
async fn an_export_read_page_by_page_repeats_no_record_when_an_older_one_lands_between_pages() {
    use actas_proxy::store::audit::AuditPages;
    for (store, _dir) in backends("audpg").await {
        let base = now_ms();
        // Ten records ten milliseconds apart, then an eleventh dated before all of them (a
        // long request's record is dated when it arrived and written when it ended).
        let mut all = chain("e", 11, |r| r.ts = base + 10 * r.seq);
        let late = all.pop().unwrap();
        store.insert_audit(&all).await.unwrap();
        let mut pages = AuditPages::new(AuditFilter::default(), 4);
        let mut seen = Vec::new();
        let first = pages.next(&store).await.unwrap();
        assert_eq!(first.len(), 4);
        seen.extend(first.iter().map(|r| r.id.clone()));
        let mut late = late;
        late.ts = base;
        late.hash = compute_hash(&late);
        store.insert_audit(&[late]).await.unwrap();
        loop {
            let page = pages.next(&store).await.unwrap();
            if page.is_empty() {
                break;
            }
            seen.extend(page.iter().map(|r| r.id.clone()));
        }
        let mut unique = seen.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), seen.len(), "a record repeats: {seen:?}");
        let expected: Vec<String> = all.iter().map(|r| r.id.clone()).collect();
        assert_eq!(
            seen, expected,
            "every record written before the export, in order"
        );
    }
}

#[tokio::test]
async fn the_audit_log_is_read_a_page_at_a_time_by_key_either_way_and_pages_do_not_shift() {
    for (store, _dir) in backends("audkey").await {
        let base = now_ms();
        // Two chains whose records share milliseconds (three to one, in both chains), so
        // only the whole key (ts, instance, seq) says where a record is; every seventh is
        // rita's, which the filter leaves out.
        let vary = |r: &mut Record| {
            r.ts = base + r.seq / 3;
            if r.seq % 7 == 0 {
                r.actor = Some("rita".into());
            }
        };
        let mut written = chain("x", 25, vary);
        written.extend(chain("y", 25, vary));
        store.insert_audit(&written).await.unwrap();
        let filter = AuditFilter {
            actor: Some("ada".into()),
            ..AuditFilter::default()
        };
        let key = |r: &Record| (r.ts, r.instance.clone(), r.seq);
        let mut newest_first: Vec<Record> = written
            .iter()
            .filter(|r| r.actor.as_deref() == Some("ada"))
            .cloned()
            .collect();
        newest_first.sort_by_key(|r| std::cmp::Reverse(key(r)));
        let ids = |rs: &[Record]| rs.iter().map(|r| r.id.clone()).collect::<Vec<_>>();
        let read = |newest: bool, from: AuditFrom| {
            let (store, filter) = (store.clone(), filter.clone());
            async move {
                store
                    .audit_records(&filter, newest, &from, 7)
                    .await
                    .unwrap()
            }
        };

        let mut oldest_first = newest_first.clone();
        oldest_first.reverse();
        // Page after page from the first, each read on from the last record of the page
        // before (older ones when newest first): every record once, in order.
        type Onward = fn(AuditKey) -> AuditFrom;
        let onwards: [(bool, Onward, &[Record]); 2] = [
            (true, AuditFrom::Before, &newest_first),
            (false, AuditFrom::After, &oldest_first),
        ];
        for (newest, onward, expected) in onwards {
            let mut walked = Vec::new();
            let mut from = AuditFrom::First;
            loop {
                let page = read(newest, from).await;
                walked.extend(page.iter().cloned());
                match page.last() {
                    Some(last) if page.len() == 7 => from = onward(AuditKey::of(last)),
                    _ => break,
                }
            }
            assert_eq!(ids(&walked), ids(expected), "newest first: {newest}");
        }

        // Back the other way from a key: the records nearest to it, in the order shown.
        let k = AuditKey::of(&newest_first[20]);
        assert_eq!(
            ids(&read(true, AuditFrom::After(k.clone())).await),
            ids(&newest_first[13..20]),
            "newer than the key, newest first"
        );
        assert_eq!(
            ids(&read(false, AuditFrom::Before(k.clone())).await),
            ids(&oldest_first[oldest_first.len() - 28..oldest_first.len() - 21]),
            "older than the key, oldest first"
        );
        assert!(read(true, AuditFrom::After(AuditKey::of(&newest_first[0])))
            .await
            .is_empty());

        // Records written while someone reads do not shift the next page.
        let first = read(true, AuditFrom::First).await;
        let second = read(true, AuditFrom::Before(AuditKey::of(&first[6]))).await;
        let newer = chain("z", 10, |r| r.ts = base + 1_000 + r.seq);
        store.insert_audit(&newer).await.unwrap();
        let again = read(true, AuditFrom::Before(AuditKey::of(&first[6]))).await;
        assert_eq!(ids(&again), ids(&second), "the second page as it was");
        assert_eq!(
            read(true, AuditFrom::First).await[0].instance,
            "z",
            "the first page now starts with the newest"
        );
    }
}

#[tokio::test]
async fn an_audit_batch_refuses_rows_beyond_what_it_was_begun_for() {
    for (store, _dir) in backends("audb").await {
        // A lone-statement batch (no transaction) would write a second statement on its
        // own: refused. So is a statement of more than 64 rows in a larger batch.
        let mut lone = store.begin_audit(1).await.unwrap();
        lone.insert(&[record("c", 1, GENESIS)]).await.unwrap();
        let over = lone.insert(&[record("c", 2, GENESIS)]).await;
        assert!(matches!(over, Err(StoreError::BatchOverrun(_))), "{over:?}");
        lone.commit().await.unwrap();
        let rows: Vec<_> = (2..=101).map(|seq| record("c", seq, GENESIS)).collect();
        let mut big = store.begin_audit(rows.len()).await.unwrap();
        let over = big.insert(&rows[..65]).await;
        assert!(matches!(over, Err(StoreError::BatchOverrun(_))), "{over:?}");
        big.insert(&rows[..64]).await.unwrap();
        big.insert(&rows[64..]).await.unwrap();
        big.commit().await.unwrap();
        let seqs: Vec<i64> = store
            .audit_chain("c", 0, 500)
            .await
            .unwrap()
            .iter()
            .map(|r| r.seq)
            .collect();
        assert_eq!(seqs, (1..=101).collect::<Vec<i64>>());
    }
}

#[tokio::test]
async fn audit_filters_find_exactly_the_matching_records_and_use_their_index() {
    for (store, _dir) in backends("audf").await {
        let batch = chain("f", 30, |r| {
            r.actor = Some(if r.seq % 3 == 0 { "ada" } else { "rita" }.into());
            r.subject = Some(if r.seq % 5 == 0 { "carl" } else { "cora" }.into());
            r.impersonation_id = (r.seq % 10 == 0).then(|| "imp-1".to_owned());
        });
        store.insert_audit(&batch).await.unwrap();
        let count = |f: AuditFilter| {
            let store = store.clone();
            async move {
                store
                    .audit_records(&f, true, &AuditFrom::First, 100)
                    .await
                    .unwrap()
            }
        };
        let by_actor = count(AuditFilter {
            actor: Some("ada".into()),
            ..AuditFilter::default()
        })
        .await;
        assert_eq!(by_actor.len(), 10);
        assert!(by_actor.iter().all(|r| r.actor.as_deref() == Some("ada")));
        let both = count(AuditFilter {
            actor: Some("ada".into()),
            subject: Some("carl".into()),
            ..AuditFilter::default()
        })
        .await;
        assert_eq!(
            both.iter().map(|r| r.seq).collect::<Vec<_>>(),
            vec![30, 15],
            "newest first, both filters applied"
        );
        let imp = count(AuditFilter {
            impersonation_id: Some("imp-1".into()),
            since: Some(0),
            ..AuditFilter::default()
        })
        .await;
        assert_eq!(imp.len(), 3);
        // An empty filter value means "any", as the audit page sends it.
        let any = count(AuditFilter {
            actor: Some(String::new()),
            ..AuditFilter::default()
        })
        .await;
        assert_eq!(any.len(), 30);

        if store.backend() == Backend::Sqlite {
            for (column, filter) in [
                (
                    "audit_actor",
                    AuditFilter {
                        actor: Some("ada".into()),
                        ..AuditFilter::default()
                    },
                ),
                (
                    "audit_subject",
                    AuditFilter {
                        subject: Some("carl".into()),
                        ..AuditFilter::default()
                    },
                ),
                (
                    "audit_impersonation",
                    AuditFilter {
                        impersonation_id: Some("imp-1".into()),
                        ..AuditFilter::default()
                    },
                ),
            ] {
                let (sql, values) =
                    actas_proxy::store::audit::audit_records_sql(&filter, false, None);
                let explain = format!("EXPLAIN QUERY PLAN {sql}");
                let mut q = sqlx::query(&explain).bind(i64::MIN).bind(i64::MAX);
                for v in values {
                    q = q.bind(v);
                }
                let plan: Vec<String> = q
                    .bind(100_i64)
                    .fetch_all(store.pool())
                    .await
                    .unwrap()
                    .iter()
                    .map(|row| sqlx::Row::get::<String, _>(row, "detail"))
                    .collect();
                assert!(
                    plan.iter().any(|p| p.contains(column)),
                    "{column} unused: {plan:?}"
                );
            }
        }
    }
}

#[tokio::test]
async fn sqlite_connections_are_set_up_for_the_request_path_and_the_audit_writer() {
    use actas_proxy::store::Durability;
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("p.db").display());
    Store::open(&url, 1).await.unwrap().close().await;
    // synchronous: 1 = NORMAL (request path), 2 = FULL (audit writer); temp_store 2 = MEMORY.
    for (durability, synchronous) in [(Durability::Process, 1), (Durability::Machine, 2)] {
        let store = Store::connect(&url, 1, durability).await.unwrap();
        let pragma = |name: &'static str| {
            let pool = store.pool().clone();
            async move {
                let row = sqlx::query(&format!("PRAGMA {name}"))
                    .fetch_one(&pool)
                    .await
                    .unwrap();
                use sqlx::Row;
                row.try_get::<String, _>(0)
                    .or_else(|_| row.try_get::<i64, _>(0).map(|v| v.to_string()))
                    .unwrap()
            }
        };
        assert_eq!(pragma("journal_mode").await, "wal", "{durability:?}");
        assert_eq!(
            pragma("synchronous").await,
            synchronous.to_string(),
            "{durability:?}"
        );
        assert_eq!(pragma("busy_timeout").await, "5000", "{durability:?}");
        assert_eq!(pragma("foreign_keys").await, "1", "{durability:?}");
        // Statement journals of multi-row inserts stay in memory, never in /var/tmp.
        assert_eq!(pragma("temp_store").await, "2", "{durability:?}");
        store.close().await;
    }
}

/// The bundled SQLite is compiled with `.cargo/config.toml`'s `LIBSQLITE3_FLAGS`: without
/// memory statistics, whose global mutex SQLite otherwise takes around every allocation
/// (about 4% of the audit writer's SQLite thread). Losing that file would only cost speed,
/// so this test is what notices.
#[tokio::test]
async fn sqlite_is_built_without_memory_statistics() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("m.db").display());
    let store = Store::open(&url, 1).await.unwrap();
    let options: Vec<String> = sqlx::query_scalar("PRAGMA compile_options")
        .fetch_all(store.pool())
        .await
        .unwrap();
    assert!(
        options.iter().any(|o| o == "DEFAULT_MEMSTATUS=0"),
        "SQLite keeps memory statistics; its compile options: {options:?}"
    );
    store.close().await;
}

/// The names of the indexes the database keeps for the `audit` table.
async fn audit_indexes(store: &Store) -> Vec<String> {
    let sql = match store.backend() {
        Backend::Sqlite => {
            "SELECT name FROM pragma_index_list('audit') ORDER BY name"
        }
        Backend::Postgres => {
            "SELECT indexname::text AS name FROM pg_indexes WHERE tablename = 'audit' AND schemaname = current_schema() ORDER BY indexname"
        }
    };
    sqlx::query(sql)
        .fetch_all(store.pool())
        .await
        .unwrap()
        .iter()
        .map(|row| sqlx::Row::get::<String, _>(row, "name"))
        .collect()
}

/// The audit records made during one impersonation, oldest first (at most 500).
async fn made_during(store: &Store, impersonation_id: &str) -> Vec<Record> {
    let filter = AuditFilter {
        impersonation_id: Some(impersonation_id.into()),
        ..AuditFilter::default()
    };
    store
        .audit_records(&filter, false, &AuditFrom::First, 500)
        .await
        .unwrap()
}

#[tokio::test]
async fn the_impersonation_index_holds_only_records_made_while_impersonating() {
    for (store, _dir) in backends("audimp").await {
        let batch = chain("p", 40, |r| {
            r.impersonation_id = (r.seq % 10 == 0).then(|| format!("imp-{}", r.seq));
        });
        store.insert_audit(&batch).await.unwrap();
        let (definition, plan_sql, uses) = match store.backend() {
            Backend::Sqlite => (
                "SELECT sql AS d FROM sqlite_master WHERE name = 'audit_impersonation'",
                // INDEXED BY fails the statement if the index cannot serve the lookup.
                "SELECT COUNT(*) AS n FROM audit INDEXED BY audit_impersonation WHERE impersonation_id = $1",
                "WHERE impersonation_id IS NOT NULL",
            ),
            Backend::Postgres => (
                "SELECT indexdef AS d FROM pg_indexes WHERE indexname = 'audit_impersonation' AND schemaname = current_schema()",
                "EXPLAIN SELECT COUNT(*) AS n FROM audit WHERE impersonation_id = $1",
                "WHERE (impersonation_id IS NOT NULL)",
            ),
        };
        let row = sqlx::query(definition)
            .fetch_one(store.pool())
            .await
            .unwrap();
        let d: String = sqlx::Row::get(&row, "d");
        assert!(d.contains(uses), "{d}");
        // A lookup by id still goes through it.
        let mut conn = store.pool().acquire().await.unwrap();
        if store.backend() == Backend::Postgres {
            sqlx::query("SET enable_seqscan = off")
                .execute(&mut *conn)
                .await
                .unwrap();
        }
        let rows = sqlx::query(plan_sql)
            .bind("imp-20")
            .fetch_all(&mut *conn)
            .await
            .unwrap();
        match store.backend() {
            Backend::Sqlite => assert_eq!(sqlx::Row::get::<i64, _>(&rows[0], "n"), 1),
            Backend::Postgres => {
                let plan: Vec<String> = rows
                    .iter()
                    .map(|r| sqlx::Row::get::<String, _>(r, 0))
                    .collect();
                assert!(
                    plan.iter().any(|l| l.contains("audit_impersonation")),
                    "{plan:?}"
                );
            }
        }
        drop(conn);
        let found = made_during(&store, "imp-30").await;
        assert_eq!(found.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![30]);
    }
}

/// A store at `url` as the first release left it: only migration 1 applied.
async fn as_the_first_release_left_it(url: &str) -> Store {
    use actas_proxy::store::Durability;
    use std::borrow::Cow;
    let store = Store::connect(url, 1, Durability::Process).await.unwrap();
    let mut first = sqlx::migrate!("./migrations");
    first.migrations = Cow::Owned(
        first
            .migrations
            .iter()
            .filter(|m| m.version == 1)
            .cloned()
            .collect(),
    );
    first.run(store.pool()).await.unwrap();
    store
}

#[tokio::test]
async fn an_audit_log_of_the_first_schema_is_rekeyed_by_chain_with_every_record_intact() {
    let dir = tempfile::tempdir().unwrap();
    let urls = [
        format!("sqlite://{}", dir.path().join("m.db").display()),
        postgres_schema("mig").await,
    ];
    for url in urls {
        // A store as the first release left it: only migration 1 applied, records written.
        let old = as_the_first_release_left_it(&url).await;
        assert_eq!(
            audit_indexes(&old).await.len(),
            6,
            "{url}: id, (instance, seq) and four"
        );
        let a = chain("a", 150, |r| {
            r.impersonation_id = (r.seq % 2 == 0).then(|| "imp-2".to_owned());
        });
        let b = chain("b", 3, |r| r.reason = Some("a 'quoted' reason".into()));
        old.insert_audit(&a).await.unwrap();
        old.insert_audit(&b).await.unwrap();
        old.close().await;

        let store = Store::open(&url, 2).await.unwrap();
        assert_eq!(store.audit_chain("a", 0, 500).await.unwrap(), a, "{url}");
        assert_eq!(store.audit_chain("b", 0, 500).await.unwrap(), b, "{url}");
        for (instance, records) in [("a", &a), ("b", &b)] {
            let mut v = Verifier::new(instance);
            for r in records {
                v.check(r).unwrap();
            }
        }
        // The record id has no index of its own any more; the chain key and the four
        // filter indexes are kept, under their old names.
        let indexes = audit_indexes(&store).await;
        assert_eq!(indexes.len(), 5, "{url}: {indexes:?}");
        for name in [
            "audit_actor",
            "audit_impersonation",
            "audit_subject",
            "audit_ts",
        ] {
            assert!(indexes.iter().any(|i| i == name), "{url}: {indexes:?}");
        }
        let by_imp = made_during(&store, "imp-2").await;
        assert_eq!(by_imp.len(), 75, "{url}");
        // The chain key still refuses a second record at the same place, and the chain
        // goes on where it was.
        assert!(store
            .insert_audit(&[record("a", 150, GENESIS)])
            .await
            .is_err());
        let next = record("a", 151, &a[149].hash);
        store
            .insert_audit(std::slice::from_ref(&next))
            .await
            .unwrap();
        assert_eq!(
            store.audit_chain_head("a").await.unwrap(),
            Some((151, next.hash))
        );
        let leftover = sqlx::query("SELECT COUNT(*) AS n FROM audit")
            .fetch_one(store.pool())
            .await
            .unwrap();
        assert_eq!(sqlx::Row::get::<i64, _>(&leftover, "n"), 154, "{url}");
        store.close().await;
    }
}

/// A client can put NUL in what the proxy records (a username it asks to impersonate, say),
/// and PostgreSQL's `text` cannot hold it: the writer stores U+FFFD in its place on both
/// backends, instead of a batch no attempt could ever write.
#[test]
fn the_audit_writer_stores_text_holding_nul_on_both_backends() {
    use actas_proxy::audit::writer::{WriterHandle, WriterSettings};
    use actas_proxy::audit::{Event, Kind};
    use std::time::Duration;
    let patience = Duration::from_secs(20);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let urls = [
        format!("sqlite://{}", dir.path().join("w.db").display()),
        rt.block_on(postgres_schema("nul")),
    ];
    for url in urls {
        rt.block_on(async { Store::open(&url, 1).await.unwrap().close().await });
        let writer = WriterHandle::start(WriterSettings {
            url: url.clone(),
            instance: "w".into(),
            capacity: 64,
            batch_max: 64,
            linger: Duration::from_secs(3600),
        })
        .unwrap();
        let log = writer.log();
        let mut e = Event::new(Kind::ImpersonationDenied);
        e.actor = Some("carl".into());
        e.subject = Some("\0".into());
        e.path = Some("/x\0y".into());
        rt.block_on(async {
            tokio::time::timeout(patience, log.record_durably(e, patience))
                .await
                .expect("the record was never written")
                .unwrap();
        });
        writer.shutdown();
        let records = rt.block_on(async {
            let store = Store::open(&url, 1).await.unwrap();
            let records = store.audit_chain("w", 0, 10).await.unwrap();
            store.close().await;
            records
        });
        assert_eq!(records.len(), 1, "{url}");
        assert_eq!(records[0].subject.as_deref(), Some("\u{fffd}"), "{url}");
        assert_eq!(records[0].path.as_deref(), Some("/x\u{fffd}y"), "{url}");
        Verifier::new("w").check(&records[0]).unwrap();
    }
}

#[tokio::test]
async fn inspecting_a_database_reports_its_schema_and_changes_nothing() {
    use actas_proxy::store::{Durability, Schema};
    let dir = tempfile::tempdir().unwrap();

    // An SQLite file that is not there is reported, not made.
    let missing = dir.path().join("missing.db");
    let (backend, schema) = Store::inspect(&format!("sqlite://{}", missing.display()))
        .await
        .unwrap();
    assert_eq!((backend, schema), (Backend::Sqlite, Schema::NotCreated));
    assert!(!missing.exists(), "inspect created the database");

    let all: Vec<i64> = sqlx::migrate!("./migrations")
        .iter()
        .map(|m| m.version)
        .collect();
    let urls = [
        format!("sqlite://{}", dir.path().join("i.db").display()),
        postgres_schema("inspect").await,
    ];
    for url in urls {
        // Nothing applied yet (an empty database): every migration is pending.
        let empty = Store::connect(&url, 1, Durability::Process).await.unwrap();
        empty.close().await;
        let (_, schema) = Store::inspect(&url).await.unwrap();
        assert_eq!(
            schema,
            Schema::Behind {
                pending: all.clone()
            },
            "{url}"
        );

        // As the first release left it: only migration 1 applied.
        let old = as_the_first_release_left_it(&url).await;
        let count = || async {
            let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM _sqlx_migrations")
                .fetch_one(old.pool())
                .await
                .unwrap();
            n
        };
        let (_, schema) = Store::inspect(&url).await.unwrap();
        assert_eq!(
            schema,
            Schema::Behind {
                pending: all[1..].to_vec()
            },
            "{url}"
        );
        assert_eq!(
            schema.to_string(),
            format!(
                "{} migrations pending (2, 3); serve applies them",
                all.len() - 1
            )
        );
        assert_eq!(count().await, 1, "{url}: inspect applied migrations");

        // Current once serve's open has run.
        Store::open(&url, 1).await.unwrap().close().await;
        let (backend, schema) = Store::inspect(&url).await.unwrap();
        assert_eq!(schema, Schema::Current, "{url}");
        assert_eq!(backend == Backend::Sqlite, url.starts_with("sqlite:"));

        // What serve would refuse, check refuses too, saying why.
        let refused = |what: &'static str| {
            let url = url.clone();
            async move {
                match Store::inspect(&url).await {
                    Err(StoreError::Schema(message)) => message,
                    other => panic!("{url}: {what}: {other:?}"),
                }
            }
        };
        sqlx::query(
            "UPDATE _sqlx_migrations SET checksum = ? WHERE version = 2"
                .replace(
                    '?',
                    if url.starts_with("sqlite:") {
                        "x'00'"
                    } else {
                        "'\\x00'::bytea"
                    },
                )
                .as_str(),
        )
        .execute(old.pool())
        .await
        .unwrap();
        assert!(refused("changed").await.contains("migration 2"), "{url}");
        sqlx::query("UPDATE _sqlx_migrations SET success = (1 = 0) WHERE version = 1")
            .execute(old.pool())
            .await
            .unwrap();
        assert!(refused("failed").await.contains("failed part-way"), "{url}");
        sqlx::query("DELETE FROM _sqlx_migrations WHERE version <> 3")
            .execute(old.pool())
            .await
            .unwrap();
        sqlx::query(
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
             SELECT 999, 'later', success, checksum, execution_time FROM _sqlx_migrations WHERE version = 3",
        )
        .execute(old.pool())
        .await
        .unwrap();
        assert!(refused("newer").await.contains("newer release"), "{url}");
        old.close().await;
    }
}
