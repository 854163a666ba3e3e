//! Requests and responses on the control socket.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{allowlist::AllowKind, status::AgentStatus};

/// Longest request line the agent reads; longer ones are refused unread.
pub const MAX_REQUEST_BYTES: usize = 64 * 1024;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "request", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    AllowAdd {
        kind: AllowKind,
        prefix: String,
        #[serde(default)]
        comment: String,
    },
    AllowRemove {
        kind: AllowKind,
        prefix: String,
    },
    AllowList {
        kind: AllowKind,
    },
    /// Empty braces, not a unit variant: serde ignores `deny_unknown_fields` on unit variants
    /// of a tagged enum, and unknown fields must be refused.
    Status {},
    Top {
        n: usize,
    },
    Subscriber {
        address: String,
    },
    Detach {},
    /// Who held `address` at `at` (RFC 3339; absent: now).
    Who {
        address: String,
        #[serde(default)]
        at: Option<String>,
    },
    /// Evidence reports flagged at or after `since` (RFC 3339; absent: all kept).
    Reports {
        #[serde(default)]
        since: Option<String>,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The request or its arguments are wrong; nothing changed.
    Invalid,
    /// The request is understood but not allowed (config-file entry, unprivileged peer).
    Refused,
    /// The thing asked about does not exist (a subscriber without a record).
    NotFound,
    /// The agent failed to carry it out; nothing changed.
    Internal,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Response {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorKind>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub data: serde_json::Value,
}

impl Response {
    pub fn ok(message: impl Into<String>, data: serde_json::Value) -> Response {
        Response {
            ok: true,
            error: None,
            message: message.into(),
            data,
        }
    }

    pub fn data<T: Serialize>(value: &T) -> Response {
        match serde_json::to_value(value) {
            Ok(data) => Response::ok("", data),
            Err(err) => Response::error(ErrorKind::Internal, format!("cannot encode reply: {err}")),
        }
    }

    pub fn error(kind: ErrorKind, message: impl Into<String>) -> Response {
        Response {
            ok: false,
            error: Some(kind),
            message: message.into(),
            data: serde_json::Value::Null,
        }
    }
}

/// The `status` reply.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StatusView {
    #[serde(flatten)]
    pub agent: AgentStatus,
    /// Global dataplane counters summed over CPUs, by `Counter::name`.
    pub counters: BTreeMap<String, u64>,
    pub subscribers_tracked: u64,
}
