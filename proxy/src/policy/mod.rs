//! Policies: who may impersonate whom, and what a session may request, decided by the
//! Cedar files ops keep in the policy directory (`schema.cedarschema` and `*.cedar`).
//!
//! Rust only gathers facts (the accounts, the method and path, whether the session is
//! impersonating) and asks; there is no rule about roles in this crate's `if`s. A set is
//! validated against the schema before it is used; a reload that fails keeps the last
//! good set in force. This module never touches the store or the network.

mod cases;
mod load;
mod watch;

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, Mutex, RwLock};

use cedar_policy::{
    Authorizer, Context, Decision as CedarDecision, Entities, Entity, EntityId, EntityTypeName,
    EntityUid, Request, RestrictedExpression,
};

pub use cases::{run_tests, TestReport};
pub use watch::{watch, WatchGuard};

/// The facts about one account that policies see: borrowed from the account when asking
/// ([`AccountFacts`], no copy), owned where the policy cache keeps a question it has not
/// seen (`Facts<String>`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Facts<S> {
    /// Username.
    pub username: S,
    /// admin, reseller or customer.
    pub role: S,
    /// The creator's username.
    pub created_by: Option<S>,
    /// active or disabled.
    pub status: S,
}

/// The facts as policies are asked about them, borrowed from the account.
pub type AccountFacts<'a> = Facts<&'a str>;

impl<S> Facts<S> {
    /// The same facts with every string passed through `f`: copies to keep, or a view of
    /// kept ones to compare with [`AccountFacts`]'s own equality (no field left out).
    fn map<'s, T>(&'s self, f: impl Fn(&'s S) -> T) -> Facts<T> {
        Facts {
            username: f(&self.username),
            role: f(&self.role),
            created_by: self.created_by.as_ref().map(&f),
            status: f(&self.status),
        }
    }
}

/// The path policies see for a request target (`/mail/a/messages%2F1?x=1`): its path,
/// without the query, percent-decoded, so that an encoded spelling cannot slip past a
/// rule. The proxy, the console and `actas policy explain` all ask through this one
/// function, so that explain cannot answer for another path than the one the proxy checks.
pub fn request_path(target: &str) -> Cow<'_, str> {
    let path = target.split(['?', '#']).next().unwrap_or(target);
    percent_encoding::percent_decode_str(path).decode_utf8_lossy()
}

/// The facts of one request made while signed in.
pub struct RequestFacts<'a> {
    /// Who signed in.
    pub actor: &'a AccountFacts<'a>,
    /// Whom the request acts as.
    pub subject: &'a AccountFacts<'a>,
    /// Whether the session is impersonating.
    pub impersonating: bool,
    /// HTTP method.
    pub method: &'a str,
    /// Path without the query, percent-decoded: made by [`request_path`].
    pub path: &'a str,
    /// The impersonation was started with the customer's consent to read mail.
    pub mail_consent: bool,
}

/// A policy decision and what made it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// Allowed?
    pub allowed: bool,
    /// The `@id`s of the policies that decided (the permits that allowed it, or the
    /// forbids that denied it; empty when nothing permitted it).
    pub policy_ids: Vec<String>,
    /// Evaluation errors (a policy that failed to evaluate counts as not matching).
    pub errors: Vec<String>,
}

