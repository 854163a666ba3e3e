//! Traceability: who held an address when. A RADIUS accounting listener (RFC 2866) feeds
//! the session history in the SQLite database; `Directory` answers "who held ADDR at TIME"
//! for `who`, `top`, `subscriber`, the flag log lines and the evidence reports.
//!
//! The listener runs on a thread of its own and the lookups on the blocking pool: nothing
//! here ever runs on the daemon's event loop.

pub mod listener;
pub mod lookup;
pub mod metrics;
pub mod radius;
pub mod sessions;

use std::{
    net::IpAddr,
    sync::{Arc, Mutex},
    time::SystemTime,
};

use ipnet::IpNet;
use rusqlite::Connection;
use serde::{Deserialize, Serialize};

use crate::history::{History, HistoryError, unix_ms};

pub use listener::{RadiusStats, spawn_listener};

/// One RADIUS session, as `who`, `top --json` and the reports show it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    pub user_name: Option<String>,
    pub calling_station_id: Option<String>,
    /// The NAS the session belongs to: NAS-Identifier, else NAS-IP-Address, else the sender.
    pub nas: String,
    pub nas_identifier: Option<String>,
    pub nas_ip_address: Option<String>,
    pub nas_port_id: Option<String>,
    pub acct_session_id: String,
    pub framed_ip_address: Option<String>,
    pub framed_ipv6_prefix: Option<String>,
    pub delegated_ipv6_prefix: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub framed_ipv6_address: Option<String>,
    /// RFC 3339, UTC.
    pub start: String,
    /// Last accounting heard for the session.
    pub updated: String,
    /// `null` while the session is open.
    pub end: Option<String>,
}

impl Session {
    /// `alice@isp (00:11:22:33:44:55) on bng-1 port eth0.100`: one phrase for log lines and tables.
    pub fn summary(&self) -> String {
        let mut text = self.user_name.clone().unwrap_or_else(|| "?".to_owned());
        if let Some(station) = &self.calling_station_id {
            text += &format!(" ({station})");
        }
        text += &format!(" on {}", self.nas);
        if let Some(port) = &self.nas_port_id {
            text += &format!(" port {port}");
        }
        text
    }
}

/// The identity attached to a subscriber: the session when it was flagged (or now, when not
/// flagged), and the session now when that is a different one.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    pub then: Option<Session>,
    pub now: Option<Session>,
}

/// Read access to the history for the blocking pool: one connection, shared.
#[derive(Clone)]
pub struct Directory {
    history: History,
    conn: Arc<Mutex<Connection>>,
}

impl Directory {
    pub fn open(history: &History) -> Result<Directory, HistoryError> {
        Ok(Directory {
            history: history.clone(),
            conn: Arc::new(Mutex::new(history.connect()?)),
        })
    }

    /// Runs `query` on the shared read connection.
    pub fn with<T>(
        &self,
        query: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T, HistoryError> {
        let conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        query(&conn).map_err(|e| self.history.error(e))
    }

    /// The sessions that held `target` (an address or a subscriber prefix) at `at`.
    pub fn who(&self, target: IpNet, at: SystemTime) -> Result<Vec<Session>, HistoryError> {
        self.with(|conn| lookup::sessions_at(conn, target, unix_ms(at)))
    }

    /// The newest session holding `target` at `at`, if any.
    pub fn session_at(&self, target: IpNet, at: SystemTime) -> Option<Session> {
        match self.who(target, at) {
            Ok(sessions) => sessions.into_iter().next(),
            Err(err) => {
                tracing::warn!(%err, "identity lookup failed");
                None
            }
        }
    }

    /// Identity then (at `flagged_at`, when flagged) and now, if different.
    pub fn identity(&self, target: IpNet, flagged_at: Option<SystemTime>) -> Identity {
        let now = self.session_at(target, SystemTime::now());
        let Some(at) = flagged_at else {
            return Identity {
                then: now,
                now: None,
            };
        };
        let then = self.session_at(target, at);
        let now = if now == then { None } else { now };
        Identity { then, now }
    }
}

/// A bare address as a host prefix (/32, /128).
pub fn host(address: IpAddr) -> IpNet {
    IpNet::from(address)
}
