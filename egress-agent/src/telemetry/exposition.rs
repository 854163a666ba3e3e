//! A small builder of Prometheus metric families over the `prometheus` crate's data model, and
//! the text encoding (format 0.0.4) of what it built.
//!
//! The shape (`family`, `sample`, `single`) predates the `prometheus` crate here and is kept so
//! that every family is written the same way: start a family, add its samples.

use prometheus::{
    TextEncoder,
    proto::{self, LabelPair, Metric, MetricFamily},
};

/// The `Content-Type` of what [`encode`] writes.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetricType {
    Counter,
    Gauge,
}

/// A number a sample can hold (Prometheus values are 64-bit floats).
pub trait SampleValue {
    fn to_f64(self) -> f64;
}

macro_rules! sample_value {
    ($($t:ty),*) => {$(
        impl SampleValue for $t {
            fn to_f64(self) -> f64 {
                self as f64
            }
        }
    )*};
}
sample_value!(u8, u16, u32, u64, usize, i32, i64, f32, f64);

impl SampleValue for bool {
    fn to_f64(self) -> f64 {
        f64::from(u8::from(self))
    }
}

/// Metric families being built; `finish` hands them over.
#[derive(Default)]
pub struct Exposition {
    families: Vec<MetricFamily>,
}

impl Exposition {
    pub fn new() -> Exposition {
        Exposition::default()
    }

    /// Starts a metric family; the samples that follow belong to it.
    pub fn family(&mut self, name: &str, kind: MetricType, help: &str) -> &mut Self {
        let mut family = MetricFamily::default();
        family.set_name(name.to_owned());
        family.set_help(help.to_owned());
        family.set_field_type(match kind {
            MetricType::Counter => proto::MetricType::COUNTER,
            MetricType::Gauge => proto::MetricType::GAUGE,
        });
        self.families.push(family);
        self
    }

    /// One sample of the family started last (`name` must be that family's name).
    pub fn sample(
        &mut self,
        name: &str,
        labels: &[(&str, &str)],
        value: impl SampleValue,
    ) -> &mut Self {
        let Some(family) = self.families.last_mut() else {
            debug_assert!(false, "sample {name} before any family");
            return self;
        };
        debug_assert_eq!(family.name(), name, "sample of another family");
        let mut metric = Metric::from_label(
            labels
                .iter()
                .map(|(label, label_value)| {
                    let mut pair = LabelPair::default();
                    pair.set_name((*label).to_owned());
                    pair.set_value((*label_value).to_owned());
                    pair
                })
                .collect(),
        );
        let value = value.to_f64();
        if family.get_field_type() == proto::MetricType::COUNTER {
            let mut counter = proto::Counter::default();
            counter.set_value(value);
            metric.set_counter(counter);
        } else {
            let mut gauge = proto::Gauge::default();
            gauge.set_value(value);
            metric.set_gauge(gauge);
        }
        family.mut_metric().push(metric);
        self
    }

    /// A family with a single unlabelled sample.
    pub fn single(&mut self, name: &str, kind: MetricType, help: &str, value: impl SampleValue) {
        self.family(name, kind, help).sample(name, &[], value);
    }

    /// The families built, in order, including those without samples.
    pub fn finish(self) -> Vec<MetricFamily> {
        self.families
    }
}

/// The text exposition of `families` (escaping HELP text and label values as the format says).
///
/// A family without samples (no suspected bots right now) still gets its `# HELP` and
/// `# TYPE` lines, as before the `prometheus` crate, so a scraper always sees what the agent
/// exports. The crate's encoder refuses such a family, so it encodes it with one unlabelled
/// placeholder sample and keeps only the header lines.
pub fn encode(families: &[MetricFamily]) -> Result<String, prometheus::Error> {
    let encoder = TextEncoder::new();
    let mut text = String::with_capacity(4096 + 128 * families.len());
    for family in families {
        if !family.get_metric().is_empty() {
            encoder.encode_utf8(std::slice::from_ref(family), &mut text)?;
            continue;
        }
        let mut header = family.clone();
        header.mut_metric().push(Metric::default());
        let mut lines = String::new();
        encoder.encode_utf8(std::slice::from_ref(&header), &mut lines)?;
        let sample_line = lines
            .trim_end_matches('\n')
            .rfind('\n')
            .map_or(0, |at| at + 1);
        text.push_str(&lines[..sample_line]);
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn telemetry_families_have_help_type_and_escaped_samples() {
        let mut out = Exposition::new();
        out.family(
            "egress_x_total",
            MetricType::Counter,
            "Things.\nMore \\ text.",
        )
        .sample(
            "egress_x_total",
            &[("kind", "a\"b\\c\nd"), ("family", "ipv4")],
            3u64,
        )
        .sample("egress_x_total", &[], 0u64);
        out.family("egress_empty", MetricType::Gauge, "No samples.");
        out.single("egress_y", MetricType::Gauge, "Y.", 1.5);
        out.single("egress_big_total", MetricType::Counter, "Big.", 1u64 << 52);
        assert_eq!(
            encode(&out.finish()).expect("encode"),
            "# HELP egress_x_total Things.\\nMore \\\\ text.\n\
             # TYPE egress_x_total counter\n\
             egress_x_total{kind=\"a\\\"b\\\\c\\nd\",family=\"ipv4\"} 3\n\
             egress_x_total 0\n\
             # HELP egress_empty No samples.\n\
             # TYPE egress_empty gauge\n\
             # HELP egress_y Y.\n\
             # TYPE egress_y gauge\n\
             egress_y 1.5\n\
             # HELP egress_big_total Big.\n\
             # TYPE egress_big_total counter\n\
             egress_big_total 4503599627370496\n"
        );
    }
}
