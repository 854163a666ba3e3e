//! Reports and their delivery state in the history database. A report is stored (and
//! queued when a webhook is configured) before any attempt to deliver it; the queue is
//! bounded by `max_queued`, the oldest undelivered report giving way.

use rusqlite::{Connection, OptionalExtension as _, Transaction, params};
use serde::{Deserialize, Serialize};

use crate::history::rfc3339_of_ms;

pub const QUEUED: &str = "queued";
pub const DELIVERED: &str = "delivered";
pub const DROPPED: &str = "dropped";
/// No webhook configured: kept for `reports` only.
pub const STORED: &str = "stored";

/// Longest pause between two tries of one report.
pub const MAX_BACKOFF_MS: i64 = 3_600_000;

/// One row of `reports`: the report and what became of it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReportRow {
    pub report_id: String,
    pub subscriber: String,
    pub flagged_at: String,
    /// `queued` | `delivered` | `dropped` | `stored`.
    pub state: String,
    pub attempts: u64,
    pub last_error: Option<String>,
    pub delivered_at: Option<String>,
    /// While queued: when the next try is due.
    pub next_attempt: Option<String>,
    pub report: serde_json::Value,
}

/// Stores a report; returns false when it was already there (the same flag seen again).
pub fn insert(
    tx: &Transaction<'_>,
    report_id: &str,
    subscriber: &str,
    flagged_ms: i64,
    body: &str,
    state: &str,
    now_ms: i64,
) -> rusqlite::Result<bool> {
    let inserted = tx
        .prepare_cached(
            "INSERT OR IGNORE INTO reports
                (report_id, subscriber, flagged_ms, body, state, next_attempt_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?
        .execute(params![
            report_id, subscriber, flagged_ms, body, state, now_ms
        ])?;
    Ok(inserted == 1)
}

/// Drops the oldest queued reports beyond `max_queued`; returns how many.
pub fn enforce_bound(tx: &Transaction<'_>, max_queued: u64) -> rusqlite::Result<u64> {
    let queued = count_queued(tx)?;
    let excess = queued.saturating_sub(max_queued);
    if excess == 0 {
        return Ok(0);
    }
    let dropped = tx.execute(
        "UPDATE reports SET state = 'dropped', last_error = 'dropped: notify.max_queued reached'
         WHERE report_id IN (SELECT report_id FROM reports WHERE state = 'queued'
                             ORDER BY flagged_ms, report_id LIMIT ?1)",
        params![i64::try_from(excess).unwrap_or(i64::MAX)],
    )?;
    Ok(dropped as u64)
}

pub fn count_queued(conn: &Connection) -> rusqlite::Result<u64> {
    conn.query_row(
        "SELECT count(*) FROM reports WHERE state = 'queued'",
        [],
        |row| row.get::<_, i64>(0),
    )
    .map(|n| n.max(0) as u64)
}

/// Queued reports whose next try is due, oldest first.
pub fn due(
    conn: &Connection,
    now_ms: i64,
    limit: i64,
) -> rusqlite::Result<Vec<(String, String, u64)>> {
    conn.prepare_cached(
        "SELECT report_id, body, attempts FROM reports
         WHERE state = 'queued' AND next_attempt_ms <= ?1
         ORDER BY next_attempt_ms, flagged_ms LIMIT ?2",
    )?
    .query_map(params![now_ms, limit], |row| {
        Ok((
            row.get(0)?,
            row.get(1)?,
            row.get::<_, i64>(2)?.max(0) as u64,
        ))
    })?
    .collect()
}

/// When the next queued report is due, if any.
pub fn next_due_ms(conn: &Connection) -> rusqlite::Result<Option<i64>> {
    conn.query_row(
        "SELECT min(next_attempt_ms) FROM reports WHERE state = 'queued'",
        [],
        |row| row.get(0),
    )
    .optional()
    .map(Option::flatten)
}

pub fn mark_delivered(conn: &Connection, report_id: &str, now_ms: i64) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE reports SET state = 'delivered', delivered_ms = ?2, attempts = attempts + 1,
            last_error = NULL WHERE report_id = ?1 AND state = 'queued'",
        params![report_id, now_ms],
    )?;
    Ok(())
}

/// A failed try: the next one after 1, 2, 4 ... s, at most an hour.
pub fn mark_failed(
    conn: &Connection,
    report_id: &str,
    attempts_before: u64,
    error: &str,
    now_ms: i64,
) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE reports SET attempts = attempts + 1, last_error = ?2, next_attempt_ms = ?3
         WHERE report_id = ?1 AND state = 'queued'",
        params![report_id, error, now_ms + backoff_ms(attempts_before + 1)],
    )?;
    Ok(())
}

