//! The agent's rows: peak RSS and `/metrics` scrape time with 1,000,000 tracked subscribers,
//! and a 1,000,000-prefix reload under a concurrent misjudgement check. They need a working
//! `egress-agent run`, which did not exist when the bench was written: the rows say so rather
//! than show a number nobody measured.

use super::report::{Row, Target};

const REASON: &str = "`egress-agent run` was not available when the bench was written";

pub fn rows() -> Vec<Row> {
    vec![
        Row::not_measured(
            "agent peak RSS, 1M tracked subscribers",
            "MiB",
            Target::AtMost(64.0),
            REASON,
        ),
        Row::not_measured(
            "agent /metrics scrape, 1M tracked subscribers",
            "ms",
            Target::AtMost(250.0),
            REASON,
        ),
        Row::not_measured(
            "agent reload of 1M prefixes, no packet misjudged",
            "s",
            Target::AtMost(5.0),
            REASON,
        ),
    ]
}
