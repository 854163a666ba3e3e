//! The evidence report: the JSON the abuse desk receives, one per flag transition.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::identity::Session;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Thresholds {
    pub window_seconds: u64,
    pub attempts_threshold: u64,
    pub distinct_destinations_threshold: u64,
}

/// Field names and order are the spec's.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    pub version: u32,
    pub kind: String,
    pub report_id: String,
    /// The router's host name.
    pub router: String,
    /// `203.0.113.7` or `2001:db8:1:2::/64`.
    pub subscriber: String,
    /// `ipv4` | `ipv6`.
    pub family: String,
    /// The session that held the address when the subscriber was flagged, or null.
    pub identity: Option<Session>,
    /// RFC 3339, UTC.
    pub flagged_at: String,
    pub first_seen: String,
    pub last_seen: String,
    pub attempts_total: u64,
    pub attempts_in_window: u64,
    pub window_seconds: u64,
    pub distinct_destinations_estimate: u64,
    /// Up to 16 destinations seen in the dataplane's events for this subscriber.
    pub sample_destinations: Vec<String>,
    pub thresholds: Thresholds,
}

pub const MAX_SAMPLE_DESTINATIONS: usize = 16;

/// Stable across agent restarts for one flag transition (the dataplane's flag timestamp is
/// pinned with the map), so a restarted agent that sees the same flag stores nothing new.
pub fn report_id(router: &str, subscriber: &str, flagged_ns: u64) -> String {
    let mut hash = Sha256::new();
    hash.update(router.as_bytes());
    hash.update([0]);
    hash.update(subscriber.as_bytes());
    hash.update([0]);
    hash.update(flagged_ns.to_be_bytes());
    hex(&hash.finalize()[..16])
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The host name reports name the router by.
pub fn router_name() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates within it.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len() - 1) };
    if rc != 0 {
        return "unknown".to_owned();
    }
    let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_ids_are_stable_and_distinct() {
        let a = report_id("r1", "192.0.2.2", 5);
        assert_eq!(a, report_id("r1", "192.0.2.2", 5));
        assert_eq!(a.len(), 32);
        assert_ne!(a, report_id("r1", "192.0.2.2", 6));
        assert_ne!(a, report_id("r2", "192.0.2.2", 5));
        assert!(!router_name().is_empty());
    }
}
