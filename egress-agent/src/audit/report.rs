//! One row per check and target: what the table, `--json` and the metrics show.

use std::net::IpAddr;

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

/// One host's rows from probes of each of its addresses, check by check: the worst result
/// stands for the host (customers reach any of its addresses), and the detail names the
/// address behind it. `per_address` holds the same checks, in the same order, for each address.
pub fn worst_per_check(per_address: Vec<(IpAddr, Vec<Row>)>) -> Vec<Row> {
    let mut per_address = per_address.into_iter();
    let Some((first_address, first_rows)) = per_address.next() else {
        return Vec::new();
    };
    let others: Vec<(IpAddr, Vec<Row>)> = per_address.collect();
    if others.is_empty() {
        return first_rows;
    }
    let count = others.len() + 1;
    first_rows
        .into_iter()
        .enumerate()
        .map(|(index, first)| {
            let mut judged: Vec<(IpAddr, Row)> = vec![(first_address, first)];
            judged.extend(
                others.iter().filter_map(|(address, rows)| {
                    rows.get(index).map(|row| (*address, row.clone()))
                }),
            );
            let worst = judged
                .iter()
                .map(|(_, row)| row.result)
                .max()
                .unwrap_or(Outcome::Pass);
            let mut row = judged[0].1.clone();
            row.result = worst;
            row.detail = if worst == Outcome::Pass {
                format!("all {count} addresses: {}", row.detail)
            } else {
                judged
                    .iter()
                    .filter(|(_, row)| row.result == worst)
                    .map(|(address, row)| format!("{address}: {}", row.detail))
                    .collect::<Vec<_>>()
                    .join("; ")
            };
            row
        })
        .collect()
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
    fn the_worst_address_stands_for_the_host() {
        let v4: IpAddr = "192.0.2.25".parse().expect("v4");
        let v6: IpAddr = "2001:db8:1::25".parse().expect("v6");
        let rows = |a: Outcome, b: Outcome| {
            vec![
                Row::new("smtp.a", "smtp.isp.example", a, "a ok"),
                Row::new("smtp.b", "smtp.isp.example", b, "connection refused"),
            ]
        };
        let only = worst_per_check(vec![(v4, rows(Outcome::Pass, Outcome::Pass))]);
        assert_eq!(only, rows(Outcome::Pass, Outcome::Pass));
        let merged = worst_per_check(vec![
            (v4, rows(Outcome::Pass, Outcome::Pass)),
            (v6, rows(Outcome::Pass, Outcome::Fail)),
        ]);
        assert_eq!(merged[0].result, Outcome::Pass);
        assert_eq!(merged[0].detail, "all 2 addresses: a ok");
        assert_eq!(merged[1].result, Outcome::Fail);
        assert_eq!(merged[1].target, "smtp.isp.example");
        assert_eq!(merged[1].detail, "2001:db8:1::25: connection refused");
        assert!(worst_per_check(Vec::new()).is_empty());
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
