//! Wall-clock timestamps as the CLI shows them (RFC 3339, UTC, seconds).

use time::{OffsetDateTime, format_description::well_known::Rfc3339};

pub fn now_rfc3339() -> String {
    let now = OffsetDateTime::now_utc();
    let now = now.replace_nanosecond(0).unwrap_or(now);
    now.format(&Rfc3339).unwrap_or_default()
}
