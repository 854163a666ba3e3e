//! A writer for the Prometheus text exposition format, version 0.0.4.

use std::{borrow::Cow, fmt::Display, fmt::Write as _};

/// The `Content-Type` of what [`Exposition`] writes.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetricType {
    Counter,
    Gauge,
}

impl MetricType {
    fn as_str(self) -> &'static str {
        match self {
            MetricType::Counter => "counter",
            MetricType::Gauge => "gauge",
        }
    }
}

/// Text being built: a `# HELP` and `# TYPE` line per family, then its samples.
#[derive(Default)]
pub struct Exposition {
    text: String,
}

impl Exposition {
    pub fn new() -> Exposition {
        Exposition::default()
    }

    /// Starts a metric family. `help` is escaped as HELP text requires.
    pub fn family(&mut self, name: &str, kind: MetricType, help: &str) -> &mut Self {
        let help = help.replace('\\', "\\\\").replace('\n', "\\n");
        // Writing to a String cannot fail.
        let _ = writeln!(self.text, "# HELP {name} {help}");
        let _ = writeln!(self.text, "# TYPE {name} {}", kind.as_str());
        self
    }

    /// One sample of the family started last.
    pub fn sample(
        &mut self,
        name: &str,
        labels: &[(&str, &str)],
        value: impl Display,
    ) -> &mut Self {
        self.text.push_str(name);
        if !labels.is_empty() {
            self.text.push('{');
            for (i, (label, label_value)) in labels.iter().enumerate() {
                if i > 0 {
                    self.text.push(',');
                }
                let _ = write!(self.text, "{label}=\"{}\"", escape_label_value(label_value));
            }
            self.text.push('}');
        }
        let _ = writeln!(self.text, " {value}");
        self
    }

    /// A family with a single unlabelled sample.
    pub fn single(&mut self, name: &str, kind: MetricType, help: &str, value: impl Display) {
        self.family(name, kind, help).sample(name, &[], value);
    }

    pub fn finish(self) -> String {
        self.text
    }
}

/// Escapes a label value: backslash, double quote and line feed.
pub fn escape_label_value(value: &str) -> Cow<'_, str> {
    if !value.contains(['\\', '"', '\n']) {
        return Cow::Borrowed(value);
    }
    let mut escaped = String::with_capacity(value.len() + 8);
    for c in value.chars() {
        match c {
            '\\' => escaped.push_str("\\\\"),
            '"' => escaped.push_str("\\\""),
            '\n' => escaped.push_str("\\n"),
            other => escaped.push(other),
        }
    }
    Cow::Owned(escaped)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn telemetry_label_values_are_escaped() {
        assert_eq!(escape_label_value("203.0.113.7"), "203.0.113.7");
        assert_eq!(escape_label_value("a\\b\"c\nd"), "a\\\\b\\\"c\\nd");
    }

    #[test]
    fn telemetry_families_have_help_type_and_samples() {
        let mut out = Exposition::new();
        out.family(
            "egress_x_total",
            MetricType::Counter,
            "Things.\nMore \\ text.",
        )
        .sample(
            "egress_x_total",
            &[("kind", "a\"b"), ("family", "ipv4")],
            3u64,
        )
        .sample("egress_x_total", &[], 0u64);
        out.single("egress_y", MetricType::Gauge, "Y.", 1.5);
        assert_eq!(
            out.finish(),
            "# HELP egress_x_total Things.\\nMore \\\\ text.\n\
             # TYPE egress_x_total counter\n\
             egress_x_total{kind=\"a\\\"b\",family=\"ipv4\"} 3\n\
             egress_x_total 0\n\
             # HELP egress_y Y.\n\
             # TYPE egress_y gauge\n\
             egress_y 1.5\n"
        );
    }
}
