//! Policy tests: TOML files under `policies/tests/` that state facts and the decision the
//! policies must give. `actas policy test` runs them, and so does the test suite.
//!
//! ```toml
//! [[case]]
//! name = "a reseller may impersonate a customer they created"
//! action = "impersonate"                  # or "request"
//! actor  = { username = "rita", role = "reseller", created_by = "ada" }
//! target = { username = "carl", role = "customer", created_by = "rita" }  # the subject, for "request"
//! impersonating = false                   # optional
//! method = "GET"                          # "request" only, optional
//! path = "/mail/postmaster/messages/3"    # "request" only
//! mail_consent = false                    # "request" only, optional
//! expect = "allow"                        # or "deny"
//! ```

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{AccountFacts, PolicyError, PolicySet, RequestFacts};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    case: Vec<Case>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Account {
    username: String,
    role: String,
    created_by: Option<String>,
    status: Option<String>,
}

impl Account {
    fn facts(&self) -> AccountFacts<'_> {
        AccountFacts {
            username: &self.username,
            role: &self.role,
            created_by: self.created_by.as_deref(),
            status: self.status.as_deref().unwrap_or("active"),
        }
    }
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum Expect {
    Allow,
    Deny,
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum Action {
    Impersonate,
    Request,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    action: Action,
    actor: Account,
    target: Account,
    #[serde(default)]
    impersonating: bool,
    method: Option<String>,
    path: Option<String>,
    #[serde(default)]
    mail_consent: bool,
    expect: Expect,
}

/// One case's outcome.
pub struct Outcome {
    /// The file it came from.
    pub file: PathBuf,
    /// Its name.
    pub name: String,
    /// Passed?
    pub passed: bool,
    /// What the policies said and why.
    pub detail: String,
}

/// Every case's outcome.
pub struct TestReport {
    /// Outcomes in file and case order.
    pub outcomes: Vec<Outcome>,
}

impl TestReport {
    /// True when every case passed.
    pub fn all_passed(&self) -> bool {
        self.outcomes.iter().all(|o| o.passed)
    }

    /// How many cases ran.
    pub fn total(&self) -> usize {
        self.outcomes.len()
    }
}

impl fmt::Display for TestReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for o in &self.outcomes {
            if o.passed {
                writeln!(f, "ok    {}", o.name)?;
            } else {
                writeln!(f, "FAIL  {} ({}): {}", o.name, o.file.display(), o.detail)?;
            }
        }
        let passed = self.outcomes.iter().filter(|o| o.passed).count();
        writeln!(
            f,
            "{} passed, {} failed",
            passed,
            self.outcomes.len() - passed
        )
    }
}

/// Runs every `*.toml` file under `tests_dir` against `set`.
pub fn run_tests(set: &PolicySet, tests_dir: &Path) -> Result<TestReport, PolicyError> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(tests_dir)
        .map_err(|source| PolicyError::Read {
            path: tests_dir.to_owned(),
            source,
        })?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    let mut outcomes = Vec::new();
    for path in files {
        let text = std::fs::read_to_string(&path).map_err(|source| PolicyError::Read {
            path: path.clone(),
            source,
        })?;
        let file: File = toml::from_str(&text).map_err(|e| {
            let (line, col) = e
                .span()
                .map_or((1, 1), |s| crate::config::line_col(&text, s.start));
            PolicyError::Tests {
                path: path.clone(),
                message: format!("line {line}, column {col}: {}", e.message()),
            }
        })?;
        for case in file.case {
            let actor = case.actor.facts();
            let target = case.target.facts();
            let decision = match case.action {
                Action::Impersonate => set.can_impersonate(&actor, &target, case.impersonating),
                Action::Request => set.check_request(&RequestFacts {
                    actor: &actor,
                    subject: &target,
                    impersonating: case.impersonating,
                    method: case.method.as_deref().unwrap_or("GET"),
                    path: case.path.as_deref().unwrap_or("/"),
                    mail_consent: case.mail_consent,
                }),
            };
            let got = if decision.allowed {
                Expect::Allow
            } else {
                Expect::Deny
            };
            let word = |e: Expect| if e == Expect::Allow { "allow" } else { "deny" };
            outcomes.push(Outcome {
                file: path.clone(),
                name: case.name,
                passed: got == case.expect,
                detail: format!(
                    "expected {}, got {} (decided by: {})",
                    word(case.expect),
                    word(got),
                    if decision.policy_ids.is_empty() {
                        "no matching policy".to_owned()
                    } else {
                        decision.policy_ids.join(", ")
                    }
                ),
            });
        }
    }
    Ok(TestReport { outcomes })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_malformed_tests_file_is_a_clear_error() {
        let set = PolicySet::load(&super::super::tests::shipped()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("bad.toml"),
            "[[case]]\nname = \"x\"\naction = \"fly\"\n",
        )
        .unwrap();
        let err = run_tests(&set, dir.path()).err().unwrap().to_string();
        assert!(err.contains("bad.toml") && err.contains("line 3"), "{err}");
    }

    #[test]
    fn a_wrong_expectation_fails_and_says_why() {
        let set = PolicySet::load(&super::super::tests::shipped()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("t.toml"),
            "[[case]]\nname = \"wrong\"\naction = \"impersonate\"\nactor = { username = \"carl\", role = \"customer\" }\ntarget = { username = \"cora\", role = \"customer\" }\nexpect = \"allow\"\n",
        )
        .unwrap();
        let report = run_tests(&set, dir.path()).unwrap();
        assert!(!report.all_passed());
        let text = report.to_string();
        assert!(
            text.contains("FAIL  wrong") && text.contains("expected allow, got deny"),
            "{text}"
        );
        assert!(text.ends_with("0 passed, 1 failed\n"), "{text}");
    }
}
