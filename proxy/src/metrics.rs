//! Counters and gauges, rendered in Prometheus text format at `/_actas/metrics`.
//!
//! Plain atomics in one static: incrementing one costs a relaxed add on the request path.
//! This module only counts; it never decides anything.

use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

/// Every metric the proxy exports.
#[derive(Default)]
pub struct Metrics {
    /// Requests handled.
    pub requests_total: AtomicU64,
    /// Requests forwarded to the panel.
    pub forwarded_total: AtomicU64,
    /// Requests forwarded while impersonating.
    pub impersonated_requests_total: AtomicU64,
    /// Sign-ins that succeeded.
    pub logins_total: AtomicU64,
    /// Sign-ins refused.
    pub login_failures_total: AtomicU64,
    /// Sign-ins throttled.
    pub login_throttled_total: AtomicU64,
    /// Impersonations started.
    pub impersonations_started_total: AtomicU64,
    /// Impersonations refused by policy.
    pub impersonations_denied_total: AtomicU64,
    /// Requests refused by policy.
    pub policy_denials_total: AtomicU64,
    /// Policy reloads that succeeded.
    pub policy_reloads_total: AtomicU64,
    /// Policy reloads refused.
    pub policy_reload_failures_total: AtomicU64,
    /// Banners injected.
    pub banners_injected_total: AtomicU64,
    /// Upstream failures (502).
    pub upstream_errors_total: AtomicU64,
    /// Audit records waiting in the queue.
    pub audit_queue_depth: AtomicI64,
    /// Audit records written.
    pub audit_records_total: AtomicU64,
    /// Audit batches attempted.
    pub audit_batches_total: AtomicU64,
    /// Audit batches that failed.
    pub audit_write_failures_total: AtomicU64,
    /// Audit records the store refused on their own, each replaced by a stand-in record.
    pub audit_records_unwritable_total: AtomicU64,
    /// Time spent writing audit batches, chaining them included (µs).
    pub audit_write_micros_total: AtomicU64,
    /// State-changing impersonated requests refused because the audit store was unavailable.
    pub audit_unavailable_total: AtomicU64,
}

/// The process's metrics.
pub static METRICS: Metrics = Metrics {
    requests_total: AtomicU64::new(0),
    forwarded_total: AtomicU64::new(0),
    impersonated_requests_total: AtomicU64::new(0),
    logins_total: AtomicU64::new(0),
    login_failures_total: AtomicU64::new(0),
    login_throttled_total: AtomicU64::new(0),
    impersonations_started_total: AtomicU64::new(0),
    impersonations_denied_total: AtomicU64::new(0),
    policy_denials_total: AtomicU64::new(0),
    policy_reloads_total: AtomicU64::new(0),
    policy_reload_failures_total: AtomicU64::new(0),
    banners_injected_total: AtomicU64::new(0),
    upstream_errors_total: AtomicU64::new(0),
    audit_queue_depth: AtomicI64::new(0),
    audit_records_total: AtomicU64::new(0),
    audit_batches_total: AtomicU64::new(0),
    audit_write_failures_total: AtomicU64::new(0),
    audit_records_unwritable_total: AtomicU64::new(0),
    audit_write_micros_total: AtomicU64::new(0),
    audit_unavailable_total: AtomicU64::new(0),
};

impl Metrics {
    /// Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(2048);
        let counters: [(&str, &str, &AtomicU64); 18] = [
            ("actas_requests_total", "Requests handled.", &self.requests_total),
            ("actas_forwarded_total", "Requests forwarded to the panel.", &self.forwarded_total),
            ("actas_impersonated_requests_total", "Requests forwarded while impersonating.", &self.impersonated_requests_total),
            ("actas_logins_total", "Successful sign-ins.", &self.logins_total),
            ("actas_login_failures_total", "Refused sign-ins.", &self.login_failures_total),
            ("actas_login_throttled_total", "Sign-ins refused by the rate limit.", &self.login_throttled_total),
            ("actas_impersonations_started_total", "Impersonations started.", &self.impersonations_started_total),
            ("actas_impersonations_denied_total", "Impersonations refused by policy.", &self.impersonations_denied_total),
            ("actas_policy_denials_total", "Requests refused by policy.", &self.policy_denials_total),
            ("actas_policy_reloads_total", "Policy reloads that took effect.", &self.policy_reloads_total),
            ("actas_policy_reload_failures_total", "Policy reloads refused.", &self.policy_reload_failures_total),
            ("actas_banners_injected_total", "Impersonation banners injected.", &self.banners_injected_total),
            ("actas_upstream_errors_total", "Requests answered 502 because the panel failed.", &self.upstream_errors_total),
            ("actas_audit_records_total", "Audit records written.", &self.audit_records_total),
            ("actas_audit_batches_total", "Audit batches attempted.", &self.audit_batches_total),
            ("actas_audit_write_failures_total", "Audit batches that failed.", &self.audit_write_failures_total),
            ("actas_audit_records_unwritable_total", "Audit records the store refused on their own; a stand-in record holds each one's place in the chain and the record is in the log.", &self.audit_records_unwritable_total),
            ("actas_audit_unavailable_total", "State-changing impersonated requests refused because the audit store was unavailable.", &self.audit_unavailable_total),
        ];
        for (name, help, v) in counters {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                v.load(Ordering::Relaxed)
            );
        }
        let _ = writeln!(
            out,
            "# HELP actas_audit_queue_depth Audit records waiting to be written.\n# TYPE actas_audit_queue_depth gauge\nactas_audit_queue_depth {}",
            self.audit_queue_depth.load(Ordering::Relaxed).max(0)
        );
        let _ = writeln!(
            out,
            "# HELP actas_audit_write_seconds_total Time spent writing audit batches, chaining them included.\n# TYPE actas_audit_write_seconds_total counter\nactas_audit_write_seconds_total {:.6}",
            self.audit_write_micros_total.load(Ordering::Relaxed) as f64 / 1e6
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_is_prometheus_text_with_help_and_type() {
        METRICS.requests_total.fetch_add(1, Ordering::Relaxed);
        let text = METRICS.render();
        assert!(text.contains("# TYPE actas_requests_total counter\nactas_requests_total "));
        assert!(text.contains("actas_audit_queue_depth "));
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let (name, value) = line.split_once(' ').unwrap();
            assert!(name.starts_with("actas_"), "{line}");
            assert!(value.parse::<f64>().is_ok(), "{line}");
        }
    }
}
