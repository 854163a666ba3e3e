//! Which flag transitions have been reported and are still active, in the history database.
//!
//! The dataplane stamps a flagged subscriber with the time of its latest packet over a
//! threshold, and the flag ends only after a whole window without one. So a flag seen now at
//! time F is the transition reported earlier if that transition was still seen active at a
//! time L with F - L <= window: no window-long quiet gap can lie between two times that close.
//! The scan refreshes L while the flag lasts (at most every half window, to keep writes few).

use rusqlite::{Connection, OptionalExtension as _, Transaction, params};

/// The report of a still active transition of `subscriber`, if its last sighting is within
/// `window_ms` of `flag_ms`.
pub fn active_report(
    conn: &Connection,
    subscriber: &str,
    flag_ms: i64,
    window_ms: i64,
) -> rusqlite::Result<Option<String>> {
    conn.prepare_cached(
        "SELECT report_id FROM active_flags WHERE subscriber = ?1 AND ?2 - last_flag_ms <= ?3",
    )?
    .query_row(params![subscriber, flag_ms, window_ms], |row| row.get(0))
    .optional()
}

/// Records (or moves on) the active transition of `subscriber`.
pub fn mark(
    tx: &Transaction<'_>,
    subscriber: &str,
    report_id: &str,
    flag_ms: i64,
) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT INTO active_flags (subscriber, report_id, last_flag_ms) VALUES (?1, ?2, ?3)
         ON CONFLICT (subscriber) DO UPDATE SET report_id = ?2, last_flag_ms = ?3",
    )?
    .execute(params![subscriber, report_id, flag_ms])?;
    Ok(())
}

/// `subscriber`'s transition was seen active at `flag_ms`.
pub fn touch(tx: &Transaction<'_>, subscriber: &str, flag_ms: i64) -> rusqlite::Result<()> {
    tx.prepare_cached("UPDATE active_flags SET last_flag_ms = ?2 WHERE subscriber = ?1")?
        .execute(params![subscriber, flag_ms])?;
    Ok(())
}

/// The transition of `subscriber` is over.
pub fn clear(tx: &Transaction<'_>, subscriber: &str) -> rusqlite::Result<()> {
    tx.prepare_cached("DELETE FROM active_flags WHERE subscriber = ?1")?
        .execute(params![subscriber])?;
    Ok(())
}

/// Forgets transitions last seen before `cutoff_ms`: they can match no flag any more.
pub fn prune(conn: &Connection, cutoff_ms: i64) -> rusqlite::Result<usize> {
    conn.execute(
        "DELETE FROM active_flags WHERE last_flag_ms < ?1",
        params![cutoff_ms],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flag_within_a_window_of_the_last_sighting_is_the_same_transition() {
        let dir = std::env::temp_dir().join(format!("egress-flags-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let history = crate::history::History::open(&dir).expect("open");
        let mut conn = history.connect().expect("connect");
        let tx = conn.transaction().expect("tx");
        mark(&tx, "192.0.2.2", "r1", 10_000).expect("mark");
        tx.commit().expect("commit");
        let report = |conn: &Connection, at| active_report(conn, "192.0.2.2", at, 300_000);
        assert_eq!(report(&conn, 310_000).expect("q").as_deref(), Some("r1"));
        assert_eq!(
            report(&conn, 310_001).expect("q"),
            None,
            "a gap may lie between"
        );
        assert_eq!(
            active_report(&conn, "192.0.2.3", 10_000, 300_000).expect("q"),
            None
        );
        let tx = conn.transaction().expect("tx");
        clear(&tx, "192.0.2.2").expect("clear");
        tx.commit().expect("commit");
        assert_eq!(report(&conn, 10_000).expect("q"), None);
        let tx = conn.transaction().expect("tx");
        mark(&tx, "192.0.2.2", "r2", 10_000).expect("mark");
        tx.commit().expect("commit");
        assert_eq!(prune(&conn, 10_001).expect("prune"), 1);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