/// The pause after the `attempts`-th failed try.
pub fn backoff_ms(attempts: u64) -> i64 {
    let exponent = attempts.saturating_sub(1).min(31) as u32;
    (1000i64 << exponent).min(MAX_BACKOFF_MS)
}

/// Reports flagged at or after `since_ms`, oldest first, at most `limit`.
pub fn list(conn: &Connection, since_ms: i64, limit: i64) -> rusqlite::Result<Vec<ReportRow>> {
    conn.prepare_cached(
        "SELECT report_id, subscriber, flagged_ms, state, attempts, last_error, delivered_ms,
                next_attempt_ms, body
         FROM reports WHERE flagged_ms >= ?1 ORDER BY flagged_ms, report_id LIMIT ?2",
    )?
    .query_map(params![since_ms, limit], |row| {
        let state: String = row.get(3)?;
        let body: String = row.get(8)?;
        Ok(ReportRow {
            report_id: row.get(0)?,
            subscriber: row.get(1)?,
            flagged_at: rfc3339_of_ms(row.get(2)?),
            attempts: row.get::<_, i64>(4)?.max(0) as u64,
            last_error: row.get(5)?,
            delivered_at: row.get::<_, Option<i64>>(6)?.map(rfc3339_of_ms),
            next_attempt: (state == QUEUED)
                .then(|| row.get::<_, i64>(7))
                .transpose()?
                .map(rfc3339_of_ms),
            state,
            report: serde_json::from_str(&body).unwrap_or(serde_json::Value::String(body)),
        })
    })?
    .collect()
}

/// Deletes reports flagged before `cutoff_ms` that are no longer waiting for delivery.
pub fn prune(tx: &Transaction<'_>, cutoff_ms: i64) -> rusqlite::Result<usize> {
    tx.execute(
        "DELETE FROM reports WHERE flagged_ms < ?1 AND state != 'queued'",
        params![cutoff_ms],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_an_hour() {
        assert_eq!(backoff_ms(1), 1000);
        assert_eq!(backoff_ms(2), 2000);
        assert_eq!(backoff_ms(5), 16_000);
        assert_eq!(backoff_ms(13), MAX_BACKOFF_MS);
        assert_eq!(backoff_ms(1000), MAX_BACKOFF_MS);
    }

    #[test]
    fn the_queue_is_bounded_oldest_first_and_stored_reports_list() {
        let dir = std::env::temp_dir().join(format!("egress-queue-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let history = crate::history::History::open(&dir).expect("open");
        let mut conn = history.connect().expect("connect");
        let tx = conn.transaction().expect("tx");
        for i in 0..5 {
            assert!(
                insert(&tx, &format!("r{i}"), "192.0.2.2", i, "{}", QUEUED, 0).expect("insert")
            );
        }
        assert!(!insert(&tx, "r0", "192.0.2.2", 0, "{}", QUEUED, 0).expect("again"));
        assert_eq!(enforce_bound(&tx, 3).expect("bound"), 2);
        tx.commit().expect("commit");
        assert_eq!(count_queued(&conn).expect("count"), 3);
        let rows = list(&conn, 0, 100).expect("list");
        let states: Vec<&str> = rows.iter().map(|r| r.state.as_str()).collect();
        assert_eq!(states, [DROPPED, DROPPED, QUEUED, QUEUED, QUEUED]);
        mark_failed(&conn, "r2", 0, "connection refused", 10).expect("fail");
        assert_eq!(due(&conn, 10, 10).expect("due").len(), 2);
        mark_delivered(&conn, "r3", 20).expect("deliver");
        assert_eq!(next_due_ms(&conn).expect("next"), Some(0));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn pruning_keeps_what_still_waits_for_delivery_and_anything_recent() {
        let dir = std::env::temp_dir().join(format!("egress-prune-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let history = crate::history::History::open(&dir).expect("open");
        let mut conn = history.connect().expect("connect");
        let tx = conn.transaction().expect("tx");
        for (id, flagged_ms, state) in [
            ("old-delivered", 10, DELIVERED),
            ("old-dropped", 20, DROPPED),
            ("old-queued", 30, QUEUED),
            ("new-delivered", 2_000, DELIVERED),
        ] {
            assert!(insert(&tx, id, "192.0.2.2", flagged_ms, "{}", state, 0).expect("insert"));
        }
        assert_eq!(prune(&tx, 1_000).expect("prune"), 2);
        tx.commit().expect("commit");
        let mut kept: Vec<String> = list(&conn, 0, 100)
            .expect("list")
            .into_iter()
            .map(|row| row.report_id)
            .collect();
        kept.sort();
        assert_eq!(kept, ["new-delivered", "old-queued"]);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
