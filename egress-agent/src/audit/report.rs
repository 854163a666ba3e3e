//! One row per check and target: what the table, `--json` and the metrics show.

use serde::{Deserialize, Serialize};

use crate::telemetry::exposition::{Exposition, MetricType};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Pass,
    Warn,
    Fail,
}

impl Outcome {
    pub const fn as_str(self) -> &'static str {
        match self {
            Outcome::Pass => "pass",
            Outcome::Warn => "warn",
            Outcome::Fail => "fail",
        }
    }

    /// The value of `egress_audit_check`.
    pub const fn metric_value(self) -> f64 {
        match self {
            Outcome::Pass => 1.0,
            Outcome::Warn => 0.5,
            Outcome::Fail => 0.0,
        }
    }
}

/// `{"check", "target", "result", "detail"}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Row {
    pub check: String,
    pub target: String,
    pub result: Outcome,
    pub detail: String,
}

impl Row {
    pub fn new(
        check: &str,
        target: impl Into<String>,
        result: Outcome,
        detail: impl Into<String>,
    ) -> Row {
        Row {
            check: check.to_owned(),
            target: target.into(),
            result,
            detail: detail.into(),
        }
    }

    pub fn pass(check: &str, target: impl Into<String>, detail: impl Into<String>) -> Row {
        Row::new(check, target, Outcome::Pass, detail)
    }

    pub fn warn(check: &str, target: impl Into<String>, detail: impl Into<String>) -> Row {
        Row::new(check, target, Outcome::Warn, detail)
    }

    pub fn fail(check: &str, target: impl Into<String>, detail: impl Into<String>) -> Row {
        Row::new(check, target, Outcome::Fail, detail)
    }
}

/// The rows of one audit run, in the order of the spec's table.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub rows: Vec<Row>,
    /// Unix seconds when the run finished.
    pub finished_at: f64,
}

impl Report {
    pub fn any_failed(&self) -> bool {
        self.rows.iter().any(|row| row.result == Outcome::Fail)
    }
}

/// `egress_audit_check{check,target}` and `egress_audit_last_run_timestamp_seconds`, from the
/// last completed run (nothing before the first run).
pub fn write_metrics(out: &mut Exposition, report: Option<&Report>) {
    let Some(report) = report else {
        return;
    };
    let name = "egress_audit_check";
    out.family(
        name,
        MetricType::Gauge,
        "Result of each mail set-up audit check: 1 pass, 0.5 warn, 0 fail.",
    );
    for row in &report.rows {
        out.sample(
            name,
            &[
                ("check", row.check.as_str()),
                ("target", row.target.as_str()),
            ],
            row.result.metric_value(),
        );
    }
    out.single(
        "egress_audit_last_run_timestamp_seconds",
        MetricType::Gauge,
        "When the last mail set-up audit finished (Unix time).",
        report.finished_at,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_serialise_with_the_spec_fields() {
        let row = Row::fail("dns.relay_ptr", "192.0.2.25", "no PTR");
        let json = serde_json::to_value(&row).expect("json");
        assert_eq!(
            json,
            serde_json::json!({"check": "dns.relay_ptr", "target": "192.0.2.25", "result": "fail", "detail": "no PTR"})
        );
    }

    #[test]
    fn metrics_map_results_to_values() {
        let report = Report {
            rows: vec![
                Row::pass("dns.mx_present", "isp.example", ""),
                Row::warn("guard.spam_checkers_allowed", "192.0.2.40", ""),
                Row::fail("dns.relay_ptr", "192.0.2.25", ""),
            ],
            finished_at: 1700000000.0,
        };
        let mut out = Exposition::new();
        write_metrics(&mut out, Some(&report));
        let text = crate::telemetry::exposition::encode(&out.finish()).expect("encodes");
        assert!(
            text.contains(
                "egress_audit_check{check=\"dns.mx_present\",target=\"isp.example\"} 1\n"
            ),
            "{text}"
        );
        assert!(text.contains("target=\"192.0.2.40\"} 0.5\n"), "{text}");
        assert!(text.contains("target=\"192.0.2.25\"} 0\n"), "{text}");
        assert!(
            text.contains("egress_audit_last_run_timestamp_seconds 1700000000\n"),
            "{text}"
        );
        let mut empty = Exposition::new();
        write_metrics(&mut empty, None);
        assert!(empty.finish().is_empty());
    }
}