/// Why a policy set could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// A file could not be read.
    #[error("{path}: cannot read: {source}")]
    Read {
        /// The file or directory.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// One or more problems in the files, each `file:line:col: message`.
    #[error("{}", .0.join("\n"))]
    Invalid(Vec<String>),
    /// The file watcher could not start.
    #[error("cannot watch {path} for changes: {message}")]
    Watch {
        /// The directory.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// A policy test file is malformed.
    #[error("{path}: {message}")]
    Tests {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

/// A loaded, schema-validated set of policies.
pub struct PolicySet {
    policies: cedar_policy::PolicySet,
    impersonate: EntityUid,
    request: EntityUid,
    account_type: EntityTypeName,
    files: usize,
    /// Decisions this set has made, by a hash of every fact they were made from. Cedar is
    /// a pure function of those facts, and a reload brings a new set with an empty cache,
    /// so a cached decision is always the one a fresh evaluation would give.
    decisions: Mutex<HashMap<u64, (Asked, Arc<Decision>), ahash::RandomState>>,
    /// Keyed with random keys, as the path in a question is the client's: aHash instead of
    /// SipHash, which took about a microsecond a request for the two questions asked.
    hasher: ahash::RandomState,
}

/// Decisions kept per set before the cache starts over.
const CACHED_DECISIONS_MAX: usize = 4096;

/// Everything a cached decision was made from. An impersonation question leaves the
/// request fields empty; `action` keeps the two kinds apart.
#[derive(Hash)]
struct Question<'a> {
    action: &'static str,
    actor: &'a AccountFacts<'a>,
    subject: &'a AccountFacts<'a>,
    impersonating: bool,
    method: &'a str,
    path: &'a str,
    mail_consent: bool,
}

/// A [`Question`] kept with its answer, to rule out hash collisions.
struct Asked {
    action: &'static str,
    actor: Facts<String>,
    subject: Facts<String>,
    impersonating: bool,
    method: String,
    path: String,
    mail_consent: bool,
}

impl Asked {
    fn of(q: &Question<'_>) -> Asked {
        Asked {
            action: q.action,
            actor: q.actor.map(|s| (*s).to_owned()),
            subject: q.subject.map(|s| (*s).to_owned()),
            impersonating: q.impersonating,
            method: q.method.to_owned(),
            path: q.path.to_owned(),
            mail_consent: q.mail_consent,
        }
    }

    fn is(&self, q: &Question<'_>) -> bool {
        self.action == q.action
            && self.actor.map(String::as_str) == *q.actor
            && self.subject.map(String::as_str) == *q.subject
            && self.impersonating == q.impersonating
            && self.method == q.method
            && self.path == q.path
            && self.mail_consent == q.mail_consent
    }
}

fn account_uid(ty: &EntityTypeName, username: &str) -> EntityUid {
    EntityUid::from_type_name_and_id(ty.clone(), EntityId::new(username))
}

fn account_entity(ty: &EntityTypeName, a: &AccountFacts<'_>) -> Result<Entity, String> {
    let attrs = HashMap::from([
        (
            "username".to_owned(),
            RestrictedExpression::new_string(a.username.to_owned()),
        ),
        (
            "role".to_owned(),
            RestrictedExpression::new_string(a.role.to_owned()),
        ),
        (
            "created_by".to_owned(),
            RestrictedExpression::new_string(a.created_by.unwrap_or_default().to_owned()),
        ),
        (
            "status".to_owned(),
            RestrictedExpression::new_string(a.status.to_owned()),
        ),
    ]);
    Entity::new(account_uid(ty, a.username), attrs, HashSet::new()).map_err(|e| e.to_string())
}

impl PolicySet {
    /// Loads `dir/schema.cedarschema` and every `dir/*.cedar`, and validates them.
    pub fn load(dir: &Path) -> Result<PolicySet, PolicyError> {
        let loaded = load::load(dir)?;
        let action = |name: &str| {
            EntityUid::from_str(&format!("Actas::Action::\"{name}\""))
                .map_err(|e| PolicyError::Invalid(vec![format!("internal: action {name}: {e}")]))
        };
        Ok(PolicySet {
            impersonate: action("impersonate")?,
            request: action("request")?,
            account_type: EntityTypeName::from_str("Actas::Account")
                .map_err(|e| PolicyError::Invalid(vec![format!("internal: entity type: {e}")]))?,
            policies: loaded.policies,
            files: loaded.files,
            decisions: Mutex::new(HashMap::default()),
            hasher: ahash::RandomState::new(),
        })
    }

    /// "7 policies from 2 files".
    pub fn describe(&self) -> String {
        format!(
            "{} policies from {} files",
            self.policies.policies().count(),
            self.files
        )
    }

    fn decide(
        &self,
        principal: &AccountFacts<'_>,
        action: &EntityUid,
        resource: &AccountFacts<'_>,
        context: Vec<(String, RestrictedExpression)>,
    ) -> Decision {
        let deny = |e: String| Decision {
            allowed: false,
            policy_ids: Vec::new(),
            errors: vec![e],
        };
        let mut entities = vec![match account_entity(&self.account_type, principal) {
            Ok(e) => e,
            Err(e) => return deny(e),
        }];
        if resource.username != principal.username {
            match account_entity(&self.account_type, resource) {
                Ok(e) => entities.push(e),
                Err(e) => return deny(e),
            }
        }
        // The entities and context are built by this module to the schema's shape and the
        // policies were validated against it at load: re-checking per request only costs.
        let entities = match Entities::from_entities(entities, None) {
            Ok(e) => e,
            Err(e) => return deny(e.to_string()),
        };
        let context = match Context::from_pairs(context) {
            Ok(c) => c,
            Err(e) => return deny(e.to_string()),
        };
        let request = match Request::new(
            account_uid(&self.account_type, principal.username),
            action.clone(),
            account_uid(&self.account_type, resource.username),
            context,
            None,
        ) {
            Ok(r) => r,
            Err(e) => return deny(e.to_string()),
        };
        let response = Authorizer::new().is_authorized(&request, &self.policies, &entities);
        Decision {
            allowed: response.decision() == CedarDecision::Allow,
            policy_ids: response
                .diagnostics()
                .reason()
                .map(|id| id.to_string())
                .collect(),
            errors: response
                .diagnostics()
                .errors()
                .map(|e| e.to_string())
                .collect(),
        }
    }

    /// May `actor` start (or go on) impersonating `target`? Asked on every impersonated
    /// request, so answered from this set's cache when possible.
    pub fn can_impersonate(
        &self,
        actor: &AccountFacts<'_>,
        target: &AccountFacts<'_>,
        already_impersonating: bool,
    ) -> Arc<Decision> {
        let q = Question {
            action: "impersonate",
            actor,
            subject: target,
            impersonating: already_impersonating,
            method: "",
            path: "",
            mail_consent: false,
        };
        self.cached(&q, || {
            self.evaluate_impersonation(actor, target, already_impersonating)
        })
    }

    fn evaluate_impersonation(
        &self,
        actor: &AccountFacts<'_>,
        target: &AccountFacts<'_>,
        already_impersonating: bool,
    ) -> Decision {
        self.decide(
            actor,
            &self.impersonate,
            target,
            vec![(
                "impersonating".into(),
                RestrictedExpression::new_bool(already_impersonating),
            )],
        )
    }

    /// The cached answer to `q`, or `evaluate`'s, which is then cached (unless it carries
    /// evaluation errors: those are reported every time).
    /// Shared, so that a cached answer is handed out without copying its policy ids.
    fn cached(&self, q: &Question<'_>, evaluate: impl FnOnce() -> Decision) -> Arc<Decision> {
        let key = self.hasher.hash_one(q);
        if let Ok(cache) = self.decisions.lock() {
            if let Some((asked, decision)) = cache.get(&key) {
                if asked.is(q) {
                    return Arc::clone(decision);
                }
            }
        }
        let decision = Arc::new(evaluate());
        if decision.errors.is_empty() {
            if let Ok(mut cache) = self.decisions.lock() {
                if cache.len() >= CACHED_DECISIONS_MAX {
                    cache.clear();
                }
                cache.insert(key, (Asked::of(q), Arc::clone(&decision)));
            }
        }
        decision
    }

    /// May this request be made? Answered from this set's cache when the same facts were
    /// decided before.
    pub fn check_request(&self, f: &RequestFacts<'_>) -> Arc<Decision> {
        let q = Question {
            action: "request",
            actor: f.actor,
            subject: f.subject,
            impersonating: f.impersonating,
            method: f.method,
            path: f.path,
            mail_consent: f.mail_consent,
        };
        self.cached(&q, || self.evaluate_request(f))
    }

    fn evaluate_request(&self, f: &RequestFacts<'_>) -> Decision {
        self.decide(
            f.actor,
            &self.request,
            f.subject,
            vec![
                (
                    "impersonating".into(),
                    RestrictedExpression::new_bool(f.impersonating),
                ),
                (
                    "method".into(),
                    RestrictedExpression::new_string(f.method.to_owned()),
                ),
                (
                    "path".into(),
                    RestrictedExpression::new_string(f.path.to_owned()),
                ),
                (
                    "mail_consent".into(),
                    RestrictedExpression::new_bool(f.mail_consent),
                ),
            ],
        )
    }
}

/// The set in force, swapped whole on reload.
pub struct PolicyStore {
    dir: PathBuf,
    current: RwLock<Arc<PolicySet>>,
}

impl PolicyStore {
    /// A store starting with `initial`, reloading from `dir`.
    pub fn new(dir: PathBuf, initial: PolicySet) -> PolicyStore {
        PolicyStore {
            dir,
            current: RwLock::new(Arc::new(initial)),
        }
    }

    /// The set in force (a cheap clone of an `Arc`).
    pub fn current(&self) -> Arc<PolicySet> {
        match self.current.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Loads the directory again; on success the new set takes over, on failure the last
    /// good set stays and the error is returned.
    pub fn reload(&self) -> Result<Arc<PolicySet>, PolicyError> {
        let set = Arc::new(PolicySet::load(&self.dir)?);
        match self.current.write() {
            Ok(mut g) => *g = set.clone(),
            Err(poisoned) => *poisoned.into_inner() = set.clone(),
        }
        Ok(set)
    }

    /// The policy directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

fn verdict(d: &Decision) -> String {
    let mut out = String::new();
    if d.policy_ids.is_empty() {
        out.push_str(if d.allowed {
            "  decided by: (nothing)\n"
        } else {
            "  decided by: no policy permits it (Cedar denies by default)\n"
        });
    } else {
        out.push_str(&format!(
            "  decided by: {}{}\n",
            d.policy_ids.join(", "),
            if d.allowed { " (permit)" } else { " (forbid)" }
        ));
    }
    for e in &d.errors {
        out.push_str(&format!("  error: {e}\n"));
    }
    out
}

/// The text `actas policy explain --action impersonate` prints.
pub fn explain_impersonation(
    set: &PolicySet,
    actor: &AccountFacts<'_>,
    target: &AccountFacts<'_>,
    impersonating: bool,
) -> String {
    let d = set.can_impersonate(actor, target, impersonating);
    format!(
        "{:<6}{} ({}) → impersonate → {} ({}{}){}\n{}",
        if d.allowed { "ALLOW" } else { "DENY" },
        actor.username,
        actor.role,
        target.username,
        target.role,
        target
            .created_by
            .as_ref()
            .map(|c| format!(", created by {c}"))
            .unwrap_or_default(),
        if impersonating {
            " while impersonating"
        } else {
            ""
        },
        verdict(&d)
    )
}

/// The text `actas policy explain --action request` prints.
pub fn explain_request(set: &PolicySet, f: &RequestFacts<'_>) -> String {
    let d = set.check_request(f);
    format!(
        "{:<6}{} ({}) → {} {} as {}{}\n{}",
        if d.allowed { "ALLOW" } else { "DENY" },
        f.actor.username,
        f.actor.role,
        f.method,
        f.path,
        f.subject.username,
        if f.impersonating {
            if f.mail_consent {
                " (impersonating, with mail consent)"
            } else {
                " (impersonating)"
            }
        } else {
            ""
        },
        verdict(&d)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn shipped() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies")
    }

    fn acct<'a>(username: &'a str, role: &'a str, created_by: Option<&'a str>) -> AccountFacts<'a> {
        AccountFacts {
            username,
            role,
            created_by,
            status: "active",
        }
    }

    #[test]
    fn the_path_policies_see_is_decoded_and_without_its_query() {
        assert_eq!(request_path("/mail/a/messages%2F1"), "/mail/a/messages/1");
        assert_eq!(
            request_path("/mail/a/messages/1?raw=1#top"),
            "/mail/a/messages/1"
        );
        assert_eq!(request_path("/a%3Fb?c"), "/a?b");
        assert_eq!(request_path("/%ff"), "/\u{fffd}");
        let set = PolicySet::load(&shipped()).unwrap();
        let ada = acct("ada", "admin", None);
        let carl = acct("carl", "customer", Some("rita"));
        let d = set.check_request(&RequestFacts {
            actor: &ada,
            subject: &carl,
            impersonating: true,
            method: "GET",
            path: &request_path("/mail/a/messages%2F1"),
            mail_consent: false,
        });
        assert!(!d.allowed);
        assert_eq!(d.policy_ids, ["mail-content-needs-consent"]);
    }

    #[test]
    fn the_shipped_policies_load_and_validate() {
        let set = PolicySet::load(&shipped()).unwrap();
        assert!(
            set.describe().contains("policies from 2 files"),
            "{}",
            set.describe()
        );
    }

    #[test]
    fn decisions_name_the_policies_that_made_them() {
        let set = PolicySet::load(&shipped()).unwrap();
        let rita = acct("rita", "reseller", Some("ada"));
        let d = set.can_impersonate(&rita, &acct("carl", "customer", Some("rita")), false);
        assert!(d.allowed);
        assert_eq!(d.policy_ids, vec!["reseller-may-impersonate-own-customers"]);
        let d = set.can_impersonate(&rita, &acct("carl", "customer", Some("rita")), true);
        assert!(!d.allowed);
        assert_eq!(d.policy_ids, vec!["no-nested-impersonation"]);
        let d = set.can_impersonate(&rita, &acct("dave", "customer", Some("rex")), false);
        assert!(!d.allowed && d.policy_ids.is_empty());
        let text =
            explain_impersonation(&set, &rita, &acct("dave", "customer", Some("rex")), false);
        assert!(
            text.starts_with("DENY  rita (reseller) → impersonate → dave"),
            "{text}"
        );
    }

    #[test]
    fn the_shipped_policy_tests_pass() {
        let set = PolicySet::load(&shipped()).unwrap();
        let report = run_tests(&set, &shipped().join("tests")).unwrap();
        assert!(report.all_passed(), "{report}");
        assert!(report.total() >= 25, "{report}");
    }

    fn copy_of_shipped() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for f in [
            "schema.cedarschema",
            "impersonation.cedar",
            "requests.cedar",
        ] {
            std::fs::copy(shipped().join(f), dir.path().join(f)).unwrap();
        }
        dir
    }

    #[test]
    fn a_syntax_error_names_file_line_and_column() {
        let dir = copy_of_shipped();
        std::fs::write(
            dir.path().join("bad.cedar"),
            "// comment\n\npermit (principal, action, resource)\n  when { principal.role == };\n",
        )
        .unwrap();
        let err = PolicySet::load(dir.path()).err().unwrap().to_string();
        assert!(err.contains("bad.cedar:4:"), "{err}");
    }

    #[test]
    fn a_policy_that_breaks_the_schema_is_refused_with_its_location() {
        let dir = copy_of_shipped();
        std::fs::write(dir.path().join("colour.cedar"), "@id(\"x\")\npermit (principal, action == Actas::Action::\"request\", resource)\nwhen { principal.colour == \"blue\" };\n").unwrap();
        let err = PolicySet::load(dir.path()).err().unwrap().to_string();
        assert!(err.contains("colour.cedar:3:"), "{err}");
        assert!(err.contains("colour"), "{err}");
    }

    #[test]
    fn a_schema_error_names_the_schema_file() {
        let dir = copy_of_shipped();
        std::fs::write(
            dir.path().join("schema.cedarschema"),
            "namespace Actas {\n  entity Account = { username: Strin };\n}\n",
        )
        .unwrap();
        let err = PolicySet::load(dir.path()).err().unwrap().to_string();
        assert!(err.contains("schema.cedarschema"), "{err}");
    }

    #[test]
    fn duplicate_policy_ids_are_refused() {
        let dir = copy_of_shipped();
        std::fs::write(
            dir.path().join("zz_dup.cedar"),
            "@id(\"admin-may-impersonate-others\")\nforbid (principal, action, resource);\n",
        )
        .unwrap();
        let err = PolicySet::load(dir.path()).err().unwrap().to_string();
        assert!(
            err.contains("zz_dup.cedar:1:1") && err.contains("admin-may-impersonate-others"),
            "{err}"
        );
    }

    #[test]
    fn a_bad_reload_keeps_the_last_good_set_and_a_good_one_takes_over() {
        let dir = copy_of_shipped();
        let store = PolicyStore::new(dir.path().to_owned(), PolicySet::load(dir.path()).unwrap());
        let rita = acct("rita", "reseller", Some("ada"));
        let carl = acct("carl", "customer", Some("rita"));
        std::fs::write(dir.path().join("broken.cedar"), "permit (").unwrap();
        assert!(store.reload().is_err());
        assert!(
            store.current().can_impersonate(&rita, &carl, false).allowed,
            "old set still in force"
        );
        std::fs::write(dir.path().join("broken.cedar"), "@id(\"no-resellers\")\nforbid (principal, action == Actas::Action::\"impersonate\", resource) when { principal.role == \"reseller\" };\n").unwrap();
        store.reload().unwrap();
        let d = store.current().can_impersonate(&rita, &carl, false);
        assert!(!d.allowed);
        assert_eq!(d.policy_ids, vec!["no-resellers"]);
    }

    #[test]
    fn cached_request_decisions_never_answer_for_different_facts() {
        let set = PolicySet::load(&shipped()).unwrap();
        let ada = acct("ada", "admin", None);
        let carl = acct("carl", "customer", Some("rita"));
        let facts = |path: &'static str, consent: bool| RequestFacts {
            actor: &ada,
            subject: &carl,
            impersonating: true,
            method: "GET",
            path,
            mail_consent: consent,
        };
        let message = "/mail/inbox/messages/1";
        for _ in 0..3 {
            assert!(!set.check_request(&facts(message, false)).allowed);
            assert!(set.check_request(&facts(message, true)).allowed);
            assert!(set.check_request(&facts("/mail/inbox", false)).allowed);
            let disabled = AccountFacts {
                status: "disabled",
                ..carl
            };
            let f = RequestFacts {
                subject: &disabled,
                ..facts("/mail/inbox", false)
            };
            assert_eq!(*set.check_request(&f), set.evaluate_request(&f));
        }
        for i in 0..(CACHED_DECISIONS_MAX + 10) {
            let path = format!("/files/{i}");
            let f = RequestFacts {
                path: &path,
                ..facts("", false)
            };
            assert_eq!(*set.check_request(&f), set.evaluate_request(&f));
        }
        assert!(set.decisions.lock().unwrap().len() <= CACHED_DECISIONS_MAX);
        // An impersonation question never gets a request's answer, nor the other way round.
        let rita = acct("rita", "reseller", Some("ada"));
        for _ in 0..2 {
            assert!(set.can_impersonate(&rita, &carl, false).allowed);
            assert!(!set.can_impersonate(&rita, &carl, true).allowed);
            assert!(
                !set.can_impersonate(&rita, &acct("dave", "customer", Some("rex")), false)
                    .allowed
            );
        }
    }

    #[test]
    fn a_missing_directory_is_a_clear_error() {
        let err = PolicySet::load(Path::new("/nonexistent/policies"))
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("/nonexistent/policies"), "{err}");
    }
}
