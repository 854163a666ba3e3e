//! Applying accounting to the session history: Start/Interim-Update open or refresh,
//! Stop closes, Accounting-On/Off close every open session of the NAS. A request that
//! changes nothing (a retransmitted Start, a second Stop) is a duplicate.

use std::net::IpAddr;

use ipnet::IpNet;
use rusqlite::{OptionalExtension as _, Transaction, params};

use super::radius::{Accounting, Status};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Stored,
    Duplicate,
}

/// What one request did: its outcome and how the number of open sessions changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Applied {
    pub outcome: Outcome,
    pub open_delta: i64,
}

/// The NAS a request speaks for: NAS-Identifier, else NAS-IP-Address, else the sender.
pub fn nas_of(acct: &Accounting, sender: IpAddr) -> String {
    acct.nas_identifier
        .clone()
        .or_else(|| acct.nas_ip_address.map(|ip| ip.to_string()))
        .unwrap_or_else(|| sender.to_string())
}

/// The addresses a request assigns, as (kind, prefix).
pub fn addresses(acct: &Accounting) -> Vec<(&'static str, IpNet)> {
    let mut out = Vec::new();
    if let Some(v4) = acct.framed_ip_address {
        out.push(("framed_ip_address", IpNet::from(ipnet::Ipv4Net::from(v4))));
    }
    if let Some(net) = acct.framed_ipv6_prefix {
        out.push(("framed_ipv6_prefix", IpNet::V6(net)));
    }
    if let Some(net) = acct.delegated_ipv6_prefix {
        out.push(("delegated_ipv6_prefix", IpNet::V6(net)));
    }
    if let Some(v6) = acct.framed_ipv6_address {
        out.push(("framed_ipv6_address", IpNet::from(ipnet::Ipv6Net::from(v6))));
    }
    out
}

/// The stored form of a prefix: family, length, network octets.
pub fn network_key(net: &IpNet) -> (i64, i64, Vec<u8>) {
    match net.trunc() {
        IpNet::V4(v4) => (4, i64::from(v4.prefix_len()), v4.addr().octets().to_vec()),
        IpNet::V6(v6) => (6, i64::from(v6.prefix_len()), v6.addr().octets().to_vec()),
    }
}

