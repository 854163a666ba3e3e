//! The fleet's key space: `<key_prefix>/<kind>/<prefix>` = `{"comment", "added", "added_by"}`.
//! Entries are validated exactly like CLI input; anything else is a [`KeyError`], which the
//! worker logs, counts and skips.

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::allowlist::{AllowKind, Entry, Source};

/// The kinds a fleet may hold: every kind the CLI manages (throttle destinations are
/// config-only).
pub const KINDS: [AllowKind; 5] = [
    AllowKind::Relay,
    AllowKind::Exempt,
    AllowKind::Destination,
    AllowKind::ProtectedMx,
    AllowKind::MxSender,
];

/// Longest comment accepted from etcd: the value is shown in listings and logs.
const MAX_COMMENT_BYTES: usize = 1024;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    #[error("key is not UTF-8")]
    KeyNotUtf8,
    #[error("key `{key}` is not under the fleet's key prefix `{prefix}`")]
    OutsidePrefix { key: String, prefix: String },
    #[error(
        "key `{key}`: `{kind}` is not a fleet kind (relay, exempt, destination, protected_mx, mx_sender)"
    )]
    UnknownKind { key: String, kind: String },
    #[error("key `{key}`: {problem}")]
    BadPrefix { key: String, problem: String },
    #[error(
        "key `{key}`: value is not a JSON object {{\"comment\", \"added\", \"added_by\"}}: {problem}"
    )]
    BadValue { key: String, problem: String },
}

/// The JSON value of an entry.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Value {
    #[serde(default)]
    pub comment: String,
    #[serde(default)]
    pub added: String,
    #[serde(default)]
    pub added_by: String,
}

/// One entry of the fleet with the key it came from (a key may spell a host without `/32`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FleetEntry {
    pub key: String,
    pub entry: Entry,
}

/// The key of `prefix` of `kind` under `key_prefix`.
pub fn key(key_prefix: &str, kind: AllowKind, prefix: IpNet) -> String {
    format!("{key_prefix}/{}/{prefix}", kind.as_str())
}

/// The value stored for a CLI change.
pub fn encode(value: &Value) -> String {
    serde_json::json!({
        "comment": value.comment,
        "added": value.added,
        "added_by": value.added_by,
    })
    .to_string()
}

/// Parses one key-value pair under `key_prefix`.
pub fn decode(key_prefix: &str, key: &[u8], value: &[u8]) -> Result<FleetEntry, KeyError> {
    let key = std::str::from_utf8(key).map_err(|_| KeyError::KeyNotUtf8)?;
    let (kind, prefix) = key
        .strip_prefix(key_prefix)
        .and_then(|rest| rest.strip_prefix('/'))
        .and_then(|rest| rest.split_once('/'))
        .ok_or_else(|| KeyError::OutsidePrefix {
            key: key.to_owned(),
            prefix: key_prefix.to_owned(),
        })?;
    let kind = KINDS
        .into_iter()
        .find(|k| k.as_str() == kind)
        .ok_or_else(|| KeyError::UnknownKind {
            key: key.to_owned(),
            kind: kind.to_owned(),
        })?;
    let prefix = crate::prefix::parse(prefix).map_err(|err| KeyError::BadPrefix {
        key: key.to_owned(),
        problem: err.to_string(),
    })?;
    let bad_value = |problem: String| KeyError::BadValue {
        key: key.to_owned(),
        problem,
    };
    let value: Value = serde_json::from_slice(value).map_err(|err| bad_value(err.to_string()))?;
    if value.comment.len() > MAX_COMMENT_BYTES {
        return Err(bad_value(format!(
            "comment longer than {MAX_COMMENT_BYTES} bytes"
        )));
    }
    Ok(FleetEntry {
        key: key.to_owned(),
        entry: Entry {
            prefix,
            kind,
            source: Source::Fleet,
            comment: value.comment,
            added: value.added,
            added_by: value.added_by,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PREFIX: &str = "/egress/north";

    fn decoded(key: &str, value: &str) -> Result<FleetEntry, KeyError> {
        decode(PREFIX, key.as_bytes(), value.as_bytes())
    }

    #[test]
    fn a_cli_change_round_trips() {
        let prefix: IpNet = "192.0.2.10/32".parse().expect("prefix");
        let value = Value {
            comment: "relay \"one\"".into(),
            added: "2026-12-02T00:00:00Z".into(),
            added_by: "rtr1".into(),
        };
        let key = key(PREFIX, AllowKind::Relay, prefix);
        assert_eq!(key, "/egress/north/relay/192.0.2.10/32");
        let entry = decoded(&key, &encode(&value)).expect("decodes").entry;
        assert_eq!(
            (entry.prefix, entry.kind, entry.source),
            (prefix, AllowKind::Relay, Source::Fleet)
        );
        assert_eq!(
            (entry.comment, entry.added_by),
            (value.comment, value.added_by)
        );
    }

    #[test]
    fn every_fleet_kind_and_bare_addresses_are_accepted() {
        for kind in KINDS {
            let key = format!("{PREFIX}/{}/2001:db8::25", kind.as_str());
            let entry = decoded(&key, "{}").expect("decodes").entry;
            assert_eq!(entry.kind, kind);
            assert_eq!(entry.prefix.to_string(), "2001:db8::25/128");
        }
    }

    #[test]
    fn garbage_is_refused_with_the_key_named() {
        let cases = [
            (
                "/egress/north/relay/192.0.2.40/32",
                "{not json",
                "not a JSON object",
            ),
            (
                "/egress/north/relay/192.0.2.40/32",
                "[1]",
                "not a JSON object",
            ),
            (
                "/egress/north/relay/192.0.2.40/32",
                "{\"comment\": 5}",
                "not a JSON object",
            ),
            (
                "/egress/north/relay/not-a-prefix",
                "{}",
                "not an IP address",
            ),
            ("/egress/north/relay/0.0.0.0/0", "{}", "every address"),
            ("/egress/north/relay/192.0.2.10/24", "{}", "not canonical"),
            (
                "/egress/north/bogus/192.0.2.41/32",
                "{}",
                "not a fleet kind",
            ),
            (
                "/egress/north/throttle_destination/192.0.2.41/32",
                "{}",
                "not a fleet kind",
            ),
            ("/egress/north/relay", "{}", "not under"),
            ("/egress/northern/relay/192.0.2.41/32", "{}", "not under"),
        ];
        for (key, value, expected) in cases {
            let err = decoded(key, value).expect_err(key).to_string();
            assert!(err.contains(expected), "{key} {value}: {err}");
        }
        let long = serde_json::json!({ "comment": "x".repeat(MAX_COMMENT_BYTES + 1) });
        let err =
            decoded("/egress/north/relay/192.0.2.9", &long.to_string()).expect_err("long comment");
        assert!(err.to_string().contains("comment longer"), "{err}");
        assert_eq!(
            decode(PREFIX, b"/egress/north/relay/\xff", b"{}"),
            Err(KeyError::KeyNotUtf8)
        );
    }
}
