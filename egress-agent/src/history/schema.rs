//! The schema, as an ordered list of migrations: version N is reached by running the first
//! N steps. A step is never edited once released; changes are new steps.

use rusqlite::Connection;

/// Each step moves the schema one version forward.
const MIGRATIONS: &[&str] = &[
    // 1: RADIUS sessions and the addresses they held; evidence reports and their queue.
    "CREATE TABLE sessions (
        id INTEGER PRIMARY KEY,
        nas TEXT NOT NULL,                 -- NAS-Identifier, else NAS-IP-Address, else sender
        acct_session_id TEXT NOT NULL,
        user_name TEXT,
        calling_station_id TEXT,
        nas_identifier TEXT,
        nas_ip_address TEXT,
        nas_port_id TEXT,
        start_ms INTEGER NOT NULL,         -- Unix ms (Event-Timestamp when sent)
        updated_ms INTEGER NOT NULL,
        end_ms INTEGER                     -- NULL while the session is open
     );
     CREATE INDEX sessions_by_nas ON sessions (nas, acct_session_id, end_ms);
     CREATE INDEX sessions_open ON sessions (nas) WHERE end_ms IS NULL;
     CREATE TABLE session_addresses (
        session INTEGER NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
        kind TEXT NOT NULL,                -- framed_ip_address | framed_ipv6_prefix | ...
        family INTEGER NOT NULL,           -- 4 | 6
        prefix_len INTEGER NOT NULL,
        network BLOB NOT NULL,             -- 4 or 16 bytes, host bits zero
        start_ms INTEGER NOT NULL,         -- the session's, for the time-ordered lookup
        PRIMARY KEY (session, family, prefix_len, network)
     ) WITHOUT ROWID;
     CREATE INDEX addresses_by_network
        ON session_addresses (family, prefix_len, network, start_ms);
     CREATE TABLE prefix_lengths (
        family INTEGER NOT NULL,
        prefix_len INTEGER NOT NULL,
        PRIMARY KEY (family, prefix_len)
     ) WITHOUT ROWID;
     CREATE TABLE reports (
        report_id TEXT PRIMARY KEY,
        subscriber TEXT NOT NULL,
        flagged_ms INTEGER NOT NULL,
        body TEXT NOT NULL,                -- the JSON delivered, byte for byte
        state TEXT NOT NULL,               -- queued | delivered | dropped | stored
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_ms INTEGER NOT NULL,
        last_error TEXT,
        delivered_ms INTEGER
     ) WITHOUT ROWID;
     CREATE INDEX reports_queue ON reports (state, next_attempt_ms);
     CREATE INDEX reports_by_time ON reports (flagged_ms);
     CREATE VIEW sessions_readable AS
        SELECT s.id, s.user_name, s.calling_station_id, s.nas, s.nas_port_id,
               s.acct_session_id, a.kind, a.prefix_len,
               strftime('%Y-%m-%dT%H:%M:%SZ', s.start_ms / 1000, 'unixepoch') AS start,
               strftime('%Y-%m-%dT%H:%M:%SZ', s.end_ms / 1000, 'unixepoch') AS end
        FROM sessions s LEFT JOIN session_addresses a ON a.session = s.id;",
    // 2: the flag transitions reported and still active, so a restarted agent recognises a
    // flag it already reported (the dataplane's flag stamp moves with every packet over a
    // threshold, so it cannot name the transition by itself).
    "CREATE TABLE active_flags (
        subscriber TEXT PRIMARY KEY,
        report_id TEXT NOT NULL,
        last_flag_ms INTEGER NOT NULL      -- a recent time the subscriber was over a threshold
     ) WITHOUT ROWID;",
];

pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

pub enum MigrateError {
    TooNew(i64),
    Sqlite(rusqlite::Error),
}

impl From<rusqlite::Error> for MigrateError {
    fn from(err: rusqlite::Error) -> Self {
        MigrateError::Sqlite(err)
    }
}

/// Runs the steps the database has not had yet, each in its own transaction.
pub fn migrate(conn: &mut Connection) -> Result<(), MigrateError> {
    let current: i64 = conn.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    if current > SCHEMA_VERSION {
        return Err(MigrateError::TooNew(current));
    }
    for (done, step) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(step)?;
        tx.execute_batch(&format!("PRAGMA user_version = {}", done + 1))?;
        tx.commit()?;
        tracing::info!(version = done + 1, "history database schema migrated");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A database an agent of schema 1 left behind: its sessions and reports survive the
    /// step to the current schema, which adds the active flags.
    #[test]
    fn a_version_1_database_migrates_with_its_rows() {
        let mut conn = Connection::open_in_memory().expect("open");
        conn.execute_batch(MIGRATIONS[0]).expect("schema 1");
        conn.execute_batch(
            "PRAGMA user_version = 1;
             INSERT INTO sessions (nas, acct_session_id, user_name, start_ms, updated_ms)
                VALUES ('bng-1', 's1', 'alice@isp', 1000, 1000);
             INSERT INTO reports (report_id, subscriber, flagged_ms, body, state, next_attempt_ms)
                VALUES ('r1', '192.0.2.2', 2000, '{}', 'queued', 0);",
        )
        .expect("rows of schema 1");
        migrate(&mut conn).map_err(|_| "migrate").expect("migrates");
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |row| row.get(0))
            .expect("version");
        assert_eq!(version, SCHEMA_VERSION);
        let user: String = conn
            .query_row(
                "SELECT user_name FROM sessions WHERE acct_session_id = 's1'",
                [],
                |row| row.get(0),
            )
            .expect("the session survives");
        assert_eq!(user, "alice@isp");
        let reports: i64 = conn
            .query_row("SELECT count(*) FROM reports", [], |row| row.get(0))
            .expect("reports");
        assert_eq!(reports, 1);
        conn.execute(
            "INSERT INTO active_flags (subscriber, report_id, last_flag_ms) VALUES ('192.0.2.2', 'r1', 2000)",
            [],
        )
        .expect("schema 2's table exists");
    }
}