/// Applies one verified request; `now_ms` stands in for a missing Event-Timestamp.
pub fn apply(
    tx: &Transaction<'_>,
    acct: &Accounting,
    sender: IpAddr,
    now_ms: i64,
) -> rusqlite::Result<Applied> {
    let nas = nas_of(acct, sender);
    let event_ms = acct
        .event_timestamp
        .map_or(now_ms, |seconds| i64::from(seconds) * 1000);
    let Some(status) = acct.status else {
        return Ok(duplicate());
    };
    if matches!(status, Status::AccountingOn | Status::AccountingOff) {
        let closed = tx.execute(
            "UPDATE sessions SET end_ms = max(start_ms, ?1), updated_ms = ?1
             WHERE end_ms IS NULL AND (nas = ?2 OR nas_ip_address = ?3)",
            params![event_ms, nas, acct.nas_ip_address.map(|ip| ip.to_string())],
        )?;
        return Ok(Applied {
            outcome: Outcome::Stored,
            open_delta: -(closed as i64),
        });
    }
    let session_id = acct.acct_session_id.clone().unwrap_or_default();
    // Cached statements: this runs for every request, and parsing SQL each time dominated.
    let open: Option<OpenRow> = tx
        .prepare_cached(
            "SELECT id, updated_ms, user_name, calling_station_id, nas_port_id FROM sessions
             WHERE nas = ?1 AND acct_session_id = ?2 AND end_ms IS NULL
             ORDER BY start_ms DESC LIMIT 1",
        )?
        .query_row(params![nas, session_id], |row| {
            Ok(OpenRow {
                id: row.get(0)?,
                updated_ms: row.get(1)?,
                user_name: row.get(2)?,
                calling_station_id: row.get(3)?,
                nas_port_id: row.get(4)?,
            })
        })
        .optional()?;
    let started_ms = event_ms - i64::from(acct.session_time.unwrap_or(0)) * 1000;
    match (status, open) {
        (Status::Start, Some(_)) => Ok(duplicate()),
        (Status::InterimUpdate, Some(row)) if unchanged(tx, &row, acct, event_ms)? => {
            // Heard, stored as it is: rewriting the row only to move `updated` would cost a
            // WAL page write per request, which bounded the ingest rate with many sessions.
            Ok(Applied {
                outcome: Outcome::Stored,
                open_delta: 0,
            })
        }
        (Status::InterimUpdate | Status::Stop, Some(row)) => {
            let end = (status == Status::Stop).then_some(event_ms);
            refresh(tx, row.id, acct, event_ms, end)?;
            Ok(Applied {
                outcome: Outcome::Stored,
                open_delta: if end.is_some() { -1 } else { 0 },
            })
        }
        (_, None) => {
            let closed_before: bool = tx
                .prepare_cached(
                    "SELECT EXISTS (SELECT 1 FROM sessions WHERE nas = ?1 AND acct_session_id = ?2
                  AND end_ms IS NOT NULL AND (?3 != 1 OR start_ms = ?4))",
                )?
                .query_row(
                    params![
                        nas,
                        session_id,
                        i64::from(status == Status::Start),
                        event_ms
                    ],
                    |row| row.get(0),
                )?;
            if closed_before {
                // A retransmitted Start of a finished session, or a late Interim/Stop.
                return Ok(duplicate());
            }
            let start = if status == Status::Start {
                event_ms
            } else {
                started_ms
            };
            let end = (status == Status::Stop).then_some(event_ms);
            insert(tx, &nas, &session_id, acct, start, event_ms, end)?;
            Ok(Applied {
                outcome: Outcome::Stored,
                open_delta: if end.is_some() { 0 } else { 1 },
            })
        }
        (Status::AccountingOn | Status::AccountingOff, Some(_)) => Ok(duplicate()),
    }
}

/// How stale `updated` (last heard) may get before an Interim-Update that changes nothing
/// rewrites the row anyway: `updated` is exact to this, and pruning by `retention_days` of a
/// session that is never closed is late by at most this.
pub const UPDATED_PRECISION_MS: i64 = 3_600_000;

/// The stored open session an Interim-Update or Stop refers to.
struct OpenRow {
    id: i64,
    updated_ms: i64,
    user_name: Option<String>,
    calling_station_id: Option<String>,
    nas_port_id: Option<String>,
}

/// Whether an Interim-Update would change nothing worth a write: same attributes (absent
/// ones keep the stored value), no new address, and `updated` less than an hour old.
fn unchanged(
    tx: &Transaction<'_>,
    row: &OpenRow,
    acct: &Accounting,
    event_ms: i64,
) -> rusqlite::Result<bool> {
    let same = |new: &Option<String>, stored: &Option<String>| new.is_none() || new == stored;
    if event_ms.saturating_sub(row.updated_ms) >= UPDATED_PRECISION_MS
        || !same(&acct.user_name, &row.user_name)
        || !same(&acct.calling_station_id, &row.calling_station_id)
        || !same(&acct.nas_port_id, &row.nas_port_id)
    {
        return Ok(false);
    }
    for (_, net) in addresses(acct) {
        let (family, len, network) = network_key(&net);
        let known: bool = tx
            .prepare_cached(
                "SELECT EXISTS (SELECT 1 FROM session_addresses
                 WHERE session = ?1 AND family = ?2 AND prefix_len = ?3 AND network = ?4)",
            )?
            .query_row(params![row.id, family, len, network], |r| r.get(0))?;
        if !known {
            return Ok(false);
        }
    }
    Ok(true)
}

