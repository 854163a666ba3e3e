//! The bench's output: one row per figure with its target and verdict, printed as a table and
//! written as JSON.

use std::{fmt::Write as _, path::Path};

use anyhow::{Context as _, Result};
use serde_json::{Value, json};

use super::measure::{Measured, Stats};

/// A spec target: the figure must stay at or below / at or above a bound.
#[derive(Clone, Copy, Debug)]
pub enum Target {
    AtMost(f64),
    AtLeast(f64),
    /// Context rows (peers, baselines) with nothing to meet.
    Info,
}

impl Target {
    fn met(self, value: f64) -> Option<bool> {
        match self {
            Target::AtMost(bound) => Some(value <= bound),
            Target::AtLeast(bound) => Some(value >= bound),
            Target::Info => None,
        }
    }

    fn describe(self, unit: &str) -> String {
        match self {
            Target::AtMost(bound) => format!("<= {} {unit}", trim(bound)),
            Target::AtLeast(bound) => format!(">= {} {unit}", trim(bound)),
            Target::Info => "-".into(),
        }
    }
}

fn trim(value: f64) -> String {
    if value.fract() == 0.0 {
        format!("{value:.0}")
    } else {
        format!("{value:.2}")
    }
}

#[derive(Clone, Debug)]
pub struct Row {
    pub case: String,
    pub median: Option<f64>,
    pub spread: Option<f64>,
    /// Every run's figure, for readers who distrust medians.
    pub runs: Vec<f64>,
    /// The same figure measured the flattering way (one frame, repeat >= 10^6).
    pub hot_median: Option<f64>,
    /// The same figure with every frame run cold (`repeat = 1`, a syscall between runs).
    pub cold_median: Option<f64>,
    pub unit: &'static str,
    pub target: Target,
    pub note: String,
}

impl Row {
    pub fn measured(
        case: impl Into<String>,
        stats: &Stats,
        unit: &'static str,
        target: Target,
    ) -> Row {
        Row {
            case: case.into(),
            median: Some(stats.median),
            spread: Some(stats.spread),
            runs: stats.runs.clone(),
            hot_median: None,
            cold_median: None,
            unit,
            target,
            note: String::new(),
        }
    }

    #[must_use]
    /// Notes the other two readings of a rotated measurement: one frame repeated (the spec's
    /// method as written) and every frame cold with `repeat = 1`.
    pub fn with_context(mut self, measured: &Measured) -> Row {
        if let Some(hot) = &measured.hot_above_empty {
            self.hot_median = Some(hot.median);
            self.note = format!("1 frame: {:.1} {}", hot.median, self.unit);
        }
        if measured.rotated.is_some() {
            self.cold_median = Some(measured.above_empty.median);
            self.note = format!(
                "{}; cold (repeat 1): {:.1} {}",
                self.note, measured.above_empty.median, self.unit
            );
        }
        self
    }

    #[must_use]
    pub fn with_note(mut self, note: impl Into<String>) -> Row {
        self.note = note.into();
        self
    }

    pub fn met(&self) -> Option<bool> {
        self.median.and_then(|value| self.target.met(value))
    }

    fn verdict(&self) -> &'static str {
        match (self.median, self.met()) {
            (None, _) => "n/a",
            (Some(_), None) => "-",
            (Some(_), Some(true)) => "yes",
            (Some(_), Some(false)) => "NO",
        }
    }

    fn to_json(&self) -> Value {
        json!({
            "case": self.case,
            "median": self.median,
            "spread": self.spread,
            "runs": self.runs,
            "hot_median": self.hot_median,
            "cold_median": self.cold_median,
            "unit": self.unit,
            "target": self.target.describe(self.unit),
            "met": self.met(),
            "note": self.note,
        })
    }
}

pub fn table(rows: &[Row]) -> String {
    let width = rows
        .iter()
        .map(|row| row.case.len())
        .max()
        .unwrap_or(4)
        .max(4);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<width$}  {:>12}  {:>10}  {:>16}  {:>4}  note",
        "case", "median", "spread", "target", "met"
    );
    for row in rows {
        let figure = |value: Option<f64>| match value {
            Some(value) => format!("{value:.1} {}", row.unit),
            None => "-".into(),
        };
        let _ = writeln!(
            out,
            "{:<width$}  {:>12}  {:>10}  {:>16}  {:>4}  {}",
            row.case,
            figure(row.median),
            figure(row.spread),
            row.target.describe(row.unit),
            row.verdict(),
            row.note
        );
    }
    out
}

pub fn write_json(rows: &[Row], meta: Value, path: &Path) -> Result<()> {
    let document = json!({
        "meta": meta,
        "rows": rows.iter().map(Row::to_json).collect::<Vec<_>>(),
    });
    let text = serde_json::to_string_pretty(&document).context("serialising the bench results")?;
    std::fs::write(path, text + "\n").with_context(|| format!("writing {}", path.display()))
}