fn duplicate() -> Applied {
    Applied {
        outcome: Outcome::Duplicate,
        open_delta: 0,
    }
}

fn insert(
    tx: &Transaction<'_>,
    nas: &str,
    session_id: &str,
    acct: &Accounting,
    start_ms: i64,
    updated_ms: i64,
    end_ms: Option<i64>,
) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT INTO sessions (nas, acct_session_id, user_name, calling_station_id,
            nas_identifier, nas_ip_address, nas_port_id, start_ms, updated_ms, end_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )?
    .execute(params![
        nas,
        session_id,
        acct.user_name,
        acct.calling_station_id,
        acct.nas_identifier,
        acct.nas_ip_address.map(|ip| ip.to_string()),
        acct.nas_port_id,
        start_ms,
        updated_ms,
        end_ms
    ])?;
    add_addresses(tx, tx.last_insert_rowid(), start_ms, acct)
}

/// Interim-Update or Stop of an open session: newer attributes win, addresses accumulate.
fn refresh(
    tx: &Transaction<'_>,
    id: i64,
    acct: &Accounting,
    event_ms: i64,
    end_ms: Option<i64>,
) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "UPDATE sessions SET updated_ms = max(updated_ms, ?2),
            end_ms = CASE WHEN ?3 IS NULL THEN NULL ELSE max(start_ms, ?3) END,
            user_name = coalesce(?4, user_name),
            calling_station_id = coalesce(?5, calling_station_id),
            nas_port_id = coalesce(?6, nas_port_id)
         WHERE id = ?1",
    )?
    .execute(params![
        id,
        event_ms,
        end_ms,
        acct.user_name,
        acct.calling_station_id,
        acct.nas_port_id
    ])?;
    if addresses(acct).is_empty() {
        return Ok(());
    }
    let start_ms: i64 = tx
        .prepare_cached("SELECT start_ms FROM sessions WHERE id = ?1")?
        .query_row(params![id], |row| row.get(0))?;
    add_addresses(tx, id, start_ms, acct)
}

fn add_addresses(
    tx: &Transaction<'_>,
    id: i64,
    start_ms: i64,
    acct: &Accounting,
) -> rusqlite::Result<()> {
    for (kind, net) in addresses(acct) {
        let (family, len, network) = network_key(&net);
        tx.prepare_cached(
            "INSERT OR IGNORE INTO session_addresses
                (session, kind, family, prefix_len, network, start_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?
        .execute(params![id, kind, family, len, network, start_ms])?;
        tx.prepare_cached(
            "INSERT OR IGNORE INTO prefix_lengths (family, prefix_len) VALUES (?1, ?2)",
        )?
        .execute(params![family, len])?;
    }
    Ok(())
}

/// Deletes sessions that ended (or were last heard of) before `cutoff_ms`; returns how many
/// of them were still open.
pub fn prune(tx: &Transaction<'_>, cutoff_ms: i64) -> rusqlite::Result<(usize, i64)> {
    let stale_open: i64 = tx.query_row(
        "SELECT count(*) FROM sessions WHERE end_ms IS NULL AND updated_ms < ?1",
        params![cutoff_ms],
        |row| row.get(0),
    )?;
    let deleted = tx.execute(
        "DELETE FROM sessions WHERE (end_ms IS NOT NULL AND end_ms < ?1)
            OR (end_ms IS NULL AND updated_ms < ?1)",
        params![cutoff_ms],
    )?;
    Ok((deleted, stale_open))
}

/// Open sessions now (at start: the gauge then follows each change).
pub fn count_open(conn: &rusqlite::Connection) -> rusqlite::Result<i64> {
    conn.query_row(
        "SELECT count(*) FROM sessions WHERE end_ms IS NULL",
        [],
        |row| row.get(0),
    )
}

#[cfg(test)]
#[path = "sessions_tests.rs"]
mod tests;
